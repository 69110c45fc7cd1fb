//! Sign-in with an OAuth 2.0 / OpenID Connect provider, and the session cookie it leads to.
//!
//! - `GET /auth/{provider}/login?next=/path` starts a login: a fresh `state`, PKCE verifier
//!   (S256) and OpenID `nonce` are made and kept in a **pending login**, and the browser
//!   is sent to the provider's authorization URL.
//! - `GET /auth/{provider}/callback?code&state[&iss]` finishes it: the pending login must
//!   exist, match `state` (compared in constant time), name this route's provider (the
//!   mix-up defence of `docs/providers.md`), be under ten minutes old and unused; a
//!   callback `iss` must be the provider's issuer (the adapter's RFC 9207 check); `next`
//!   must be a same-site path. Only then is the code exchanged, on that provider alone,
//!   with the verifier and nonce; the user is signed in with [`Scheduler::sign_in`], and a
//!   new session is issued (any session the browser carried is deleted: rotation).
//! - `POST /auth/logout` (with the session's CSRF token) ends the session.
//!
//! **Where the pending login lives.** In a cookie, `convene_login`, sealed with
//! AES-256-GCM under a key derived from the app secret (`keys.guest_links`): its content
//! (the PKCE verifier among it) is unreadable and unforgeable by the browser, it is bound
//! to the browser that started the login (another browser cannot present it), `HttpOnly`,
//! `SameSite=Lax`, `Path=/auth/`, `Max-Age` of ten minutes, `Secure` over HTTPS, and it is
//! cleared by the callback. This keeps the app stateless (any process may answer the
//! callback). A used `state` is also remembered by the process for its lifetime of ten
//! minutes, so a replayed cookie and callback are refused outright here, and in any other
//! process by the provider, which exchanges a code only once.
//!
//! [`Scheduler::sign_in`]: convene_domain::service::Scheduler::sign_in

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use convene_domain::access::{BearerSecret, Session, TokenKind};
use convene_domain::consent::{Provider, Scope};
use convene_domain::ids::{TenantId, UserId};
use convene_domain::ports::{AuthorizationRequest, Identities, IdentityError, IdentityProvider};
use convene_domain::time::{SignedDuration, Timestamp};
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::SESSION_COOKIE;
use super::pages::message;
use super::problem::Problem;
use super::web::problem_page;
use crate::state::AppState;
use crate::system::random_bytes;

/// The cookie holding the sealed pending login.
pub const LOGIN_COOKIE: &str = "convene_login";
/// How long a login may take, from leaving for the provider to coming back.
pub const LOGIN_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// Where a signed-in user lands when no `next` was asked for.
pub const DEFAULT_NEXT: &str = "/meetings";

/// A key for one purpose, derived from the app secret: HMAC-SHA256(secret, label), so
/// that the login cookie, CSRF tokens and guest links never share a key.
pub fn derive_key(secret: &[u8], label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Checks the `iss` parameter of a provider's callback (RFC 9207).
pub type IssuerCheck = Arc<dyn Fn(Option<&str>) -> Result<(), IdentityError> + Send + Sync>;

/// An issuer check accepting exactly `expected` (or no `iss` at all).
pub fn issuer_is(expected: impl Into<String>) -> IssuerCheck {
    let expected = expected.into();
    Arc::new(move |iss| match iss {
        None => Ok(()),
        Some(iss) if iss == expected => Ok(()),
        Some(_) => Err(IdentityError::Refused(
            "the authorization response comes from another issuer".into(),
        )),
    })
}

/// For a provider that does not send `iss`: a callback carrying one is refused, since it
/// cannot be this provider's.
pub fn no_issuer() -> IssuerCheck {
    Arc::new(|iss| match iss {
        None => Ok(()),
        Some(_) => Err(IdentityError::Refused(
            "this provider does not send an issuer".into(),
        )),
    })
}

/// A provider people sign in with: its adapter and its callback issuer check.
#[derive(Clone)]
pub struct LoginProvider {
    identity: Arc<dyn IdentityProvider>,
    issuer: IssuerCheck,
}

impl fmt::Debug for LoginProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginProvider")
            .field("provider", &self.identity.provider())
            .finish_non_exhaustive()
    }
}

