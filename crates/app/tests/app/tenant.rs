//! Tenant administration through the app: the `/api/v1/tenant` routes (who may call
//! them, what each does, one audit row per action), deactivation as the people affected
//! feel it, the worker's periodic grant check, the `/tenant` page, and the operator's
//! `convene tenant` and `convene incident` commands run as the real binary.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use convene_domain::audit::{Actor, AuditAction, AuditEntry};
use convene_domain::consent::{Grant, Provider};
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MeetingId, TenantId};
use convene_domain::outbox::{Notification, OutboxPayload};
use convene_domain::people::{Role, User, UserStatus};
use convene_domain::ports::{
    AuthorizationRequest, Credentials, Identities, IdentityError, IdentityProvider, SignIn, Store,
};
use convene_domain::service::{GrantCheck, Scheduler, SchedulingPolicy};
use convene_domain::tenant::Tenant;
use convene_testkit::FakeIdentity;
use convene_testkit::fixtures::World;
use futures::FutureExt as _;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::harness::{TestApp, problem, sqlite_copy_of};
use super::web::{authorize, callback, set_cookie, set_cookies, spawn_web, start, unescape};

// -------------------------------------------------------------------------- scene

/// Acme with its administrator Ada (Google calendar), Grace (Microsoft calendar) and Bob
/// (no calendar); another tenant with its administrator Eve and Oscar.
struct Org {
    app: TestApp,
    ada: User,
    grace: User,
    bob: User,
    eve: User,
    oscar: User,
    other: Tenant,
    ada_token: String,
    grace_token: String,
    eve_token: String,
}

async fn org() -> Org {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let ada = world.make_tenant_admin(&ada);
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let bob = world.user("bob@acme.test", "UTC");
    let other = world.other_tenant();
    let (eve, _) = world.connected_user_in(&other, "eve@other.test", "UTC", Provider::Google);
    let eve = world.make_tenant_admin(&eve);
    let oscar = world.user_in(&other, "oscar@other.test", "UTC");
    let app = spawn_web(world, false).await;
    Org {
        ada_token: app.token_with(&ada, None, None).await,
        grace_token: app.token_with(&grace, None, None).await,
        eve_token: app.token_with(&eve, None, None).await,
        app,
        ada,
        grace,
        bob,
        eve,
        oscar,
        other,
    }
}

impl Org {
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .request(method, self.app.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    async fn json(&self, token: &str, path: &str) -> Value {
        let r = self.call(token, Method::GET, path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// The user's grants as stored (the memory store answers at once).
    fn grants(&self, user: &User) -> Vec<Grant> {
        self.app
            .store
            .grants_of(user.tenant, &[user.id])
            .now_or_never()
            .expect("the memory store answers at once")
            .unwrap()
    }

    fn audit(&self) -> Vec<AuditEntry> {
        self.app.world.store.audit_entries()
    }

    /// The user as stored.
    fn user(&self, user: &User) -> User {
        self.app
            .store
            .user(user.tenant, user.id)
            .now_or_never()
            .expect("the memory store answers at once")
            .unwrap()
    }
}

fn ids(list: &Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn member<'a>(list: &'a Value, user: &User) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["id"] == user.id.to_string())
        .unwrap_or_else(|| panic!("{} is not in {list}", user.email))
}

const SINCE: &str = "2026-01-01T00:00:00Z";

// ------------------------------------------------------------------------ access

/// One tenant route, as the scene names its targets.
struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Names a user (an outsider gets 404) rather than the whole tenant.
    user_specific: bool,
}

fn routes(o: &Org, settings: &Value) -> Vec<Route> {
    let route = |method: Method, path: String, body: Option<Value>, user_specific| Route {
        method,
        path,
        body,
        user_specific,
    };
    let (bob, grace) = (o.bob.id, o.grace.id);
    vec![
        route(Method::GET, "/api/v1/tenant/users".into(), None, false),
        route(
            Method::GET,
            format!("/api/v1/tenant/users/{bob}"),
            None,
            true,
        ),
        route(
            Method::POST,
            format!("/api/v1/tenant/users/{bob}/deactivate"),
            Some(json!({"meetings": "cancel"})),
            true,
        ),
        route(
            Method::POST,
            format!("/api/v1/tenant/users/{bob}/reactivate"),
            None,
            true,
        ),
        route(
            Method::PUT,
            format!("/api/v1/tenant/users/{bob}/role"),
            Some(json!({"role": "tenant_admin"})),
            true,
        ),
        route(
            Method::DELETE,
            format!("/api/v1/tenant/users/{grace}/grants/microsoft"),
            None,
            true,
        ),
        route(Method::GET, "/api/v1/tenant/settings".into(), None, false),
        route(
            Method::PUT,
            "/api/v1/tenant/settings".into(),
            Some(settings.clone()),
            false,
        ),
        route(
            Method::GET,
            format!("/api/v1/tenant/audit?since={SINCE}"),
            None,
            false,
        ),
    ]
}

fn unchanged(before: &str, after: &str, label: &str) {
    let was: HashSet<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().filter(|l| !was.contains(l)).collect();
    assert!(
        before == after,
        "{label} changed the store; new rows: {new:#?}"
    );
}

