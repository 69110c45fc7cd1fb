//! Sign-in and the signed-in pages, over HTTP against the real router: the OAuth dance
//! (state, PKCE and nonce bound to the browser and the provider; the refusals it owes are
//! attacked in `trust_oauth`), the session cookie, logout, CSRF, and the pages themselves.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use convene::http::oauth::{LoginProviders, issuer_is, pkce_challenge};
use convene_domain::consent::{Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::ids::MeetingId;
use convene_domain::ports::{
    AuthorizationRequest, Credentials, GrantStore, IdentityError, IdentityProvider, MeetingStore,
    SignIn, UserStore,
};
use convene_domain::tenant::TenantKey;
use convene_testkit::FakeIdentity;
use convene_testkit::fixtures::World;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use secrecy::{ExposeSecret, SecretString};

use super::harness::TestApp;

/// A provider over the testkit's [`FakeIdentity`] that checks PKCE as a real one does: a
/// test registers each code against the S256 challenge the authorization request
/// carried, and the exchange presents the challenge of the verifier it was given. So a
/// code only works with the verifier of the login it was issued to. `authorize`, when
/// set, re-homes the authorization URL (the browser test serves its own).
pub(crate) struct PkceIdp {
    inner: Arc<FakeIdentity>,
    authorize: Option<String>,
}

impl PkceIdp {
    pub(crate) fn new(inner: Arc<FakeIdentity>, authorize: Option<String>) -> Self {
        Self { inner, authorize }
    }
}

#[async_trait]
impl IdentityProvider for PkceIdp {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    fn authorization_url(&self, request: &AuthorizationRequest) -> String {
        let url = self.inner.authorization_url(request);
        match (&self.authorize, url.split_once('?')) {
            (Some(base), Some((_, query))) => format!("{base}?{query}"),
            _ => url,
        }
    }

    async fn exchange_code(
        &self,
        code: &str,
        verifier: &SecretString,
        nonce: &str,
    ) -> Result<SignIn, IdentityError> {
        let challenge = SecretString::from(pkce_challenge(verifier.expose_secret()));
        self.inner.exchange_code(code, &challenge, nonce).await
    }

    async fn refresh(&self, credentials: &Credentials) -> Result<Credentials, IdentityError> {
        self.inner.refresh(credentials).await
    }

    async fn revoke(&self, credentials: &Credentials) -> Result<(), IdentityError> {
        self.inner.revoke(credentials).await
    }
}

/// The issuer the test providers claim.
pub(crate) fn issuer(provider: Provider) -> String {
    format!("https://id.example.test/{provider}")
}

/// The world's two fake providers behind [`PkceIdp`], each with its issuer check.
pub(crate) fn test_logins(world: &World, authorize: Option<&str>) -> LoginProviders {
    let google = PkceIdp::new(
        world.google_identity.clone(),
        authorize.map(|a| format!("{a}/google/authorize")),
    );
    let microsoft = PkceIdp::new(
        world.microsoft_identity.clone(),
        authorize.map(|a| format!("{a}/microsoft/authorize")),
    );
    LoginProviders::new()
        .with(Arc::new(google), issuer_is(issuer(Provider::Google)))
        .with(Arc::new(microsoft), issuer_is(issuer(Provider::Microsoft)))
}

pub(crate) async fn spawn_web(world: World, https: bool) -> TestApp {
    let logins = test_logins(&world, None);
    TestApp::spawn_custom(world, 64 * 1024, move |app, _| {
        app.logins =
            convene::http::oauth::Logins::new(logins, b"test login cookie secret, 32+ bytes");
        app.https = https;
    })
    .await
}

pub(crate) fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The `Set-Cookie` line of `name`.
pub(crate) fn set_cookie<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{name}=")))
        .map(String::as_str)
}

pub(crate) fn cookie_value(line: &str) -> String {
    line.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

pub(crate) fn query(url: &str) -> HashMap<String, String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs().into_owned().collect()
}

/// A login on its way: what the provider was sent and the browser's login cookie.
pub(crate) struct Started {
    pub(crate) state: String,
    pub(crate) challenge: String,
    pub(crate) nonce: String,
    pub(crate) cookie: String,
    pub(crate) location: String,
}