impl LoginProvider {
    /// Checks a callback's `iss` (RFC 9207): `Ok` when absent or this provider's.
    pub fn check_issuer(&self, iss: Option<&str>) -> Result<(), IdentityError> {
        (self.issuer)(iss)
    }
}

/// The providers offered on the sign-in page, each with its issuer check.
#[derive(Clone, Debug, Default)]
pub struct LoginProviders(Vec<LoginProvider>);

impl LoginProviders {
    /// None: nobody can sign in.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the provider of `identity`.
    pub fn with(mut self, identity: Arc<dyn IdentityProvider>, issuer: IssuerCheck) -> Self {
        self.0
            .retain(|p| p.identity.provider() != identity.provider());
        self.0.push(LoginProvider { identity, issuer });
        self
    }

    /// The providers of `identities` (Google and Microsoft), without an issuer to check:
    /// a callback carrying `iss` is refused.
    pub fn from_identities(identities: &Identities) -> Self {
        [Provider::Google, Provider::Microsoft]
            .into_iter()
            .filter_map(|p| identities.get(p).cloned())
            .fold(Self::new(), |all, identity| all.with(identity, no_issuer()))
    }

    /// The provider's entry, if people may sign in with it.
    pub fn get(&self, provider: Provider) -> Option<&LoginProvider> {
        self.0.iter().find(|p| p.identity.provider() == provider)
    }

    /// The providers offered, Google first.
    pub fn offered(&self) -> Vec<Provider> {
        Provider::ALL
            .into_iter()
            .filter(|p| self.get(*p).is_some())
            .collect()
    }

    /// The same adapters as the domain's [`Identities`] (for refresh and revocation).
    pub fn identities(&self) -> Identities {
        self.0
            .iter()
            .fold(Identities::new(), |all, p| all.with(p.identity.clone()))
    }
}

/// A login on its way to the provider and back. Sealed into [`LOGIN_COOKIE`].
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    /// The `state` sent to the provider.
    state: String,
    /// Which provider the login was started for.
    provider: String,
    /// The PKCE verifier (secret).
    verifier: String,
    /// The OpenID nonce.
    nonce: String,
    /// Where to go once signed in (a same-site path).
    next: String,
    /// When the login started (Unix seconds).
    created_at: i64,
}

const SEAL_AAD: &[u8] = b"convene pending login v1";

/// Sign-in: the providers, the sealing of pending logins, and the states already used.
pub struct Logins {
    providers: LoginProviders,
    cipher: Aes256Gcm,
    used: Mutex<HashMap<[u8; 32], Timestamp>>,
}

impl fmt::Debug for Logins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logins")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Logins {
    /// Sign-in through `providers`; pending logins are sealed under a key derived from
    /// `secret` (the app secret: the same in every process).
    pub fn new(providers: LoginProviders, secret: &[u8]) -> Self {
        let key = derive_key(secret, "convene/login-cookie/aes-256-gcm");
        Self {
            providers,
            cipher: Aes256Gcm::new(&key.into()),
            used: Mutex::new(HashMap::new()),
        }
    }

    /// The providers offered.
    pub fn providers(&self) -> &LoginProviders {
        &self.providers
    }

    fn seal(&self, login: &PendingLogin) -> Option<String> {
        let json = serde_json::to_vec(login).ok()?;
        let nonce = random_bytes::<12>();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &json,
                    aad: SEAL_AAD,
                },
            )
            .ok()?;
        Some(URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat()))
    }

    fn open(&self, cookie: &str) -> Option<PendingLogin> {
        if cookie.len() > 4096 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cookie).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let json = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: SEAL_AAD,
                },
            )
            .ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// Records `state` as used; `false` when it already was (a replay).
    fn first_use(&self, state: &str, now: Timestamp) -> bool {
        let key: [u8; 32] = Sha256::digest(state.as_bytes()).into();
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.retain(|_, at| now < *at + LOGIN_LIFETIME);
        used.insert(key, now).is_none()
    }
}

