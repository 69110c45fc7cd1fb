//! The audit trail of `/admin`, over the memory store and over SQLite: each operator read
//! of personal data writes exactly one row naming the operator, the action, the subject
//! and the address it came from; each operator change is written too; what holds no
//! personal data (tenant names, outbox counts) is served without a row.
//!
//! That rows cannot be changed afterwards is the database's promise: on PostgreSQL,
//! `UPDATE`, `DELETE` and `TRUNCATE` of `audit_log` fail even for the superuser
//! (`the_audit_log_refuses_update_and_delete` in crates/adapters/postgres/tests/postgres/
//! extra.rs); on SQLite, triggers refuse `UPDATE` and `DELETE` (tested below).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use convene_domain::audit::{Actor, AuditAction, AuditEntry};
use convene_domain::consent::Provider;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{TenantId, UserId};
use convene_domain::ports::{AuditLog, Store};
use convene_domain::time::Timestamp;
use convene_testkit::fixtures::World;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::harness::{TestApp, sqlite_copy_of};
use super::trust_access::{
    ADMIN_TOKEN, SUPPORT_TOKEN, admin_id, fresh_code, operators, support_id,
};

async fn rows(store: &Arc<dyn Store>, tenant: TenantId) -> Vec<AuditEntry> {
    store
        .entries(
            tenant,
            convene_domain::audit::AuditFrom::since(Timestamp::UNIX_EPOCH),
            10_000,
        )
        .await
        .unwrap()
}

/// An operator request from the allowed network, with a fresh code: its response and
/// the audit rows it added, per tenant (`acme`, then the other).
async fn operate(
    app: &TestApp,
    tenants: [TenantId; 2],
    method: Method,
    path: &str,
    token: &str,
) -> (reqwest::Response, [Vec<AuditEntry>; 2]) {
    let mut before = Vec::new();
    for t in tenants {
        before.push(
            rows(&app.store, t)
                .await
                .into_iter()
                .map(|e| e.id)
                .collect::<HashSet<_>>(),
        );
    }
    let code = fresh_code(app);
    let r = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("x-convene-totp", code)
        .send()
        .await
        .unwrap();
    let mut added = [Vec::new(), Vec::new()];
    for (i, t) in tenants.into_iter().enumerate() {
        added[i] = rows(&app.store, t)
            .await
            .into_iter()
            .filter(|e| !before[i].contains(&e.id))
            .collect();
    }
    (r, added)
}

/// Asserts `rows` is exactly one row of `action` by `operator` about `subject`, from the
/// loopback address, at the app's time.
fn one_row(
    app: &TestApp,
    rows: &[AuditEntry],
    tenant: TenantId,
    operator: UserId,
    action: AuditAction,
    subject: &str,
) {
    assert_eq!(rows.len(), 1, "exactly one row for {action:?}: {rows:#?}");
    let row = &rows[0];
    assert_eq!(row.tenant, tenant);
    assert_eq!(row.actor, Actor::Admin(operator), "{row:?}");
    assert_eq!(row.action, action, "{row:?}");
    assert_eq!(row.subject, subject, "{row:?}");
    assert_eq!(row.source, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), "{row:?}");
    assert_eq!(row.at, app.world.now(), "{row:?}");
}

