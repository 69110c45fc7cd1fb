//! The ICS adapter's parsing path on arbitrary text: a feed or `.ics` file
//! (`convene_ics::busy_intervals`, with and without an owner zone for floating times)
//! and a CalDAV multistatus reply (`convene_ics::calendar_data`, then each calendar it
//! holds). It must never panic, and every busy interval it returns lies inside the
//! window asked for.
#![no_main]

use std::sync::LazyLock;

use convene_domain::time::{Interval, Timestamp};
use convene_ics::{busy_intervals, calendar_data};
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;

/// Six weeks across both DST changes of spring 2026 (8 March in New York, 29 March in
/// Paris), as the adapter's own tests use.
static WINDOW: LazyLock<Interval> = LazyLock::new(|| {
    let at = |s: &str| s.parse::<Timestamp>().expect("a fixed, valid instant");
    Interval::new(at("2026-03-09T00:00:00Z"), at("2026-04-20T00:00:00Z"))
        .expect("a fixed, valid window")
});

static OWNER: LazyLock<TimeZone> =
    LazyLock::new(|| TimeZone::get("America/New_York").expect("a bundled zone"));

fn read(text: &str) {
    for owner in [None, Some(&*OWNER)] {
        if let Ok((busy, _stats)) = busy_intervals(text, *WINDOW, owner, &TimeZone::UTC) {
            for interval in busy {
                assert!(
                    WINDOW.contains(&interval),
                    "{interval:?} is outside the window"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    read(&text);
    if let Ok(calendars) = calendar_data(&text) {
        for calendar in calendars {
            read(&calendar);
        }
    }
});
