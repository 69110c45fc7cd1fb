//! Access control, attacked route by route. The API routes are read from the served
//! `/openapi.json` (a new route is attacked without anyone adding it here); the pages,
//! forms, sign-in and `/admin` routes are listed explicitly. Every request here must be
//! refused, and each is sent between two full dumps of the store, which must be equal:
//! a refusal changes nothing.
//!
//! The JSON API and `/admin` refuse with `application/problem+json`. The pages answer
//! people in browsers: a visit without a session is redirected to the sign-in page, and
//! a refused guest link or meeting page is an HTML page with the refusal's status.

use std::collections::HashSet;
use std::net::IpAddr;

use convene::http::admin::{AdminAccount, AdminGate, AdminLevel};
use convene_domain::access::{GuestTokens, TokenHash};
use convene_domain::consent::Provider;
use convene_domain::ids::{ParticipantId, UserId};
use convene_domain::meeting::{GuestPass, Meeting};
use convene_domain::people::User;
use convene_testkit::fixtures::World;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::harness::{Browser, TestApp, problem};

// ------------------------------------------------------------------------ operators

/// The bearer token of the read-only support account.
pub(crate) const SUPPORT_TOKEN: &str = "support-token";
/// The bearer token of the admin-level account.
pub(crate) const ADMIN_TOKEN: &str = "admin-token";
const TOTP_SECRET: &[u8] = b"an admin totp secret of 20+ bytes";

fn totp() -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(TOTP_SECRET.to_vec())
        .build()
        .unwrap()
}

/// The id of the support account (audit rows name it).
pub(crate) fn support_id() -> UserId {
    UserId::from_uuid(uuid::Uuid::from_u128(1))
}

/// The id of the admin-level account.
pub(crate) fn admin_id() -> UserId {
    UserId::from_uuid(uuid::Uuid::from_u128(2))
}

/// `/admin` open to `networks`, for a support and an admin account.
pub(crate) fn operators(networks: &[&str]) -> AdminGate {
    let account = |id, level, token| AdminAccount {
        id,
        level,
        token_hash: TokenHash::of(token),
        totp: totp(),
    };
    AdminGate::new(
        networks.iter().map(|n| n.parse().unwrap()).collect(),
        vec![
            account(support_id(), AdminLevel::Support, SUPPORT_TOKEN),
            account(admin_id(), AdminLevel::Admin, ADMIN_TOKEN),
        ],
    )
}

/// A TOTP code never used before: the clock moves to the next 30-second step first (a
/// code is accepted once).
pub(crate) fn fresh_code(app: &TestApp) -> String {
    app.world.clock.advance(jiff::SignedDuration::from_secs(30));
    let now = u64::try_from(app.world.now().as_second()).unwrap();
    totp().generate(now).to_string()
}

/// A code valid at no step the gate accepts now (the current one or a neighbour).
fn wrong_code(app: &TestApp) -> String {
    let now = u64::try_from(app.world.now().as_second()).unwrap();
    let valid: HashSet<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp().generate(*t).to_string())
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap()
}

// ---------------------------------------------------------------------------- scene

/// Who and what the attacks are about.
struct Scene {
    app: TestApp,
    /// Organizer of both meetings (tenant "acme").
    ada: User,
    /// Ada's meeting: Grace (connected), the email guest g@guest.test and Kim (link).
    meeting: Meeting,
    /// Ada's other meeting, with the email guest h@guest.test.
    second: Meeting,
    /// Ada's own API token and its id (the target of `/tokens/{id}`).
    ada_token: String,
    ada_token_id: uuid::Uuid,
    /// A colleague of Ada's, participant of `meeting`.
    grace: String,
    /// A colleague of Ada's in none of her meetings.
    bob: String,
    /// A user of another tenant.
    eve: String,
    eve_user: User,
    bob_user: User,
    grace_user: User,
    /// Ada's tokens that must no longer work.
    revoked: String,
    expired: String,
}

