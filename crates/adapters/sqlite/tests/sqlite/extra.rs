//! What the contract suites cannot see: raw rows, encryption at rest, erasure scans of
//! every column, bad data, concurrency, crash safety and query counts.

use std::sync::Arc;

use convene_domain::audit::{Actor, AuditAction, AuditEntry};
use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::ports::{
    AuditLog, Credentials, GrantStore, Store, StoreError, TenantStore, UserStore,
};
use convene_sqlite::SqliteStore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use crate::common::{file_store, ring, store};
use crate::scenarios;

/// Every TEXT value of every table, lower case, with where it is.
async fn every_text_value(store: &SqliteStore) -> Vec<(String, String, String)> {
    let pool = store.pool();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .expect("tables");
    let mut values = Vec::new();
    for (table,) in tables {
        let columns = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, type FROM pragma_table_info('{table}')"
        )))
        .fetch_all(pool)
        .await
        .expect("columns");
        for c in columns {
            let (column, ty): (String, String) = (c.get(0), c.get(1));
            if !ty.eq_ignore_ascii_case("TEXT") {
                continue;
            }
            let rows: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT \"{column}\" FROM \"{table}\""
            )))
            .fetch_all(pool)
            .await
            .expect("values");
            for (v,) in rows.into_iter().filter_map(|(v,)| v.map(|v| (v,))) {
                values.push((table.clone(), column.clone(), v.to_lowercase()));
            }
        }
    }
    values
}

#[tokio::test]
async fn erasure_leaves_no_name_or_email_in_any_text_column() {
    let store = store().await;
    let person = scenarios::a_busy_person(store.clone() as Arc<dyn Store>).await;
    let mentions = |values: &[(String, String, String)], erased: &scenarios::Erased| {
        values
            .iter()
            .filter(|(_, _, v)| v.contains(&erased.name) || v.contains(&erased.email))
            .map(|(t, c, _)| format!("{t}.{c}"))
            .collect::<Vec<_>>()
    };
    let before = mentions(&every_text_value(&store).await, &person.erased);
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
    let values = every_text_value(&store).await;
    let hits = mentions(&values, &erased);
    assert!(hits.is_empty(), "left behind in {hits:?}");
    for kept in &erased.kept {
        assert!(
            values.iter().any(|(_, _, v)| v.contains(kept)),
            "the scan sees stored data ({kept} is there)"
        );
    }
}

#[tokio::test]
async fn credentials_are_ciphertext_rotate_and_refuse_a_wrong_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = file_store(&dir, ring(&[("k1", 1)])).await;
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
        .fetch_all(first.pool())
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
    drop(first);

    let rotating = file_store(&dir, ring(&[("k1", 1), ("k2", 2)])).await;
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
        .fetch_all(rotating.pool())
        .await
        .expect("key ids");
    assert!(ids.iter().all(|(k,)| k == "k2"), "{ids:?}");
    drop(rotating);

    let new_only = file_store(&dir, ring(&[("k2", 2)])).await;
    let c = new_only
        .credentials(a.id, grants[1].id())
        .await
        .expect("credentials")
        .expect("present");
    assert_eq!(c.refresh_token.expose_secret(), "plain-refresh-token-1");
    drop(new_only);

    let wrong = file_store(&dir, ring(&[("k2", 7)])).await;
    match wrong.credentials(a.id, grants[0].id()).await {
        Err(StoreError::Corrupt(m)) => assert!(
            m.contains("cannot decrypt") && m.contains(&grants[0].id().to_string()),
            "a clear message: {m}"
        ),
        other => panic!("a wrong key must be Corrupt, got {other:?}"),
    }
    let missing = file_store(&dir, ring(&[("k3", 3)])).await;
    assert!(matches!(
        missing.credentials(a.id, grants[0].id()).await,
        Err(StoreError::Corrupt(m)) if m.contains("k2")
    ));
}

#[tokio::test]
async fn bad_data_is_refused_and_changes_nothing() {
    scenarios::bad_data_changes_nothing(store().await).await;
}

#[tokio::test]
async fn concurrent_bookings_have_one_winner() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    scenarios::racing_bookings(file_store(&dir, ring(&[("k1", 1)])).await, 20).await;
}

#[tokio::test]
async fn one_worker_drains_with_another_racing_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    scenarios::two_workers_drain(file_store(&dir, ring(&[("k1", 1)])).await, 300).await;
}

#[tokio::test]
async fn a_dead_worker_loses_nothing() {
    scenarios::a_dead_worker_loses_nothing(store().await).await;
}

#[tokio::test]
async fn loading_a_meeting_is_a_fixed_number_of_queries() {
    let store = store().await;
    let counter = store.clone();
    scenarios::meetings_take_a_fixed_number_of_queries(store, &move || counter.queries()).await;
}

#[tokio::test]
async fn the_audit_log_refuses_update_and_delete() {
    let store = store().await;
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
        "UPDATE audit_log SET subject = 'x'",
        "DELETE FROM audit_log",
    ] {
        let err = sqlx::query(sql)
            .execute(store.pool())
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("append-only"), "{err}");
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

#[tokio::test]
async fn ping_says_whether_migrations_are_applied() {
    let fresh = SqliteStore::connect("sqlite::memory:", ring(&[("k1", 1)]))
        .await
        .expect("a database");
    assert!(matches!(
        fresh.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    fresh.migrate().await.expect("migrate");
    assert_eq!(fresh.ping().await, Ok(()));
}

#[tokio::test]
async fn a_meeting_round_trips_through_its_life() {
    scenarios::a_meeting_round_trips_through_its_life(store().await).await;
}

#[tokio::test]
async fn a_snapshot_copies_every_row_and_administration_never_creates_a_database() {
    let dir = tempfile::tempdir().expect("a folder");
    let store = file_store(&dir, ring(&[("k1", 1)])).await;
    scenarios::a_busy_person(store.clone() as Arc<dyn Store>).await;
    let copy = dir.path().join("copy.db");
    store.snapshot_into(&copy).await.expect("a snapshot");
    let reopened =
        SqliteStore::connect_existing(&format!("sqlite://{}", copy.display()), ring(&[("k1", 1)]))
            .await
            .expect("the copy opens");
    assert_eq!(reopened.ping().await, Ok(()));
    let rows = every_text_value(&store).await;
    assert!(!rows.is_empty());
    assert_eq!(every_text_value(&reopened).await, rows);
    assert!(
        store.snapshot_into(&copy).await.is_err(),
        "an existing file is never overwritten"
    );

    let missing = dir.path().join("missing.db");
    let url = format!("sqlite://{}?mode=rwc", missing.display());
    assert!(matches!(
        SqliteStore::connect_existing(&url, ring(&[("k1", 1)])).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(!missing.exists());
}
