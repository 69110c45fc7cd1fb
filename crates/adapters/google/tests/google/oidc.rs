//! The OAuth code flow end to end against a real OpenID provider: node `oidc-provider`
//! (tests/peers), with PKCE required and refresh tokens rotating. The Google adapter's
//! OAuth client is pointed at it. The provider's login and consent pages are driven with
//! plain HTTP requests, as a browser would.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use convene_domain::consent::Scope;
use convene_domain::ports::{AuthorizationRequest, IdentityError, IdentityProvider};
use convene_domain::tenant::TenantKey;
use convene_google::{GoogleConfig, GoogleIdentity};
use convene_http::testing::{Fixture, free_port, peer_present};
use convene_http::{HttpSettings, constant_url};
use convene_microsoft::{MicrosoftConfig, MicrosoftIdentity};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

const CALLBACK: &str = "http://127.0.0.1:1/auth/google/callback";

/// The node provider; stopped when dropped.
struct OidcProvider {
    child: Child,
    issuer: String,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../tests/peers")
}

fn node_ready() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    node && peers_dir().join("node_modules/oidc-provider").is_dir()
}

fn start_provider() -> Option<OidcProvider> {
    if !peer_present(
        "node oidc-provider (scripts/install-test-peers)",
        node_ready(),
    ) {
        return None;
    }
    let port = free_port();
    let mut child = Command::new("node")
        .arg("oidc-provider.mjs")
        .current_dir(peers_dir())
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", CALLBACK)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let issuer = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    break issuer.trim().to_owned();
                }
            }
            _ => {
                let _ = child.kill();
                panic!("oidc-provider did not start");
            }
        }
    };
    // Keep reading: a closed pipe would kill the provider at its next line of output.
    std::thread::spawn(move || lines.for_each(drop));
    Some(OidcProvider { child, issuer })
}

fn google_config(issuer: &str, expected_issuer: &str) -> GoogleConfig {
    let mut c = GoogleConfig::new(
        "convene".into(),
        SecretString::from("convene-secret"),
        constant_url(CALLBACK),
    );
    c.oauth.authorize_url = format!("{issuer}/auth").parse().unwrap();
    c.oauth.token_url = format!("{issuer}/token").parse().unwrap();
    c.oauth.revoke_url = Some(format!("{issuer}/token/revocation").parse().unwrap());
    c.oauth.issuer = expected_issuer.to_owned();
    c.userinfo_url = format!("{issuer}/me").parse().unwrap();
    c.http = HttpSettings {
        timeout: Duration::from_secs(10),
        ..HttpSettings::default()
    };
    c
}

