//! The product in a real browser: headless Chromium driven over WebDriver (fantoccini, a
//! `chromedriver` this test starts). An organizer signs in through a test OpenID provider,
//! asks for a meeting with an email guest through the form, the guest opens the link from
//! the email Convene sent, ticks a time and sends it, and the organizer sees the meeting
//! booked.
//!
//! Without Chromium and chromedriver (Debian's `chromium` and `chromium-driver`,
//! `scripts/install-test-peers`) the test prints `skipped: chromium missing`, unless
//! `CONVENE_REQUIRE_PEERS=1`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::Redirect;
use convene::config::WorkerConfig;
use convene::worker::Worker;
use convene_domain::access::SessionPolicy;
use convene_domain::consent::Scope;
use convene_domain::email::EmailAddress;
use convene_domain::service::{Ports, Scheduler};
use convene_domain::tenant::TenantKey;
use convene_email::{EmailConfig, Sender, TemplateComposer};
use convene_testkit::FakeIdentity;
use convene_testkit::fixtures::World;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt as _;

use super::harness::TestApp;
use super::web::{issuer, test_logins};

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The browser and its driver, when installed.
fn peers() -> Option<(PathBuf, PathBuf)> {
    let chromium = ["chromium", "chromium-browser"]
        .iter()
        .find_map(|n| on_path(n))?;
    let driver = on_path("chromedriver")?;
    Some((chromium, driver))
}

