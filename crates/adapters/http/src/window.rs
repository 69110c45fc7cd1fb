//! Splitting free/busy windows the way providers require.

use convene_domain::time::{Interval, SignedDuration};

/// `window` cut into consecutive pieces of at most `max` each (the last may be shorter).
/// A window no longer than `max` comes back whole. A non-positive `max` is treated as
/// one second.
pub fn split_window(window: Interval, max: SignedDuration) -> Vec<Interval> {
    let max = if max.is_positive() {
        max
    } else {
        SignedDuration::from_secs(1)
    };
    let mut pieces = Vec::new();
    let mut start = window.start();
    while start < window.end() {
        let end = match start.checked_add(max) {
            Ok(end) if end < window.end() => end,
            _ => window.end(),
        };
        match Interval::new(start, end) {
            Ok(piece) => pieces.push(piece),
            Err(_) => break,
        }
        start = end;
    }
    pieces
}

/// `busy` cut to `window`, dropping what falls outside.
pub fn clip(busy: impl IntoIterator<Item = Interval>, window: &Interval) -> Vec<Interval> {
    busy.into_iter()
        .filter_map(|b| b.intersection(window))
        .collect()
}

#[cfg(test)]
mod tests {
    use convene_domain::time::Timestamp;

    use super::*;

    fn days(from: i64, to: i64) -> Interval {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        Interval::new(
            t0 + SignedDuration::from_hours(24 * from),
            t0 + SignedDuration::from_hours(24 * to),
        )
        .unwrap()
    }

    #[test]
    fn windows_split_at_the_limit() {
        let max = SignedDuration::from_hours(24 * 90);
        assert_eq!(split_window(days(0, 90), max), vec![days(0, 90)]);
        assert_eq!(
            split_window(days(0, 91), max),
            vec![days(0, 90), days(90, 91)]
        );
        assert_eq!(split_window(days(0, 270), max).len(), 3);
        assert_eq!(
            clip([days(-5, 3), days(95, 99)], &days(0, 90)),
            vec![days(0, 3)]
        );
    }
}