/// What the callback received, and the secrets the app kept for it.
struct Callback {
    code: String,
    state: String,
    iss: Option<String>,
    verifier: SecretString,
    nonce: String,
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn form_action(html: &str) -> Option<String> {
    let start = html.find("action=\"")? + "action=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

/// Signs `login` in at the provider through its pages, as a browser: authorize →
/// login → consent → redirect to the callback.
async fn authorize(
    identity: &GoogleIdentity,
    issuer: &str,
    login: &str,
    n: u32,
    scopes: Vec<Scope>,
) -> Callback {
    let verifier = format!("verifier-{n}-0123456789abcdefghijklmnopqrstuvwxyz-0123456789");
    let state = format!("state-{n}");
    let nonce = format!("nonce-{n}");
    let start = identity.authorization_url(&AuthorizationRequest {
        state: state.clone(),
        pkce_challenge: challenge(&verifier),
        nonce: nonce.clone(),
        scopes,
    });
    let start = Url::parse(&start).unwrap();
    let params: BTreeMap<String, String> = start.query_pairs().into_owned().collect();
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["access_type"], "offline");
    assert_eq!(params["prompt"], "consent");

    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut next = Some((
        reqwest::Method::GET,
        start.to_string(),
        None::<Vec<(String, String)>>,
    ));
    for _ in 0..20 {
        let (method, url, form) = next.take().expect("a next step");
        if url.starts_with(CALLBACK) {
            let url = Url::parse(&url).unwrap();
            let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
            assert!(!q.contains_key("error"), "the provider refused: {q:?}");
            return Callback {
                code: q["code"].clone(),
                state: q["state"].clone(),
                iss: q.get("iss").cloned(),
                verifier: SecretString::from(verifier),
                nonce,
            };
        }
        let jar = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = browser.request(method, &url).header(COOKIE, jar);
        if let Some(form) = &form {
            request = request.form(form);
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                cookies.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let here = Url::parse(&url).unwrap();
        if let Some(location) = response.headers().get(LOCATION) {
            let target = here.join(location.to_str().unwrap()).unwrap();
            next = Some((reqwest::Method::GET, target.to_string(), None));
            continue;
        }
        let status = response.status();
        let html = response.text().await.unwrap();
        assert!(status.is_success(), "{status} at {url}: {html}");
        let action = here.join(&form_action(&html).expect("a form")).unwrap();
        let fields = if html.contains("name=\"prompt\" value=\"login\"") {
            vec![
                ("prompt".into(), "login".into()),
                ("login".into(), login.into()),
                ("password".into(), "any".into()),
            ]
        } else {
            vec![("prompt".into(), "consent".into())]
        };
        next = Some((reqwest::Method::POST, action.to_string(), Some(fields)));
    }
    panic!("the flow did not reach the callback at {issuer}");
}

#[tokio::test]
async fn the_code_flow_runs_end_to_end_against_a_real_openid_provider() {
    let Some(provider) = start_provider() else {
        return;
    };
    let issuer = provider.issuer.clone();
    let fx = Fixture::at("2026-03-01T00:00:00Z");
    let clock: Arc<dyn convene_domain::ports::Clock> = fx.clock.clone();
    // The provider's tokens are dated by the real clock.
    fx.clock.set(jiff::Timestamp::now());
    let google = GoogleIdentity::new(&google_config(&issuer, &issuer), clock.clone()).unwrap();
    let both = vec![Scope::ReadFreeBusy, Scope::WriteEvents];

    // PKCE is required: the wrong verifier is refused.
    let cb = authorize(&google, &issuer, "alice", 1, both.clone()).await;
    let wrong = SecretString::from("verifier-of-someone-else-0123456789abcdefghijklmnopqrstuvwxyz");
    assert!(matches!(
        google.exchange_code(&cb.code, &wrong, &cb.nonce).await,
        Err(IdentityError::Refused(_))
    ));

    // A response for another sign-in (another nonce) is refused.
    let cb = authorize(&google, &issuer, "alice", 2, both.clone()).await;
    assert!(matches!(
        google
            .exchange_code(&cb.code, &cb.verifier, "nonce-of-another-sign-in")
            .await,
        Err(IdentityError::Refused(_))
    ));

    // Mix-up defence: the callback's `iss` names this provider; another provider's
    // client refuses it, and a client expecting another issuer refuses its ID token.
    let cb = authorize(&google, &issuer, "alice", 3, both.clone()).await;
    assert_eq!(cb.state, "state-3");
    assert_eq!(cb.iss.as_deref(), Some(issuer.as_str()));
    assert!(google.check_callback_issuer(cb.iss.as_deref()).is_ok());
    let microsoft = MicrosoftIdentity::new(
        &MicrosoftConfig::new(
            "convene".into(),
            SecretString::from("convene-secret"),
            constant_url("http://127.0.0.1:1/auth/microsoft/callback"),
            "common",
        ),
        clock.clone(),
    )
    .unwrap();
    assert!(microsoft.check_callback_issuer(cb.iss.as_deref()).is_err());
    let other = GoogleIdentity::new(
        &google_config(&issuer, "https://accounts.google.com"),
        clock.clone(),
    )
    .unwrap();
    assert!(matches!(
        other.exchange_code(&cb.code, &cb.verifier, &cb.nonce).await,
        Err(IdentityError::Refused(_))
    ));

    // The real thing: a Workspace user granting both scopes.
    let cb = authorize(&google, &issuer, "alice", 4, both.clone()).await;
    let sign_in = google
        .exchange_code(&cb.code, &cb.verifier, &cb.nonce)
        .await
        .unwrap();
    assert_eq!(sign_in.identity.subject, "alice");
    assert_eq!(sign_in.identity.email.as_str(), "alice@example.com");
    assert_eq!(sign_in.identity.name.as_str(), "Alice Tester");
    assert_eq!(
        sign_in.identity.tenant,
        TenantKey::GoogleWorkspace {
            domain: "example.com".into()
        }
    );
    assert_eq!(sign_in.scopes, both);
    let first = sign_in.credentials.clone();
    assert!(!first.refresh_token.expose_secret().is_empty());
    assert!(first.access_expires_at.is_some());

    // Refresh rotates the refresh token; the old one is then refused, and its reuse
    // revokes the whole grant: consent revoked.
    let second = google.refresh(&first).await.unwrap();
    assert_ne!(
        second.refresh_token.expose_secret(),
        first.refresh_token.expose_secret(),
        "rotated"
    );
    let third = google.refresh(&second).await.unwrap();
    assert_ne!(
        third.refresh_token.expose_secret(),
        second.refresh_token.expose_secret()
    );
    assert_eq!(
        google.refresh(&first).await.unwrap_err(),
        IdentityError::ConsentRevoked
    );
    assert_eq!(
        google.refresh(&third).await.unwrap_err(),
        IdentityError::ConsentRevoked
    );

    // A consumer account asking to read only: a tenant of one, the read scope only.
    let cb = authorize(&google, &issuer, "bob", 5, vec![Scope::ReadFreeBusy]).await;
    let bob = google
        .exchange_code(&cb.code, &cb.verifier, &cb.nonce)
        .await
        .unwrap();
    assert_eq!(
        bob.identity.tenant,
        TenantKey::Personal {
            subject: "google:bob".into()
        }
    );
    assert_eq!(bob.scopes, vec![Scope::ReadFreeBusy]);

    // Revocation at the provider; revoking again still counts as success.
    google.revoke(&bob.credentials).await.unwrap();
    assert_eq!(
        google.refresh(&bob.credentials).await.unwrap_err(),
        IdentityError::ConsentRevoked
    );
    google.revoke(&bob.credentials).await.unwrap();
}