/// `next` if it is a path on this site: one leading `/`, not `//` (another host), no
/// backslash (browsers read `/\` as `//`), no whitespace or control characters (browsers
/// drop tabs and newlines from URLs), ASCII only (it becomes a `Location` header, which
/// clients would decode as they please; paths this site links to are percent-encoded),
/// at most 1 KiB. Anything else is refused.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 1024
        && next.is_ascii()
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

/// `value`, percent-encoded for a query string.
pub fn encode_query(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Secure` when served over HTTPS.
/// An empty `value` with `max_age` 0 clears the cookie.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    https: bool,
) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    // Every part is ours: cookie values are base64url or hex, names and paths constants.
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("convene_invalid=; Max-Age=0"))
}

fn clear_login_cookie(https: bool) -> HeaderValue {
    set_cookie(LOGIN_COOKIE, "", "/auth/", 0, https)
}

/// Clears the session cookie.
pub(crate) fn clear_session_cookie(https: bool) -> HeaderValue {
    set_cookie(SESSION_COOKIE, "", "/", 0, https)
}

fn random_text<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn login_provider(app: &AppState, raw: &str) -> Option<(Provider, LoginProvider)> {
    let provider: Provider = raw.parse().ok()?;
    app.logins
        .providers()
        .get(provider)
        .map(|p| (provider, p.clone()))
}

/// The sign-in page again, with why the attempt failed.
fn refused(app: &AppState, status: StatusCode, why: &str) -> Response {
    let mut r = super::web::signin_page(app, DEFAULT_NEXT, Some(why));
    *r.status_mut() = status;
    r.headers_mut()
        .append(header::SET_COOKIE, clear_login_cookie(app.https));
    r
}

/// Query of the login route.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /auth/{provider}/login`: seals a pending login into a cookie and sends the
/// browser to the provider.
pub async fn login(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let Some((provider, entry)) = login_provider(&app, &provider) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "Signing in with this provider is not available here.",
        );
    };
    let Ok(Query(q)) = query else {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "The sign-in link is malformed.",
        );
    };
    let next = match q.next.as_deref() {
        None | Some("") => DEFAULT_NEXT,
        Some(n) => match safe_next(n) {
            Some(n) => n,
            None => {
                return refused(
                    &app,
                    StatusCode::BAD_REQUEST,
                    "That sign-in link leads away from Convene; it was refused.",
                );
            }
        },
    };
    let pending = PendingLogin {
        state: random_text::<32>(),
        provider: provider.as_str().to_owned(),
        verifier: random_text::<32>(),
        nonce: random_text::<24>(),
        next: next.to_owned(),
        created_at: app.clock.now().as_second(),
    };
    let Some(sealed) = app.logins.seal(&pending) else {
        return problem_page(Problem::internal());
    };
    let url = entry.identity.authorization_url(&AuthorizationRequest {
        state: pending.state.clone(),
        pkce_challenge: pkce_challenge(&pending.verifier),
        nonce: pending.nonce.clone(),
        scopes: vec![Scope::ReadFreeBusy, Scope::WriteEvents],
    });
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &sealed,
        "/auth/",
        LOGIN_LIFETIME.as_secs(),
        app.https,
    );
    (
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Redirect::to(&url),
    )
        .into_response()
}

/// Query of the callback route, as providers send it.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

