//! The testkit contract suites, unchanged, each on a fresh database.

use convene_testkit::contract;
use sqlx::PgPool;

use crate::common::store;

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn tenant_store(pool: PgPool) {
    contract::tenant_store(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn user_store(pool: PgPool) {
    contract::user_store(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn grant_store(pool: PgPool) {
    contract::grant_store(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn meeting_store(pool: PgPool) {
    contract::meeting_store(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn erasure(pool: PgPool) {
    contract::erasure(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn session_store(pool: PgPool) {
    contract::session_store(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn audit_log(pool: PgPool) {
    contract::audit_log(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn outbox(pool: PgPool) {
    contract::outbox(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn outbox_complete_all(pool: PgPool) {
    contract::outbox_complete_all(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn outbox_purge(pool: PgPool) {
    contract::outbox_purge(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn tenant_admin(pool: PgPool) {
    contract::tenant_admin(store(pool).as_ref()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn ballots(pool: PgPool) {
    contract::ballots(store(pool).as_ref()).await;
}
