//! Wiring: which adapter implements each port, chosen by configuration. This is the one
//! place that knows every adapter; the rest of the app sees ports.

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use convene_crypto::KeyRing;
use convene_domain::access::{GuestTokens, SessionPolicy};
use convene_domain::email::EmailAddress;
use convene_domain::ids::MessageId;
use convene_domain::outbox::{AnalyticsEvent, DeliveryError};
use convene_domain::ports::{
    Analytics, Calendars, Clock, GrantStore, IdGenerator, Identities, Mailer, OutgoingEmail, Store,
    StoreError,
};
use convene_domain::service::{Ports, Scheduler, SchedulingPolicy};
use convene_email::{EmailConfig, Sender, TemplateComposer};
use secrecy::ExposeSecret;

use crate::config::{Config, MailBackend as MailChoice};
use crate::http::oauth::{LoginProviders, Logins};
use crate::http::web::Csrf;
use crate::state::{App, AppState, Health};
use crate::system::{SystemClock, UuidV7, random_bytes};
use crate::worker::Worker;

/// The database, SQLite or PostgreSQL, chosen by `database_url`.
#[derive(Clone, Debug)]
pub enum Database {
    /// The embedded default.
    Sqlite(Arc<convene_sqlite::SqliteStore>),
    /// Production.
    Postgres(Arc<convene_postgres::PgStore>),
}

impl Database {
    /// Connects to `config`'s database (`database_url`, [`Config::database_connections`]).
    pub async fn connect(config: &Config, keys: KeyRing) -> anyhow::Result<Self> {
        Self::open_sized(&config.database_url, keys, config.database_connections()).await
    }

    /// Connects to the database at `url` with the default pool size.
    pub async fn open(url: &str, keys: KeyRing) -> anyhow::Result<Self> {
        Self::open_sized(url, keys, convene_postgres::DEFAULT_CONNECTIONS).await
    }

    /// Connects to the database at `url`, keeping at most `connections` connections to
    /// PostgreSQL.
    pub async fn open_sized(url: &str, keys: KeyRing, connections: u32) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let store = convene_sqlite::SqliteStore::connect(url, keys)
                .await
                .context("opening the SQLite database")?;
            Ok(Self::Sqlite(Arc::new(store)))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = url.parse().context("reading the PostgreSQL URL")?;
            let store = convene_postgres::PgStore::connect_sized(options, keys, connections)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Self::Postgres(Arc::new(store)))
        } else {
            anyhow::bail!("database_url must start with sqlite: or postgres:")
        }
    }

    /// Every store port.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    /// Applies the embedded migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(s) => s.migrate().await.context("migrating SQLite"),
            Self::Postgres(s) => s.migrate().await.context("migrating PostgreSQL"),
        }
    }

    /// Re-encrypts every credential under the current key; returns how many rows changed.
    pub async fn rotate_keys(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.rotate_keys().await,
            Self::Postgres(s) => s.rotate_keys().await,
        }
    }
}

/// How long `/readyz` waits for the database. Unbounded, a database that is down would
/// hold each probe for the pool's whole wait for a connection (5 s on PostgreSQL): the
/// probe must get its 503 sooner than an orchestrator gives up on it.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[async_trait]
impl Health for Database {
    async fn ready(&self) -> Result<(), String> {
        let ping = async {
            match self {
                Self::Sqlite(s) => s.ping().await,
                Self::Postgres(s) => s.ping().await,
            }
        };
        match tokio::time::timeout(READY_TIMEOUT, ping).await {
            Ok(result) => result.map_err(|e| format!("database not ready: {e}")),
            Err(_) => Err(format!(
                "database not ready: no answer within {} s",
                READY_TIMEOUT.as_secs()
            )),
        }
    }
}

/// The mail backends: a closed set, so an enum rather than a trait per backend.
#[derive(Debug)]
pub enum MailBackend {
    /// `.eml` files in a folder.
    File(convene_smtp::FileMailer),
    /// An SMTP server.
    Smtp(convene_smtp::SmtpMailer),
    /// Customer.io's transactional API.
    CustomerIo(convene_customerio::CustomerIoMailer),
}

#[async_trait]
impl Mailer for MailBackend {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), DeliveryError> {
        match self {
            Self::File(m) => m.send(email).await,
            Self::Smtp(m) => m.send(email).await,
            Self::CustomerIo(m) => m.send(email).await,
        }
    }
}

