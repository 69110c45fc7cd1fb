//! `/admin`: only from allow-listed networks, only with token and a fresh TOTP code,
//! support read-only, every read of personal data audited.

use convene::http::admin::{AdminAccount, AdminGate, AdminLevel};
use convene_domain::access::TokenHash;
use convene_domain::audit::AuditAction;
use convene_domain::consent::Provider;
use convene_domain::ids::UserId;
use convene_domain::ports::UserStore;
use convene_testkit::fixtures::World;
use reqwest::StatusCode;

use super::harness::TestApp;

const SECRET: &[u8] = b"an admin totp secret of 20+ bytes";

fn account(id: u128, level: AdminLevel, token: &str) -> AdminAccount {
    let totp = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(SECRET.to_vec())
        .build()
        .unwrap();
    AdminAccount {
        id: UserId::from_uuid(uuid::Uuid::from_u128(id)),
        level,
        token_hash: TokenHash::of(token),
        totp,
    }
}

fn code(app: &TestApp, steps_back: u64) -> String {
    let totp = account(0, AdminLevel::Admin, "x").totp;
    let now = u64::try_from(app.world.now().as_second()).unwrap();
    totp.generate(now - steps_back * 30).to_string()
}

/// How many admin reads of a tenant's user list are in the audit log.
fn user_listings(app: &TestApp) -> usize {
    app.world
        .store
        .audit_entries()
        .iter()
        .filter(|e| e.action == AuditAction::AdminListUsers)
        .count()
}

fn gate(networks: &[&str]) -> AdminGate {
    AdminGate::new(
        networks.iter().map(|n| n.parse().unwrap()).collect(),
        vec![
            account(1, AdminLevel::Support, "support-token"),
            account(2, AdminLevel::Admin, "admin-token"),
        ],
    )
}

#[tokio::test]
async fn admin_needs_the_network_the_token_and_a_fresh_code() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn_admin(world, gate(&["127.0.0.1/32"])).await;
    let users = app.url(&format!("/admin/tenants/{}/users", ada.tenant));
    let get = |token: &str, code: Option<String>| {
        let mut r = app.http.get(&users).bearer_auth(token);
        if let Some(c) = code {
            r = r.header("x-convene-totp", c);
        }
        r.send()
    };
    assert_eq!(
        get("support-token", None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "no TOTP"
    );
    assert_eq!(
        get("support-token", Some("000000".into()))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get("nobody", Some(code(&app, 0))).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(user_listings(&app), 0);
    let fresh = code(&app, 0);
    let r = get("support-token", Some(fresh.clone())).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body[0]["email"], "ada@acme.test");
    assert_eq!(
        user_listings(&app),
        1,
        "one audit row per read of personal data"
    );
    let row = app
        .world
        .store
        .audit_entries()
        .into_iter()
        .find(|e| e.action == AuditAction::AdminListUsers)
        .unwrap();
    assert_eq!(
        row.source.map(|s| s.to_string()).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        get("support-token", Some(fresh)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "a code works once"
    );
    // Support is read-only (with the next step's code: this one was used).
    app.world.clock.advance(jiff::SignedDuration::from_secs(30));
    let erase = app.url(&format!("/admin/tenants/{}/users/{}", ada.tenant, ada.id));
    let r = app
        .http
        .delete(&erase)
        .bearer_auth("support-token")
        .header("x-convene-totp", code(&app, 0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        app.world
            .store
            .user_by_email(ada.tenant, &ada.email)
            .await
            .unwrap()
            .is_some(),
        "nothing changed"
    );
}

#[tokio::test]
async fn admin_is_refused_from_elsewhere_even_with_valid_credentials() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn_admin(world, gate(&["10.0.0.0/8"])).await;
    let r = app
        .http
        .get(app.url(&format!("/admin/tenants/{}/users", ada.tenant)))
        .bearer_auth("admin-token")
        .header("x-convene-totp", code(&app, 0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert!(
        app.world
            .store
            .audit_entries()
            .iter()
            .all(|e| e.action != AuditAction::AdminListUsers)
    );
}

#[tokio::test]
async fn an_oversized_page_is_refused_not_cut_short() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn_admin(world, gate(&["127.0.0.1/32"])).await;
    let list = |limit: u32| {
        app.http
            .get(app.url(&format!(
                "/admin/tenants/{}/users?limit={limit}",
                ada.tenant
            )))
            .bearer_auth("support-token")
            .header("x-convene-totp", code(&app, 0))
            .send()
    };
    let r = list(101).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "a problem document"
    );
    let problem: serde_json::Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("limit: between 1 and 100"),
        "{problem}"
    );
    assert_eq!(
        user_listings(&app),
        0,
        "nothing was read, so nothing is audited"
    );
    app.world.clock.advance(jiff::SignedDuration::from_secs(30));
    let r = list(100).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(user_listings(&app), 1);
}
