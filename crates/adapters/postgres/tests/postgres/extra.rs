//! What the contract suites cannot see: raw rows, encryption at rest, erasure scans of
//! every column, bad data, concurrency, crash safety, query counts and the audit trigger.

use std::sync::Arc;

use convene_domain::audit::{Actor, AuditAction, AuditEntry};
use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::ports::{
    AuditLog, Credentials, GrantStore, Store, StoreError, TenantStore, UserStore,
};
use convene_postgres::PgStore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool};

use crate::common::{ring, store};
use crate::scenarios;

/// Every text and JSON value of every table, lower case, with where it is.
async fn every_text_value(pool: &PgPool) -> Vec<(String, String, String)> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() \
         AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb') \
         ORDER BY table_name, column_name",
    )
    .fetch_all(pool)
    .await
    .expect("columns");
    let mut values = Vec::new();
    for (table, column) in columns {
        // Names come from the catalog, not from input.
        let rows: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT \"{column}\"::text FROM \"{table}\""
        )))
        .fetch_all(pool)
        .await
        .expect("values");
        for v in rows.into_iter().filter_map(|(v,)| v) {
            values.push((table.clone(), column.clone(), v.to_lowercase()));
        }
    }
    values
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn erasure_leaves_no_name_or_email_in_any_text_column(pool: PgPool) {
    let store = store(pool.clone());
    let person = scenarios::a_busy_person(store.clone() as Arc<dyn Store>).await;
    let mentions = |values: &[(String, String, String)], erased: &scenarios::Erased| {
        values
            .iter()
            .filter(|(_, _, v)| v.contains(&erased.name) || v.contains(&erased.email))
            .map(|(t, c, _)| format!("{t}.{c}"))
            .collect::<Vec<_>>()
    };
    let before = mentions(&every_text_value(&pool).await, &person.erased);
    for place in [
        "users.name",
        "users.email",
        "participants.email",
        "outbox.payload",
    ] {
        assert!(
            before.iter().any(|p| p == place),
            "{place} held them: {before:?}"
        );
    }
    let erased = person.erase().await;
    let values = every_text_value(&pool).await;
    let hits = mentions(&values, &erased);
    assert!(hits.is_empty(), "left behind in {hits:?}");
    for kept in &erased.kept {
        assert!(
            values.iter().any(|(_, _, v)| v.contains(kept)),
            "the scan sees stored data ({kept} is there)"
        );
    }
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn credentials_are_ciphertext_rotate_and_refuse_a_wrong_key(pool: PgPool) {
    let first = PgStore::from_pool(pool.clone(), ring(&[("k1", 1)]));
    let a = scenarios::tenant(1, "acme");
    first.insert_tenant(&a).await.expect("insert_tenant");
    let mut grants = Vec::new();
    for n in 0..3u128 {
        let u = scenarios::user(10 + n, &a, &format!("u{n}@acme.example"), "User");
        first.insert_user(&u).await.expect("insert_user");
        let g = Grant::new(
            scenarios::id(20 + n),
            a.id,
            u.id,
            Provider::Google,
            format!("acct-{n}"),
            [Scope::ReadFreeBusy],
            scenarios::t0(),
        )
        .expect("a grant");
        first.save_grant(&g, &[]).await.expect("save_grant");
        let c = Credentials {
            refresh_token: SecretString::from(format!("plain-refresh-token-{n}")),
            access_token: Some(SecretString::from(format!("plain-access-token-{n}"))),
            access_expires_at: None,
        };
        first
            .put_credentials(a.id, g.id(), &c)
            .await
            .expect("put_credentials");
        grants.push(g);
    }
    let raw: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT key_id, ciphertext FROM credentials")
        .fetch_all(&pool)
        .await
        .expect("raw rows");
    assert_eq!(raw.len(), 3);
    for (key_id, blob) in &raw {
        assert_eq!(key_id, "k1");
        assert!(
            !blob
                .windows(11)
                .any(|w| w == b"plain-refre" || w == b"plain-acces"),
            "no plaintext token in the credentials column"
        );
    }
    let as_text: Vec<(String,)> =
        sqlx::query_as("SELECT encode(ciphertext, 'escape') FROM credentials")
            .fetch_all(&pool)
            .await
            .expect("raw rows as text");
    assert!(as_text.iter().all(|(t,)| !t.contains("plain-")));

    let rotating = PgStore::from_pool(pool.clone(), ring(&[("k1", 1), ("k2", 2)]));
    assert_eq!(
        rotating.rotate_keys().await,
        Ok(3),
        "every row re-encrypted"
    );
    assert_eq!(
        rotating.rotate_keys().await,
        Ok(0),
        "nothing left to rotate"
    );
    let ids: Vec<(String,)> = sqlx::query_as("SELECT key_id FROM credentials")
        .fetch_all(&pool)
        .await
        .expect("key ids");
    assert!(ids.iter().all(|(k,)| k == "k2"), "{ids:?}");

    let new_only = PgStore::from_pool(pool.clone(), ring(&[("k2", 2)]));
    let c = new_only
        .credentials(a.id, grants[1].id())
        .await
        .expect("credentials")
        .expect("present");
    assert_eq!(c.refresh_token.expose_secret(), "plain-refresh-token-1");

    let wrong = PgStore::from_pool(pool.clone(), ring(&[("k2", 7)]));
    match wrong.credentials(a.id, grants[0].id()).await {
        Err(StoreError::Corrupt(m)) => assert!(
            m.contains("cannot decrypt") && m.contains(&grants[0].id().to_string()),
            "a clear message: {m}"
        ),
        other => panic!("a wrong key must be Corrupt, got {other:?}"),
    }
    assert!(
        matches!(wrong.rotate_keys().await, Ok(0)),
        "rows already under the current key id are not touched"
    );
    let missing = PgStore::from_pool(pool, ring(&[("k3", 3)]));
    assert!(matches!(
        missing.rotate_keys().await,
        Err(StoreError::Corrupt(m)) if m.contains("k2")
    ));
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn bad_data_is_refused_and_changes_nothing(pool: PgPool) {
    scenarios::bad_data_changes_nothing(store(pool)).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn fifty_concurrent_bookings_have_one_winner(
    _options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // A pool of its own, larger than the test harness's five connections, so that
    // many of the fifty saves really run at once.
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with(connect)
        .await
        .expect("a pool");
    scenarios::racing_bookings(store(pool), 50).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn connections_that_died_while_idle_are_replaced_unnoticed(
    _options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // The store's own pool: it trusts a connection used in the last half second and
    // tests one idle for longer, as after a restart of the server or a proxy's timeout.
    let store = PgStore::connect_with(connect.clone(), ring(&[("k1", 1)]))
        .await
        .expect("a store");
    let busy: Vec<_> = (0..4).map(|_| store.ping()).collect();
    for answer in futures::future::join_all(busy).await {
        answer.expect("the pool's connections work");
    }
    let mut admin = sqlx::PgConnection::connect_with(&connect)
        .await
        .expect("a connection of its own");
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    assert!(!killed.is_empty(), "the pool's connections were found");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    for _ in 0..8 {
        store
            .ping()
            .await
            .expect("a dead idle connection is replaced, not handed out");
    }
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn two_workers_deliver_a_thousand_messages_exactly_once(pool: PgPool) {
    scenarios::two_workers_drain(store(pool), 1_000).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn a_dead_worker_loses_nothing(pool: PgPool) {
    scenarios::a_dead_worker_loses_nothing(store(pool)).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn loading_a_meeting_is_a_fixed_number_of_queries(pool: PgPool) {
    let store = store(pool);
    let counter = store.clone();
    scenarios::meetings_take_a_fixed_number_of_queries(store, &move || counter.queries()).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn the_audit_log_refuses_update_and_delete(pool: PgPool) {
    let store = store(pool.clone());
    let a = scenarios::tenant(1, "acme");
    store.insert_tenant(&a).await.expect("insert_tenant");
    store
        .append(&[AuditEntry {
            id: scenarios::id(2),
            tenant: a.id,
            actor: Actor::System,
            action: AuditAction::KeysRotated,
            subject: "s".into(),
            at: scenarios::t0(),
            source: None,
        }])
        .await
        .expect("append");
    for sql in [
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE false",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(sql)
            .execute(&pool)
            .await
            .expect_err("refused, even for the superuser");
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        store
            .entries(
                a.id,
                convene_domain::audit::AuditFrom::since(scenarios::t0()),
                10
            )
            .await
            .map(|e| e.len()),
        Ok(1)
    );
}

#[sqlx::test(migrations = false)]
async fn ping_says_whether_migrations_are_applied(pool: PgPool) {
    let store = PgStore::from_pool(pool, ring(&[("k1", 1)]));
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    store.migrate().await.expect("migrate");
    assert_eq!(store.ping().await, Ok(()));
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn a_meeting_round_trips_through_its_life(pool: PgPool) {
    scenarios::a_meeting_round_trips_through_its_life(store(pool)).await;
}
