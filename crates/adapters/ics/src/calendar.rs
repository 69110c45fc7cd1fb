//! [`IcsCalendar`] (feeds and CalDAV) and [`FileCalendar`] (.ics files on disk).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use convene_domain::consent::{CalendarRef, Provider, ReadAccess, WriteAccess};
use convene_domain::meeting::BookedEvent;
use convene_domain::ports::{
    CalendarBusy, CalendarError, CalendarProvider, EventRequest, GrantStore, StoreError, UserStore,
};
use convene_domain::time::{Interval, Zone};
use convene_http::{HttpFailure, HttpSettings, ProviderHttp};
use futures::future::join_all;
use jiff::tz::TimeZone;
use reqwest::{Method, StatusCode};

use crate::caldav::Collection;
use crate::expand::{ReadStats, busy_intervals};
use crate::source::{Source, check_reachable};

/// How the ICS adapter reads calendars.
#[derive(Clone, Debug)]
pub struct IcsConfig {
    /// Timeouts, concurrency limit, retries; feeds may redirect.
    pub http: HttpSettings,
    /// Floating times are read in the calendar owner's zone; when it is not known
    /// (no user store given) and the calendar declares none, in this one.
    pub default_zone: Zone,
    /// Allow feed and CalDAV addresses inside private networks (development, tests).
    /// Off in production: a user-supplied URL must not reach internal services.
    pub allow_private_networks: bool,
    /// Ask CalDAV servers with `free-busy-query` first (falling back to
    /// `calendar-query` when unanswered); when off, always `calendar-query`.
    pub caldav_free_busy_query: bool,
}

impl Default for IcsConfig {
    fn default() -> Self {
        Self {
            http: HttpSettings {
                follow_redirects: true,
                ..HttpSettings::default()
            },
            default_zone: Zone::utc(),
            allow_private_networks: false,
            caldav_free_busy_query: true,
        }
    }
}

fn read_only() -> CalendarError {
    CalendarError::BadRequest("ICS calendars are read-only".into())
}

fn wrong_provider(c: &CalendarRef) -> Option<CalendarError> {
    (c.provider() != Provider::Ics).then(|| {
        CalendarError::BadRequest(format!(
            "a {} calendar was given to the ics adapter",
            c.provider()
        ))
    })
}

/// The calendar owner's zone, from the user store when there is one.
async fn owner_zone(users: Option<&Arc<dyn UserStore>>, c: &CalendarRef) -> Option<TimeZone> {
    let users = users?;
    users
        .user(c.tenant(), c.user())
        .await
        .ok()
        .map(|u| u.zone.tz().clone())
}

fn parse(
    texts: &[String],
    window: Interval,
    owner: Option<&TimeZone>,
    fallback: &Zone,
) -> (Result<Vec<Interval>, CalendarError>, ReadStats) {
    let mut busy = Vec::new();
    let mut stats = ReadStats::default();
    for text in texts {
        match busy_intervals(text, window, owner, fallback.tz()) {
            Ok((more, s)) => {
                busy.extend(more);
                stats.events += s.events;
                stats.unknown_zones += s.unknown_zones;
                stats.truncated += s.truncated;
            }
            Err(e) => {
                return (Err(CalendarError::Unavailable(e.to_string())), stats);
            }
        }
    }
    (Ok(busy), stats)
}

/// Every calendar's busy time from its read (in order), the reads logged as one of
/// `kind` begun at `started`.
fn gather(
    kind: &'static str,
    calendars: &[ReadAccess],
    reads: Vec<(Result<Vec<Interval>, CalendarError>, ReadStats)>,
    started: Instant,
) -> Vec<CalendarBusy> {
    let mut total = ReadStats::default();
    let out: Vec<CalendarBusy> = calendars
        .iter()
        .zip(reads)
        .map(|(c, (busy, stats))| {
            total.events += stats.events;
            total.unknown_zones += stats.unknown_zones;
            total.truncated += stats.truncated;
            CalendarBusy {
                grant: c.grant(),
                busy,
            }
        })
        .collect();
    let failed = out.iter().filter(|c| c.busy.is_err()).count();
    log(kind, calendars.len(), total, failed, started);
    out
}

