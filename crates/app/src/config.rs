//! Configuration: defaults, then an optional TOML file, then `CONVENE_*` environment
//! variables (nested keys with `__`, e.g. `CONVENE_LOG__FORMAT=json`), then
//! `DATABASE_URL`. Secrets are [`SecretString`]s: never printed, not even in `Debug`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable does not parse.
    #[error("configuration: {0}")]
    Parse(String),
    /// A setting is missing or too weak for production; the message names it.
    #[error("refusing to start in production mode: {0}")]
    Unsafe(String),
}

/// Log output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info,convene=debug`.
    pub level: String,
    /// When set, logs also go to daily files in this folder.
    pub dir: Option<PathBuf>,
    /// Days of log files kept.
    pub retention_days: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
            dir: None,
            retention_days: 8,
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable by people.
    Human,
    /// One JSON object per line.
    Json,
}

/// Keys. All secret.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Credential encryption keys: `id:base64,id:base64` (32-byte AES-256 keys).
    #[serde(serialize_with = "redact_opt")]
    pub credentials: Option<SecretString>,
    /// The id of the key that encrypts new credentials.
    pub current: Option<String>,
    /// HMAC secret for guest links (at least 32 bytes).
    #[serde(serialize_with = "redact_opt")]
    pub guest_links: Option<SecretString>,
}

/// Where email goes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MailBackend {
    /// One `.eml` file per message in `mail.dir` (development, the demo).
    File,
    /// An SMTP server (`mail.smtp_url`).
    Smtp,
    /// Customer.io's transactional API.
    Customerio,
}

/// Email settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The backend.
    pub backend: MailBackend,
    /// Folder for the file backend.
    pub dir: PathBuf,
    /// Sender address.
    pub from_address: String,
    /// Sender name.
    pub from_name: String,
    /// `smtp://host:port` (STARTTLS required) or `smtps://host:port` (implicit TLS).
    pub smtp_url: Option<String>,
    /// SMTP user name.
    pub smtp_user: Option<String>,
    /// SMTP password.
    #[serde(serialize_with = "redact_opt")]
    pub smtp_password: Option<SecretString>,
    /// Customer.io app API key.
    #[serde(serialize_with = "redact_opt")]
    pub customerio_key: Option<SecretString>,
    /// Customer.io API base (EU: `https://api-eu.customer.io`).
    pub customerio_url: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            backend: MailBackend::File,
            dir: PathBuf::from("mail"),
            from_address: "convene@localhost.localdomain".into(),
            from_name: "Convene".into(),
            smtp_url: None,
            smtp_user: None,
            smtp_password: None,
            customerio_key: None,
            customerio_url: "https://api.customer.io".into(),
        }
    }
}

/// Which analytics receiver, if any.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsBackend {
    /// No analytics: events are dropped.
    None,
    /// Amplitude's HTTP V2 API.
    Amplitude,
}

/// What identifies a user to analytics.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsIdentity {
    /// An HMAC of the user id: no name or email leaves Convene.
    Pseudonymous,
    /// The user's email and name (the privacy notice must disclose it).
    EmailAndName,
}

/// Product analytics.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// `none` or `amplitude`.
    pub backend: AnalyticsBackend,
    /// Amplitude API base (EU: `https://api.eu.amplitude.com`).
    pub amplitude_url: String,
    /// Amplitude project API key.
    #[serde(serialize_with = "redact_opt")]
    pub amplitude_key: Option<SecretString>,
    /// What identifies a user.
    pub identity: AnalyticsIdentity,
    /// HMAC secret for pseudonymous ids.
    #[serde(serialize_with = "redact_opt")]
    pub pseudonym_secret: Option<SecretString>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            backend: AnalyticsBackend::None,
            amplitude_url: "https://api2.amplitude.com".into(),
            amplitude_key: None,
            identity: AnalyticsIdentity::Pseudonymous,
            pseudonym_secret: None,
        }
    }
}

