//! A clock that only moves when a test moves it.

use std::sync::{Arc, Mutex};

use convene_domain::ports::Clock;
use convene_domain::time::{SignedDuration, Timestamp};

use crate::lock;

/// A [`Clock`] set by hand. Times are truncated to microseconds, as PostgreSQL stores
/// them, so a value read back from any store equals the one written. Clones share one
/// time, so a test can hold a clone and move the time the domain sees.
///
/// Like every [`Clock`], it never goes backwards: [`ManualClock::set`] and
/// [`ManualClock::advance`] panic when asked to.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
    tick: Arc<Mutex<SignedDuration>>,
}

impl ManualClock {
    /// A clock at an RFC 3339 instant such as `"2026-03-02T08:00:00Z"`.
    ///
    /// # Panics
    /// When `rfc3339` is not a valid instant (a test's literal).
    pub fn at(rfc3339: &str) -> Self {
        Self::new(parse_instant(rfc3339))
    }

    /// A clock at `t` (truncated to microseconds).
    pub fn new(t: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(truncate(t))),
            tick: Arc::new(Mutex::new(SignedDuration::ZERO)),
        }
    }

    /// From now on, every read by the domain ([`Clock::now`]) moves the clock forward by
    /// `step` after reading it (zero, the default, keeps it still), as a real clock
    /// moves between two reads.
    ///
    /// # Panics
    /// When `step` is negative.
    pub fn tick_on_read(&self, step: SignedDuration) {
        assert!(!step.is_negative(), "a Clock never goes backwards");
        *lock(&self.tick) = step;
    }

    /// Moves the clock to `t` (truncated to microseconds).
    ///
    /// # Panics
    /// When `t` is before the current time: a clock never goes backwards.
    pub fn set(&self, t: Timestamp) {
        let t = truncate(t);
        let mut now = lock(&self.now);
        assert!(
            t >= *now,
            "a Clock never goes backwards: {t} is before {now}",
            now = *now
        );
        *now = t;
    }

    /// Moves the clock forward by `d`.
    ///
    /// # Panics
    /// When `d` is negative or the result is out of range.
    pub fn advance(&self, d: SignedDuration) {
        assert!(
            !d.is_negative(),
            "a Clock never goes backwards: cannot advance by {d:?}"
        );
        let mut now = lock(&self.now);
        *now = truncate(now.checked_add(d).expect("the clock moved out of range"));
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        *lock(&self.now)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let step = *lock(&self.tick);
        let now = ManualClock::now(self);
        if !step.is_zero() {
            self.advance(step);
        }
        now
    }
}

/// Parses an RFC 3339 instant written in a test.
///
/// # Panics
/// When `rfc3339` is not a valid instant.
pub fn parse_instant(rfc3339: &str) -> Timestamp {
    rfc3339
        .parse()
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not an RFC 3339 instant: {e}"))
}

/// `t` truncated to whole microseconds (towards the past).
pub fn truncate(t: Timestamp) -> Timestamp {
    let micros = t.as_microsecond();
    let floor = Timestamp::from_microsecond(micros).expect("a truncated timestamp stays in range");
    if floor > t {
        Timestamp::from_microsecond(micros - 1).expect("a truncated timestamp stays in range")
    } else {
        floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_to_microseconds_and_shares_state() {
        let t = Timestamp::new(1_772_438_400, 123_456_789).unwrap();
        let clock = ManualClock::new(t);
        assert_eq!(
            clock.now(),
            Timestamp::new(1_772_438_400, 123_456_000).unwrap()
        );
        let other = clock.clone();
        other.advance(SignedDuration::from_nanos(999));
        assert_eq!(
            clock.now(),
            Timestamp::new(1_772_438_400, 123_456_000).unwrap()
        );
        other.advance(SignedDuration::from_secs(60));
        assert_eq!(
            clock.now(),
            Timestamp::new(1_772_438_460, 123_456_000).unwrap()
        );
        let pre_epoch = Timestamp::new(-1, 999_999_999).unwrap();
        assert_eq!(
            truncate(pre_epoch),
            Timestamp::new(-1, 999_999_000).unwrap()
        );
    }

    #[test]
    fn parses_literals() {
        let clock = ManualClock::at("2026-03-02T08:00:00Z");
        assert_eq!(clock.now().to_string(), "2026-03-02T08:00:00Z");
        clock.set(parse_instant("2026-03-03T08:00:00Z"));
        assert_eq!(Clock::now(&clock).to_string(), "2026-03-03T08:00:00Z");
    }

    #[test]
    #[should_panic(expected = "never goes backwards")]
    fn refuses_to_go_backwards() {
        let clock = ManualClock::at("2026-03-02T08:00:00Z");
        clock.set(parse_instant("2026-03-01T08:00:00Z"));
    }
}