fn log(kind: &'static str, calendars: usize, stats: ReadStats, failed: usize, started: Instant) {
    tracing::debug!(
        provider = "ics",
        kind,
        calendars,
        events = stats.events,
        unknown_zones = stats.unknown_zones,
        truncated = stats.truncated,
        failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "free/busy read"
    );
}

/// Private iCal feeds and CalDAV calendars as a [`CalendarProvider`] (read-only).
///
/// A grant's calendar address is its secret (see the crate's documentation), loaded from
/// the [`GrantStore`] by (tenant, grant). Feeds are fetched whole and expanded over the
/// window; CalDAV calendars are asked with `free-busy-query`, falling back to a
/// `calendar-query` of VEVENTs in the window. Calendars are read concurrently within the
/// concurrency limit. Booking returns [`CalendarError::BadRequest`].
pub struct IcsCalendar {
    http: ProviderHttp,
    grants: Arc<dyn GrantStore>,
    users: Option<Arc<dyn UserStore>>,
    config: IcsConfig,
}

impl fmt::Debug for IcsCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcsCalendar")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IcsCalendar {
    /// The adapter for `config`, reading grants' addresses from `grants`.
    pub fn new(config: IcsConfig, grants: Arc<dyn GrantStore>) -> Result<Self, HttpFailure> {
        Ok(Self {
            http: ProviderHttp::new("ics", config.http.clone())?,
            grants,
            users: None,
            config,
        })
    }

    /// Reads floating times in each calendar owner's zone, looked up in `users`.
    pub fn with_owner_zones(mut self, users: Arc<dyn UserStore>) -> Self {
        self.users = Some(users);
        self
    }

    async fn read(
        &self,
        calendar: &ReadAccess,
        window: Interval,
    ) -> (Result<Vec<Interval>, CalendarError>, ReadStats) {
        let none = ReadStats::default();
        if let Some(e) = wrong_provider(calendar) {
            return (Err(e), none);
        }
        let secret = match self
            .grants
            .credentials(calendar.tenant(), calendar.grant())
            .await
        {
            Ok(Some(c)) => c.refresh_token,
            Ok(None) | Err(StoreError::NotFound) => {
                return (Err(CalendarError::ConsentRevoked), none);
            }
            Err(e) => {
                return (
                    Err(CalendarError::Unavailable(format!("credential store: {e}"))),
                    none,
                );
            }
        };
        let source = match Source::parse(&secret) {
            Ok(s) => s,
            Err(e) => return (Err(e), none),
        };
        if let Err(e) = check_reachable(source.url(), self.config.allow_private_networks).await {
            return (Err(e), none);
        }
        let texts = match &source {
            Source::Feed(url) => self.feed(url).await.map(|t| vec![t]),
            Source::CalDav {
                url,
                user,
                password,
            } => {
                let collection = Collection {
                    url,
                    user: user.as_deref(),
                    password: password.as_ref(),
                };
                let free_busy = if self.config.caldav_free_busy_query {
                    collection.free_busy(&self.http, window).await
                } else {
                    Ok(None)
                };
                match free_busy {
                    Ok(Some(text)) => Ok(vec![text]),
                    Ok(None) => collection.events(&self.http, window).await,
                    Err(e) => Err(e),
                }
            }
        };
        match texts {
            Ok(texts) => {
                let owner = owner_zone(self.users.as_ref(), calendar).await;
                parse(&texts, window, owner.as_ref(), &self.config.default_zone)
            }
            Err(e) => (Err(e), none),
        }
    }

    async fn feed(&self, url: &url::Url) -> Result<String, CalendarError> {
        let reply = self
            .http
            .send(
                self.http
                    .request(Method::GET, url.clone())
                    .header("Accept", "text/calendar"),
            )
            .await?;
        match reply.status {
            StatusCode::OK => Ok(reply.text()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(CalendarError::ConsentRevoked),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(CalendarError::NotFound),
            s => Err(CalendarError::Unavailable(format!(
                "ics: the feed answered {}",
                s.as_u16()
            ))),
        }
    }
}