/// One operator account of `/admin`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminAccountConfig {
    /// Stable id, named in audit rows.
    pub id: uuid::Uuid,
    /// `support` (read-only) or `admin`.
    pub level: crate::http::admin::AdminLevel,
    /// SHA-256 (hex) of the account's bearer token.
    pub token_sha256: String,
    /// TOTP secret, base32 (RFC 6238, SHA-1, 6 digits, 30 s).
    #[serde(serialize_with = "redact")]
    pub totp_secret: SecretString,
}

/// Operator administration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Networks `/admin` answers from (CIDR).
    pub allowed_networks: Vec<String>,
    /// The accounts.
    pub accounts: Vec<AdminAccountConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            allowed_networks: vec!["127.0.0.1/32".into(), "::1/128".into()],
            accounts: Vec::new(),
        }
    }
}

/// Request limits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes.
    pub body_bytes: usize,
    /// Seconds before a request is answered 503.
    pub request_timeout_secs: u64,
    /// Requests per minute per client address.
    pub per_ip_per_minute: u32,
    /// Requests per minute per signed-in account.
    pub per_account_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            request_timeout_secs: 15,
            per_ip_per_minute: 600,
            per_account_per_minute: 1200,
        }
    }
}

/// The background worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Milliseconds between two polls of an empty outbox.
    pub poll_ms: u64,
    /// Messages claimed at once.
    pub batch: u32,
    /// Batches a worker process delivers at once, each claimed on its own (like that
    /// many workers): a batch waits on its slowest receiver, so more lanes deliver more
    /// a second (at least 1).
    pub lanes: usize,
    /// Seconds a claim holds before another worker may take the message.
    pub lease_secs: u64,
    /// How often every active calendar grant is checked with its provider, to notice
    /// revocations made there (by the user or their IT): `6h`, `30m` (at least a minute).
    #[serde(with = "jiff::fmt::serde::unsigned_duration::friendly::compact::required")]
    pub grant_check_interval: std::time::Duration,
    /// How long a delivered message is kept (its payload is gone at delivery; its key,
    /// which keeps an effect from being queued twice, stays until then): `30d`, `72h`
    /// (at least a day).
    #[serde(with = "retention")]
    pub keep_delivered: std::time::Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_ms: 500,
            batch: 50,
            lanes: 4,
            lease_secs: 120,
            grant_check_interval: std::time::Duration::from_secs(6 * 3600),
            keep_delivered: std::time::Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Sign-in with Google and Google Calendar. Enabled when `client_id` is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoogleSettings {
    /// OAuth client id (Google Cloud console → Credentials).
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(serialize_with = "redact_opt")]
    pub client_secret: Option<SecretString>,
    /// Public URL the callback `/auth/google/callback` hangs off (default: `base_url`).
    pub redirect_base: Option<String>,
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Revocation endpoint.
    pub revoke_url: String,
    /// The issuer ID tokens and callbacks must name.
    pub issuer: String,
    /// OpenID userinfo endpoint.
    pub userinfo_url: String,
    /// Calendar API v3 base.
    pub calendar_url: String,
    /// At most this many requests to Google (calendars and tokens) in flight at once from
    /// this process.
    pub max_concurrency: usize,
}

impl Default for GoogleSettings {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            redirect_base: None,
            authorize_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            revoke_url: "https://oauth2.googleapis.com/revoke".into(),
            issuer: "https://accounts.google.com".into(),
            userinfo_url: "https://openidconnect.googleapis.com/v1/userinfo".into(),
            calendar_url: "https://www.googleapis.com/calendar/v3".into(),
            max_concurrency: 16,
        }
    }
}

