//! [`FakeIdentity`]: an OAuth 2.0 / OpenID Connect provider in memory.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use convene_domain::consent::{Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::people::PersonName;
use convene_domain::ports::{
    AuthorizationRequest, Clock, Credentials, IdentityError, IdentityProvider, ProviderIdentity,
    SignIn,
};
use convene_domain::tenant::TenantKey;
use convene_domain::time::SignedDuration;
use secrecy::{ExposeSecret, SecretString};

use crate::lock;

/// How long the fake's access tokens live.
pub const ACCESS_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_hours(1);

struct Code {
    sign_in: SignIn,
    verifier: String,
    nonce: Option<String>,
    used: bool,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    revoked: HashSet<String>,
    revocations: Vec<String>,
    rotate: bool,
    issued: u64,
    refreshes: usize,
    fail_next: Option<IdentityError>,
    clock: Option<Arc<dyn Clock>>,
}

/// An [`IdentityProvider`] that knows the codes a test registered.
///
/// `exchange_code` returns the registered [`SignIn`] once, and only with the right PKCE
/// verifier (and nonce, when one was registered); `refresh` answers `ConsentRevoked` for
/// a refresh token revoked at the provider (or rotated away); `revoke` records the token.
/// Secrets are never printed by `Debug`.
pub struct FakeIdentity {
    provider: Provider,
    state: Mutex<State>,
}

impl fmt::Debug for FakeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("FakeIdentity")
            .field("provider", &self.provider)
            .field("codes", &s.codes.len())
            .field("revocations", &s.revocations.len())
            .field("rotate", &s.rotate)
            .finish_non_exhaustive()
    }
}

impl FakeIdentity {
    /// A fake of `provider` that knows no code yet.
    pub fn new(provider: Provider) -> Self {
        Self {
            provider,
            state: Mutex::new(State::default()),
        }
    }

    /// Access tokens expire an hour after `clock`'s now (without a clock they carry no
    /// expiry).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        lock(&self.state).clock = Some(clock);
        self
    }

    /// Refresh rotates the refresh token: the new one comes back and the old one is
    /// refused afterwards (as Microsoft and Google do for some clients).
    pub fn with_rotation(self, rotate: bool) -> Self {
        lock(&self.state).rotate = rotate;
        self
    }

    /// A code the provider will exchange once for `sign_in`, with `verifier` as the PKCE
    /// verifier.
    pub fn register_code(&self, code: &str, sign_in: SignIn, verifier: &str) {
        self.insert_code(code, sign_in, verifier, None);
    }

    /// As [`FakeIdentity::register_code`], also requiring `nonce`.
    pub fn register_code_with_nonce(
        &self,
        code: &str,
        sign_in: SignIn,
        verifier: &str,
        nonce: &str,
    ) {
        self.insert_code(code, sign_in, verifier, Some(nonce.to_owned()));
    }

    fn insert_code(&self, code: &str, sign_in: SignIn, verifier: &str, nonce: Option<String>) {
        lock(&self.state).codes.insert(
            code.to_owned(),
            Code {
                sign_in,
                verifier: verifier.to_owned(),
                nonce,
                used: false,
            },
        );
    }

    /// The user (or their IT) revoked the grant at the provider: refreshing with this
    /// token now answers `ConsentRevoked`.
    pub fn revoke_at_provider(&self, refresh_token: &str) {
        lock(&self.state).revoked.insert(refresh_token.to_owned());
    }

    /// Every refresh token passed to a successful `revoke`, in order (repeats included).
    pub fn revocations(&self) -> Vec<String> {
        lock(&self.state).revocations.clone()
    }

    /// How many refreshes succeeded.
    pub fn refreshes(&self) -> usize {
        lock(&self.state).refreshes
    }

    /// The next call fails with `error`.
    pub fn fail_next(&self, error: IdentityError) {
        lock(&self.state).fail_next = Some(error);
    }

    fn fail(&self) -> Result<std::sync::MutexGuard<'_, State>, IdentityError> {
        let mut s = lock(&self.state);
        match s.fail_next.take() {
            Some(e) => Err(e),
            None => Ok(s),
        }
    }
}

/// A sign-in as a provider would return it: subject `sub-<email>`, the email's local
/// part as name, tokens `refresh-<email>` and `access-<email>`.
///
/// # Panics
/// When `email` is not a valid address (a test's literal).
pub fn sign_in(email: &str, tenant: TenantKey, scopes: &[Scope]) -> SignIn {
    let address = EmailAddress::parse(email).expect("a valid email literal");
    let local = address
        .as_str()
        .split('@')
        .next()
        .unwrap_or("someone")
        .to_owned();
    SignIn {
        identity: ProviderIdentity {
            subject: format!("sub-{address}"),
            email: address.clone(),
            name: PersonName::parse(&local).expect("a local part is a valid name"),
            tenant,
            tenant_admin: false,
        },
        scopes: scopes.to_vec(),
        credentials: Credentials {
            refresh_token: SecretString::from(format!("refresh-{address}")),
            access_token: Some(SecretString::from(format!("access-{address}"))),
            access_expires_at: None,
        },
    }
}

fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::ReadFreeBusy => "calendar.freebusy",
        Scope::WriteEvents => "calendar.events",
    }
}

#[async_trait]
impl IdentityProvider for FakeIdentity {
    fn provider(&self) -> Provider {
        self.provider
    }

