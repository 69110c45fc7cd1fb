//! Feeds over HTTP, files on disk, and the parsing rules.

use std::sync::Arc;
use std::time::Duration;

use convene_domain::consent::Provider;
use convene_domain::email::EmailAddress;
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{CalendarError, CalendarProvider, EventRequest, UserStore};
use convene_domain::time::{Timestamp, WeeklyHours, Zone};
use convene_http::testing::{Fixture, Logs};
use convene_http::{HttpSettings, RetryPolicy};
use convene_ics::{FileCalendar, IcsCalendar, IcsConfig, busy_intervals};
use jiff::tz::TimeZone;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{CANARY, at, expected, ics, rich_calendar, sorted, window};

fn new_york() -> Zone {
    Zone::parse("America/New_York").unwrap()
}

fn config() -> IcsConfig {
    IcsConfig {
        http: HttpSettings {
            follow_redirects: true,
            timeout: Duration::from_secs(2),
            retry: RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                max_retry_after: Duration::from_secs(2),
            },
            ..HttpSettings::default()
        },
        default_zone: Zone::utc(),
        allow_private_networks: true,
        caldav_free_busy_query: true,
    }
}

#[test]
fn every_rule_of_the_rich_calendar_holds() {
    let ny = TimeZone::get("America/New_York").unwrap();
    let (busy, stats) =
        busy_intervals(&rich_calendar(), window(), Some(&ny), &TimeZone::UTC).unwrap();
    assert_eq!(sorted(busy), expected());
    assert_eq!(stats.unknown_zones, 0);
    assert_eq!(stats.events, 9);
}

#[test]
fn floating_times_follow_the_declared_zone_without_an_owner() {
    let text = ics(&[
        "BEGIN:VCALENDAR",
        "X-WR-TIMEZONE:Asia/Kolkata",
        "BEGIN:VEVENT",
        "UID:f",
        "DTSTART:20260318T150000",
        "DTEND:20260318T160000",
        "END:VEVENT",
        "END:VCALENDAR",
    ]);
    let (busy, _) = busy_intervals(&text, window(), None, &TimeZone::UTC).unwrap();
    assert_eq!(
        busy,
        vec![at("2026-03-18T09:30:00Z", "2026-03-18T10:30:00Z")]
    );
}

#[test]
fn windows_zone_names_without_a_vtimezone_are_mapped() {
    let text = ics(&[
        "BEGIN:VCALENDAR",
        "BEGIN:VEVENT",
        "UID:w",
        "DTSTART;TZID=Romance Standard Time:20260401T090000",
        "DTEND;TZID=Romance Standard Time:20260401T100000",
        "END:VEVENT",
        "END:VCALENDAR",
    ]);
    let (busy, stats) = busy_intervals(&text, window(), None, &TimeZone::UTC).unwrap();
    assert_eq!(
        busy,
        vec![at("2026-04-01T07:00:00Z", "2026-04-01T08:00:00Z")]
    );
    assert_eq!(stats.unknown_zones, 0);
}

#[test]
fn an_unreadable_calendar_is_an_error_that_quotes_nothing() {
    let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:CANARY-broken\r\n";
    let err = busy_intervals(text, window(), None, &TimeZone::UTC).unwrap_err();
    assert!(!err.to_string().contains(CANARY));
    assert!(!format!("{err:?}").contains(CANARY));
}

#[tokio::test]
async fn files_are_read_by_account() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ada@example.test.ics"), rich_calendar()).unwrap();
    let fx = Fixture::at("2026-03-01T00:00:00Z");
    let tenant = fx.tenant("demo").await;
    let ada = fx
        .connect(
            tenant,
            Provider::Ics,
            "ada@example.test",
            fx.tokens("unused", None),
        )
        .await;
    let ghost = fx
        .connect(tenant, Provider::Ics, "ghost", fx.tokens("unused", None))
        .await;
    let sneaky = fx
        .connect(
            tenant,
            Provider::Ics,
            "../../etc/passwd",
            fx.tokens("unused", None),
        )
        .await;
    let files = FileCalendar::new(dir.path(), new_york());
    let logs = Logs::capture();
    let out = files
        .free_busy(
            &[
                ada.read_access().unwrap(),
                ghost.read_access().unwrap(),
                sneaky.read_access().unwrap(),
            ],
            window(),
        )
        .await;
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].grant, ada.id());
    assert_eq!(sorted(out[0].busy.clone().unwrap()), expected());
    assert_eq!(out[1].busy, Err(CalendarError::NotFound));
    assert_eq!(out[2].busy, Err(CalendarError::NotFound));
    assert!(!format!("{out:?}").contains(CANARY));
    assert!(!logs.text().contains(CANARY));
    assert!(logs.text().contains("free/busy read"), "counts are logged");
}

