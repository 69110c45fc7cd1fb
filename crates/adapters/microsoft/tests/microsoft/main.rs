//! The Microsoft adapter's integration tests: Graph and the v2 token endpoint against
//! wiremock, answering with bodies shaped as Microsoft documents them. One test binary.

use std::time::{Duration, Instant};

use convene_domain::consent::{Grant, Provider, ReadAccess};
use convene_domain::email::EmailAddress;
use convene_domain::outbox::Attendee;
use convene_domain::people::PersonName;
use convene_domain::ports::{
    CalendarError, CalendarProvider, Credentials, EventRequest, IdentityError, IdentityProvider,
};
use convene_domain::time::{Interval, SignedDuration, Timestamp, Zone};
use convene_http::testing::{Fixture, Logs};
use convene_http::{HttpSettings, RetryPolicy};
use convene_microsoft::{MicrosoftCalendar, MicrosoftConfig, MicrosoftIdentity};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const NOW: &str = "2026-03-01T00:00:00Z";
const CANARY: &str = "CANARY";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn span(a: &str, b: &str) -> Interval {
    Interval::new(at(a), at(b)).unwrap()
}

fn window(days: i64) -> Interval {
    Interval::starting_at(
        at("2026-03-02T00:00:00Z"),
        SignedDuration::from_hours(24 * days),
    )
    .unwrap()
}

fn config(server: &MockServer) -> MicrosoftConfig {
    let base = server.uri();
    let mut c = MicrosoftConfig::new(
        "convene-client".into(),
        SecretString::from("convene-secret"),
        "http://127.0.0.1:1/auth/microsoft/callback"
            .parse()
            .unwrap(),
        "common",
    );
    c.oauth.token_url = format!("{base}/common/oauth2/v2.0/token").parse().unwrap();
    c.graph_url = format!("{base}/v1.0").parse().unwrap();
    c.http = HttpSettings {
        timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_millis(400),
        max_concurrency: 4,
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(3),
        },
        ..HttpSettings::default()
    };
    c
}

fn adapter(server: &MockServer, fx: &Fixture) -> MicrosoftCalendar {
    MicrosoftCalendar::new(&config(server), fx.store.clone(), fx.clock.clone()).unwrap()
}

/// Graph's getSchedule answer for whatever was asked: per schedule, a busy, a free, a
/// tentative and an out-of-office item (in UTC, as asked), all with canary subjects and
/// locations, and working hours in a Windows zone.
fn echo_schedule(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let start = body["startTime"]["dateTime"].as_str().unwrap();
    let day = &start[..10];
    let item = |status: &str, from: &str, to: &str| {
        json!({
            "isPrivate": false,
            "status": status,
            "subject": format!("CANARY-subject-{status}"),
            "location": "CANARY-location",
            "start": {"dateTime": format!("{day}T{from}.0000000"), "timeZone": "UTC"},
            "end": {"dateTime": format!("{day}T{to}.0000000"), "timeZone": "UTC"}
        })
    };
    let value: Vec<Value> = body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!({
                "scheduleId": s,
                "availabilityView": "0220",
                "scheduleItems": [
                    item("busy", "09:00:00", "10:00:00"),
                    item("free", "10:00:00", "11:00:00"),
                    item("tentative", "11:00:00", "12:00:00"),
                    item("oof", "13:00:00", "14:00:00"),
                ],
                "workingHours": {
                    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                    "startTime": "08:00:00.0000000",
                    "endTime": "17:00:00.0000000",
                    "timeZone": {"name": "Pacific Standard Time"}
                }
            })
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
        "value": value
    }))
}

async fn people(fx: &Fixture, n: usize, domain: &str) -> Vec<Grant> {
    let tenant = fx.tenant(domain).await;
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            fx.connect(
                tenant,
                Provider::Microsoft,
                &format!("p{i}@{domain}"),
                fx.tokens(
                    &format!("refresh-{i}"),
                    Some(&format!("access-{domain}-{i}")),
                ),
            )
            .await,
        );
    }
    out
}