/// A `chromedriver` on a free port, stopped (by its own pid) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(binary: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let http = reqwest::Client::new();
    loop {
        if http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return driver;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.to_string_lossy(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=1024,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// The test OpenID provider's authorization endpoint: it authenticates a fixed person,
/// issues a code bound to the request's PKCE challenge and nonce, and sends the browser
/// back to the app's callback for that provider, with its issuer (RFC 9207).
#[derive(Clone)]
struct Idp {
    google: Arc<FakeIdentity>,
    app: String,
    email: String,
}

async fn authorize(
    State(idp): State<Idp>,
    UrlPath(provider): UrlPath<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Redirect {
    let code = format!("code-{}", &q["state"][..12]);
    let sign_in = convene_testkit::identity::sign_in(
        &idp.email,
        TenantKey::Local {
            slug: "acme".into(),
        },
        &[Scope::ReadFreeBusy, Scope::WriteEvents],
    );
    idp.google
        .register_code_with_nonce(&code, sign_in, &q["code_challenge"], &q["nonce"]);
    let iss =
        convene::http::oauth::encode_query(&issuer(convene_domain::consent::Provider::Google));
    let state = convene::http::oauth::encode_query(&q["state"]);
    Redirect::to(&format!(
        "{}/auth/{provider}/callback?code={code}&state={state}&iss={iss}",
        idp.app
    ))
}

/// Delivers the outbox as the worker does, with the app's own scheduler (real email
/// templates, real guest links).
async fn deliver(worker: &Worker) {
    while worker.tick().await.unwrap() > 0 {}
}

fn guest_link(text: &str, base: &str) -> String {
    let start = text
        .find(&format!("{base}/m/"))
        .expect("a guest link in the email");
    let rest = &text[start + base.len() + 3..];
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    format!("{base}/m/{token}")
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
}

async fn path(client: &Client) -> String {
    let url = client.current_url().await.unwrap();
    url.path().to_owned()
}

/// Waits for a navigation to land on `expected` (a click returns before the browser has
/// followed the redirects).
async fn wait_path(client: &Client, expected: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = path(client).await;
        if now == expected || std::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_create_a_meeting_vote_as_a_guest_and_see_it_booked() {
    let Some((chromium, chromedriver)) = peers() else {
        assert!(
            std::env::var("CONVENE_REQUIRE_PEERS").as_deref() != Ok("1"),
            "chromium missing and CONVENE_REQUIRE_PEERS=1"
        );
        eprintln!("skipped: chromium missing (run scripts/install-test-peers)");
        return;
    };
    tokio::time::timeout(Duration::from_secs(180), run(&chromium, &chromedriver))
        .await
        .expect("the browser test took over 3 minutes");
}

async fn run(chromium: &Path, chromedriver: &Path) {
    let world = World::new();
    let google = world.google_identity.clone();
    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp_base = format!("http://{}", idp_listener.local_addr().unwrap());
    let logins = test_logins(&world, Some(&idp_base));
    let mut scheduler = None;
    let app = TestApp::spawn_custom(world, 64 * 1024, |app, base| {
        app.logins =
            convene::http::oauth::Logins::new(logins, b"browser test login secret, 32+ bytes");
        app.base_url = base.to_owned();
        // The real email templates, so the guest's email carries a real, signed link.
        let sender = Sender {
            name: "Convene".into(),
            address: EmailAddress::parse("convene@convene.test").unwrap(),
        };
        let composer = TemplateComposer::new(
            EmailConfig::new(base, sender),
            app.guest_tokens.clone(),
            app.clock.clone(),
        )
        .unwrap();
        let ports = Ports {
            composer: Arc::new(composer),
            ..app.scheduler.ports().clone()
        };
        app.scheduler = Scheduler::new(ports, app.scheduler.policy().clone());
        scheduler = Some(app.scheduler.clone());
    })
    .await;
    let worker = Worker::new(
        scheduler.unwrap(),
        app.world.store.clone(),
        Arc::new(app.world.clock.clone()),
        SessionPolicy::default(),
        WorkerConfig::default(),
    );
    let idp = Idp {
        google,
        app: app.base.clone(),
        email: "ada@acme.test".into(),
    };
    let routes = axum::Router::new()
        .route("/{provider}/authorize", axum::routing::get(authorize))
        .with_state(idp);
    tokio::spawn(async move { axum::serve(idp_listener, routes).await });

    let driver = start_driver(chromedriver).await;
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, chromium, profile.path()).await;
    // The browser is closed even when the journey fails, so no Chromium outlives the test.
    let outcome = std::panic::AssertUnwindSafe(journey(&client, &app, &worker))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn journey(client: &Client, app: &TestApp, worker: &Worker) {
    // Signed out, "My meetings" leads to the sign-in page, then through the provider back.
    client.goto(&app.url("/meetings")).await.unwrap();
    assert_eq!(path(client).await, "/signin");
    wait_for(client, "a.button").await.click().await.unwrap();
    assert_eq!(
        wait_path(client, "/meetings").await,
        "/meetings",
        "back where the visit started, signed in"
    );
    wait_for(client, "nav").await;
    let body = client.source().await.unwrap();
    assert!(body.contains("My meetings") && body.contains("Sign out"));

    // A new meeting through the form.
    client
        .find(Locator::LinkText("New meeting"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(client, "#title")
        .await
        .send_keys("Roadmap review")
        .await
        .unwrap();
    let duration = wait_for(client, "#duration").await;
    duration.clear().await.unwrap();
    duration.send_keys("45").await.unwrap();
    wait_for(client, "#participants")
        .await
        .send_keys("Marie Curie <marie@guest.test>")
        .await
        .unwrap();
    wait_for(client, "main form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let state = wait_for(client, "#state").await;
    assert_eq!(
        state.attr("data-state").await.unwrap().as_deref(),
        Some("polling")
    );
    let meeting_page = client.current_url().await.unwrap();
    assert!(
        meeting_page.path().starts_with("/meetings/"),
        "{meeting_page}"
    );

    // The guest's one email, with the link to vote.
    deliver(worker).await;
    let emails = app
        .world
        .emails_to(&EmailAddress::parse("marie@guest.test").unwrap());
    assert_eq!(emails.len(), 1, "exactly one email for the guest");
    let link = guest_link(&emails[0].text, &app.base);

    // The guest ticks the first time and sends it. The zone is in the URL as the page's
    // zone form puts it, so the page's script has nothing to reload.
    client
        .goto(&format!("{link}?tz=Europe/Paris"))
        .await
        .unwrap();
    let label = wait_for(client, "label[for=p1]")
        .await
        .text()
        .await
        .unwrap();
    assert!(label.contains("CET"), "times in the guest's zone: {label}");
    wait_for(client, "input[name=p]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(client, "form[method=post] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(client, ".notice").await;
    let body = client.source().await.unwrap();
    assert!(
        body.contains("Booked for"),
        "the only required guest said yes: booked\n{body}"
    );

    // The organizer sees it booked, with the video link once the calendar event exists.
    deliver(worker).await;
    client.goto(meeting_page.as_str()).await.unwrap();
    let state = wait_for(client, "#state").await;
    assert_eq!(
        state.attr("data-state").await.unwrap().as_deref(),
        Some("booked")
    );
    assert!(state.text().await.unwrap().starts_with("Booked"));
    let body = client.source().await.unwrap();
    assert!(
        body.contains("Video call") && body.contains("Marie Curie"),
        "{body}"
    );
    assert_eq!(
        app.world.google.events().len(),
        1,
        "one event on the organizer's calendar"
    );

    // Signing out (a CSRF-protected form) ends the session.
    wait_for(client, "nav button.link")
        .await
        .click()
        .await
        .unwrap();
    // The meeting page has a notice too: wait for the navigation itself.
    assert_eq!(wait_path(client, "/signin").await, "/signin");
    wait_for(client, ".notice").await;
    client.goto(&app.url("/settings")).await.unwrap();
    assert_eq!(path(client).await, "/signin");
}
