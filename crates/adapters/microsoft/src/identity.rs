//! [`MicrosoftIdentity`]: sign-in with Microsoft and the calendar grant's tokens.

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
use convene_http::oauth::OAuthClient;
use convene_http::{HttpFailure, endpoint};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::config::MicrosoftConfig;

/// The `tid` of personal Microsoft accounts (outlook.com, hotmail.com): each such user is
/// a Convene tenant of one.
pub const PERSONAL_ACCOUNTS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Microsoft (Entra ID, v2 endpoints) as an OAuth 2.0 / OpenID Connect provider.
pub struct MicrosoftIdentity {
    oauth: Arc<OAuthClient>,
    graph_url: Url,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MicrosoftIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicrosoftIdentity")
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

/// The role template id of Entra's Global Administrator (the same in every tenant).
const GLOBAL_ADMINISTRATOR_ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

/// The scope names for the domain's scopes.
fn provider_scopes(scopes: &[Scope]) -> Vec<&'static str> {
    let mut out = vec!["openid", "email", "profile", "offline_access", "User.Read"];
    if scopes.contains(&Scope::WriteEvents) {
        out.push("Calendars.ReadWrite");
    } else if scopes.contains(&Scope::ReadFreeBusy) {
        out.push("Calendars.ReadBasic");
    }
    out
}

/// The domain's scopes among those granted (Graph may prefix its resource).
fn granted(scopes: &[String]) -> Vec<Scope> {
    let names: Vec<String> = scopes
        .iter()
        .map(|s| {
            s.trim_start_matches("https://graph.microsoft.com/")
                .to_ascii_lowercase()
        })
        .collect();
    let has = |s: &str| names.iter().any(|n| n == s);
    let write = has("calendars.readwrite");
    let mut out = Vec::new();
    if write || has("calendars.read") || has("calendars.readbasic") {
        out.push(Scope::ReadFreeBusy);
    }
    if write {
        out.push(Scope::WriteEvents);
    }
    out
}

impl MicrosoftIdentity {
    /// Microsoft sign-in for `config`; `clock` judges ID token expiry and access token
    /// lifetimes.
    pub fn new(config: &MicrosoftConfig, clock: Arc<dyn Clock>) -> Result<Self, HttpFailure> {
        Ok(Self {
            oauth: Arc::new(OAuthClient::for_provider(
                "microsoft",
                config.oauth.clone(),
                config.http.clone(),
            )?),
            graph_url: config.graph_url.clone(),
            clock,
        })
    }

    /// Checks the callback's `iss` parameter (RFC 9207) when one was sent. The app's
    /// `/auth/microsoft/callback` calls this before [`IdentityProvider::exchange_code`].
    pub fn check_callback_issuer(&self, iss: Option<&str>) -> Result<(), IdentityError> {
        self.oauth.check_callback_issuer(iss)
    }

    async fn me(&self, access_token: &SecretString) -> Result<Me, IdentityError> {
        let mut url = endpoint(&self.graph_url, &["me"]);
        url.query_pairs_mut()
            .append_pair("$select", "id,displayName,mail,userPrincipalName");
        self.oauth.profile("graph /me", url, access_token).await
    }
}

#[async_trait]
impl IdentityProvider for MicrosoftIdentity {
    fn provider(&self) -> Provider {
        Provider::Microsoft
    }

    fn authorization_url(&self, request: &AuthorizationRequest) -> String {
        self.oauth.authorization_url(
            request,
            &provider_scopes(&request.scopes),
            &[("response_mode", "query")],
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
        let tid = claims
            .tid
            .clone()
            .ok_or_else(|| IdentityError::Refused("the ID token names no tenant".into()))?;
        let oid = claims
            .oid
            .clone()
            .ok_or_else(|| IdentityError::Refused("the ID token names no object id".into()))?;
        let me = self.me(&tokens.access_token).await?;
        if me
            .id
            .as_deref()
            .is_some_and(|id| !id.eq_ignore_ascii_case(&oid))
        {
            return Err(IdentityError::Refused(
                "graph describes another user than the ID token".into(),
            ));
        }
        // The address comes from the directory, never from the token's `email` claim,
        // which a tenant administrator can set to anything.
        let email = [me.mail.as_deref(), me.user_principal_name.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|a| EmailAddress::parse(a).ok())
            .ok_or_else(|| IdentityError::Refused("no email address in the directory".into()))?;
        let name = me
            .display_name
            .or(claims.name)
            .and_then(|n| PersonName::parse(&n).ok())
            .or_else(|| {
                let local = email.as_str().split('@').next().unwrap_or("someone");
                PersonName::parse(local).ok()
            })
            .unwrap_or_else(PersonName::erased);
        let personal = tid.eq_ignore_ascii_case(PERSONAL_ACCOUNTS_TENANT);
        // Entra's Global Administrator role, as a `wids` claim of the ID token: the
        // directory vouches that this person administers the tenant.
        let tenant_admin = !personal
            && claims
                .wids
                .iter()
                .any(|w| w.eq_ignore_ascii_case(GLOBAL_ADMINISTRATOR_ROLE));
        let tenant = if personal {
            TenantKey::Personal {
                subject: format!("microsoft:{oid}"),
            }
        } else {
            TenantKey::Microsoft {
                tid: tid.to_ascii_lowercase(),
            }
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
                    "no refresh token: offline_access was not granted".into(),
                ));
            }
        };
        Ok(SignIn {
            identity: ProviderIdentity {
                subject: oid,
                email,
                name,
                tenant,
                tenant_admin,
            },
            scopes,
            credentials,
        })
    }

    /// Microsoft rotates refresh tokens: the returned credentials carry the new one,
    /// which the caller MUST store.
    async fn refresh(&self, credentials: &Credentials) -> Result<Credentials, IdentityError> {
        let tokens = self.oauth.refresh(&credentials.refresh_token).await?;
        tokens
            .credentials(Some(&credentials.refresh_token), self.clock.now())
            .ok_or_else(|| IdentityError::Refused("no refresh token".into()))
    }

    /// Microsoft has no endpoint revoking one app's grant for one user (revoking all the
    /// user's sessions would sign them out everywhere): Convene forgets the tokens, and
    /// the user removes the app at myapps.microsoft.com. Counts as success.
    async fn revoke(&self, _credentials: &Credentials) -> Result<(), IdentityError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_scopes_are_asked_and_read_back() {
        assert!(provider_scopes(&[Scope::ReadFreeBusy]).contains(&"Calendars.ReadBasic"));
        assert!(provider_scopes(&[Scope::ReadFreeBusy]).contains(&"offline_access"));
        assert!(
            provider_scopes(&[Scope::ReadFreeBusy, Scope::WriteEvents])
                .contains(&"Calendars.ReadWrite")
        );
        assert_eq!(
            granted(&["https://graph.microsoft.com/Calendars.ReadWrite".into()]),
            [Scope::ReadFreeBusy, Scope::WriteEvents]
        );
        assert_eq!(
            granted(&["Calendars.ReadBasic".into()]),
            [Scope::ReadFreeBusy]
        );
        assert!(granted(&["User.Read".into()]).is_empty());
    }
}
