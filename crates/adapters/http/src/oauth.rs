//! The OAuth 2.0 authorization-code client (with PKCE) Google and Microsoft share.
//!
//! - The authorization URL carries the caller's `state`, S256 PKCE challenge and OpenID
//!   `nonce`, the provider's own redirect URI (one per provider: the first half of the
//!   mix-up defence) and the scopes asked for.
//! - Token requests (code exchange, refresh, revocation) go through the `oauth2` crate
//!   over [`ProviderHttp`], so they share the provider's limit and timeout, and are
//!   never repeated once the provider may have acted on them.
//! - The ID token returned by the token endpoint is checked: issuer (the second half of
//!   the mix-up defence), audience, expiry and nonce. Its signature is not checked: it
//!   comes straight from the token endpoint over TLS, which OpenID Connect Core §3.1.3.7
//!   accepts in place of the signature.
//! - `invalid_grant` on refresh is [`OAuthFailure::Revoked`]: the grant is dead.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use convene_domain::ports::{AuthorizationRequest, CalendarError, Credentials, IdentityError};
use convene_domain::time::{SignedDuration, Timestamp};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::client::{HttpFailure, HttpSettings, ProviderHttp};

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    #[default]
    Post,
    /// HTTP Basic (`client_secret_basic`).
    Basic,
}

/// Where a provider's OAuth endpoints are and who Convene is there.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The authorization endpoint.
    pub authorize_url: Url,
    /// The token endpoint.
    pub token_url: Url,
    /// The RFC 7009 revocation endpoint, if the provider has one.
    pub revoke_url: Option<Url>,
    /// The issuer the ID token (and the callback's `iss`, when sent) must name. May hold
    /// `{tenantid}`, replaced by the token's `tid` claim (Microsoft's multi-tenant
    /// endpoints).
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// This provider's own callback URL (`…/auth/{provider}/callback`), registered at the
    /// provider. Distinct per provider: the mix-up defence relies on it.
    pub redirect_uri: Url,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
}

/// Why a token request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OAuthFailure {
    /// `invalid_grant` on refresh: the grant was revoked, expired or superseded.
    #[error("the provider revoked the grant")]
    Revoked,
    /// The provider refused the request (its error code, never a token).
    #[error("refused: {0}")]
    Refused(String),
    /// Throttled, still after the retries.
    #[error("rate limited")]
    RateLimited(Option<Duration>),
    /// Down or timing out.
    #[error("{0}")]
    Unavailable(String),
}

impl From<HttpFailure> for OAuthFailure {
    fn from(f: HttpFailure) -> Self {
        match f {
            HttpFailure::RateLimited { retry_after } => Self::RateLimited(retry_after),
            HttpFailure::Unavailable(reason) => Self::Unavailable(reason),
        }
    }
}

impl From<OAuthFailure> for IdentityError {
    fn from(f: OAuthFailure) -> Self {
        match f {
            OAuthFailure::Revoked => IdentityError::ConsentRevoked,
            OAuthFailure::Refused(reason) => IdentityError::Refused(reason),
            OAuthFailure::RateLimited(_) => IdentityError::Unavailable("rate limited".into()),
            OAuthFailure::Unavailable(reason) => IdentityError::Unavailable(reason),
        }
    }
}

impl From<OAuthFailure> for CalendarError {
    fn from(f: OAuthFailure) -> Self {
        match f {
            OAuthFailure::Revoked => CalendarError::ConsentRevoked,
            // A refusal other than invalid_grant is our misconfiguration, not the user's
            // revocation: never mark the grant revoked for it.
            OAuthFailure::Refused(reason) => {
                CalendarError::Unavailable(format!("token refresh refused: {reason}"))
            }
            OAuthFailure::RateLimited(retry_after) => CalendarError::RateLimited {
                retry_after: retry_after.and_then(|d| SignedDuration::try_from(d).ok()),
            },
            OAuthFailure::Unavailable(reason) => CalendarError::Unavailable(reason),
        }
    }
}

