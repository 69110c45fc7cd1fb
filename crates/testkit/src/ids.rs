//! Ids that sort in the order they were made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use convene_domain::ports::IdGenerator;
use uuid::Uuid;

/// The fixed high bits of every [`SequentialIds`] UUID: a plausible UUIDv7 (version 7,
/// RFC 4122 variant) with a constant timestamp.
const V7_SHAPE: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0000;

/// The largest counter value that fits below the variant bits.
const MAX_COUNTER: u64 = (1 << 62) - 1;

/// An [`IdGenerator`] making `0190…-7000-8000-<n>` UUIDs for n = 1, 2, 3…: they look
/// like UUIDv7 and sort in creation order, so "newest first by id" works as in
/// production. Thread-safe; clones share one counter.
#[derive(Clone, Debug)]
pub struct SequentialIds {
    next: Arc<AtomicU64>,
}

impl SequentialIds {
    /// Starts at 1.
    pub fn new() -> Self {
        Self::starting_at(1)
    }

    /// Starts at `n` (to keep two generators' ids apart).
    pub fn starting_at(n: u64) -> Self {
        Self {
            next: Arc::new(AtomicU64::new(n)),
        }
    }

    /// The UUID this generator makes for counter value `n`.
    ///
    /// # Panics
    /// When `n` does not fit below the variant bits (2^62 - 1).
    pub fn uuid(n: u64) -> Uuid {
        assert!(n <= MAX_COUNTER, "sequential id counter overflow");
        Uuid::from_u128(V7_SHAPE | u128::from(n))
    }

    /// How many ids were made (when started at 1).
    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::SeqCst).saturating_sub(1)
    }
}

impl Default for SequentialIds {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGenerator for SequentialIds {
    fn next_uuid(&self) -> Uuid {
        Self::uuid(self.next.fetch_add(1, Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order_and_look_like_v7() {
        let ids = SequentialIds::new();
        let a = ids.next_uuid();
        let b = ids.clone().next_uuid();
        assert!(a < b);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.to_string(), "01900000-0000-7000-8000-000000000001");
        assert_eq!(ids.issued(), 2);
        let many: Vec<Uuid> = (0..1000).map(|_| ids.next_uuid()).collect();
        assert!(many.windows(2).all(|w| w[0] < w[1]));
    }
}
