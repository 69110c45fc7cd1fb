//! The Google adapter's integration tests: the Calendar API against wiremock answering
//! as Google documents, and the OAuth code flow against a real OpenID provider (node
//! `oidc-provider`). One test binary for the crate.

mod calendar;
mod oidc;

use std::time::Duration;

use convene_google::GoogleConfig;
use convene_http::{HttpSettings, RetryPolicy};
use secrecy::SecretString;
use wiremock::MockServer;

/// Marker strings put in titles, locations and attendees: none may leave the adapter.
pub const CANARY: &str = "CANARY";

/// The adapter's configuration with every endpoint on `server`, and short timeouts.
pub fn config(server: &MockServer) -> GoogleConfig {
    let base = server.uri();
    let mut c = GoogleConfig::new(
        "convene-client".into(),
        SecretString::from("convene-secret"),
        "http://127.0.0.1:1/auth/google/callback".parse().unwrap(),
    );
    c.oauth.authorize_url = format!("{base}/o/oauth2/v2/auth").parse().unwrap();
    c.oauth.token_url = format!("{base}/token").parse().unwrap();
    c.oauth.revoke_url = Some(format!("{base}/revoke").parse().unwrap());
    c.userinfo_url = format!("{base}/v1/userinfo").parse().unwrap();
    c.calendar_url = format!("{base}/calendar/v3").parse().unwrap();
    c.http = HttpSettings {
        timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_millis(400),
        max_concurrency: 8,
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
