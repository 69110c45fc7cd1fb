//! The store contract suites against [`MemoryStore`]: the fake passes what every
//! adapter must.

use convene_testkit::MemoryStore;
use convene_testkit::contract;

#[tokio::test]
async fn tenant_store() {
    contract::tenant_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn user_store() {
    contract::user_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn grant_store() {
    contract::grant_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn meeting_store() {
    contract::meeting_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn erasure() {
    contract::erasure(&MemoryStore::new()).await;
}

#[tokio::test]
async fn session_store() {
    contract::session_store(&MemoryStore::new()).await;
}

#[tokio::test]
async fn audit_log() {
    contract::audit_log(&MemoryStore::new()).await;
}

#[tokio::test]
async fn outbox() {
    contract::outbox(&MemoryStore::new()).await;
}

#[tokio::test]
async fn outbox_complete_all() {
    contract::outbox_complete_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn outbox_purge() {
    contract::outbox_purge(&MemoryStore::new()).await;
}

#[tokio::test]
async fn all_suites_through_the_runner() {
    contract::all(|| async {
        std::sync::Arc::new(MemoryStore::new()) as std::sync::Arc<dyn convene_domain::ports::Store>
    })
    .await;
}

#[tokio::test]
async fn tenant_admin() {
    contract::tenant_admin(&MemoryStore::new()).await;
}

#[tokio::test]
async fn ballots() {
    contract::ballots(&MemoryStore::new()).await;
}
