//! Time zones of an iCalendar document: `TZID` → a jiff [`TimeZone`].
//!
//! A `TZID` that is an IANA name is read from the bundled IANA database, even when the
//! document carries a VTIMEZONE for it (IANA's history is more complete than any
//! VTIMEZONE). Otherwise the document's VTIMEZONE rules are used: the latest STANDARD
//! and DAYLIGHT observances, whose yearly `BYMONTH`/`BYDAY` rules become a POSIX TZ
//! rule. Without a usable VTIMEZONE, a Windows zone name (Outlook) is mapped through
//! CLDR, and a `/vendor/…/Area/City` name is tried by its last two parts. What remains
//! unknown is read in the calendar owner's zone, and counted in the logs.

use std::collections::HashMap;

use icalendar::parser::Component;
use jiff::tz::{Offset, TimeZone};

use crate::text::{param, prop, props};

/// The zones a document defines, by `TZID`.
#[derive(Debug, Default)]
pub(crate) struct Zones {
    defined: HashMap<String, TimeZone>,
}

impl Zones {
    /// The VTIMEZONEs among `components` (searched one level deep).
    pub(crate) fn from_components(components: &[Component<'_>]) -> Self {
        let mut defined = HashMap::new();
        for c in components {
            if c.name.as_str().eq_ignore_ascii_case("VTIMEZONE") {
                let Some(tzid) = prop(c, "TZID") else {
                    continue;
                };
                if let Some(tz) = from_vtimezone(c) {
                    defined.insert(tzid.to_owned(), tz);
                }
            }
        }
        Self { defined }
    }

    /// The zone `tzid` names, if it can be known.
    pub(crate) fn resolve(&self, tzid: &str) -> Option<TimeZone> {
        let tzid = tzid.trim().trim_matches('"');
        if let Ok(tz) = TimeZone::get(tzid) {
            return Some(tz);
        }
        if let Some(tz) = self.defined.get(tzid) {
            return Some(tz.clone());
        }
        if let Some(zone) = convene_http::windows_zones::zone(tzid) {
            return Some(zone.tz().clone());
        }
        // "/mozilla.org/20050126_1/Europe/Paris" and the like.
        let parts: Vec<&str> = tzid.split('/').filter(|p| !p.is_empty()).collect();
        (2..=3)
            .filter(|&n| parts.len() >= n)
            .find_map(|n| TimeZone::get(&parts[parts.len() - n..].join("/")).ok())
    }
}

/// A UTC offset property (`+0100`, `-053000`) in seconds.
fn offset_seconds(value: &str) -> Option<i32> {
    let value = value.trim();
    let (sign, digits) = match value.as_bytes().first()? {
        b'+' => (1, &value[1..]),
        b'-' => (-1, &value[1..]),
        _ => (1, value),
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<i32>().ok());
    let secs = n(0..2)? * 3600 + n(2..4)? * 60 + if digits.len() == 6 { n(4..6)? } else { 0 };
    Some(sign * secs)
}

/// One STANDARD or DAYLIGHT observance.
struct Observance {
    start: String,
    to: i32,
    rule: Option<String>,
}

fn observances(vtimezone: &Component<'_>, kind: &str) -> Vec<Observance> {
    vtimezone
        .components
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case(kind))
        .filter_map(|c| {
            Some(Observance {
                start: prop(c, "DTSTART")?.to_owned(),
                to: offset_seconds(prop(c, "TZOFFSETTO")?)?,
                rule: props(c, "RRULE").next().map(|p| p.val.as_str().to_owned()),
            })
        })
        .collect()
}

/// The observance in force last: a rule without `UNTIL` first, then the latest start.
fn latest(mut all: Vec<Observance>) -> Option<Observance> {
    all.sort_by(|a, b| {
        let open = |o: &Observance| o.rule.as_deref().is_some_and(|r| !r.contains("UNTIL"));
        open(a).cmp(&open(b)).then(a.start.cmp(&b.start))
    });
    all.pop()
}

/// `BYMONTH=3;BYDAY=-1SU` at `02:00:00` as POSIX `M3.5.0/02:00:00`.
fn posix_rule(rule: &str, start: &str) -> Option<String> {
    // A rule is ASCII (RFC 5545); only then can it be cut at byte offsets below.
    if !rule.is_ascii() {
        return None;
    }
    let mut month = None;
    let mut byday = None;
    for part in rule.split(';') {
        let (k, v) = part.split_once('=')?;
        match k.to_ascii_uppercase().as_str() {
            "FREQ" if !v.eq_ignore_ascii_case("YEARLY") => return None,
            "BYMONTH" => month = v.parse::<u8>().ok(),
            "BYDAY" => byday = Some(v.to_ascii_uppercase()),
            "BYMONTHDAY" | "BYSETPOS" | "BYYEARDAY" | "BYWEEKNO" => return None,
            _ => {}
        }
    }
    let month = month.filter(|m| (1..=12).contains(m))?;
    let byday = byday?;
    if byday.contains(',') || byday.len() < 2 {
        return None;
    }
    let (nth, day) = byday.split_at(byday.len() - 2);
    let week = match nth {
        "-1" => 5,
        "" | "+1" | "1" => 1,
        n => n
            .trim_start_matches('+')
            .parse::<u8>()
            .ok()
            .filter(|w| (1..=4).contains(w))?,
    };
    let weekday = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]
        .iter()
        .position(|d| *d == day)?;
    let time = start.split_once('T').map(|(_, t)| t)?;
    // Six ASCII digits, or no rule: slicing other text could cut a character in two.
    let hhmmss = time
        .get(0..6)
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))?;
    Some(format!(
        "M{month}.{week}.{weekday}/{}:{}:{}",
        &hhmmss[0..2],
        &hhmmss[2..4],
        &hhmmss[4..6]
    ))
}