/// Sign-in with Microsoft (Entra ID) and Microsoft 365 calendars. Enabled when
/// `client_id` is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MicrosoftSettings {
    /// Application (client) id.
    pub client_id: Option<String>,
    /// Client secret.
    #[serde(serialize_with = "redact_opt")]
    pub client_secret: Option<SecretString>,
    /// Public URL the callback `/auth/microsoft/callback` hangs off (default: `base_url`).
    pub redirect_base: Option<String>,
    /// `common`, `organizations` or a tenant id.
    pub authority: String,
    /// The login host (national clouds: `https://login.microsoftonline.us`...).
    pub login_url: String,
    /// Microsoft Graph base.
    pub graph_url: String,
    /// At most this many requests to Microsoft (Graph and tokens) in flight at once from
    /// this process.
    pub max_concurrency: usize,
}

impl Default for MicrosoftSettings {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            redirect_base: None,
            authority: "common".into(),
            login_url: "https://login.microsoftonline.com".into(),
            graph_url: "https://graph.microsoft.com/v1.0".into(),
            max_concurrency: 16,
        }
    }
}

/// Built-in HTTPS for deployments without a reverse proxy (rustls, TLS 1.2 minimum). Off
/// unless both files are set; with one of them alone `serve` refuses to start.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the server certificate first, then its intermediates.
    pub cert: Option<PathBuf>,
    /// PEM file: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC). The path is not a
    /// secret; the file is, and its content is never printed.
    pub key: Option<PathBuf>,
}

/// Everything Convene reads at start-up.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Connections this process keeps to PostgreSQL at most (SQLite ignores it); unset,
    /// twice the CPU cores this process may use (see [`Config::database_connections`]).
    /// Every process on one database holds its own: keep their sum under the server's
    /// `max_connections`.
    pub database_connections: Option<std::num::NonZeroU32>,
    /// Apply migrations when starting `serve` or `worker`.
    pub migrate_on_start: bool,
    /// The public URL people reach Convene at (links in emails).
    pub base_url: String,
    /// Refuse weak or missing keys and require HTTPS links.
    pub production: bool,
    /// Logs.
    pub log: LogConfig,
    /// Keys.
    pub keys: KeysConfig,
    /// Email.
    pub mail: MailConfig,
    /// Analytics.
    pub analytics: AnalyticsConfig,
    /// Operator administration.
    pub admin: AdminConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Worker.
    pub worker: WorkerConfig,
    /// Google sign-in and calendars.
    pub google: GoogleSettings,
    /// Microsoft sign-in and calendars.
    pub microsoft: MicrosoftSettings,
    /// Built-in TLS.
    pub tls: TlsConfig,
    /// Contact for `/.well-known/security.txt`.
    pub security_contact: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://convene.db?mode=rwc".into(),
            database_connections: None,
            migrate_on_start: true,
            base_url: "http://127.0.0.1:8080".into(),
            production: false,
            log: LogConfig::default(),
            keys: KeysConfig::default(),
            mail: MailConfig::default(),
            analytics: AnalyticsConfig::default(),
            admin: AdminConfig::default(),
            limits: LimitsConfig::default(),
            worker: WorkerConfig::default(),
            google: GoogleSettings::default(),
            microsoft: MicrosoftSettings::default(),
            tls: TlsConfig::default(),
            security_contact: "mailto:security@localhost.localdomain".into(),
        }
    }
}

fn redact<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[redacted]")
}

/// A retention written like `30d`, `72h` or `1w 2d`, a day being 24 hours (a length
/// of time, not a calendar date); months and years are refused.
mod retention {
    use serde::{Deserialize as _, Deserializer, Serializer, de, ser};

    pub(super) fn serialize<S: Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let d = jiff::SignedDuration::try_from(*d).map_err(ser::Error::custom)?;
        s.collect_str(&format_args!("{d:#}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(d)?;
        let span: jiff::Span = text.parse().map_err(de::Error::custom)?;
        let length = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(de::Error::custom)?;
        std::time::Duration::try_from(length)
            .map_err(|_| de::Error::custom("a retention cannot be negative"))
    }
}

fn redact_opt<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

/// One documented setting: what the README's configuration table lists.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The TOML key (`log.format`).
    pub key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The default, as text.
    pub default: &'static str,
    /// Whether it is a secret.
    pub secret: bool,
}