#[tokio::test]
async fn members_are_refused_every_tenant_route_and_other_tenants_admins_find_nobody() {
    let o = org().await;
    let settings = json!({
        "working_hours": {"mon": ["08:00-16:00"], "tue": ["08:00-16:00"]},
        "buffer_before_minutes": 10, "buffer_after_minutes": 5, "min_notice_minutes": 240,
        "external_guests": false, "guest_domains": [],
    });
    let routes = routes(&o, &settings);
    assert_eq!(routes.len(), 9);

    // A member of the tenant: 403 everywhere, whatever the route names, and whatever
    // they send (the role is checked before the body is read).
    for r in &routes {
        let bodies = match &r.body {
            Some(body) => vec![Some(body.clone()), Some(json!({"meetings": 1}))],
            None => vec![None],
        };
        for body in bodies {
            let label = format!("{} {} as a member with {body:?}", r.method, r.path);
            let before = o.app.world.store.dump_text();
            let resp = o
                .call(&o.grace_token, r.method.clone(), &r.path, body)
                .await;
            let p = problem(resp, StatusCode::FORBIDDEN).await;
            assert_eq!(p["type"], "/problems/not-tenant-admin", "{label}: {p}");
            unchanged(&before, &o.app.world.store.dump_text(), &label);
        }
    }

    // The administrator of another tenant: Acme's people do not exist for them.
    for r in routes.iter().filter(|r| r.user_specific) {
        let label = format!("{} {} as another tenant's admin", r.method, r.path);
        let before = o.app.world.store.dump_text();
        let resp = o
            .call(&o.eve_token, r.method.clone(), &r.path, r.body.clone())
            .await;
        let p = problem(resp, StatusCode::NOT_FOUND).await;
        assert_eq!(p["type"], "/problems/not-found", "{label}: {p}");
        unchanged(&before, &o.app.world.store.dump_text(), &label);
    }

    // ...and the tenant-wide routes show and change their own tenant only.
    let list = o.json(&o.eve_token, "/api/v1/tenant/users").await;
    assert_eq!(
        ids(&list),
        BTreeSet::from([o.eve.id.to_string(), o.oscar.id.to_string()])
    );
    let acme_before = o.app.store.tenant(o.ada.tenant).await.unwrap();
    let r = o
        .call(
            &o.eve_token,
            Method::PUT,
            "/api/v1/tenant/settings",
            Some(settings.clone()),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(o.app.store.tenant(o.ada.tenant).await.unwrap(), acme_before);
    assert!(
        !o.app
            .store
            .tenant(o.other.id)
            .await
            .unwrap()
            .settings
            .external_guests
    );
    let mine = o.json(&o.eve_token, "/api/v1/tenant/settings").await;
    assert_eq!(mine["external_guests"], false);
    let acme = o.json(&o.ada_token, "/api/v1/tenant/settings").await;
    assert_eq!(acme["external_guests"], true, "Acme's own settings: {acme}");
    let audit = o
        .json(&o.eve_token, &format!("/api/v1/tenant/audit?since={SINCE}"))
        .await;
    let theirs: HashSet<String> = o
        .audit()
        .iter()
        .filter(|e| e.tenant == o.other.id)
        .map(|e| e.id.to_string())
        .collect();
    let rows = audit["items"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(
            theirs.contains(row["id"].as_str().unwrap()),
            "another tenant's row in Eve's log: {row}"
        );
    }
}

#[tokio::test]
async fn each_admin_action_is_allowed_and_audited_exactly_once() {
    let o = org().await;
    let current = o.json(&o.ada_token, "/api/v1/tenant/settings").await;
    let mut settings = current.clone();
    settings["guest_domains"] = json!([" Partner.COM ", "b.org", "@partner.com"]);
    settings["min_notice_minutes"] = json!(240);
    settings["buffer_before_minutes"] = json!(10);
    let routes = routes(&o, &settings);
    let grace_grant = o.grants(&o.grace)[0].id().to_string();
    let tenant = o.ada.tenant.to_string();
    let (bob, admin) = (o.bob.id.to_string(), Actor::Admin(o.ada.id));
    let expected: [(StatusCode, Option<(AuditAction, &str)>); 9] = [
        (StatusCode::OK, Some((AuditAction::AdminListUsers, &tenant))),
        (StatusCode::OK, Some((AuditAction::AdminReadUser, &bob))),
        (StatusCode::OK, Some((AuditAction::UserDeactivated, &bob))),
        (
            StatusCode::NO_CONTENT,
            Some((AuditAction::UserReactivated, &bob)),
        ),
        (
            StatusCode::NO_CONTENT,
            Some((AuditAction::RoleChanged, &bob)),
        ),
        (
            StatusCode::NO_CONTENT,
            Some((AuditAction::GrantRevoked, &grace_grant)),
        ),
        // The defaults are not anyone's personal data: reading them is not audited.
        (StatusCode::OK, None),
        (
            StatusCode::OK,
            Some((AuditAction::TenantSettingsChanged, &tenant)),
        ),
        (StatusCode::OK, Some((AuditAction::AdminReadAudit, &tenant))),
    ];
    for (r, (status, audited)) in routes.iter().zip(expected) {
        let label = format!("{} {}", r.method, r.path);
        let before = o.audit().len();
        let resp = o
            .call(&o.ada_token, r.method.clone(), &r.path, r.body.clone())
            .await;
        assert_eq!(resp.status(), status, "{label}: {:?}", resp.text().await);
        let new = o.audit().split_off(before);
        match audited {
            None => assert!(new.is_empty(), "{label}: {new:?}"),
            Some((action, subject)) => {
                assert_eq!(new.len(), 1, "{label}: {new:#?}");
                let row = &new[0];
                assert_eq!(
                    (row.actor, row.action, row.subject.as_str(), row.tenant),
                    (admin, action, subject, o.ada.tenant),
                    "{label}"
                );
                assert_eq!(row.source, Some("127.0.0.1".parse().unwrap()), "{label}");
            }
        }
    }
    // What the actions did.
    assert_eq!(o.user(&o.bob).role, Role::TenantAdmin);
    assert_eq!(o.user(&o.bob).status, UserStatus::Active);
    let acme = o.app.store.tenant(o.ada.tenant).await.unwrap().settings;
    assert_eq!(acme.guest_domains, vec!["b.org", "partner.com"]);
    assert_eq!(acme.min_notice, Some(jiff::SignedDuration::from_hours(4)));
    assert_eq!(acme.buffers.before, jiff::SignedDuration::from_mins(10));

    // Grace's connection: revoked by Ada, shown as such, with no token anywhere.
    let grace = o
        .json(
            &o.ada_token,
            &format!("/api/v1/tenant/users/{}", o.grace.id),
        )
        .await;
    let g = &grace["grants"][0];
    assert_eq!(
        (&g["provider"], &g["state"], &g["revoked_by"]),
        (&json!("microsoft"), &json!("revoked"), &json!("admin"))
    );
    assert_eq!(g["revoked_by_admin"], o.ada.id.to_string());
    assert_eq!(g["revoked_at"], o.app.world.now().to_string());
    assert_eq!(g["account"], "grace@acme.test");
    let list = o.json(&o.ada_token, "/api/v1/tenant/users").await;
    assert_eq!(
        ids(&list),
        BTreeSet::from([o.ada.id, o.grace.id, o.bob.id].map(|i| i.to_string()))
    );
    let ada = member(&list, &o.ada);
    assert_eq!(
        (&ada["role"], &ada["status"]),
        (&json!("tenant_admin"), &json!("active"))
    );
    assert_eq!(ada["grants"][0]["state"], "active");
    let text = list.to_string();
    assert!(
        !text.contains("refresh-") && !text.contains("access-"),
        "no token in the list: {text}"
    );
}

#[tokio::test]
async fn refused_settings_and_self_demotion_are_refused_and_change_nothing() {
    let o = org().await;
    let good = o.json(&o.ada_token, "/api/v1/tenant/settings").await;
    let with = |key: &str, value: Value| {
        let mut s = good.clone();
        s[key] = value;
        s
    };
    let cases = [
        (
            with("guest_domains", json!(["not a domain"])),
            "/problems/invalid-settings",
        ),
        // Below the documented minimum: the shape is wrong, as the document says.
        (
            with("min_notice_minutes", json!(-5)),
            "/problems/invalid-body",
        ),
        (
            with("min_notice_minutes", json!(20161)),
            "/problems/invalid-settings",
        ),
        (
            with("buffer_after_minutes", json!(500)),
            "/problems/invalid-request",
        ),
        (
            with("working_hours", json!({"mon": ["17:00-09:00"]})),
            "/problems/invalid-request",
        ),
        (with("colour", json!("blue")), "/problems/invalid-body"),
    ];
    for (body, kind) in cases {
        let before = o.app.world.store.dump_text();
        let r = o
            .call(
                &o.ada_token,
                Method::PUT,
                "/api/v1/tenant/settings",
                Some(body.clone()),
            )
            .await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["type"], kind, "{body}: {p}");
        unchanged(&before, &o.app.world.store.dump_text(), &body.to_string());
    }
    let ada = o.ada.id;
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/tenant/users/{ada}/deactivate"),
            json!({"meetings": "cancel"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/tenant/users/{ada}/role"),
            json!({"role": "member"}),
        ),
        (
            Method::POST,
            format!("/api/v1/tenant/users/{}/deactivate", o.grace.id),
            json!({"meetings": {"hand_to": o.eve.id}}),
        ),
    ] {
        let before = o.app.world.store.dump_text();
        let r = o.call(&o.ada_token, method, &path, Some(body)).await;
        let status = r.status();
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
        problem(r, status).await;
        unchanged(&before, &o.app.world.store.dump_text(), &path);
    }
}

