//! A load benchmark of the whole HTTP service on PostgreSQL, as figures printed to stdout
//! (not a timed test): the real router (`convene::http::router`) served on 127.0.0.1 over
//! `PgStore`, with the testkit's fakes for calendars, sign-in, mail and analytics, and an
//! in-process load generator (reqwest's connection pool, one tokio task per connection).
//!
//! - votes: guests of many meetings post `/api/v1/guest/{token}/votes` over 64 connections
//!   for 10 s (or 200,000 votes), spread so that two requests rarely touch one meeting; the
//!   worker does not run, so the figure is the API and the store;
//! - availability: an organizer asks `/api/v1/availability` for 50 connected participants
//!   (Google and Microsoft fakes answering in 20 ms, one batched call per provider) over 64
//!   connections for 5 s, then over one connection for 2 s (the latency without load);
//! - the resident memory (VmRSS) of this process, idle after start-up and after each load;
//! - then both again, posted by wrk (when installed) over 64 connections to `convene
//!   serve`, the binary, started in a process of its own on the same database (its worker
//!   running): votes for 10 s, then availability for 5 s with its calendars read over HTTP
//!   from stand-ins for Google's `freeBusy` and Graph's `getSchedule` (in this process,
//!   answering in 20 ms; one Google call and two Graph calls of 20 schedules a request),
//!   the participants' access tokens decrypted from the store; with the binary's idle and
//!   loaded resident memory, and whatever it logged as a warning or an error. That binary
//!   runs with analytics off (the default); a second one, with analytics sent to an
//!   Amplitude stand-in, takes the votes again, and the bench waits for every counted
//!   vote's event. Each binary run also reports the CPU time spent a request, by the
//!   whole machine, by the binary and by PostgreSQL (from `/proc`).
//!
//! Needs `DATABASE_URL` (a role that may create databases); without it, says so and exits.
//! With `LOAD_ONLY=availability`, only the availability requests posted by wrk to `convene
//! serve` run (a quicker comparison while working on that path).
//! Works in a scratch database it creates and drops. All traffic stays on 127.0.0.1.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p convene --bench load
//! ```
// The figures on stdout are this binary's whole point.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use convene::http::oauth::{LoginProviders, Logins, no_issuer};
use convene::http::web::Csrf;
use convene::http::{Limits, RateLimit, router};
use convene::state::App;
use convene::system::{SystemClock, UuidV7};
use convene::wiring::Database;
use convene_crypto::{KeyId, KeyRing};
use convene_domain::access::{ApiToken, BearerSecret, GuestTokens, SessionPolicy, TokenKind};
use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::meeting::{
    Attendance, GuestPass, Meeting, MeetingState, MeetingTitle, ParticipantKind,
};
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{
    Calendars, Clock, Credentials, GrantStore, IdGenerator, Identities, OutboxStore, SessionStore,
    TenantStore, UserStore,
};
use convene_domain::service::{
    Invitee, MeetingRequest, Ports, Requester, Scheduler, SchedulingPolicy,
};
use convene_domain::tenant::{Tenant, TenantKey};
use convene_domain::time::{Interval, MeetingLength, SignedDuration, Timestamp, WeeklyHours, Zone};
use convene_postgres::PgStore;
use convene_testkit::analytics::FakeAnalytics;
use convene_testkit::calendar::FakeCalendar;
use convene_testkit::identity::FakeIdentity;
use convene_testkit::mail::{FakeMailer, PlainComposer};
use futures::StreamExt as _;
use secrecy::SecretString;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::watch;

/// Concurrent connections of the load generator.
const CONNECTIONS: usize = 64;
/// How long votes are posted (after a warm-up of [`WARM_UP`]).
const VOTING: Duration = Duration::from_secs(10);
/// At most this many votes are posted.
const MAX_VOTES: u64 = 200_000;
/// Meetings voted on.
const MEETINGS: usize = 400;
/// Email guests per meeting; the first never votes, so every meeting stays open.
const GUESTS: usize = 6;
/// How long availability is asked (after a warm-up).
const ASKING: Duration = Duration::from_secs(5);
/// How long availability is asked over one connection, for the latency without load.
const UNLOADED: Duration = Duration::from_secs(2);
/// At most this many availability requests.
const MAX_ASKS: u64 = 100_000;
/// Connected participants of each availability request, the organizer included.
const CONNECTED: usize = 50;
/// How long each fake provider takes to answer.
const PROVIDER_LATENCY: Duration = Duration::from_millis(20);
/// Unmeasured load before each measurement (connections opened, statements prepared).
const WARM_UP: Duration = Duration::from_secs(1);
/// The guest link secret of both servers, so that either takes the links made here.
const GUEST_LINK_SECRET: &str = "the load benchmark's guest link secret (32+ bytes)";
/// The credentials key of both servers.
const CREDENTIALS_KEY: [u8; 32] = [7; 32];
/// How long `convene serve` may take to answer `/readyz`.
const SERVE_START: Duration = Duration::from_secs(30);
/// A request taking longer than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("skipped: DATABASE_URL not set");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Err(e) = runtime.block_on(run(&url)) {
        println!("load benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

/// Gives PostgreSQL's planner the statistics of the rows just written, as autovacuum
/// keeps them on a live database (it analyses a table after 10 % of it changed, within a
/// minute): without them the planner takes tables filled since the last analysis for
/// empty, and scans them whole instead of using their indexes.
async fn analyze(served: &Served) -> anyhow::Result<()> {
    sqlx::query("ANALYZE")
        .execute(served.store.pool())
        .await
        .context("ANALYZE")?;
    Ok(())
}

/// Creates the scratch database, runs the benchmark in it, and drops it whatever happened.
async fn run(url: &str) -> anyhow::Result<()> {
    let scratch = format!("convene_load_{}", std::process::id());
    let mut admin = PgConnection::connect(url)
        .await
        .context("DATABASE_URL connects")?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {scratch}")))
        .execute(&mut admin)
        .await
        .context("CREATE DATABASE")?;
    let outcome = tokio::spawn(Box::pin(bench(scratch_url(url, &scratch)))).await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE {scratch} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .context("DROP DATABASE")?;
    outcome.context("the benchmark panicked")?
}

/// `url` with its database replaced by `db`.
fn scratch_url(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match base.rfind('/') {
        Some(i) if base[..i].contains("://") && i > base.find("://").map_or(0, |s| s + 2) => {
            &base[..i]
        }
        _ => base,
    };
    if query.is_empty() {
        format!("{base}/{db}")
    } else {
        format!("{base}/{db}?{query}")
    }
}

/// This process's resident set, from `/proc/self/status`.
fn rss() -> String {
    rss_of("self")
}

/// The resident memory of process `pid` (or `self`), and its peak.
fn rss_of(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(peak)) => format!(
            "{:.1} MB (peak so far {:.1} MB)",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
        _ => format!("unknown (no /proc/{pid}/status)"),
    }
}