fn same(a: &str, b: &str) -> bool {
    // Constant time over the hashes: timing tells nothing about the expected state.
    let (a, b): ([u8; 32], [u8; 32]) = (
        Sha256::digest(a.as_bytes()).into(),
        Sha256::digest(b.as_bytes()).into(),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// `GET /auth/{provider}/callback`: checks everything the pending login binds, exchanges
/// the code, signs the user in and issues a new session.
pub async fn callback(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
    request: Request,
) -> Response {
    let Some((provider, entry)) = login_provider(&app, &provider) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "Signing in with this provider is not available here.",
        );
    };
    let Ok(Query(q)) = query else {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "The provider's answer is malformed.",
        );
    };
    let (parts, _) = request.into_parts();
    if q.error.is_some() {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "Sign-in was cancelled or refused at the provider.",
        );
    }
    let Some(pending) = cookie(&parts.headers, LOGIN_COOKIE).and_then(|c| app.logins.open(c))
    else {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or it expired. Please start again.",
        );
    };
    let now = app.clock.now();
    let (Some(code), Some(state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "The provider's answer lacks its code or state.",
        );
    };
    if !same(state, &pending.state) {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "The sign-in state does not match. Please start again.",
        );
    }
    if pending.provider != provider.as_str() {
        tracing::warn!(route = provider.as_str(), started = %pending.provider, "sign-in callback on another provider's route");
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "This answer comes to another provider's address than the sign-in was started for.",
        );
    }
    let started = Timestamp::from_second(pending.created_at).unwrap_or(Timestamp::UNIX_EPOCH);
    if now >= started + LOGIN_LIFETIME || now < started - SignedDuration::from_mins(1) {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "This sign-in took too long. Please start again.",
        );
    }
    if !app.logins.first_use(&pending.state, now) {
        tracing::warn!(provider = provider.as_str(), "sign-in state replayed");
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "This sign-in was already used. Please start again.",
        );
    }
    if entry.check_issuer(q.iss.as_deref()).is_err() {
        tracing::warn!(
            provider = provider.as_str(),
            "sign-in callback from a foreign issuer"
        );
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "The answer comes from another issuer than this provider.",
        );
    }
    let Some(next) = safe_next(&pending.next).map(str::to_owned) else {
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "That sign-in link leads away from Convene; it was refused.",
        );
    };
    let verifier = SecretString::from(pending.verifier);
    let sign_in = match entry
        .identity
        .exchange_code(code, &verifier, &pending.nonce)
        .await
    {
        Ok(s) => s,
        Err(IdentityError::Unavailable(_)) => {
            return refused(
                &app,
                StatusCode::BAD_GATEWAY,
                "The provider is not answering. Please try again in a moment.",
            );
        }
        Err(e) => {
            tracing::warn!(provider = provider.as_str(), error = %e, "sign-in refused");
            return refused(
                &app,
                StatusCode::BAD_REQUEST,
                "The provider refused this sign-in. Please start again.",
            );
        }
    };
    let source = super::auth::client_ip(&parts);
    let user = match app.scheduler.sign_in(provider, sign_in, source).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(provider = provider.as_str(), error = %e, "sign-in failed");
            return problem_page(e.into());
        }
    };
    if let Err(e) = end_session(&app, &parts.headers).await {
        return problem_page(e);
    }
    let secret = match start_session(&app, user.tenant, user.id, now).await {
        Ok(s) => s,
        Err(e) => return problem_page(e),
    };
    let session_cookie = set_cookie(
        SESSION_COOKIE,
        &secret,
        "/",
        app.sessions.absolute.as_secs(),
        app.https,
    );
    tracing::info!(provider = provider.as_str(), user = %user.id, "signed in");
    (
        AppendHeaders([
            (header::SET_COOKIE, clear_login_cookie(app.https)),
            (header::SET_COOKIE, session_cookie),
        ]),
        Redirect::to(&next),
    )
        .into_response()
}

/// Issues a new session; returns the cookie's secret (its hash alone is stored).
pub(crate) async fn start_session(
    app: &AppState,
    tenant: TenantId,
    user: UserId,
    now: Timestamp,
) -> Result<String, Problem> {
    let secret = BearerSecret::issue(TokenKind::Session, tenant, &random_bytes::<32>())
        .ok_or_else(Problem::internal)?;
    let session = Session {
        id: app.ids.new_id(),
        tenant,
        user,
        token_hash: secret.hash(),
        created_at: now,
        last_seen_at: now,
    };
    app.store.insert_session(&session).await?;
    Ok(secret.expose().to_owned())
}

