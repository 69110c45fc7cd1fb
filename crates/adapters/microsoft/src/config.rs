//! [`MicrosoftConfig`]: endpoints, client credentials and behaviour.

use convene_http::oauth::{ClientAuth, OAuthConfig};
use convene_http::{HttpSettings, constant_url, endpoint};
use secrecy::SecretString;
use url::Url;

/// Where Microsoft is and who Convene is there. [`MicrosoftConfig::new`] fills in the
/// global cloud's endpoints; national clouds and tests change them.
#[derive(Clone, Debug)]
pub struct MicrosoftConfig {
    /// OAuth endpoints, issuer (`https://login.microsoftonline.com/{tenantid}/v2.0`) and
    /// client. Microsoft has no per-grant revocation endpoint.
    pub oauth: OAuthConfig,
    /// The Graph base (`…/v1.0`).
    pub graph_url: Url,
    /// Timeouts, concurrency limit and retries (Graph allows about 4 concurrent requests
    /// per mailbox).
    pub http: HttpSettings,
}

impl MicrosoftConfig {
    /// The global cloud's endpoints for this client. `authority` is `common`,
    /// `organizations` or a tenant id; `redirect_uri` must be Microsoft's own callback
    /// (`https://…/auth/microsoft/callback`), distinct from other providers'.
    pub fn new(
        client_id: String,
        client_secret: SecretString,
        redirect_uri: Url,
        authority: &str,
    ) -> Self {
        let login = constant_url("https://login.microsoftonline.com");
        Self {
            oauth: OAuthConfig {
                authorize_url: endpoint(&login, &[authority, "oauth2", "v2.0", "authorize"]),
                token_url: endpoint(&login, &[authority, "oauth2", "v2.0", "token"]),
                revoke_url: None,
                issuer: "https://login.microsoftonline.com/{tenantid}/v2.0".into(),
                client_id,
                client_secret,
                redirect_uri,
                client_auth: ClientAuth::Post,
            },
            graph_url: constant_url("https://graph.microsoft.com/v1.0"),
            http: HttpSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_global_cloud() {
        let c = MicrosoftConfig::new(
            "id".into(),
            SecretString::from("s"),
            constant_url("https://convene.test/auth/microsoft/callback"),
            "common",
        );
        assert_eq!(
            c.oauth.token_url.as_str(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(c.graph_url.as_str(), "https://graph.microsoft.com/v1.0");
    }
}