/// CPU time spent so far, in clock ticks: the whole machine's (every process and the
/// kernel), one process's and PostgreSQL's (every process named `postgres`), from
/// `/proc`.
#[derive(Clone, Copy)]
struct CpuTicks {
    machine: u64,
    process: u64,
    postgres: u64,
}

/// A process's user and system time in clock ticks, from the text of `/proc/{pid}/stat`:
/// after the command's closing parenthesis, state is field 3, utime 14 and stime 15.
fn stat_ticks(stat: &str) -> u64 {
    stat.rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// The CPU ticks of every running process named `postgres` (the server and its backends).
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .map(|stat| stat_ticks(&stat))
        .sum()
}

impl CpuTicks {
    fn now(pid: &str) -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        let machine = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|v| v.parse::<u64>().ok())
                    .enumerate()
                    .filter(|(i, _)| *i < 8 && *i != 3 && *i != 4)
                    .map(|(_, v)| v)
                    .sum()
            })
            .unwrap_or(0);
        let own = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        Self {
            machine,
            process: stat_ticks(&own),
            postgres: postgres_ticks(),
        }
    }

    /// Milliseconds of CPU per request since `before`: the machine's, the process's and
    /// PostgreSQL's.
    fn per_request(self, before: Self, requests: u64) -> (f64, f64, f64) {
        // Linux reports in USER_HZ, 100 a second on every architecture it runs on.
        let ms = |ticks: u64| ticks as f64 * 10.0 / requests.max(1) as f64;
        (
            ms(self.machine.saturating_sub(before.machine)),
            ms(self.process.saturating_sub(before.process)),
            ms(self.postgres.saturating_sub(before.postgres)),
        )
    }
}

/// The served app and what the load needs to reach it.
struct Served {
    store: Arc<PgStore>,
    scheduler: Scheduler,
    guest_tokens: GuestTokens,
    google: Arc<FakeCalendar>,
    microsoft: Arc<FakeCalendar>,
    base: String,
    _shutdown: watch::Sender<bool>,
}

