//! The Calendar API v3 against wiremock, with bodies shaped as Google documents them.

use std::time::{Duration, Instant};

use convene_domain::consent::{Grant, Provider, ReadAccess};
use convene_domain::email::EmailAddress;
use convene_domain::outbox::Attendee;
use convene_domain::people::PersonName;
use convene_domain::ports::{
    CalendarError, CalendarProvider, Credentials, EventRequest, IdentityError, IdentityProvider,
};
use convene_domain::time::{Interval, SignedDuration, Timestamp, Zone};
use convene_google::{GoogleCalendar, GoogleIdentity, event_id_for};
use convene_http::testing::{Fixture, Logs};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::{CANARY, config};

const NOW: &str = "2026-03-01T00:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn window(days: i64) -> Interval {
    Interval::starting_at(
        at("2026-03-02T00:00:00Z"),
        SignedDuration::from_hours(24 * days),
    )
    .unwrap()
}

/// Google's freeBusy answer for whatever was asked: one busy hour per calendar, an hour
/// after `timeMin`.
fn echo_free_busy(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let min: Timestamp = body["timeMin"].as_str().unwrap().parse().unwrap();
    let start = min + SignedDuration::from_hours(1);
    let end = min + SignedDuration::from_hours(2);
    let mut calendars = serde_json::Map::new();
    for item in body["items"].as_array().unwrap() {
        calendars.insert(
            item["id"].as_str().unwrap().to_owned(),
            json!({"busy": [{"start": start.to_string(), "end": end.to_string()}]}),
        );
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "kind": "calendar#freeBusy",
        "timeMin": body["timeMin"],
        "timeMax": body["timeMax"],
        "calendars": calendars,
    }))
}

/// A Google stand-in whose `freeBusy` answers with [`echo_free_busy`].
async fn echo_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(echo_free_busy)
        .mount(&server)
        .await;
    server
}

async fn people(fx: &Fixture, n: usize, domain: &str) -> Vec<Grant> {
    let tenant = fx.tenant(domain).await;
    let mut out = Vec::new();
    for i in 0..n {
        let account = format!("p{i}@{domain}");
        let token = format!("access-{domain}-{i}");
        out.push(
            fx.connect(
                tenant,
                Provider::Google,
                &account,
                fx.tokens(&format!("refresh-{i}"), Some(&token)),
            )
            .await,
        );
    }
    out
}

fn reads(grants: &[Grant]) -> Vec<ReadAccess> {
    grants.iter().map(|g| g.read_access().unwrap()).collect()
}

/// The `freeBusy` requests the stand-in received, in order.
async fn free_busy_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/freeBusy"))
        .collect()
}

async fn free_busy_bodies(server: &MockServer) -> Vec<Value> {
    free_busy_requests(server)
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn adapter(server: &MockServer, fx: &Fixture) -> GoogleCalendar {
    GoogleCalendar::new(&config(server), fx.store.clone(), fx.clock.clone()).unwrap()
}

#[tokio::test]
async fn fifty_calendars_take_one_call_and_fifty_one_take_two() {
    for (n, calls) in [(50, 1), (51, 2)] {
        let server = echo_server().await;
        let fx = Fixture::at(NOW);
        let grants = people(&fx, n, "example.com").await;
        let read_before = fx.store.credential_reads();
        let out = adapter(&server, &fx)
            .free_busy(&reads(&grants), window(7))
            .await;
        assert_eq!(out.len(), n);
        assert_eq!(
            fx.store.credential_reads() - read_before,
            1,
            "every calendar's credentials in one read, whose tokens the calls then use"
        );
        for (entry, grant) in out.iter().zip(&grants) {
            assert_eq!(entry.grant, grant.id());
            assert_eq!(
                entry.busy,
                Ok(vec![
                    Interval::new(at("2026-03-02T01:00:00Z"), at("2026-03-02T02:00:00Z")).unwrap()
                ])
            );
        }
        let bodies = free_busy_bodies(&server).await;
        assert_eq!(bodies.len(), calls, "{n} calendars");
        let mut sizes: Vec<usize> = bodies
            .iter()
            .map(|b| b["items"].as_array().unwrap().len())
            .collect();
        sizes.sort_unstable();
        assert_eq!(sizes.iter().sum::<usize>(), n);
        assert!(sizes.iter().all(|&s| s <= 50));
        assert_eq!(bodies[0]["timeZone"], "UTC");
    }
}

#[tokio::test]
async fn a_group_asked_again_is_read_with_another_members_token() {
    let server = echo_server().await;
    let fx = Fixture::at(NOW);
    let grants = people(&fx, 3, "example.com").await;
    let google = adapter(&server, &fx);
    for _ in 0..4 {
        let out = google.free_busy(&reads(&grants), window(7)).await;
        assert!(out.iter().all(|c| c.busy.is_ok()), "{out:?}");
    }
    let owners: Vec<String> = free_busy_requests(&server)
        .await
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        owners,
        [0, 1, 2, 0].map(|i| format!("Bearer access-example.com-{i}")),
        "each call goes through the next member's token, around the group"
    );
}

