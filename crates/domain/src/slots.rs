//! The slot engine: which meeting times satisfy every required participant, and which of
//! them to propose.
//!
//! # Hard constraints
//!
//! A slot `[s, s + duration)` is feasible when
//! - it lies inside the query's window and `s >= earliest_start`;
//! - `s` is on the grid: the organizer's local wall clock at `s` reads a whole multiple of
//!   the granularity (minutes and seconds; sub-second part zero), so +05:30 or +05:45
//!   zones get :00/:15/:30/:45 local starts, not UTC-aligned ones. Only real instants
//!   are on the grid: a local time skipped by a DST gap never is, and in a fold both
//!   occurrences of a local time are (they are different instants);
//! - for every required participant, no busy interval overlaps
//!   `[s - buffer_before, s + duration + buffer_after)`, and, if they have working hours,
//!   the slot lies inside one of their working intervals ([`WeeklyHours::expand`]; a
//!   required participant with no working time at all makes every slot infeasible).
//!
//! # How
//!
//! Sort and sweep, O(N log N) in the number of busy and working intervals, never a
//! minute-by-minute scan: every required participant's busy intervals are widened by
//! their buffers (`[b.start - buffer_after, b.end + buffer_before)` overlaps the slot
//! exactly when `b` overlaps the buffered slot), the complement of each distinct
//! (zone, working hours) pair's working intervals is added once (many participants share
//! both, so expansion, which is heavy on time-zone lookups, is cached per call), and the
//! lot is sorted and merged once. The gaps of the merged list within the window are the
//! free time; grid starts are generated inside each gap long enough, segment by segment
//! of the organizer's UTC offset. Candidates come out chronologically, so scoring them
//! against each optional participant's busy list and each working-hours list is a
//! two-pointer walk.
//!
//! # Ranking
//!
//! See [`Candidate::comfort`] and [`Candidate::score`]; [`find_slots`] spreads the
//! proposals over the organizer's local days.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use jiff::tz::TimeZone;

use crate::time::{
    Granularity, Interval, MeetingLength, SignedDuration, Timestamp, WeeklyHours, Zone,
    merge_in_place, saturating_add, saturating_sub,
};

/// The comfort (minutes from the nearer edge of a working block) past which a slot is
/// considered fully comfortable: 4 hours, the middle of an 8-hour day.
pub const COMFORT_CAP_MINUTES: u32 = 240;

/// Weight of one free optional participant in [`Candidate::score`]: more than any comfort.
const OPTIONAL_WEIGHT: f64 = 1000.0;

/// One participant's availability, as the engine sees it. Only instants: no calendar
/// content.
#[derive(Clone, Debug)]
pub struct Availability {
    /// Whether the meeting can only happen when this person is free.
    pub required: bool,
    /// The person's time zone, in which their working hours are read.
    pub zone: Zone,
    /// `None`: no working-hours constraint or score (e.g. a guest whose hours are unknown).
    pub working_hours: Option<WeeklyHours>,
    /// Busy times, in any order, possibly overlapping.
    pub busy: Vec<Interval>,
    /// Free time this person needs before a meeting (negative counts as zero).
    pub buffer_before: SignedDuration,
    /// Free time this person needs after a meeting (negative counts as zero).
    pub buffer_after: SignedDuration,
}

/// What to search for.
#[derive(Clone, Debug)]
pub struct SlotQuery {
    /// Every slot lies inside this window.
    pub window: Interval,
    /// The meeting's length.
    pub duration: MeetingLength,
    /// Slot starts are aligned on this grid in the organizer's local time.
    pub granularity: Granularity,
    /// The organizer's zone: the grid, and the days proposals are spread over.
    pub organizer_zone: Zone,
    /// No slot starts before this instant (now plus minimum notice, from the caller).
    pub earliest_start: Timestamp,
    /// Everyone invited, the organizer included if their calendar counts.
    pub participants: Vec<Availability>,
    /// How many proposals [`find_slots`] returns at most.
    pub limit: usize,
}