fn reads(grants: &[Grant]) -> Vec<ReadAccess> {
    grants.iter().map(|g| g.read_access().unwrap()).collect()
}

async fn schedule_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/getSchedule"))
        .map(|r| {
            assert_eq!(
                r.headers.get("prefer").unwrap().to_str().unwrap(),
                "outlook.timezone=\"UTC\""
            );
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

async fn mount_schedule(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v1.0/me/calendar/getSchedule"))
        .respond_with(echo_schedule)
        .mount(server)
        .await;
}

#[tokio::test]
async fn twenty_schedules_take_one_call_and_twenty_one_take_two() {
    for (n, calls) in [(20, 1), (21, 2)] {
        let server = MockServer::start().await;
        mount_schedule(&server).await;
        let fx = Fixture::at(NOW);
        let grants = people(&fx, n, "contoso.com").await;
        let logs = Logs::capture();
        let out = adapter(&server, &fx)
            .free_busy(&reads(&grants), window(7))
            .await;
        assert_eq!(out.len(), n);
        // Free is free; busy, tentative and out-of-office are busy.
        for entry in &out {
            assert_eq!(
                entry.busy,
                Ok(vec![
                    span("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"),
                    span("2026-03-02T11:00:00Z", "2026-03-02T12:00:00Z"),
                    span("2026-03-02T13:00:00Z", "2026-03-02T14:00:00Z"),
                ])
            );
        }
        let bodies = schedule_bodies(&server).await;
        assert_eq!(bodies.len(), calls, "{n} schedules");
        assert!(
            bodies
                .iter()
                .all(|b| b["schedules"].as_array().unwrap().len() <= 20)
        );
        assert_eq!(bodies[0]["startTime"]["timeZone"], "UTC");
        // Subjects and locations never leave the adapter.
        let seen = format!("{out:?}\n{}", logs.text());
        assert!(!seen.contains(CANARY), "content leaked: {seen}");
    }
}

#[tokio::test]
async fn windows_under_62_days_take_one_call_and_longer_ones_two() {
    for (days, calls) in [(61, 1), (62, 2)] {
        let server = MockServer::start().await;
        mount_schedule(&server).await;
        let fx = Fixture::at(NOW);
        let grants = people(&fx, 2, "contoso.com").await;
        let out = adapter(&server, &fx)
            .free_busy(&reads(&grants), window(days))
            .await;
        assert!(out.iter().all(|c| c.busy.is_ok()));
        let bodies = schedule_bodies(&server).await;
        assert_eq!(bodies.len(), calls, "{days} days");
        for b in bodies {
            let start: jiff::civil::DateTime = b["startTime"]["dateTime"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let end: jiff::civil::DateTime =
                b["endTime"]["dateTime"].as_str().unwrap().parse().unwrap();
            assert!(start.duration_until(end) < SignedDuration::from_hours(62 * 24));
        }
    }
}

#[tokio::test]
async fn schedule_errors_fail_their_schedule_alone_and_windows_zones_are_read() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/calendar/getSchedule"))
        .and(header("authorization", "Bearer access-contoso.com-0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [
                {"scheduleId": "p0@contoso.com", "availabilityView": "2",
                 "scheduleItems": [{"status": "workingElsewhere", "subject": "CANARY-s",
                    "start": {"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
                    "end": {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "Pacific Standard Time"}}]},
                {"scheduleId": "p1@contoso.com", "availabilityView": "",
                 "error": {"message": "CANARY-mailbox p1@contoso.com not found", "responseCode": "ErrorMailboxNotFound"}},
                {"scheduleId": "p2@contoso.com", "availabilityView": "",
                 "error": {"message": "CANARY", "responseCode": "ErrorInternalServerTransientError"}}
            ]
        })))
        .mount(&server)
        .await;
    // p1, read alone with its own token, is still not found.
    Mock::given(method("POST"))
        .and(path("/v1.0/me/calendar/getSchedule"))
        .and(header("authorization", "Bearer access-contoso.com-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"scheduleId": "p1@contoso.com", "availabilityView": "",
                       "error": {"message": "gone", "responseCode": "ErrorMailboxNotFound"}}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let grants = people(&fx, 3, "contoso.com").await;
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    // 09:00 Pacific (PST, UTC-8) is 17:00Z.
    assert_eq!(
        out[0].busy,
        Ok(vec![span("2026-03-02T17:00:00Z", "2026-03-02T18:00:00Z")])
    );
    assert_eq!(out[1].busy, Err(CalendarError::NotFound));
    let Err(CalendarError::Unavailable(reason)) = &out[2].busy else {
        panic!("unavailable expected: {:?}", out[2].busy);
    };
    assert!(reason.contains("ErrorInternalServerTransientError"));
    assert!(!format!("{out:?}").contains(CANARY));
}

#[tokio::test]
async fn object_id_accounts_are_resolved_through_me() {
    let server = MockServer::start().await;
    mount_schedule(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "mail": "megan@contoso.com", "userPrincipalName": "megan@contoso.onmicrosoft.com"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("contoso").await;
    let g = fx
        .connect(
            tenant,
            Provider::Microsoft,
            "48d31887-5fad-4d73-a9f5-3c356e68a038",
            fx.tokens("r", Some("t")),
        )
        .await;
    let out = adapter(&server, &fx)
        .free_busy(&[g.read_access().unwrap()], window(7))
        .await;
    assert!(out[0].busy.as_ref().is_ok_and(|b| b.len() == 3));
    let bodies = schedule_bodies(&server).await;
    assert_eq!(bodies[0]["schedules"], json!(["megan@contoso.com"]));
}

#[tokio::test]
async fn a_429_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/calendar/getSchedule"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(
            json!({"error": {"code": "ApplicationThrottled", "message": "Application is over its MailboxConcurrency limit."}}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_schedule(&server).await;
    let fx = Fixture::at(NOW);
    let grants = people(&fx, 2, "contoso.com").await;
    let started = Instant::now();
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    assert!(out.iter().all(|c| c.busy.is_ok()));
    assert!(started.elapsed() >= Duration::from_millis(950));
}

fn stale(refresh: &str) -> Credentials {
    Credentials {
        refresh_token: SecretString::from(refresh.to_owned()),
        access_token: Some(SecretString::from("expired")),
        access_expires_at: Some(at("2026-02-28T00:00:00Z")),
    }
}

#[tokio::test]
async fn rotated_refresh_tokens_are_stored_every_time_once_per_grant() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/common/oauth2/v2.0/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "token_type": "Bearer",
                    "scope": "https://graph.microsoft.com/Calendars.ReadBasic https://graph.microsoft.com/User.Read",
                    "expires_in": 3599, "ext_expires_in": 3599,
                    "access_token": "at-2", "refresh_token": "rt-2"
                }))
                .set_delay(Duration::from_millis(50)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/calendar/getSchedule"))
        .and(header("authorization", "Bearer at-2"))
        .respond_with(echo_schedule)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("contoso").await;
    let g = fx
        .connect(
            tenant,
            Provider::Microsoft,
            "megan@contoso.com",
            stale("rt-1"),
        )
        .await;
    let graph = adapter(&server, &fx);
    let access = [g.read_access().unwrap()];
    // Five reads at once: one refresh, the others wait for it.
    let reads =
        futures::future::join_all((0..5).map(|_| graph.free_busy(&access, window(7)))).await;
    assert!(reads.iter().all(|r| r[0].busy.is_ok()), "{reads:?}");
    let stored = fx.credentials(&g).await.unwrap();
    assert_eq!(
        stored.refresh_token.expose_secret(),
        "rt-2",
        "rotation stored"
    );
    assert_eq!(stored.access_token.unwrap().expose_secret(), "at-2");
    assert_eq!(
        stored.access_expires_at,
        Some(at(NOW) + SignedDuration::from_secs(3599))
    );
}