async fn owner(fx: &Fixture, grant: &convene_domain::consent::Grant, zone: Zone) {
    fx.store
        .insert_user(&User {
            id: grant.user(),
            tenant: grant.tenant(),
            name: PersonName::parse("Ada").unwrap(),
            email: EmailAddress::parse("ada@example.test").unwrap(),
            zone,
            working_hours: WeeklyHours::standard(),
            buffers: Buffers::default(),
            role: convene_domain::people::Role::Member,
            status: convene_domain::people::UserStatus::Active,
            created_at: Timestamp::UNIX_EPOCH,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn feeds_are_fetched_and_read_in_the_owners_zone_without_leaking_content() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/private-abc/basic.ics"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/private-abc/basic.ics"))
        .respond_with(ResponseTemplate::new(200).set_body_string(rich_calendar()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/gone.ics"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/broken.ics"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:CANARY-x\r\n"),
        )
        .mount(&server)
        .await;

    let fx = Fixture::at("2026-03-01T00:00:00Z");
    let tenant = fx.tenant("feeds").await;
    let secret_url = format!("{}/private-abc/basic.ics", server.uri());
    let feed = fx
        .connect(
            tenant,
            Provider::Ics,
            "feed-1",
            fx.tokens(&secret_url, None),
        )
        .await;
    owner(&fx, &feed, new_york()).await;
    let gone = fx
        .connect(
            tenant,
            Provider::Ics,
            "feed-2",
            fx.tokens(&format!("{}/gone.ics", server.uri()), None),
        )
        .await;
    let broken = fx
        .connect(
            tenant,
            Provider::Ics,
            "feed-3",
            fx.tokens(&format!("{}/broken.ics", server.uri()), None),
        )
        .await;
    let calendar = IcsCalendar::new(config(), fx.store.clone())
        .unwrap()
        .with_owner_zones(fx.store.clone() as Arc<dyn UserStore>);

    let logs = Logs::capture();
    let out = calendar
        .free_busy(
            &[
                feed.read_access().unwrap(),
                gone.read_access().unwrap(),
                broken.read_access().unwrap(),
            ],
            window(),
        )
        .await;
    assert_eq!(
        sorted(out[0].busy.clone().unwrap()),
        expected(),
        "after one 500"
    );
    assert_eq!(out[1].busy, Err(CalendarError::NotFound));
    assert!(matches!(out[2].busy, Err(CalendarError::Unavailable(_))));
    let seen = format!("{out:?}\n{}", logs.text());
    assert!(!seen.contains(CANARY), "calendar content leaked: {seen}");
    assert!(
        !seen.contains("private-abc"),
        "the secret feed URL leaked: {seen}"
    );

    // Read-only.
    let write = feed.write_access().unwrap();
    let event = EventRequest {
        request_id: "r".into(),
        uid: "u".into(),
        title: "t".into(),
        slot: at("2026-03-20T10:00:00Z", "2026-03-20T11:00:00Z"),
        zone: Zone::utc(),
        attendees: vec![],
        conference: false,
        existing: None,
    };
    assert!(matches!(
        calendar.book_event(&write, &event).await,
        Err(CalendarError::BadRequest(_))
    ));
    assert!(matches!(
        calendar.cancel_event(&write, "x").await,
        Err(CalendarError::BadRequest(_))
    ));
}

#[tokio::test]
async fn private_addresses_are_refused_in_production_mode() {
    let fx = Fixture::at("2026-03-01T00:00:00Z");
    let tenant = fx.tenant("ssrf").await;
    let grant = fx
        .connect(
            tenant,
            Provider::Ics,
            "feed",
            fx.tokens("http://127.0.0.1:9/metadata.ics", None),
        )
        .await;
    let calendar = IcsCalendar::new(
        IcsConfig {
            allow_private_networks: false,
            ..config()
        },
        fx.store.clone(),
    )
    .unwrap();
    let out = calendar
        .free_busy(&[grant.read_access().unwrap()], window())
        .await;
    assert!(matches!(out[0].busy, Err(CalendarError::BadRequest(_))));
}

#[tokio::test]
async fn caldav_falls_back_to_calendar_query() {
    let server = MockServer::start().await;
    Mock::given(method("REPORT"))
        .and(path("/dav/ada/work/"))
        .and(body_string_contains("free-busy-query"))
        .respond_with(ResponseTemplate::new(501))
        .expect(1)
        .mount(&server)
        .await;
    let multistatus = format!(
        "<?xml version=\"1.0\"?><multistatus xmlns=\"DAV:\" \
         xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><response><href>/dav/ada/work/1.ics</href>\
         <propstat><prop><C:calendar-data>{}</C:calendar-data></prop>\
         <status>HTTP/1.1 200 OK</status></propstat></response></multistatus>",
        rich_calendar()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('\r', "&#13;")
    );
    Mock::given(method("REPORT"))
        .and(path("/dav/ada/work/"))
        .and(body_string_contains("calendar-query"))
        .respond_with(ResponseTemplate::new(207).set_body_string(multistatus))
        .expect(1)
        .mount(&server)
        .await;
    let fx = Fixture::at("2026-03-01T00:00:00Z");
    let tenant = fx.tenant("dav").await;
    let address = format!(
        "caldav:{}/dav/ada/work/",
        server.uri().replace("http://", "http://ada:secret@")
    );
    let grant = fx
        .connect(tenant, Provider::Ics, "dav-1", fx.tokens(&address, None))
        .await;
    let calendar = IcsCalendar::new(
        IcsConfig {
            default_zone: new_york(),
            ..config()
        },
        fx.store.clone(),
    )
    .unwrap();
    let out = calendar
        .free_busy(&[grant.read_access().unwrap()], window())
        .await;
    assert_eq!(sorted(out[0].busy.clone().unwrap()), expected());
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("authorization").is_some()),
        "basic auth on every report"
    );
}
