//! iCalendar invitations (RFC 5545) for iTIP scheduling (RFC 5546): `METHOD:REQUEST` for a
//! booking and `METHOD:CANCEL` for a cancellation, built with the `icalendar` crate.
//!
//! Times are written in UTC (`…Z`), so no `VTIMEZONE` is needed. The text is
//! re-folded by [`fold_content_lines`] after the crate renders it: `icalendar` 0.17
//! writes CRLF but can leave a continuation line of 76 octets (its loop stops when
//! exactly 75 bytes remain, and the leading space makes 76).

use convene_domain::outbox::{Attendee, MeetingSummary};
use convene_domain::ports::CalendarPart;
use convene_domain::time::{Interval, Timestamp};
use icalendar::{Calendar, CalendarComponent, Component, Event, EventLike, EventStatus, Property};

use crate::config::Sender;

/// The longest content line RFC 5545 allows, in octets, line break excluded.
pub const MAX_LINE_OCTETS: usize = 75;

/// Which iTIP message to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcsMethod {
    /// The booking, or a change of it (higher `SEQUENCE`).
    Request,
    /// The meeting is off.
    Cancel,
}

impl IcsMethod {
    /// `REQUEST` or `CANCEL`, as in `METHOD` and the MIME `method` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "REQUEST",
            Self::Cancel => "CANCEL",
        }
    }
}

/// Everything an invitation or a cancellation says.
#[derive(Clone, Copy, Debug)]
pub struct IcsRequest<'a> {
    /// Request or cancel.
    pub method: IcsMethod,
    /// The meeting (title, organizer).
    pub meeting: &'a MeetingSummary,
    /// When.
    pub slot: Interval,
    /// Stable `UID` of the meeting's event.
    pub uid: &'a str,
    /// `SEQUENCE`: 0 for the first booking, higher after each change.
    pub sequence: u32,
    /// Everyone invited; those without an email are left out of the file.
    pub attendees: &'a [Attendee],
    /// The Meet or Teams link, put in `LOCATION` and `DESCRIPTION`.
    pub conference_url: Option<&'a str>,
    /// `DTSTAMP`: when this message was made (from the composer's clock).
    pub dtstamp: Timestamp,
    /// Who stands in as `ORGANIZER` when the organizer erased their account.
    pub sender: &'a Sender,
    /// Product name, for `PRODID`.
    pub product_name: &'a str,
}

/// Builds the `.ics` of an invitation or cancellation: CRLF line endings, lines folded
/// at 75 octets, UTC times.
pub fn invitation_ics(req: &IcsRequest<'_>) -> CalendarPart {
    let mut event = Event::new();
    event
        .uid(req.uid)
        .sequence(req.sequence)
        .timestamp(chrono_utc(req.dtstamp))
        .starts(chrono_utc(req.slot.start()))
        .ends(chrono_utc(req.slot.end()))
        .summary(req.meeting.title.as_str())
        .add_property("TRANSP", "OPAQUE")
        .status(match req.method {
            IcsMethod::Request => EventStatus::Confirmed,
            IcsMethod::Cancel => EventStatus::Cancelled,
        });
    if let Some(url) = req.conference_url {
        event
            .location(url)
            .description(&format!("Join the meeting: {url}"));
    }
    event.append_property(organizer(req));
    for a in req.attendees {
        let Some(email) = &a.email else { continue };
        let mut p = Property::new("ATTENDEE", format!("mailto:{}", email.as_str()));
        p.add_parameter("CUTYPE", "INDIVIDUAL")
            .add_parameter(
                "ROLE",
                if a.required {
                    "REQ-PARTICIPANT"
                } else {
                    "OPT-PARTICIPANT"
                },
            )
            .add_parameter("CN", &param_value(a.name.as_str()));
        // A request asks every attendee to answer; a cancellation expects no reply.
        if req.method == IcsMethod::Request {
            p.add_parameter("PARTSTAT", "NEEDS-ACTION")
                .add_parameter("RSVP", "TRUE");
        }
        event.append_multi_property(p.done());
    }

    let mut calendar = Calendar::empty();
    calendar
        .append_property(Property::new(
            "PRODID",
            format!("-//{}//Convene//EN", param_value(req.product_name)),
        ))
        .append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("CALSCALE", "GREGORIAN"))
        .append_property(Property::new("METHOD", req.method.as_str()))
        .push(CalendarComponent::Event(event.done()));
    CalendarPart {
        method: req.method.as_str().to_owned(),
        ics: fold_content_lines(&calendar.to_string()),
    }
}

fn organizer(req: &IcsRequest<'_>) -> Property {
    let (name, email) = match &req.meeting.organizer_email {
        Some(email) => (req.meeting.organizer_name.as_str(), email.as_str()),
        // The organizer erased their account: the sender address stands in.
        None => (req.sender.name.as_str(), req.sender.address.as_str()),
    };
    let mut p = Property::new("ORGANIZER", format!("mailto:{email}"));
    p.add_parameter("CN", &param_value(name));
    p.done()
}