#[tokio::test]
async fn invalid_grant_on_refresh_is_consent_revoked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/common/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.",
            "error_codes": [50173],
            "timestamp": "2026-03-01 00:00:00Z",
            "trace_id": "x", "correlation_id": "y"
        })))
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("contoso").await;
    let g = fx
        .connect(
            tenant,
            Provider::Microsoft,
            "megan@contoso.com",
            stale("rt-dead"),
        )
        .await;
    let out = adapter(&server, &fx)
        .free_busy(&[g.read_access().unwrap()], window(7))
        .await;
    assert_eq!(out[0].busy, Err(CalendarError::ConsentRevoked));
    let identity = MicrosoftIdentity::new(&config(&server), fx.clock.clone()).unwrap();
    assert_eq!(
        identity.refresh(&stale("rt-dead")).await.unwrap_err(),
        IdentityError::ConsentRevoked
    );
}

fn booking(existing: Option<String>) -> EventRequest {
    EventRequest {
        request_id: "0190c0de-0001-7000-8000-000000000002-1".into(),
        uid: "m-2@convene.test".into(),
        title: "Design review".into(),
        slot: span("2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z"),
        zone: Zone::parse("Europe/Paris").unwrap(),
        attendees: vec![
            Attendee {
                name: PersonName::parse("Grace").unwrap(),
                email: Some(EmailAddress::parse("grace@example.org").unwrap()),
                required: true,
            },
            Attendee {
                name: PersonName::parse("Linus").unwrap(),
                email: Some(EmailAddress::parse("linus@example.org").unwrap()),
                required: false,
            },
        ],
        conference: true,
        existing,
    }
}

