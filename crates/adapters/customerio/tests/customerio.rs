//! The Customer.io mailer against a wiremock server: request shape, authentication,
//! regions, and how each kind of answer maps to the outbox's retry rules.

use std::time::Duration;

use base64::Engine;
use convene_customerio::{CustomerIoConfig, CustomerIoMailer, EU_BASE_URL, US_BASE_URL};
use convene_domain::email::EmailAddress;
use convene_domain::ids::MessageId;
use convene_domain::outbox::DeliveryError;
use convene_domain::people::PersonName;
use convene_domain::ports::{CalendarPart, Mailer, OutgoingEmail};
use convene_domain::time::SignedDuration;
use convene_email::Sender;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ICS: &str = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n";

fn sender() -> Sender {
    Sender {
        name: "Convene".into(),
        address: EmailAddress::parse("no-reply@convene.example.com").unwrap(),
    }
}

fn mailer(base: &str) -> CustomerIoMailer {
    let mut config = CustomerIoConfig::new(base, SecretString::from("app-key-123"), sender());
    config.timeout = Duration::from_millis(500);
    CustomerIoMailer::new(config).unwrap()
}

fn email(with_invitation: bool) -> OutgoingEmail {
    OutgoingEmail {
        idempotency_key: MessageId::from_uuid(uuid::Uuid::from_u128(42)),
        to: EmailAddress::parse("bob@example.org").unwrap(),
        to_name: PersonName::parse("Guest, Bob").unwrap(),
        subject: "Invitation: Planning".into(),
        text: "Hello Bob".into(),
        html: "<p>Hello Bob</p>".into(),
        calendar: with_invitation.then(|| CalendarPart {
            method: "REQUEST".into(),
            ics: ICS.into(),
        }),
    }
}

async fn answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send/email"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn sends_the_rendered_email_with_the_invitation_attached() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send/email"))
        .and(header("authorization", "Bearer app-key-123"))
        .and(header("content-type", "application/json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"delivery_id": "x", "queued_at": 1})),
        )
        .expect(1)
        .mount(&server)
        .await;
    mailer(&server.uri()).send(&email(true)).await.unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let attachment = body["attachments"]["invite.ics"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(attachment)
            .unwrap(),
        ICS.as_bytes()
    );
    let mut body = body;
    body.as_object_mut().unwrap().remove("attachments");
    assert_eq!(
        body,
        json!({
            "to": "\"Guest, Bob\" <bob@example.org>",
            "from": "Convene <no-reply@convene.example.com>",
            "subject": "Invitation: Planning",
            "body": "<p>Hello Bob</p>",
            "body_plaintext": "Hello Bob",
            "identifiers": {"email": "bob@example.org"},
            "tracked": false,
        })
    );
}

#[tokio::test]
async fn an_email_without_invitation_has_no_attachments() {
    let server = answering(200).await;
    mailer(&server.uri()).send(&email(false)).await.unwrap();
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert!(body.get("attachments").is_none(), "{body}");
}

#[test]
fn the_region_is_the_base_url() {
    assert_eq!(
        mailer(US_BASE_URL).endpoint(),
        "https://api.customer.io/v1/send/email"
    );
    assert_eq!(
        mailer(EU_BASE_URL).endpoint(),
        "https://api-eu.customer.io/v1/send/email"
    );
    assert_eq!(
        mailer("https://api-eu.customer.io/").endpoint(),
        "https://api-eu.customer.io/v1/send/email"
    );
}

#[tokio::test]
async fn a_mailer_pointed_at_another_base_url_posts_there() {
    // The EU region differs from the US one only by its base URL: served here by wiremock.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send/email"))
        .and(body_partial_json(
            json!({"identifiers": {"email": "bob@example.org"}}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    mailer(&format!("{}/", server.uri()))
        .send(&email(false))
        .await
        .unwrap();
}

#[tokio::test]
async fn rate_limits_are_transient_and_honour_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .mount(&server)
        .await;
    let e = mailer(&server.uri()).send(&email(true)).await.unwrap_err();
    assert_eq!(
        e,
        DeliveryError::Transient {
            reason: "Customer.io answered 429".into(),
            retry_after: Some(SignedDuration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn server_errors_are_transient_and_refusals_permanent() {
    for status in [500, 502, 503, 408] {
        let e = mailer(&answering(status).await.uri())
            .send(&email(true))
            .await
            .unwrap_err();
        assert!(
            matches!(e, DeliveryError::Transient { .. }),
            "{status}: {e:?}"
        );
    }
    for status in [400, 401, 403, 404, 422] {
        let e = mailer(&answering(status).await.uri())
            .send(&email(true))
            .await
            .unwrap_err();
        assert!(
            matches!(e, DeliveryError::Permanent { .. }),
            "{status}: {e:?}"
        );
        assert!(!e.to_string().contains("bob@"), "no address in the reason");
    }
}

#[tokio::test]
async fn timeouts_and_unreachable_servers_are_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let e = mailer(&server.uri()).send(&email(false)).await.unwrap_err();
    assert_eq!(
        e,
        DeliveryError::Transient {
            reason: "Customer.io timed out".into(),
            retry_after: None
        }
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = mailer(&format!("http://127.0.0.1:{port}"))
        .send(&email(false))
        .await
        .unwrap_err();
    assert!(matches!(e, DeliveryError::Transient { .. }), "{e:?}");
}

#[tokio::test]
async fn a_retry_sends_the_same_email_again() {
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
    let m = mailer(&server.uri());
    assert!(m.send(&email(true)).await.is_err());
    m.send(&email(true)).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].body, requests[1].body,
        "a retry sends exactly the same request"
    );
}
