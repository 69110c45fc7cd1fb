//! # convene-http
//!
//! What Convene's HTTP calendar adapters (Google, Microsoft 365, ICS/CalDAV) share, so
//! nothing is written twice:
//!
//! - [`ProviderHttp`]: one provider's HTTP client. A concurrency limit (a semaphore), a
//!   per-request timeout, retries of 429/503 honouring `Retry-After` (seconds or HTTP
//!   date) and of other 5xx, timeouts and connection failures with capped exponential
//!   backoff and jitter; after the retries, [`HttpFailure::RateLimited`] or
//!   [`HttpFailure::Unavailable`], which map onto the domain's calendar and identity
//!   errors. Error texts never carry URLs (a feed URL is a secret) nor bodies.
//! - [`oauth`]: the OAuth 2.0 authorization-code client with PKCE (built on the `oauth2`
//!   crate), ID token checks (issuer, audience, nonce, expiry) and the mix-up defence.
//! - [`tokens::GrantTokens`]: a grant's access token, loaded from the
//!   [`GrantStore`](convene_domain::ports::GrantStore), refreshed when stale (once per grant
//!   at a time), rotated refresh tokens written back every time, `invalid_grant` →
//!   consent revoked.
//! - [`coalesce::CoalescedCredentials`]: the adapters' credential reads that start
//!   together (one per provider in an availability request) as one store read.
//! - [`batch`]: free/busy of many calendars in few calls (grouping by tenant, batches,
//!   window pieces, concurrency, per-calendar failures), shared by Google and Microsoft.
//! - [`window`]: splitting long free/busy windows as providers require.
//! - [`windows_zones`]: Windows time zone names → IANA, from CLDR's windowsZones table.
//!
//! Calendar content never passes through here: replies are handed to the adapter that
//! asked, and only counts and durations are logged.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod batch;
mod client;
pub mod coalesce;
pub mod oauth;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod window;
pub mod windows_zones;

pub use client::{
    HttpFailure, HttpSettings, ProviderHttp, Reply, RetryPolicy, ThrottleSignal, parse_retry_after,
};

/// `base` with `segments` appended as path segments (each percent-encoded), whatever
/// trailing slash `base` has.
pub fn endpoint(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Parses a URL known at compile time.
///
/// # Panics
/// When `url` is not a valid URL: only ever called with constants of this workspace,
/// which the tests parse.
#[allow(clippy::expect_used)]
pub fn constant_url(url: &'static str) -> url::Url {
    url::Url::parse(url).expect("a valid constant URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_append_encoded_segments() {
        let base = constant_url("https://api.test/calendar/v3/");
        assert_eq!(
            endpoint(&base, &["calendars", "a b@c", "events"]).as_str(),
            "https://api.test/calendar/v3/calendars/a%20b@c/events"
        );
        let base = constant_url("https://api.test/v1.0");
        assert_eq!(
            endpoint(&base, &["me"]).as_str(),
            "https://api.test/v1.0/me"
        );
    }
}
