//! A fresh, migrated store per test.

use std::sync::Arc;

use convene_crypto::{KeyId, KeyRing};
use convene_sqlite::SqliteStore;

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

/// A fresh in-memory store, migrated.
pub(crate) async fn store() -> Arc<SqliteStore> {
    let store = SqliteStore::connect("sqlite::memory:", ring(&[("k1", 1)]))
        .await
        .expect("an in-memory database");
    store.migrate().await.expect("migrations");
    Arc::new(store)
}

/// A store on a file in `dir`, migrated, with `ring`.
pub(crate) async fn file_store(dir: &tempfile::TempDir, ring: KeyRing) -> Arc<SqliteStore> {
    let url = format!("sqlite://{}", dir.path().join("convene.db").display());
    let store = SqliteStore::connect(&url, ring)
        .await
        .expect("a database file");
    store.migrate().await.expect("migrations");
    Arc::new(store)
}