/// Every setting, for documentation (a test checks the README lists each one).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "bind",
        env: "CONVENE_BIND",
        default: "127.0.0.1:8080",
        secret: false,
    },
    Setting {
        key: "database_url",
        env: "DATABASE_URL",
        default: "sqlite://convene.db?mode=rwc",
        secret: true,
    },
    Setting {
        key: "database_connections",
        env: "CONVENE_DATABASE_CONNECTIONS",
        default: "twice the CPU cores",
        secret: false,
    },
    Setting {
        key: "migrate_on_start",
        env: "CONVENE_MIGRATE_ON_START",
        default: "true",
        secret: false,
    },
    Setting {
        key: "base_url",
        env: "CONVENE_BASE_URL",
        default: "http://127.0.0.1:8080",
        secret: false,
    },
    Setting {
        key: "production",
        env: "CONVENE_PRODUCTION",
        default: "false",
        secret: false,
    },
    Setting {
        key: "security_contact",
        env: "CONVENE_SECURITY_CONTACT",
        default: "mailto:security@localhost.localdomain",
        secret: false,
    },
    Setting {
        key: "log.format",
        env: "CONVENE_LOG__FORMAT",
        default: "human",
        secret: false,
    },
    Setting {
        key: "log.level",
        env: "CONVENE_LOG__LEVEL",
        default: "info",
        secret: false,
    },
    Setting {
        key: "log.dir",
        env: "CONVENE_LOG__DIR",
        default: "(none: stderr only)",
        secret: false,
    },
    Setting {
        key: "log.retention_days",
        env: "CONVENE_LOG__RETENTION_DAYS",
        default: "8",
        secret: false,
    },
    Setting {
        key: "keys.credentials",
        env: "CONVENE_KEYS__CREDENTIALS",
        default: "(none; required in production)",
        secret: true,
    },
    Setting {
        key: "keys.current",
        env: "CONVENE_KEYS__CURRENT",
        default: "(the only key)",
        secret: false,
    },
    Setting {
        key: "keys.guest_links",
        env: "CONVENE_KEYS__GUEST_LINKS",
        default: "(none; required in production)",
        secret: true,
    },
    Setting {
        key: "mail.backend",
        env: "CONVENE_MAIL__BACKEND",
        default: "file",
        secret: false,
    },
    Setting {
        key: "mail.dir",
        env: "CONVENE_MAIL__DIR",
        default: "mail",
        secret: false,
    },
    Setting {
        key: "mail.from_address",
        env: "CONVENE_MAIL__FROM_ADDRESS",
        default: "convene@localhost.localdomain",
        secret: false,
    },
    Setting {
        key: "mail.from_name",
        env: "CONVENE_MAIL__FROM_NAME",
        default: "Convene",
        secret: false,
    },
    Setting {
        key: "mail.smtp_url",
        env: "CONVENE_MAIL__SMTP_URL",
        default: "(none)",
        secret: false,
    },
    Setting {
        key: "mail.smtp_user",
        env: "CONVENE_MAIL__SMTP_USER",
        default: "(none)",
        secret: false,
    },
    Setting {
        key: "mail.smtp_password",
        env: "CONVENE_MAIL__SMTP_PASSWORD",
        default: "(none)",
        secret: true,
    },
    Setting {
        key: "mail.customerio_key",
        env: "CONVENE_MAIL__CUSTOMERIO_KEY",
        default: "(none)",
        secret: true,
    },
    Setting {
        key: "mail.customerio_url",
        env: "CONVENE_MAIL__CUSTOMERIO_URL",
        default: "https://api.customer.io",
        secret: false,
    },
    Setting {
        key: "analytics.backend",
        env: "CONVENE_ANALYTICS__BACKEND",
        default: "none",
        secret: false,
    },
    Setting {
        key: "analytics.amplitude_url",
        env: "CONVENE_ANALYTICS__AMPLITUDE_URL",
        default: "https://api2.amplitude.com",
        secret: false,
    },
    Setting {
        key: "analytics.amplitude_key",
        env: "CONVENE_ANALYTICS__AMPLITUDE_KEY",
        default: "(none)",
        secret: true,
    },
    Setting {
        key: "analytics.identity",
        env: "CONVENE_ANALYTICS__IDENTITY",
        default: "pseudonymous",
        secret: false,
    },
    Setting {
        key: "analytics.pseudonym_secret",
        env: "CONVENE_ANALYTICS__PSEUDONYM_SECRET",
        default: "(none; required with amplitude)",
        secret: true,
    },
    Setting {
        key: "admin.allowed_networks",
        env: "(file only)",
        default: "127.0.0.1/32, ::1/128",
        secret: false,
    },
    Setting {
        key: "admin.accounts",
        env: "(file only)",
        default: "(none: /admin closed)",
        secret: true,
    },
    Setting {
        key: "limits.body_bytes",
        env: "CONVENE_LIMITS__BODY_BYTES",
        default: "65536",
        secret: false,
    },
    Setting {
        key: "limits.request_timeout_secs",
        env: "CONVENE_LIMITS__REQUEST_TIMEOUT_SECS",
        default: "15",
        secret: false,
    },
    Setting {
        key: "limits.per_ip_per_minute",
        env: "CONVENE_LIMITS__PER_IP_PER_MINUTE",
        default: "600",
        secret: false,
    },
    Setting {
        key: "worker.poll_ms",
        env: "CONVENE_WORKER__POLL_MS",
        default: "500",
        secret: false,
    },
    Setting {
        key: "worker.batch",
        env: "CONVENE_WORKER__BATCH",
        default: "50",
        secret: false,
    },
    Setting {
        key: "worker.lanes",
        env: "CONVENE_WORKER__LANES",
        default: "4",
        secret: false,
    },
    Setting {
        key: "worker.lease_secs",
        env: "CONVENE_WORKER__LEASE_SECS",
        default: "120",
        secret: false,
    },
    Setting {
        key: "worker.grant_check_interval",
        env: "CONVENE_WORKER__GRANT_CHECK_INTERVAL",
        default: "6h",
        secret: false,
    },
    Setting {
        key: "worker.keep_delivered",
        env: "CONVENE_WORKER__KEEP_DELIVERED",
        default: "30d",
        secret: false,
    },
    Setting {
        key: "google.client_id",
        env: "CONVENE_GOOGLE__CLIENT_ID",
        default: "(none: Google sign-in off)",
        secret: false,
    },
    Setting {
        key: "google.client_secret",
        env: "CONVENE_GOOGLE__CLIENT_SECRET",
        default: "(none)",
        secret: true,
    },
    Setting {
        key: "google.redirect_base",
        env: "CONVENE_GOOGLE__REDIRECT_BASE",
        default: "(base_url)",
        secret: false,
    },
    Setting {
        key: "google.authorize_url",
        env: "CONVENE_GOOGLE__AUTHORIZE_URL",
        default: "https://accounts.google.com/o/oauth2/v2/auth",
        secret: false,
    },
    Setting {
        key: "google.token_url",
        env: "CONVENE_GOOGLE__TOKEN_URL",
        default: "https://oauth2.googleapis.com/token",
        secret: false,
    },
    Setting {
        key: "google.revoke_url",
        env: "CONVENE_GOOGLE__REVOKE_URL",
        default: "https://oauth2.googleapis.com/revoke",
        secret: false,
    },
    Setting {
        key: "google.issuer",
        env: "CONVENE_GOOGLE__ISSUER",
        default: "https://accounts.google.com",
        secret: false,
    },
    Setting {
        key: "google.userinfo_url",
        env: "CONVENE_GOOGLE__USERINFO_URL",
        default: "https://openidconnect.googleapis.com/v1/userinfo",
        secret: false,
    },
    Setting {
        key: "google.calendar_url",
        env: "CONVENE_GOOGLE__CALENDAR_URL",
        default: "https://www.googleapis.com/calendar/v3",
        secret: false,
    },
    Setting {
        key: "google.max_concurrency",
        env: "CONVENE_GOOGLE__MAX_CONCURRENCY",
        default: "16",
        secret: false,
    },
    Setting {
        key: "microsoft.client_id",
        env: "CONVENE_MICROSOFT__CLIENT_ID",
        default: "(none: Microsoft sign-in off)",
        secret: false,
    },
    Setting {
        key: "microsoft.client_secret",
        env: "CONVENE_MICROSOFT__CLIENT_SECRET",
        default: "(none)",
        secret: true,
    },
    Setting {
        key: "microsoft.redirect_base",
        env: "CONVENE_MICROSOFT__REDIRECT_BASE",
        default: "(base_url)",
        secret: false,
    },
    Setting {
        key: "microsoft.authority",
        env: "CONVENE_MICROSOFT__AUTHORITY",
        default: "common",
        secret: false,
    },
    Setting {
        key: "microsoft.login_url",
        env: "CONVENE_MICROSOFT__LOGIN_URL",
        default: "https://login.microsoftonline.com",
        secret: false,
    },
    Setting {
        key: "microsoft.graph_url",
        env: "CONVENE_MICROSOFT__GRAPH_URL",
        default: "https://graph.microsoft.com/v1.0",
        secret: false,
    },
    Setting {
        key: "microsoft.max_concurrency",
        env: "CONVENE_MICROSOFT__MAX_CONCURRENCY",
        default: "16",
        secret: false,
    },
    Setting {
        key: "tls.cert",
        env: "CONVENE_TLS__CERT",
        default: "(none: plain HTTP)",
        secret: false,
    },
    Setting {
        key: "tls.key",
        env: "CONVENE_TLS__KEY",
        default: "(none: plain HTTP)",
        secret: false,
    },
];

