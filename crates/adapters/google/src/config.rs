//! [`GoogleConfig`]: endpoints, client credentials and behaviour.

use convene_http::oauth::{ClientAuth, OAuthConfig};
use convene_http::{HttpSettings, constant_url};
use secrecy::SecretString;
use url::Url;

/// The narrowest scope that reads free/busy.
pub const SCOPE_FREEBUSY: &str = "https://www.googleapis.com/auth/calendar.freebusy";
/// The scope that creates, changes and deletes events (asked only when booking is on).
pub const SCOPE_EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";

/// Whom Google notifies of an event Convene creates, moves or cancels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendUpdates {
    /// Every attendee (Google sends its own invitation too).
    #[default]
    All,
    /// Attendees outside Google Calendar only.
    ExternalOnly,
    /// Nobody (Convene's own invitation is the only one).
    None,
}

impl SendUpdates {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::ExternalOnly => "externalOnly",
            Self::None => "none",
        }
    }
}

/// Where Google is and who Convene is there. [`GoogleConfig::new`] fills in Google's
/// public endpoints; tests and special deployments change them.
#[derive(Clone, Debug)]
pub struct GoogleConfig {
    /// OAuth endpoints, issuer (`https://accounts.google.com`) and client.
    pub oauth: OAuthConfig,
    /// The OpenID userinfo endpoint.
    pub userinfo_url: Url,
    /// The Calendar API v3 base (`…/calendar/v3`).
    pub calendar_url: Url,
    /// Timeouts, concurrency limit and retries.
    pub http: HttpSettings,
    /// Whom Google notifies of bookings.
    pub send_updates: SendUpdates,
}

impl GoogleConfig {
    /// Google's public endpoints for this client. `redirect_uri` must be Google's own
    /// callback (`https://…/auth/google/callback`), distinct from other providers'.
    pub fn new(client_id: String, client_secret: SecretString, redirect_uri: Url) -> Self {
        Self {
            oauth: OAuthConfig {
                authorize_url: constant_url("https://accounts.google.com/o/oauth2/v2/auth"),
                token_url: constant_url("https://oauth2.googleapis.com/token"),
                revoke_url: Some(constant_url("https://oauth2.googleapis.com/revoke")),
                issuer: "https://accounts.google.com".into(),
                client_id,
                client_secret,
                redirect_uri,
                client_auth: ClientAuth::Post,
            },
            userinfo_url: constant_url("https://openidconnect.googleapis.com/v1/userinfo"),
            calendar_url: constant_url("https://www.googleapis.com/calendar/v3"),
            http: HttpSettings::default(),
            send_updates: SendUpdates::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_googles_public_endpoints() {
        let c = GoogleConfig::new(
            "id".into(),
            SecretString::from("s"),
            constant_url("https://convene.test/auth/google/callback"),
        );
        assert_eq!(
            c.oauth.token_url.as_str(),
            "https://oauth2.googleapis.com/token"
        );
        assert_eq!(c.calendar_url.host_str(), Some("www.googleapis.com"));
        assert_eq!(c.send_updates.as_str(), "all");
    }
}