/// The session the request's cookie names, whatever its age.
pub(crate) async fn presented_session(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, Problem> {
    let Some(secret) = cookie(headers, SESSION_COOKIE)
        .and_then(|raw| BearerSecret::parse(TokenKind::Session, raw))
    else {
        return Ok(None);
    };
    Ok(app.store.session(secret.tenant(), &secret.hash()).await?)
}

/// Deletes the session the request carries, if any (rotation on sign-in).
async fn end_session(app: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    if let Some(old) = presented_session(app, headers).await? {
        app.store.delete_session(old.tenant, old.id).await?;
    }
    Ok(())
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /auth/logout`: checks the CSRF token, deletes the session, clears the cookie.
pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let session = match presented_session(&app, &headers).await {
        Ok(s) => s,
        Err(e) => return problem_page(e),
    };
    if let Some(session) = session {
        let presented = form.as_ref().ok().map(|Form(f)| f.csrf.as_str());
        if !app.csrf.check(&session, presented) {
            return super::web::csrf_refused();
        }
        if let Err(e) = app.store.delete_session(session.tenant, session.id).await {
            return problem_page(e.into());
        }
        tracing::info!(user = %session.user, "signed out");
    }
    (
        AppendHeaders([(header::SET_COOKIE, clear_session_cookie(app.https))]),
        Redirect::to("/signin?signed_out=1"),
    )
        .into_response()
}

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/{provider}/login", get(login))
        .route("/auth/{provider}/callback", get(callback))
        .route("/auth/logout", post(logout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_this_site() {
        for good in ["/", "/meetings", "/meetings/0190?x=1#a", "/%2F%2Fevil.test"] {
            assert_eq!(safe_next(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "meetings",
            "//evil.test",
            "///evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "https://evil.test",
            "javascript:alert(1)",
            "/\t/evil.test",
            "/\n/evil.test",
            "/ /x",
            " /x",
            "/\u{FF0F}\u{FF0F}evil.test",
            "/caf\u{E9}",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(2000))), None);
    }

    #[test]
    fn pending_logins_are_sealed_and_bound_to_the_key() {
        let logins = Logins::new(
            LoginProviders::new(),
            b"a secret of at least thirty-two bytes!!",
        );
        let p = PendingLogin {
            state: "st".into(),
            provider: "google".into(),
            verifier: "the-verifier".into(),
            nonce: "n".into(),
            next: "/x".into(),
            created_at: 1,
        };
        let sealed = logins.seal(&p).unwrap();
        assert!(!sealed.contains("the-verifier"));
        let back = logins.open(&sealed).unwrap();
        assert_eq!(
            (
                back.state.as_str(),
                back.verifier.as_str(),
                back.next.as_str()
            ),
            ("st", "the-verifier", "/x")
        );
        let other = Logins::new(
            LoginProviders::new(),
            b"another secret of thirty-two bytes!!!!",
        );
        assert!(other.open(&sealed).is_none());
        let mut tampered = sealed.into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert!(logins.open(&String::from_utf8(tampered).unwrap()).is_none());
        assert!(logins.open("junk").is_none());
    }

    #[test]
    fn a_state_is_used_once() {
        let logins = Logins::new(
            LoginProviders::new(),
            b"a secret of at least thirty-two bytes!!",
        );
        let now = Timestamp::UNIX_EPOCH;
        assert!(logins.first_use("s1", now));
        assert!(!logins.first_use("s1", now));
        assert!(logins.first_use("s2", now));
    }

    #[test]
    fn pkce_challenge_is_rfc7636_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn issuer_checks() {
        let check = issuer_is("https://id.test");
        assert!(check(None).is_ok() && check(Some("https://id.test")).is_ok());
        assert!(check(Some("https://evil.test")).is_err());
        assert!(no_issuer()(Some("https://id.test")).is_err());
    }
}
