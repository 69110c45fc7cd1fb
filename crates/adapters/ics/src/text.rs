//! Small readers over the parsed iCalendar tree (names compare case-insensitively).

use icalendar::parser::{Component, Property};
use jiff::civil::{Date, DateTime, Time};

/// Every property `name` of `c`.
pub(crate) fn props<'c, 'a>(
    c: &'c Component<'a>,
    name: &'c str,
) -> impl Iterator<Item = &'c Property<'a>> + 'c {
    c.properties
        .iter()
        .filter(move |p| p.name.as_str().eq_ignore_ascii_case(name))
}

/// The first property `name` of `c`, if any.
pub(crate) fn property<'c, 'a>(c: &'c Component<'a>, name: &str) -> Option<&'c Property<'a>> {
    c.properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

/// The value of the first property `name` of `c`, trimmed.
pub(crate) fn prop<'c>(c: &'c Component<'_>, name: &str) -> Option<&'c str> {
    property(c, name).map(|p| p.val.as_str().trim())
}

/// The value of parameter `key` of `p`, unquoted.
pub(crate) fn param<'p>(p: &'p Property<'_>, key: &str) -> Option<&'p str> {
    p.params
        .iter()
        .find(|k| k.key.as_str().eq_ignore_ascii_case(key))
        .and_then(|k| k.val.as_ref())
        .map(|v| v.as_str().trim().trim_matches('"'))
}

/// A DATE value (`20260302`).
pub(crate) fn parse_date(value: &str) -> Option<Date> {
    let v = value.trim();
    if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y = v[0..4].parse().ok()?;
    let m = v[4..6].parse().ok()?;
    let d = v[6..8].parse().ok()?;
    Date::new(y, m, d).ok()
}

/// A DATE-TIME value (`20260302T090000`, with or without `Z`): the civil time and
/// whether it is UTC.
pub(crate) fn parse_date_time(value: &str) -> Option<(DateTime, bool)> {
    let v = value.trim();
    let (v, utc) = match v.strip_suffix('Z').or_else(|| v.strip_suffix('z')) {
        Some(rest) => (rest, true),
        None => (v, false),
    };
    let (date, time) = v.split_once(['T', 't'])?;
    let date = parse_date(date)?;
    if time.len() != 6 || !time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h = time[0..2].parse().ok()?;
    let m = time[2..4].parse().ok()?;
    // Leap seconds (60) are read as 59.
    let s = time[4..6].parse::<i8>().ok()?.min(59);
    // An hour past 23 or a minute past 59 is no time at all (not a panic).
    let time = Time::new(h, m, s, 0).ok()?;
    Some((date.to_datetime(time), utc))
}

/// A DURATION value (`P1DT2H30M`, `-PT15M`, `P2W`): whole days (nominal: added on the
/// calendar) and seconds (exact). `None` when malformed or too large for an `i64`.
pub(crate) fn parse_duration(value: &str) -> Option<(i64, i64)> {
    let v = value.trim();
    let (sign, v) = match v.as_bytes().first()? {
        b'-' => (-1, &v[1..]),
        b'+' => (1, &v[1..]),
        _ => (1, v),
    };
    let v = v.strip_prefix(['P', 'p'])?;
    let (mut days, mut secs) = (0i64, 0i64);
    let mut in_time = false;
    let mut number = String::new();
    for ch in v.chars() {
        match ch.to_ascii_uppercase() {
            'T' => in_time = true,
            d if d.is_ascii_digit() => number.push(d),
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                let (total, per) = match (unit, in_time) {
                    ('W', false) => (&mut days, 7),
                    ('D', false) => (&mut days, 1),
                    ('H', true) => (&mut secs, 3600),
                    ('M', true) => (&mut secs, 60),
                    ('S', true) => (&mut secs, 1),
                    _ => return None,
                };
                *total = total.checked_add(n.checked_mul(per)?)?;
            }
        }
    }
    if !number.is_empty() {
        return None;
    }
    Some((sign * days, sign * secs))
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse_date("20260302"), Some(date(2026, 3, 2)));
        assert_eq!(parse_date("2026-03-02"), None);
        assert_eq!(
            parse_date_time("20260302T090000Z"),
            Some((date(2026, 3, 2).at(9, 0, 0, 0), true))
        );
        assert_eq!(
            parse_date_time("20260302T090000"),
            Some((date(2026, 3, 2).at(9, 0, 0, 0), false))
        );
        assert_eq!(parse_date_time("20260302"), None);
        assert_eq!(parse_duration("PT1H30M"), Some((0, 5400)));
        assert_eq!(parse_duration("P1DT2H"), Some((1, 7200)));
        assert_eq!(parse_duration("P2W"), Some((14, 0)));
        assert_eq!(parse_duration("-PT15M"), Some((0, -900)));
        assert_eq!(parse_duration("PT"), Some((0, 0)));
        assert_eq!(parse_duration("1H"), None);
    }

    /// Found by the `ics_feed` fuzz target: a minute of 60 (`T136000`) panicked in
    /// jiff's `Date::at`.
    #[test]
    fn impossible_times_of_day_are_not_times() {
        assert_eq!(parse_date_time("20260105T136000"), None);
        assert_eq!(parse_date_time("20260105T240000Z"), None);
        assert_eq!(
            parse_date_time("20260105T235960"),
            Some((date(2026, 1, 5).at(23, 59, 59, 0), false))
        );
    }

    /// Durations whose total does not fit an `i64` are refused, not overflowed.
    #[test]
    fn durations_too_large_are_refused() {
        assert_eq!(parse_duration("P9223372036854775807W"), None);
        assert_eq!(parse_duration("PT9223372036854775807H"), None);
        assert_eq!(parse_duration("PT9223372036854775807S1S"), None);
        assert_eq!(parse_duration("P9223372036854775807D"), Some((i64::MAX, 0)));
    }
}