impl Config {
    /// Connections to keep to PostgreSQL: `database_connections`, else twice the CPU
    /// cores this process may use (a cgroup's quota counts). Each statement holds one
    /// for its round trip only, so a handful per core keeps the cores busy; more adds
    /// database backends to wake and switch between (on a 2-core machine under the load
    /// bench, 4 connections cost 5 to 8 % less CPU an availability request than 10).
    pub fn database_connections(&self) -> u32 {
        self.database_connections.map_or_else(
            || {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                u32::try_from(cores.saturating_mul(2)).unwrap_or(u32::MAX)
            },
            |n| n.get(),
        )
    }

    /// Reads the configuration: defaults, `file` if given (it must exist), then the
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Parse(format!(
                    "{} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only variables naming a setting: CONVENE_CONFIG (the file, read by the CLI) and
        // the test suite's CONVENE_REQUIRE_PEERS are not settings. Within a section,
        // unknown keys are still refused, so a typo there fails loudly.
        let env = Env::prefixed("CONVENE_").split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            let section = key
                .split("__")
                .next()
                .and_then(|k| k.split('.').next())
                .unwrap_or_default();
            SETTINGS
                .iter()
                .any(|s| s.key.split('.').next() == Some(section))
        });
        figment = figment.merge(env).merge(Env::raw().only(&["DATABASE_URL"]));
        figment
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// In production mode: every key present and strong, links over HTTPS. Says which
    /// setting is wrong, never its value.
    pub fn check_production(&self) -> Result<(), ConfigError> {
        if !self.production {
            return Ok(());
        }
        let keys = self.keys.credentials.as_ref().ok_or_else(|| {
            ConfigError::Unsafe("keys.credentials (CONVENE_KEYS__CREDENTIALS) is missing".into())
        })?;
        let ring = self.key_ring(keys)?;
        ring.check_strength()
            .map_err(|e| ConfigError::Unsafe(format!("keys.credentials: {e}")))?;
        let guest = self.keys.guest_links.as_ref().ok_or_else(|| {
            ConfigError::Unsafe("keys.guest_links (CONVENE_KEYS__GUEST_LINKS) is missing".into())
        })?;
        let g = guest.expose_secret().as_bytes();
        let distinct = g.iter().collect::<std::collections::HashSet<_>>().len();
        if g.len() < 32 || distinct < 12 {
            return Err(ConfigError::Unsafe(
                "keys.guest_links is too weak: use at least 32 random characters".into(),
            ));
        }
        if !self.base_url.starts_with("https://") {
            return Err(ConfigError::Unsafe(
                "base_url must be https:// in production".into(),
            ));
        }
        Ok(())
    }

