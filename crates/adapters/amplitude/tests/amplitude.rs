//! The Amplitude adapter against a wiremock server: request shape, identity settings,
//! regions, batching limits, 429 back-off of only the throttled user, 413 splits, 5xx
//! then success, and idempotent retries.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use convene_amplitude::{
    AmplitudeAnalytics, AmplitudeConfig, EU_BASE_URL, Identity, MAX_REQUEST_BYTES, US_BASE_URL,
};
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MessageId, TenantId, UserId};
use convene_domain::outbox::{AnalyticsEvent, AnalyticsKind, DeliveryError};
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{Analytics, Clock, Page, StoreError, UserStore};
use convene_domain::time::{SignedDuration, Timestamp, WeeklyHours, Zone};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

// ------------------------------------------------------------------ fixtures

#[derive(Debug)]
struct TestClock(Mutex<Timestamp>);

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new("2026-03-20T09:00:00Z".parse().unwrap())))
    }
    fn advance(&self, secs: i64) {
        let mut t = self.0.lock().unwrap();
        *t += SignedDuration::from_secs(secs);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

const TENANT: TenantId = TenantId::from_uuid(Uuid::from_u128(0x7e));
const SECRET: &str = "pseudonym secret";

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x1000 + n))
}

fn event(n: u128, who: Option<UserId>) -> (MessageId, AnalyticsEvent) {
    let mut properties = BTreeMap::new();
    properties.insert("participants".to_owned(), json!(3));
    properties.insert("provider".to_owned(), json!("google"));
    (
        MessageId::from_uuid(Uuid::from_u128(0x5000 + n)),
        AnalyticsEvent {
            kind: AnalyticsKind::MeetingBooked,
            tenant: TENANT,
            user: who,
            at: "2026-03-20T08:59:59.123Z".parse().unwrap(),
            properties,
        },
    )
}

fn events(count: u128, users: u128) -> Vec<(MessageId, AnalyticsEvent)> {
    (0..count)
        .map(|i| event(i, Some(user(i % users))))
        .collect()
}

fn pseudonymous() -> Identity {
    Identity::Pseudonymous {
        secret: SecretString::from(SECRET),
    }
}

fn analytics(base: &str, identity: Identity, clock: Arc<TestClock>) -> AmplitudeAnalytics {
    let mut config = AmplitudeConfig::new(base, SecretString::from("amp-key"), identity);
    config.timeout = Duration::from_millis(500);
    AmplitudeAnalytics::new(config, clock).unwrap()
}

