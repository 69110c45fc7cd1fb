//! # convene-customerio
//!
//! [`CustomerIoMailer`] sends Convene's emails through Customer.io's transactional API:
//! `POST {base}/v1/send/email` with the App API key as a bearer token, the rendered
//! subject, HTML and plain-text bodies (no Customer.io template), and the invitation as
//! an `invite.ics` attachment. The base URL selects the region ([`US_BASE_URL`],
//! [`EU_BASE_URL`]) or a test server.
//!
//! Failures map to the outbox's retry rules: 429 (honouring `Retry-After`), 5xx, 408
//! and network errors or timeouts are transient; any other 4xx is permanent.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use convene_domain::outbox::DeliveryError;
use convene_domain::ports::{Mailer, OutgoingEmail};
use convene_domain::time::SignedDuration;
use convene_email::Sender;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// Customer.io's API in its US region.
pub const US_BASE_URL: &str = "https://api.customer.io";
/// Customer.io's API in its EU region.
pub const EU_BASE_URL: &str = "https://api-eu.customer.io";

/// Configuration of [`CustomerIoMailer`].
#[derive(Clone)]
pub struct CustomerIoConfig {
    /// API base URL, without a trailing slash ([`US_BASE_URL`], [`EU_BASE_URL`]).
    pub base_url: String,
    /// The workspace's App API key (sent as `Authorization: Bearer …`).
    pub app_api_key: SecretString,
    /// Who emails come from (the address must be a verified sending domain).
    pub from: Sender,
    /// Longest wait for one request.
    pub timeout: Duration,
}

impl CustomerIoConfig {
    /// A configuration with a 15 s timeout.
    pub fn new(base_url: impl Into<String>, app_api_key: SecretString, from: Sender) -> Self {
        Self {
            base_url: base_url.into(),
            app_api_key,
            from,
            timeout: Duration::from_secs(15),
        }
    }
}

impl std::fmt::Debug for CustomerIoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerIoConfig")
            .field("base_url", &self.base_url)
            .field("app_api_key", &"[redacted]")
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a [`CustomerIoMailer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot set up the Customer.io client: {}", self.0)
    }
}

impl std::error::Error for SetupError {}

/// Sends transactional email through Customer.io.
#[derive(Clone, Debug)]
pub struct CustomerIoMailer {
    client: reqwest::Client,
    endpoint: String,
    config: CustomerIoConfig,
}

impl CustomerIoMailer {
    /// A mailer for `config`.
    pub fn new(config: CustomerIoConfig) -> Result<Self, SetupError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("convene/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(e.to_string()))?;
        let endpoint = format!("{}/v1/send/email", config.base_url.trim_end_matches('/'));
        Ok(Self {
            client,
            endpoint,
            config,
        })
    }

    /// The URL requests go to (`{base}/v1/send/email`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// The request body of `/v1/send/email` without a template.
#[derive(Serialize)]
struct SendEmail<'a> {
    to: String,
    from: String,
    subject: &'a str,
    body: &'a str,
    body_plaintext: &'a str,
    identifiers: Identifiers<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attachments: Option<std::collections::BTreeMap<&'static str, String>>,
    /// No open or click tracking: it would rewrite the one-click vote links and add a
    /// tracking pixel to every email.
    tracked: bool,
}

#[derive(Serialize)]
struct Identifiers<'a> {
    email: &'a str,
}

/// `Name <address>` with the display name quoted when it holds anything but atoms
/// (RFC 5322 §3.2.3), so a comma in a name cannot split the recipient list.
pub fn mailbox(name: &str, address: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim();
    if name.is_empty() {
        return address.to_owned();
    }
    let atom = |c: char| c.is_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atom) {
        format!("{name} <{address}>")
    } else {
        format!(
            "\"{}\" <{address}>",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        )
    }
}

/// Seconds from a `Retry-After` header (the HTTP-date form is not used by Customer.io).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<SignedDuration> {
    let secs: i64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs >= 0).then(|| SignedDuration::from_secs(secs))
}

/// The outbox's judgement of a response status.
fn judge(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Result<(), DeliveryError> {
    if status.is_success() {
        return Ok(());
    }
    let reason = format!("Customer.io answered {}", status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(DeliveryError::Transient {
            reason,
            retry_after: retry_after(headers),
        });
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Err(DeliveryError::Transient {
            reason,
            retry_after: retry_after(headers),
        });
    }
    Err(DeliveryError::Permanent { reason })
}

#[async_trait]
impl Mailer for CustomerIoMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), DeliveryError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = SendEmail {
            to: mailbox(email.to_name.as_str(), email.to.as_str()),
            from: mailbox(&self.config.from.name, self.config.from.address.as_str()),
            subject: &email.subject,
            body: &email.html,
            body_plaintext: &email.text,
            identifiers: Identifiers {
                email: email.to.as_str(),
            },
            attachments: email
                .calendar
                .as_ref()
                .map(|c| [("invite.ics", b64.encode(c.ics.as_bytes()))].into()),
            tracked: false,
        };
        let kind = if email.calendar.is_some() {
            "invitation"
        } else {
            "notification"
        };
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(self.config.app_api_key.expose_secret())
            .json(&body)
            .send()
            .await;
        let result = match response {
            Ok(r) => judge(r.status(), r.headers()),
            Err(e) if e.is_timeout() => Err(DeliveryError::Transient {
                reason: "Customer.io timed out".to_owned(),
                retry_after: None,
            }),
            Err(_) => Err(DeliveryError::Transient {
                reason: "Customer.io unreachable".to_owned(),
                retry_after: None,
            }),
        };
        match &result {
            Ok(()) => {
                tracing::info!(message_id = %email.idempotency_key, kind, "email sent through Customer.io")
            }
            Err(e) => {
                tracing::warn!(message_id = %email.idempotency_key, kind, error = %e, "Customer.io delivery failed")
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_quoted_when_needed() {
        assert_eq!(
            mailbox("Ada Lovelace", "ada@example.com"),
            "Ada Lovelace <ada@example.com>"
        );
        assert_eq!(
            mailbox("Doe, John", "j@example.com"),
            "\"Doe, John\" <j@example.com>"
        );
        assert_eq!(
            mailbox("Bob \"B\" <x>", "b@example.com"),
            "\"Bob \\\"B\\\" <x>\" <b@example.com>"
        );
        assert_eq!(mailbox(" ", "a@example.com"), "a@example.com");
    }

    #[test]
    fn the_key_stays_out_of_debug() {
        let c = CustomerIoConfig::new(
            US_BASE_URL,
            SecretString::from("sk-very-secret"),
            Sender {
                name: "C".into(),
                address: convene_domain::email::EmailAddress::parse("a@example.com").unwrap(),
            },
        );
        assert!(!format!("{c:?}").contains("very-secret"));
        let m = CustomerIoMailer::new(c).unwrap();
        assert!(!format!("{m:?}").contains("very-secret"));
    }
}