async fn scene() -> Scene {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let bob = world.user("bob@acme.test", "UTC");
    let other = world.other_tenant();
    let (eve, _) = world.connected_user_in(&other, "eve@other.test", "UTC", Provider::Google);
    let meeting = world
        .scheduler
        .create_meeting(
            &world.requester(&ada),
            world
                .a_meeting()
                .with_connected(&grace)
                .with_email_guest("g@guest.test")
                .with_link_guest("Kim")
                .build(),
        )
        .await
        .unwrap();
    let second = world
        .scheduler
        .create_meeting(
            &world.requester(&ada),
            world
                .a_meeting()
                .titled("Second")
                .with_email_guest("h@guest.test")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        (meeting.state().name(), second.state().name()),
        ("polling", "polling")
    );
    let app = TestApp::spawn_admin(world, operators(&["127.0.0.1/32"])).await;
    let now = app.world.now();
    let ada_token = app.token_with(&ada, None, None).await;
    let ada_token_id = app
        .store
        .api_tokens_of(ada.tenant, ada.id)
        .await
        .unwrap()
        .first()
        .unwrap()
        .id
        .as_uuid();
    let second_ago = now - jiff::SignedDuration::from_secs(1);
    Scene {
        revoked: app.token_with(&ada, None, Some(second_ago)).await,
        expired: app.token_with(&ada, Some(second_ago), None).await,
        grace: app.token_with(&grace, None, None).await,
        bob: app.token_with(&bob, None, None).await,
        eve: app.token_with(&eve, None, None).await,
        ada_token,
        ada_token_id,
        eve_user: eve,
        bob_user: bob,
        grace_user: grace,
        app,
        ada,
        meeting,
        second,
    }
}

fn participant(m: &Meeting, email_or_name: &str) -> ParticipantId {
    m.participants()
        .iter()
        .find(|p| {
            p.email
                .as_ref()
                .is_some_and(|e| e.as_str() == email_or_name)
                || p.name.as_str() == email_or_name
        })
        .unwrap()
        .id
}

impl Scene {
    fn first_proposal(&self) -> String {
        self.meeting.proposals()[0].id.to_string()
    }

    /// A request body the route would accept from someone allowed: the refusal must come
    /// from who is asking, not from what they sent.
    fn body(&self, method: &Method, template: &str) -> Option<Value> {
        let (start, end) = (
            self.app.world.now(),
            self.app.world.now() + jiff::SignedDuration::from_hours(96),
        );
        let window = json!({"start": start.to_string(), "end": end.to_string()});
        let answers = json!({"answers": [{"proposal": self.first_proposal(), "available": true}]});
        Some(match (method.as_str(), template) {
            ("PATCH", "/api/v1/me") => json!({"zone": "Asia/Tokyo"}),
            ("POST", "/api/v1/tokens") => json!({"label": "attack"}),
            ("POST", "/api/v1/availability") => json!({
                "duration_minutes": 30, "window": window,
                "participants": [{"email": "x@guest.test"}],
            }),
            ("POST", "/api/v1/meetings") => json!({
                "title": "Attack", "duration_minutes": 30, "window": window,
                "participants": [{"email": "x@guest.test"}],
            }),
            ("POST", "/api/v1/meetings/{id}/book") => json!({"proposal": self.first_proposal()}),
            (_, t) if t.ends_with("/votes") => answers,
            ("GET" | "DELETE", _) => return None,
            _ => json!({}),
        })
    }