/// A slot satisfying every hard constraint, with its ranking measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The meeting time.
    pub slot: Interval,
    /// Optional participants free at that time (buffers included) and, if their working
    /// hours are known, inside them.
    pub optional_free: usize,
    /// Optional participants in the query.
    pub optional_total: usize,
    /// The fairness measure, in whole minutes, `0 ..= COMFORT_CAP_MINUTES`: over every
    /// attending participant with working hours (each required one, and each optional
    /// one counted in `optional_free`), the minimum of the minutes between the slot and
    /// the nearer edge of the working block that contains it, capped at
    /// [`COMFORT_CAP_MINUTES`]. Maximising it means nobody always gets the first or the
    /// last hour of their day. [`COMFORT_CAP_MINUTES`] when no attending participant has
    /// working hours.
    pub comfort: f64,
    /// The rank key, higher is better: `optional_free * 1000 + comfort`, so more free
    /// optional participants always wins, then comfort; ties go to the earlier slot.
    pub score: f64,
}

/// Ranked proposals: at most `query.limit` feasible slots, spread over the organizer's
/// local days.
///
/// Each day's slots are ranked by [`Candidate::score`] (then earliness), days by their
/// best slot. Proposals are taken round-robin, one per day and round, in day order, each
/// not overlapping a proposal already taken that day; when that runs out, the remaining
/// slots fill in by rank. The result is in that order (best of the best day first).
/// Every proposal is one of [`feasible_slots`].
///
/// # Example
///
/// Ada works 09:00–17:00 in Paris, Raj 09:00–17:00 in Kolkata (UTC+05:30), and Raj is
/// busy at 10:00 UTC. Their working days overlap 08:00–11:30 UTC in winter:
///
/// ```
/// use convene_domain::slots::{find_slots, Availability, SlotQuery};
/// use convene_domain::time::{Granularity, Interval, MeetingLength, SignedDuration, WeeklyHours, Zone};
///
/// let t = |s: &str| s.parse().unwrap();
/// let person = |zone: &str, busy: Vec<Interval>| Availability {
///     required: true,
///     zone: Zone::parse(zone).unwrap(),
///     working_hours: Some(WeeklyHours::standard()),
///     busy,
///     buffer_before: SignedDuration::ZERO,
///     buffer_after: SignedDuration::ZERO,
/// };
/// let query = SlotQuery {
///     window: Interval::new(t("2026-01-12T00:00:00Z"), t("2026-01-13T00:00:00Z")).unwrap(),
///     duration: MeetingLength::from_minutes(60).unwrap(),
///     granularity: Granularity::from_minutes(30).unwrap(),
///     organizer_zone: Zone::parse("Europe/Paris").unwrap(),
///     earliest_start: t("2026-01-12T00:00:00Z"),
///     participants: vec![
///         person("Europe/Paris", vec![]),
///         person("Asia/Kolkata", vec![Interval::new(t("2026-01-12T10:00:00Z"), t("2026-01-12T11:00:00Z")).unwrap()]),
///     ],
///     limit: 3,
/// };
/// let proposals = find_slots(&query);
/// let starts: Vec<String> = proposals.iter().map(|c| c.slot.start().to_string()).collect();
/// // Every proposal fits both working days and avoids Raj's meeting; the best one sits
/// // deepest inside both days (10:00 in Paris, 14:30 in Kolkata).
/// assert!(starts.iter().all(|s| ["2026-01-12T08:00:00Z", "2026-01-12T08:30:00Z", "2026-01-12T09:00:00Z"].contains(&s.as_str())));
/// assert_eq!(proposals[0].slot.start().to_string(), "2026-01-12T09:00:00Z");
/// ```
pub fn find_slots(query: &SlotQuery) -> Vec<Candidate> {
    if query.limit == 0 {
        return Vec::new();
    }
    let scored = Engine::run(query);
    select_spread(&scored, query.limit)
        .into_iter()
        .map(|i| scored.to_candidate(i))
        .collect()
}