/// Analytics switched off: use cases write no events, and any queued before are
/// acknowledged and dropped.
#[derive(Debug, Default)]
pub struct NoAnalytics;

#[async_trait]
impl Analytics for NoAnalytics {
    fn records(&self) -> bool {
        false
    }

    async fn record(
        &self,
        events: &[(MessageId, AnalyticsEvent)],
    ) -> Vec<Result<(), DeliveryError>> {
        events.iter().map(|_| Ok(())).collect()
    }
}

/// The analytics receiver the configuration asks for.
pub fn analytics(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn Analytics>> {
    use crate::config::{AnalyticsBackend, AnalyticsIdentity};
    let a = &config.analytics;
    Ok(match a.backend {
        AnalyticsBackend::None => Arc::new(NoAnalytics),
        AnalyticsBackend::Amplitude => {
            let key = a
                .amplitude_key
                .clone()
                .context("analytics.amplitude_key is required for amplitude")?;
            let identity = match a.identity {
                AnalyticsIdentity::Pseudonymous => convene_amplitude::Identity::Pseudonymous {
                    secret: a
                        .pseudonym_secret
                        .clone()
                        .context("analytics.pseudonym_secret is required")?,
                },
                AnalyticsIdentity::EmailAndName => {
                    convene_amplitude::Identity::EmailAndName { users: store }
                }
            };
            let amp =
                convene_amplitude::AmplitudeConfig::new(a.amplitude_url.clone(), key, identity);
            Arc::new(convene_amplitude::AmplitudeAnalytics::new(amp, clock).context("amplitude")?)
        }
    })
}

/// The sender emails come from.
pub fn sender(config: &Config) -> anyhow::Result<Sender> {
    Ok(Sender {
        name: config.mail.from_name.clone(),
        address: EmailAddress::parse(&config.mail.from_address).context("mail.from_address")?,
    })
}

/// The mail backend the configuration asks for.
pub fn mailer(config: &Config) -> anyhow::Result<MailBackend> {
    let from = sender(config)?;
    Ok(match config.mail.backend {
        MailChoice::File => {
            MailBackend::File(convene_smtp::FileMailer::new(&config.mail.dir, from))
        }
        MailChoice::Smtp => {
            let url = config
                .mail
                .smtp_url
                .as_deref()
                .context("mail.smtp_url is required for the smtp backend")?;
            let (security, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
                (convene_smtp::SmtpSecurity::ImplicitTls, rest)
            } else if let Some(rest) = url.strip_prefix("smtp://") {
                (convene_smtp::SmtpSecurity::StartTls, rest)
            } else {
                anyhow::bail!("mail.smtp_url must start with smtp:// or smtps://");
            };
            let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.parse().context("mail.smtp_url port")?)),
                None => (rest.trim_end_matches('/').to_owned(), None),
            };
            let mut smtp = convene_smtp::SmtpConfig::new(host, from);
            smtp.port = port;
            smtp.security = security;
            if let (Some(user), Some(password)) =
                (&config.mail.smtp_user, &config.mail.smtp_password)
            {
                smtp.credentials = Some((user.clone(), password.clone()));
            }
            MailBackend::Smtp(convene_smtp::SmtpMailer::new(&smtp).context("mail.smtp_url")?)
        }
        MailChoice::Customerio => {
            let key = config
                .mail
                .customerio_key
                .clone()
                .context("mail.customerio_key is required for customerio")?;
            let cio = convene_customerio::CustomerIoConfig::new(
                config.mail.customerio_url.clone(),
                key,
                from,
            );
            MailBackend::CustomerIo(
                convene_customerio::CustomerIoMailer::new(cio).context("customerio")?,
            )
        }
    })
}

/// The credential key ring: configured keys, or (outside production) a key made for
/// this process, with a warning that credentials stored now will not survive a restart.
pub fn key_ring(config: &Config) -> anyhow::Result<KeyRing> {
    match &config.keys.credentials {
        Some(keys) => Ok(config.key_ring(keys)?),
        None => {
            tracing::warn!(
                "keys.credentials is not set: using a key for this process only; calendar connections made now will not survive a restart"
            );
            let text = KeyRing::generate_key_text("ephemeral")?;
            Ok(KeyRing::parse(&text, "ephemeral")?)
        }
    }
}

