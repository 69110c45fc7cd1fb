//! The testkit contract suites, unchanged, each on a fresh database.

use std::sync::Arc;

use convene_domain::ports::Store;
use convene_testkit::contract;

use crate::common::{file_store, ring, store};

#[tokio::test]
async fn tenant_store() {
    contract::tenant_store(store().await.as_ref()).await;
}

#[tokio::test]
async fn user_store() {
    contract::user_store(store().await.as_ref()).await;
}

#[tokio::test]
async fn grant_store() {
    contract::grant_store(store().await.as_ref()).await;
}

#[tokio::test]
async fn meeting_store() {
    contract::meeting_store(store().await.as_ref()).await;
}

#[tokio::test]
async fn erasure() {
    contract::erasure(store().await.as_ref()).await;
}

#[tokio::test]
async fn session_store() {
    contract::session_store(store().await.as_ref()).await;
}

#[tokio::test]
async fn audit_log() {
    contract::audit_log(store().await.as_ref()).await;
}

#[tokio::test]
async fn outbox() {
    contract::outbox(store().await.as_ref()).await;
}

#[tokio::test]
async fn outbox_complete_all() {
    contract::outbox_complete_all(store().await.as_ref()).await;
}

#[tokio::test]
async fn outbox_purge() {
    contract::outbox_purge(store().await.as_ref()).await;
}

/// The same suites on database files (WAL, separate reader and writer connections).
#[tokio::test]
async fn all_suites_on_files() {
    let dirs: std::sync::Mutex<Vec<tempfile::TempDir>> = Default::default();
    contract::all(|| async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = file_store(&dir, ring(&[("k1", 1)])).await;
        dirs.lock().expect("not poisoned").push(dir);
        store as Arc<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn tenant_admin() {
    contract::tenant_admin(store().await.as_ref()).await;
}

#[tokio::test]
async fn ballots() {
    contract::ballots(store().await.as_ref()).await;
}