/// Every feasible grid-aligned slot, in chronological order and unranked (the measures
/// are filled in), under the same hard constraints as [`find_slots`].
pub fn feasible_slots(query: &SlotQuery) -> Vec<Candidate> {
    let scored = Engine::run(query);
    (0..scored.starts.len())
        .map(|i| scored.to_candidate(i))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------

/// Feasible slots and their measures, as parallel arrays in chronological order.
struct Scored {
    starts: Vec<Timestamp>,
    ends: Vec<Timestamp>,
    /// The organizer's local day number (days since 1970-01-01 on the local clock).
    days: Vec<i64>,
    optional_free: Vec<u32>,
    comfort: Vec<u32>,
    optional_total: usize,
}

impl Scored {
    fn empty(optional_total: usize) -> Self {
        Scored {
            starts: Vec::new(),
            ends: Vec::new(),
            days: Vec::new(),
            optional_free: Vec::new(),
            comfort: Vec::new(),
            optional_total,
        }
    }

    /// The rank key as an integer (exact, so ranking is independent of input order).
    fn key(&self, i: usize) -> u64 {
        u64::from(self.optional_free[i]) * 1000 + u64::from(self.comfort[i])
    }

    fn end(&self, i: usize) -> Timestamp {
        self.ends[i]
    }

    fn to_candidate(&self, i: usize) -> Candidate {
        let comfort = f64::from(self.comfort[i]);
        Candidate {
            slot: Interval::new_unchecked(self.starts[i], self.end(i)),
            optional_free: self.optional_free[i] as usize,
            optional_total: self.optional_total,
            comfort,
            score: f64::from(self.optional_free[i]) * OPTIONAL_WEIGHT + comfort,
        }
    }
}

/// FNV-1a: the cache's keys are small and not attacker-chosen in any way that matters
/// (a collision costs a comparison), and SipHash showed up in profiles.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Expanded working intervals per distinct (zone, hours), computed once per call.
struct HoursCache<'q> {
    index: HashMap<(&'q str, &'q WeeklyHours), usize, BuildHasherDefault<Fnv>>,
    lists: Vec<Vec<Interval>>,
    span: Interval,
}

impl<'q> HoursCache<'q> {
    fn key(&mut self, zone: &'q Zone, hours: &'q WeeklyHours) -> usize {
        if let Some(&k) = self.index.get(&(zone.name(), hours)) {
            return k;
        }
        let mut list = Vec::new();
        hours.expand_into(zone.tz(), self.span, &mut list);
        self.lists.push(list);
        let k = self.lists.len() - 1;
        self.index.insert((zone.name(), hours), k);
        k
    }
}

struct Engine;

impl Engine {
    fn run(q: &SlotQuery) -> Scored {
        let duration = q.duration.get();
        let optional_total = q.participants.iter().filter(|p| !p.required).count();
        let lo = q.window.start().max(q.earliest_start);
        let hi = q.window.end();
        let Ok(search) = Interval::starting_at(lo, duration) else {
            return Scored::empty(optional_total);
        };
        if search.end() > hi {
            return Scored::empty(optional_total);
        }
        // lo + duration <= hi, so lo < hi.
        let span = Interval::new_unchecked(lo, hi);

        let mut cache = HoursCache {
            index: HashMap::default(),
            lists: Vec::new(),
            span,
        };

        // 1. Everything that blocks a required participant, sorted and merged once.
        let total_busy: usize = q
            .participants
            .iter()
            .filter(|p| p.required)
            .map(|p| p.busy.len())
            .sum();
        let mut blocked: Vec<Interval> = Vec::with_capacity(total_busy + 64);
        let mut required_keys: Vec<usize> = Vec::new();
        for p in q.participants.iter().filter(|p| p.required) {
            if let Some(hours) = &p.working_hours {
                let k = cache.key(&p.zone, hours);
                if !required_keys.contains(&k) {
                    required_keys.push(k);
                }
            }
            push_widened(&mut blocked, p, span);
        }
        for &k in &required_keys {
            push_complement(&mut blocked, &cache.lists[k], span);
        }
        merge_in_place(&mut blocked);

        // 2. Grid starts inside the free gaps.
        let grid = Grid::new(q.organizer_zone.tz(), span, q.granularity);
        let mut starts = Vec::new();
        let mut days = Vec::new();
        let mut cursor = lo;
        // Each blocked interval (and a sentinel at `hi`) closes the gap that `cursor` opened.
        for (b_start, b_end) in blocked
            .iter()
            .map(|b| (b.start(), b.end()))
            .chain(std::iter::once((hi, hi)))
        {
            if b_start > cursor {
                let last = saturating_sub(b_start.min(hi), duration);
                grid.starts_between(cursor, last, &mut starts, &mut days);
            }
            cursor = cursor.max(b_end);
            if cursor >= hi {
                break;
            }
        }

        let n = starts.len();
        let ends: Vec<Timestamp> = starts
            .iter()
            .map(|&s| saturating_add(s, duration))
            .collect();
        let mut scored = Scored {
            starts,
            ends,
            days,
            optional_free: vec![0; n],
            comfort: vec![COMFORT_CAP_MINUTES; n],
            optional_total,
        };
        if n == 0 {
            return scored;
        }

        // 3. Comfort of the required participants: one walk per distinct working list.
        let Scored {
            starts,
            ends,
            optional_free,
            comfort,
            ..
        } = &mut scored;
        for &k in &required_keys {
            walk_working(starts, ends, &cache.lists[k], |i, d| {
                // Inside by construction; `d` is None only if that invariant broke.
                scored_min(&mut comfort[i], d.unwrap_or(0));
            });
        }

        // 4. Optional participants: free (buffers included) and inside their hours.
        let mut own: Vec<Interval> = Vec::new();
        let mut free = vec![false; n];
        let mut dist: Vec<Option<u32>> = vec![None; n];
        for p in q.participants.iter().filter(|p| !p.required) {
            own.clear();
            push_widened(&mut own, p, span);
            merge_in_place(&mut own);
            let mut j = 0usize;
            for (i, f) in free.iter_mut().enumerate() {
                let (s, e) = (starts[i], ends[i]);
                while j < own.len() && own[j].end() <= s {
                    j += 1;
                }
                *f = !(j < own.len() && own[j].start() < e);
            }
            match &p.working_hours {
                Some(hours) => {
                    let k = cache.key(&p.zone, hours);
                    walk_working(starts, ends, &cache.lists[k], |i, d| dist[i] = d);
                    for i in 0..n {
                        if let (true, Some(d)) = (free[i], dist[i]) {
                            optional_free[i] += 1;
                            scored_min(&mut comfort[i], d);
                        }
                    }
                }
                None => {
                    for (count, &f) in optional_free.iter_mut().zip(&free) {
                        *count += u32::from(f);
                    }
                }
            }
        }
        scored
    }
}