#[tokio::test]
async fn ninety_days_take_one_call_and_ninety_one_take_two() {
    for (days, calls) in [(90, 1), (91, 2)] {
        let server = echo_server().await;
        let fx = Fixture::at(NOW);
        let grants = people(&fx, 3, "example.com").await;
        let out = adapter(&server, &fx)
            .free_busy(&reads(&grants), window(days))
            .await;
        let bodies = free_busy_bodies(&server).await;
        assert_eq!(bodies.len(), calls, "{days} days");
        for body in &bodies {
            let min: Timestamp = body["timeMin"].as_str().unwrap().parse().unwrap();
            let max: Timestamp = body["timeMax"].as_str().unwrap().parse().unwrap();
            assert!(min.duration_until(max) <= SignedDuration::from_hours(90 * 24));
        }
        // One busy hour per piece, per calendar.
        assert_eq!(out[0].busy.as_ref().unwrap().len(), calls);
    }
}

#[tokio::test]
async fn per_calendar_errors_inside_a_200_are_read_one_by_one() {
    let server = MockServer::start().await;
    let fx = Fixture::at(NOW);
    let grants = people(&fx, 3, "example.com").await;
    // The batch, read with p0's token: p1 not found (not shared), p2 failing.
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer access-example.com-0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "calendar#freeBusy",
            "timeMin": "2026-03-02T00:00:00.000Z",
            "timeMax": "2026-03-09T00:00:00.000Z",
            "calendars": {
                "p0@example.com": {"busy": [
                    {"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z"}
                ]},
                "p1@example.com": {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []},
                "p2@example.com": {"errors": [{"domain": "global", "reason": "internalError"}], "busy": []}
            }
        })))
        .mount(&server)
        .await;
    // p1 read again alone with its own token: its own calendar is visible to it.
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer access-example.com-1"))
        .and(body_string_contains("primary"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "calendar#freeBusy",
            "calendars": {"primary": {"busy": [
                {"start": "2026-03-03T09:00:00Z", "end": "2026-03-03T10:00:00Z"}
            ]}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    assert_eq!(
        out[0].busy,
        Ok(vec![
            Interval::new(at("2026-03-02T09:00:00Z"), at("2026-03-02T10:00:00Z")).unwrap()
        ])
    );
    assert_eq!(
        out[1].busy,
        Ok(vec![
            Interval::new(at("2026-03-03T09:00:00Z"), at("2026-03-03T10:00:00Z")).unwrap()
        ])
    );
    assert!(matches!(out[2].busy, Err(CalendarError::Unavailable(_))));
}

#[tokio::test]
async fn opaque_accounts_are_read_as_primary_with_their_own_token() {
    let server = echo_server().await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("personal").await;
    let a = fx
        .connect(
            tenant,
            Provider::Google,
            "1093827465",
            fx.tokens("r", Some("tok-a")),
        )
        .await;
    let out = adapter(&server, &fx)
        .free_busy(&[a.read_access().unwrap()], window(7))
        .await;
    assert!(out[0].busy.as_ref().is_ok_and(|b| b.len() == 1));
    let bodies = free_busy_bodies(&server).await;
    assert_eq!(bodies[0]["items"], json!([{"id": "primary"}]));
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(echo_free_busy)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let grants = people(&fx, 2, "example.com").await;
    let started = Instant::now();
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    assert!(out.iter().all(|c| c.busy.is_ok()));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured"
    );
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_rate_limited() {
    let server = MockServer::start().await;
    // Google's 403 rateLimitExceeded counts as throttling too.
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": {"code": 403, "message": "Rate Limit Exceeded",
                      "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded"}]}
        })))
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let grants = people(&fx, 1, "example.com").await;
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    assert!(matches!(
        out[0].busy,
        Err(CalendarError::RateLimited { .. })
    ));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "1 + 2 retries"
    );

    // A Retry-After longer than the adapter may wait fails at once, carrying it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    assert_eq!(
        out[0].busy,
        Err(CalendarError::RateLimited {
            retry_after: Some(SignedDuration::from_secs(120))
        })
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_500_then_success_and_timeouts_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(echo_free_busy)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let grants = people(&fx, 2, "example.com").await;
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    assert!(out.iter().all(|c| c.busy.is_ok()), "{out:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    // Always timing out: unavailable after the retries.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let out = adapter(&server, &fx)
        .free_busy(&reads(&grants), window(7))
        .await;
    assert!(
        out.iter().all(
            |c| matches!(&c.busy, Err(CalendarError::Unavailable(r)) if r.contains("timed out"))
        )
    );
}