    /// The route's path, its parameters naming Ada's things (`token`: `guest`).
    fn path(&self, template: &str, guest: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').unwrap() + open;
            out.push_str(&rest[..open]);
            let value = match &rest[open + 1..close] {
                "id" if out.ends_with("/tokens/") => self.ada_token_id.to_string(),
                "provider" => "google".to_owned(),
                "token" => guest.to_owned(),
                "proposal" => self.first_proposal(),
                "user" => self.ada.id.to_string(),
                "tenant" => self.ada.tenant.to_string(),
                _ => self.meeting.id().to_string(),
            };
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn request(&self, method: &Method, template: &str, guest: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .app
            .http
            .request(method.clone(), self.app.url(&self.path(template, guest)));
        if let Some(body) = self.body(method, template) {
            req = req.json(&body);
        }
        req
    }
}

/// Sends `req`, which must be refused, and asserts it changed nothing in the store. The
/// handler has finished once the response's head is here (bodies are buffered).
async fn refused(app: &TestApp, label: &str, req: reqwest::RequestBuilder) -> reqwest::Response {
    let before = app.world.store.dump_text();
    let r = req.send().await.unwrap();
    unchanged(&before, &app.world.store.dump_text(), label);
    r
}

/// Panics with the differing rows when two store dumps differ.
pub(crate) fn unchanged(before: &str, after: &str, label: &str) {
    if before == after {
        return;
    }
    let (b, a): (HashSet<&str>, HashSet<&str>) =
        (before.lines().collect(), after.lines().collect());
    let gone: Vec<&str> = before.lines().filter(|l| !a.contains(l)).collect();
    let new: Vec<&str> = after.lines().filter(|l| !b.contains(l)).collect();
    panic!("{label} changed the store:\nrows gone: {gone:#?}\nrows new: {new:#?}");
}

/// An HTML page with `status` (how the pages refuse a browser).
async fn page(r: reqwest::Response, status: StatusCode, label: &str) -> String {
    assert_eq!(r.status(), status, "{label}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{label}: {ct}");
    r.text().await.unwrap()
}

/// A redirect to exactly `location`.
fn redirect(r: &reqwest::Response, location: &str, label: &str) {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{label}");
    assert_eq!(r.headers()["location"], location, "{label}");
}

// --------------------------------------------------------------------------- routes

/// One operation of the served OpenAPI document.
struct Op {
    method: Method,
    template: String,
    /// The security schemes it requires (`bearer`: a user's token or session;
    /// `admin_token`: an operator's).
    schemes: Vec<String>,
}

impl Op {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    fn secured(&self) -> bool {
        !self.schemes.is_empty()
    }