    /// The credential key ring from `keys.credentials`.
    pub fn key_ring(&self, keys: &SecretString) -> Result<convene_crypto::KeyRing, ConfigError> {
        let text = keys.expose_secret();
        let current = match &self.keys.current {
            Some(c) => c.clone(),
            None => text
                .split(',')
                .next()
                .and_then(|k| k.split(':').next())
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        convene_crypto::KeyRing::parse(text, &current)
            .map_err(|e| ConfigError::Unsafe(format!("keys.credentials: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.keys.guest_links = Some(SecretString::from("super-secret-guest-key-material-123456"));
        c.mail.smtp_password = Some(SecretString::from("hunter2-smtp"));
        c.google.client_secret = Some(SecretString::from("hunter2-google"));
        c.microsoft.client_secret = Some(SecretString::from("hunter2-microsoft"));
        let debug = format!("{c:?}");
        let json = serde_json::to_string(&c).unwrap();
        for text in [debug, json] {
            assert!(
                !text.contains("super-secret") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }

    #[test]
    fn production_refuses_missing_and_weak_keys_and_says_which() {
        let mut c = Config {
            production: true,
            base_url: "https://convene.example".into(),
            ..Config::default()
        };
        let e = c.check_production().unwrap_err().to_string();
        assert!(e.contains("keys.credentials"), "{e}");
        c.keys.credentials = Some(SecretString::from(format!("k1:{}", base64_zeros())));
        let e = c.check_production().unwrap_err().to_string();
        assert!(e.contains("keys.credentials"), "{e}");
        c.keys.credentials = Some(SecretString::from(
            convene_crypto::KeyRing::generate_key_text("k1").unwrap(),
        ));
        let e = c.check_production().unwrap_err().to_string();
        assert!(e.contains("keys.guest_links"), "{e}");
        c.keys.guest_links = Some(SecretString::from("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(
            c.check_production()
                .unwrap_err()
                .to_string()
                .contains("too weak")
        );
        c.keys.guest_links = Some(SecretString::from("Zq8v1XK2pL9mN3bR7tY5wE4uI6oA0sDf"));
        c.check_production().unwrap();
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn environment_variables_set_settings_and_others_are_left_alone() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONVENE_BIND", "127.0.0.1:9999");
            jail.set_env("CONVENE_LOG__FORMAT", "json");
            jail.set_env("CONVENE_REQUIRE_PEERS", "1");
            jail.set_env("CONVENE_CONFIG", "/nonexistent.toml");
            jail.set_env("DATABASE_URL", "postgres://db/convene");
            jail.set_env("CONVENE_MICROSOFT__MAX_CONCURRENCY", "40");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.bind.port(), 9999);
            assert_eq!(c.microsoft.max_concurrency, 40);
            assert_eq!(c.google.max_concurrency, 16);
            assert_eq!(c.log.format, LogFormat::Json);
            assert_eq!(c.database_url, "postgres://db/convene");
            jail.set_env("CONVENE_LOG__FROMAT", "json");
            assert!(
                Config::load(None).is_err(),
                "a typo inside a section is refused"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn database_connections_default_to_twice_the_cores_and_zero_is_refused() {
        figment::Jail::expect_with(|jail| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.database_connections, None);
            assert_eq!(c.database_connections() as usize, 2 * cores);
            jail.set_env("CONVENE_DATABASE_CONNECTIONS", "3");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.database_connections(), 3);
            jail.set_env("CONVENE_DATABASE_CONNECTIONS", "0");
            assert!(
                Config::load(None).is_err(),
                "a pool without connections is refused"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn tls_files_come_from_the_file_or_the_environment() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::default().tls, TlsConfig::default());
            jail.create_file(
                "convene.toml",
                "[tls]\ncert = \"/etc/convene/cert.pem\"\nkey = \"/etc/convene/key.pem\"\n",
            )?;
            let c = Config::load(Some(Path::new("convene.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.tls.cert, Some(PathBuf::from("/etc/convene/cert.pem")));
            assert_eq!(c.tls.key, Some(PathBuf::from("/etc/convene/key.pem")));
            jail.set_env("CONVENE_TLS__CERT", "/srv/tls/fullchain.pem");
            jail.set_env("CONVENE_TLS__KEY", "/srv/tls/privkey.pem");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.tls.cert, Some(PathBuf::from("/srv/tls/fullchain.pem")));
            assert_eq!(c.tls.key, Some(PathBuf::from("/srv/tls/privkey.pem")));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn the_grant_check_interval_reads_as_a_friendly_duration() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.worker.grant_check_interval,
                std::time::Duration::from_secs(6 * 3600)
            );
            jail.create_file(
                "convene.toml",
                "[worker]\ngrant_check_interval = \"2h 30m\"\n",
            )?;
            let c = Config::load(Some(Path::new("convene.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                c.worker.grant_check_interval,
                std::time::Duration::from_secs(150 * 60)
            );
            jail.set_env("CONVENE_WORKER__GRANT_CHECK_INTERVAL", "30m");
            let c = Config::load(Some(Path::new("convene.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                c.worker.grant_check_interval,
                std::time::Duration::from_secs(30 * 60),
                "the environment comes after the file"
            );
            jail.set_env("CONVENE_WORKER__GRANT_CHECK_INTERVAL", "often");
            assert!(Config::load(None).is_err(), "not a duration");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn delivered_messages_are_kept_thirty_days_unless_configured() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.worker.keep_delivered,
                std::time::Duration::from_secs(30 * 24 * 3600)
            );
            jail.set_env("CONVENE_WORKER__KEEP_DELIVERED", "7d");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.worker.keep_delivered,
                std::time::Duration::from_secs(7 * 24 * 3600)
            );
            jail.set_env("CONVENE_WORKER__KEEP_DELIVERED", "72h");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.worker.keep_delivered,
                std::time::Duration::from_secs(72 * 3600)
            );
            jail.set_env("CONVENE_WORKER__KEEP_DELIVERED", "1w 2d");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.worker.keep_delivered,
                std::time::Duration::from_secs(9 * 24 * 3600)
            );
            for bad in ["forever", "2 months", "-3d"] {
                jail.set_env("CONVENE_WORKER__KEEP_DELIVERED", bad);
                assert!(Config::load(None).is_err(), "{bad} is refused");
            }
            Ok(())
        });
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../../../README.md");
        for s in SETTINGS {
            let row = format!("| `{}` | `{}` |", s.key, s.env);
            assert!(
                readme.contains(&row),
                "README's configuration table lacks {}",
                s.key
            );
            let secret = if s.secret { "yes" } else { "no" };
            assert!(
                readme.contains(&format!("{row} {} | {secret} |", s.default)),
                "README's row for {} has the wrong default or secrecy",
                s.key
            );
        }
    }

    fn base64_zeros() -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([0u8; 32])
    }
}