/// The OpenID Connect fields of a token response.
#[derive(Clone, Deserialize, Serialize)]
pub struct OidcFields {
    /// The ID token, when `openid` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl fmt::Debug for OidcFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcFields")
            .field("id_token", &self.id_token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl ExtraTokenFields for OidcFields {}

type TokenReply = StandardTokenResponse<OidcFields, BasicTokenType>;
type Oauth = oauth2::Client<
    BasicErrorResponse,
    TokenReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What a token endpoint returned. Secrets redact themselves in `Debug`.
#[derive(Clone, Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// A refresh token, when one was issued (a rotated one on refresh).
    pub refresh_token: Option<SecretString>,
    /// The access token's lifetime.
    pub expires_in: Option<Duration>,
    /// The scopes granted, when the provider said.
    pub scopes: Option<Vec<String>>,
    /// The ID token (it holds the user's email: a secret for logging purposes).
    pub id_token: Option<SecretString>,
}

impl TokenSet {
    /// The credentials to store: the new refresh token, or `previous` when none was
    /// issued (providers that do not rotate). `None` when there is neither.
    pub fn credentials(
        &self,
        previous: Option<&SecretString>,
        now: Timestamp,
    ) -> Option<Credentials> {
        let refresh_token = self.refresh_token.clone().or_else(|| previous.cloned())?;
        Some(Credentials {
            refresh_token,
            access_token: Some(self.access_token.clone()),
            access_expires_at: self.expires_in.and_then(|d| {
                SignedDuration::try_from(d)
                    .ok()
                    .and_then(|d| now.checked_add(d).ok())
            }),
        })
    }
}

/// The claims of an ID token Convene reads. Which are set depends on the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Email, if in the token.
    pub email: Option<String>,
    /// Whether the provider verified the email.
    pub email_verified: Option<bool>,
    /// Display name.
    pub name: Option<String>,
    /// Google Workspace domain.
    pub hd: Option<String>,
    /// Microsoft tenant id.
    pub tid: Option<String>,
    /// Microsoft object id.
    pub oid: Option<String>,
    /// Microsoft's sign-in name.
    pub preferred_username: Option<String>,
    /// Microsoft's directory role template ids of the user (`wids`), when the app
    /// registration asks for them.
    pub wids: Vec<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    hd: Option<String>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    wids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, client_id: &str) -> bool {
        match self {
            Self::One(a) => a == client_id,
            Self::Many(all) => all.iter().any(|a| a == client_id),
        }
    }
}

/// Clock skew tolerated when checking an ID token's expiry.
const SKEW: SignedDuration = SignedDuration::from_mins(5);