#[tokio::test]
async fn the_audit_log_exports_as_json_lines_and_pages_as_json() {
    let o = org().await;
    for _ in 0..3 {
        o.json(&o.ada_token, "/api/v1/tenant/users").await;
    }
    let acme: Vec<String> = o
        .audit()
        .iter()
        .filter(|e| e.tenant == o.ada.tenant)
        .map(|e| e.id.to_string())
        .collect();
    assert!(acme.len() >= 3);
    let r = o
        .call(
            &o.ada_token,
            Method::GET,
            &format!("/api/v1/tenant/audit?since={SINCE}&format=jsonl"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let body = r.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let exported: Vec<String> = lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        exported, acme,
        "every row of Acme, oldest first, and nothing else"
    );
    assert_eq!(lines[0]["actor"], "system", "{}", lines[0]);
    assert!(lines.iter().any(|l| l["action"] == "admin_list_users"
        && l["actor"] == "admin"
        && l["actor_id"] == o.ada.id.to_string()));

    let page = o
        .json(
            &o.ada_token,
            &format!("/api/v1/tenant/audit?since={SINCE}&limit=2"),
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_since"].is_string(), "{page}");
    assert!(page["next_after"].is_string(), "{page}");

    // Paging by `next_since` and `next_after` reads every row once, even where many
    // share an instant (each page read is itself audited, so the log grows meanwhile).
    let mut paged: Vec<String> = Vec::new();
    let mut query = format!("since={SINCE}");
    loop {
        let page = o
            .json(
                &o.ada_token,
                &format!("/api/v1/tenant/audit?{query}&limit=2"),
            )
            .await;
        paged.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        match (page["next_since"].as_str(), page["next_after"].as_str()) {
            (Some(since), Some(after)) => {
                query = format!("since={}&after={after}", since.replace('+', "%2B"));
            }
            _ => break,
        }
    }
    let distinct: std::collections::HashSet<&String> = paged.iter().collect();
    assert_eq!(distinct.len(), paged.len(), "no row twice: {paged:?}");
    for id in &exported {
        assert!(paged.contains(id), "{id} was read while paging");
    }
    for bad in [
        "since=yesterday",
        &format!("since={SINCE}&after=yesterday"),
        "limit=0",
        &format!("since={SINCE}&limit=10001"),
    ] {
        let r = o
            .call(
                &o.ada_token,
                Method::GET,
                &format!("/api/v1/tenant/audit?{bad}"),
                None,
            )
            .await;
        let status = r.status();
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{bad}: {status}"
        );
        problem(r, status).await;
    }
}

// -------------------------------------------------------------------- deactivation

/// The provider vouches for `email` in Acme: the sign-in's callback.
async fn sign_in(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    let s = start(app, "microsoft", "/meetings").await;
    authorize(app, "microsoft", &s, email, code);
    callback(
        app,
        "microsoft",
        &format!("code={code}&state={}", s.state),
        &[format!("convene_login={}", s.cookie)],
    )
    .await
}

fn grace_asked(world: &World) -> usize {
    world
        .microsoft
        .free_busy_calls()
        .iter()
        .filter(|c| c.accounts.iter().any(|a| a == "grace@acme.test"))
        .count()
}

fn window(world: &World) -> Value {
    json!({
        "start": world.now().to_string(),
        "end": (world.now() + jiff::SignedDuration::from_hours(24 * 5)).to_string(),
    })
}

#[tokio::test]
async fn a_deactivated_user_is_locked_out_at_once_and_their_meetings_are_cancelled() {
    let o = org().await;
    let world = &o.app.world;
    let grace_browser = o.app.session_for(&o.grace).await;
    let grace_meeting = world
        .scheduler
        .create_meeting(
            &world.requester(&o.grace),
            world
                .a_meeting()
                .titled("Grace's sync")
                .with_email_guest("guest@outside.test")
                .build(),
        )
        .await
        .unwrap();
    let me = |auth: (&str, String)| {
        o.app
            .http
            .get(o.app.url("/api/v1/me"))
            .header(auth.0, auth.1)
            .send()
    };
    let (bearer, cookie) = (
        ("authorization", format!("Bearer {}", o.grace_token)),
        ("cookie", grace_browser.cookie.clone()),
    );
    assert_eq!(me(bearer.clone()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(me(cookie.clone()).await.unwrap().status(), StatusCode::OK);
    // While she is active, Ada's meetings read Grace's calendar.
    let new_meeting = json!({
        "title": "Planning", "duration_minutes": 30, "window": window(world),
        "participants": [{"email": "grace@acme.test"}],
    });
    let r = o
        .call(
            &o.ada_token,
            Method::POST,
            "/api/v1/meetings",
            Some(new_meeting.clone()),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let asked = grace_asked(world);
    assert!(asked >= 1);

    let r = o
        .call(
            &o.ada_token,
            Method::POST,
            &format!("/api/v1/tenant/users/{}/deactivate", o.grace.id),
            Some(json!({"meetings": "cancel"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["meetings_cancelled"], 1, "{report}");
    assert_eq!(report["meetings_handed_over"], 0, "{report}");
    assert_eq!(report["tokens_revoked"], 1, "{report}");
    assert!(matches!(
        o.user(&o.grace).status,
        UserStatus::Deactivated { .. }
    ));

    // Her token and her session stop working at once.
    for auth in [bearer, cookie] {
        let p = problem(me(auth).await.unwrap(), StatusCode::UNAUTHORIZED).await;
        assert_eq!(p["type"], "/problems/unauthenticated");
    }
    // Signing in again is refused, and issues no session.
    let r = sign_in(&o.app, "grace@acme.test", "code-deactivated").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&set_cookies(r.headers()), "convene_session").is_none());
    let page = unescape(&r.text().await.unwrap());
    assert!(page.contains("deactivated"), "{page}");

    // Her calendar is no longer read: she is asked by email instead.
    let r = o
        .call(
            &o.ada_token,
            Method::POST,
            "/api/v1/meetings",
            Some(new_meeting.clone()),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let m: Value = r.json().await.unwrap();
    let grace = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == "grace@acme.test")
        .unwrap();
    assert_eq!(grace["kind"], "email", "{m}");
    assert_eq!(
        grace_asked(world),
        asked,
        "the fake calendar was not asked for her"
    );

    // Her open meeting is cancelled, and its guest told.
    let stored = o
        .app
        .store
        .meeting(o.grace.tenant, grace_meeting.id())
        .await
        .unwrap();
    assert_eq!(stored.state().name(), "cancelled");
    o.app.drain().await;
    let guest = EmailAddress::parse("guest@outside.test").unwrap();
    let subjects: Vec<String> = world
        .emails_to(&guest)
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(
        subjects.last().map(String::as_str),
        Some("Cancelled: Grace's sync"),
        "{subjects:?}"
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.starts_with("Cancelled"))
            .count(),
        1
    );

    // Reactivated, she signs in again.
    let r = o
        .call(
            &o.ada_token,
            Method::POST,
            &format!("/api/v1/tenant/users/{}/reactivate", o.grace.id),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = sign_in(&o.app, "grace@acme.test", "code-reactivated").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&set_cookies(r.headers()), "convene_session").is_some());
}

#[tokio::test]
async fn a_deactivated_organizers_meetings_can_be_handed_to_a_colleague() {
    let o = org().await;
    let world = &o.app.world;
    let m = world
        .scheduler
        .create_meeting(
            &world.requester(&o.grace),
            world
                .a_meeting()
                .titled("Quarterly review")
                .with_email_guest("guest@outside.test")
                .build(),
        )
        .await
        .unwrap();
    o.app.drain().await;
    let guest = EmailAddress::parse("guest@outside.test").unwrap();
    let before = world.emails_to(&guest).len();
    let audit_before = o.audit().len();
    let r = o
        .call(
            &o.ada_token,
            Method::POST,
            &format!("/api/v1/tenant/users/{}/deactivate", o.grace.id),
            Some(json!({"meetings": {"hand_to": o.bob.id}})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(
        (
            &report["meetings_handed_over"],
            &report["meetings_cancelled"]
        ),
        (&json!(1), &json!(0)),
        "{report}"
    );
    let stored = o.app.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(stored.organizer(), o.bob.id, "Bob organises it now");
    assert_eq!(stored.state().name(), "polling", "still on");
    let bob_token = o.app.token_with(&o.bob, None, None).await;
    let mine = o.json(&bob_token, "/api/v1/meetings").await;
    assert_eq!(mine["items"][0]["id"], m.id().to_string());
    o.app.drain().await;
    let cancelled = world.emails_to(&guest)[before..]
        .iter()
        .filter(|e| e.subject.starts_with("Cancelled"))
        .count();
    assert_eq!(cancelled, 0, "nothing is cancelled for the guest");
    let actions: Vec<(AuditAction, String)> = o.audit()[audit_before..]
        .iter()
        .map(|e| (e.action, e.subject.clone()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (AuditAction::UserDeactivated, o.grace.id.to_string()),
            (AuditAction::MeetingHandedOver, m.id().to_string()),
        ]
    );
    // Handing to someone of another tenant finds nobody.
    let r = o
        .call(
            &o.ada_token,
            Method::POST,
            &format!("/api/v1/tenant/users/{}/deactivate", o.bob.id),
            Some(json!({"meetings": {"hand_to": o.oscar.id}})),
        )
        .await;
    problem(r, StatusCode::NOT_FOUND).await;
    assert_eq!(o.user(&o.bob).status, UserStatus::Active);
}

// ------------------------------------------------------------------ grant check

/// An identity provider that takes its time to answer, so two checks overlap.
struct Slow(Arc<FakeIdentity>);

#[async_trait]
impl IdentityProvider for Slow {
    fn provider(&self) -> Provider {
        self.0.provider()
    }

    fn authorization_url(&self, request: &AuthorizationRequest) -> String {
        self.0.authorization_url(request)
    }

    async fn exchange_code(
        &self,
        code: &str,
        verifier: &SecretString,
        nonce: &str,
    ) -> Result<SignIn, IdentityError> {
        self.0.exchange_code(code, verifier, nonce).await
    }

    async fn refresh(&self, credentials: &Credentials) -> Result<Credentials, IdentityError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.refresh(credentials).await
    }

    async fn revoke(&self, credentials: &Credentials) -> Result<(), IdentityError> {
        self.0.revoke(credentials).await
    }
}

fn worker(app: &TestApp, scheduler: Scheduler) -> convene::worker::Worker {
    convene::worker::Worker::new(
        scheduler,
        app.store.clone(),
        Arc::new(app.world.clock.clone()),
        convene_domain::access::SessionPolicy::default(),
        convene::config::WorkerConfig::default(),
    )
}

#[tokio::test]
async fn a_revocation_at_the_provider_is_found_by_the_periodic_check_and_told_once() {
    let o = org().await;
    let world = &o.app.world;
    let slow = |f: &Arc<FakeIdentity>| -> Arc<dyn IdentityProvider> { Arc::new(Slow(f.clone())) };
    let mut ports = o.app.scheduler.ports().clone();
    ports.identities = Identities::new()
        .with(slow(&world.google_identity))
        .with(slow(&world.microsoft_identity));
    let (one, two) = (
        worker(
            &o.app,
            Scheduler::new(ports.clone(), SchedulingPolicy::default()),
        ),
        worker(&o.app, Scheduler::new(ports, SchedulingPolicy::default())),
    );

    // Nothing revoked: every active grant (Ada, Grace, Eve) is refreshed and still holds.
    let c = one.check_grants().await.unwrap();
    assert_eq!(
        c,
        GrantCheck {
            checked: 3,
            valid: 3,
            refused: 0,
            unavailable: 0
        }
    );

    // Grace's IT removes Convene's access at Microsoft.
    world
        .microsoft_identity
        .revoke_at_provider("refresh-grace@acme.test");
    let list = o.json(&o.ada_token, "/api/v1/tenant/users").await;
    assert_eq!(member(&list, &o.grace)["grants"][0]["state"], "active");
    // Two workers check at the same time.
    let (a, b) = tokio::join!(one.check_grants(), two.check_grants());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.refused + b.refused,
        2,
        "both saw the refusal: {a:?} {b:?}"
    );
    assert_eq!((a.valid, b.valid), (2, 2));

    let list = o.json(&o.ada_token, "/api/v1/tenant/users").await;
    let g = &member(&list, &o.grace)["grants"][0];
    assert_eq!(
        (&g["state"], &g["revoked_by"], &g["revoked_at"]),
        (
            &json!("revoked"),
            &json!("provider"),
            &json!(world.now().to_string())
        ),
        "{g}"
    );
    assert_eq!(member(&list, &o.ada)["grants"][0]["state"], "active");

    // A later run finds nothing more to do.
    let c = one.check_grants().await.unwrap();
    assert_eq!((c.checked, c.refused), (2, 0));
    o.app.drain().await;
    let grace = EmailAddress::parse("grace@acme.test").unwrap();
    let told: Vec<String> = world
        .emails_to(&grace)
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(told, vec!["Your microsoft calendar was disconnected"]);
    let refusals = o
        .audit()
        .iter()
        .filter(|e| e.action == AuditAction::GrantCheckRefused)
        .count();
    assert_eq!(refusals, 1, "the second worker found it already revoked");
    assert_eq!(
        o.grants(&o.grace)[0].state(),
        convene_domain::consent::GrantState::Revoked {
            by: convene_domain::consent::RevokedBy::Provider,
            at: world.now()
        }
    );
}

#[tokio::test]
async fn the_running_worker_checks_grants_as_it_starts_and_stops_on_shutdown() {
    let o = org().await;
    o.app
        .world
        .microsoft_identity
        .revoke_at_provider("refresh-grace@acme.test");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker(&o.app, o.app.scheduler.clone()).run(stopped));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while o.grants(&o.grace)[0].is_active() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not check the grants"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();
    assert!(o.grants(&o.ada)[0].is_active(), "Ada's grant still holds");
}

// --------------------------------------------------------------------------- pages

fn form(
    app: &TestApp,
    path: &str,
    browser: &super::harness::Browser,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    app.http
        .post(app.url(path))
        .header("cookie", &browser.cookie)
        .form(fields)
}

#[tokio::test]
async fn the_tenant_page_is_for_admins_and_its_forms_need_their_csrf_token() {
    let o = org().await;
    let (ada, grace) = (
        o.app.session_for(&o.ada).await,
        o.app.session_for(&o.grace).await,
    );
    let get = |path: &str, cookie: &str| {
        o.app
            .http
            .get(o.app.url(path))
            .header("cookie", cookie)
            .send()
    };
    // The settings page links to it for administrators only.
    let settings = unescape(
        &get("/settings", &ada.cookie)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(settings.contains("href=\"/tenant\""), "{settings}");
    let settings = unescape(
        &get("/settings", &grace.cookie)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(!settings.contains("href=\"/tenant\""));

    // Strangers are sent to sign in; members are refused.
    for (method, path) in [
        (Method::GET, "/tenant".to_owned()),
        (
            Method::POST,
            format!("/tenant/users/{}/deactivate", o.bob.id),
        ),
        (Method::POST, "/tenant/settings".to_owned()),
    ] {
        let r = o
            .app
            .http
            .request(method.clone(), o.app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{method} {path}");
        let next = if method == Method::GET {
            "%2Ftenant"
        } else {
            "%2Fmeetings"
        };
        assert_eq!(r.headers()["location"], format!("/signin?next={next}"));
    }
    let r = get("/tenant", &grace.cookie).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    o.app
        .world
        .microsoft_identity
        .revoke_at_provider("refresh-grace@acme.test");
    worker(&o.app, o.app.scheduler.clone())
        .check_grants()
        .await
        .unwrap();
    let r = get("/tenant", &ada.cookie).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = unescape(&r.text().await.unwrap());
    assert!(!html.contains(" style=") && !html.contains("<script>"));
    for text in [
        "Grace",
        "grace@acme.test",
        "Bob",
        "revoked at the provider on 2 Mar 2026",
        &format!("action=\"/tenant/users/{}/deactivate\"", o.grace.id),
        &format!("action=\"/tenant/users/{}/grants/google/revoke\"", o.ada.id),
        &format!("<option value=\"{}\">Hand them to Bob", o.bob.id),
        "/api/v1/tenant/audit?format=jsonl",
    ] {
        assert!(html.contains(text), "{text} is not on the page:\n{html}");
    }
    assert!(!html.contains("Eve") && !html.contains("oscar@other.test"));
    // The export link works in the browser, with the session.
    let at = html.find("href=\"/api/v1/tenant/audit?").unwrap() + "href=\"".len();
    let href = html[at..].split('"').next().unwrap();
    let r = get(href, &ada.cookie).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{href}");
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let rows = r.text().await.unwrap();
    assert!(
        rows.lines()
            .any(|l| l.contains("\"action\":\"grant_check_refused\"")),
        "{rows}"
    );
    assert!(
        !html.contains(&format!("/tenant/users/{}/deactivate", o.ada.id)),
        "no button to deactivate oneself"
    );

    // A form without the session's token changes nothing.
    let path = format!("/tenant/users/{}/deactivate", o.bob.id);
    let before = o.app.world.store.dump_text();
    let r = form(
        &o.app,
        &path,
        &ada,
        &[("csrf", "forged"), ("meetings", "cancel")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    unchanged(
        &before,
        &o.app.world.store.dump_text(),
        "a forged deactivation",
    );
    // A member's valid form is refused by the use case.
    let r = form(
        &o.app,
        &path,
        &grace,
        &[("csrf", &grace.csrf), ("meetings", "cancel")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(o.user(&o.bob).status, UserStatus::Active);

    let r = form(
        &o.app,
        &path,
        &ada,
        &[("csrf", &ada.csrf), ("meetings", "cancel")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/tenant?done=deactivated");
    assert!(matches!(
        o.user(&o.bob).status,
        UserStatus::Deactivated { .. }
    ));
    let reactivate = format!("/tenant/users/{}/reactivate", o.bob.id);
    let html = unescape(
        &get("/tenant?done=deactivated", &ada.cookie)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(html.contains("The account is deactivated"), "{html}");
    assert!(html.contains(&format!("action=\"{reactivate}\"")));
    let r = form(&o.app, &reactivate, &ada, &[("csrf", &ada.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/tenant?done=reactivated");
    assert_eq!(o.user(&o.bob).status, UserStatus::Active);
    let role = format!("/tenant/users/{}/role", o.bob.id);
    let r = form(
        &o.app,
        &role,
        &ada,
        &[("csrf", &ada.csrf), ("role", "tenant_admin")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.headers()["location"], "/tenant?done=role");
    assert_eq!(o.user(&o.bob).role, Role::TenantAdmin);
    let revoke = format!("/tenant/users/{}/grants/google/revoke", o.ada.id);
    let r = form(&o.app, &revoke, &ada, &[("csrf", &ada.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/tenant?done=revoked");
    assert!(!o.grants(&o.ada)[0].is_active());

    // The defaults: a refused domain comes back with the form as typed.
    let mut fields = vec![
        ("csrf", ada.csrf.as_str()),
        ("hours_mon", "08:00-16:00"),
        ("buffer_before", "5"),
        ("buffer_after", "0"),
        ("min_notice", "60"),
        ("guest_domains", "partner.com\nnot a domain"),
    ];
    let (settings_before, audit_before) = (
        o.app.store.tenant(o.ada.tenant).await.unwrap(),
        o.audit().len(),
    );
    let r = form(&o.app, "/tenant/settings", &ada, &fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = unescape(&r.text().await.unwrap());
    assert!(html.contains("\"not\" is not an email domain"), "{html}");
    assert!(html.contains("partner.com\nnot a domain"), "{html}");
    assert_eq!(
        o.app.store.tenant(o.ada.tenant).await.unwrap(),
        settings_before
    );
    let actions: Vec<AuditAction> = o.audit()[audit_before..].iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![AuditAction::AdminListUsers],
        "only the page's list, shown again, is recorded"
    );
    fields[5] = ("guest_domains", "Partner.com, b.org");
    let r = form(&o.app, "/tenant/settings", &ada, &fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/tenant?done=settings");
    let s = o.app.store.tenant(o.ada.tenant).await.unwrap().settings;
    assert_eq!(s.guest_domains, vec!["b.org", "partner.com"]);
    assert!(!s.external_guests, "the box was not ticked");
    assert_eq!(s.min_notice, Some(jiff::SignedDuration::from_hours(1)));
    assert_eq!(s.buffers.before, jiff::SignedDuration::from_mins(5));
}

// ------------------------------------------------------------------------- the CLI

/// `convene <args>` over the SQLite file in `dir`, configured by its environment alone.
fn convene(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
    for (name, _) in std::env::vars() {
        if name.starts_with("CONVENE_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("convene.db").display()),
        )
        .env("CONVENE_LOG__LEVEL", "warn")
        .output()
        .expect("the convene binary runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "convene failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The incident emails waiting in the outbox: (tenant, recipient, subject, body).
async fn incident_emails(store: &dyn Store) -> Vec<(TenantId, String, String, String)> {
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365 * 5);
    let claimed = store
        .claim(later, jiff::SignedDuration::from_mins(5), 10_000)
        .await
        .unwrap();
    claimed
        .into_iter()
        .filter_map(|c| match c.message.payload {
            OutboxPayload::Notify(n) => match *n {
                Notification::Incident { to, subject, body } => {
                    Some((c.message.tenant, to.email.to_string(), subject, body))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_incident_commands_report_and_tell_the_people_of_the_chosen_tenant_once() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    world.user("bob@acme.test", "UTC");
    let sam_acme = world.user("sam@both.test", "UTC");
    let other = world.other_tenant();
    let (eve, _) = world.connected_user_in(&other, "eve@other.test", "UTC", Provider::Google);
    world.user_in(&other, "oscar@other.test", "UTC");
    let sam_other = world.user_in(&other, "sam@both.test", "UTC");
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_copy_of(&world, dir.path()).await;
    let mut ports = world.scheduler.ports().clone();
    ports.store = store.clone();
    let on_sqlite = Scheduler::new(ports, SchedulingPolicy::default());
    let acme_meeting: MeetingId = on_sqlite
        .create_meeting(
            &world.requester(&ada),
            world
                .a_meeting()
                .with_connected(&grace)
                .with_email_guest("guest@outside.test")
                .with_link_guest("Kim")
                .build(),
        )
        .await
        .unwrap()
        .id();
    on_sqlite
        .create_meeting(
            &world.requester(&eve),
            world
                .a_meeting()
                .with_email_guest("evesguest@outside.test")
                .build(),
        )
        .await
        .unwrap();
    let acme = world.tenant.id.to_string();
    let template = dir.path().join("incident.txt");
    std::fs::write(
        &template,
        "Subject: About your data at Convene\n\nDear {name},\nsome of your data may have been read.\n",
    )
    .unwrap();
    let template = template.to_str().unwrap();
    let acme_people = [
        "ada@acme.test",
        "grace@acme.test",
        "bob@acme.test",
        "sam@both.test",
        "guest@outside.test",
    ];

    // `tenant list` gives operators the ids the other commands take.
    let list = stdout(&convene(dir.path(), &["tenant", "list"]));
    assert!(list.contains(&format!("{acme}  local:acme")), "{list}");
    assert!(
        list.contains(&other.id.to_string()) && list.contains("Other 1"),
        "{list}"
    );

    // The report: Acme's people and guests, and no one of the other tenant.
    let table = stdout(&convene(
        dir.path(),
        &["incident", "report", "--tenant", &acme, "--since", SINCE],
    ));
    for email in acme_people {
        assert!(table.contains(email), "{email} missing:\n{table}");
    }
    assert!(table.contains("Kim"), "{table}");
    assert!(
        !table.contains("other.test") && !table.contains("evesguest"),
        "{table}"
    );
    assert!(
        table.contains("calendar connection: encrypted OAuth tokens"),
        "{table}"
    );
    let json = stdout(&convene(
        dir.path(),
        &[
            "incident", "report", "--tenant", &acme, "--since", SINCE, "--json",
        ],
    ));
    let people: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(people.len(), 6, "{json}");
    let emails: BTreeSet<&str> = people.iter().filter_map(|p| p["email"].as_str()).collect();
    assert_eq!(emails, BTreeSet::from(acme_people));
    let kim = people.iter().find(|p| p["name"] == "Kim").unwrap();
    assert_eq!(kim["person"]["meeting"], acme_meeting.to_string(), "{kim}");
    let all = stdout(&convene(
        dir.path(),
        &[
            "incident", "report", "--tenant", "all", "--since", SINCE, "--json",
        ],
    ));
    assert_eq!(all.lines().count(), 6 + 4, "{all}");

    // A dry run by default: the recipients and the message, nothing enqueued.
    let pending = store.outbox_counts().await.unwrap().pending;
    let dry = stdout(&convene(
        dir.path(),
        &[
            "incident",
            "notify",
            "--tenant",
            &acme,
            "--since",
            SINCE,
            "--template",
            template,
        ],
    ));
    assert!(dry.starts_with("Dry run: nothing is sent."), "{dry}");
    assert!(dry.contains("Recipients (5):"), "{dry}");
    for email in acme_people {
        assert!(dry.contains(&format!("<{email}>")), "{email}:\n{dry}");
    }
    assert!(
        dry.contains("Subject: About your data at Convene\n\nDear "),
        "{dry}"
    );
    assert_eq!(store.outbox_counts().await.unwrap().pending, pending);

    // --send: one email per person of Acme, none for the other tenant, each audited.
    let sent = stdout(&convene(
        dir.path(),
        &[
            "incident",
            "notify",
            "--tenant",
            &acme,
            "--since",
            SINCE,
            "--template",
            template,
            "--send",
        ],
    ));
    assert!(sent.contains(": 5 emails handed to the outbox"), "{sent}");
    let incident = sent
        .split("Incident ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap()
        .to_owned();
    assert_eq!(store.outbox_counts().await.unwrap().pending, pending + 5);
    // Sending again under the same incident id sends nobody twice.
    stdout(&convene(
        dir.path(),
        &[
            "incident",
            "notify",
            "--tenant",
            &acme,
            "--since",
            SINCE,
            "--template",
            template,
            "--send",
            "--incident",
            &incident,
        ],
    ));
    assert_eq!(store.outbox_counts().await.unwrap().pending, pending + 5);
    let audit = store
        .entries(
            world.tenant.id,
            convene_domain::audit::AuditFrom::since(SINCE.parse().unwrap()),
            10_000,
        )
        .await
        .unwrap();
    let notified: Vec<&AuditEntry> = audit
        .iter()
        .filter(|e| e.action == AuditAction::IncidentNotified)
        .collect();
    assert_eq!(
        notified.len(),
        10,
        "5 each run, the second sending nothing new"
    );
    assert!(notified.iter().all(|e| e.actor == Actor::System));
    let notified_users: BTreeSet<String> = notified.iter().map(|e| e.subject.clone()).collect();
    assert!(notified_users.contains(&ada.id.to_string()));
    assert!(notified_users.contains(&sam_acme.id.to_string()));
    let theirs = store
        .entries(
            other.id,
            convene_domain::audit::AuditFrom::since(SINCE.parse().unwrap()),
            10_000,
        )
        .await
        .unwrap();
    assert!(
        !theirs
            .iter()
            .any(|e| matches!(e.action, AuditAction::IncidentNotified)),
        "nobody of the other tenant was told"
    );
    let emails = incident_emails(store.as_ref()).await;
    let mut recipients: Vec<&str> = emails.iter().map(|e| e.1.as_str()).collect();
    recipients.sort_unstable();
    let mut expected = acme_people.to_vec();
    expected.sort_unstable();
    assert_eq!(recipients, expected, "one each");
    assert!(emails.iter().all(|e| e.0 == world.tenant.id));
    let to_ada = emails.iter().find(|e| e.1 == "ada@acme.test").unwrap();
    assert_eq!(to_ada.2, "About your data at Convene");
    assert_eq!(to_ada.3, "Dear Ada,\nsome of your data may have been read.");

    // `tenant grant-admin`: an address in two tenants needs --tenant.
    let refused = failure(&convene(
        dir.path(),
        &["tenant", "grant-admin", "sam@both.test"],
    ));
    assert!(
        refused.contains("--tenant")
            && refused.contains(&acme)
            && refused.contains(&other.id.to_string()),
        "{refused}"
    );
    let nobody = failure(&convene(
        dir.path(),
        &["tenant", "grant-admin", "nobody@acme.test"],
    ));
    assert!(nobody.contains("no account"), "{nobody}");
    let granted = stdout(&convene(
        dir.path(),
        &["tenant", "grant-admin", "sam@both.test", "--tenant", &acme],
    ));
    assert!(granted.contains("is now an administrator"), "{granted}");
    let sam = store.user(world.tenant.id, sam_acme.id).await.unwrap();
    assert_eq!(sam.role, Role::TenantAdmin);
    assert_eq!(
        store.user(other.id, sam_other.id).await.unwrap().role,
        Role::Member,
        "the other tenant's Sam is untouched"
    );
    let audit = store
        .entries(
            world.tenant.id,
            convene_domain::audit::AuditFrom::since(SINCE.parse().unwrap()),
            10_000,
        )
        .await
        .unwrap();
    let granted: Vec<&AuditEntry> = audit
        .iter()
        .filter(|e| e.action == AuditAction::RoleChanged)
        .collect();
    assert_eq!(granted.len(), 1);
    assert_eq!(
        (granted[0].actor, granted[0].subject.as_str()),
        (Actor::System, sam_acme.id.to_string().as_str())
    );

    // Each command explains itself.
    let help = stdout(&convene(dir.path(), &["incident", "notify", "--help"]));
    for text in ["dry run", "--send", "--incident", "Subject:"] {
        assert!(
            help.to_lowercase().contains(&text.to_lowercase()),
            "{text}:\n{help}"
        );
    }
    let help = stdout(&convene(dir.path(), &["tenant", "grant-admin", "--help"]));
    assert!(help.contains("--tenant"), "{help}");
    let bad = failure(&convene(
        dir.path(),
        &[
            "incident",
            "report",
            "--tenant",
            &acme,
            "--since",
            "last week",
        ],
    ));
    assert!(bad.contains("RFC 3339"), "{bad}");
}

#[tokio::test]
async fn audit_export_prints_every_row_once_however_many_share_an_instant() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_copy_of(&world, dir.path()).await;
    // More rows at one instant than a page (1,000) holds, then more a second later.
    let at: jiff::Timestamp = "2026-05-01T09:00:00Z".parse().unwrap();
    let rows: Vec<AuditEntry> = (1..=2_345u128)
        .map(|n| AuditEntry {
            id: uuid::Uuid::from_u128(n << 64 | 0xa0d1).into(),
            tenant: world.tenant.id,
            actor: Actor::System,
            action: AuditAction::FreeBusyRead,
            subject: format!("grant-{n}"),
            at: if n % 3 == 0 {
                at + jiff::SignedDuration::from_secs(1)
            } else {
                at
            },
            source: None,
        })
        .collect();
    store.append(&rows).await.unwrap();
    drop(store);

    let out = stdout(&convene(
        dir.path(),
        &["audit", "export", "--since", "2026-05-01T00:00:00Z"],
    ));
    let printed: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let distinct: HashSet<&String> = printed.iter().collect();
    assert_eq!(distinct.len(), printed.len(), "no row twice");
    for row in &rows {
        assert!(
            distinct.contains(&row.id.to_string()),
            "{} ({}) was exported",
            row.id,
            row.subject
        );
    }
}
