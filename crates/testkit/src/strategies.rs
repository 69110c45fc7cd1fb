//! Proptest strategies for the time values the slot engine and the stores take.

use convene_domain::time::{
    Interval, LocalRange, MeetingLength, SignedDuration, Time, Timestamp, Weekday, WeeklyHours,
    Zone,
};
use proptest::prelude::*;
use proptest::sample::select;

/// Zones with unusual rules: DST north and south, 30- and 45-minute offsets, a
/// 30-minute DST shift, and UTC.
pub const ZONES: [&str; 12] = [
    "UTC",
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Auckland",
];

/// The 2026 daylight-saving changes of Europe, the US, Lord Howe, New Zealand and
/// Chatham, as UTC instants.
pub const DST_CHANGES_2026: [&str; 8] = [
    "2026-03-08T07:00:00Z", // US spring forward (02:00 EST)
    "2026-03-29T01:00:00Z", // Europe spring forward
    "2026-04-04T14:00:00Z", // New Zealand and Chatham fall back (03:00 NZDT / 03:45 CHADT)
    "2026-04-04T15:00:00Z", // Lord Howe fall back (02:00 +11)
    "2026-09-26T14:00:00Z", // New Zealand and Chatham spring forward (02:00 NZST / 02:45 CHAST)
    "2026-10-03T15:30:00Z", // Lord Howe spring forward (02:00 +10:30)
    "2026-10-25T01:00:00Z", // Europe fall back
    "2026-11-01T06:00:00Z", // US fall back (02:00 EDT)
];

/// One of [`ZONES`].
pub fn zone() -> impl Strategy<Value = Zone> {
    select(ZONES.as_slice()).prop_map(|name| Zone::parse(name).expect("a bundled zone"))
}

fn quarter(q: u32) -> Option<Time> {
    // q in 0..96: quarter hours of the day; 96 is 24:00 (None).
    (q < 96).then(|| {
        let hour = i8::try_from(q / 4).expect("an hour");
        let minute = i8::try_from((q % 4) * 15).expect("a minute");
        Time::new(hour, minute, 0, 0).expect("a valid time")
    })
}

fn day_ranges() -> impl Strategy<Value = Vec<LocalRange>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => (1usize..=3).prop_flat_map(|n| prop::collection::btree_set(0u32..=96, 2 * n)).prop_map(|points| {
            let points: Vec<u32> = points.into_iter().collect();
            points
                .chunks(2)
                .map(|pair| {
                    let start = quarter(pair[0]).expect("a start before the last point");
                    match quarter(pair[1]) {
                        Some(end) => LocalRange::new(start, end).expect("start < end"),
                        None => LocalRange::until_midnight(start),
                    }
                })
                .collect()
        }),
    ]
}

/// Working hours: per day none, or 1–3 disjoint ranges on a 15-minute grid (ranges may
/// run to 24:00).
pub fn weekly_hours() -> impl Strategy<Value = WeeklyHours> {
    prop::array::uniform7(day_ranges()).prop_map(|days| {
        let weekdays = [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ];
        WeeklyHours::new(
            weekdays
                .into_iter()
                .zip(days)
                .flat_map(|(d, ranges)| ranges.into_iter().map(move |r| (d, r))),
        )
        .expect("disjoint ranges")
    })
}

/// A window of 1–14 days starting on a 15-minute boundary, usually within ten days
/// before one of [`DST_CHANGES_2026`] (so it often crosses it), otherwise anywhere in
/// 2026.
pub fn window_near_dst() -> impl Strategy<Value = Interval> {
    let near = (select(DST_CHANGES_2026.as_slice()), 0i64..(10 * 24 * 4)).prop_map(
        |(change, quarters_before)| {
            change.parse::<Timestamp>().expect("a valid instant")
                - SignedDuration::from_mins(15 * quarters_before)
        },
    );
    let anywhere = (0i64..(365 * 24 * 4)).prop_map(|q| {
        "2026-01-01T00:00:00Z"
            .parse::<Timestamp>()
            .expect("a valid instant")
            + SignedDuration::from_mins(15 * q)
    });
    (prop_oneof![3 => near, 1 => anywhere], 1i64..=14).prop_map(|(start, days)| {
        Interval::starting_at(start, SignedDuration::from_hours(24 * days))
            .expect("a positive window")
    })
}

/// 0–30 busy intervals inside `window`, of 5 minutes to 4 hours (cut at the window's
/// end), in any order, possibly overlapping.
pub fn busy_calendar(window: Interval) -> impl Strategy<Value = Vec<Interval>> {
    let minutes = window.duration().as_mins().max(1);
    let one = (0..minutes, 5i64..=240).prop_filter_map(
        "starts inside the window",
        move |(offset, length)| {
            let start = window.start() + SignedDuration::from_mins(offset);
            let end = (start + SignedDuration::from_mins(length)).min(window.end());
            Interval::new(start, end).ok()
        },
    );
    prop::collection::vec(one, 0..=30)
}

/// A meeting length: usually a common one (15 to 120 minutes), sometimes any whole
/// number of minutes from 5 to 12 hours.
pub fn meeting_length() -> impl Strategy<Value = MeetingLength> {
    prop_oneof![
        3 => select(vec![15i64, 20, 25, 30, 45, 50, 60, 90, 120]),
        1 => 5i64..=720,
    ]
    .prop_map(|m| MeetingLength::from_minutes(m).expect("5 to 720 minutes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn dst_changes_are_real() {
        let cases = [
            (0, "America/New_York"),
            (1, "Europe/Paris"),
            (2, "Pacific/Auckland"),
            (3, "Australia/Lord_Howe"),
            (4, "Pacific/Chatham"),
            (5, "Australia/Lord_Howe"),
            (6, "Europe/Paris"),
            (7, "America/New_York"),
        ];
        for (i, zone) in cases {
            let zone = Zone::parse(zone).unwrap();
            let t: Timestamp = DST_CHANGES_2026[i].parse().unwrap();
            let before = zone.to_zoned(t - SignedDuration::from_secs(1)).offset();
            let after = zone.to_zoned(t).offset();
            assert_ne!(before, after, "{} in {}", DST_CHANGES_2026[i], zone.name());
        }
    }

    proptest! {
        #[test]
        fn busy_stays_inside_the_window(window in window_near_dst(), seed in any::<u64>()) {
            let _ = seed;
            let mut runner = TestRunner::deterministic();
            let busy = busy_calendar(window).new_tree(&mut runner).unwrap().current();
            prop_assert!(busy.len() <= 30);
            for b in busy {
                prop_assert!(window.contains(&b));
            }
        }

        #[test]
        fn hours_and_zones_are_valid(hours in weekly_hours(), zone in zone(), length in meeting_length()) {
            let window = Interval::starting_at("2026-03-02T00:00:00Z".parse().unwrap(), SignedDuration::from_hours(24 * 7)).unwrap();
            let _ = hours.expand(&zone, window);
            prop_assert!((5..=720).contains(&length.minutes()));
        }
    }
}