/// Hex HMAC-SHA256, computed independently of the adapter.
fn hmac_hex(key: &str, msg: &str) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(msg.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn insert_ids(r: &Request) -> Vec<String> {
    body(r)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn server_answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2/httpapi"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

fn all_ok(results: &[Result<(), DeliveryError>]) -> bool {
    results.iter().all(Result::is_ok)
}

// ------------------------------------------------------------------ shape and identity

#[tokio::test]
async fn events_go_out_pseudonymous_with_insert_id_and_millisecond_time() {
    let server = server_answering(200).await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    let results = a.record(&[event(1, Some(user(1))), event(2, None)]).await;
    assert!(all_ok(&results));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(
        body(&requests[0]),
        json!({
            "api_key": "amp-key",
            "events": [
                {
                    "user_id": hmac_hex(SECRET, &user(1).to_string()),
                    "event_type": "meeting booked",
                    "time": 1_773_997_199_123_i64,
                    "insert_id": MessageId::from_uuid(Uuid::from_u128(0x5001)).to_string(),
                    "event_properties": {"participants": 3, "provider": "google"},
                },
                {
                    "device_id": format!("tenant-{}", TENANT.as_uuid().simple()),
                    "event_type": "meeting booked",
                    "time": 1_773_997_199_123_i64,
                    "insert_id": MessageId::from_uuid(Uuid::from_u128(0x5002)).to_string(),
                    "event_properties": {"participants": 3, "provider": "google"},
                },
            ],
        })
    );
}

/// A user store holding one user, whose name and email are markers.
struct Users {
    fail: bool,
}

fn the_user() -> User {
    User {
        id: user(1),
        tenant: TENANT,
        name: PersonName::parse("CANARY Name").unwrap(),
        email: EmailAddress::parse("canary@example.com").unwrap(),
        zone: Zone::utc(),
        working_hours: WeeklyHours::standard(),
        buffers: Buffers::default(),
        role: convene_domain::people::Role::Member,
        status: convene_domain::people::UserStatus::Active,
        created_at: Timestamp::UNIX_EPOCH,
    }
}

#[async_trait]
impl UserStore for Users {
    async fn insert_user(&self, _: &User) -> Result<(), StoreError> {
        Err(StoreError::Invalid("read only".into()))
    }
    async fn user(&self, tenant: TenantId, id: UserId) -> Result<User, StoreError> {
        let u = the_user();
        if (tenant, id) == (u.tenant, u.id) {
            Ok(u)
        } else {
            Err(StoreError::NotFound)
        }
    }
    async fn user_by_email(
        &self,
        _: TenantId,
        _: &EmailAddress,
    ) -> Result<Option<User>, StoreError> {
        Ok(None)
    }
    async fn users_by_emails_with_grants(
        &self,
        _: TenantId,
        _: &[EmailAddress],
    ) -> Result<Vec<(User, Vec<convene_domain::consent::Grant>)>, StoreError> {
        Ok(Vec::new())
    }
    async fn users(&self, tenant: TenantId, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        if self.fail {
            return Err(StoreError::Unavailable("down".into()));
        }
        let u = the_user();
        Ok(if tenant == u.tenant && ids.contains(&u.id) {
            vec![u]
        } else {
            Vec::new()
        })
    }
    async fn list_users(&self, _: TenantId, _: Page<UserId>) -> Result<Vec<User>, StoreError> {
        Ok(Vec::new())
    }
    async fn update_user(&self, _: &User) -> Result<(), StoreError> {
        Err(StoreError::Invalid("read only".into()))
    }
}

#[tokio::test]
async fn canary_pseudonymous_mode_sends_no_name_or_email() {
    let server = server_answering(200).await;
    // The store knows the user's name and email; the default identity must not use them.
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    assert!(all_ok(
        &a.record(&[event(1, Some(user(1))), event(2, None)]).await
    ));
    let sent =
        String::from_utf8(server.received_requests().await.unwrap()[0].body.clone()).unwrap();
    assert!(
        !sent.contains("CANARY")
            && !sent.contains("canary@")
            && !sent.contains(&user(1).to_string()),
        "{sent}"
    );
}

#[tokio::test]
async fn email_and_name_mode_identifies_users_by_email_with_their_name() {
    let server = server_answering(200).await;
    let identity = Identity::EmailAndName {
        users: Arc::new(Users { fail: false }),
    };
    let a = analytics(&server.uri(), identity, TestClock::new());
    // user 2 is not in the store (erased): sent as the tenant's device.
    let results = a
        .record(&[
            event(1, Some(user(1))),
            event(2, Some(user(2))),
            event(3, None),
        ])
        .await;
    assert!(all_ok(&results));
    let b = body(&server.received_requests().await.unwrap()[0]);
    let e = b["events"].as_array().unwrap();
    assert_eq!(e[0]["user_id"], "canary@example.com");
    assert_eq!(
        e[0]["user_properties"],
        json!({"name": "CANARY Name", "email": "canary@example.com"})
    );
    assert_eq!(
        e[1]["device_id"],
        json!(format!("tenant-{}", TENANT.as_uuid().simple()))
    );
    assert!(e[1].get("user_id").is_none() && e[2].get("user_properties").is_none());

    let down = analytics(
        &server.uri(),
        Identity::EmailAndName {
            users: Arc::new(Users { fail: true }),
        },
        TestClock::new(),
    );
    let results = down
        .record(&[event(4, Some(user(1))), event(5, None)])
        .await;
    assert!(
        matches!(results[0], Err(DeliveryError::Transient { .. })),
        "the store is down: retry later"
    );
    assert!(
        results[1].is_ok(),
        "an event without a user needs no lookup"
    );
}

#[test]
fn regions_and_secrets() {
    let a = analytics(EU_BASE_URL, pseudonymous(), TestClock::new());
    assert_eq!(a.endpoint(), "https://api.eu.amplitude.com/2/httpapi");
    assert!(!format!("{a:?}").contains("amp-key") && !format!("{a:?}").contains(SECRET));
    assert_eq!(
        analytics(US_BASE_URL, pseudonymous(), TestClock::new()).endpoint(),
        "https://api2.amplitude.com/2/httpapi"
    );
}

// ------------------------------------------------------------------ batching

async fn request_sizes(count: u128) -> Vec<usize> {
    let server = server_answering(200).await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    let results = a.record(&events(count, 500)).await;
    assert_eq!(results.len(), count as usize);
    assert!(all_ok(&results));
    let requests = server.received_requests().await.unwrap();
    let mut seen = HashSet::new();
    for r in &requests {
        assert!(r.body.len() < MAX_REQUEST_BYTES);
        for id in insert_ids(r) {
            assert!(seen.insert(id), "an event sent twice");
        }
    }
    assert_eq!(seen.len(), count as usize);
    requests.iter().map(|r| insert_ids(r).len()).collect()
}

#[tokio::test]
async fn batches_hold_fewer_than_2000_events() {
    assert_eq!(request_sizes(1_999).await, [1_999]);
    assert_eq!(request_sizes(2_000).await, [1_999, 1]);
    assert_eq!(request_sizes(2_001).await, [1_999, 2]);
}

#[tokio::test]
async fn batches_stay_under_one_megabyte() {
    let server = server_answering(200).await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    let big: Vec<_> = (0..600)
        .map(|i| {
            let (id, mut e) = event(i, Some(user(i % 7)));
            e.properties
                .insert("padding".into(), json!("x".repeat(2_000)));
            (id, e)
        })
        .collect();
    assert!(all_ok(&a.record(&big).await));
    let requests = server.received_requests().await.unwrap();
    assert!(requests.len() >= 2, "1.3 MB of events needs two requests");
    assert!(requests.iter().all(|r| r.body.len() < MAX_REQUEST_BYTES));
    assert_eq!(
        requests.iter().map(|r| insert_ids(r).len()).sum::<usize>(),
        600
    );

    let (id, mut huge) = event(9_999, None);
    huge.properties
        .insert("padding".into(), json!("x".repeat(MAX_REQUEST_BYTES)));
    let results = a.record(&[(id, huge), event(1, None)]).await;
    assert!(
        matches!(results[0], Err(DeliveryError::Permanent { .. })),
        "can never fit"
    );
    assert!(results[1].is_ok());
}

// ------------------------------------------------------------------ failures

/// Answers 429 naming `throttled` in `throttled_users` while `active`, 200 otherwise.
struct ThrottleOnce {
    throttled: String,
    active: AtomicBool,
}

impl Respond for ThrottleOnce {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let text = String::from_utf8_lossy(&r.body);
        if text.contains(&self.throttled) && self.active.swap(false, Ordering::SeqCst) {
            return ResponseTemplate::new(429).set_body_json(json!({
                "code": 429,
                "error": "Too many requests for some devices and users",
                "eps_threshold": 30,
                "throttled_users": {self.throttled.clone(): 31},
                "throttled_devices": {},
                "throttled_events": [0, 2],
            }));
        }
        ResponseTemplate::new(200)
    }
}

#[tokio::test]
async fn a_429_backs_off_only_the_throttled_user() {
    let server = MockServer::start().await;
    let hot = hmac_hex(SECRET, &user(0).to_string());
    let cold = hmac_hex(SECRET, &user(1).to_string());
    Mock::given(method("POST"))
        .respond_with(ThrottleOnce {
            throttled: hot.clone(),
            active: AtomicBool::new(true),
        })
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let a = analytics(&server.uri(), pseudonymous(), clock.clone());

    // Events 0 and 2 are the hot user's, 1 and 3 the cold one's.
    let results = a.record(&events(4, 2)).await;
    let thirty = Some(SignedDuration::from_secs(30));
    for (i, r) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                r,
                &Err(DeliveryError::Transient {
                    reason: "Amplitude throttled this user or device".into(),
                    retry_after: thirty
                })
            );
        } else {
            assert_eq!(r, &Ok(()), "the cold user's events are resent at once");
        }
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert!(!String::from_utf8_lossy(&requests[1].body).contains(&hot));

    // A later call, 10 s on: the hot user is still paused and not sent, the cold one is.
    clock.advance(10);
    let later = a
        .record(&[event(10, Some(user(0))), event(11, Some(user(1)))])
        .await;
    assert!(
        matches!(&later[0], Err(DeliveryError::Transient { retry_after: Some(d), .. }) if *d == SignedDuration::from_secs(20))
    );
    assert_eq!(later[1], Ok(()));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let third = String::from_utf8_lossy(&requests[2].body).into_owned();
    assert!(third.contains(&cold) && !third.contains(&hot));

    // After the pause the hot user's retried events go through, with their insert_ids.
    clock.advance(21);
    assert!(all_ok(
        &a.record(&[event(0, Some(user(0))), event(2, Some(user(0)))])
            .await
    ));
    let last = server.received_requests().await.unwrap().pop().unwrap();
    assert_eq!(
        insert_ids(&last),
        [event(0, None).0.to_string(), event(2, None).0.to_string()]
    );
}

