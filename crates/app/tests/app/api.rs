//! The JSON API and guest pages end to end, over the testkit's fakes.

use convene_domain::consent::Provider;
use convene_domain::email::EmailAddress;
use convene_domain::ids::MeetingId;
use convene_domain::ports::MeetingStore;
use convene_testkit::fixtures::World;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::TestApp;

fn new_meeting(guests: Value) -> Value {
    json!({
        "title": "Roadmap review",
        "duration_minutes": 45,
        "window": {"start": "2026-03-03T00:00:00Z", "end": "2026-03-07T00:00:00Z"},
        "participants": guests,
    })
}

async fn problem(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"].as_str().unwrap().starts_with("/problems/"),
        "{body}"
    );
    body
}

#[tokio::test]
async fn the_full_flow_over_http() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let (linus, _) = world.connected_user("linus@acme.test", "Europe/Helsinki", Provider::Google);
    let app = TestApp::spawn(world).await;
    let token = app.token_for(&ada).await;

    let body = new_meeting(json!([
        {"email": grace.email.as_str()},
        {"email": linus.email.as_str()},
        {"email": "marie@guest.test", "zone": "Europe/Paris"},
        {"email": "omar@guest.test"},
        {"name": "Kim"},
    ]));
    let r = app
        .http
        .post(app.url("/api/v1/meetings"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["state"], "polling");
    let id: MeetingId = created["id"].as_str().unwrap().parse().unwrap();
    let meeting = app.world.store.meeting(ada.tenant, id).await.unwrap();

    app.world.deliver_all().await;
    for guest in ["marie@guest.test", "omar@guest.test"] {
        assert_eq!(
            app.world
                .emails_to(&EmailAddress::parse(guest).unwrap())
                .len(),
            1,
            "one email for {guest}"
        );
    }

    // Marie votes on the page (form), Omar with one click, Kim through the JSON API.
    let marie = app.guest_token(&meeting, "marie@guest.test");
    let page = app
        .http
        .get(app.url(&format!("/m/{marie}?tz=Europe/Paris")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Roadmap review") && html.contains("15:00–15:45 CET"),
        "{html}"
    );
    let form: Vec<(String, String)> = meeting
        .proposals()
        .iter()
        .map(|p| ("p".to_owned(), p.id.to_string()))
        .collect();
    let r = app
        .http
        .post(app.url(&format!("/m/{marie}")))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let omar = app.guest_token(&meeting, "omar@guest.test");
    let first = meeting.proposals()[0].id;
    let confirm = app
        .http
        .get(app.url(&format!("/m/{omar}/vote/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    assert!(
        app.world
            .store
            .meeting(ada.tenant, id)
            .await
            .unwrap()
            .votes()
            .len()
            == meeting.proposals().len(),
        "a GET never votes"
    );
    let r = app
        .http
        .post(app.url(&format!("/m/{omar}/vote/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let kim = app.guest_token(&meeting, "Kim");
    let answers = json!({"answers": [{"proposal": first.to_string(), "available": true}]});
    let r = app
        .http
        .post(app.url(&format!("/api/v1/guest/{kim}/votes")))
        .json(&answers)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["state"], "booked");

    app.world.deliver_all().await;
    let events = app.world.google.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].account, "ada@acme.test");
    assert!(events[0].conference_url.is_some());
    for who in [
        "grace@acme.test",
        "linus@acme.test",
        "marie@guest.test",
        "omar@guest.test",
    ] {
        let invites = app
            .world
            .emails_to(&EmailAddress::parse(who).unwrap())
            .into_iter()
            .filter(|e| e.calendar.as_ref().is_some_and(|c| c.method == "REQUEST"))
            .count();
        assert_eq!(invites, 1, "{who}");
    }
    let r = app
        .http
        .get(app.url(&format!("/api/v1/meetings/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["state"], "booked");
    assert!(
        view["conference_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );

    // Reschedule into the next week, then cancel.
    let r = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{id}/reschedule")))
        .bearer_auth(&token)
        .json(&json!({"window": {"start": "2026-03-09T00:00:00Z", "end": "2026-03-12T00:00:00Z"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(
        (view["state"].as_str(), view["round"].as_u64()),
        (Some("polling"), Some(2))
    );
    let r = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.world.deliver_all().await;
    assert!(app.world.google.events()[0].cancelled);
    let r = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn every_api_route_refuses_the_anonymous() {
    let app = TestApp::spawn(World::new()).await;
    let id = uuid::Uuid::nil();
    let routes = [
        ("GET", "/api/v1/me".to_owned()),
        ("PATCH", "/api/v1/me".to_owned()),
        ("DELETE", "/api/v1/me".to_owned()),
        ("GET", "/api/v1/me/export".to_owned()),
        ("GET", "/api/v1/me/grants".to_owned()),
        ("DELETE", "/api/v1/me/grants/google".to_owned()),
        ("GET", "/api/v1/tokens".to_owned()),
        ("POST", "/api/v1/tokens".to_owned()),
        ("DELETE", format!("/api/v1/tokens/{id}")),
        ("POST", "/api/v1/availability".to_owned()),
        ("GET", "/api/v1/meetings".to_owned()),
        ("POST", "/api/v1/meetings".to_owned()),
        ("GET", format!("/api/v1/meetings/{id}")),
        ("POST", format!("/api/v1/meetings/{id}/book")),
        ("POST", format!("/api/v1/meetings/{id}/reschedule")),
        ("POST", format!("/api/v1/meetings/{id}/cancel")),
        ("POST", format!("/api/v1/meetings/{id}/votes")),
    ];
    for (method, path) in routes {
        for auth in [None, Some("Bearer cvn_nope"), Some("Basic YTpi")] {
            let mut req = app
                .http
                .request(method.parse().unwrap(), app.url(&path))
                .json(&json!({}));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            problem(r, StatusCode::UNAUTHORIZED).await;
        }
    }
}

#[tokio::test]
async fn another_tenants_meeting_is_not_found_and_tampered_guest_links_are_refused() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let other = world.other_tenant();
    let (eve, _) = world.connected_user_in(&other, "eve@evil.test", "UTC", Provider::Google);
    let app = TestApp::spawn(world).await;
    let (ada_token, eve_token) = (app.token_for(&ada).await, app.token_for(&eve).await);
    let r = app
        .http
        .post(app.url("/api/v1/meetings"))
        .bearer_auth(&ada_token)
        .json(&new_meeting(
            json!([{"email": "g@guest.test"}, {"email": "h@guest.test"}]),
        ))
        .send()
        .await
        .unwrap();
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    for path in [format!("/api/v1/meetings/{id}")] {
        let r = app
            .http
            .get(app.url(&path))
            .bearer_auth(&eve_token)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::NOT_FOUND).await;
    }
    let r = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{id}/cancel")))
        .bearer_auth(&eve_token)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;

    let meeting = app
        .world
        .store
        .meeting(ada.tenant, id.parse().unwrap())
        .await
        .unwrap();
    let g = app.guest_token(&meeting, "g@guest.test");
    let mut tampered = g.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let r = app
        .http
        .get(app.url(&format!("/api/v1/guest/{tampered}")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    // A guest's link only speaks for them: votes land on their participant alone.
    let answers = json!({"answers": [{"proposal": meeting.proposals()[0].id.to_string(), "available": true}]});
    app.http
        .post(app.url(&format!("/api/v1/guest/{g}/votes")))
        .json(&answers)
        .send()
        .await
        .unwrap();
    let after = app
        .world
        .store
        .meeting(ada.tenant, meeting.id())
        .await
        .unwrap();
    let voters: std::collections::HashSet<_> =
        after.votes().iter().map(|v| v.participant).collect();
    assert_eq!(voters.len(), 1);
    assert_eq!(
        after
            .participant(*voters.iter().next().unwrap())
            .unwrap()
            .email
            .as_ref()
            .unwrap()
            .as_str(),
        "g@guest.test"
    );
}

#[tokio::test]
async fn malformed_and_oversized_input_is_a_problem_and_changes_nothing() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn_with(world, 4096).await;
    let token = app.token_for(&ada).await;
    let post = |body: reqwest::Body, ct: &'static str| {
        app.http
            .post(app.url("/api/v1/meetings"))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    problem(
        post("{not json".into(), "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        post("{}".into(), "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    let wrong_type = json!({"title": 5, "duration_minutes": 30, "window": {"start": "x", "end": "y"}, "participants": []});
    problem(
        post(wrong_type.to_string().into(), "application/json")
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut unknown = new_meeting(json!([{"email": "g@guest.test"}]));
    unknown["priority"] = json!("high");
    let p = problem(
        post(unknown.to_string().into(), "application/json")
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("priority"), "{p}");
    let huge = new_meeting(json!([{"name": "x".repeat(10_000)}]));
    problem(
        post(huge.to_string().into(), "application/json")
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    for (field, value, slug) in [
        ("duration_minutes", json!(3), "invalid-request"),
        (
            "window",
            json!({"start": "2026-03-03T00:00:00Z", "end": "2026-09-03T00:00:00Z"}),
            "window-too-long",
        ),
        (
            "window",
            json!({"start": "2020-03-03T00:00:00Z", "end": "2020-03-04T00:00:00Z"}),
            "window-in-past",
        ),
        (
            "window",
            json!({"start": "tomorrow", "end": "2026-03-04T00:00:00Z"}),
            "invalid-time",
        ),
        (
            "participants",
            json!([{"email": "g@guest.test", "zone": "Mars/Olympus"}]),
            "invalid-request",
        ),
        (
            "participants",
            json!([{"email": "not an email"}]),
            "invalid-request",
        ),
        ("title", json!(""), "invalid-request"),
    ] {
        let mut body = new_meeting(json!([{"email": "g@guest.test"}]));
        body[field] = value;
        let p = problem(
            post(body.to_string().into(), "application/json")
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["type"], format!("/problems/{slug}"), "{field}: {p}");
    }
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"email": format!("g{i}@guest.test")}))
        .collect();
    let app_big = TestApp::spawn_with(World::new(), 1 << 20).await;
    let (bob, _) = app_big
        .world
        .connected_user("bob@acme.test", "UTC", Provider::Google);
    let bob_token = app_big.token_for(&bob).await;
    let r = app_big
        .http
        .post(app_big.url("/api/v1/meetings"))
        .bearer_auth(&bob_token)
        .json(&new_meeting(json!(many)))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        app.world.store.outbox_messages().is_empty(),
        "nothing was enqueued"
    );
    let r = app
        .http
        .get(app.url("/api/v1/meetings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn operations_endpoints_and_headers() {
    let app = TestApp::spawn(World::new()).await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let txt = app
        .http
        .get(app.url("/.well-known/security.txt"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(txt.contains("Contact: mailto:security@convene.test") && txt.contains("Expires: "));
    // The policy it names is served.
    let policy = txt
        .lines()
        .find_map(|l| l.strip_prefix("Policy: "))
        .expect("a Policy line");
    let path = policy
        .strip_prefix("http://convene.test")
        .expect("on the configured base URL");
    let r = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{policy}");
    assert!(r.text().await.unwrap().contains("vulnerabilit"));
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/meetings"]["post"].is_object());
    // The interactive viewer, served offline from the binary.
    let r = app.http.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("swagger-ui"));
    let init = app
        .http
        .get(app.url("/api/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    problem(
        app.http
            .get(app.url("/no/such/route"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn api_tokens_are_shown_once_listed_without_secrets_and_revocable() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn(world).await;
    let token = app.token_for(&ada).await;
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .json(&json!({"label": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("cvn_"));
    assert!(
        !app.world.store.dump_text().contains(&secret),
        "stored hashed only"
    );
    let list: Value = app
        .http
        .get(app.url("/api/v1/tokens"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t["token"].is_null())
    );
    let id = created["id"].as_str().unwrap();
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(
        app.http
            .get(app.url("/api/v1/me"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let me: Value = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@acme.test");
}

#[tokio::test]
async fn rate_limits_answer_429_per_address_and_per_account() {
    let app = TestApp::spawn_custom(World::new(), 64 * 1024, |app, _| {
        app.rate_limit = convene::http::RateLimit::per_minute(3);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            app.http
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    problem(
        app.http.get(app.url("/healthz")).send().await.unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn_custom(world, 64 * 1024, |app, _| {
        app.account_limit = convene::http::RateLimit::per_minute(2);
    })
    .await;
    let token = app.token_for(&ada).await;
    for _ in 0..2 {
        let r = app
            .http
            .get(app.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::TOO_MANY_REQUESTS).await;
}

// What API fuzzing (scripts/api-fuzz) found, kept fixed.

#[tokio::test]
async fn a_body_must_be_an_object_even_where_every_field_is_optional() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn(world).await;
    let token = app.token_for(&ada).await;
    // serde reads a struct from an array of its fields: `[null, null]` passed for `{}`.
    for body in ["[null, null]", "[]", "  [\"Asia/Tokyo\"]"] {
        let r = app
            .http
            .patch(app.url("/api/v1/me"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["type"], "/problems/invalid-body", "{body}: {p}");
    }
    let me: Value = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["zone"], "Europe/Paris", "nothing changed");
}

#[tokio::test]
async fn whole_numbers_are_integers_however_they_are_written() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn(world).await;
    let token = app.token_for(&ada).await;
    let create = |body: &'static str| {
        app.http
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // JSON Schema, which the document is written in, counts 30.0 as the integer 30.
    for body in [
        r#"{"label": "ci", "expires_in_days": 30.0}"#,
        r#"{"label": "ci", "expires_in_days": 3e1}"#,
    ] {
        let r = create(body).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{body}");
        let created: Value = r.json().await.unwrap();
        assert!(created["expires_at"].is_string(), "{created}");
    }
    for body in [
        r#"{"label": "ci", "expires_in_days": 30.5}"#,
        r#"{"label": "ci", "expires_in_days": -30.0}"#,
        r#"{"label": "ci", "expires_in_days": 1e20}"#,
        r#"{"label": "ci", "expires_in_days": "30"}"#,
    ] {
        let p = problem(
            create(body).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["type"], "/problems/invalid-body", "{body}: {p}");
    }
}

#[tokio::test]
async fn unreadable_path_and_query_parameters_are_problem_documents() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let app = TestApp::spawn(world).await;
    let token = app.token_for(&ada).await;
    // Not a UUID, and not UTF-8: axum's own answers were 400 in plain text.
    for path in [
        "/api/v1/tokens/not-a-uuid",
        "/api/v1/meetings/%FF",
        "/api/v1/me/grants/%C0%AF",
    ] {
        let send = if path.starts_with("/api/v1/meetings/") {
            app.http.get(app.url(path))
        } else {
            app.http.delete(app.url(path))
        };
        let p = problem(
            send.bearer_auth(&token).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(p["type"], "/problems/not-found", "{path}: {p}");
    }
    for query in ["limit=ten", "after=nope", "colour=blue"] {
        let r = app
            .http
            .get(app.url(&format!("/api/v1/meetings?{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn the_openapi_document_declares_what_each_operation_can_answer() {
    let app = TestApp::spawn(World::new()).await;
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            for status in ["429", "500", "503"] {
                assert!(responses.contains_key(status), "{at}: no {status}");
            }
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(
                secured,
                responses.contains_key("401"),
                "{at}: 401 iff secured"
            );
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{at}: no {status}");
                }
            }
            for (status, response) in responses {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{at} {status}: no description"
                );
                if status.starts_with(['4', '5']) {
                    let content = response["content"].as_object().unwrap();
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{at} {status}"
                    );
                }
            }
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                // A query's fields were once declared as required path parameters.
                let in_path = path.contains(&format!("{{{name}}}"));
                let expected = if in_path { "path" } else { "query" };
                assert_eq!(parameter["in"], expected, "{at}: {name}");
                if in_path {
                    assert_eq!(parameter["required"], true, "{at}: {name}");
                }
            }
        }
    }
    assert!(operations >= 30, "{operations} operations");
    for path in ["/api/v1/guest/{token}", "/api/v1/guest/{token}/votes"] {
        let item = doc["paths"][path].as_object().unwrap();
        for op in item.values() {
            assert!(
                op.get("security").is_none(),
                "{path}: the link is the credential"
            );
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_totp"]["in"], "header");
    assert_eq!(schemes["admin_totp"]["name"], "x-convene-totp");
    assert_eq!(
        doc["paths"]["/api/v1/meetings"]["post"]["responses"]["201"]["links"]["get"]["operationId"],
        "get_meeting"
    );
}