/// An event as Graph returns it, full of content that must not leave the adapter.
fn graph_event(id: &str) -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/events/$entity",
        "id": id,
        "subject": "CANARY-subject",
        "bodyPreview": "CANARY-body",
        "location": {"displayName": "CANARY-location"},
        "attendees": [{"type": "required", "emailAddress": {"name": "CANARY-attendee", "address": "canary@example.org"}}],
        "isOnlineMeeting": true,
        "onlineMeetingProvider": "teamsForBusiness",
        "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"},
        "transactionId": "0190c0de-0001-7000-8000-000000000002-1"
    })
}

#[tokio::test]
async fn a_retried_create_makes_one_event_and_returns_its_teams_link() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/events"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(graph_event("AAMk-1"))
                .set_delay(Duration::from_secs(2)),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/events"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error": {"code": "ErrorDuplicateTransactionId", "message": "CANARY duplicate"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me/events"))
        .and(query_param(
            "$filter",
            "transactionId eq '0190c0de-0001-7000-8000-000000000002-1'",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"value": [graph_event("AAMk-1")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("contoso").await;
    let organizer = fx
        .connect(
            tenant,
            Provider::Microsoft,
            "megan@contoso.com",
            fx.tokens("r", Some("t")),
        )
        .await;
    let logs = Logs::capture();
    let booked = adapter(&server, &fx)
        .book_event(&organizer.write_access().unwrap(), &booking(None))
        .await
        .unwrap();
    assert_eq!(booked.event_id, "AAMk-1");
    assert_eq!(
        booked.conference_url.as_deref(),
        Some("https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0")
    );
    assert!(!format!("{booked:?}{}", logs.text()).contains(CANARY));
    let posts: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0], posts[1], "the retry is the same request");
    let body = &posts[0];
    assert_eq!(
        body["transactionId"],
        "0190c0de-0001-7000-8000-000000000002-1"
    );
    assert_eq!(body["isOnlineMeeting"], true);
    assert_eq!(body["onlineMeetingProvider"], "teamsForBusiness");
    assert_eq!(
        body["start"],
        json!({"dateTime": "2026-03-10T10:00:00", "timeZone": "Romance Standard Time"})
    );
    assert_eq!(
        body["attendees"],
        json!([
            {"emailAddress": {"address": "grace@example.org", "name": "Grace"}, "type": "required"},
            {"emailAddress": {"address": "linus@example.org", "name": "Linus"}, "type": "optional"}
        ])
    );
}

#[tokio::test]
async fn events_are_updated_and_cancelled_even_when_gone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/events"))
        .respond_with(ResponseTemplate::new(201).set_body_json(graph_event("AAMk-9")))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v1.0/me/events/AAMk-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(graph_event("AAMk-1")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v1.0/me/events/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": "ErrorItemNotFound", "message": "CANARY not found"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/events/AAMk-1/cancel"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/events/gone/cancel"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/events/solo/cancel"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": "ErrorInvalidRequest", "message": "no attendees"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1.0/me/events/solo"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("contoso").await;
    let organizer = fx
        .connect(
            tenant,
            Provider::Microsoft,
            "megan@contoso.com",
            fx.tokens("r", Some("t")),
        )
        .await;
    let write = organizer.write_access().unwrap();
    let graph = adapter(&server, &fx);
    let created = graph.book_event(&write, &booking(None)).await.unwrap();
    assert_eq!(created.event_id, "AAMk-9");
    assert!(created.conference_url.is_some());
    let moved = graph
        .book_event(&write, &booking(Some("AAMk-1".into())))
        .await
        .unwrap();
    assert_eq!(moved.event_id, "AAMk-1");
    let gone = graph
        .book_event(&write, &booking(Some("gone".into())))
        .await
        .unwrap_err();
    assert_eq!(gone, CalendarError::NotFound);
    assert_eq!(graph.cancel_event(&write, "AAMk-1").await, Ok(()));
    assert_eq!(graph.cancel_event(&write, "gone").await, Ok(()));
    assert_eq!(graph.cancel_event(&write, "solo").await, Ok(()));
}

/// An ID token as Entra's token endpoint returns it (the adapter takes it straight from
/// the endpoint over TLS, so its claims are what is checked).
fn id_token(tid: &str, oid: &str, wids: &[&str]) -> String {
    use base64::Engine as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let claims = json!({
        "iss": format!("https://login.microsoftonline.com/{tid}/v2.0"),
        "sub": "pairwise-subject",
        "aud": "convene-client",
        "exp": at(NOW).as_second() + 3600,
        "nonce": "n-1",
        "tid": tid,
        "oid": oid,
        "name": "Casey Admin",
        "wids": wids,
    });
    format!(
        "{}.{}.sig",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

#[tokio::test]
async fn sign_in_vouches_for_a_tenant_admin_only_through_the_global_administrator_role() {
    const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
    const ORG: &str = "aaaaaaaa-1111-2222-3333-444444444444";
    let personal = convene_microsoft::PERSONAL_ACCOUNTS_TENANT;
    for (tid, wids, admin) in [
        (
            ORG,
            vec![GLOBAL_ADMIN, "b79fbf4d-3ef9-4689-8143-76b194e85509"],
            true,
        ),
        // Another directory role (here: User Administrator) is not the tenant's admin.
        (ORG, vec!["fe930be7-5e62-47db-91af-98c3a49a38b1"], false),
        (ORG, vec![], false),
        // A personal account has no organisation, whatever it carries.
        (personal, vec![GLOBAL_ADMIN], false),
    ] {
        let server = MockServer::start().await;
        let fx = Fixture::at(NOW);
        Mock::given(method("POST"))
            .and(path("/common/oauth2/v2.0/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "token_type": "Bearer",
                "access_token": "at-1",
                "refresh_token": "rt-1",
                "expires_in": 3600,
                "scope": "openid email profile offline_access User.Read",
                "id_token": id_token(tid, "oid-1", &wids),
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1.0/me"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "oid-1",
                "displayName": "Casey Admin",
                "mail": "casey@contoso.test",
            })))
            .mount(&server)
            .await;
        let identity = MicrosoftIdentity::new(&config(&server), fx.clock.clone()).unwrap();
        let signed = identity
            .exchange_code("code-1", &SecretString::from("verifier"), "n-1")
            .await
            .unwrap();
        assert_eq!(
            signed.identity.tenant_admin, admin,
            "tid {tid}, wids {wids:?}"
        );
        assert_eq!(signed.identity.email.as_str(), "casey@contoso.test");
    }
}
