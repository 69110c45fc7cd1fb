//! The slot engine and working-hours expansion, checked against a brute-force oracle
//! (property tests) and against the time-zone bugs users of other schedulers hit
//! (examples).

use convene_domain::slots::{Availability, Candidate, SlotQuery, feasible_slots, find_slots};
use convene_domain::time::{
    Date, Granularity, Interval, LocalEnd, LocalRange, MeetingLength, SignedDuration, Time,
    Timestamp, Weekday, WeeklyHours, Zone,
};
use jiff::tz::AmbiguousOffset;

const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "UTC",
    "Pacific/Auckland",
    "America/Los_Angeles",
];

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn zone(name: &str) -> Zone {
    Zone::parse(name).unwrap()
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

fn iv(a: &str, b: &str) -> Interval {
    Interval::new(ts(a), ts(b)).unwrap()
}

fn range(s: &str) -> LocalRange {
    s.parse().unwrap()
}

fn every_day(r: &str) -> WeeklyHours {
    WeeklyHours::new(WEEKDAYS.iter().map(|&d| (d, range(r)))).unwrap()
}

fn person(z: &str, hours: Option<WeeklyHours>, busy: Vec<Interval>) -> Availability {
    Availability {
        required: true,
        zone: zone(z),
        working_hours: hours,
        busy,
        buffer_before: SignedDuration::ZERO,
        buffer_after: SignedDuration::ZERO,
    }
}

fn query(window: Interval, minutes: i64, step: i64, organizer: &str) -> SlotQuery {
    SlotQuery {
        window,
        duration: MeetingLength::from_minutes(minutes).unwrap(),
        granularity: Granularity::from_minutes(step).unwrap(),
        organizer_zone: zone(organizer),
        earliest_start: window.start(),
        participants: Vec::new(),
        limit: 10,
    }
}

fn starts(c: &[Candidate]) -> Vec<Timestamp> {
    c.iter().map(|c| c.slot.start()).collect()
}

/// An independent, naive model of the hard constraints and measures: minute by minute,
/// with working hours resolved through jiff's high-level disambiguation per local day
/// and range, never merged or sorted.
mod oracle {
    use super::*;

    const MARGIN_MINUTES: i64 = 2 * 1440;

    /// Whether each minute around the window is inside the person's working hours.
    pub(crate) struct Mask {
        first_minute: i64,
        working: Vec<bool>,
    }

    impl Mask {
        pub(crate) fn new(zone: &Zone, hours: &WeeklyHours, window: Interval) -> Mask {
            let first_minute = window.start().as_second().div_euclid(60) - MARGIN_MINUTES;
            let last_minute = window.end().as_second().div_euclid(60) + MARGIN_MINUTES;
            let tz = zone.tz();
            let mut raw: Vec<(Timestamp, Timestamp)> = Vec::new();
            let first_day: Date = zone
                .to_zoned(Timestamp::from_second(first_minute * 60).unwrap())
                .date()
                .yesterday()
                .unwrap();
            let last_day: Date = zone
                .to_zoned(Timestamp::from_second(last_minute * 60).unwrap())
                .date()
                .tomorrow()
                .unwrap();
            let mut day = first_day;
            while day <= last_day {
                for r in hours.ranges(day.weekday()) {
                    let start = tz
                        .to_ambiguous_timestamp(day.to_datetime(r.start()))
                        .compatible()
                        .unwrap();
                    let end_dt = match r.end() {
                        LocalEnd::At(t) => day.to_datetime(t),
                        LocalEnd::Midnight => day.tomorrow().unwrap().to_datetime(Time::midnight()),
                    };
                    let end = tz.to_ambiguous_timestamp(end_dt).later().unwrap();
                    if start < end {
                        raw.push((start, end));
                    }
                }
                day = day.tomorrow().unwrap();
            }
            let working = (first_minute..last_minute)
                .map(|m| {
                    let t = Timestamp::from_second(m * 60).unwrap();
                    raw.iter().any(|&(s, e)| s <= t && t < e)
                })
                .collect();
            Mask {
                first_minute,
                working,
            }
        }

        fn at(&self, t: Timestamp) -> bool {
            let i = t.as_second().div_euclid(60) - self.first_minute;
            usize::try_from(i)
                .ok()
                .and_then(|i| self.working.get(i).copied())
                .unwrap_or(false)
        }

        /// Whether every minute of `slot` is working time.
        pub(crate) fn covers(&self, slot: Interval) -> bool {
            let mut t = slot.start();
            while t < slot.end() {
                if !self.at(t) {
                    return false;
                }
                t = t.checked_add(mins(1)).unwrap();
            }
            true
        }

        /// Minutes from the slot to the nearer edge of the run of working minutes
        /// holding it, capped at 240.
        pub(crate) fn comfort(&self, slot: Interval) -> u32 {
            let mut before = 0;
            let mut t = slot.start();
            while before < 240 {
                t = t.checked_sub(mins(1)).unwrap();
                if !self.at(t) {
                    break;
                }
                before += 1;
            }
            let mut after = 0;
            let mut t = slot.end();
            while after < 240 {
                if !self.at(t) {
                    break;
                }
                after += 1;
                t = t.checked_add(mins(1)).unwrap();
            }
            before.min(after)
        }
    }

    pub(crate) struct Oracle<'q> {
        q: &'q SlotQuery,
        masks: Vec<Option<Mask>>,
    }

    impl<'q> Oracle<'q> {
        pub(crate) fn new(q: &'q SlotQuery) -> Self {
            let masks = q
                .participants
                .iter()
                .map(|p| {
                    p.working_hours
                        .as_ref()
                        .map(|h| Mask::new(&p.zone, h, q.window))
                })
                .collect();
            Oracle { q, masks }
        }

        fn on_grid(&self, t: Timestamp) -> bool {
            let local = self.q.organizer_zone.to_zoned(t);
            local.second() == 0
                && local.subsec_nanosecond() == 0
                && i64::from(local.minute()) % self.q.granularity.minutes() == 0
        }

        fn free(p: &Availability, slot: Interval) -> bool {
            let before = p.buffer_before.max(SignedDuration::ZERO);
            let after = p.buffer_after.max(SignedDuration::ZERO);
            let buffered = Interval::new(
                slot.start().checked_sub(before).unwrap(),
                slot.end().checked_add(after).unwrap(),
            )
            .unwrap();
            !p.busy.iter().any(|b| b.overlaps(&buffered))
        }

        /// Why `slot` breaks a hard constraint, if it does.
        pub(crate) fn violation(&self, slot: Interval) -> Option<String> {
            let q = self.q;
            if slot.duration() != q.duration.get() {
                return Some("wrong length".into());
            }
            if !q.window.contains(&slot) {
                return Some("outside the window".into());
            }
            if slot.start() < q.earliest_start {
                return Some("before the earliest start".into());
            }
            if !self.on_grid(slot.start()) {
                return Some("off the organizer's grid".into());
            }
            for (i, p) in q
                .participants
                .iter()
                .enumerate()
                .filter(|(_, p)| p.required)
            {
                if !Self::free(p, slot) {
                    return Some(format!("required participant {i} busy"));
                }
                if let Some(mask) = &self.masks[i]
                    && !mask.covers(slot)
                {
                    return Some(format!("outside required participant {i}'s hours"));
                }
            }
            None
        }

        /// The candidate the engine should report for a feasible `slot`.
        pub(crate) fn candidate(&self, slot: Interval) -> Candidate {
            let q = self.q;
            let mut comfort = 240u32;
            let mut optional_free = 0usize;
            for (i, p) in q.participants.iter().enumerate() {
                let inside = self.masks[i].as_ref().is_none_or(|m| m.covers(slot));
                let attends = if p.required {
                    true
                } else {
                    let attends = Self::free(p, slot) && inside;
                    optional_free += usize::from(attends);
                    attends
                };
                if let (true, Some(mask)) = (attends, &self.masks[i]) {
                    comfort = comfort.min(mask.comfort(slot));
                }
            }
            Candidate {
                slot,
                optional_free,
                optional_total: q.participants.iter().filter(|p| !p.required).count(),
                comfort: f64::from(comfort),
                score: optional_free as f64 * 1000.0 + f64::from(comfort),
            }
        }

        /// Every feasible slot, by trying every minute of the window.
        pub(crate) fn feasible(&self) -> Vec<Candidate> {
            let q = self.q;
            let mut out = Vec::new();
            let mut t =
                Timestamp::from_second((q.window.start().as_second() + 59).div_euclid(60) * 60)
                    .unwrap();
            while let Ok(slot) = Interval::starting_at(t, q.duration.get()) {
                if slot.end() > q.window.end() {
                    break;
                }
                if self.violation(slot).is_none() {
                    out.push(self.candidate(slot));
                }
                t = t.checked_add(mins(1)).unwrap();
            }
            out
        }
    }
}