/// Serves the real router over `PgStore` on 127.0.0.1 with the testkit's fakes around it.
async fn serve(url: &str) -> anyhow::Result<Served> {
    let ring = KeyRing::from_keys(
        [(KeyId::new("load").context("a key id")?, CREDENTIALS_KEY)],
        KeyId::new("load").context("a key id")?,
    )
    .context("a key ring")?;
    let store = Arc::new(
        PgStore::connect(url, ring)
            .await
            .context("the scratch database")?,
    );
    store.migrate().await.context("migrations")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7);
    let google = Arc::new(FakeCalendar::new(Provider::Google));
    let microsoft = Arc::new(FakeCalendar::new(Provider::Microsoft));
    let google_identity = Arc::new(FakeIdentity::new(Provider::Google));
    let microsoft_identity = Arc::new(FakeIdentity::new(Provider::Microsoft));
    let ports = Ports {
        store: store.clone(),
        calendars: Calendars::new()
            .with(google.clone())
            .with(microsoft.clone()),
        identities: Identities::new()
            .with(google_identity.clone())
            .with(microsoft_identity.clone()),
        composer: Arc::new(PlainComposer::new()),
        mailer: Arc::new(FakeMailer::new()),
        analytics: Arc::new(FakeAnalytics::new()),
        clock: clock.clone(),
        ids: ids.clone(),
    };
    let scheduler = Scheduler::new(ports, SchedulingPolicy::default());
    let secret = GUEST_LINK_SECRET.as_bytes();
    let guest_tokens = GuestTokens::new(secret).context("a guest link secret")?;
    let logins = LoginProviders::new()
        .with(google_identity, no_issuer())
        .with(microsoft_identity, no_issuer());
    let app = App {
        scheduler: scheduler.clone(),
        store: store.clone(),
        clock,
        ids,
        guest_tokens: guest_tokens.clone(),
        guest_link_grace: SignedDuration::from_hours(24 * 7),
        sessions: SessionPolicy::default(),
        base_url: "http://convene.test".into(),
        security_contact: "mailto:security@convene.test".into(),
        health: Arc::new(Database::Postgres(store.clone())),
        admin: convene::http::admin::AdminGate::default(),
        // One client address sends everything: the per-address and per-account limits
        // (600 and 1,200 a minute by default) are lifted, their checks still run.
        rate_limit: RateLimit::per_minute(u32::MAX),
        account_limit: RateLimit::per_minute(u32::MAX),
        logins: Logins::new(logins, secret),
        csrf: Csrf::new(secret),
        https: false,
    };
    let routes = router(
        Arc::new(app),
        Limits {
            body_bytes: 64 * 1024,
            timeout: Duration::from_secs(15),
            https: false,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(convene::serve(listener, routes, rx));
    Ok(Served {
        store,
        scheduler,
        guest_tokens,
        google,
        microsoft,
        base,
        _shutdown: tx,
    })
}

async fn bench(url: String) -> anyhow::Result<()> {
    let served = serve(&url).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let ready = http
        .get(format!("{}/readyz", served.base))
        .send()
        .await?
        .status();
    anyhow::ensure!(ready.is_success(), "/readyz answered {ready}");
    println!(
        "Convene load benchmark: the real router on {} over PostgreSQL (pool of {}), testkit fakes for providers and mail, worker not running",
        served.base,
        convene_postgres::DEFAULT_CONNECTIONS
    );
    println!(
        "{} cores; {CONNECTIONS} connections from an in-process load generator; server and load generator share this process and its CPU",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("RSS idle after start-up:   {}", rss());
    println!("  (RSS is the whole bench process: server, load generator and their data)");

    // Votes.
    let now = Timestamp::now();
    let tenant = Tenant {
        id: new_id(),
        key: TenantKey::Local {
            slug: "load".into(),
        },
        name: "Load".into(),
        settings: convene_domain::tenant::TenantSettings::default(),
        created_at: now,
    };
    served.store.insert_tenant(&tenant).await?;
    let organizer = user(&served.store, &tenant, "organizer@load.test").await?;
    let started = Instant::now();
    let votes = Arc::new(vote_targets(&served, &organizer).await?);
    analyze(&served).await?;
    println!(
        "set-up: {MEETINGS} meetings × {GUESTS} email guests created through the scheduler in {:.1} s; {} guests vote (the first guest of each meeting never does, so polls stay open)",
        started.elapsed().as_secs_f64(),
        votes.len()
    );
    if only_availability() {
        let asking = availability_request(&served, &tenant).await?;
        // The participants and their grants were just written: without their statistics
        // the planner reads them as empty tables (the full run analyses here too).
        analyze(&served).await?;
        return against_the_binary(&served, &url, &votes, &asking).await;
    }
    let post = {
        let (http, base, votes) = (http.clone(), served.base.clone(), Arc::clone(&votes));
        Arc::new(move |n: u64| {
            let target = &votes[(n % votes.len() as u64) as usize];
            http.post(format!("{base}/api/v1/guest/{}/votes", target.token))
                .header("content-type", "application/json")
                .body(target.bodies[((n / votes.len() as u64) % 2) as usize].clone())
        })
    };
    load(CONNECTIONS, WARM_UP, u64::MAX, &post).await;
    // Now that votes exist, so do their statistics.
    analyze(&served).await?;
    let queries = served.store.queries();
    let figures = load(CONNECTIONS, VOTING, MAX_VOTES, &post).await;
    let per_request = (served.store.queries() - queries) as f64 / figures.requests().max(1) as f64;
    println!(
        "votes:        {:>7.0} votes/s   p50 {:>6.1} ms   p99 {:>6.1} ms   {} votes in {:.1} s, {} errors{}; {per_request:.1} SQL statements a vote",
        figures.rate(),
        figures.percentile(0.50),
        figures.percentile(0.99),
        figures.ok,
        figures.elapsed.as_secs_f64(),
        figures.errors(),
        figures.error_detail(),
    );
    println!("RSS after the votes:       {}", rss());

    // Availability.
    let asking = availability_request(&served, &tenant).await?;
    let (token, body) = (asking.token.clone(), asking.body.clone());
    analyze(&served).await?;
    served.google.set_latency(Some(PROVIDER_LATENCY));
    served.microsoft.set_latency(Some(PROVIDER_LATENCY));
    let ask = {
        let (http, base) = (http.clone(), served.base.clone());
        Arc::new(move |_: u64| {
            http.post(format!("{base}/api/v1/availability"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
        })
    };
    load(CONNECTIONS, WARM_UP, u64::MAX, &ask).await;
    let figures = load(CONNECTIONS, ASKING, MAX_ASKS, &ask).await;
    println!(
        "availability: {:>7.0} requests/s p50 {:>6.1} ms   p99 {:>6.1} ms   {} requests in {:.1} s, {} errors{}; {CONNECTED} connected participants, Google and Microsoft fakes answering in {} ms",
        figures.rate(),
        figures.percentile(0.50),
        figures.percentile(0.99),
        figures.ok,
        figures.elapsed.as_secs_f64(),
        figures.errors(),
        figures.error_detail(),
        PROVIDER_LATENCY.as_millis(),
    );
    println!("RSS after availability:    {}", rss());
    let alone = load(1, UNLOADED, MAX_ASKS, &ask).await;
    println!(
        "availability, 1 connection (the unloaded latency): p50 {:.1} ms, p99 {:.1} ms, {} requests, {} errors",
        alone.percentile(0.50),
        alone.percentile(0.99),
        alone.ok,
        alone.errors(),
    );
    println!(
        "  (the calendar fakes keep every free/busy call they receive: {} so far)",
        served.google.free_busy_calls().len() + served.microsoft.free_busy_calls().len()
    );
    against_the_binary(&served, &url, &votes, &asking).await
}

/// Whether `LOAD_ONLY=availability` asks for the availability requests to the binary alone.
fn only_availability() -> bool {
    std::env::var("LOAD_ONLY").is_ok_and(|v| v == "availability")
}

/// A new UUIDv7 id of any kind, as the app makes them.
fn new_id<T: From<uuid::Uuid>>() -> T {
    (&UuidV7 as &dyn IdGenerator).new_id()
}

/// A user of `tenant` with office hours in UTC.
async fn user(store: &PgStore, tenant: &Tenant, email: &str) -> anyhow::Result<User> {
    let email = EmailAddress::parse(email)?;
    let name = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or("someone")
        .to_owned();
    let u = User {
        id: new_id(),
        tenant: tenant.id,
        name: PersonName::parse(&name)?,
        email,
        zone: Zone::parse("UTC")?,
        working_hours: WeeklyHours::standard(),
        buffers: Buffers::default(),
        role: convene_domain::people::Role::Member,
        status: convene_domain::people::UserStatus::Active,
        created_at: tenant.created_at,
    };
    store.insert_user(&u).await?;
    Ok(u)
}

/// A window of `days` whole days, starting at the next midnight (UTC) but one.
fn window(days: i64) -> anyhow::Result<Interval> {
    let now = Timestamp::now();
    let midnight = now
        .as_second()
        .div_euclid(86_400)
        .checked_add(2)
        .context("a date")?
        * 86_400;
    Ok(Interval::starting_at(
        Timestamp::from_second(midnight)?,
        SignedDuration::from_hours(24 * days),
    )?)
}

/// One guest's signed link and two vote bodies to alternate.
struct VoteTarget {
    token: String,
    bodies: [Vec<u8>; 2],
}

/// Creates the meetings and returns every voting guest, ordered so that neighbours are
/// guests of different meetings.
async fn vote_targets(served: &Served, organizer: &User) -> anyhow::Result<Vec<VoteTarget>> {
    let who = Requester {
        tenant: organizer.tenant,
        user: organizer.id,
        source: None,
    };
    let window = window(14)?;
    let meetings: Vec<anyhow::Result<Meeting>> = futures::stream::iter(0..MEETINGS)
        .map(|i| {
            let (scheduler, who) = (&served.scheduler, &who);
            async move {
                let invitees = (0..GUESTS)
                    .map(|g| {
                        Ok(Invitee {
                            name: None,
                            email: Some(EmailAddress::parse(&format!(
                                "guest{g}.m{i}@guests.test"
                            ))?),
                            attendance: Attendance::Required,
                            zone: None,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let request = MeetingRequest {
                    title: MeetingTitle::parse(&format!("Load {i}"))?,
                    duration: MeetingLength::from_minutes(30)?,
                    window,
                    invitees,
                };
                Ok(Box::pin(scheduler.create_meeting(who, request)).await?)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let expires_at = Timestamp::now() + SignedDuration::from_hours(24 * 30);
    let mut by_guest: Vec<Vec<VoteTarget>> = (1..GUESTS).map(|_| Vec::new()).collect();
    for m in meetings {
        let m = m?;
        anyhow::ensure!(
            matches!(m.state(), MeetingState::Polling { .. }),
            "a new meeting is polling"
        );
        let proposals: Vec<_> = m.proposals().iter().map(|p| p.id.as_uuid()).collect();
        let guests = m
            .participants()
            .iter()
            .filter(|p| matches!(p.kind, ParticipantKind::Email))
            .skip(1);
        for (g, p) in guests.enumerate() {
            let token = served.guest_tokens.sign(&GuestPass {
                tenant: m.tenant(),
                meeting: m.id(),
                participant: p.id,
                expires_at,
            });
            let body = |flip: usize| {
                let answers: Vec<_> = proposals
                    .iter()
                    .enumerate()
                    .map(|(k, id)| json!({"proposal": id, "available": (k + g + flip).is_multiple_of(2)}))
                    .collect();
                serde_json::to_vec(&json!({ "answers": answers }))
            };
            by_guest
                .get_mut(g)
                .context("a guest of the meeting")?
                .push(VoteTarget {
                    token,
                    bodies: [body(0)?, body(1)?],
                });
        }
    }
    Ok(by_guest.into_iter().flatten().collect())
}

/// An availability request ready to send, and what the calendars it reads hold.
struct Asking {
    /// The organizer's API token.
    token: String,
    /// The request body.
    body: Vec<u8>,
    /// Every participant's busy times, by calendar address (what the providers answer).
    busy: HashMap<String, Vec<Interval>>,
}

/// The organizer of the availability requests with [`CONNECTED`] connected participants
/// (the organizer included), half on Google and half on Microsoft, each busy twice a day.
/// Their credentials hold an access token valid for a day, as after a first refresh.
async fn availability_request(served: &Served, tenant: &Tenant) -> anyhow::Result<Asking> {
    let window = window(7)?;
    let mut emails = Vec::new();
    let mut organizer = None;
    let mut busy_by_address = HashMap::new();
    for i in 0..CONNECTED {
        let u = user(&served.store, tenant, &format!("person{i}@load.test")).await?;
        let (provider, calendar) = if i % 2 == 0 {
            (Provider::Google, &served.google)
        } else {
            (Provider::Microsoft, &served.microsoft)
        };
        let grant = Grant::new(
            new_id(),
            tenant.id,
            u.id,
            provider,
            u.email.to_string(),
            [Scope::ReadFreeBusy, Scope::WriteEvents],
            tenant.created_at,
        )?;
        served.store.save_grant(&grant, &[]).await?;
        let credentials = Credentials {
            refresh_token: SecretString::from(format!("refresh-{}", u.email)),
            access_token: Some(SecretString::from(format!("access-{}", u.email))),
            access_expires_at: Some(Timestamp::now() + SignedDuration::from_hours(24)),
        };
        served
            .store
            .put_credentials(tenant.id, grant.id(), &credentials)
            .await?;
        let busy = (0..7)
            .flat_map(|day| {
                let hour = 9 + (i as i64 + day) % 6;
                [hour, hour + 2].map(|h| {
                    Interval::starting_at(
                        window.start() + SignedDuration::from_hours(24 * day + h),
                        SignedDuration::from_mins(45),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        calendar.set_busy(u.email.as_str(), busy.clone());
        busy_by_address.insert(u.email.to_string(), busy);
        if i == 0 {
            organizer = Some(u);
        } else {
            emails.push(u.email.to_string());
        }
    }
    let organizer = organizer.context("an organizer")?;
    let secret = BearerSecret::issue(TokenKind::Api, tenant.id, &[9; 32]).context("a token")?;
    served
        .store
        .insert_api_token(&ApiToken {
            id: new_id(),
            tenant: tenant.id,
            user: organizer.id,
            label: "load".into(),
            token_hash: secret.hash(),
            created_at: tenant.created_at,
            expires_at: None,
            revoked_at: None,
        })
        .await?;
    let participants: Vec<_> = emails.iter().map(|e| json!({ "email": e })).collect();
    let body = serde_json::to_vec(&json!({
        "duration_minutes": 30,
        "window": {"start": window.start().to_string(), "end": window.end().to_string()},
        "participants": participants,
        "limit": 10,
    }))?;
    Ok(Asking {
        token: secret.expose().to_owned(),
        body,
        busy: busy_by_address,
    })
}

/// What one load run measured.
#[derive(Debug, Default)]
struct Figures {
    ok: u64,
    /// Non-2xx answers by status, and transport failures (status 0).
    failed: BTreeMap<u16, u64>,
    first_failure: Option<String>,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Figures {
    fn requests(&self) -> u64 {
        self.ok + self.errors()
    }

    fn errors(&self) -> u64 {
        self.failed.values().sum()
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `q` quantile of every request's latency, in milliseconds.
    fn percentile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1].as_secs_f64() * 1_000.0
    }

    fn error_detail(&self) -> String {
        if self.failed.is_empty() {
            return String::new();
        }
        let statuses: Vec<String> = self
            .failed
            .iter()
            .map(|(s, n)| match s {
                0 => format!("{n} transport failures"),
                s => format!("{n} × {s}"),
            })
            .collect();
        format!(
            " ({}; first: {})",
            statuses.join(", "),
            self.first_failure.as_deref().unwrap_or("?")
        )
    }
}

/// Sends `make(n)` for n = 0, 1, … over `connections` concurrent connections until
/// `duration` has passed or `max` requests were sent; every request's body is read.
async fn load<F>(connections: usize, duration: Duration, max: u64, make: &Arc<F>) -> Figures
where
    F: Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (make, next) = (make.clone(), next.clone());
            tokio::spawn(async move {
                let mut figures = Figures::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= max || Instant::now() >= deadline {
                        break;
                    }
                    let sent = Instant::now();
                    let failure = match make(n).send().await {
                        Ok(r) => {
                            let status = r.status();
                            match r.bytes().await {
                                Ok(_) if status.is_success() => None,
                                Ok(body) => Some((
                                    status.as_u16(),
                                    format!("{status}: {}", String::from_utf8_lossy(&body)),
                                )),
                                Err(e) => Some((0, e.to_string())),
                            }
                        }
                        Err(e) => Some((0, e.to_string())),
                    };
                    figures.latencies.push(sent.elapsed());
                    match failure {
                        None => figures.ok += 1,
                        Some((status, what)) => {
                            *figures.failed.entry(status).or_default() += 1;
                            figures.first_failure.get_or_insert(what);
                        }
                    }
                }
                figures
            })
        })
        .collect();
    let mut all = Figures::default();
    for task in tasks {
        let Ok(f) = task.await else {
            *all.failed.entry(0).or_default() += 1;
            continue;
        };
        all.ok += f.ok;
        for (s, n) in f.failed {
            *all.failed.entry(s).or_default() += n;
        }
        if all.first_failure.is_none() {
            all.first_failure = f.first_failure;
        }
        all.latencies.extend(f.latencies);
    }
    all.elapsed = started.elapsed();
    all.latencies.sort_unstable();
    all
}

/// Votes and availability requests posted by wrk, in a process of its own, to `convene
/// serve`, the binary, in a process of its own, over the same database: the shape an
/// operator runs (its worker draining the outbox the votes fill, its request logs, its
/// calendars read over HTTP from stand-ins for Google and Microsoft). Skipped, with a
/// message, when wrk is not installed.
async fn against_the_binary(
    served: &Served,
    url: &str,
    votes: &[VoteTarget],
    asking: &Asking,
) -> anyhow::Result<()> {
    let Some(wrk) = on_path("wrk") else {
        println!("against `convene serve`: skipped, wrk is not installed (apt-get install wrk)");
        return Ok(());
    };
    // The in-process server ran without a worker, so the messages of its set-up and votes
    // wait in the outbox; they are reported delivered here, so that the binary's worker
    // drains only what its own votes enqueue, as a running service's worker keeps up.
    let now = Timestamp::now();
    loop {
        let waiting = served
            .store
            .claim(now, SignedDuration::from_mins(10), 1_000)
            .await?;
        if waiting.is_empty() {
            break;
        }
        let ids: Vec<_> = waiting
            .iter()
            .map(|c| (c.message.tenant, c.message.id))
            .collect();
        served.store.complete_all(&ids, now).await?;
    }
    let providers = StandIn::start(asking.busy.clone()).await?;
    let binary = Binary::start(url, &providers.base, false).await?;
    println!(
        "convene serve (pid {}, its worker running, analytics off as by default, logs to a file) on {}: RSS idle after start-up {}",
        binary.pid,
        binary.base,
        rss_of(&binary.pid)
    );
    if !only_availability() {
        binary_votes(&wrk, &binary, votes)?;
        println!("convene serve RSS after the votes: {}", rss_of(&binary.pid));
    }

    // One request first: the binary must read every calendar from the stand-ins.
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/availability", binary.base))
        .bearer_auth(&asking.token)
        .header("content-type", "application/json")
        .body(asking.body.clone())
        .send()
        .await?;
    let status = answer.status();
    let said: serde_json::Value = answer.json().await?;
    anyhow::ensure!(
        status.is_success() && providers.calls() == 3,
        "convene serve's availability: {status}, {} provider calls (1 Google freeBusy and 2 Graph getSchedule expected): {said}",
        providers.calls()
    );
    let script = binary.dir.path().join("availability.lua");
    std::fs::write(&script, wrk_availability_script(asking)?)?;
    wrk_run(&wrk, &script, &binary.base, WARM_UP)?;
    let (before, cpu) = (providers.calls(), CpuTicks::now(&binary.pid));
    let figures = wrk_run(&wrk, &script, &binary.base, ASKING)?;
    let (machine, serve, postgres) = CpuTicks::now(&binary.pid).per_request(cpu, figures.requests);
    println!(
        "availability, wrk → convene serve: {:>7.0} requests/s p50 {:>6.1} ms   p99 {:>6.1} ms   {} requests in {}, {} errors; {CONNECTED} connected participants, {} calls to the Google and Graph stand-ins answering over HTTP in {} ms (max_concurrency {CONNECTIONS} per provider)",
        figures.rate,
        figures.p50_ms,
        figures.p99_ms,
        figures.requests,
        figures.elapsed,
        figures.errors,
        providers.calls() - before,
        PROVIDER_LATENCY.as_millis(),
    );
    println!(
        "  CPU a request: {machine:.3} ms in all (convene serve {serve:.3} ms, PostgreSQL {postgres:.3} ms; the rest wrk, the stand-ins and the kernel)"
    );
    println!(
        "convene serve RSS after availability: {}",
        rss_of(&binary.pid)
    );
    binary.stop().await?;
    if only_availability() {
        return Ok(());
    }

    // The votes again with analytics on: each vote also queues a `vote cast` event, which
    // the worker sends to the Amplitude stand-in while the votes go on.
    let binary = Binary::start(url, &providers.base, true).await?;
    println!(
        "convene serve (pid {}) again, its analytics sent to an Amplitude stand-in answering in {} ms",
        binary.pid,
        PROVIDER_LATENCY.as_millis(),
    );
    let accepted = binary_votes(&wrk, &binary, votes)?;
    let started = Instant::now();
    while providers.events() < accepted && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  the Amplitude stand-in received {} events for {accepted} votes counted, the last {:.1} s after the votes ended",
        providers.events(),
        started.elapsed().as_secs_f64(),
    );
    binary.stop().await
}

/// Posts the guests' votes to the binary with wrk (a warm-up, then [`VOTING`]), prints
/// the figures and answers how many votes it counted (wrk's requests less its errors).
fn binary_votes(
    wrk: &std::path::Path,
    binary: &Binary,
    votes: &[VoteTarget],
) -> anyhow::Result<u64> {
    let script = binary.dir.path().join("votes.lua");
    std::fs::write(&script, wrk_script(votes)?)?;
    let warm = wrk_run(wrk, &script, &binary.base, WARM_UP)?;
    let before = CpuTicks::now(&binary.pid);
    let figures = wrk_run(wrk, &script, &binary.base, VOTING)?;
    let (machine, serve, postgres) =
        CpuTicks::now(&binary.pid).per_request(before, figures.requests);
    println!(
        "votes, wrk → convene serve: {:>7.0} votes/s   p50 {:>6.1} ms   p99 {:>6.1} ms   {} votes in {}, {} errors (wrk: 2 threads, {CONNECTIONS} connections)",
        figures.rate,
        figures.p50_ms,
        figures.p99_ms,
        figures.requests,
        figures.elapsed,
        figures.errors
    );
    println!(
        "  CPU a vote: {machine:.3} ms in all (convene serve {serve:.3} ms, PostgreSQL {postgres:.3} ms; the rest wrk and the kernel)"
    );
    Ok((warm.requests + figures.requests).saturating_sub(warm.errors + figures.errors))
}

/// `convene serve` in a process of its own, on the benchmark's database, its calendars
/// at the stand-ins, logging to a file in its own directory.
struct Binary {
    server: tokio::process::Child,
    pid: String,
    base: String,
    log: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary and waits until it is ready.
    /// With `analytics`, its events go to the stand-ins' Amplitude; without, analytics
    /// is off (the default configuration).
    async fn start(url: &str, providers: &str, analytics: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let log = dir.path().join("serve.log");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_convene"));
        if analytics {
            command
                .env("CONVENE_ANALYTICS__BACKEND", "amplitude")
                .env(
                    "CONVENE_ANALYTICS__AMPLITUDE_URL",
                    format!("{providers}/amplitude"),
                )
                .env("CONVENE_ANALYTICS__AMPLITUDE_KEY", "load-amplitude-key")
                .env(
                    "CONVENE_ANALYTICS__PSEUDONYM_SECRET",
                    "the load benchmark's pseudonym secret",
                );
        }
        let mut server = command
            .arg("serve")
            .current_dir(dir.path())
            .env("DATABASE_URL", url)
            .env("CONVENE_BIND", format!("127.0.0.1:{port}"))
            .env("CONVENE_KEYS__GUEST_LINKS", GUEST_LINK_SECRET)
            .env("CONVENE_KEYS__CREDENTIALS", {
                use base64::Engine as _;
                format!(
                    "load:{}",
                    base64::engine::general_purpose::STANDARD.encode(CREDENTIALS_KEY)
                )
            })
            .env("CONVENE_LIMITS__PER_IP_PER_MINUTE", u32::MAX.to_string())
            .env(
                "CONVENE_LIMITS__PER_ACCOUNT_PER_MINUTE",
                u32::MAX.to_string(),
            )
            .env("CONVENE_MAIL__DIR", dir.path().join("mail"))
            .env("CONVENE_GOOGLE__CLIENT_ID", "load-google")
            .env("CONVENE_GOOGLE__CLIENT_SECRET", "load-google-secret")
            .env(
                "CONVENE_GOOGLE__TOKEN_URL",
                format!("{providers}/google/token"),
            )
            .env(
                "CONVENE_GOOGLE__CALENDAR_URL",
                format!("{providers}/google"),
            )
            .env("CONVENE_MICROSOFT__CLIENT_ID", "load-microsoft")
            .env("CONVENE_MICROSOFT__CLIENT_SECRET", "load-microsoft-secret")
            .env("CONVENE_MICROSOFT__LOGIN_URL", format!("{providers}/login"))
            .env("CONVENE_MICROSOFT__GRAPH_URL", format!("{providers}/graph"))
            // As many provider calls in flight as connections (the default, 16, would
            // measure the limit: 16 calls of 20 ms, three a request).
            .env("CONVENE_GOOGLE__MAX_CONCURRENCY", CONNECTIONS.to_string())
            .env(
                "CONVENE_MICROSOFT__MAX_CONCURRENCY",
                CONNECTIONS.to_string(),
            )
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::options().append(true).open(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("convene serve starts")?;
        let pid = server.id().context("convene serve's pid")?.to_string();
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if started.elapsed() > SERVE_START || server.try_wait()?.is_some() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                anyhow::bail!("convene serve did not become ready:\n{said}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            server,
            pid,
            base,
            log,
            dir,
        })
    }

    /// A graceful stop (SIGTERM: the worker finishes what it holds), which must end in a
    /// clean exit; then what the binary logged.
    async fn stop(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.pid])
            .status()
            .context("SIGTERM to convene serve")?;
        let stopped = tokio::time::timeout(Duration::from_secs(20), self.server.wait()).await;
        anyhow::ensure!(
            stopped.is_ok_and(|s| s.is_ok_and(|s| s.success())),
            "convene serve did not stop cleanly on SIGTERM"
        );
        let said = std::fs::read_to_string(&self.log)?;
        let alarming: Vec<&str> = said
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .collect();
        println!(
            "convene serve logged {} lines, {} of them warnings or errors{}",
            said.lines().count(),
            alarming.len(),
            alarming
                .first()
                .map(|l| format!(", the first: {l}"))
                .unwrap_or_default()
        );
        Ok(())
    }
}

/// Runs wrk (2 threads, [`CONNECTIONS`] connections) with `script` against `base` for
/// `duration`, outside the runtime's worker threads.
fn wrk_run(
    wrk: &std::path::Path,
    script: &std::path::Path,
    base: &str,
    duration: Duration,
) -> anyhow::Result<WrkFigures> {
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(wrk)
            .args([
                "-t2",
                &format!("-c{CONNECTIONS}"),
                &format!("-d{}s", duration.as_secs().max(1)),
                "--latency",
                "-s",
            ])
            .arg(script)
            .arg(base)
            .output()
    })?;
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout)?;
    WrkFigures::parse(&said).with_context(|| format!("wrk said:\n{said}"))
}

/// HTTP stand-ins for Google Calendar's `freeBusy` and Graph's `getSchedule`, shaped as
/// PROVIDERS.md and the adapters' tests have them, answering from fixed busy times after
/// [`PROVIDER_LATENCY`], and for Amplitude's HTTP V2 API (counting the events it takes,
/// after the same latency). Any other path is a 404 (no token refresh is expected: the
/// credentials hold valid access tokens). An answer is built once per distinct request
/// and then replayed, so that the stand-ins cost this machine little besides HTTP.
struct StandIn {
    base: String,
    calls: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
    _shutdown: watch::Sender<bool>,
}

impl StandIn {
    async fn start(busy: HashMap<String, Vec<Interval>>) -> anyhow::Result<Self> {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::routing::post;
        type Answer = fn(&HashMap<String, Vec<Interval>>, &serde_json::Value) -> serde_json::Value;
        /// What the stand-ins hold: the busy times, the calls so far, and each answer
        /// already given, by request body (the benchmark asks the same thing again and
        /// again: the providers' work must not eat this machine's cores).
        #[derive(Clone)]
        struct Held {
            busy: Arc<HashMap<String, Vec<Interval>>>,
            calls: Arc<AtomicU64>,
            events: Arc<AtomicU64>,
            answered: Arc<std::sync::Mutex<HashMap<Bytes, Bytes>>>,
        }
        /// Amplitude's HTTP V2 API: counts the events of a batch and takes them all.
        async fn amplitude(held: Held, sent: Bytes) -> impl axum::response::IntoResponse {
            #[derive(serde::Deserialize)]
            struct Batch {
                events: Vec<serde::de::IgnoredAny>,
            }
            tokio::time::sleep(PROVIDER_LATENCY).await;
            let Ok(batch) = serde_json::from_slice::<Batch>(&sent) else {
                return (
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(json!({"code": 400, "error": "not a batch of events"})),
                );
            };
            let n = batch.events.len() as u64;
            held.events.fetch_add(n, Ordering::Relaxed);
            (
                axum::http::StatusCode::OK,
                axum::Json(json!({"code": 200, "events_ingested": n})),
            )
        }
        async fn answer(
            held: Held,
            asked: Bytes,
            make: Answer,
        ) -> impl axum::response::IntoResponse {
            held.calls.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(PROVIDER_LATENCY).await;
            let known = held
                .answered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&asked)
                .cloned();
            let body = match known {
                Some(body) => body,
                None => {
                    let request = serde_json::from_slice(&asked).unwrap_or_default();
                    let body = Bytes::from(make(&held.busy, &request).to_string());
                    held.answered
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(asked, body.clone());
                    body
                }
            };
            ([("content-type", "application/json")], body)
        }
        fn free_busy(
            busy: &HashMap<String, Vec<Interval>>,
            asked: &serde_json::Value,
        ) -> serde_json::Value {
            let calendars: serde_json::Map<String, serde_json::Value> = asked["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| item["id"].as_str())
                .map(|id| {
                    let periods: Vec<_> = busy
                        .get(id)
                        .into_iter()
                        .flatten()
                        .map(
                            |b| json!({"start": b.start().to_string(), "end": b.end().to_string()}),
                        )
                        .collect();
                    (id.to_owned(), json!({ "busy": periods }))
                })
                .collect();
            json!({ "kind": "calendar#freeBusy", "timeMin": asked["timeMin"], "timeMax": asked["timeMax"], "calendars": calendars })
        }
        fn schedules(
            busy: &HashMap<String, Vec<Interval>>,
            asked: &serde_json::Value,
        ) -> serde_json::Value {
            let graph_time = |t: Timestamp| {
                json!({
                    "dateTime": format!("{}.0000000", t.to_string().trim_end_matches('Z')),
                    "timeZone": "UTC",
                })
            };
            let value: Vec<_> = asked["schedules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|id| id.as_str())
                .map(|id| {
                    let items: Vec<_> = busy
                        .get(id)
                        .into_iter()
                        .flatten()
                        .map(|b| json!({"status": "busy", "start": graph_time(b.start()), "end": graph_time(b.end())}))
                        .collect();
                    json!({ "scheduleId": id, "availabilityView": "", "scheduleItems": items })
                })
                .collect();
            json!({ "value": value })
        }
        let held = Held {
            busy: Arc::new(busy),
            calls: Arc::new(AtomicU64::new(0)),
            events: Arc::new(AtomicU64::new(0)),
            answered: Arc::default(),
        };
        let routes = axum::Router::new()
            .route(
                "/google/freeBusy",
                post(|State(held): State<Held>, asked: Bytes| answer(held, asked, free_busy)),
            )
            .route(
                "/graph/me/calendar/getSchedule",
                post(|State(held): State<Held>, asked: Bytes| answer(held, asked, schedules)),
            )
            .route(
                "/amplitude/2/httpapi",
                post(|State(held): State<Held>, sent: Bytes| amplitude(held, sent)),
            )
            .with_state(held.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, mut rx) = watch::channel(false);
        tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            axum::serve(listener, routes)
                .with_graceful_shutdown(stopped)
                .await
        });
        Ok(Self {
            base,
            calls: held.calls,
            events: held.events,
            _shutdown: tx,
        })
    }

    /// Calendar calls answered so far.
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Analytics events received so far.
    fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

/// wrk's script for the availability requests: one organizer, one body.
fn wrk_availability_script(asking: &Asking) -> anyhow::Result<String> {
    let body = std::str::from_utf8(&asking.body)?;
    anyhow::ensure!(!body.contains("]==]"), "a body Lua cannot quote");
    anyhow::ensure!(
        asking
            .token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~+/=".contains(c)),
        "a token Lua cannot quote"
    );
    Ok(format!(
        r#"wrk.method = "POST"
wrk.path = "/api/v1/availability"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {}"
"#,
        asking.token
    ))
}

/// An executable of this name on `PATH`.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// wrk's script: every voting guest's path and both answer bodies; each wrk thread
/// starts at its own place and walks the guests in order (neighbours are guests of
/// different meetings), flipping the answers on each pass.
fn wrk_script(votes: &[VoteTarget]) -> anyhow::Result<String> {
    let mut lua = String::from("local targets = {\n");
    for v in votes {
        let [a, b] = &v.bodies;
        let (a, b) = (std::str::from_utf8(a)?, std::str::from_utf8(b)?);
        anyhow::ensure!(
            !a.contains("]==]") && !b.contains("]==]"),
            "a body Lua cannot quote"
        );
        lua.push_str(&format!(
            "  {{ \"/api/v1/guest/{}/votes\", [==[{a}]==], [==[{b}]==] }},\n",
            v.token
        ));
    }
    lua.push_str(
        r#"}
local threads = 0
function setup(thread)
  thread:set("first", threads * 977)
  threads = threads + 1
end
local n, flip = 0, 2
function init(args)
  n = first % #targets
end
function request()
  n = n + 1
  if n > #targets then
    n, flip = 1, 5 - flip
  end
  local t = targets[n]
  return wrk.format("POST", t[1], { ["Content-Type"] = "application/json" }, t[flip])
end
"#,
    );
    Ok(lua)
}

/// What wrk printed, in numbers.
#[derive(Debug)]
struct WrkFigures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    elapsed: String,
    errors: u64,
}

impl WrkFigures {
    fn parse(out: &str) -> anyhow::Result<Self> {
        let after = |prefix: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
        };
        let millis = |v: &str| -> anyhow::Result<f64> {
            let split = v
                .find(|c: char| c.is_ascii_alphabetic())
                .context("a unit")?;
            let (n, unit) = v.split_at(split);
            let n: f64 = n.parse()?;
            Ok(match unit {
                "us" => n / 1000.0,
                "ms" => n,
                "s" => n * 1000.0,
                "m" => n * 60_000.0,
                other => anyhow::bail!("unknown unit {other}"),
            })
        };
        let (requests, elapsed) = out
            .lines()
            .find_map(|l| {
                let l = l.trim();
                let (n, rest) = l.split_once(" requests in ")?;
                Some((n.parse::<u64>().ok()?, rest.split(',').next()?.to_owned()))
            })
            .context("the request count")?;
        let socket_errors: u64 = after("Socket errors:")
            .map(|s| {
                s.split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        let non_2xx: u64 = after("Non-2xx or 3xx responses:")
            .map(str::parse)
            .transpose()?
            .unwrap_or(0);
        Ok(Self {
            rate: after("Requests/sec:").context("Requests/sec")?.parse()?,
            p50_ms: millis(after("50%").context("the median")?)?,
            p99_ms: millis(after("99%").context("the 99th percentile")?)?,
            requests,
            elapsed,
            errors: socket_errors + non_2xx,
        })
    }
}