/// The guest-link signer: configured, or (outside production) a secret for this process.
pub fn guest_tokens(config: &Config) -> anyhow::Result<GuestTokens> {
    match &config.keys.guest_links {
        Some(secret) => GuestTokens::new(secret.expose_secret().as_bytes())
            .context("keys.guest_links must be at least 32 bytes"),
        None => {
            tracing::warn!(
                "keys.guest_links is not set: guest links made now will not work after a restart"
            );
            GuestTokens::new(&random_bytes::<32>()).context("a random secret")
        }
    }
}

/// The app secret the web keys derive from (login cookie sealing, CSRF tokens):
/// `keys.guest_links`, or (outside production) a secret for this process.
fn app_secret(config: &Config) -> Vec<u8> {
    match &config.keys.guest_links {
        Some(secret) => secret.expose_secret().as_bytes().to_vec(),
        None => random_bytes::<32>().to_vec(),
    }
}

fn parse_url(setting: &str, raw: &str) -> anyhow::Result<url::Url> {
    url::Url::parse(raw).with_context(|| format!("{setting} is not a URL"))
}

/// `{base}/auth/{provider}/callback`: each provider's own redirect URI (the first half of
/// the mix-up defence).
fn callback_url(base: &str, provider: &str) -> anyhow::Result<url::Url> {
    parse_url(
        "the redirect base",
        &format!("{}/auth/{provider}/callback", base.trim_end_matches('/')),
    )
}

/// Google's adapter configuration, when `google.client_id` is set.
pub fn google_config(config: &Config) -> anyhow::Result<Option<convene_google::GoogleConfig>> {
    let g = &config.google;
    let Some(client_id) = g.client_id.clone().filter(|id| !id.trim().is_empty()) else {
        return Ok(None);
    };
    let secret = g
        .client_secret
        .clone()
        .context("google.client_secret is required with google.client_id")?;
    let redirect = callback_url(
        g.redirect_base.as_deref().unwrap_or(&config.base_url),
        "google",
    )?;
    let mut c = convene_google::GoogleConfig::new(client_id, secret, redirect);
    c.oauth.authorize_url = parse_url("google.authorize_url", &g.authorize_url)?;
    c.oauth.token_url = parse_url("google.token_url", &g.token_url)?;
    c.oauth.revoke_url = Some(parse_url("google.revoke_url", &g.revoke_url)?);
    c.oauth.issuer = g.issuer.clone();
    c.userinfo_url = parse_url("google.userinfo_url", &g.userinfo_url)?;
    c.calendar_url = parse_url("google.calendar_url", &g.calendar_url)?;
    c.http.max_concurrency = concurrency("google.max_concurrency", g.max_concurrency)?;
    // Convene sends every participant its own invitation: Google's would be a second one.
    c.send_updates = convene_google::SendUpdates::None;
    Ok(Some(c))
}

/// Microsoft's adapter configuration, when `microsoft.client_id` is set.
pub fn microsoft_config(
    config: &Config,
) -> anyhow::Result<Option<convene_microsoft::MicrosoftConfig>> {
    let m = &config.microsoft;
    let Some(client_id) = m.client_id.clone().filter(|id| !id.trim().is_empty()) else {
        return Ok(None);
    };
    let secret = m
        .client_secret
        .clone()
        .context("microsoft.client_secret is required with microsoft.client_id")?;
    let redirect = callback_url(
        m.redirect_base.as_deref().unwrap_or(&config.base_url),
        "microsoft",
    )?;
    let authority = m.authority.trim();
    if authority.is_empty() || authority.contains('/') {
        anyhow::bail!("microsoft.authority must be common, organizations or a tenant id");
    }
    let mut c = convene_microsoft::MicrosoftConfig::new(client_id, secret, redirect, authority);
    let login = m.login_url.trim_end_matches('/');
    c.oauth.authorize_url = parse_url(
        "microsoft.login_url",
        &format!("{login}/{authority}/oauth2/v2.0/authorize"),
    )?;
    c.oauth.token_url = parse_url(
        "microsoft.login_url",
        &format!("{login}/{authority}/oauth2/v2.0/token"),
    )?;
    c.oauth.issuer = format!("{login}/{{tenantid}}/v2.0");
    c.graph_url = parse_url("microsoft.graph_url", &m.graph_url)?;
    c.http.max_concurrency = concurrency("microsoft.max_concurrency", m.max_concurrency)?;
    Ok(Some(c))
}

/// A provider's concurrency limit: at least one request at a time.
fn concurrency(setting: &str, n: usize) -> anyhow::Result<usize> {
    anyhow::ensure!(n >= 1, "{setting} must be at least 1");
    Ok(n)
}