/// One provider's OAuth client.
pub struct OAuthClient {
    config: OAuthConfig,
    http: ProviderHttp,
    client: Oauth,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.http.name())
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client for `config`, sending through `http` (which must not follow redirects).
    pub fn new(config: OAuthConfig, http: ProviderHttp) -> Self {
        let auth_type = match config.client_auth {
            ClientAuth::Post => AuthType::RequestBody,
            ClientAuth::Basic => AuthType::BasicAuth,
        };
        let client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_type(auth_type)
            .set_token_uri(TokenUrl::from_url(config.token_url.clone()))
            .set_redirect_uri(RedirectUrl::from_url(config.redirect_uri.clone()));
        Self {
            config,
            http,
            client,
        }
    }

    /// A client for `config` over a new [`ProviderHttp`] named `name` (`google`,
    /// `microsoft`) with `settings`.
    pub fn for_provider(
        name: &'static str,
        config: OAuthConfig,
        settings: HttpSettings,
    ) -> Result<Self, HttpFailure> {
        Ok(Self::new(config, ProviderHttp::new(name, settings)?))
    }

    /// The signed-in person's profile (OpenID userinfo, Graph `/me`), read at `url` with
    /// their access token: `Refused`, naming `what`, unless it answers 200 with a `T`.
    pub async fn profile<T: DeserializeOwned>(
        &self,
        what: &str,
        url: Url,
        access_token: &SecretString,
    ) -> Result<T, IdentityError> {
        let reply = self
            .http
            .send(
                self.http
                    .request(reqwest::Method::GET, url)
                    .bearer_auth(access_token.expose_secret()),
            )
            .await?;
        if reply.status != reqwest::StatusCode::OK {
            return Err(IdentityError::Refused(format!(
                "{what} answered {}",
                reply.status.as_u16()
            )));
        }
        reply
            .json()
            .map_err(|_| IdentityError::Refused(format!("{what} answered unreadably")))
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// The HTTP client (userinfo and API calls use it too).
    pub fn http(&self) -> &ProviderHttp {
        &self.http
    }

    /// The authorization URL for `request`, asking for `scopes`, with the provider's
    /// `extra` parameters (`access_type=offline`, `prompt=consent`...).
    pub fn authorization_url(
        &self,
        request: &AuthorizationRequest,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> String {
        let mut url = self.config.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", self.config.redirect_uri.as_str())
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", &request.state)
                .append_pair("code_challenge", &request.pkce_challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("nonce", &request.nonce);
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.into()
    }

    /// Exchanges an authorization code with its PKCE verifier. `invalid_grant` here
    /// means a bad, used or foreign code: [`OAuthFailure::Refused`].
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, OAuthFailure> {
        let reply = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| token_failure(e, false))?;
        Ok(token_set(&reply))
    }

    /// A fresh access token from a refresh token. `invalid_grant` is
    /// [`OAuthFailure::Revoked`].
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, OAuthFailure> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let reply = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(|e| token_failure(e, true))?;
        Ok(token_set(&reply))
    }

    /// Revokes a refresh token at the provider (RFC 7009). A token the provider no
    /// longer knows counts as revoked. Without a revocation endpoint this does nothing.
    pub async fn revoke(&self, refresh_token: &SecretString) -> Result<(), OAuthFailure> {
        let Some(url) = self.config.revoke_url.clone() else {
            return Ok(());
        };
        let mut form = vec![
            ("token", refresh_token.expose_secret()),
            ("token_type_hint", "refresh_token"),
        ];
        let mut request = self.http.request(reqwest::Method::POST, url);
        match self.config.client_auth {
            ClientAuth::Post => {
                form.push(("client_id", self.config.client_id.as_str()));
                form.push(("client_secret", self.config.client_secret.expose_secret()));
            }
            ClientAuth::Basic => {
                request = request.basic_auth(
                    &self.config.client_id,
                    Some(self.config.client_secret.expose_secret()),
                );
            }
        }
        let reply = self.http.send_once(request.form(&form)).await?;
        if reply.is_success() {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Refusal {
            #[serde(default)]
            error: String,
        }
        let code = reply.json::<Refusal>().map(|r| r.error).unwrap_or_default();
        match code.as_str() {
            "invalid_token" | "invalid_grant" => Ok(()),
            _ if reply.status.is_server_error() => Err(OAuthFailure::Unavailable(format!(
                "{}: revocation answered {}",
                self.http.name(),
                reply.status.as_u16()
            ))),
            "" => Err(OAuthFailure::Refused(format!(
                "revocation answered {}",
                reply.status.as_u16()
            ))),
            other => Err(OAuthFailure::Refused(other.to_owned())),
        }
    }

    /// The issuer expected for a token of tenant `tid`.
    fn expected_issuer(&self, tid: Option<&str>) -> String {
        match tid {
            Some(tid) => self.config.issuer.replace("{tenantid}", tid),
            None => self.config.issuer.clone(),
        }
    }

    /// Checks the `iss` parameter of an authorization response (RFC 9207), when the
    /// provider sent one: a response from another issuer is a mix-up and is refused.
    pub fn check_callback_issuer(&self, iss: Option<&str>) -> Result<(), IdentityError> {
        let Some(iss) = iss else {
            return Ok(());
        };
        let ok = match self.config.issuer.split_once("{tenantid}") {
            Some((prefix, suffix)) => iss
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|tenant| !tenant.is_empty() && !tenant.contains('/')),
            None => iss == self.config.issuer,
        };
        if ok {
            Ok(())
        } else {
            Err(IdentityError::Refused(
                "the authorization response comes from another issuer".into(),
            ))
        }
    }

    /// Reads and checks an ID token from this provider's token endpoint: issuer,
    /// audience (this client), expiry (against `now`) and `nonce`.
    pub fn check_id_token(
        &self,
        id_token: &SecretString,
        nonce: &str,
        now: Timestamp,
    ) -> Result<IdClaims, IdentityError> {
        let refused = |why: &str| IdentityError::Refused(format!("ID token {why}"));
        let payload = id_token
            .expose_secret()
            .split('.')
            .nth(1)
            .ok_or_else(|| refused("is malformed"))?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| refused("is malformed"))?;
        let raw: RawClaims = serde_json::from_slice(&json).map_err(|_| refused("is malformed"))?;
        if raw.iss != self.expected_issuer(raw.tid.as_deref()) {
            return Err(refused("comes from another issuer"));
        }
        if !raw.aud.contains(&self.config.client_id) {
            return Err(refused("was issued to another client"));
        }
        let expires = Timestamp::from_second(raw.exp).map_err(|_| refused("is malformed"))?;
        if expires.checked_add(SKEW).map_or(true, |e| e < now) {
            return Err(refused("has expired"));
        }
        if raw.nonce.as_deref() != Some(nonce) {
            return Err(refused("does not carry this sign-in's nonce"));
        }
        let email_verified = match raw.email_verified {
            Some(serde_json::Value::Bool(b)) => Some(b),
            Some(serde_json::Value::String(s)) => Some(s.eq_ignore_ascii_case("true")),
            _ => None,
        };
        Ok(IdClaims {
            iss: raw.iss,
            sub: raw.sub,
            email: raw.email,
            email_verified,
            name: raw.name,
            hd: raw.hd,
            tid: raw.tid,
            oid: raw.oid,
            preferred_username: raw.preferred_username,
            wids: raw.wids,
        })
    }
}

