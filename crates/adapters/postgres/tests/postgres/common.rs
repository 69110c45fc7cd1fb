//! Stores over the fresh database `#[sqlx::test]` hands each test.

use std::sync::Arc;

use convene_crypto::{KeyId, KeyRing};
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
