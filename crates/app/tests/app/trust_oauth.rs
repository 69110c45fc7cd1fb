//! Sign-in, attacked: every way a callback can lie (a state that is not this login's, a
//! code without its PKCE verifier, a code or state used twice, a response of another
//! provider or issuer) and every way `next` could lead off the site. Each refused
//! callback is a 4xx page, issues no session, clears the pending login and changes
//! nothing in the store. The last test runs the attacks that need a real provider
//! against node `oidc-provider` (tests/peers), which requires PKCE as Google does.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use convene::http::oauth::{LoginProviders, Logins, encode_query};
use convene_domain::consent::Provider;
use convene_testkit::fixtures::World;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use secrecy::SecretString;
use url::Url;

use super::harness::{SECRET, TestApp};
use super::trust_access::unchanged;
use super::web::{
    authorize, callback, cookie_value, issuer, query, set_cookie, set_cookies, spawn_web, start,
    test_logins, unescape, user_exists,
};

/// A callback that must be refused with `status`: a page, no session, the pending login
/// cleared, no redirect, and the store as it was. Returns the page.
async fn refused_callback(
    app: &TestApp,
    provider: &str,
    params: &str,
    jar: &[String],
    status: StatusCode,
    label: &str,
) -> String {
    let before = app.world.store.dump_text();
    let r = callback(app, provider, params, jar).await;
    unchanged(&before, &app.world.store.dump_text(), label);
    assert_eq!(r.status(), status, "{label}");
    assert!(r.headers().get(LOCATION).is_none(), "{label}: no redirect");
    let cookies = set_cookies(r.headers());
    assert!(
        set_cookie(&cookies, "convene_session").is_none(),
        "{label}: no session"
    );
    assert!(
        set_cookie(&cookies, "convene_login").is_some_and(|c| c.contains("Max-Age=0")),
        "{label}: the pending login is cleared: {cookies:?}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("Sign in"), "{label}: the sign-in page again");
    page
}

fn jar(cookie: &str) -> Vec<String> {
    vec![format!("convene_login={cookie}")]
}

#[tokio::test]
async fn a_state_that_is_not_this_logins_is_refused() {
    let app = spawn_web(World::new(), false).await;
    let victim = start(&app, "google", "/meetings").await;
    authorize(&app, "google", &victim, "ada@acme.test", "c1");
    let cookie = jar(&victim.cookie);
    let bad = StatusCode::BAD_REQUEST;
    for params in [
        "code=c1&state=forged".to_owned(),
        format!("code=c1&state={}x", victim.state),
        "code=c1".to_owned(),
        format!("state={}", victim.state),
        format!("error=access_denied&state={}", victim.state),
    ] {
        refused_callback(&app, "google", &params, &cookie, bad, &params).await;
    }
    // Login CSRF: the attacker's own genuine state and code, in the victim's browser.
    let attacker = start(&app, "google", "/meetings").await;
    authorize(&app, "google", &attacker, "mallory@acme.test", "mine");
    let params = format!("code=mine&state={}", attacker.state);
    let page = refused_callback(&app, "google", &params, &cookie, bad, "a foreign state").await;
    assert!(page.contains("state does not match"), "{page}");
    // The victim's state in another browser: no login cookie, a forged one, or one
    // sealed by another deployment.
    let params = format!("code=c1&state={}", victim.state);
    for (what, jar) in [
        ("no login cookie", vec![]),
        (
            "a forged login cookie",
            vec!["convene_login=AAAA".to_owned()],
        ),
    ] {
        refused_callback(&app, "google", &params, &jar, bad, what).await;
    }
    // A genuine pending login of another deployment (another key), with its own state.
    let other = World::new();
    let logins = test_logins(&other, None);
    let elsewhere = TestApp::spawn_custom(other, 64 * 1024, move |app, _| {
        app.logins = Logins::new(logins, b"another deployment's login secret, 32+");
    })
    .await;
    let foreign = start(&elsewhere, "google", "/meetings").await;
    authorize(&app, "google", &foreign, "ada@acme.test", "c-foreign");
    let params_foreign = format!("code=c-foreign&state={}", foreign.state);
    let what = "another deployment's login cookie";
    let jar_foreign = jar(&foreign.cookie);
    let page = refused_callback(&app, "google", &params_foreign, &jar_foreign, bad, what).await;
    assert!(page.contains("not started in this browser"), "{page}");
    // Too late: past ten minutes.
    app.world.clock.advance(jiff::SignedDuration::from_mins(11));
    let page = refused_callback(&app, "google", &params, &cookie, bad, "too late").await;
    assert!(page.contains("took too long"), "{page}");
    assert!(!user_exists(&app, "ada@acme.test").await);
    assert!(!user_exists(&app, "mallory@acme.test").await);
}

#[tokio::test]
async fn a_code_is_redeemed_only_with_the_pkce_verifier_of_its_own_login() {
    let app = spawn_web(World::new(), false).await;
    let mine = start(&app, "google", "/meetings").await;
    let theirs = start(&app, "google", "/meetings").await;
    // An attacker's code (issued to their login) injected into my browser's callback:
    // the app redeems it with my verifier, which the provider refuses.
    authorize(&app, "google", &theirs, "mallory@acme.test", "stolen");
    let params = format!("code=stolen&state={}", mine.state);
    refused_callback(
        &app,
        "google",
        &params,
        &jar(&mine.cookie),
        StatusCode::BAD_REQUEST,
        "a code of another login",
    )
    .await;
    // A pending login the browser wrote itself, naming the state but no verifier (or
    // its own): it is not sealed by this app, so it is no pending login at all.
    for pending in [
        serde_json::json!({"state": mine.state, "provider": "google", "nonce": mine.nonce,
            "next": "/meetings", "created_at": app.world.now().as_second()}),
        serde_json::json!({"state": mine.state, "provider": "google", "verifier": "",
            "nonce": mine.nonce, "next": "/meetings", "created_at": app.world.now().as_second()}),
    ] {
        let forged = URL_SAFE_NO_PAD.encode(
            [
                [0u8; 12].as_slice(),
                pending.to_string().as_bytes(),
                [0u8; 16].as_slice(),
            ]
            .concat(),
        );
        authorize(&app, "google", &mine, "ada@acme.test", "c-own");
        refused_callback(
            &app,
            "google",
            &format!("code=c-own&state={}", mine.state),
            &jar(&forged),
            StatusCode::BAD_REQUEST,
            &format!("a hand-written pending login {pending}"),
        )
        .await;
    }
    assert!(!user_exists(&app, "mallory@acme.test").await);
    assert!(!user_exists(&app, "ada@acme.test").await);
}

#[tokio::test]
async fn a_used_state_or_code_is_refused() {
    let app = spawn_web(World::new(), false).await;
    let s = start(&app, "google", "/meetings").await;
    authorize(&app, "google", &s, "ada@acme.test", "c1");
    let cookie = jar(&s.cookie);
    let params = format!("code=c1&state={}", s.state);
    let first = callback(&app, "google", &params, &cookie).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    // The same callback replayed (a captured cookie and URL).
    let bad = StatusCode::BAD_REQUEST;
    refused_callback(&app, "google", &params, &cookie, bad, "a replayed callback").await;
    // The used code in a fresh login: the provider exchanges a code once.
    let fresh = start(&app, "google", "/meetings").await;
    let params = format!("code=c1&state={}", fresh.state);
    let page = refused_callback(
        &app,
        "google",
        &params,
        &jar(&fresh.cookie),
        bad,
        "a used code",
    )
    .await;
    assert!(
        unescape(&page).contains("The provider refused this sign-in"),
        "{page}"
    );
}

#[tokio::test]
async fn a_callback_for_another_provider_or_issuer_is_refused() {
    let app = spawn_web(World::new(), false).await;
    let bad = StatusCode::BAD_REQUEST;
    // Started with Google, answered on Microsoft's callback (the mix-up attack), with a
    // code Microsoft would honour.
    let s = start(&app, "google", "/meetings").await;
    authorize(&app, "microsoft", &s, "ada@acme.test", "mix");
    authorize(&app, "google", &s, "ada@acme.test", "c1");
    let params = format!("code=mix&state={}", s.state);
    let what = "google's login on microsoft's route";
    let page = refused_callback(&app, "microsoft", &params, &jar(&s.cookie), bad, what).await;
    assert!(
        unescape(&page).contains("another provider's address"),
        "{page}"
    );

    // Started with Microsoft, and Google's response (its code, its issuer) delivered to
    // Microsoft's callback: the issuer gives it away; without the issuer, Microsoft does
    // not know Google's code.
    let iss = encode_query(&issuer(Provider::Google));
    for with_issuer in [true, false] {
        let s = start(&app, "microsoft", "/meetings").await;
        authorize(&app, "google", &s, "ada@acme.test", "google-code");
        let mut params = format!("code=google-code&state={}", s.state);
        if with_issuer {
            params.push_str(&format!("&iss={iss}"));
        }
        let page =
            refused_callback(&app, "microsoft", &params, &jar(&s.cookie), bad, &params).await;
        let why = if with_issuer {
            "another issuer"
        } else {
            "The provider refused this sign-in"
        };
        assert!(page.contains(why), "{params}: {page}");
    }

    // On Google's route, but the answer names Microsoft's issuer.
    let s = start(&app, "google", "/meetings").await;
    authorize(&app, "google", &s, "ada@acme.test", "c2");
    let iss = encode_query(&issuer(Provider::Microsoft));
    let params = format!("code=c2&state={}&iss={iss}", s.state);
    let what = "microsoft's issuer";
    let page = refused_callback(&app, "google", &params, &jar(&s.cookie), bad, what).await;
    assert!(page.contains("another issuer"), "{page}");
    assert!(!user_exists(&app, "ada@acme.test").await);

    // Providers not offered have no sign-in.
    for path in [
        "/auth/evil/login",
        "/auth/ics/login",
        "/auth/evil/callback?code=c&state=s",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

/// `next` values that try to leave the site, raw in the URL as a crafted link has them.
const RAW_ESCAPES: &[&str] = &[
    "//evil.test",
    "https://evil.test/",
    "/%5Cevil.test",
    "%2F%2Fevil.test",
    "/%09/evil.test",
    "evil.test",
    "javascript:alert(1)",
];

/// `next` values, as the server must read them (sent percent-encoded).
const DECODED: &[&str] = &[
    "//evil.test",
    "///evil.test",
    "/\\evil.test",
    "\\\\evil.test",
    "/\\/evil.test",
    "\\/evil.test",
    "https://evil.test/",
    "http:evil.test",
    "https:/evil.test",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.test",
    "/\t/evil.test",
    "/\n/evil.test",
    "/\r\n//evil.test",
    " //evil.test",
    "/ /evil.test",
    "/.//evil.test",
    "/..//evil.test",
    "/%2F%2Fevil.test",
    "/%5C%5Cevil.test",
    "/@evil.test",
    "/\u{3000}/evil.test",
    "/\u{FF0F}\u{FF0F}evil.test",
    "/\u{2028}/evil.test",
    "/x?then=//evil.test",
    "/#//evil.test",
    "/meetings?after=x",
];

#[tokio::test]
async fn next_never_leads_off_the_site() {
    let app = spawn_web(World::new(), false).await;
    let base = Url::parse(&app.base).unwrap();
    let on_site = |location: &str| {
        base.join(location)
            .is_ok_and(|u| u.origin() == base.origin())
    };
    let mut requests: Vec<String> = RAW_ESCAPES.iter().map(|r| (*r).to_owned()).collect();
    requests.extend(DECODED.iter().map(|d| encode_query(d)));
    let mut accepted = 0;
    for (i, raw) in requests.iter().enumerate() {
        let label = format!("next={raw}");
        let r = app
            .http
            .get(app.url(&format!("/auth/google/login?next={raw}")))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::BAD_REQUEST {
            assert!(r.headers().get(LOCATION).is_none(), "{label}");
            assert!(
                set_cookie(&set_cookies(r.headers()), "convene_login")
                    .is_none_or(|c| c.contains("Max-Age=0")),
                "{label}: no login started"
            );
        } else {
            // Accepted as a path of this site: after the whole dance, the browser lands here.
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{label}");
            let s = start(&app, "google", raw).await;
            let code = format!("c{i}");
            authorize(&app, "google", &s, "ada@acme.test", &code);
            let done = callback(
                &app,
                "google",
                &format!("code={code}&state={}", s.state),
                &jar(&s.cookie),
            )
            .await;
            assert_eq!(
                done.status(),
                StatusCode::SEE_OTHER,
                "{label}: {:?}",
                done.text().await
            );
            let location = String::from_utf8_lossy(done.headers()[LOCATION].as_bytes());
            // Plain ASCII, or each browser decodes the header its own way.
            assert!(location.is_ascii(), "{label}: Location {location:?}");
            assert!(on_site(&location), "{label} sent the browser to {location}");
            accepted += 1;
        }
        // The sign-in page never links to a login carrying an off-site `next`.
        let page = app
            .http
            .get(app.url(&format!("/signin?next={raw}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{label}");
        let html = unescape(&page.text().await.unwrap());
        for href in html
            .split("href=\"")
            .skip(1)
            .filter_map(|h| h.split('"').next())
        {
            if let Some(login) = href.strip_prefix("/auth/google/login?") {
                let next = query(&format!("http://x/?{login}"))["next"].clone();
                assert!(
                    on_site(&next) && next.starts_with('/') && !next.starts_with("//"),
                    "{label}: {href}"
                );
            }
        }
    }
    assert!(
        accepted >= 5,
        "the harmless paths were accepted ({accepted})"
    );
    let s = start(&app, "google", "/meetings%3Fafter%3Dx").await;
    authorize(&app, "google", &s, "ada@acme.test", "plain");
    let r = callback(
        &app,
        "google",
        &format!("code=plain&state={}", s.state),
        &jar(&s.cookie),
    )
    .await;
    assert_eq!(r.headers()[LOCATION], "/meetings?after=x");
}

// ------------------------------------------------------------ a real OpenID provider

/// node `oidc-provider`, stopped (by its own pid) when dropped.
struct OidcPeer {
    child: Child,
    issuer: String,
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The provider on a free port, redirecting to `redirect_uri`; `None` (test skipped)
/// when node or the package is not installed, unless `CONVENE_REQUIRE_PEERS=1`.
fn oidc_peer(redirect_uri: &str) -> Option<OidcPeer> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers");
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node || !dir.join("node_modules/oidc-provider").is_dir() {
        assert!(
            std::env::var("CONVENE_REQUIRE_PEERS").as_deref() != Ok("1"),
            "node oidc-provider missing and CONVENE_REQUIRE_PEERS=1"
        );
        eprintln!("skipped: node oidc-provider missing (run scripts/install-test-peers)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("node")
        .arg("oidc-provider.mjs")
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", redirect_uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    break issuer.trim().to_owned();
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("oidc-provider did not start");
            }
        }
    };
    // Keep reading: a closed pipe would end the provider at its next line of output.
    std::thread::spawn(move || lines.for_each(drop));
    Some(OidcPeer { child, issuer })
}

/// The app signing in with Google's real adapter, pointed at the peer.
async fn spawn_with_peer() -> Option<(TestApp, OidcPeer)> {
    let mut peer = None;
    let app = TestApp::spawn_custom(World::new(), 64 * 1024, |app, base| {
        let redirect = format!("{base}/auth/google/callback");
        peer = oidc_peer(&redirect);
        let Some(p) = &peer else { return };
        let mut c = convene_google::GoogleConfig::new(
            "convene".into(),
            SecretString::from("convene-secret"),
            Url::parse(&redirect).unwrap(),
        );
        c.oauth.authorize_url = format!("{}/auth", p.issuer).parse().unwrap();
        c.oauth.token_url = format!("{}/token", p.issuer).parse().unwrap();
        c.oauth.revoke_url = Some(format!("{}/token/revocation", p.issuer).parse().unwrap());
        c.oauth.issuer = p.issuer.clone();
        c.userinfo_url = format!("{}/me", p.issuer).parse().unwrap();
        // The provider dates its tokens by the real clock; the app keeps the world's.
        let clock: Arc<dyn convene_domain::ports::Clock> =
            Arc::new(convene::system::SystemClock::default());
        let google = Arc::new(convene_google::GoogleIdentity::new(&c, clock).unwrap());
        let check = google.clone();
        let logins = LoginProviders::new().with(
            google,
            Arc::new(move |iss: Option<&str>| check.check_callback_issuer(iss)),
        );
        app.logins = Logins::new(logins, SECRET);
    })
    .await;
    peer.map(|p| (app, p))
}

/// A login started at the app and answered by the provider: the callback URL the
/// provider sent the browser to (not yet followed), and the browser's login cookie.
struct Answered {
    callback: Url,
    cookie: String,
}

impl Answered {
    fn param(&self, name: &str) -> String {
        self.callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }
}

/// Starts a login at the app and signs `login` in at the provider through its pages, as
/// a browser would, up to the redirect to the app's callback.
async fn login_at_provider(app: &TestApp, login: &str) -> Answered {
    let r = app
        .http
        .get(app.url("/auth/google/login?next=/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_value(set_cookie(&set_cookies(r.headers()), "convene_login").unwrap());
    let start = Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
    let q = query(start.as_str());
    assert_eq!(q["code_challenge_method"], "S256", "Convene asks for PKCE");
    assert_eq!(q["code_challenge"].len(), 43);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies: Vec<(String, String)> = Vec::new();
    let mut next = (reqwest::Method::GET, start, None::<Vec<(&str, String)>>);
    for _ in 0..20 {
        let (method, url, form) = next;
        if url.as_str().starts_with(&app.url("/auth/google/callback")) {
            return Answered {
                callback: url,
                cookie,
            };
        }
        let jar = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = browser.request(method, url.clone()).header("cookie", jar);
        if let Some(form) = &form {
            request = request.form(form);
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                cookies.retain(|(name, _)| name != k.trim());
                cookies.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        if let Some(location) = response.headers().get(LOCATION) {
            next = (
                reqwest::Method::GET,
                url.join(location.to_str().unwrap()).unwrap(),
                None,
            );
            continue;
        }
        let status = response.status();
        let html = response.text().await.unwrap();
        assert!(status.is_success(), "{status} at {url}: {html}");
        let at = html.find("action=\"").expect("a form") + "action=\"".len();
        let action = html[at..].split('"').next().unwrap().replace("&amp;", "&");
        let fields = if html.contains("name=\"prompt\" value=\"login\"") {
            vec![
                ("prompt", "login".to_owned()),
                ("login", login.to_owned()),
                ("password", "any".to_owned()),
            ]
        } else {
            vec![("prompt", "consent".to_owned())]
        };
        next = (
            reqwest::Method::POST,
            url.join(&action).unwrap(),
            Some(fields),
        );
    }
    panic!("the provider never sent the browser back");
}

#[tokio::test]
async fn against_a_real_openid_provider_a_code_needs_its_own_verifier_and_works_once() {
    let Some((app, peer)) = spawn_with_peer().await else {
        return;
    };
    let bad = StatusCode::BAD_REQUEST;
    // The provider requires PKCE: a code redeemed without its verifier is refused, so
    // the refusals below are the verifier's doing.
    let naked = login_at_provider(&app, "alice").await;
    let r = reqwest::Client::new()
        .post(format!("{}/token", peer.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", naked.param("code").as_str()),
            ("redirect_uri", app.url("/auth/google/callback").as_str()),
            ("client_id", "convene"),
            ("client_secret", "convene-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let error: serde_json::Value = r.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant", "{error}");

    // A code the provider issued to one login, carried into another login's callback
    // (its state and cookie): redeemed with the wrong verifier, refused.
    let stolen = login_at_provider(&app, "mallory").await;
    let victim = login_at_provider(&app, "alice").await;
    let params = format!(
        "code={}&state={}&iss={}",
        encode_query(&stolen.param("code")),
        encode_query(&victim.param("state")),
        encode_query(&victim.param("iss")),
    );
    let page = refused_callback(
        &app,
        "google",
        &params,
        &jar(&victim.cookie),
        bad,
        "a stolen code",
    )
    .await;
    assert!(
        unescape(&page).contains("The provider refused this sign-in"),
        "{page}"
    );

    // The genuine answer signs in, once.
    let own = login_at_provider(&app, "alice").await;
    let params = own.callback.query().unwrap().to_owned();
    let r = callback(&app, "google", &params, &jar(&own.cookie)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert_eq!(r.headers()[LOCATION], "/settings");
    let session = cookie_value(set_cookie(&set_cookies(r.headers()), "convene_session").unwrap());
    let me: serde_json::Value = app
        .http
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("convene_session={session}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "alice@example.com");
    refused_callback(
        &app,
        "google",
        &params,
        &jar(&own.cookie),
        bad,
        "the answer replayed",
    )
    .await;
    // Replayed into a fresh login of the same browser, the used code is refused by the
    // provider itself.
    let fresh = login_at_provider(&app, "alice").await;
    let params = format!(
        "code={}&state={}&iss={}",
        encode_query(&own.param("code")),
        encode_query(&fresh.param("state")),
        encode_query(&fresh.param("iss")),
    );
    refused_callback(
        &app,
        "google",
        &params,
        &jar(&fresh.cookie),
        bad,
        "a used code",
    )
    .await;
}