async fn operator_reads_and_changes_are_audited(app: TestApp, acme: TenantId, other: TenantId) {
    let tenants = [acme, other];
    let ada = app
        .store
        .user_by_email(acme, &EmailAddress::parse("ada@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let grace = app
        .store
        .user_by_email(acme, &EmailAddress::parse("grace@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap();

    // Listing a tenant's users: one row per read, in that tenant only.
    for _ in 0..2 {
        let (r, added) = operate(
            &app,
            tenants,
            Method::GET,
            &format!("/admin/tenants/{acme}/users"),
            SUPPORT_TOKEN,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let users: Value = r.json().await.unwrap();
        assert_eq!(users.as_array().unwrap().len(), 2, "{users}");
        one_row(
            &app,
            &added[0],
            acme,
            support_id(),
            AuditAction::AdminListUsers,
            "2 users",
        );
        assert!(
            added[1].is_empty(),
            "nothing in another tenant: {:?}",
            added[1]
        );
    }

    // Reading a user reads their grants too: one row for the read, not one per record.
    let (r, added) = operate(
        &app,
        tenants,
        Method::GET,
        &format!("/admin/tenants/{acme}/users/{}", grace.id),
        SUPPORT_TOKEN,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["user"]["email"], "grace@acme.test");
    assert_eq!(view["grants"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["grants"][0]["provider"], "microsoft", "{view}");
    one_row(
        &app,
        &added[0],
        acme,
        support_id(),
        AuditAction::AdminReadUser,
        &grace.id.to_string(),
    );
    assert!(added[1].is_empty());

    // Reading the audit log is itself audited, and shows the rows above as they were written.
    let since = "2020-01-01T00:00:00Z";
    let (r, added) = operate(
        &app,
        tenants,
        Method::GET,
        &format!("/admin/tenants/{acme}/audit?since={since}"),
        SUPPORT_TOKEN,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let log: Value = r.json().await.unwrap();
    one_row(
        &app,
        &added[0],
        acme,
        support_id(),
        AuditAction::AdminReadAudit,
        "since 2020-01-01T00:00:00Z",
    );
    let reads: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["kind"] == "admin")
        .collect();
    assert_eq!(reads.len(), 3, "{log}");
    for e in reads {
        assert_eq!(e["actor"]["id"], support_id().to_string(), "{e}");
        assert_eq!(e["source"], "127.0.0.1", "{e}");
    }

    // Tenant names and outbox counts are no one's personal data: served without a row.
    let (r, added) = operate(&app, tenants, Method::GET, "/admin/tenants", SUPPORT_TOKEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(added.iter().all(Vec::is_empty), "{added:?}");
    let (r, added) = operate(&app, tenants, Method::GET, "/admin/outbox", SUPPORT_TOKEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    let counts: Value = r.json().await.unwrap();
    let keys: HashSet<&str> = counts
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["pending", "in_flight", "delivered", "dead"]),
        "{counts}"
    );
    assert!(
        counts.as_object().unwrap().values().all(Value::is_u64),
        "{counts}"
    );
    assert!(added.iter().all(Vec::is_empty), "{added:?}");

    // Changes by an admin-level operator: revoking a grant, then erasing the user.
    let grant = app.store.grants_of(acme, &[grace.id]).await.unwrap()[0].id();
    let (r, added) = operate(
        &app,
        tenants,
        Method::POST,
        &format!(
            "/admin/tenants/{acme}/users/{}/grants/microsoft/revoke",
            grace.id
        ),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    one_row(
        &app,
        &added[0],
        acme,
        admin_id(),
        AuditAction::GrantRevoked,
        &grant.to_string(),
    );
    assert!(added[1].is_empty());
    let (r, added) = operate(
        &app,
        tenants,
        Method::DELETE,
        &format!("/admin/tenants/{acme}/users/{}", ada.id),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let erased: Vec<AuditEntry> = added[0]
        .iter()
        .filter(|e| e.action == AuditAction::UserErased)
        .cloned()
        .collect();
    one_row(
        &app,
        &erased,
        acme,
        admin_id(),
        AuditAction::UserErased,
        &ada.id.to_string(),
    );
    // Erasing withdraws the user's consents: each is a row of the same operator.
    let ada_grants: HashSet<String> = app
        .store
        .grants_of(acme, &[ada.id])
        .await
        .unwrap()
        .iter()
        .map(|g| g.id().to_string())
        .collect();
    for e in added[0]
        .iter()
        .filter(|e| e.action != AuditAction::UserErased)
    {
        assert_eq!(e.action, AuditAction::GrantRevoked, "{e:?}");
        assert_eq!(e.actor, Actor::Admin(admin_id()), "{e:?}");
        assert!(ada_grants.contains(&e.subject), "{e:?}");
    }
    assert!(added[1].is_empty());
}

fn world() -> (World, TenantId, TenantId) {
    let world = World::new();
    world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let other = world.other_tenant();
    world.connected_user_in(&other, "eve@other.test", "UTC", Provider::Google);
    let acme = world.tenant.id;
    (world, acme, other.id)
}

#[tokio::test]
async fn operator_reads_and_changes_are_audited_once_each() {
    let (world, acme, other) = world();
    let app = TestApp::spawn_admin(world, operators(&["127.0.0.1/32"])).await;
    operator_reads_and_changes_are_audited(app, acme, other).await;
}

#[tokio::test]
async fn operator_reads_and_changes_are_audited_once_each_over_sqlite() {
    let (world, acme, other) = world();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_copy_of(&world, dir.path()).await;
    let app = TestApp::spawn_on(world, store, operators(&["127.0.0.1/32"])).await;
    operator_reads_and_changes_are_audited(app, acme, other).await;
}

#[tokio::test]
async fn sqlite_refuses_to_change_or_delete_audit_rows() {
    let (world, acme, _) = world();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_copy_of(&world, dir.path()).await;
    let row = AuditEntry {
        id: world.new_id(),
        tenant: acme,
        actor: Actor::Admin(admin_id()),
        action: AuditAction::AdminReadUser,
        subject: "someone".into(),
        at: world.now(),
        source: None,
    };
    store.append(std::slice::from_ref(&row)).await.unwrap();
    drop(store);
    let url = format!("sqlite://{}", dir.path().join("convene.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for sql in [
        "UPDATE audit_log SET subject = 'x'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE subject = 'someone'",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    pool.close().await;
    let ring = convene_crypto::KeyRing::parse(
        &convene_crypto::KeyRing::generate_key_text("t").unwrap(),
        "t",
    )
    .unwrap();
    let store = convene_sqlite::SqliteStore::connect(&url, ring)
        .await
        .unwrap();
    assert_eq!(
        store
            .entries(
                acme,
                convene_domain::audit::AuditFrom::since(Timestamp::UNIX_EPOCH),
                10
            )
            .await
            .unwrap(),
        vec![row]
    );
}
