//! [`GoogleIdentity`]: sign-in with Google and the calendar grant's tokens.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use convene_domain::consent::{Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::people::PersonName;
use convene_domain::ports::{
    AuthorizationRequest, Clock, Credentials, IdentityError, IdentityProvider, ProviderIdentity,
    SignIn,
};
use convene_domain::tenant::TenantKey;
use convene_http::HttpFailure;
use convene_http::oauth::OAuthClient;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::{GoogleConfig, SCOPE_EVENTS, SCOPE_FREEBUSY};

/// Google as an OAuth 2.0 / OpenID Connect provider.
pub struct GoogleIdentity {
    oauth: Arc<OAuthClient>,
    userinfo_url: Url,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for GoogleIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleIdentity")
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    hd: Option<String>,
}

impl GoogleIdentity {
    /// Google sign-in for `config`; `clock` judges ID token expiry and access token
    /// lifetimes.
    pub fn new(config: &GoogleConfig, clock: Arc<dyn Clock>) -> Result<Self, HttpFailure> {
        Ok(Self {
            oauth: Arc::new(OAuthClient::for_provider(
                "google",
                config.oauth.clone(),
                config.http.clone(),
            )?),
            userinfo_url: config.userinfo_url.clone(),
            clock,
        })
    }

    /// Checks the callback's `iss` parameter (RFC 9207) when the provider sent one. The
    /// app's `/auth/google/callback` calls this before [`IdentityProvider::exchange_code`].
    pub fn check_callback_issuer(&self, iss: Option<&str>) -> Result<(), IdentityError> {
        self.oauth.check_callback_issuer(iss)
    }

    async fn userinfo(&self, access_token: &SecretString) -> Result<UserInfo, IdentityError> {
        self.oauth
            .profile("userinfo", self.userinfo_url.clone(), access_token)
            .await
    }
}

/// The provider's scope names for the domain's scopes, least privilege first.
fn provider_scopes(scopes: &[Scope]) -> Vec<&'static str> {
    let mut out = vec!["openid", "email", "profile"];
    if scopes.contains(&Scope::ReadFreeBusy) || scopes.contains(&Scope::WriteEvents) {
        out.push(SCOPE_FREEBUSY);
    }
    if scopes.contains(&Scope::WriteEvents) {
        out.push(SCOPE_EVENTS);
    }
    out
}

/// The domain's scopes among those Google granted.
fn granted(scopes: &[String]) -> Vec<Scope> {
    let has = |s: &str| scopes.iter().any(|g| g == s);
    let full = has("https://www.googleapis.com/auth/calendar");
    let mut out = Vec::new();
    if full
        || has(SCOPE_FREEBUSY)
        || has("https://www.googleapis.com/auth/calendar.readonly")
        || has("https://www.googleapis.com/auth/calendar.events.freebusy")
    {
        out.push(Scope::ReadFreeBusy);
    }
    if full || has(SCOPE_EVENTS) {
        out.push(Scope::WriteEvents);
    }
    out
}

fn verified(value: Option<&serde_json::Value>) -> Option<bool> {
    match value? {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => Some(s.eq_ignore_ascii_case("true")),
        _ => None,
    }
}

#[async_trait]
impl IdentityProvider for GoogleIdentity {
    fn provider(&self) -> Provider {
        Provider::Google
    }

    fn authorization_url(&self, request: &AuthorizationRequest) -> String {
        self.oauth.authorization_url(
            request,
            &provider_scopes(&request.scopes),
            &[("access_type", "offline"), ("prompt", "consent")],
        )
    }

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &str,
    ) -> Result<SignIn, IdentityError> {
        let tokens = self.oauth.exchange_code(code, pkce_verifier).await?;
        let now = self.clock.now();
        let id_token = tokens
            .id_token
            .as_ref()
            .ok_or_else(|| IdentityError::Refused("no ID token in the token response".into()))?;
        let claims = self.oauth.check_id_token(id_token, nonce, now)?;
        let info = self.userinfo(&tokens.access_token).await?;
        if info.sub != claims.sub {
            return Err(IdentityError::Refused(
                "userinfo describes another user than the ID token".into(),
            ));
        }
        let email_verified = verified(info.email_verified.as_ref())
            .or(claims.email_verified)
            .unwrap_or(false);
        let email = info.email.or(claims.email).filter(|_| email_verified);
        let email = email
            .as_deref()
            .and_then(|e| EmailAddress::parse(e).ok())
            .ok_or_else(|| IdentityError::Refused("no verified email address".into()))?;
        let name = info
            .name
            .or(claims.name)
            .and_then(|n| PersonName::parse(&n).ok())
            .or_else(|| {
                let local = email.as_str().split('@').next().unwrap_or("someone");
                PersonName::parse(local).ok()
            })
            .unwrap_or_else(PersonName::erased);
        // The ID token's `hd` is the one Google signs for; userinfo's is the fallback.
        let tenant = match claims.hd.or(info.hd).filter(|d| !d.trim().is_empty()) {
            Some(domain) => TenantKey::GoogleWorkspace {
                domain: domain.trim().to_ascii_lowercase(),
            },
            None => TenantKey::Personal {
                subject: format!("google:{}", claims.sub),
            },
        };
        let scopes = granted(tokens.scopes.as_deref().unwrap_or_default());
        let credentials = match tokens.credentials(None, now) {
            Some(c) => c,
            None if scopes.is_empty() => Credentials {
                refresh_token: SecretString::from(String::new()),
                access_token: Some(tokens.access_token.clone()),
                access_expires_at: None,
            },
            None => {
                return Err(IdentityError::Refused(
                    "no refresh token: offline access was not granted".into(),
                ));
            }
        };
        Ok(SignIn {
            identity: ProviderIdentity {
                subject: claims.sub,
                email,
                name,
                tenant,
                // Google's ID token does not say who administers a Workspace domain:
                // an operator grants the role (`convene tenant grant-admin`).
                tenant_admin: false,
            },
            scopes,
            credentials,
        })
    }

    async fn refresh(&self, credentials: &Credentials) -> Result<Credentials, IdentityError> {
        let tokens = self.oauth.refresh(&credentials.refresh_token).await?;
        tokens
            .credentials(Some(&credentials.refresh_token), self.clock.now())
            .ok_or_else(|| IdentityError::Refused("no refresh token".into()))
    }

    async fn revoke(&self, credentials: &Credentials) -> Result<(), IdentityError> {
        if credentials.refresh_token.expose_secret().is_empty() {
            return Ok(());
        }
        Ok(self.oauth.revoke(&credentials.refresh_token).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_scopes_are_asked_and_read_back() {
        assert_eq!(provider_scopes(&[]), ["openid", "email", "profile"]);
        assert_eq!(
            provider_scopes(&[Scope::ReadFreeBusy]),
            ["openid", "email", "profile", SCOPE_FREEBUSY]
        );
        assert!(provider_scopes(&[Scope::WriteEvents]).contains(&SCOPE_EVENTS));
        assert_eq!(
            granted(&["openid".into(), SCOPE_FREEBUSY.into()]),
            [Scope::ReadFreeBusy]
        );
        assert_eq!(
            granted(&[SCOPE_FREEBUSY.into(), SCOPE_EVENTS.into()]),
            [Scope::ReadFreeBusy, Scope::WriteEvents]
        );
        assert!(granted(&["email".into()]).is_empty());
    }
}