pub(crate) async fn start(app: &TestApp, provider: &str, next: &str) -> Started {
    let r = app
        .http
        .get(app.url(&format!("/auth/{provider}/login?next={next}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let cookies = set_cookies(r.headers());
    let cookie = cookie_value(set_cookie(&cookies, "convene_login").expect("a login cookie"));
    let q = query(&location);
    Started {
        state: q["state"].clone(),
        challenge: q["code_challenge"].clone(),
        nonce: q["nonce"].clone(),
        cookie,
        location,
    }
}

fn identity(world: &World, provider: &str) -> Arc<FakeIdentity> {
    match provider {
        "google" => world.google_identity.clone(),
        _ => world.microsoft_identity.clone(),
    }
}

/// The provider authenticates `email` for the login `s` and issues `code`.
pub(crate) fn authorize(app: &TestApp, provider: &str, s: &Started, email: &str, code: &str) {
    let sign_in = convene_testkit::identity::sign_in(
        email,
        TenantKey::Local {
            slug: "acme".into(),
        },
        &[Scope::ReadFreeBusy, Scope::WriteEvents],
    );
    identity(&app.world, provider).register_code_with_nonce(code, sign_in, &s.challenge, &s.nonce);
}

pub(crate) async fn callback(
    app: &TestApp,
    provider: &str,
    params: &str,
    cookies: &[String],
) -> reqwest::Response {
    let mut req = app
        .http
        .get(app.url(&format!("/auth/{provider}/callback?{params}")));
    if !cookies.is_empty() {
        req = req.header("cookie", cookies.join("; "));
    }
    req.send().await.unwrap()
}

/// Signs `email` in with Google; returns the session cookie's value.
async fn sign_in(app: &TestApp, email: &str) -> String {
    let s = start(app, "google", "/meetings").await;
    let code = format!("code-{}", s.state);
    authorize(app, "google", &s, email, &code);
    let r = callback(
        app,
        "google",
        &format!("code={code}&state={}", s.state),
        &[format!("convene_login={}", s.cookie)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    cookie_value(set_cookie(&set_cookies(r.headers()), "convene_session").unwrap())
}

fn session(cookie: &str) -> String {
    format!("convene_session={cookie}")
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .header("cookie", session(cookie))
        .send()
        .await
        .unwrap()
}

async fn html(app: &TestApp, path: &str, cookie: &str) -> String {
    let r = page(app, path, cookie).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("<script>") && !body.contains(" style="),
        "no inline script or style on {path}"
    );
    unescape(&body)
}

/// The page's text with minijinja's HTML escapes undone (it escapes `/` too).
pub(crate) fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn csrf_of(html: &str) -> String {
    let at =
        html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

async fn post<F: serde::Serialize + ?Sized>(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &F,
) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header("cookie", session(cookie))
        .form(form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn user_exists(app: &TestApp, email: &str) -> bool {
    app.world
        .store
        .user_by_email(app.world.tenant.id, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn the_oauth_dance_binds_state_pkce_and_nonce_and_issues_a_session() {
    let app = spawn_web(World::new(), false).await;
    let s = start(&app, "google", "/settings").await;
    assert!(
        s.location
            .starts_with("https://id.example.test/google/authorize?"),
        "{}",
        s.location
    );
    let q = query(&s.location);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(
        s.state.len() >= 43 && s.nonce.len() >= 32 && s.challenge.len() == 43,
        "{q:?}"
    );
    assert!(q["scope"].contains("calendar.freebusy"));

    // The pending login is a sealed cookie: no verifier, state or nonce readable in it.
    let r = app
        .http
        .get(app.url("/auth/google/login?next=/settings"))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(r.headers());
    let login = set_cookie(&cookies, "convene_login").unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/auth/", "Max-Age=600"] {
        assert!(login.contains(flag), "{login} lacks {flag}");
    }
    assert!(!login.contains("Secure"), "not over plain HTTP");
    assert!(!login.contains(&s.state) && !login.contains(&s.nonce));

    authorize(&app, "google", &s, "ada@acme.test", "c1");
    let good_iss = issuer(Provider::Google);
    let r = callback(
        &app,
        "google",
        &format!(
            "code=c1&state={}&iss={}",
            s.state,
            convene::http::oauth::encode_query(&good_iss)
        ),
        &[format!("convene_login={}", s.cookie)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/settings");
    let cookies = set_cookies(r.headers());
    let cleared = set_cookie(&cookies, "convene_login").unwrap();
    assert!(
        cleared.contains("Max-Age=0"),
        "the login cookie is used once: {cleared}"
    );
    let line = set_cookie(&cookies, "convene_session").unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(line.contains(flag), "{line} lacks {flag}");
    }
    assert!(!line.contains("Secure"));
    let cookie = cookie_value(line);
    assert!(cookie.starts_with("cvs_"));

    assert!(user_exists(&app, "ada@acme.test").await);
    let body = html(&app, "/settings", &cookie).await;
    assert!(
        body.contains("ada@acme.test") && body.contains("Google"),
        "{body}"
    );
    // The grant of the sign-in is connected (free/busy and events).
    assert!(body.contains("read free/busy, create events"), "{body}");
    // The JSON API accepts the same session.
    let r = app
        .http
        .get(app.url("/api/v1/me"))
        .header("cookie", session(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn over_https_cookies_are_secure() {
    let app = spawn_web(World::new(), true).await;
    let s = start(&app, "google", "/meetings").await;
    let r = app
        .http
        .get(app.url("/auth/google/login"))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie(&set_cookies(r.headers()), "convene_login")
            .unwrap()
            .contains("; Secure")
    );
    authorize(&app, "google", &s, "ada@acme.test", "c1");
    let r = callback(
        &app,
        "google",
        &format!("code=c1&state={}", s.state),
        &[format!("convene_login={}", s.cookie)],
    )
    .await;
    let cookies = set_cookies(r.headers());
    assert!(
        set_cookie(&cookies, "convene_session")
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn signing_in_again_rotates_the_session() {
    let app = spawn_web(World::new(), false).await;
    let old = sign_in(&app, "ada@acme.test").await;
    let s = start(&app, "google", "/meetings").await;
    authorize(&app, "google", &s, "ada@acme.test", "again");
    let r = callback(
        &app,
        "google",
        &format!("code=again&state={}", s.state),
        &[format!("convene_login={}", s.cookie), session(&old)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let new = cookie_value(set_cookie(&set_cookies(r.headers()), "convene_session").unwrap());
    assert_ne!(new, old);
    assert_eq!(
        page(&app, "/settings", &old).await.status(),
        StatusCode::SEE_OTHER,
        "the old session is gone"
    );
    assert_eq!(page(&app, "/settings", &new).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_ends_the_session() {
    let app = spawn_web(World::new(), false).await;
    let cookie = sign_in(&app, "ada@acme.test").await;
    let token = csrf_of(&html(&app, "/meetings", &cookie).await);
    let r = post(&app, "/auth/logout", &cookie, &[] as &[(&str, &str)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        page(&app, "/meetings", &cookie).await.status(),
        StatusCode::OK,
        "still signed in"
    );

    let r = post(&app, "/auth/logout", &cookie, &[("csrf", token.as_str())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookies(r.headers());
    let line = set_cookie(&cleared, "convene_session").unwrap();
    assert!(
        line.contains("Max-Age=0") && line.contains("HttpOnly"),
        "{line}"
    );
    let r = page(&app, "/meetings", &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/signin")
    );
    let r = app
        .http
        .get(app.url("/api/v1/me"))
        .header("cookie", session(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let world = World::new();
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let app = spawn_web(world, false).await;
    let cookie = sign_in(&app, "ada@acme.test").await;
    let other = sign_in(&app, "linus@acme.test").await;
    let ada = app
        .world
        .store
        .user_by_email(
            app.world.tenant.id,
            &EmailAddress::parse("ada@acme.test").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let token = csrf_of(&html(&app, "/settings", &cookie).await);
    let foreign = csrf_of(&html(&app, "/settings", &other).await);

    let settings = |csrf: Option<&str>| {
        let mut form: Vec<(String, String)> = [
            ("zone", "Asia/Tokyo"),
            ("hours_mon", "10:00-12:00"),
            ("buffer_before", "0"),
            ("buffer_after", "0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if let Some(c) = csrf {
            form.push(("csrf".into(), c.to_owned()));
        }
        form
    };
    for form in [
        settings(None),
        settings(Some("forged")),
        settings(Some(&foreign)),
    ] {
        let r = post(&app, "/settings", &cookie, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let after = app.world.store.user(ada.tenant, ada.id).await.unwrap();
    assert_eq!(after.zone.name(), "UTC", "nothing changed");

    let meeting = [
        ("title", "Roadmap"),
        ("duration", "30"),
        ("start", "2026-03-03"),
        ("end", "2026-03-06"),
        ("participants", "grace@acme.test"),
    ];
    let r = post(&app, "/meetings", &cookie, &meeting).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        app.world
            .store
            .meetings_organized_by(
                ada.tenant,
                ada.id,
                convene_domain::ports::Page {
                    after: None,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .is_empty()
    );

    // With the token, the same forms work.
    let mut form = meeting.to_vec();
    form.push(("csrf", token.as_str()));
    let r = post(&app, "/meetings", &cookie, &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let id: MeetingId = location
        .trim_start_matches("/meetings/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let m = app.world.store.meeting(ada.tenant, id).await.unwrap();
    assert!(m.participants().iter().any(|p| p.user() == Some(grace.id)));

    let r = post(
        &app,
        &format!("/meetings/{id}/cancel"),
        &cookie,
        &[] as &[(&str, &str)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.world
            .store
            .meeting(ada.tenant, id)
            .await
            .unwrap()
            .state()
            .name(),
        "booked",
        "not cancelled"
    );
    let r = post(
        &app,
        "/settings/delete",
        &cookie,
        &[("confirm", "ada@acme.test")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(user_exists(&app, "ada@acme.test").await);
    let r = post(
        &app,
        "/settings/grants/google/revoke",
        &cookie,
        &[] as &[(&str, &str)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        app.world
            .store
            .grants_of(ada.tenant, &[ada.id])
            .await
            .unwrap()
            .iter()
            .all(|g| g.is_active())
    );
}

#[tokio::test]
async fn unauthenticated_visits_go_to_sign_in_with_a_safe_next() {
    let app = spawn_web(World::new(), false).await;
    for (path, next) in [
        ("/meetings", "%2Fmeetings"),
        ("/meetings/new", "%2Fmeetings%2Fnew"),
        ("/settings?saved=1", "%2Fsettings%3Fsaved%3D1"),
        (
            "/meetings/0190c0de-0000-7000-8000-000000000000",
            "%2Fmeetings%2F0190c0de-0000-7000-8000-000000000000",
        ),
        ("/settings/export", "%2Fsettings%2Fexport"),
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            r.headers()[LOCATION],
            format!("/signin?next={next}"),
            "{path}"
        );
    }
    let r = app
        .http
        .post(app.url("/settings"))
        .form(&[("zone", "UTC")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/signin?next=%2Fmeetings");
    // An expired or forged session is the same as none.
    let r = page(&app, "/meetings", "cvs_00000000000000000000000000000000_00").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let r = app
        .http
        .get(app.url("/signin?next=/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = unescape(&r.text().await.unwrap());
    assert!(
        body.contains("href=\"/auth/google/login?next=%2Fsettings\""),
        "{body}"
    );
    assert!(body.contains("Sign in with Microsoft"));
    let body = unescape(
        &app.http
            .get(app.url("/signin?next=//evil.test"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        body.contains("next=%2Fmeetings") && !body.contains("evil"),
        "{body}"
    );
}

#[tokio::test]
async fn idle_sessions_expire() {
    let app = spawn_web(World::new(), false).await;
    let cookie = sign_in(&app, "ada@acme.test").await;
    assert_eq!(
        page(&app, "/meetings", &cookie).await.status(),
        StatusCode::OK
    );
    app.world.clock.advance(jiff::SignedDuration::from_hours(3));
    let r = page(&app, "/meetings", &cookie).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie(&set_cookies(r.headers()), "convene_session")
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn the_pages_work_for_a_signed_in_organizer() {
    let world = World::new();
    world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let other = world.other_tenant();
    let (stranger, _) = world.connected_user_in(&other, "eve@other.test", "UTC", Provider::Google);
    let foreign = world
        .scheduler
        .create_meeting(
            &world.requester(&stranger),
            world.a_meeting().with_email_guest("x@guest.test").build(),
        )
        .await
        .unwrap();
    let app = spawn_web(world, false).await;
    let cookie = sign_in(&app, "ada@acme.test").await;

    let body = html(&app, "/meetings", &cookie).await;
    assert!(
        body.contains("You have not asked for a meeting yet") && body.contains("Sign out"),
        "{body}"
    );
    let form = html(&app, "/meetings/new", &cookie).await;
    assert!(
        form.contains("<label for=\"participants\">") && form.contains("value=\"2026-03-03\""),
        "{form}"
    );
    let token = csrf_of(&form);

    // Settings: zone, hours, buffers; bad input re-renders with the error and saves nothing.
    let r = post(
        &app,
        "/settings",
        &cookie,
        &[
            ("csrf", token.as_str()),
            ("zone", "Europe/Paris"),
            ("hours_mon", "9-5"),
            ("buffer_before", "0"),
            ("buffer_after", "0"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Monday: `9-5` is not like 09:00-17:30")
    );
    let mut form: Vec<(String, String)> = [
        ("csrf", token.as_str()),
        ("zone", "Europe/Paris"),
        ("buffer_before", "10"),
        ("buffer_after", "5"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for day in ["mon", "tue", "wed", "thu", "fri"] {
        form.push((
            format!("hours_{day}"),
            "09:00-12:00, 13:00-17:30".to_owned(),
        ));
    }
    let r = post(&app, "/settings", &cookie, &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let body = html(&app, "/settings?saved=1", &cookie).await;
    assert!(
        body.contains("value=\"Europe/Paris\"")
            && body.contains("value=\"09:00-12:00, 13:00-17:30\""),
        "{body}"
    );
    assert!(body.contains("Your settings are saved"));

    // A meeting with a colleague, an email guest and an optional link guest.
    let r = post(
        &app,
        "/meetings",
        &cookie,
        &[
            ("csrf", token.as_str()),
            ("title", "Roadmap review"),
            ("duration", "45"),
            ("start", "2026-03-03"),
            ("end", "2026-03-06"),
            (
                "participants",
                "grace@acme.test\nMarie Curie <marie@guest.test>\nKim (optional)\n",
            ),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let body = html(&app, &location, &cookie).await;
    assert!(
        body.contains("Roadmap review") && body.contains("Your request is out"),
        "{body}"
    );
    assert!(
        body.contains("Europe/Paris")
            && body.contains("Marie Curie")
            && body.contains("link guest, optional"),
        "{body}"
    );
    assert!(
        body.contains("/m/"),
        "the link guest's link to share: {body}"
    );
    let proposal = body
        .split("name=\"proposal\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    // Bad meeting input re-renders the form with what was typed.
    let r = post(
        &app,
        "/meetings",
        &cookie,
        &[
            ("csrf", token.as_str()),
            ("title", "X"),
            ("duration", "45"),
            ("start", "2026-03-03"),
            ("end", "2026-03-06"),
            ("participants", "bad@"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("Line 1"));

    let list = html(&app, "/meetings", &cookie).await;
    assert!(
        list.contains("Roadmap review") && list.contains("Waiting for answers"),
        "{list}"
    );

    // The organizer books a proposal, then cancels.
    let path = location.split('?').next().unwrap().to_owned();
    let r = post(
        &app,
        &format!("{path}/book"),
        &cookie,
        &[("csrf", token.as_str()), ("proposal", &proposal)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.world.deliver_all().await;
    let body = html(&app, r.headers()[LOCATION].to_str().unwrap(), &cookie).await;
    assert!(
        body.contains("Booked") && body.contains("(booked)") && body.contains("https://"),
        "{body}"
    );
    let r = post(
        &app,
        &format!("{path}/reschedule"),
        &cookie,
        &[
            ("csrf", token.as_str()),
            ("start", "2026-03-09"),
            ("end", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(
        &app,
        &format!("{path}/cancel"),
        &cookie,
        &[("csrf", token.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(html(&app, &path, &cookie).await.contains("Cancelled"));

    // Another tenant's meeting is not found.
    let r = page(&app, &format!("/meetings/{}", foreign.id()), &cookie).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Export, revoke, delete.
    let r = page(&app, "/settings/export", &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let export: serde_json::Value = r.json().await.unwrap();
    assert_eq!(export["user"]["email"], "ada@acme.test");
    let r = post(
        &app,
        "/settings/grants/google/revoke",
        &cookie,
        &[("csrf", token.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let body = html(&app, "/settings?revoked=1", &cookie).await;
    assert!(
        body.contains("revoked") && body.contains("Connect your Google calendar"),
        "{body}"
    );
    let r = post(
        &app,
        "/settings/delete",
        &cookie,
        &[("csrf", token.as_str()), ("confirm", "someone@else.test")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(user_exists(&app, "ada@acme.test").await);
    let r = post(
        &app,
        "/settings/delete",
        &cookie,
        &[("csrf", token.as_str()), ("confirm", "ADA@acme.test")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        set_cookie(&set_cookies(r.headers()), "convene_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(!user_exists(&app, "ada@acme.test").await);
    assert_eq!(
        page(&app, "/meetings", &cookie).await.status(),
        StatusCode::SEE_OTHER
    );
}
