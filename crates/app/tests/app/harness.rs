//! Spawning the real app on a free port.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use convene::http::oauth::{LoginProviders, Logins, no_issuer};
use convene::http::web::Csrf;
use convene::http::{Limits, router};
use convene::state::{App, Health};
use convene_domain::access::{
    ApiToken, BearerSecret, GuestTokens, Session, SessionPolicy, TokenKind,
};
use convene_domain::meeting::{GuestPass, Meeting};
use convene_domain::people::User;
use convene_domain::ports::{GrantStore, Page, SessionStore, Store, TenantStore, UserStore};
use convene_domain::service::{Scheduler, SchedulingPolicy};
use convene_domain::time::Timestamp;
use convene_testkit::fixtures::World;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::watch;

/// The app secret of the test app: guest links, CSRF tokens and login cookies derive
/// their keys from it.
pub(crate) const SECRET: &[u8] = b"test guest link secret, 32+ bytes long";

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
    /// The use cases the app serves (the world's, unless `configure` replaced them).
    pub(crate) scheduler: Scheduler,
    /// The store the app serves (the world's, unless `configure` replaced it).
    pub(crate) store: Arc<dyn Store>,
    _shutdown: watch::Sender<bool>,
}

/// A signed-in browser: its `Cookie` header and its forms' CSRF token.
pub(crate) struct Browser {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
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
        let secret = SECRET;
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
        let (scheduler, store) = (app.scheduler.clone(), app.store.clone());
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
            scheduler,
            store,
            _shutdown: tx,
        }
    }

    /// The app over `store` (a real database) instead of the world's memory store, with
    /// the world's providers, mailer and clock around it, and `/admin` behind `gate`.
    pub(crate) async fn spawn_on(
        world: World,
        store: Arc<dyn Store>,
        gate: convene::http::admin::AdminGate,
    ) -> Self {
        let mut ports = world.scheduler.ports().clone();
        ports.store = store.clone();
        let scheduler = Scheduler::new(ports, SchedulingPolicy::default());
        Self::spawn_custom(world, 64 * 1024, move |app, _| {
            app.scheduler = scheduler;
            app.store = store;
            app.admin = gate;
        })
        .await
    }

    /// Runs the real worker over the served store until the outbox has nothing due.
    pub(crate) async fn drain(&self) {
        let worker = convene::worker::Worker::new(
            self.scheduler.clone(),
            self.store.clone(),
            Arc::new(self.world.clock.clone()),
            SessionPolicy::default(),
            convene::config::WorkerConfig::default(),
        );
        while worker.tick().await.unwrap() > 0 {}
    }

    /// An API token of `user` in the served store, expiring or revoked as asked.
    pub(crate) async fn token_with(
        &self,
        user: &User,
        expires_at: Option<Timestamp>,
        revoked_at: Option<Timestamp>,
    ) -> String {
        let random = [self.world.new_id::<uuid::Uuid>(), self.world.new_id()]
            .map(|id| *id.as_bytes())
            .concat();
        let secret = BearerSecret::issue(TokenKind::Api, user.tenant, &random).unwrap();
        let token = ApiToken {
            id: self.world.new_id(),
            tenant: user.tenant,
            user: user.id,
            label: "tests".into(),
            token_hash: secret.hash(),
            created_at: self.world.now(),
            expires_at,
            revoked_at,
        };
        self.store.insert_api_token(&token).await.unwrap();
        secret.expose().to_owned()
    }

    /// A session of `user` in the served store, as signing in issues it, with its forms'
    /// CSRF token (under the default CSRF key of [`SECRET`]).
    pub(crate) async fn session_for(&self, user: &User) -> Browser {
        let random = [self.world.new_id::<uuid::Uuid>(), self.world.new_id()]
            .map(|id| *id.as_bytes())
            .concat();
        let secret = BearerSecret::issue(TokenKind::Session, user.tenant, &random).unwrap();
        let session = Session {
            id: self.world.new_id(),
            tenant: user.tenant,
            user: user.id,
            token_hash: secret.hash(),
            created_at: self.world.now(),
            last_seen_at: self.world.now(),
        };
        self.store.insert_session(&session).await.unwrap();
        Browser {
            cookie: format!(
                "{}={}",
                convene::http::auth::SESSION_COOKIE,
                secret.expose()
            ),
            csrf: Csrf::new(SECRET).token(&session),
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

/// Asserts `r` is an RFC 9457 problem document of `status` (with `WWW-Authenticate` on a
/// 401), and returns it.
pub(crate) async fn problem(r: reqwest::Response, status: StatusCode) -> Value {
    let what = format!("{} {}", r.status(), r.url().path());
    assert_eq!(r.status(), status, "{what}");
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{what}");
    }
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{what}: {body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")),
        "{what}: {body}"
    );
    body
}

/// A SQLite store in `dir` holding the world's tenants, users, grants and credentials.
pub(crate) async fn sqlite_copy_of(world: &World, dir: &std::path::Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("convene.db").display());
    let sqlite = convene_sqlite::SqliteStore::connect(&url, test_ring())
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    copy_world(world, &sqlite).await;
    Arc::new(sqlite)
}

/// A PostgreSQL store on `url` (migrated here) holding the world's tenants, users,
/// grants and credentials.
pub(crate) async fn postgres_copy_of(world: &World, url: &str) -> Arc<dyn Store> {
    let pg = convene_postgres::PgStore::connect(url, test_ring())
        .await
        .unwrap();
    pg.migrate().await.unwrap();
    copy_world(world, &pg).await;
    Arc::new(pg)
}

fn test_ring() -> convene_crypto::KeyRing {
    convene_crypto::KeyRing::parse(
        &convene_crypto::KeyRing::generate_key_text("t").unwrap(),
        "t",
    )
    .unwrap()
}

/// Copies the world's tenants, users, grants and credentials into `to`.
async fn copy_world(world: &World, to: &dyn Store) {
    let from = &world.store;
    for id in from.tenant_ids().await.unwrap() {
        to.insert_tenant(&from.tenant(id).await.unwrap())
            .await
            .unwrap();
        let everyone = Page {
            after: None,
            limit: 1000,
        };
        let users = from.list_users(id, everyone).await.unwrap();
        for u in &users {
            to.insert_user(u).await.unwrap();
        }
        let ids: Vec<_> = users.iter().map(|u| u.id).collect();
        for grant in from.grants_of(id, &ids).await.unwrap() {
            to.save_grant(&grant, &[]).await.unwrap();
            if let Some(c) = from.credentials(id, grant.id()).await.unwrap() {
                to.put_credentials(id, grant.id(), &c).await.unwrap();
            }
        }
    }
}

/// A database of its own on the `DATABASE_URL` server, dropped afterwards.
pub(crate) struct ScratchDatabase {
    admin_url: String,
    name: String,
    /// Its URL.
    pub(crate) url: String,
}

impl ScratchDatabase {
    pub(crate) async fn create(admin_url: &str, label: &str) -> Self {
        let name = format!("convene_{label}_{}", uuid::Uuid::now_v7().simple());
        let mut admin = <sqlx::postgres::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .expect("DATABASE_URL connects");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let mut url = url::Url::parse(admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }

    pub(crate) async fn drop_it(self) {
        let mut admin =
            <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&self.admin_url)
                .await
                .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}