/// Strategies: zones with 30/45-minute offsets and odd DST, windows across DST changes,
/// several working ranges a day, busy calendars with buffers.
mod strategies {
    use super::*;
    use proptest::prelude::*;

    /// Instants near DST changes (and one quiet week), UTC.
    const BASES: &[&str] = &[
        "2024-03-31T01:00:00Z", // Europe spring forward
        "2024-10-27T01:00:00Z", // Europe fall back
        "2024-03-10T07:00:00Z", // US spring forward
        "2024-11-03T06:00:00Z", // US fall back
        "2024-04-06T15:00:00Z", // Lord Howe -30 min, Auckland/Chatham fall back
        "2024-10-05T15:30:00Z", // Lord Howe +30 min
        "2024-09-28T14:00:00Z", // Auckland/Chatham spring forward
        "2018-11-04T03:00:00Z", // Sao Paulo spring forward at midnight
        "2019-02-17T02:00:00Z", // Sao Paulo fall back at midnight
        "2024-06-12T12:00:00Z", // nothing happens
    ];

    pub(crate) fn zone() -> impl Strategy<Value = Zone> {
        prop::sample::select(ZONES).prop_map(super::zone)
    }

    fn local(minutes: u32) -> LocalEnd {
        if minutes >= 1440 {
            LocalEnd::Midnight
        } else {
            LocalEnd::At(Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).unwrap())
        }
    }

    /// Up to three ranges on quarter hours, sorted, not overlapping (some touching).
    fn day() -> impl Strategy<Value = Vec<LocalRange>> {
        (prop::collection::btree_set(0u32..=96, 0..=6), any::<bool>()).prop_map(|(marks, touch)| {
            let marks: Vec<u32> = marks.into_iter().map(|m| m * 15).collect();
            let mut out = Vec::new();
            for (k, pair) in marks.chunks_exact(2).enumerate() {
                // Sometimes start where the previous range ended.
                let start = match (touch, out.last()) {
                    (true, Some(&(_, prev_end))) if k > 0 => prev_end,
                    _ => pair[0],
                };
                out.push((start, pair[1]));
            }
            out.into_iter()
                .filter(|(s, e)| s < e)
                .map(|(s, e)| {
                    let LocalEnd::At(start) = local(s) else {
                        unreachable!("starts are before 24:00")
                    };
                    match local(e) {
                        LocalEnd::At(end) => LocalRange::new(start, end).unwrap(),
                        LocalEnd::Midnight => LocalRange::until_midnight(start),
                    }
                })
                .collect()
        })
    }

    pub(crate) fn weekly() -> impl Strategy<Value = WeeklyHours> {
        prop::array::uniform7(day()).prop_map(|days| {
            WeeklyHours::new(
                days.into_iter()
                    .zip(WEEKDAYS)
                    .flat_map(|(ranges, d)| ranges.into_iter().map(move |r| (d, r))),
            )
            .unwrap()
        })
    }

    fn hours() -> impl Strategy<Value = Option<WeeklyHours>> {
        prop_oneof![
            2 => Just(None),
            2 => Just(Some(WeeklyHours::standard())),
            1 => Just(Some(WeeklyHours::always())),
            1 => Just(Some(every_day("08:00-20:00"))),
            4 => weekly().prop_map(Some),
        ]
    }

    fn participant(window: Interval) -> impl Strategy<Value = Availability> {
        let len = window.duration().as_mins();
        (
            prop::bool::weighted(0.7),
            zone(),
            hours(),
            prop::collection::vec((-720..len + 720, 5i64..=300), 0..=8),
            prop::sample::select(&[0i64, 0, 5, 10, 15][..]),
            prop::sample::select(&[0i64, 0, 5, 10, 15][..]),
        )
            .prop_map(
                move |(required, zone, working_hours, busy, before, after)| Availability {
                    required,
                    zone,
                    working_hours,
                    busy: busy
                        .into_iter()
                        .map(|(at, length)| {
                            Interval::starting_at(
                                window.start().checked_add(mins(at)).unwrap(),
                                mins(length),
                            )
                            .unwrap()
                        })
                        .collect(),
                    buffer_before: mins(before),
                    buffer_after: mins(after),
                },
            )
    }

    /// A query over a window of up to `max_days` days near a DST change.
    pub(crate) fn query(max_days: i64, max_people: usize) -> impl Strategy<Value = SlotQuery> {
        (
            0..BASES.len(),
            -2880i64..=0,
            60i64..=max_days * 1440,
            zone(),
            prop::sample::select(&[5i64, 10, 15, 20, 30, 60][..]),
            prop_oneof![
                prop::sample::select(&[5i64, 15, 30, 45, 60, 90, 120, 240][..]),
                5i64..=300
            ],
            -720i64..=1440,
            0usize..=8,
        )
            .prop_flat_map(
                move |(base, offset, len, org, step, minutes, early, limit)| {
                    let start = ts(BASES[base]).checked_add(mins(offset)).unwrap();
                    let window = Interval::starting_at(start, mins(len)).unwrap();
                    (
                        Just(window),
                        Just(org),
                        Just(step),
                        Just(minutes),
                        Just(early),
                        Just(limit),
                        prop::collection::vec(participant(window), 0..=max_people),
                    )
                },
            )
            .prop_map(
                |(window, org, step, minutes, early, limit, participants)| SlotQuery {
                    window,
                    duration: MeetingLength::from_minutes(minutes).unwrap(),
                    granularity: Granularity::from_minutes(step).unwrap(),
                    organizer_zone: org,
                    earliest_start: window.start().checked_add(mins(early)).unwrap(),
                    participants,
                    limit,
                },
            )
    }
}