fn scored_min(slot: &mut u32, d: u32) {
    if d < *slot {
        *slot = d;
    }
}

/// Pushes `p`'s busy intervals that can matter inside `span`, widened so that a widened
/// interval overlaps a slot exactly when the original overlaps the buffered slot.
fn push_widened(out: &mut Vec<Interval>, p: &Availability, span: Interval) {
    let (lo, hi) = (span.start(), span.end());
    if p.buffer_before <= SignedDuration::ZERO && p.buffer_after <= SignedDuration::ZERO {
        out.extend(
            p.busy
                .iter()
                .filter(|b| b.end() > lo && b.start() < hi)
                .copied(),
        );
    } else {
        out.extend(
            p.busy
                .iter()
                .map(|b| b.widen(p.buffer_after, p.buffer_before))
                .filter(|b| b.end() > lo && b.start() < hi),
        );
    }
}

/// Pushes `span` minus `working` (sorted, disjoint).
fn push_complement(out: &mut Vec<Interval>, working: &[Interval], span: Interval) {
    let mut cursor = span.start();
    for w in working {
        if w.start() > cursor {
            out.push(Interval::new_unchecked(cursor, w.start().min(span.end())));
        }
        cursor = cursor.max(w.end());
        if cursor >= span.end() {
            return;
        }
    }
    if cursor < span.end() {
        out.push(Interval::new_unchecked(cursor, span.end()));
    }
}

/// Calls `f(i, Some(minutes to the nearer edge, capped))` for each candidate inside a
/// working interval of `working` (sorted, disjoint), `f(i, None)` for the others.
fn walk_working(
    starts: &[Timestamp],
    ends: &[Timestamp],
    working: &[Interval],
    mut f: impl FnMut(usize, Option<u32>),
) {
    let mut j = 0usize;
    for (i, (&s, &e)) in starts.iter().zip(ends).enumerate() {
        // Ends grow with starts (equal durations), so the containing interval, if any,
        // is the first one not ending before `e`.
        while j < working.len() && working[j].end() < e {
            j += 1;
        }
        let d = working.get(j).filter(|w| w.start() <= s).map(|w| {
            let before = w.start().duration_until(s).as_mins();
            let after = e.duration_until(w.end()).as_mins();
            let m = before.min(after).clamp(0, i64::from(COMFORT_CAP_MINUTES));
            // Clamped to 0..=COMFORT_CAP_MINUTES, so it fits.
            u32::try_from(m).unwrap_or(COMFORT_CAP_MINUTES)
        });
        f(i, d);
    }
}

// ---------------------------------------------------------------------------------------
// The grid
// ---------------------------------------------------------------------------------------

/// The organizer's UTC offset over the search span, as constant-offset segments, and the
/// step: slot starts are the instants whose local clock is a multiple of the step.
struct Grid {
    /// `(first second of the segment, offset in seconds)`, sorted; the first starts at or
    /// before the span.
    segments: Vec<(i64, i64)>,
    step: i64,
}

const SECONDS_PER_DAY: i64 = 86_400;