fn token_set(reply: &TokenReply) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(reply.access_token().secret().to_owned()),
        refresh_token: reply
            .refresh_token()
            .map(|t| SecretString::from(t.secret().to_owned())),
        expires_in: reply.expires_in(),
        scopes: reply
            .scopes()
            .map(|s| s.iter().map(|s| s.as_str().to_owned()).collect()),
        id_token: reply
            .extra_fields()
            .id_token
            .as_ref()
            .map(|t| SecretString::from(t.clone())),
    }
}

fn token_failure(
    e: RequestTokenError<HttpFailure, BasicErrorResponse>,
    refreshing: bool,
) -> OAuthFailure {
    match e {
        RequestTokenError::ServerResponse(e) => match e.error() {
            BasicErrorResponseType::InvalidGrant if refreshing => OAuthFailure::Revoked,
            other => OAuthFailure::Refused(other.as_ref().to_owned()),
        },
        RequestTokenError::Request(f) => f.into(),
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
            OAuthFailure::Unavailable("the token endpoint answered unreadably".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::HttpSettings;

    fn client(issuer: &str) -> OAuthClient {
        OAuthClient::new(
            OAuthConfig {
                authorize_url: "https://id.test/authorize".parse().unwrap(),
                token_url: "https://id.test/token".parse().unwrap(),
                revoke_url: None,
                issuer: issuer.into(),
                client_id: "convene".into(),
                client_secret: SecretString::from("s3cret"),
                redirect_uri: "https://convene.test/auth/google/callback".parse().unwrap(),
                client_auth: ClientAuth::Post,
            },
            ProviderHttp::new("test", HttpSettings::default()).unwrap(),
        )
    }

    fn jwt(claims: serde_json::Value) -> SecretString {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        SecretString::from(format!(
            "{}.{}.sig",
            b64(br#"{"alg":"RS256"}"#),
            b64(claims.to_string().as_bytes())
        ))
    }

    #[test]
    fn id_tokens_are_checked() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let c = client("https://id.test");
        let good = serde_json::json!({"iss":"https://id.test","sub":"1","aud":"convene",
            "exp":1_700_000_100,"nonce":"n1","email":"a@b.test","email_verified":"true","hd":"b.test"});
        let claims = c.check_id_token(&jwt(good.clone()), "n1", now).unwrap();
        assert_eq!(claims.email_verified, Some(true));
        assert_eq!(claims.hd.as_deref(), Some("b.test"));
        for (field, value) in [
            ("iss", serde_json::json!("https://evil.test")),
            ("aud", serde_json::json!(["other"])),
            ("exp", serde_json::json!(1_600_000_000)),
            ("nonce", serde_json::json!("n2")),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            assert!(
                matches!(
                    c.check_id_token(&jwt(bad), "n1", now),
                    Err(IdentityError::Refused(_))
                ),
                "{field}"
            );
        }
        assert!(
            c.check_id_token(&SecretString::from("x"), "n1", now)
                .is_err()
        );
    }

    #[test]
    fn tenant_issuers_and_callback_issuers() {
        let c = client("https://login.test/{tenantid}/v2.0");
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let token = jwt(
            serde_json::json!({"iss":"https://login.test/t1/v2.0","sub":"1",
            "aud":"convene","exp":1_700_000_100,"nonce":"n","tid":"t1"}),
        );
        assert!(c.check_id_token(&token, "n", now).is_ok());
        let foreign = jwt(
            serde_json::json!({"iss":"https://login.test/t2/v2.0","sub":"1",
            "aud":"convene","exp":1_700_000_100,"nonce":"n","tid":"t1"}),
        );
        assert!(c.check_id_token(&foreign, "n", now).is_err());
        assert!(
            c.check_callback_issuer(Some("https://login.test/t1/v2.0"))
                .is_ok()
        );
        assert!(
            c.check_callback_issuer(Some("https://evil.test/t1/v2.0"))
                .is_err()
        );
        assert!(c.check_callback_issuer(None).is_ok());
        let g = client("https://id.test");
        assert!(g.check_callback_issuer(Some("https://id.test")).is_ok());
        assert!(
            g.check_callback_issuer(Some("https://login.test/t1/v2.0"))
                .is_err()
        );
    }

    #[test]
    fn authorization_urls_carry_pkce_state_nonce_and_scopes() {
        let c = client("https://id.test");
        let url = c.authorization_url(
            &AuthorizationRequest {
                state: "st".into(),
                pkce_challenge: "ch".into(),
                nonce: "no".into(),
                scopes: vec![],
            },
            &["openid", "email"],
            &[("access_type", "offline")],
        );
        let url = Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st");
        assert_eq!(q["code_challenge"], "ch");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["nonce"], "no");
        assert_eq!(q["scope"], "openid email");
        assert_eq!(q["access_type"], "offline");
        assert_eq!(
            q["redirect_uri"],
            "https://convene.test/auth/google/callback"
        );
    }
}