#[tokio::test]
async fn a_429_naming_nobody_pauses_the_whole_batch() {
    let server = server_answering(429).await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    let results = a.record(&events(3, 3)).await;
    assert!(results.iter().all(|r| matches!(
        r,
        Err(DeliveryError::Transient {
            retry_after: Some(_),
            ..
        })
    )));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no tight retry loop"
    );
}

/// Answers 413 to any request of more than `max` events.
struct TooLarge {
    max: usize,
    calls: AtomicUsize,
}

impl Respond for TooLarge {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if insert_ids(r).len() > self.max {
            ResponseTemplate::new(413)
        } else {
            ResponseTemplate::new(200)
        }
    }
}

#[tokio::test]
async fn a_413_splits_the_batch_in_halves() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(TooLarge {
            max: 400,
            calls: AtomicUsize::new(0),
        })
        .mount(&server)
        .await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    let results = a.record(&events(1_200, 40)).await;
    assert!(all_ok(&results));
    let requests = server.received_requests().await.unwrap();
    let sizes: Vec<usize> = requests.iter().map(|r| insert_ids(r).len()).collect();
    assert_eq!(sizes, [1_200, 600, 600, 300, 300, 300, 300]);
    let delivered: Vec<String> = requests
        .iter()
        .filter(|r| insert_ids(r).len() <= 400)
        .flat_map(insert_ids)
        .collect();
    assert_eq!(delivered.len(), 1_200);
    assert_eq!(delivered.iter().collect::<HashSet<_>>().len(), 1_200);
}

