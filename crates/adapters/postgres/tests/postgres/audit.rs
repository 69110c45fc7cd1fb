//! The audit log on PostgreSQL keeps one row per group of entries appended together that
//! share their tenant, actor, action, instant and source (migration 0008); each entry
//! keeps its id and subject, and reads see them one by one as before.

use std::net::IpAddr;

use convene_domain::audit::{Actor, AuditAction, AuditEntry, AuditFrom};
use convene_domain::ids::TenantId;
use convene_domain::ports::{AuditLog, StoreError, TenantStore};
use convene_domain::time::{SignedDuration, Timestamp};
use convene_postgres::MIGRATOR;
use convene_sql::rows::AuditRow;
use sqlx::PgPool;

use crate::common::store;
use crate::scenarios;

fn at(minutes: i64) -> Timestamp {
    scenarios::t0() + SignedDuration::from_mins(minutes)
}

fn entry(n: u128, tenant: TenantId, actor: Actor, at: Timestamp) -> AuditEntry {
    AuditEntry {
        id: scenarios::id(n),
        tenant,
        actor,
        action: AuditAction::FreeBusyRead,
        subject: format!("grant-{n}"),
        at,
        source: Some(IpAddr::from([192, 0, 2, 7])),
    }
}

async fn rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Every entry of `tenant`, paged three at a time as the admin pages and the export do.
async fn all(store: &dyn AuditLog, tenant: TenantId) -> Vec<AuditEntry> {
    let mut from = AuditFrom::since(scenarios::t0());
    let mut seen = Vec::new();
    for _ in 0..100 {
        let page = store.entries(tenant, from, 3).await.expect("a page");
        let Some(last) = page.last() else { break };
        from = AuditFrom::after(last);
        seen.extend(page);
    }
    seen
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn an_availability_requests_reads_are_one_row(pool: PgPool) {
    let store = store(pool.clone());
    let a = scenarios::tenant(1, "acme");
    store.insert_tenant(&a).await.expect("insert_tenant");
    let organizer = Actor::User(scenarios::id(2));
    // Appended out of id order, as the reads come back from the providers.
    let reads: Vec<AuditEntry> = (0..50u128)
        .map(|n| entry(1_000 + (n * 37) % 50, a.id, organizer, at(1)))
        .collect();
    store.append(&reads).await.expect("append");
    assert_eq!(rows(&pool).await, 1, "50 reads of one request, one row");

    // A second append with two groups, interleaved (another actor at the same instant,
    // its entries out of id order, and the system a minute later with an entry without
    // a source).
    let mut system = entry(900, a.id, Actor::System, at(2));
    system.source = None;
    system.action = AuditAction::GrantCheckRefused;
    let admin = Actor::Admin(scenarios::id(3));
    let other = entry(2_001, a.id, admin, at(1));
    let other_too = entry(2_000, a.id, admin, at(1));
    store
        .append(&[other.clone(), system.clone(), other_too.clone()])
        .await
        .expect("append");
    assert_eq!(rows(&pool).await, 3, "one row per group");

    let mut expected = reads;
    expected.extend([system, other, other_too]);
    expected.sort_by_key(AuditEntry::position);
    assert_eq!(
        all(store.as_ref(), a.id).await,
        expected,
        "every entry, once, by instant then id"
    );
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn a_refused_append_stores_nothing(pool: PgPool) {
    let store = store(pool.clone());
    let a = scenarios::tenant(1, "acme");
    store.insert_tenant(&a).await.expect("insert_tenant");
    let twice = entry(10, a.id, Actor::System, at(1));
    assert!(matches!(
        store
            .append(&[twice.clone(), entry(11, a.id, Actor::System, at(1)), twice])
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let stranger = scenarios::tenant(9, "nobody");
    assert_eq!(
        store
            .append(&[
                entry(12, a.id, Actor::System, at(1)),
                entry(13, stranger.id, Actor::System, at(1)),
            ])
            .await,
        Err(StoreError::UnknownTenant)
    );
    assert_eq!(rows(&pool).await, 0);
}

#[sqlx::test(migrations = false)]
async fn the_migration_groups_the_rows_already_there(pool: PgPool) {
    MIGRATOR
        .run_to(7, &pool)
        .await
        .expect("migrations up to 0007");
    let store = store(pool.clone());
    let a = scenarios::tenant(1, "acme");
    let b = scenarios::tenant(2, "beta");
    for t in [&a, &b] {
        store.insert_tenant(t).await.expect("insert_tenant");
    }
    let user = Actor::User(scenarios::id(3));
    let mut before: Vec<AuditEntry> = (0..5u128)
        .map(|n| entry(100 + n, a.id, user, at(1)))
        .collect();
    before.push(entry(90, a.id, Actor::Admin(scenarios::id(4)), at(1)));
    let mut system = entry(95, a.id, Actor::System, at(1));
    system.source = None;
    before.push(system);
    before.push(entry(80, a.id, user, at(2)));
    before.push(entry(70, b.id, user, at(1)));
    // Written as the store wrote them before 0008: a row each.
    for e in &before {
        let row = AuditRow::of(e).expect("a row");
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, id, actor_kind, actor_id, action, subject, at, \
             source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(row.tenant_id)
        .bind(row.id)
        .bind(row.actor_kind)
        .bind(row.actor_id)
        .bind(row.action)
        .bind(row.subject)
        .bind(row.at)
        .bind(row.source)
        .execute(&pool)
        .await
        .expect("an old row");
    }

    store.migrate().await.expect("migrate");
    assert_eq!(
        rows(&pool).await,
        5,
        "rows grouped: user, admin, system, later, beta"
    );
    for tenant in [a.id, b.id] {
        let mut expected: Vec<AuditEntry> = before
            .iter()
            .filter(|e| e.tenant == tenant)
            .cloned()
            .collect();
        expected.sort_by_key(AuditEntry::position);
        assert_eq!(all(store.as_ref(), tenant).await, expected);
    }
    let refused = sqlx::query("UPDATE audit_log SET action = 'x'")
        .execute(&pool)
        .await
        .expect_err("still append-only");
    assert!(refused.to_string().contains("append-only"), "{refused}");
}

/// Appends made at once: what each answered and how many statements they took.
async fn at_once(
    store: &std::sync::Arc<convene_postgres::PgStore>,
    appends: &[Vec<AuditEntry>],
) -> (Vec<Result<(), StoreError>>, u64) {
    let before = store.queries();
    let answers = futures::future::join_all(appends.iter().map(|entries| {
        let store = store.clone();
        async move { store.append(entries).await }
    }))
    .await;
    (answers, store.queries() - before)
}

/// Twenty requests' reads, five each, each request its own actor.
fn twenty_requests(tenant: TenantId, first: u128) -> Vec<Vec<AuditEntry>> {
    (0..20u128)
        .map(|r| {
            let actor = Actor::User(scenarios::id(100 + r));
            (0..5)
                .map(|n| entry(first + r * 10 + n, tenant, actor, at(1)))
                .collect()
        })
        .collect()
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn appends_made_at_once_share_statements_and_fail_alone(pool: PgPool) {
    let store = store(pool.clone());
    let a = scenarios::tenant(1, "acme");
    store.insert_tenant(&a).await.expect("insert_tenant");

    let good = twenty_requests(a.id, 10_000);
    let (answers, statements) = at_once(&store, &good).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert!(
        statements < 10,
        "appends that waited for the one before were written together: {statements} statements"
    );

    // One append for a tenant that does not exist, among good ones: it fails alone.
    let ghost = scenarios::tenant(9, "ghost");
    let mut mixed = twenty_requests(a.id, 20_000);
    mixed.insert(10, vec![entry(99_999, ghost.id, Actor::System, at(1))]);
    let (answers, _) = at_once(&store, &mixed).await;
    for (i, answer) in answers.iter().enumerate() {
        let expected = if i == 10 {
            Err(StoreError::UnknownTenant)
        } else {
            Ok(())
        };
        assert_eq!(answer, &expected, "append {i}");
    }

    let mut seen: Vec<_> = all(&*store, a.id).await.into_iter().map(|e| e.id).collect();
    let mut expected: Vec<_> = good
        .iter()
        .chain(&mixed)
        .flatten()
        .filter(|e| e.tenant == a.id)
        .map(|e| e.id)
        .collect();
    seen.sort();
    expected.sort();
    assert!(
        seen == expected,
        "every entry of every good append, once: {} of {}",
        seen.len(),
        expected.len()
    );
}