    /// Called by signed-in users (rather than by operators under `/admin`).
    fn for_users(&self) -> bool {
        self.secured() && !self.template.starts_with("/admin")
    }
}

/// What the document must hold at least: the enumeration cannot come back empty or short.
const KNOWN: &[(&str, &str)] = &[
    ("GET", "/api/v1/me"),
    ("PATCH", "/api/v1/me"),
    ("DELETE", "/api/v1/me"),
    ("GET", "/api/v1/me/export"),
    ("GET", "/api/v1/me/grants"),
    ("DELETE", "/api/v1/me/grants/{provider}"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("POST", "/api/v1/availability"),
    ("GET", "/api/v1/meetings"),
    ("POST", "/api/v1/meetings"),
    ("GET", "/api/v1/meetings/{id}"),
    ("POST", "/api/v1/meetings/{id}/book"),
    ("POST", "/api/v1/meetings/{id}/reschedule"),
    ("POST", "/api/v1/meetings/{id}/cancel"),
    ("POST", "/api/v1/meetings/{id}/votes"),
    ("GET", "/api/v1/guest/{token}"),
    ("POST", "/api/v1/guest/{token}/votes"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

/// Documented routes anyone may call without credentials (`/metrics` only from the
/// administration networks: attacked with `/admin`).
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/.well-known/security.txt",
    "/security-policy",
    "/metrics",
];

/// Every operation of `/openapi.json`, checked against [`KNOWN`] and classified: one
/// without a security requirement is a guest route (its `{token}` is the credential) or
/// a [`PUBLIC`] one; anything else fails here, to be looked at.
async fn api_ops(app: &TestApp) -> Vec<Op> {
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemes = |requirements: &Value| -> Vec<String> {
        requirements
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|r| r.keys().cloned())
            .collect()
    };
    let global = schemes(&doc["security"]);
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("the document has paths") {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            ops.push(Op {
                method: method.to_uppercase().parse().unwrap(),
                template: template.clone(),
                schemes: op.get("security").map_or_else(|| global.clone(), schemes),
            });
        }
    }
    for (method, template) in KNOWN {
        assert!(
            ops.iter()
                .any(|o| o.method.as_str() == *method && o.template == *template),
            "{method} {template} is missing from /openapi.json (found {:?})",
            ops.iter().map(Op::label).collect::<Vec<_>>()
        );
    }
    for op in ops.iter().filter(|o| !o.secured()) {
        assert!(
            op.template.contains("{token}") || PUBLIC.contains(&op.template.as_str()),
            "{} needs no credentials: make it a guest route, declare its security, or add it \
             to PUBLIC in trust_access.rs",
            op.label()
        );
    }
    ops
}

// ---------------------------------------------------------------------------- tests

#[tokio::test]
async fn every_api_route_refuses_missing_and_dead_credentials_and_changes_nothing() {
    let s = scene().await;
    let ops = api_ops(&s.app).await;
    let guest = s.app.guest_token(&s.meeting, "g@guest.test");
    let mut tampered = s.ada_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    let session = convene::http::auth::SESSION_COOKIE;
    let credentials: Vec<(&str, Option<(&str, String)>)> = vec![
        ("no credentials", None),
        (
            "an unknown token",
            Some(("authorization", "Bearer cvn_nope".into())),
        ),
        (
            "basic auth",
            Some(("authorization", "Basic YWRhOnNlY3JldA==".into())),
        ),
        (
            "a revoked token",
            Some(("authorization", format!("Bearer {}", s.revoked))),
        ),
        (
            "an expired token",
            Some(("authorization", format!("Bearer {}", s.expired))),
        ),
        (
            "a tampered token",
            Some(("authorization", format!("Bearer {tampered}"))),
        ),
        (
            "a guest link as a token",
            Some(("authorization", format!("Bearer {guest}"))),
        ),
        (
            "an API token as a session cookie",
            Some(("cookie", format!("{session}={}", s.ada_token))),
        ),
        (
            "a forged session",
            Some((
                "cookie",
                format!(
                    "{session}=cvs_{}_{}",
                    s.ada.tenant.as_uuid().simple(),
                    "A".repeat(43)
                ),
            )),
        ),
    ];
    let secured: Vec<&Op> = ops.iter().filter(|o| o.secured()).collect();
    assert!(secured.len() >= 17, "{} secured routes", secured.len());
    for op in secured {
        for (what, header) in &credentials {
            let mut req = s.request(&op.method, &op.template, &guest);
            if let Some((name, value)) = header {
                req = req.header(*name, value);
            }
            let label = format!("{} with {what}", op.label());
            let p = problem(refused(&s.app, &label, req).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(p["type"], "/problems/unauthenticated", "{label}");
        }
    }
    // What is public answers anyone, and changes nothing either.
    for op in ops.iter().filter(|o| PUBLIC.contains(&o.template.as_str())) {
        let before = s.app.world.store.dump_text();
        let r = s
            .request(&op.method, &op.template, &guest)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}: {}", op.label(), r.status());
        unchanged(&before, &s.app.world.store.dump_text(), &op.label());
    }
    // Ada's live token still works: the refusals were about the credentials.
    let r = s
        .app
        .http
        .get(s.app.url("/api/v1/me"))
        .bearer_auth(&s.ada_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// How a route naming one of Ada's things must refuse someone who is not Ada: the status
/// and problem type, or `(403, None)` for "403 or 404" (a route this suite does not know).
fn outsider_refusal(op: &Op, who: &str) -> Option<(StatusCode, Option<&'static str>)> {
    let not_found = Some((StatusCode::NOT_FOUND, Some("/problems/not-found")));
    let either = Some((StatusCode::FORBIDDEN, None));
    let (method, template) = (op.method.as_str(), op.template.as_str());
    let known = KNOWN.iter().any(|(m, t)| *m == method && *t == template);
    let meeting_route = template.starts_with("/api/v1/meetings/{id}");
    let names_someones = ["{id}", "{user}", "{tenant}", "{meeting}"]
        .iter()
        .any(|p| template.contains(p));
    match (method, template, who) {
        // Another tenant's meetings do not exist; nor do a colleague's meetings one is
        // not part of, nor anyone else's tokens.
        (_, _, "eve") if meeting_route => not_found,
        (_, _, "bob") if meeting_route && known => not_found,
        ("DELETE", "/api/v1/tokens/{id}", _) => not_found,
        // A participant sees the meeting and votes, but only the organizer decides.
        ("POST", t, "grace")
            if t.ends_with("/book") || t.ends_with("/reschedule") || t.ends_with("/cancel") =>
        {
            Some((StatusCode::FORBIDDEN, Some("/problems/forbidden")))
        }
        // A route this suite does not know yet, naming someone's things: refused.
        (_, _, "bob") if meeting_route => either,
        (_, _, "eve") if !known && names_someones => either,
        _ => None,
    }
}

#[tokio::test]
async fn other_tenants_and_outsiders_cannot_reach_adas_meetings_or_tokens() {
    let s = scene().await;
    let ops = api_ops(&s.app).await;
    let mut attacked = 0;
    for op in ops.iter().filter(|o| o.for_users()) {
        for (who, token) in [("eve", &s.eve), ("bob", &s.bob), ("grace", &s.grace)] {
            let Some((status, kind)) = outsider_refusal(op, who) else {
                continue;
            };
            let label = format!("{} as {who}", op.label());
            let r = refused(
                &s.app,
                &label,
                s.request(&op.method, &op.template, "").bearer_auth(token),
            )
            .await;
            let p = if kind.is_none() && r.status() == StatusCode::NOT_FOUND {
                problem(r, StatusCode::NOT_FOUND).await
            } else {
                problem(r, status).await
            };
            if let Some(kind) = kind {
                assert_eq!(p["type"], kind, "{label}: {p}");
            }
            attacked += 1;
        }
    }
    assert!(attacked >= 16, "only {attacked} attacks ran");

    // Eve's lists hold nothing of Ada's, even paged from Ada's meeting.
    for query in [String::new(), format!("?after={}", s.meeting.id())] {
        let list: Value = s
            .app
            .http
            .get(s.app.url(&format!("/api/v1/meetings{query}")))
            .bearer_auth(&s.eve)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"], json!([]), "{query}");
    }

    // The same through the pages, with valid sessions and CSRF tokens: the refusal is
    // about who asks, not about a missing form field.
    let id = s.meeting.id();
    let proposal = s.first_proposal();
    let eve = s.app.session_for(&s.eve_user).await;
    let bob = s.app.session_for(&s.bob_user).await;
    let grace = s.app.session_for(&s.grace_user).await;
    let forms = [
        ("book", vec![("proposal", proposal.as_str())]),
        ("reschedule", vec![]),
        ("cancel", vec![]),
    ];
    for (who, browser, view, decide) in [
        ("eve", &eve, StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        ("bob", &bob, StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        ("grace", &grace, StatusCode::OK, StatusCode::FORBIDDEN),
    ] {
        if view != StatusCode::OK {
            let label = format!("GET /meetings/{{id}} as {who}");
            let req = s
                .app
                .http
                .get(s.app.url(&format!("/meetings/{id}")))
                .header("cookie", &browser.cookie);
            page(refused(&s.app, &label, req).await, view, &label).await;
        }
        for (action, fields) in &forms {
            let label = format!("POST /meetings/{{id}}/{action} as {who}");
            let req = form(&s.app, &format!("/meetings/{id}/{action}"), browser, fields);
            page(refused(&s.app, &label, req).await, decide, &label).await;
        }
    }
    // Grace's sessions and Eve's are untouched by their refusals: they still work.
    for browser in [&eve, &grace] {
        let r = s
            .app
            .http
            .get(s.app.url("/meetings"))
            .header("cookie", &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

/// A form post from a signed-in browser, with its CSRF token.
fn form(
    app: &TestApp,
    path: &str,
    browser: &Browser,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut pairs: Vec<(&str, &str)> = vec![("csrf", browser.csrf.as_str())];
    pairs.extend_from_slice(fields);
    app.http
        .post(app.url(path))
        .header("cookie", &browser.cookie)
        .form(&pairs)
}

#[tokio::test]
async fn a_guest_link_opens_one_participant_of_one_meeting_and_nothing_else() {
    let s = scene().await;
    let ops = api_ops(&s.app).await;
    let guest_ops: Vec<&Op> = ops
        .iter()
        .filter(|o| !o.secured() && o.template.contains("{token}"))
        .collect();
    assert!(guest_ops.len() >= 2, "the guest routes are documented");
    let now = s.app.world.now();
    let later = now + jiff::SignedDuration::from_hours(24 * 30);
    let (m, second) = (&s.meeting, &s.second);
    let pass = |tenant, meeting, participant, expires_at| GuestPass {
        tenant,
        meeting,
        participant,
        expires_at,
    };
    let sign = |p: &GuestPass| s.app.guest_tokens.sign(p);
    let g = participant(m, "g@guest.test");
    let h = participant(second, "h@guest.test");
    let genuine = sign(&pass(m.tenant(), m.id(), g, later));
    let flip = |token: &str, at: usize| {
        let mut bytes = token.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let dot = genuine.find('.').unwrap();
    let foreign_key = GuestTokens::new(b"another deployment's secret, 32+ bytes")
        .unwrap()
        .sign(&pass(m.tenant(), m.id(), g, later));
    let forbidden = (StatusCode::FORBIDDEN, "/problems/forbidden");
    let not_found = (StatusCode::NOT_FOUND, "/problems/not-found");
    let variants: Vec<(&str, String, (StatusCode, &str))> = vec![
        (
            "an expired link",
            sign(&pass(
                m.tenant(),
                m.id(),
                g,
                now - jiff::SignedDuration::from_secs(1),
            )),
            (StatusCode::FORBIDDEN, "/problems/link-expired"),
        ),
        ("a link with altered claims", flip(&genuine, 5), not_found),
        (
            "a link with an altered signature",
            flip(&genuine, dot + 3),
            not_found,
        ),
        (
            "a truncated link",
            genuine[..genuine.len() - 4].to_owned(),
            not_found,
        ),
        ("a link signed with another key", foreign_key, not_found),
        (
            "this meeting with another meeting's guest",
            sign(&pass(m.tenant(), m.id(), h, later)),
            forbidden,
        ),
        (
            "another meeting with this meeting's guest",
            sign(&pass(m.tenant(), second.id(), g, later)),
            forbidden,
        ),
        (
            "this meeting under another tenant",
            sign(&pass(s.eve_user.tenant, m.id(), g, later)),
            not_found,
        ),
    ];
    let proposal = s.first_proposal();
    for (what, token, (status, kind)) in &variants {
        for op in &guest_ops {
            let label = format!("{} with {what}", op.label());
            let r = refused(&s.app, &label, s.request(&op.method, &op.template, token)).await;
            let p = problem(r, *status).await;
            assert_eq!(p["type"], *kind, "{label}: {p}");
        }
        let pages = [
            (Method::GET, format!("/m/{token}")),
            (Method::POST, format!("/m/{token}")),
            (Method::GET, format!("/m/{token}/vote/{proposal}")),
            (Method::POST, format!("/m/{token}/vote/{proposal}")),
        ];
        for (method, path) in pages {
            let label = format!(
                "{method} {} with {what}",
                path.replace(token.as_str(), "{token}")
            );
            let mut req = s.app.http.request(method, s.app.url(&path));
            if path.ends_with(&format!("/m/{token}")) {
                req = req.form(&[("p", proposal.as_str())]);
            }
            page(refused(&s.app, &label, req).await, *status, &label).await;
        }
    }

    // A genuine link of the other meeting cannot answer this meeting's proposals.
    let h_link = sign(&pass(second.tenant(), second.id(), h, later));
    let label = "POST /api/v1/guest/{token}/votes with another meeting's proposal";
    let r = refused(
        &s.app,
        label,
        s.request(&Method::POST, "/api/v1/guest/{token}/votes", &h_link),
    )
    .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("proposal"), "{p}");
    let path = format!("/m/{h_link}/vote/{proposal}");
    let body = page(
        refused(
            &s.app,
            "GET /m/{token}/vote/{foreign proposal}",
            s.app.http.get(s.app.url(&path)),
        )
        .await,
        StatusCode::NOT_FOUND,
        "GET /m/{token}/vote/{foreign proposal}",
    )
    .await;
    assert!(body.contains("no longer proposed"), "{body}");
    page(
        refused(
            &s.app,
            "POST /m/{token}/vote/{foreign proposal}",
            s.app.http.post(s.app.url(&path)),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "POST /m/{token}/vote/{foreign proposal}",
    )
    .await;

    // The genuine link works, for its own participant alone: the refusals above were
    // about the links.
    let r = s
        .app
        .http
        .get(s.app.url(&format!("/api/v1/guest/{genuine}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["title"], s.meeting.title().to_string(), "{view}");
}

#[tokio::test]
async fn pages_send_strangers_to_sign_in_and_change_nothing() {
    let s = scene().await;
    let id = s.meeting.id();
    let visits = [
        "/meetings".to_owned(),
        "/meetings/new".to_owned(),
        format!("/meetings/{id}"),
        "/settings".to_owned(),
        "/settings/export".to_owned(),
    ];
    for path in &visits {
        let label = format!("GET {path} anonymously");
        let r = refused(&s.app, &label, s.app.http.get(s.app.url(path))).await;
        let next = convene::http::oauth::encode_query(path);
        redirect(&r, &format!("/signin?next={next}"), &label);
    }
    let forms = [
        "/meetings".to_owned(),
        format!("/meetings/{id}/book"),
        format!("/meetings/{id}/reschedule"),
        format!("/meetings/{id}/cancel"),
        "/settings".to_owned(),
        "/settings/grants/google/revoke".to_owned(),
        "/settings/delete".to_owned(),
    ];
    // A form post carries no `next`: after sign-in, the browser starts from the list.
    let proposal = s.first_proposal();
    for path in &forms {
        let label = format!("POST {path} anonymously");
        let req = s.app.http.post(s.app.url(path)).form(&[
            ("csrf", "x"),
            ("confirm", "ada@acme.test"),
            ("proposal", proposal.as_str()),
        ]);
        redirect(
            &refused(&s.app, &label, req).await,
            "/signin?next=%2Fmeetings",
            &label,
        );
    }
    // With a dead session cookie of Ada's tenant, the same.
    let forged = format!(
        "{}=cvs_{}_{}",
        convene::http::auth::SESSION_COOKIE,
        s.ada.tenant.as_uuid().simple(),
        "A".repeat(43)
    );
    let r = refused(
        &s.app,
        "GET /settings with a forged session",
        s.app
            .http
            .get(s.app.url("/settings"))
            .header("cookie", &forged),
    )
    .await;
    redirect(&r, "/signin?next=%2Fsettings", "forged session");
    // Signing out without a session ends nothing; a callback without a login started in
    // this browser signs nobody in.
    let r = refused(
        &s.app,
        "POST /auth/logout anonymously",
        s.app.http.post(s.app.url("/auth/logout")),
    )
    .await;
    redirect(&r, "/signin?signed_out=1", "logout");
    for provider in ["google", "microsoft"] {
        let label = format!("GET /auth/{provider}/callback without a login");
        let req = s.app.http.get(
            s.app
                .url(&format!("/auth/{provider}/callback?code=c&state=s")),
        );
        let r = refused(&s.app, &label, req).await;
        assert!(
            r.headers()
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().starts_with("convene_session=cvs_"))
        );
        page(r, StatusCode::BAD_REQUEST, &label).await;
    }
}

// -------------------------------------------------------------------------- /admin

/// The `/admin` routes: these, and any other the OpenAPI document lists.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/tenants"),
    ("GET", "/admin/tenants/{tenant}/users"),
    ("GET", "/admin/tenants/{tenant}/users/{user}"),
    ("DELETE", "/admin/tenants/{tenant}/users/{user}"),
    (
        "POST",
        "/admin/tenants/{tenant}/users/{user}/grants/{provider}/revoke",
    ),
    ("GET", "/admin/tenants/{tenant}/audit"),
    ("GET", "/admin/outbox"),
];

/// Every `/admin` route as a path naming Ada's things, with whether it changes something
/// (admin level only).
async fn admin_routes(s: &Scene) -> Vec<(Method, String, bool)> {
    let mut templates: Vec<(Method, String)> = ADMIN_ROUTES
        .iter()
        .map(|(m, t)| (m.parse().unwrap(), (*t).to_owned()))
        .collect();
    for op in api_ops(&s.app).await {
        if op.template.starts_with("/admin")
            && !templates
                .iter()
                .any(|(m, t)| *m == op.method && *t == op.template)
        {
            templates.push((op.method, op.template));
        }
    }
    templates
        .into_iter()
        .map(|(m, t)| {
            let write = m != Method::GET;
            (m, s.path(&t, ""), write)
        })
        .collect()
}

#[tokio::test]
async fn admin_refuses_strangers_codeless_operators_other_networks_and_support_writes() {
    let s = scene().await;
    let elsewhere = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let routes = admin_routes(&s).await;
    for (method, path, write) in &routes {
        let label = |what: &str| format!("{method} {path} {what}");
        let req = || s.app.http.request(method.clone(), s.app.url(path));
        let unauthenticated = |r| async move {
            let p = problem(r, StatusCode::UNAUTHORIZED).await;
            assert_eq!(p["type"], "/problems/unauthenticated");
        };
        let l = label("anonymously");
        unauthenticated(refused(&s.app, &l, req()).await).await;
        let l = label("without a TOTP code");
        unauthenticated(refused(&s.app, &l, req().bearer_auth(ADMIN_TOKEN)).await).await;
        let l = label("with a wrong TOTP code");
        let wrong = wrong_code(&s.app);
        let r = refused(
            &s.app,
            &l,
            req()
                .bearer_auth(ADMIN_TOKEN)
                .header("x-convene-totp", wrong),
        )
        .await;
        unauthenticated(r).await;
        let l = label("with an unknown token");
        let code = fresh_code(&s.app);
        let r = refused(
            &s.app,
            &l,
            req()
                .bearer_auth("not-an-operator")
                .header("x-convene-totp", &code),
        )
        .await;
        unauthenticated(r).await;
        let l = label("with a user's API token");
        let r = refused(
            &s.app,
            &l,
            req()
                .bearer_auth(&s.ada_token)
                .header("x-convene-totp", &code),
        )
        .await;
        unauthenticated(r).await;

        // Valid credentials and a fresh code, from an address outside the allow-list.
        let l = label("from a network not allowed");
        let code = fresh_code(&s.app);
        let r = refused(
            &s.app,
            &l,
            elsewhere
                .request(method.clone(), s.app.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .header("x-convene-totp", &code),
        )
        .await;
        let p = problem(r, StatusCode::FORBIDDEN).await;
        assert!(
            p["detail"].as_str().unwrap().contains("address"),
            "{l}: {p}"
        );
        // The network was the only reason: the same code works from the allowed one.
        let r = s
            .app
            .http
            .get(s.app.url("/admin/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-convene-totp", &code)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{l}: the credentials were valid"
        );

        if *write {
            let l = label("as support");
            let code = fresh_code(&s.app);
            let r = refused(
                &s.app,
                &l,
                req()
                    .bearer_auth(SUPPORT_TOKEN)
                    .header("x-convene-totp", code),
            )
            .await;
            let p = problem(r, StatusCode::FORBIDDEN).await;
            assert_eq!(p["type"], "/problems/forbidden", "{l}");
        }
    }
    // Metrics: to the administration networks only.
    let r = refused(
        &s.app,
        "GET /metrics from elsewhere",
        elsewhere.get(s.app.url("/metrics")),
    )
    .await;
    problem(r, StatusCode::FORBIDDEN).await;
    let r = s.app.http.get(s.app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