    fn authorization_url(&self, request: &AuthorizationRequest) -> String {
        let scopes: Vec<&str> = ["openid", "email", "profile"]
            .into_iter()
            .chain(request.scopes.iter().map(|s| scope_name(*s)))
            .collect();
        format!(
            "https://id.example.test/{provider}/authorize?response_type=code&client_id=convene-test\
             &redirect_uri={redirect}&scope={scope}&state={state}&code_challenge={challenge}\
             &code_challenge_method=S256&nonce={nonce}",
            provider = self.provider,
            redirect = encode(&format!(
                "https://convene.test/auth/{}/callback",
                self.provider
            )),
            scope = encode(&scopes.join(" ")),
            state = encode(&request.state),
            challenge = encode(&request.pkce_challenge),
            nonce = encode(&request.nonce),
        )
    }

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &str,
    ) -> Result<SignIn, IdentityError> {
        let mut s = self.fail()?;
        let Some(entry) = s.codes.get_mut(code) else {
            return Err(IdentityError::Refused("invalid_grant: unknown code".into()));
        };
        if entry.used {
            return Err(IdentityError::Refused(
                "invalid_grant: code already used".into(),
            ));
        }
        if entry.verifier != pkce_verifier.expose_secret() {
            return Err(IdentityError::Refused(
                "invalid_grant: PKCE verification failed".into(),
            ));
        }
        if entry.nonce.as_deref().is_some_and(|n| n != nonce) {
            return Err(IdentityError::Refused(
                "the ID token's nonce does not match".into(),
            ));
        }
        entry.used = true;
        let mut sign_in = entry.sign_in.clone();
        if let Some(clock) = &s.clock {
            sign_in.credentials.access_expires_at = Some(clock.now() + ACCESS_TOKEN_LIFETIME);
        }
        Ok(sign_in)
    }

    async fn refresh(&self, credentials: &Credentials) -> Result<Credentials, IdentityError> {
        let mut s = self.fail()?;
        let token = credentials.refresh_token.expose_secret();
        if s.revoked.contains(token) {
            return Err(IdentityError::ConsentRevoked);
        }
        s.issued += 1;
        s.refreshes += 1;
        let n = s.issued;
        let refresh_token = if s.rotate {
            s.revoked.insert(token.to_owned());
            SecretString::from(format!("{token}~{n}"))
        } else {
            credentials.refresh_token.clone()
        };
        Ok(Credentials {
            refresh_token,
            access_token: Some(SecretString::from(format!("access-{n}"))),
            access_expires_at: s.clock.as_ref().map(|c| c.now() + ACCESS_TOKEN_LIFETIME),
        })
    }

    async fn revoke(&self, credentials: &Credentials) -> Result<(), IdentityError> {
        let mut s = self.fail()?;
        let token = credentials.refresh_token.expose_secret().to_owned();
        s.revoked.insert(token.clone());
        s.revocations.push(token);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn verifier(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[tokio::test]
    async fn codes_are_exchanged_once_with_the_right_verifier() {
        let idp = FakeIdentity::new(Provider::Google)
            .with_clock(Arc::new(ManualClock::at("2026-03-02T08:00:00Z")));
        let tenant = TenantKey::GoogleWorkspace {
            domain: "acme.test".into(),
        };
        idp.register_code(
            "c1",
            sign_in("ada@acme.test", tenant, &[Scope::ReadFreeBusy]),
            "v1",
        );
        assert!(matches!(
            idp.exchange_code("c1", &verifier("wrong"), "n").await,
            Err(IdentityError::Refused(_))
        ));
        let ok = idp.exchange_code("c1", &verifier("v1"), "n").await.unwrap();
        assert_eq!(ok.identity.email.as_str(), "ada@acme.test");
        assert_eq!(
            ok.credentials.access_expires_at.unwrap().to_string(),
            "2026-03-02T09:00:00Z"
        );
        assert!(matches!(
            idp.exchange_code("c1", &verifier("v1"), "n").await,
            Err(IdentityError::Refused(_))
        ));
        assert!(matches!(
            idp.exchange_code("nope", &verifier("v1"), "n").await,
            Err(IdentityError::Refused(_))
        ));
        assert!(!format!("{idp:?}").contains("refresh-"));
    }

    #[tokio::test]
    async fn revoked_or_rotated_tokens_are_refused() {
        let idp = FakeIdentity::new(Provider::Microsoft).with_rotation(true);
        let creds = sign_in(
            "bo@acme.test",
            TenantKey::Microsoft { tid: "t".into() },
            &[],
        )
        .credentials;
        let fresh = idp.refresh(&creds).await.unwrap();
        assert_ne!(
            fresh.refresh_token.expose_secret(),
            creds.refresh_token.expose_secret()
        );
        assert_eq!(
            idp.refresh(&creds).await.unwrap_err(),
            IdentityError::ConsentRevoked
        );
        idp.revoke_at_provider(fresh.refresh_token.expose_secret());
        assert_eq!(
            idp.refresh(&fresh).await.unwrap_err(),
            IdentityError::ConsentRevoked
        );
        idp.revoke(&fresh).await.unwrap();
        idp.revoke(&fresh).await.unwrap();
        assert_eq!(idp.revocations().len(), 2);
        idp.fail_next(IdentityError::Unavailable("503".into()));
        assert!(matches!(
            idp.revoke(&fresh).await,
            Err(IdentityError::Unavailable(_))
        ));
        assert_eq!(idp.refreshes(), 1);
    }

    #[test]
    fn authorization_url_carries_the_request() {
        let idp = FakeIdentity::new(Provider::Google);
        let url = idp.authorization_url(&AuthorizationRequest {
            state: "st/1".into(),
            pkce_challenge: "ch".into(),
            nonce: "no".into(),
            scopes: vec![Scope::ReadFreeBusy],
        });
        assert!(url.contains("state=st%2F1"), "{url}");
        assert!(
            url.contains("code_challenge=ch&code_challenge_method=S256"),
            "{url}"
        );
        assert!(url.contains("nonce=no"), "{url}");
        assert!(url.contains("calendar.freebusy"), "{url}");
    }
}
