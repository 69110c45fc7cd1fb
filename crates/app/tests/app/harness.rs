//! Spawning the real app on a free port.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use convene::http::oauth::{LoginProviders, Logins, no_issuer};
use convene::http::web::Csrf;
use convene::http::{Limits, router};
use convene::state::{App, Health};
use convene_domain::access::{ApiToken, BearerSecret, GuestTokens, SessionPolicy, TokenKind};
use convene_domain::meeting::{GuestPass, Meeting};
use convene_domain::people::User;
use convene_domain::ports::SessionStore;
use convene_testkit::fixtures::World;
use tokio::sync::watch;

struct AlwaysReady;

#[async_trait]
impl Health for AlwaysReady {
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The app over a testkit world.
pub(crate) struct TestApp {
    pub(crate) world: World,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) guest_tokens: GuestTokens,
    _shutdown: watch::Sender<bool>,
}

impl TestApp {
    pub(crate) async fn spawn(world: World) -> Self {
        Self::spawn_with(world, 64 * 1024).await
    }

    /// With `/admin` behind `gate`.
    pub(crate) async fn spawn_admin(world: World, gate: convene::http::admin::AdminGate) -> Self {
        Self::spawn_custom(world, 64 * 1024, move |app, _| app.admin = gate).await
    }

    pub(crate) async fn spawn_with(world: World, body_bytes: usize) -> Self {
        Self::spawn_custom(world, body_bytes, |_, _| {}).await
    }

    /// As [`TestApp::spawn_with`], letting `configure` change the app (it gets the app and
    /// the server's base URL) before it serves.
    pub(crate) async fn spawn_custom(
        world: World,
        body_bytes: usize,
        configure: impl FnOnce(&mut App, &str),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let secret = b"test guest link secret, 32+ bytes long";
        let guest_tokens = GuestTokens::new(secret).unwrap();
        let logins = LoginProviders::new()
            .with(world.google_identity.clone(), no_issuer())
            .with(world.microsoft_identity.clone(), no_issuer());
        let mut app = App {
            scheduler: world.scheduler.clone(),
            store: world.store.clone(),
            clock: Arc::new(world.clock.clone()),
            ids: Arc::new(world.ids.clone()),
            guest_tokens: guest_tokens.clone(),
            guest_link_grace: jiff::SignedDuration::from_hours(24 * 7),
            sessions: SessionPolicy::default(),
            base_url: "http://convene.test".into(),
            security_contact: "mailto:security@convene.test".into(),
            health: Arc::new(AlwaysReady),
            admin: convene::http::admin::AdminGate::default(),
            rate_limit: convene::http::RateLimit::per_minute(100_000),
            account_limit: convene::http::RateLimit::per_minute(100_000),
            logins: Logins::new(logins, secret),
            csrf: Csrf::new(secret),
            https: false,
        };
        configure(&mut app, &base);
        let routes = router(
            Arc::new(app),
            Limits {
                body_bytes,
                timeout: Duration::from_secs(10),
                https: false,
            },
        );
        let (tx, rx) = watch::channel(false);
        tokio::spawn(convene::serve(listener, routes, rx));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            world,
            base,
            http,
            guest_tokens,
            _shutdown: tx,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A personal API token for `user`, stored hashed.
    pub(crate) async fn token_for(&self, user: &User) -> String {
        let secret = BearerSecret::issue(
            TokenKind::Api,
            user.tenant,
            &[user.id.as_uuid().as_u128() as u8; 32],
        )
        .unwrap();
        let secret = BearerSecret::issue(
            TokenKind::Api,
            user.tenant,
            &[
                secret.hash().as_bytes().as_slice(),
                user.id.as_uuid().as_bytes().as_slice(),
            ]
            .concat(),
        )
        .unwrap();
        let token = ApiToken {
            id: self.world.new_id(),
            tenant: user.tenant,
            user: user.id,
            label: "tests".into(),
            token_hash: secret.hash(),
            created_at: self.world.now(),
            expires_at: None,
            revoked_at: None,
        };
        self.world.store.insert_api_token(&token).await.unwrap();
        secret.expose().to_owned()
    }

    /// The signed link token of a participant (what the guest's email carries).
    pub(crate) fn guest_token(&self, m: &Meeting, email_or_name: &str) -> String {
        let p = m
            .participants()
            .iter()
            .find(|p| {
                p.email
                    .as_ref()
                    .is_some_and(|e| e.as_str() == email_or_name)
                    || p.name.as_str() == email_or_name
            })
            .unwrap();
        self.guest_tokens.sign(&GuestPass {
            tenant: m.tenant(),
            meeting: m.id(),
            participant: p.id,
            expires_at: self.world.clock.now() + jiff::SignedDuration::from_hours(24 * 30),
        })
    }
}