#[tokio::test]
async fn invalid_grant_on_refresh_revokes_that_calendar_only() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=dead"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked."
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=alive"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "fresh-access", "expires_in": 3599,
            "scope": "https://www.googleapis.com/auth/calendar.freebusy", "token_type": "Bearer"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(echo_free_busy)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("example.com").await;
    let stale = |refresh: &str| Credentials {
        refresh_token: SecretString::from(refresh.to_owned()),
        access_token: Some(SecretString::from("expired")),
        access_expires_at: Some(at("2026-02-28T00:00:00Z")),
    };
    let dead = fx
        .connect(tenant, Provider::Google, "dead@example.com", stale("dead"))
        .await;
    let alive = fx
        .connect(
            tenant,
            Provider::Google,
            "alive@example.com",
            stale("alive"),
        )
        .await;
    let out = adapter(&server, &fx)
        .free_busy(
            &[dead.read_access().unwrap(), alive.read_access().unwrap()],
            window(7),
        )
        .await;
    assert_eq!(out[0].busy, Err(CalendarError::ConsentRevoked));
    assert!(out[1].busy.is_ok());
    let stored = fx.credentials(&alive).await.unwrap();
    assert_eq!(
        stored.access_token.unwrap().expose_secret(),
        "fresh-access",
        "the refreshed token is stored"
    );
    assert_eq!(
        stored.refresh_token.expose_secret(),
        "alive",
        "Google does not rotate"
    );

    // The identity port says the same.
    let identity = GoogleIdentity::new(&config(&server), fx.clock.clone()).unwrap();
    assert_eq!(
        identity.refresh(&stale("dead")).await.unwrap_err(),
        IdentityError::ConsentRevoked
    );
}

#[tokio::test]
async fn a_401_refreshes_the_token_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer old-access"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer new-access"))
        .respond_with(echo_free_busy)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "new-access", "expires_in": 3599, "token_type": "Bearer"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("example.com").await;
    let g = fx
        .connect(
            tenant,
            Provider::Google,
            "a@example.com",
            fx.tokens("r", Some("old-access")),
        )
        .await;
    let out = adapter(&server, &fx)
        .free_busy(&[g.read_access().unwrap()], window(7))
        .await;
    assert!(out[0].busy.is_ok());
}