/// The whole seconds at or after `t`.
fn ceil_second(t: Timestamp) -> i64 {
    t.as_second() + i64::from(t.subsec_nanosecond() > 0)
}

/// The whole seconds at or before `t`.
fn floor_second(t: Timestamp) -> i64 {
    t.as_second() - i64::from(t.subsec_nanosecond() < 0)
}

impl Grid {
    fn new(tz: &TimeZone, span: Interval, granularity: Granularity) -> Self {
        let mut segments = vec![(
            floor_second(span.start()),
            i64::from(tz.to_offset(span.start()).seconds()),
        )];
        for tr in tz.following(span.start()) {
            let at = tr.timestamp();
            if at >= span.end() {
                break;
            }
            let sec = floor_second(at);
            let offset = i64::from(tr.offset().seconds());
            if let Some(last) = segments.last_mut()
                && last.0 >= sec
            {
                last.1 = offset;
                continue;
            }
            segments.push((sec, offset));
        }
        Grid {
            segments,
            step: granularity.minutes() * 60,
        }
    }

    /// Pushes every grid start in `[first, last]`, with its organizer-local day number.
    fn starts_between(
        &self,
        first: Timestamp,
        last: Timestamp,
        starts: &mut Vec<Timestamp>,
        days: &mut Vec<i64>,
    ) {
        if last < first {
            return;
        }
        let (a, b) = (ceil_second(first), floor_second(last));
        // The segment holding `a`: the last one starting at or before it.
        let mut k = self
            .segments
            .partition_point(|&(start, _)| start <= a)
            .saturating_sub(1);
        while k < self.segments.len() {
            let (seg_start, offset) = self.segments[k];
            let seg_end = self.segments.get(k + 1).map_or(i64::MAX, |s| s.0);
            if seg_start > b {
                break;
            }
            let from = a.max(seg_start);
            let local = from.saturating_add(offset);
            let mut s = local
                .div_euclid(self.step)
                .saturating_add(i64::from(local.rem_euclid(self.step) != 0))
                .saturating_mul(self.step)
                .saturating_sub(offset);
            while s <= b && s < seg_end {
                if let Ok(t) = Timestamp::from_second(s) {
                    starts.push(t);
                    days.push((s + offset).div_euclid(SECONDS_PER_DAY));
                }
                s += self.step;
            }
            k += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Spreading proposals over days
// ---------------------------------------------------------------------------------------

/// Indices of the proposals, in proposal order (see [`find_slots`]).
fn select_spread(scored: &Scored, limit: usize) -> Vec<usize> {
    let n = scored.starts.len();
    if n == 0 || limit == 0 {
        return Vec::new();
    }
    // Rank order: key descending, then chronological (indices are chronological).
    let by_rank = |a: &usize, b: &usize| scored.key(*b).cmp(&scored.key(*a)).then(a.cmp(b));

    // Group by local day (a fold at midnight can make days non-monotonic: sort).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| scored.days[*a].cmp(&scored.days[*b]).then(by_rank(a, b)));
    let mut groups: Vec<&[usize]> = order
        .chunk_by(|a, b| scored.days[*a] == scored.days[*b])
        .collect();
    // Days by their best slot (each group's first).
    groups.sort_by(|a, b| by_rank(&a[0], &b[0]));

    let mut taken = vec![false; n];
    let mut picked: Vec<usize> = Vec::with_capacity(limit.min(n));
    let mut per_day: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    let mut cursors = vec![0usize; groups.len()];
    // Round robin over days, avoiding overlap with the day's earlier proposals.
    'rounds: loop {
        let mut progressed = false;
        for (g, group) in groups.iter().enumerate() {
            if picked.len() >= limit {
                break 'rounds;
            }
            while cursors[g] < group.len() {
                let i = group[cursors[g]];
                cursors[g] += 1;
                let clash = per_day[g]
                    .iter()
                    .any(|&p| scored.starts[p] < scored.end(i) && scored.starts[i] < scored.end(p));
                if !clash {
                    taken[i] = true;
                    per_day[g].push(i);
                    picked.push(i);
                    progressed = true;
                    break;
                }
            }
        }
        if !progressed {
            break;
        }
    }
    // Fill by rank.
    if picked.len() < limit {
        let mut rest: Vec<usize> = (0..n).filter(|&i| !taken[i]).collect();
        rest.sort_by(by_rank);
        picked.extend(rest.into_iter().take(limit - picked.len()));
    }
    picked
}