#[tokio::test]
async fn server_errors_are_transient_and_a_retry_keeps_insert_ids() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    let batch = events(5, 2);
    let first = a.record(&batch).await;
    assert!(
        first
            .iter()
            .all(|r| matches!(r, Err(DeliveryError::Transient { .. })))
    );
    assert!(all_ok(&a.record(&batch).await));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        insert_ids(&requests[0]),
        insert_ids(&requests[1]),
        "same insert_id on retry"
    );
    assert_eq!(body(&requests[0]), body(&requests[1]));
}

#[tokio::test]
async fn bad_requests_fail_only_the_events_amplitude_names() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(|r: &Request| {
            if insert_ids(r).len() == 3 {
                ResponseTemplate::new(400).set_body_json(json!({
                    "code": 400, "error": "Request missing required field",
                    "events_with_invalid_fields": {"time": [1]},
                }))
            } else {
                ResponseTemplate::new(200)
            }
        })
        .mount(&server)
        .await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    let results = a.record(&events(3, 3)).await;
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(results[1], Err(DeliveryError::Permanent { .. })));
    for status in [401, 403] {
        let a = analytics(
            &server_answering(status).await.uri(),
            pseudonymous(),
            TestClock::new(),
        );
        assert!(
            a.record(&events(2, 2))
                .await
                .iter()
                .all(|r| matches!(r, Err(DeliveryError::Permanent { .. })))
        );
    }
}

#[tokio::test]
async fn timeouts_and_unreachable_servers_are_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let a = analytics(&server.uri(), pseudonymous(), TestClock::new());
    assert!(
        a.record(&events(2, 1))
            .await
            .iter()
            .all(|r| matches!(r, Err(DeliveryError::Transient { .. })))
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = analytics(
        &format!("http://127.0.0.1:{port}"),
        pseudonymous(),
        TestClock::new(),
    );
    assert!(
        a.record(&events(2, 1))
            .await
            .iter()
            .all(|r| matches!(r, Err(DeliveryError::Transient { .. })))
    );
    assert!(a.record(&[]).await.is_empty());
}