/// A parameter value may not hold `"` or control characters (RFC 5545 §3.1); the crate
/// quotes values with `:`, `;` or `,` itself.
fn param_value(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect()
}

fn chrono_utc(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    // Every Timestamp after 1970 and before 9999 fits chrono's range; sub-seconds are
    // dropped, as iCalendar has none.
    chrono::DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default()
}

/// Normalizes iCalendar text: unfolds it, then folds every content line so that no line
/// exceeds [`MAX_LINE_OCTETS`] octets (never inside a UTF-8 character), and ends every line
/// with CRLF.
pub fn fold_content_lines(ics: &str) -> String {
    let unfolded = ics
        .replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "");
    let mut out = String::with_capacity(unfolded.len() + unfolded.len() / 32);
    for line in unfolded
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
    {
        if line.is_empty() {
            continue;
        }
        fold_line_into(line, &mut out);
    }
    out
}

fn fold_line_into(line: &str, out: &mut String) {
    let mut rest = line;
    let mut limit = MAX_LINE_OCTETS;
    loop {
        if rest.len() <= limit {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // A continuation that starts with a blank survives a strict unfolder but not a
        // careless one that trims: cut one character earlier.
        if rest[cut..].starts_with([' ', '\t']) {
            cut -= 1;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
        }
        let (head, tail) = rest.split_at(cut);
        out.push_str(head);
        out.push_str("\r\n ");
        rest = tail;
        // Continuation lines start with one space, which counts.
        limit = MAX_LINE_OCTETS - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfold(s: &str) -> String {
        s.replace("\r\n ", "")
    }

    #[test]
    fn folding_keeps_lines_within_75_octets_and_round_trips() {
        for len in [1, 74, 75, 76, 149, 150, 151, 224, 300] {
            let line = format!("DESCRIPTION:{}", "x".repeat(len));
            let folded = fold_content_lines(&line);
            assert!(folded.ends_with("\r\n"));
            for l in folded.split("\r\n").filter(|l| !l.is_empty()) {
                assert!(
                    l.len() <= MAX_LINE_OCTETS,
                    "{len}: {l:?} is {} octets",
                    l.len()
                );
            }
            assert_eq!(unfold(&folded), format!("{line}\r\n"));
        }
    }

    #[test]
    fn folding_never_splits_a_character() {
        let line = format!("SUMMARY:{}", "é老🎉".repeat(40));
        let folded = fold_content_lines(&line);
        for l in folded.split("\r\n") {
            assert!(l.len() <= MAX_LINE_OCTETS);
        }
        assert_eq!(unfold(&folded), format!("{line}\r\n"));
    }

    #[test]
    fn folding_normalizes_bare_line_feeds_and_is_idempotent() {
        let text = "BEGIN:VCALENDAR\nVERSION:2.0\r\nEND:VCALENDAR\n";
        let once = fold_content_lines(text);
        assert_eq!(once, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n");
        let long = fold_content_lines(&format!("X-A:{}", "y".repeat(200)));
        assert_eq!(fold_content_lines(&long), long);
    }

    #[test]
    fn continuation_lines_never_start_with_a_blank_of_the_content() {
        for pad in 60..80 {
            let line = format!("SUMMARY:{} {}", "a".repeat(pad), "b ".repeat(60));
            let folded = fold_content_lines(&line);
            for l in folded.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
                assert!(l.starts_with(' ') && !l[1..].starts_with(' '), "{l:?}");
            }
            assert_eq!(unfold(&folded), format!("{line}\r\n"));
        }
    }

    #[test]
    fn parameter_values_lose_quotes_and_controls() {
        assert_eq!(param_value("Ada \"the\" Lovelace"), "Ada 'the' Lovelace");
    }
}

#[cfg(test)]
mod crate_folding {
    use icalendar::{Calendar, Component, Event};

    /// `icalendar` folds, but a line of 150 octets comes out with a 76-octet continuation;
    /// [`super::fold_content_lines`] repairs what it writes.
    #[test]
    fn our_folding_repairs_the_crates_output() {
        let mut cal = Calendar::empty();
        cal.push(
            Event::new()
                .uid("u")
                .add_property("X-LONG", "y".repeat(150 - "X-LONG:".len()))
                .done(),
        );
        let raw = cal.to_string();
        let longest = raw.split("\r\n").map(str::len).max().unwrap_or(0);
        eprintln!("icalendar's longest line: {longest} octets");
        let fixed = super::fold_content_lines(&raw);
        assert!(
            fixed
                .split("\r\n")
                .all(|l| l.len() <= super::MAX_LINE_OCTETS)
        );
    }
}