fn booking(existing: Option<String>) -> EventRequest {
    EventRequest {
        request_id: "0190c0de-0001-7000-8000-000000000001-1".into(),
        uid: "m-1@convene.test".into(),
        title: "Quarterly review".into(),
        slot: Interval::new(at("2026-03-10T09:00:00Z"), at("2026-03-10T10:00:00Z")).unwrap(),
        zone: Zone::parse("Europe/Paris").unwrap(),
        attendees: vec![
            Attendee {
                name: PersonName::parse("Grace").unwrap(),
                email: Some(EmailAddress::parse("grace@example.org").unwrap()),
                required: true,
            },
            Attendee {
                name: PersonName::parse("Link guest").unwrap(),
                email: None,
                required: false,
            },
        ],
        conference: true,
        existing,
    }
}

/// An event as Google returns it, full of content that must not leave the adapter.
fn google_event(id: &str) -> Value {
    json!({
        "kind": "calendar#event",
        "id": id,
        "status": "confirmed",
        "summary": "CANARY-title",
        "description": "CANARY-description",
        "location": "CANARY-location",
        "attendees": [{"email": "canary-attendee@example.org", "displayName": "CANARY-attendee"}],
        "start": {"dateTime": "2026-03-10T10:00:00+01:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2026-03-10T11:00:00+01:00", "timeZone": "Europe/Paris"},
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
        "conferenceData": {
            "createRequest": {"requestId": "x", "status": {"statusCode": "success"}},
            "entryPoints": [
                {"entryPointType": "phone", "uri": "tel:+1-555-0100"},
                {"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij",
                 "label": "meet.google.com/abc-defg-hij"}
            ],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": "abc-defg-hij"
        }
    })
}