fn posix_offset(utc_offset: i32) -> String {
    // POSIX counts west of Greenwich as positive.
    let west = -utc_offset;
    let sign = if west < 0 { "-" } else { "+" };
    let a = west.abs();
    format!("{sign}{:02}:{:02}:{:02}", a / 3600, (a % 3600) / 60, a % 60)
}

/// A VTIMEZONE's current rules as a jiff zone.
fn from_vtimezone(vtimezone: &Component<'_>) -> Option<TimeZone> {
    let standard = latest(observances(vtimezone, "STANDARD"));
    let daylight = latest(observances(vtimezone, "DAYLIGHT"));
    let fixed = |o: &Observance| Offset::from_seconds(o.to).ok().map(TimeZone::fixed);
    match (standard, daylight) {
        (Some(std), Some(dst)) => {
            let rules = std
                .rule
                .as_deref()
                .and_then(|r| posix_rule(r, &std.start))
                .zip(dst.rule.as_deref().and_then(|r| posix_rule(r, &dst.start)));
            match rules {
                Some((to_std, to_dst)) => {
                    let posix = format!(
                        "STD{}DST{},{to_dst},{to_std}",
                        posix_offset(std.to),
                        posix_offset(dst.to)
                    );
                    TimeZone::posix(&posix).ok().or_else(|| fixed(&std))
                }
                None => fixed(&std),
            }
        }
        (Some(only), None) | (None, Some(only)) => fixed(&only),
        (None, None) => None,
    }
}

/// A `TZID` parameter of a property.
pub(crate) fn tzid<'a>(property: &'a icalendar::parser::Property<'_>) -> Option<&'a str> {
    param(property, "TZID")
}

#[cfg(test)]
mod tests {
    use icalendar::parser::{read_calendar, unfold};
    use jiff::civil::date;

    use super::*;

    const OUTLOOK: &str = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\n\
BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n\
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n\
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VTIMEZONE\r\nTZID:Custom Fixed\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n\
TZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";

    #[test]
    fn vtimezone_rules_become_zones() {
        let text = unfold(OUTLOOK);
        let cal = read_calendar(&text).unwrap();
        let zones = Zones::from_components(&cal.components);
        let w = zones.defined.get("W. Europe Standard Time").unwrap();
        let offset = |tz: &TimeZone, d: jiff::civil::DateTime| {
            tz.to_ambiguous_zoned(d)
                .compatible()
                .unwrap()
                .offset()
                .seconds()
        };
        assert_eq!(offset(w, date(2026, 1, 15).at(12, 0, 0, 0)), 3600);
        assert_eq!(offset(w, date(2026, 7, 15).at(12, 0, 0, 0)), 7200);
        // The change happens on the last Sunday of March at 02:00.
        assert_eq!(offset(w, date(2026, 3, 29).at(1, 59, 0, 0)), 3600);
        assert_eq!(offset(w, date(2026, 3, 29).at(3, 0, 0, 0)), 7200);
        let fixed = zones.resolve("Custom Fixed").unwrap();
        assert_eq!(offset(&fixed, date(2026, 7, 15).at(12, 0, 0, 0)), 19800);
    }

    #[test]
    fn names_resolve_by_iana_windows_and_vendor_prefix() {
        let zones = Zones::default();
        assert!(zones.resolve("Europe/Paris").is_some());
        assert!(zones.resolve("Romance Standard Time").is_some());
        assert!(
            zones
                .resolve("/mozilla.org/20050126_1/America/New_York")
                .is_some()
        );
        assert!(zones.resolve("Somewhere Else").is_none());
        assert_eq!(offset_seconds("-0530"), Some(-19800));
        assert_eq!(offset_seconds("+013000"), Some(5400));
        assert_eq!(offset_seconds("1"), None);
    }

    /// Found by the `ics_feed` fuzz target (their inputs are kept in
    /// `fuzz/seeds/ics_feed/`): an observance starting at `T02000` and a replacement
    /// character, and one with `BYDAY=1S` and a replacement character, were sliced inside
    /// that character and panicked. Such rules are unreadable now: the zone falls back to
    /// the fixed standard offset.
    #[test]
    fn observance_rules_and_times_that_are_not_ascii_give_no_rule() {
        let rule = "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU";
        assert_eq!(
            posix_rule("FREQ=YEARLY;BYMONTH=11;BYDAY=1S\u{fffd}", "19701101T020000"),
            None
        );
        assert_eq!(posix_rule(rule, "19701101T02000\u{fffd}"), None);
        assert_eq!(posix_rule(rule, "19701101T0200"), None);
        assert_eq!(
            posix_rule(rule, "19701101T020000"),
            Some("M11.1.0/02:00:00".to_owned())
        );
    }
}
