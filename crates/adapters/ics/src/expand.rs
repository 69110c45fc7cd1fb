//! iCalendar text → busy intervals over a window.
//!
//! Parsed with `icalendar`'s parser; recurrence expanded with `rrule` in each event's
//! local wall time (so a weekly 09:00 stays at 09:00 across a DST change), then placed
//! in its zone. What is busy:
//!
//! - VEVENTs with a start time and an end (DTEND or DURATION), each occurrence of their
//!   RRULEs and RDATEs, minus EXDATEs, minus occurrences replaced by an override
//!   (RECURRENCE-ID), plus the overrides themselves;
//! - not all-day events (DATE starts: birthdays, holidays, out-of-office markers), not
//!   `TRANSP:TRANSPARENT`, not `STATUS:CANCELLED` (a cancelled series or occurrence);
//! - VFREEBUSY `FREEBUSY` periods other than `FBTYPE=FREE` (CalDAV free-busy replies).
//!
//! Floating times (no zone) are read in the calendar owner's zone. Only intervals come
//! out: no title, description, location or attendee is ever copied.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, TimeZone as _, Timelike};
use convene_domain::time::{Interval, Timestamp};
use icalendar::parser::{Component, Property, read_components, unfold};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span};

use crate::text::{param, parse_date, parse_date_time, parse_duration, prop, property, props};
use crate::zones::{Zones, tzid};

/// Why a calendar could not be read. Never quotes the calendar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IcsError {
    /// Not iCalendar text.
    #[error("the calendar could not be parsed")]
    Unreadable,
}

/// The most occurrences of one recurring event expanded in one window.
const MAX_OCCURRENCES: u16 = 5_000;

/// What was read, for the logs (counts only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Events seen (masters and overrides).
    pub events: usize,
    /// Zone names that could not be resolved (read in the owner's zone).
    pub unknown_zones: usize,
    /// Recurrences cut at 5,000 occurrences in the window, or refused by the rule parser.
    pub truncated: usize,
}

/// A time as written: a date (all day) or a wall time in a zone.
#[derive(Clone, Debug)]
enum When {
    Date(Date),
    Local(DateTime, TimeZone),
}

impl When {
    fn instant(&self) -> Option<Timestamp> {
        match self {
            When::Date(_) => None,
            When::Local(civil, tz) => tz.to_ambiguous_timestamp(*civil).compatible().ok(),
        }
    }
}

#[derive(Clone, Debug)]
enum Length {
    /// DTEND.
    Until(When),
    /// DURATION: days on the calendar, then seconds.
    Span(i64, i64),
}

struct Event {
    uid: Option<String>,
    recurrence_id: Option<When>,
    start: When,
    length: Option<Length>,
    rules: Vec<String>,
    rdates: Vec<(When, Option<Length>)>,
    exdates: Vec<When>,
    busy: bool,
    cancelled: bool,
}

/// Reads time values with the document's zones.
struct Reader<'z> {
    zones: &'z Zones,
    floating: TimeZone,
    unknown_zones: usize,
}

