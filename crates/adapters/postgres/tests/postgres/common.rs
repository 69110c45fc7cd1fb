//! Stores over the fresh database `#[sqlx::test]` hands each test.

use std::sync::Arc;

use convene_crypto::{KeyId, KeyRing};
use convene_domain::meeting::{Answer, GuestPass, Meeting};
use convene_domain::ports::MeetingStore;
use convene_domain::time::{SignedDuration, Timestamp};
use convene_postgres::PgStore;
use sqlx::PgPool;

/// A key ring of the given `(id, byte)` keys, the last one current.
pub(crate) fn ring(keys: &[(&str, u8)]) -> KeyRing {
    let current = keys.last().expect("at least one key").0;
    KeyRing::from_keys(
        keys.iter()
            .map(|(id, b)| (KeyId::new(id).expect("a key id"), [*b; 32])),
        KeyId::new(current).expect("a key id"),
    )
    .expect("a key ring")
}

/// A store over the test's (migrated) database.
pub(crate) fn store(pool: PgPool) -> Arc<PgStore> {
    Arc::new(PgStore::from_pool(pool, ring(&[("k1", 1)])))
}

/// Guest `g` (1-based) answers through `store` at `at`, as the scheduler does: read,
/// check, count. Returns how many statements the count took.
pub(crate) async fn vote(
    store: &PgStore,
    m: &Meeting,
    g: usize,
    answers: &[(usize, Answer)],
    at: Timestamp,
) -> u64 {
    let copy = store.meeting(m.tenant(), m.id()).await.expect("meeting");
    let pass = GuestPass {
        tenant: m.tenant(),
        meeting: m.id(),
        participant: copy.participants()[g].id,
        expires_at: at + SignedDuration::from_hours(24 * 365),
    };
    let answers: Vec<_> = answers
        .iter()
        .map(|&(p, a)| (copy.proposals()[p].id, a))
        .collect();
    let ballot = copy
        .ballot_with_pass(&pass, &answers, at)
        .expect("a ballot");
    let before = store.queries();
    store.cast_ballot(&ballot, &[]).await.expect("cast_ballot");
    store.queries() - before
}