#[tokio::test]
async fn a_retried_insert_creates_one_event_and_returns_its_meet_link() {
    let server = MockServer::start().await;
    let request = booking(None);
    let id = event_id_for(&request.request_id);
    // The first attempt reaches Google but its answer is lost (timeout)...
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(google_event(&id))
                .set_delay(Duration::from_secs(2)),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    // ...so the retry, with the same event id, is refused as a duplicate...
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error": {"code": 409, "message": "The requested identifier already exists.",
                      "errors": [{"domain": "global", "reason": "duplicate"}]}
        })))
        .mount(&server)
        .await;
    // ...and the adapter fetches the event the first attempt created.
    Mock::given(method("GET"))
        .and(path(format!("/calendar/v3/calendars/primary/events/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_event(&id)))
        .expect(1)
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("example.com").await;
    let organizer = fx
        .connect(
            tenant,
            Provider::Google,
            "ada@example.com",
            fx.tokens("r", Some("tok")),
        )
        .await;
    let logs = Logs::capture();
    let booked = adapter(&server, &fx)
        .book_event(&organizer.write_access().unwrap(), &request)
        .await
        .unwrap();
    assert_eq!(booked.event_id, id);
    assert_eq!(
        booked.conference_url.as_deref(),
        Some("https://meet.google.com/abc-defg-hij")
    );
    assert!(!format!("{booked:?}{}", logs.text()).contains(CANARY));

    let inserts: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| {
            assert_eq!(
                r.url
                    .query_pairs()
                    .find(|(k, _)| k == "sendUpdates")
                    .unwrap()
                    .1,
                "all"
            );
            assert_eq!(
                r.url
                    .query_pairs()
                    .find(|(k, _)| k == "conferenceDataVersion")
                    .unwrap()
                    .1,
                "1"
            );
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    assert_eq!(inserts.len(), 2);
    assert_eq!(inserts[0], inserts[1], "the retry is the same request");
    let body = &inserts[0];
    assert_eq!(body["id"], id.as_str());
    assert_eq!(
        body["conferenceData"]["createRequest"]["requestId"],
        request.request_id.as_str()
    );
    assert_eq!(
        body["conferenceData"]["createRequest"]["conferenceSolutionKey"]["type"],
        "hangoutsMeet"
    );
    assert_eq!(body["start"]["dateTime"], "2026-03-10T10:00:00+01:00");
    assert_eq!(body["start"]["timeZone"], "Europe/Paris");
    assert_eq!(
        body["attendees"],
        json!([{"email": "grace@example.org", "displayName": "Grace", "optional": false}])
    );
}

#[tokio::test]
async fn events_are_moved_by_patch_and_cancelled_even_when_gone() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/calendar/v3/calendars/primary/events/evt123"))
        .and(query_param("sendUpdates", "all"))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_event("evt123")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/calendar/v3/calendars/primary/events/deleted"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": 404, "message": "Not Found CANARY-in-error",
                      "errors": [{"domain": "global", "reason": "notFound"}]}
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/calendar/v3/calendars/primary/events/evt123"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/calendar/v3/calendars/primary/events/gone"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": 400, "message": "Invalid attendee CANARY-attendee",
                      "errors": [{"domain": "global", "reason": "invalid"}]}
        })))
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("example.com").await;
    let organizer = fx
        .connect(
            tenant,
            Provider::Google,
            "ada@example.com",
            fx.tokens("r", Some("tok")),
        )
        .await;
    let write = organizer.write_access().unwrap();
    let google = adapter(&server, &fx);

    let moved = google
        .book_event(&write, &booking(Some("evt123".into())))
        .await
        .unwrap();
    assert_eq!(moved.event_id, "evt123");
    assert_eq!(
        google
            .book_event(&write, &booking(Some("deleted".into())))
            .await,
        Err(CalendarError::NotFound)
    );
    let refused = google.book_event(&write, &booking(None)).await.unwrap_err();
    assert!(matches!(refused, CalendarError::BadRequest(_)));
    assert!(!refused.to_string().contains(CANARY), "{refused}");
    assert_eq!(google.cancel_event(&write, "evt123").await, Ok(()));
    assert_eq!(google.cancel_event(&write, "gone").await, Ok(()));
}

#[tokio::test]
async fn calendars_of_another_provider_are_refused_alone() {
    let server = echo_server().await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("example.com").await;
    let ms = fx
        .connect(
            tenant,
            Provider::Microsoft,
            "x@example.com",
            fx.tokens("r", Some("t")),
        )
        .await;
    let g = fx
        .connect(
            tenant,
            Provider::Google,
            "y@example.com",
            fx.tokens("r", Some("t")),
        )
        .await;
    let out = adapter(&server, &fx)
        .free_busy(
            &[ms.read_access().unwrap(), g.read_access().unwrap()],
            window(7),
        )
        .await;
    assert!(matches!(out[0].busy, Err(CalendarError::BadRequest(_))));
    assert!(out[1].busy.is_ok());
}

#[tokio::test]
async fn a_taken_ical_uid_does_not_block_the_booking() {
    let server = MockServer::start().await;
    let request = booking(None);
    let id = event_id_for(&request.request_id);
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .and(body_string_contains("iCalUID"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error": {"code": 409, "message": "The requested identifier already exists.",
                      "errors": [{"domain": "global", "reason": "duplicate"}]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .and(|req: &Request| !String::from_utf8_lossy(&req.body).contains("iCalUID"))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_event(&id)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/calendar/v3/calendars/primary/events/{id}")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let fx = Fixture::at(NOW);
    let tenant = fx.tenant("example.com").await;
    let organizer = fx
        .connect(
            tenant,
            Provider::Google,
            "ada@example.com",
            fx.tokens("r", Some("tok")),
        )
        .await;
    let booked = adapter(&server, &fx)
        .book_event(&organizer.write_access().unwrap(), &request)
        .await
        .unwrap();
    assert_eq!(booked.event_id, id);
}