impl Reader<'_> {
    fn zone_of(&mut self, p: &Property<'_>) -> TimeZone {
        match tzid(p) {
            None => self.floating.clone(),
            Some(id) => self.zones.resolve(id).unwrap_or_else(|| {
                self.unknown_zones += 1;
                self.floating.clone()
            }),
        }
    }

    /// One value of property `p` (which may be a list: the caller splits).
    fn when(&mut self, p: &Property<'_>, value: &str) -> Option<When> {
        let is_date = param(p, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
        if is_date || value.trim().len() == 8 {
            return parse_date(value).map(When::Date);
        }
        let (civil, utc) = parse_date_time(value)?;
        let tz = if utc { TimeZone::UTC } else { self.zone_of(p) };
        Some(When::Local(civil, tz))
    }

    fn whens(&mut self, p: &Property<'_>) -> Vec<(When, Option<Length>)> {
        let is_period = param(p, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("PERIOD"));
        let mut out = Vec::new();
        for value in p.val.as_str().split(',') {
            let value = value.trim();
            match value.split_once('/') {
                Some((start, end)) => {
                    let Some(start) = self.when(p, start) else {
                        continue;
                    };
                    let length = match parse_duration(end) {
                        Some((d, s)) => Some(Length::Span(d, s)),
                        None => self.when(p, end).map(Length::Until),
                    };
                    out.push((start, length));
                }
                None if !is_period => {
                    if let Some(w) = self.when(p, value) {
                        out.push((w, None));
                    }
                }
                None => {}
            }
        }
        out
    }

    fn event(&mut self, c: &Component<'_>) -> Option<Event> {
        let start_prop = property(c, "DTSTART")?;
        let start = self.when(start_prop, start_prop.val.as_str())?;
        let length = match property(c, "DTEND") {
            Some(end) => self.when(end, end.val.as_str()).map(Length::Until),
            None => prop(c, "DURATION")
                .and_then(parse_duration)
                .map(|(d, s)| Length::Span(d, s)),
        };
        let recurrence_id = property(c, "RECURRENCE-ID").and_then(|p| self.when(p, p.val.as_str()));
        let rdates = props(c, "RDATE").flat_map(|p| self.whens(p)).collect();
        let exdates = props(c, "EXDATE")
            .flat_map(|p| self.whens(p))
            .map(|(w, _)| w)
            .collect();
        let cancelled = prop(c, "STATUS").is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED"));
        let transparent = prop(c, "TRANSP").is_some_and(|s| s.eq_ignore_ascii_case("TRANSPARENT"));
        Some(Event {
            uid: prop(c, "UID").map(str::to_owned),
            recurrence_id,
            start,
            length,
            rules: props(c, "RRULE")
                .map(|p| p.val.as_str().to_owned())
                .collect(),
            rdates,
            exdates,
            busy: !cancelled && !transparent,
            cancelled,
        })
    }
}

/// The end of an occurrence starting at `start` (wall time in `tz`), given the event's
/// own start and length.
fn occurrence_end(
    event_start: &When,
    length: &Length,
    start: DateTime,
    tz: &TimeZone,
) -> Option<Timestamp> {
    let resolve =
        |civil: DateTime, tz: &TimeZone| tz.to_ambiguous_timestamp(civil).compatible().ok();
    match length {
        Length::Span(days, secs) => {
            let civil = start.checked_add(Span::new().try_days(*days).ok()?).ok()?;
            resolve(civil, tz)?
                .checked_add(SignedDuration::from_secs(*secs))
                .ok()
        }
        Length::Until(When::Local(end, end_tz)) => {
            let When::Local(first, first_tz) = event_start else {
                return None;
            };
            if end_tz == first_tz {
                // Same zone: the same wall-clock length for every occurrence.
                let wall = first.duration_until(*end);
                resolve(start.checked_add(wall).ok()?, tz)
            } else {
                let exact = resolve(*first, first_tz)?.duration_until(resolve(*end, end_tz)?);
                resolve(start, tz)?.checked_add(exact).ok()
            }
        }
        Length::Until(When::Date(_)) => None,
    }
}

fn to_carrier(dt: DateTime) -> Option<chrono::DateTime<rrule::Tz>> {
    let naive = chrono::NaiveDate::from_ymd_opt(
        i32::from(dt.year()),
        u32::try_from(dt.month()).ok()?,
        u32::try_from(dt.day()).ok()?,
    )?
    .and_hms_opt(
        u32::try_from(dt.hour()).ok()?,
        u32::try_from(dt.minute()).ok()?,
        u32::try_from(dt.second()).ok()?,
    )?;
    Some(rrule::Tz::UTC.from_utc_datetime(&naive))
}

fn from_carrier(c: &chrono::DateTime<rrule::Tz>) -> Option<DateTime> {
    let n = c.naive_utc();
    Some(
        Date::new(
            i16::try_from(n.year()).ok()?,
            i8::try_from(n.month()).ok()?,
            i8::try_from(n.day()).ok()?,
        )
        .ok()?
        .at(
            i8::try_from(n.hour()).ok()?,
            i8::try_from(n.minute()).ok()?,
            i8::try_from(n.second()).ok()?,
            0,
        ),
    )
}