#[async_trait]
impl CalendarProvider for IcsCalendar {
    fn provider(&self) -> Provider {
        Provider::Ics
    }

    async fn free_busy(&self, calendars: &[ReadAccess], window: Interval) -> Vec<CalendarBusy> {
        let started = Instant::now();
        let reads = join_all(calendars.iter().map(|c| self.read(c, window))).await;
        gather("remote", calendars, reads, started)
    }

    async fn book_event(
        &self,
        _calendar: &WriteAccess,
        _event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        Err(read_only())
    }

    async fn cancel_event(
        &self,
        _calendar: &WriteAccess,
        _event_id: &str,
    ) -> Result<(), CalendarError> {
        Err(read_only())
    }
}

/// Calendars kept as `.ics` files in a folder, one per account: `{folder}/{account}.ics`.
/// The offline demo's people have these as their calendars. Read like feeds, through
/// the same parser; read-only.
pub struct FileCalendar {
    folder: PathBuf,
    default_zone: Zone,
    users: Option<Arc<dyn UserStore>>,
}

impl fmt::Debug for FileCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileCalendar")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl FileCalendar {
    /// Calendars in `folder`; floating times in `default_zone` unless the owner's zone
    /// is known ([`FileCalendar::with_owner_zones`]) or the file declares one.
    pub fn new(folder: impl Into<PathBuf>, default_zone: Zone) -> Self {
        Self {
            folder: folder.into(),
            default_zone,
            users: None,
        }
    }

    /// Reads floating times in each calendar owner's zone, looked up in `users`.
    pub fn with_owner_zones(mut self, users: Arc<dyn UserStore>) -> Self {
        self.users = Some(users);
        self
    }

    /// The file of `account`, if the name is a plain file name.
    fn file(&self, account: &str) -> Option<PathBuf> {
        let plain = !account.is_empty()
            && !account.starts_with('.')
            && account
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+'));
        plain.then(|| self.folder.join(format!("{account}.ics")))
    }

    async fn read(
        &self,
        calendar: &ReadAccess,
        window: Interval,
    ) -> (Result<Vec<Interval>, CalendarError>, ReadStats) {
        let none = ReadStats::default();
        if let Some(e) = wrong_provider(calendar) {
            return (Err(e), none);
        }
        let Some(path) = self.file(calendar.account()) else {
            return (Err(CalendarError::NotFound), none);
        };
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (Err(CalendarError::NotFound), none);
            }
            Err(_) => {
                return (
                    Err(CalendarError::Unavailable(
                        "the calendar file could not be read".into(),
                    )),
                    none,
                );
            }
        };
        let owner = owner_zone(self.users.as_ref(), calendar).await;
        parse(&[text], window, owner.as_ref(), &self.default_zone)
    }
}

#[async_trait]
impl CalendarProvider for FileCalendar {
    fn provider(&self) -> Provider {
        Provider::Ics
    }

    async fn free_busy(&self, calendars: &[ReadAccess], window: Interval) -> Vec<CalendarBusy> {
        let started = Instant::now();
        let reads = join_all(calendars.iter().map(|c| self.read(c, window))).await;
        gather("files", calendars, reads, started)
    }

    async fn book_event(
        &self,
        _calendar: &WriteAccess,
        _event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        Err(read_only())
    }

    async fn cancel_event(
        &self,
        _calendar: &WriteAccess,
        _event_id: &str,
    ) -> Result<(), CalendarError> {
        Err(read_only())
    }
}
