//! The real clock, ids and randomness: the only place Convene reads the system clock or
//! the operating system's random source.

use convene_domain::ports::{Clock, IdGenerator};
use convene_domain::time::Timestamp;
use rand::RngCore;

/// The system clock, in microseconds (as the databases store time), never going
/// backwards within one process.
#[derive(Debug, Default)]
pub struct SystemClock {
    last: std::sync::Mutex<Option<Timestamp>>,
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        let now = Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = match *last {
            Some(prev) if prev > now => prev,
            _ => now,
        };
        *last = Some(now);
        now
    }
}

/// UUIDv7: time-ordered, so primary-key indexes stay compact.
#[derive(Debug, Default)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn next_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}

/// `n` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}