mod properties {
    use super::oracle::Oracle;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn local_days(q: &SlotQuery, c: &[Candidate]) -> BTreeSet<Date> {
        c.iter()
            .map(|c| c.slot.local_date(&q.organizer_zone))
            .collect()
    }

    /// Fisher–Yates with a tiny xorshift: a deterministic shuffle from a seed.
    fn shuffle<T>(v: &mut [T], seed: &mut u64) {
        for i in (1..v.len()).rev() {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let j = (*seed % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 160,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// `feasible_slots` is exactly what trying every minute finds, measures included.
        #[test]
        fn feasible_slots_match_the_brute_force_oracle(q in strategies::query(3, 4)) {
            let engine = feasible_slots(&q);
            let expected = Oracle::new(&q).feasible();
            let extra: Vec<&Candidate> = engine.iter().filter(|c| !expected.contains(c)).take(3).collect();
            let missing: Vec<&Candidate> = expected.iter().filter(|c| !engine.contains(c)).take(3).collect();
            prop_assert!(
                extra.is_empty() && missing.is_empty(),
                "engine has {} (e.g. {:?}), oracle {} (e.g. {:?})",
                engine.len(), extra, expected.len(), missing
            );
            prop_assert_eq!(engine, expected);
        }

        /// No proposal or feasible slot breaks a hard constraint (larger inputs).
        #[test]
        fn no_candidate_breaks_a_hard_constraint(q in strategies::query(8, 8)) {
            let oracle = Oracle::new(&q);
            for c in feasible_slots(&q).iter().chain(&find_slots(&q)) {
                prop_assert_eq!(oracle.violation(c.slot), None, "{:?}", c);
            }
        }

        /// Shuffling participants and busy lists changes nothing.
        #[test]
        fn order_of_participants_and_busy_times_does_not_matter(
            q in strategies::query(4, 6),
            seed in 1u64..,
        ) {
            let mut seed = seed;
            let mut shuffled = q.clone();
            shuffle(&mut shuffled.participants, &mut seed);
            for p in &mut shuffled.participants {
                shuffle(&mut p.busy, &mut seed);
            }
            prop_assert_eq!(find_slots(&q), find_slots(&shuffled));
            prop_assert_eq!(feasible_slots(&q), feasible_slots(&shuffled));
        }

        /// Proposals are feasible, at most `limit`, as many as possible, best first and
        /// spread over days.
        #[test]
        fn proposals_are_feasible_bounded_and_spread(q in strategies::query(6, 5)) {
            let feasible = feasible_slots(&q);
            let proposals = find_slots(&q);
            prop_assert_eq!(proposals.len(), q.limit.min(feasible.len()));
            for p in &proposals {
                prop_assert!(feasible.contains(p), "{:?} not feasible", p);
            }
            let distinct: BTreeSet<Timestamp> = starts(&proposals).into_iter().collect();
            prop_assert_eq!(distinct.len(), proposals.len());
            if let Some(first) = proposals.first() {
                let best = feasible.iter().map(|c| c.score).fold(f64::MIN, f64::max);
                prop_assert_eq!(first.score, best);
            }
            let days = local_days(&q, &feasible).len();
            if q.limit >= 2 && days >= 2 {
                prop_assert!(local_days(&q, &proposals).len() >= 2);
            }
            // The first round takes one slot from each of that many days.
            let first_round = q.limit.min(days);
            prop_assert_eq!(local_days(&q, &proposals[..first_round]).len(), first_round);
        }

        /// Every slot start is a real local time of the organizer, on the local grid, that
        /// round-trips through local time.
        #[test]
        fn slot_starts_round_trip_through_the_organizers_local_time(
            q in strategies::query(4, 3),
        ) {
            let tz = q.organizer_zone.tz();
            for c in feasible_slots(&q) {
                let s = c.slot.start();
                let local = q.organizer_zone.to_zoned(s);
                prop_assert_eq!(i64::from(local.minute()) % q.granularity.minutes(), 0);
                prop_assert_eq!(local.second(), 0);
                let dt = local.datetime();
                match tz.to_ambiguous_timestamp(dt).offset() {
                    AmbiguousOffset::Unambiguous { offset } => {
                        prop_assert_eq!(offset.to_timestamp(dt).unwrap(), s);
                    }
                    AmbiguousOffset::Gap { .. } => {
                        prop_assert!(false, "{} starts in a DST gap", s);
                    }
                    AmbiguousOffset::Fold { before, after } => {
                        // Shown with its offset, it is one of the two instants.
                        prop_assert_eq!(local.offset().to_timestamp(dt).unwrap(), s);
                        prop_assert!(
                            before.to_timestamp(dt).unwrap() == s
                                || after.to_timestamp(dt).unwrap() == s
                        );
                    }
                }
            }
        }

        /// A 09:00–17:00 day lasts 8 hours in every zone on every day, DST changes
        /// included (they happen at night), and expansion is sorted and disjoint.
        #[test]
        fn a_nine_to_five_day_is_eight_hours_long(z in strategies::zone(), day in 0i64..3650) {
            let start = ts("2020-01-01T00:00:00Z").checked_add(SignedDuration::from_hours(24 * day)).unwrap();
            let window = Interval::starting_at(start, SignedDuration::from_hours(24 * 4)).unwrap();
            let expanded = every_day("09:00-17:00").expand(&z, window);
            prop_assert!(expanded.len() >= 3);
            for w in &expanded {
                prop_assert_eq!(w.duration(), SignedDuration::from_hours(8));
                prop_assert!(w.overlaps(&window));
            }
            for pair in expanded.windows(2) {
                prop_assert!(pair[0].end() < pair[1].start());
            }
        }

        /// Two participants hours apart with the same hours: the proposals are as deep in
        /// both days as the overlap allows, so neither always gets the edge of their day.
        #[test]
        fn symmetric_participants_share_the_edges(
            pair in prop::sample::select(&[
                ("Europe/Paris", "America/New_York"),
                ("UTC", "Asia/Dhaka"),
                ("Asia/Kolkata", "Europe/London"),
                ("Australia/Sydney", "Asia/Kathmandu"),
            ][..]),
            hours in prop::sample::select(&["09:00-17:00", "08:00-18:00", "08:30-17:30"][..]),
            week in 0i64..52,
            minutes in prop::sample::select(&[30i64, 45, 60][..]),
            limit in 2usize..8,
        ) {
            let start = ts("2024-01-01T00:00:00Z")
                .checked_add(SignedDuration::from_hours(24 * 7 * week))
                .unwrap();
            let window = Interval::starting_at(start, SignedDuration::from_hours(24 * 7)).unwrap();
            let mut q = query(window, minutes, 15, pair.0);
            q.limit = limit;
            q.participants = vec![
                person(pair.0, Some(every_day(hours)), vec![]),
                person(pair.1, Some(every_day(hours)), vec![]),
            ];
            let best = feasible_slots(&q).iter().map(|c| c.comfort).fold(0.0, f64::max);
            let proposals = find_slots(&q);
            prop_assume!(best > 0.0 && !proposals.is_empty());
            let at_edge = |z: &str, c: &Candidate| {
                let start = zone(z).to_zoned(c.slot.start()).time();
                let end = zone(z).to_zoned(c.slot.end()).time();
                let r = range(hours);
                start == r.start() || LocalEnd::At(end) == r.end()
            };
            prop_assert!(!proposals.iter().all(|c| at_edge(pair.0, c)));
            prop_assert!(!proposals.iter().all(|c| at_edge(pair.1, c)));
            // The first proposal is as comfortable as any slot of the week.
            prop_assert_eq!(proposals[0].comfort, best);
        }

        /// "Always" has no hole and no overlap around DST changes: one interval.
        #[test]
        fn always_expands_to_one_interval(z in strategies::zone(), q in strategies::query(3, 0)) {
            let expanded = WeeklyHours::always().expand(&z, q.window);
            prop_assert_eq!(expanded.len(), 1);
            prop_assert!(expanded[0].contains(&q.window));
        }

        /// Expansion of any weekly hours is sorted, disjoint and agrees with the oracle's
        /// minute-by-minute reading of the same rule.
        #[test]
        fn expansion_matches_the_minute_model(
            z in strategies::zone(),
            hours in strategies::weekly(),
            q in strategies::query(3, 0),
        ) {
            let expanded = hours.expand(&z, q.window);
            for pair in expanded.windows(2) {
                prop_assert!(pair[0].end() < pair[1].start());
            }
            let mask = oracle::Mask::new(&z, &hours, q.window);
            let mut t = ts(&format!("{}", q.window.start())).checked_sub(SignedDuration::from_secs(q.window.start().as_second().rem_euclid(60))).unwrap();
            while t < q.window.end() {
                let minute = Interval::starting_at(t, mins(1)).unwrap();
                let inside = expanded.iter().any(|w| w.contains(&minute));
                prop_assert_eq!(inside, mask.covers(minute), "at {}", t);
                t = t.checked_add(mins(1)).unwrap();
            }
        }
    }
}

mod examples {
    use super::*;

    fn only(day: Weekday, r: &str) -> WeeklyHours {
        WeeklyHours::new([(day, range(r))]).unwrap()
    }

    fn weekdays(r: &str) -> WeeklyHours {
        WeeklyHours::new(WEEKDAYS[..5].iter().map(|&d| (d, range(r)))).unwrap()
    }

    /// "My 10:00 slot is an hour off the week after the clocks changed": 10:00 in Paris
    /// is 09:00Z in winter and 08:00Z in summer, both ways round.
    #[test]
    fn paris_ten_oclock_around_both_dst_changes() {
        for (window, expected) in [
            (
                iv("2024-03-24T00:00:00Z", "2024-04-02T00:00:00Z"),
                ["2024-03-25T09:00:00Z", "2024-04-01T08:00:00Z"],
            ),
            (
                iv("2024-10-20T00:00:00Z", "2024-10-29T00:00:00Z"),
                ["2024-10-21T08:00:00Z", "2024-10-28T09:00:00Z"],
            ),
        ] {
            let mut q = query(window, 60, 15, "Europe/Paris");
            q.participants = vec![person(
                "Europe/Paris",
                Some(only(Weekday::Monday, "10:00-11:00")),
                vec![],
            )];
            assert_eq!(starts(&feasible_slots(&q)), expected.map(ts));
        }
    }

    /// New York's 09:00 moves from 14:00Z to 13:00Z over the March weekend.
    #[test]
    fn new_york_nine_oclock_across_spring_forward() {
        let mut q = query(
            iv("2024-03-07T00:00:00Z", "2024-03-12T00:00:00Z"),
            60,
            30,
            "America/New_York",
        );
        q.participants = vec![person(
            "America/New_York",
            Some(weekdays("09:00-10:00")),
            vec![],
        )];
        assert_eq!(
            starts(&feasible_slots(&q)),
            [
                "2024-03-07T14:00:00Z",
                "2024-03-08T14:00:00Z",
                "2024-03-11T13:00:00Z"
            ]
            .map(ts)
        );
    }

    /// A 09:00–17:00 day on DST-change days in Paris and New York lasts 8 hours, while
    /// the whole day lasts 23 or 25.
    #[test]
    fn nine_to_five_on_dst_change_days_is_eight_hours() {
        for (z, date, day_hours) in [
            ("Europe/Paris", "2024-03-31", 23),
            ("Europe/Paris", "2024-10-27", 25),
            ("America/New_York", "2024-03-10", 23),
            ("America/New_York", "2024-11-03", 25),
        ] {
            let z = zone(z);
            let d: Date = date.parse().unwrap();
            let noon = d
                .at(12, 0, 0, 0)
                .to_zoned(z.tz().clone())
                .unwrap()
                .timestamp();
            let window = Interval::starting_at(noon, mins(1)).unwrap();
            let work = every_day("09:00-17:00").expand(&z, window);
            assert_eq!(work.len(), 1, "{date}");
            assert_eq!(work[0].duration(), SignedDuration::from_hours(8), "{date}");
            let whole = WeeklyHours::new([(d.weekday(), LocalRange::whole_day())])
                .unwrap()
                .expand(&z, window);
            assert_eq!(
                whole[0].duration(),
                SignedDuration::from_hours(day_hours),
                "{date}"
            );
        }
    }

    /// Kolkata is +05:30: a 09:00 start there is 03:30Z. On a UTC organizer's hourly
    /// grid the first start is 04:00Z (09:30 in Kolkata).
    #[test]
    fn kolkata_half_hour_offset() {
        let window = iv("2024-06-03T00:00:00Z", "2024-06-04T00:00:00Z");
        let mut q = query(window, 60, 60, "Asia/Kolkata");
        q.participants = vec![person(
            "Asia/Kolkata",
            Some(WeeklyHours::standard()),
            vec![],
        )];
        let local = starts(&feasible_slots(&q));
        assert_eq!(local.len(), 8);
        assert_eq!(local[0], ts("2024-06-03T03:30:00Z"));
        assert_eq!(local[7], ts("2024-06-03T10:30:00Z"));

        q.organizer_zone = Zone::utc();
        let utc = starts(&feasible_slots(&q));
        assert_eq!(utc.first(), Some(&ts("2024-06-03T04:00:00Z")));
        assert_eq!(utc.last(), Some(&ts("2024-06-03T10:00:00Z")));
        assert_eq!(utc.len(), 7);
    }

    /// Kathmandu is +05:45 and Chatham +12:45/+13:45: local half hours and hours, not
    /// UTC ones.
    #[test]
    fn forty_five_minute_offsets() {
        let window = iv("2024-06-03T00:00:00Z", "2024-06-04T00:00:00Z");
        let mut q = query(window, 60, 30, "Asia/Kathmandu");
        q.participants = vec![person(
            "Asia/Kathmandu",
            Some(WeeklyHours::standard()),
            vec![],
        )];
        let found = feasible_slots(&q);
        assert_eq!(found[0].slot.start(), ts("2024-06-03T03:15:00Z"));
        assert_eq!(
            found.last().unwrap().slot.start(),
            ts("2024-06-03T10:15:00Z")
        );
        for c in &found {
            assert!([0, 30].contains(&zone("Asia/Kathmandu").to_zoned(c.slot.start()).minute()));
        }

        let mut q = query(window, 30, 60, "Pacific/Chatham");
        q.participants = vec![person("UTC", None, vec![])];
        let found = feasible_slots(&q);
        assert_eq!(found.len(), 24);
        assert!(
            found
                .iter()
                .all(|c| c.slot.start().to_zoned(jiff::tz::TimeZone::UTC).minute() == 15)
        );
    }

    /// Lord Howe moves its clocks by 30 minutes: 09:00 there is 22:00Z the day before
    /// with +11:00, then 22:30Z with +10:30 after the first Sunday of April.
    #[test]
    fn lord_howe_half_hour_dst() {
        let z = "Australia/Lord_Howe";
        let mut q = query(
            iv("2024-04-05T00:00:00Z", "2024-04-09T00:00:00Z"),
            60,
            30,
            z,
        );
        q.participants = vec![person(z, Some(every_day("09:00-10:00")), vec![])];
        assert_eq!(
            starts(&feasible_slots(&q)),
            [
                "2024-04-05T22:00:00Z",
                "2024-04-06T22:30:00Z",
                "2024-04-07T22:30:00Z",
                "2024-04-08T22:30:00Z",
            ]
            .map(ts)
        );
        // Spring forward at 02:00 to 02:30: a 02:00–03:00 range starts at the moved-forward
        // 02:30 and lasts half an hour.
        let window = iv("2024-10-05T12:00:00Z", "2024-10-05T20:00:00Z");
        let work = only(Weekday::Sunday, "02:00-03:00").expand(&zone(z), window);
        assert_eq!(
            work,
            vec![iv("2024-10-05T15:30:00Z", "2024-10-05T16:00:00Z")]
        );
    }

    /// The same instant is Monday afternoon in Los Angeles and Tuesday morning in
    /// Auckland: Monday-only and Tuesday-only hours still meet.
    #[test]
    fn same_instant_different_days_auckland_los_angeles() {
        let mut q = query(
            iv("2024-06-02T00:00:00Z", "2024-06-09T00:00:00Z"),
            60,
            15,
            "America/Los_Angeles",
        );
        q.participants = vec![
            person(
                "America/Los_Angeles",
                Some(only(Weekday::Monday, "09:00-17:00")),
                vec![],
            ),
            person(
                "Pacific/Auckland",
                Some(only(Weekday::Tuesday, "09:00-17:00")),
                vec![],
            ),
        ];
        let found = feasible_slots(&q);
        // 14:00–17:00 PDT Monday = 09:00–12:00 NZST Tuesday: starts 21:00Z..=23:00Z.
        assert_eq!(found.len(), 9);
        assert_eq!(found[0].slot.start(), ts("2024-06-03T21:00:00Z"));
        assert_eq!(found[8].slot.start(), ts("2024-06-03T23:00:00Z"));
        let slot = found[0].slot;
        assert_eq!(
            slot.local_date(&zone("America/Los_Angeles")).weekday(),
            Weekday::Monday
        );
        assert_eq!(
            slot.local_date(&zone("Pacific/Auckland")).weekday(),
            Weekday::Tuesday
        );
    }

    /// A daily stand-up expanded by the caller blocks every occurrence, DST day included.
    #[test]
    fn recurring_busy_blocks_every_occurrence() {
        let ny = zone("America/New_York");
        let standups: Vec<Interval> = (4..=15)
            .map(|d| {
                let start = Date::new(2024, 3, d)
                    .unwrap()
                    .at(9, 30, 0, 0)
                    .to_zoned(ny.tz().clone())
                    .unwrap()
                    .timestamp();
                Interval::starting_at(start, mins(30)).unwrap()
            })
            .collect();
        let mut q = query(
            iv("2024-03-04T00:00:00Z", "2024-03-16T00:00:00Z"),
            30,
            15,
            "America/New_York",
        );
        q.participants = vec![person(
            "America/New_York",
            Some(weekdays("09:00-11:00")),
            standups.clone(),
        )];
        let found = feasible_slots(&q);
        assert!(!found.is_empty());
        for c in &found {
            assert!(
                !standups.iter().any(|s| s.overlaps(&c.slot)),
                "{:?}",
                c.slot
            );
        }
        // Each working day: 09:00 and 10:00..=10:30, never 09:15..=09:45.
        for c in &found {
            let t = ny.to_zoned(c.slot.start()).time();
            assert!(
                t == Time::constant(9, 0, 0, 0) || t >= Time::constant(10, 0, 0, 0),
                "{t}"
            );
        }
        assert_eq!(found.len(), 10 * 4);
    }

    /// Three hosts in three zones: only the intersection of their free time is offered.
    #[test]
    fn multi_host_intersection() {
        let day = |a: &str, b: &str| {
            iv(
                &format!("2024-06-03T{a}:00Z"),
                &format!("2024-06-03T{b}:00Z"),
            )
        };
        let mut q = query(day("00:00", "23:59"), 30, 15, "UTC");
        q.participants = vec![
            person(
                "Europe/Paris",
                None,
                vec![day("00:00", "10:00"), day("12:00", "23:59")],
            ),
            person(
                "America/New_York",
                None,
                vec![day("00:00", "11:00"), day("13:00", "23:59")],
            ),
            person(
                "Asia/Kolkata",
                None,
                vec![day("11:45", "23:59"), day("00:00", "10:30")],
            ),
        ];
        assert_eq!(
            starts(&find_slots(&q)),
            ["2024-06-03T11:00:00Z", "2024-06-03T11:15:00Z"].map(ts)
        );
    }

    /// Buffers keep the meeting away from neighbouring events on the right side.
    #[test]
    fn buffers_before_and_after() {
        let day = |a: &str, b: &str| {
            iv(
                &format!("2024-06-03T{a}:00Z"),
                &format!("2024-06-03T{b}:00Z"),
            )
        };
        let mut q = query(day("08:00", "13:00"), 60, 15, "UTC");
        let mut p = person("UTC", None, vec![day("10:00", "11:00")]);
        p.buffer_before = mins(15);
        p.buffer_after = mins(30);
        q.participants = vec![p];
        assert_eq!(
            starts(&feasible_slots(&q)),
            [
                "08:00", "08:15", "08:30", "11:15", "11:30", "11:45", "12:00"
            ]
            .map(|t| ts(&format!("2024-06-03T{t}:00Z")))
        );
    }

    /// A required participant who never works blocks everything; an optional one
    /// only lowers the score.
    #[test]
    fn empty_working_hours() {
        let window = iv("2024-06-03T00:00:00Z", "2024-06-05T00:00:00Z");
        let mut q = query(window, 30, 15, "UTC");
        q.participants = vec![person("UTC", Some(WeeklyHours::never()), vec![])];
        assert!(feasible_slots(&q).is_empty());
        q.participants[0].required = false;
        let found = feasible_slots(&q);
        assert_eq!(found.len(), 2 * 96 - 1);
        assert!(
            found
                .iter()
                .all(|c| c.optional_free == 0 && c.optional_total == 1)
        );
    }

    /// An optional participant free only in the afternoon pulls the proposals there.
    #[test]
    fn optional_participants_rank_first() {
        let window = iv("2024-06-03T00:00:00Z", "2024-06-04T00:00:00Z");
        let mut q = query(window, 60, 15, "UTC");
        let mut optional = person("UTC", Some(every_day("14:00-16:00")), vec![]);
        optional.required = false;
        q.participants = vec![
            person("UTC", Some(every_day("09:00-17:00")), vec![]),
            optional,
        ];
        let best = &find_slots(&q)[0];
        assert_eq!(best.optional_free, 1);
        assert_eq!(best.slot.start(), ts("2024-06-03T14:30:00Z"));
    }

    /// Two participants six hours apart with the same hours: the proposals sit in the
    /// middle of the overlap, and neither gets the edge of their day every time.
    #[test]
    fn fairness_between_symmetric_participants() {
        let window = iv("2024-06-03T00:00:00Z", "2024-06-08T00:00:00Z");
        let mut q = query(window, 30, 15, "Europe/Paris");
        q.limit = 5;
        let paris = zone("Europe/Paris");
        let ny = zone("America/New_York");
        q.participants = vec![
            person("Europe/Paris", Some(WeeklyHours::standard()), vec![]),
            person("America/New_York", Some(WeeklyHours::standard()), vec![]),
        ];
        let proposals = find_slots(&q);
        assert_eq!(proposals.len(), 5);
        let at_edge = |z: &Zone, c: &Candidate| {
            let start = z.to_zoned(c.slot.start()).time();
            let end = z.to_zoned(c.slot.end()).time();
            start == Time::constant(9, 0, 0, 0) || end == Time::constant(17, 0, 0, 0)
        };
        assert!(!proposals.iter().all(|c| at_edge(&paris, c)));
        assert!(!proposals.iter().all(|c| at_edge(&ny, c)));
        // Overlap 15:00–17:00 Paris = 09:00–11:00 New York: the fair middle is 15:45.
        for c in &proposals {
            assert_eq!(
                paris.to_zoned(c.slot.start()).time(),
                Time::constant(15, 45, 0, 0)
            );
            assert_eq!(c.comfort, 45.0);
        }
        // One per working day.
        let days: std::collections::BTreeSet<Date> = proposals
            .iter()
            .map(|c| c.slot.local_date(&paris))
            .collect();
        assert_eq!(days.len(), 5);
    }

    /// Earliest start and the window's end are honoured.
    #[test]
    fn earliest_start_and_window_end() {
        let window = iv("2024-06-03T09:00:00Z", "2024-06-03T11:00:00Z");
        let mut q = query(window, 60, 30, "UTC");
        q.earliest_start = ts("2024-06-03T09:10:00Z");
        assert_eq!(
            starts(&feasible_slots(&q)),
            ["2024-06-03T09:30:00Z", "2024-06-03T10:00:00Z"].map(ts)
        );
        q.limit = 0;
        assert!(find_slots(&q).is_empty());
    }
}