/// The outside systems the configuration asks for.
#[derive(Clone, Debug)]
pub struct Providers {
    /// Calendar adapters: ICS feeds always, Google and Microsoft when configured.
    pub calendars: Calendars,
    /// Sign-in (and the same adapters' refresh and revocation), with issuer checks.
    pub logins: LoginProviders,
}

/// Builds the calendar and identity adapters from the configuration: the ICS feed
/// adapter, and Google and Microsoft when their `client_id` is set.
pub fn providers(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Providers> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let ics = convene_ics::IcsCalendar::new(convene_ics::IcsConfig::default(), store.clone())
        .context("the ICS adapter")?
        .with_owner_zones(store.clone());
    let mut calendars = Calendars::new().with(Arc::new(ics));
    let mut logins = LoginProviders::new();
    // Google and Microsoft read their calendars' credentials together: one store read.
    let grants: Arc<dyn GrantStore> = Arc::new(convene_http::coalesce::CoalescedCredentials::new(
        store.clone(),
    ));
    if let Some(google) = google_config(config)? {
        let identity = Arc::new(
            convene_google::GoogleIdentity::new(&google, clock.clone())
                .context("google sign-in")?,
        );
        let issuer = identity.clone();
        logins = logins.with(
            identity,
            Arc::new(move |iss: Option<&str>| issuer.check_callback_issuer(iss)),
        );
        let calendar = convene_google::GoogleCalendar::new(&google, grants.clone(), clock.clone())
            .context("google calendar")?;
        calendars = calendars.with(Arc::new(calendar));
    }
    if let Some(microsoft) = microsoft_config(config)? {
        let identity = Arc::new(
            convene_microsoft::MicrosoftIdentity::new(&microsoft, clock.clone())
                .context("microsoft sign-in")?,
        );
        let issuer = identity.clone();
        logins = logins.with(
            identity,
            Arc::new(move |iss: Option<&str>| issuer.check_callback_issuer(iss)),
        );
        let calendar =
            convene_microsoft::MicrosoftCalendar::new(&microsoft, grants.clone(), clock.clone())
                .context("microsoft calendar")?;
        calendars = calendars.with(Arc::new(calendar));
    }
    Ok(Providers { calendars, logins })
}

/// Everything a running Convene needs.
#[derive(Debug)]
pub struct Wired {
    /// The HTTP application.
    pub app: AppState,
    /// The background worker.
    pub worker: Worker,
    /// The database.
    pub database: Database,
}

/// Builds the app and the worker over a database and calendar adapters; people sign in
/// with the identity providers among `identities` (without callback issuer checks: use
/// [`wire_with`] and [`providers`] for those).
pub fn wire(
    config: &Config,
    database: Database,
    calendars: Calendars,
    identities: Identities,
) -> anyhow::Result<Wired> {
    let logins = LoginProviders::from_identities(&identities);
    wire_with(config, database, Providers { calendars, logins })
}

/// Builds the app and the worker over a database and the providers (see [`providers`]).
pub fn wire_with(
    config: &Config,
    database: Database,
    providers: Providers,
) -> anyhow::Result<Wired> {
    let Providers { calendars, logins } = providers;
    let identities = logins.identities();
    let secret = app_secret(config);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7);
    let tokens = guest_tokens(config)?;
    let composer = TemplateComposer::new(
        EmailConfig::new(config.base_url.clone(), sender(config)?),
        tokens.clone(),
        clock.clone(),
    )
    .context("email templates")?;
    let store = database.store();
    let ports = Ports {
        store: store.clone(),
        calendars,
        identities,
        composer: Arc::new(composer),
        mailer: Arc::new(mailer(config)?),
        analytics: analytics(config, store.clone(), clock.clone())?,
        clock: clock.clone(),
        ids: ids.clone(),
    };
    let scheduler = Scheduler::new(ports, SchedulingPolicy::default());
    let sessions = SessionPolicy::default();
    let worker = Worker::new(
        scheduler.clone(),
        store.clone(),
        clock.clone(),
        sessions,
        config.worker.clone(),
    );
    let app = Arc::new(App {
        scheduler,
        store,
        clock,
        ids,
        guest_tokens: tokens,
        guest_link_grace: jiff::SignedDuration::from_hours(24 * 7),
        sessions,
        base_url: config.base_url.clone(),
        security_contact: config.security_contact.clone(),
        health: Arc::new(database.clone()),
        admin: crate::http::admin::AdminGate::from_config(&config.admin)?,
        rate_limit: crate::http::RateLimit::per_minute(config.limits.per_ip_per_minute),
        account_limit: crate::http::RateLimit::per_minute(config.limits.per_account_per_minute),
        logins: Logins::new(logins, &secret),
        csrf: Csrf::new(&secret),
        https: config.base_url.starts_with("https://"),
    });
    Ok(Wired {
        app,
        worker,
        database,
    })
}

