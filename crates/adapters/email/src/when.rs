//! How times read in emails: in a named zone, with its abbreviation, e.g.
//! `Tue 31 Mar 2026, 13:30–14:15 CEST (Europe/Paris)`.

use convene_domain::jiff::Zoned;
use convene_domain::time::{Interval, Timestamp, Zone};
use serde::Serialize;

/// One instant or interval written for a recipient: in their zone and, when it differs,
/// in the organizer's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// In the recipient's zone (UTC when theirs is unknown).
    pub recipient: String,
    /// In the organizer's zone, when it is not the recipient's.
    pub organizer: Option<String>,
}

impl Shown {
    /// An interval for a recipient in `recipient` (UTC when `None`) and an organizer in
    /// `organizer`.
    pub fn interval(slot: Interval, recipient: Option<&Zone>, organizer: &Zone) -> Self {
        Self::with(recipient, organizer, |z| format_interval(slot, z))
    }

    /// An instant, as [`Shown::interval`] does.
    pub fn instant(t: Timestamp, recipient: Option<&Zone>, organizer: &Zone) -> Self {
        Self::with(recipient, organizer, |z| format_instant(t, z))
    }

    fn with(recipient: Option<&Zone>, organizer: &Zone, f: impl Fn(&Zone) -> String) -> Self {
        let utc = Zone::utc();
        let mine = recipient.unwrap_or(&utc);
        Self {
            recipient: f(mine),
            organizer: (mine != organizer).then(|| f(organizer)),
        }
    }
}

/// `Tue 31 Mar 2026, 13:30–14:15 CEST (Europe/Paris)`. An interval that crosses a
/// change of offset shows both abbreviations (`01:30 CET – 03:30 CEST`); one that ends on
/// another local day shows both dates.
pub fn format_interval(slot: Interval, zone: &Zone) -> String {
    let start = zone.to_zoned(slot.start());
    let end = zone.to_zoned(slot.end());
    let (a1, a2) = (abbreviation(&start), abbreviation(&end));
    let body = if start.date() == end.date() {
        if a1 == a2 {
            format!("{}, {}–{} {a1}", day(&start), clock(&start), clock(&end))
        } else {
            format!(
                "{}, {} {a1} – {} {a2}",
                day(&start),
                clock(&start),
                clock(&end)
            )
        }
    } else if a1 == a2 {
        format!(
            "{}, {} – {}, {} {a1}",
            day(&start),
            clock(&start),
            day(&end),
            clock(&end)
        )
    } else {
        format!(
            "{}, {} {a1} – {}, {} {a2}",
            day(&start),
            clock(&start),
            day(&end),
            clock(&end)
        )
    };
    with_zone_name(body, &a1, zone)
}

/// `Tue 31 Mar 2026, 13:30 CEST (Europe/Paris)`.
pub fn format_instant(t: Timestamp, zone: &Zone) -> String {
    let z = zone.to_zoned(t);
    let abbr = abbreviation(&z);
    with_zone_name(format!("{}, {} {abbr}", day(&z), clock(&z)), &abbr, zone)
}

/// The zone's name in parentheses, unless it would repeat the abbreviation (`UTC`).
fn with_zone_name(body: String, abbr: &str, zone: &Zone) -> String {
    if abbr == zone.name() {
        body
    } else {
        format!("{body} ({})", zone.name())
    }
}

fn day(z: &Zoned) -> String {
    z.strftime("%a %-d %b %Y").to_string()
}

fn clock(z: &Zoned) -> String {
    z.strftime("%H:%M").to_string()
}

/// The zone's abbreviation at that instant (`CEST`, `EST`, `IST`). Zones without a
/// letter abbreviation in the tz database (`+1030` for Australia/Lord_Howe) read
/// `UTC+10:30`.
fn abbreviation(z: &Zoned) -> String {
    let abbr = z.strftime("%Z").to_string();
    if abbr.chars().any(|c| c.is_ascii_alphabetic()) {
        return abbr;
    }
    let secs = z.offset().seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let (h, m) = (secs.unsigned_abs() / 3600, secs.unsigned_abs() % 3600 / 60);
    if m == 0 {
        format!("UTC{sign}{h}")
    } else {
        format!("UTC{sign}{h}:{m:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(a: &str, b: &str) -> Interval {
        Interval::new(a.parse().unwrap(), b.parse().unwrap()).unwrap()
    }
    fn zone(n: &str) -> Zone {
        Zone::parse(n).unwrap()
    }

    #[test]
    fn intervals_name_their_zone_and_abbreviation() {
        let s = slot("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z");
        assert_eq!(
            format_interval(s, &zone("Europe/Paris")),
            "Tue 31 Mar 2026, 13:30–14:15 CEST (Europe/Paris)"
        );
        assert_eq!(
            format_interval(s, &Zone::utc()),
            "Tue 31 Mar 2026, 11:30–12:15 UTC"
        );
        assert_eq!(
            format_interval(s, &zone("Asia/Kolkata")),
            "Tue 31 Mar 2026, 17:00–17:45 IST (Asia/Kolkata)"
        );
        assert_eq!(
            format_interval(s, &zone("Australia/Lord_Howe")),
            "Tue 31 Mar 2026, 22:30–23:15 UTC+11 (Australia/Lord_Howe)"
        );
    }

    #[test]
    fn crossing_a_change_of_offset_or_midnight_shows_both_sides() {
        let s = slot("2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z");
        assert_eq!(
            format_interval(s, &zone("Europe/Paris")),
            "Sun 29 Mar 2026, 01:30 CET – 03:30 CEST (Europe/Paris)"
        );
        let s = slot("2026-03-31T21:30:00Z", "2026-03-31T22:30:00Z");
        assert_eq!(
            format_interval(s, &zone("Europe/Paris")),
            "Tue 31 Mar 2026, 23:30 – Wed 1 Apr 2026, 00:30 CEST (Europe/Paris)"
        );
    }

    #[test]
    fn organizer_time_is_shown_only_when_the_zone_differs() {
        let s = slot("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z");
        let paris = zone("Europe/Paris");
        assert_eq!(Shown::interval(s, Some(&paris), &paris).organizer, None);
        let shown = Shown::interval(s, None, &paris);
        assert_eq!(shown.recipient, "Tue 31 Mar 2026, 11:30–12:15 UTC");
        assert_eq!(
            shown.organizer.as_deref(),
            Some("Tue 31 Mar 2026, 13:30–14:15 CEST (Europe/Paris)")
        );
    }
}
