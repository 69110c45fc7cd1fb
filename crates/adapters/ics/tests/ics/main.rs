//! The ICS adapter's integration tests: feeds, files, CalDAV against a real Radicale,
//! and the canary. One test binary for the crate.

mod caldav;
mod feeds;

use convene_domain::time::{Interval, Timestamp};

/// Marker strings put in titles, descriptions, locations and attendees: none may leave
/// the adapter.
pub const CANARY: &str = "CANARY";

/// `[start, end)` from RFC 3339 texts.
pub fn at(start: &str, end: &str) -> Interval {
    let s: Timestamp = start.parse().unwrap();
    let e: Timestamp = end.parse().unwrap();
    Interval::new(s, e).unwrap()
}

/// Sorted, for comparisons.
pub fn sorted(mut busy: Vec<Interval>) -> Vec<Interval> {
    busy.sort();
    busy.dedup();
    busy
}

/// Lines joined with CRLF, as iCalendar wants.
pub fn ics(lines: &[&str]) -> String {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

/// A calendar of one person exercising every rule: a weekly series across the end of
/// March DST change in Paris with an EXDATE, a moved occurrence and an RDATE; a daily
/// series with UNTIL; an all-day, a transparent and a cancelled event; a floating time;
/// an event in a zone defined only by its VTIMEZONE (US-like rules). Every event carries
/// canary titles, descriptions, locations and attendees.
pub fn rich_calendar() -> String {
    ics(&[
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Convene tests//EN",
        "BEGIN:VTIMEZONE",
        "TZID:Convene Test Time",
        "BEGIN:STANDARD",
        "DTSTART:19701101T020000",
        "TZOFFSETFROM:-0400",
        "TZOFFSETTO:-0500",
        "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:19700308T020000",
        "TZOFFSETFROM:-0500",
        "TZOFFSETTO:-0400",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
        // Weekly at 09:00 Paris: 08:00Z before the 29 March change, 07:00Z after.
        "BEGIN:VEVENT",
        "UID:weekly@convene.test",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;TZID=Europe/Paris:20260316T090000",
        "DTEND;TZID=Europe/Paris:20260316T100000",
        "RRULE:FREQ=WEEKLY;COUNT=5",
        "EXDATE;TZID=Europe/Paris:20260323T090000",
        "RDATE;TZID=Europe/Paris:20260325T170000",
        "SUMMARY:CANARY-title-weekly",
        "DESCRIPTION:CANARY-description",
        "LOCATION:CANARY-location",
        "ATTENDEE;CN=CANARY-attendee:mailto:canary-attendee@example.test",
        "END:VEVENT",
        // The 30 March occurrence moved to 14:00 Paris (12:00Z).
        "BEGIN:VEVENT",
        "UID:weekly@convene.test",
        "DTSTAMP:20260101T000000Z",
        "RECURRENCE-ID;TZID=Europe/Paris:20260330T090000",
        "DTSTART;TZID=Europe/Paris:20260330T140000",
        "DTEND;TZID=Europe/Paris:20260330T150000",
        "SUMMARY:CANARY-title-moved",
        "LOCATION:CANARY-location-moved",
        "END:VEVENT",
        // The 13 April occurrence cancelled.
        "BEGIN:VEVENT",
        "UID:weekly@convene.test",
        "DTSTAMP:20260101T000000Z",
        "RECURRENCE-ID;TZID=Europe/Paris:20260413T090000",
        "DTSTART;TZID=Europe/Paris:20260413T090000",
        "DTEND;TZID=Europe/Paris:20260413T100000",
        "STATUS:CANCELLED",
        "SUMMARY:CANARY-title-cancelled-occurrence",
        "END:VEVENT",
        // Daily until 20 March 08:00Z (inclusive): three occurrences.
        "BEGIN:VEVENT",
        "UID:daily@convene.test",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;TZID=Europe/Paris:20260318T090000",
        "DURATION:PT30M",
        "RRULE:FREQ=DAILY;UNTIL=20260320T080000Z",
        "SUMMARY:CANARY-title-daily",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:allday@convene.test",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;VALUE=DATE:20260317",
        "DTEND;VALUE=DATE:20260318",
        "SUMMARY:CANARY-title-allday",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:transparent@convene.test",
        "DTSTAMP:20260101T000000Z",
        "DTSTART:20260317T120000Z",
        "DTEND:20260317T130000Z",
        "TRANSP:TRANSPARENT",
        "SUMMARY:CANARY-title-transparent",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:cancelled@convene.test",
        "DTSTAMP:20260101T000000Z",
        "DTSTART:20260317T140000Z",
        "DTEND:20260317T150000Z",
        "STATUS:CANCELLED",
        "SUMMARY:CANARY-title-cancelled",
        "END:VEVENT",
        // Floating: 15:00 in the owner's zone (New York, UTC-4 after 8 March).
        "BEGIN:VEVENT",
        "UID:floating@convene.test",
        "DTSTAMP:20260101T000000Z",
        "DTSTART:20260318T150000",
        "DTEND:20260318T160000",
        "SUMMARY:CANARY-title-floating",
        "END:VEVENT",
        // 09:00 in a zone known only by its VTIMEZONE: daylight time since 8 March.
        "BEGIN:VEVENT",
        "UID:vtimezone@convene.test",
        "DTSTAMP:20260101T000000Z",
        "DTSTART;TZID=Convene Test Time:20260310T090000",
        "DTEND;TZID=Convene Test Time:20260310T100000",
        "SUMMARY:CANARY-title-vtimezone",
        "END:VEVENT",
        "END:VCALENDAR",
    ])
}

/// The window the rich calendar is read over.
pub fn window() -> Interval {
    at("2026-03-09T00:00:00Z", "2026-04-20T00:00:00Z")
}

/// What the rich calendar makes busy over [`window`], the owner being in New York.
pub fn expected() -> Vec<Interval> {
    sorted(vec![
        at("2026-03-10T13:00:00Z", "2026-03-10T14:00:00Z"),
        at("2026-03-16T08:00:00Z", "2026-03-16T09:00:00Z"),
        at("2026-03-18T08:00:00Z", "2026-03-18T08:30:00Z"),
        at("2026-03-18T19:00:00Z", "2026-03-18T20:00:00Z"),
        at("2026-03-19T08:00:00Z", "2026-03-19T08:30:00Z"),
        at("2026-03-20T08:00:00Z", "2026-03-20T08:30:00Z"),
        at("2026-03-25T16:00:00Z", "2026-03-25T17:00:00Z"),
        at("2026-03-30T12:00:00Z", "2026-03-30T13:00:00Z"),
        at("2026-04-06T07:00:00Z", "2026-04-06T08:00:00Z"),
    ])
}