#[cfg(test)]
mod tests {
    use convene_domain::consent::Provider;
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn providers_come_from_configuration() {
        let mut config = Config {
            base_url: "https://convene.example/".into(),
            ..Config::default()
        };
        assert!(
            google_config(&config).unwrap().is_none()
                && microsoft_config(&config).unwrap().is_none()
        );
        config.google.client_id = Some("g-id".into());
        let e = google_config(&config).unwrap_err().to_string();
        assert!(e.contains("google.client_secret"), "{e}");
        config.google.client_secret = Some(SecretString::from("g-secret"));
        let g = google_config(&config).unwrap().unwrap();
        assert_eq!(
            g.oauth.redirect_uri.as_str(),
            "https://convene.example/auth/google/callback"
        );
        assert_eq!(g.oauth.issuer, "https://accounts.google.com");

        config.microsoft.client_id = Some("m-id".into());
        config.microsoft.client_secret = Some(SecretString::from("m-secret"));
        config.microsoft.redirect_base = Some("https://login-proxy.example".into());
        config.microsoft.login_url = "https://login.microsoftonline.us/".into();
        config.microsoft.authority = "organizations".into();
        let m = microsoft_config(&config).unwrap().unwrap();
        assert_eq!(
            m.oauth.redirect_uri.as_str(),
            "https://login-proxy.example/auth/microsoft/callback"
        );
        assert_eq!(
            m.oauth.authorize_url.as_str(),
            "https://login.microsoftonline.us/organizations/oauth2/v2.0/authorize"
        );
        assert_eq!(
            m.oauth.issuer,
            "https://login.microsoftonline.us/{tenantid}/v2.0"
        );
        assert_eq!(
            (g.http.max_concurrency, m.http.max_concurrency),
            (16, 16),
            "each provider's concurrency limit defaults to 16"
        );
        config.google.max_concurrency = 64;
        config.microsoft.max_concurrency = 48;
        assert_eq!(
            google_config(&config)
                .unwrap()
                .unwrap()
                .http
                .max_concurrency,
            64
        );
        assert_eq!(
            microsoft_config(&config)
                .unwrap()
                .unwrap()
                .http
                .max_concurrency,
            48
        );
        config.microsoft.max_concurrency = 0;
        let e = microsoft_config(&config).unwrap_err().to_string();
        assert!(e.contains("microsoft.max_concurrency"), "{e}");
        config.microsoft.max_concurrency = 48;
        config.microsoft.authority = "a/b".into();
        assert!(microsoft_config(&config).is_err());
    }

    #[tokio::test]
    async fn sign_in_checks_each_providers_own_issuer() {
        let mut config = Config::default();
        config.google.client_id = Some("g-id".into());
        config.google.client_secret = Some(SecretString::from("g-secret"));
        config.microsoft.client_id = Some("m-id".into());
        config.microsoft.client_secret = Some(SecretString::from("m-secret"));
        let database = Database::open("sqlite::memory:", key_ring(&config).unwrap())
            .await
            .unwrap();
        let p = providers(&config, database.store()).unwrap();
        assert_eq!(
            p.logins.offered(),
            vec![Provider::Google, Provider::Microsoft]
        );
        for provider in Provider::ALL {
            assert!(p.calendars.get(provider).is_some(), "{provider}");
        }
        let google = p.logins.get(Provider::Google).unwrap();
        let microsoft = p.logins.get(Provider::Microsoft).unwrap();
        assert!(
            google
                .check_issuer(Some("https://accounts.google.com"))
                .is_ok()
        );
        assert!(
            google
                .check_issuer(Some("https://login.microsoftonline.com/t1/v2.0"))
                .is_err()
        );
        assert!(
            microsoft
                .check_issuer(Some("https://login.microsoftonline.com/t1/v2.0"))
                .is_ok()
        );
        assert!(
            microsoft
                .check_issuer(Some("https://accounts.google.com"))
                .is_err()
        );
    }
}