fn ical(dt: DateTime) -> String {
    dt.strftime("%Y%m%dT%H%M%S").to_string()
}

/// An RRULE with its UNTIL moved into the event's wall time, where the expansion runs.
fn local_rule(rule: &str, tz: &TimeZone) -> String {
    rule.split(';')
        .map(|part| match part.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("UNTIL") => {
                let until = if let Some(d) = parse_date(v) {
                    format!("{}T235959Z", d.strftime("%Y%m%d"))
                } else {
                    match parse_date_time(v) {
                        Some((civil, true)) => {
                            let instant = TimeZone::UTC
                                .to_ambiguous_timestamp(civil)
                                .compatible()
                                .ok();
                            match instant {
                                Some(t) => format!("{}Z", ical(tz.to_datetime(t))),
                                None => v.to_owned(),
                            }
                        }
                        Some((civil, false)) => format!("{}Z", ical(civil)),
                        None => v.to_owned(),
                    }
                };
                format!("UNTIL={until}")
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Local start times (wall time of the event's zone) of a master's occurrences between
/// `from` and `to`, DTSTART included.
fn occurrences(
    event: &Event,
    first: DateTime,
    tz: &TimeZone,
    from: DateTime,
    to: DateTime,
    stats: &mut ReadStats,
) -> Vec<DateTime> {
    let mut out = vec![first];
    if event.rules.is_empty() {
        return out;
    }
    // An RRULE is ASCII (RFC 5545); the rule parser slices by bytes and panics inside a
    // multi-byte character, so anything else is refused before it gets there.
    if !event.rules.iter().all(|r| r.is_ascii()) {
        stats.truncated += 1;
        return out;
    }
    let (Some(after), Some(before)) = (to_carrier(from), to_carrier(to)) else {
        return out;
    };
    let mut text = format!("DTSTART:{}Z", ical(first));
    for rule in &event.rules {
        text.push_str("\nRRULE:");
        text.push_str(&local_rule(rule, tz));
    }
    match text.parse::<rrule::RRuleSet>() {
        Ok(set) => {
            let result = set.after(after).before(before).all(MAX_OCCURRENCES);
            if result.limited && result.dates.len() >= usize::from(MAX_OCCURRENCES) {
                stats.truncated += 1;
            }
            out.extend(result.dates.iter().filter_map(from_carrier));
        }
        Err(_) => stats.truncated += 1,
    }
    out.sort();
    out.dedup();
    out
}

/// Busy time of the iCalendar `text` over `window`. Floating times are read in `owner`'s
/// zone when given, else in the calendar's `X-WR-TIMEZONE`, else in `fallback`.
pub fn busy_intervals(
    text: &str,
    window: Interval,
    owner: Option<&TimeZone>,
    fallback: &TimeZone,
) -> Result<(Vec<Interval>, ReadStats), IcsError> {
    let unfolded = unfold(text);
    let roots = read_components(&unfolded).map_err(|_| IcsError::Unreadable)?;
    let mut busy = Vec::new();
    let mut stats = ReadStats::default();
    for root in &roots {
        let is_calendar = root.name.as_str().eq_ignore_ascii_case("VCALENDAR");
        let children: &[Component<'_>] = if is_calendar {
            &root.components
        } else {
            std::slice::from_ref(root)
        };
        let declared = prop(root, "X-WR-TIMEZONE").and_then(|z| TimeZone::get(z).ok());
        let floating = owner
            .cloned()
            .or(declared)
            .unwrap_or_else(|| fallback.clone());
        let zones = Zones::from_components(children);
        let mut reader = Reader {
            zones: &zones,
            floating,
            unknown_zones: 0,
        };
        read_events(children, &mut reader, window, &mut busy, &mut stats);
        read_free_busy(children, &mut reader, window, &mut busy);
        stats.unknown_zones += reader.unknown_zones;
    }
    Ok((busy, stats))
}

fn read_free_busy(
    children: &[Component<'_>],
    reader: &mut Reader<'_>,
    window: Interval,
    busy: &mut Vec<Interval>,
) {
    for c in children
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case("VFREEBUSY"))
    {
        for p in props(c, "FREEBUSY") {
            if param(p, "FBTYPE").is_some_and(|t| t.eq_ignore_ascii_case("FREE")) {
                continue;
            }
            for (start, length) in reader.whens(p) {
                let (Some(s), Some(length)) = (start.instant(), length) else {
                    continue;
                };
                let end = match length {
                    Length::Span(days, secs) => days
                        .checked_mul(86_400)
                        .and_then(|d| d.checked_add(secs))
                        .and_then(|total| s.checked_add(SignedDuration::from_secs(total)).ok()),
                    Length::Until(w) => w.instant(),
                };
                if let Some(i) = end.and_then(|e| Interval::new(s, e).ok())
                    && let Some(i) = i.intersection(&window)
                {
                    busy.push(i);
                }
            }
        }
    }
}

fn read_events(
    children: &[Component<'_>],
    reader: &mut Reader<'_>,
    window: Interval,
    busy: &mut Vec<Interval>,
    stats: &mut ReadStats,
) {
    let events: Vec<Event> = children
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case("VEVENT"))
        .filter_map(|c| reader.event(c))
        .collect();
    stats.events += events.len();

    // Overrides by series, keyed by the instant of the occurrence they replace.
    let mut replaced: HashMap<&str, HashSet<Timestamp>> = HashMap::new();
    let mut masters: HashMap<&str, &Event> = HashMap::new();
    for e in &events {
        match (&e.uid, &e.recurrence_id) {
            (Some(uid), Some(rid)) => {
                if let Some(t) = rid.instant() {
                    replaced.entry(uid.as_str()).or_default().insert(t);
                }
            }
            (Some(uid), None) => {
                masters.insert(uid.as_str(), e);
            }
            _ => {}
        }
    }

    let mut push = |start: Option<Timestamp>, end: Option<Timestamp>| {
        if let (Some(s), Some(e)) = (start, end)
            && let Ok(i) = Interval::new(s, e)
            && let Some(i) = i.intersection(&window)
        {
            busy.push(i);
        }
    };

    for e in &events {
        let When::Local(first, tz) = &e.start else {
            // All-day: not busy.
            continue;
        };
        let Some(length) = &e.length else {
            // No end: an instant, which blocks nothing.
            continue;
        };
        if e.recurrence_id.is_some() {
            // An override: busy on its own terms, unless its whole series is cancelled.
            let series_cancelled = e
                .uid
                .as_deref()
                .and_then(|u| masters.get(u))
                .is_some_and(|m| m.cancelled);
            if e.busy && !series_cancelled {
                push(
                    e.start.instant(),
                    occurrence_end(&e.start, length, *first, tz),
                );
            }
            continue;
        }
        if !e.busy {
            continue;
        }
        // Expand a little beyond the window: occurrences starting before it may reach in.
        let margin = SignedDuration::from_hours(48);
        let reach = match length {
            // Saturated when too long to count in seconds.
            Length::Span(days, secs) => days
                .checked_mul(86_400)
                .and_then(|d| d.checked_add(*secs))
                .map_or(SignedDuration::MAX, SignedDuration::from_secs),
            Length::Until(end) => e
                .start
                .instant()
                .zip(end.instant())
                .map(|(s, en)| s.duration_until(en))
                .unwrap_or_default(),
        };
        let back =
            SignedDuration::from_secs(reach.as_secs().saturating_abs()).saturating_add(margin);
        let from = window.start().checked_sub(back).unwrap_or(window.start());
        let to = window.end().checked_add(margin).unwrap_or(window.end());
        let from = tz.to_datetime(from);
        let to = tz.to_datetime(to);

        let gone = e.uid.as_deref().and_then(|u| replaced.get(u));
        let excluded: HashSet<Timestamp> = e.exdates.iter().filter_map(When::instant).collect();
        let excluded_days: HashSet<Date> = e
            .exdates
            .iter()
            .filter_map(|w| match w {
                When::Date(d) => Some(*d),
                When::Local(..) => None,
            })
            .collect();
        let keep = |t: Timestamp, civil: DateTime| {
            !excluded.contains(&t)
                && !excluded_days.contains(&civil.date())
                && !gone.is_some_and(|g| g.contains(&t))
        };

        for civil in occurrences(e, *first, tz, from, to, stats) {
            let Some(t) = tz.to_ambiguous_timestamp(civil).compatible().ok() else {
                continue;
            };
            if keep(t, civil) {
                push(Some(t), occurrence_end(&e.start, length, civil, tz));
            }
        }
        for (rdate, own_length) in &e.rdates {
            let (When::Local(civil, rtz), Some(t)) = (rdate, rdate.instant()) else {
                continue;
            };
            if !keep(t, *civil) {
                continue;
            }
            let end = match own_length {
                Some(Length::Until(w)) => w.instant(),
                Some(span @ Length::Span(..)) => occurrence_end(rdate, span, *civil, rtz),
                None => occurrence_end(&e.start, length, *civil, rtz),
            };
            push(Some(t), end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Interval {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        Interval::new(at("2026-01-05T00:00:00Z"), at("2026-01-12T00:00:00Z")).unwrap()
    }

    fn calendar(lines: &[&str]) -> String {
        let mut text = vec!["BEGIN:VCALENDAR"];
        text.extend_from_slice(lines);
        text.push("END:VCALENDAR");
        text.join("\r\n")
    }

    fn busy(text: &str) -> Vec<Interval> {
        busy_intervals(text, window(), None, &TimeZone::UTC)
            .unwrap()
            .0
    }

    /// Found by the `ics_feed` fuzz target (its input is kept in
    /// `fuzz/seeds/ics_feed/`): a DTSTART at minute 60 panicked; such an event cannot
    /// be read and is skipped, and the rest of the calendar still is.
    #[test]
    fn an_impossible_time_of_day_skips_its_event() {
        let text = calendar(&[
            "BEGIN:VEVENT",
            "UID:bad",
            "DTSTART;TZID=America/New_York:20260105T136000",
            "DTEND;TZID=America/New_York:20260105T140000",
            "END:VEVENT",
            "BEGIN:VEVENT",
            "UID:good",
            "DTSTART:20260106T090000Z",
            "DURATION:PT1H",
            "END:VEVENT",
        ]);
        let good = Interval::new(
            "2026-01-06T09:00:00Z".parse().unwrap(),
            "2026-01-06T10:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(busy(&text), vec![good]);
    }

    /// Found by the `ics_feed` fuzz target (its input is kept in
    /// `fuzz/seeds/ics_feed/`): `BYDAY=T` and a replacement character panicked inside
    /// the `rrule` crate. A rule that is not ASCII is not expanded: the event counts once,
    /// and the read says a rule was refused.
    #[test]
    fn a_rule_that_is_not_ascii_is_refused_before_the_rule_parser() {
        let text = calendar(&[
            "BEGIN:VEVENT",
            "UID:weekly",
            "DTSTART:20260106T090000Z",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;BYDAY=T\u{fffd},TH",
            "END:VEVENT",
        ]);
        let (busy, stats) = busy_intervals(&text, window(), None, &TimeZone::UTC).unwrap();
        assert_eq!(busy.len(), 1);
        assert_eq!(stats.truncated, 1);
    }

    /// Lengths no calendar can hold: days beyond jiff's spans panicked in
    /// `Span::days`, and a free/busy period's seconds overflowed. Both are skipped.
    #[test]
    fn lengths_beyond_any_calendar_are_skipped() {
        let text = calendar(&[
            "BEGIN:VEVENT",
            "UID:long",
            "DTSTART:20260105T090000Z",
            "DURATION:P99999999D",
            "END:VEVENT",
            "BEGIN:VEVENT",
            "UID:longer",
            "DTSTART:20260105T090000Z",
            "DURATION:-P999999999999999D",
            "END:VEVENT",
            "BEGIN:VFREEBUSY",
            "FREEBUSY:20260105T090000Z/P999999999999999D,20260106T090000Z/P9999999999999999W",
            "END:VFREEBUSY",
        ]);
        assert_eq!(busy(&text), vec![]);
    }
}
