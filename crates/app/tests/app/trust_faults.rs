//! Fault tolerance, attacked:
//!
//! - `convene worker` killed with SIGKILL while it delivers 1,000 outbox messages, then
//!   restarted: every message arrives (emails as `.eml` files named by their idempotency
//!   key, analytics at an Amplitude stand-in counted by `insert_id`), and a message
//!   arrives twice only when it was in flight at the kill, at a receiver that drops
//!   repeats of an idempotency key. On SQLite, and on PostgreSQL when `DATABASE_URL` is set.
//! - A private PostgreSQL cluster stopped (`pg_ctl stop -m immediate`) for 10 seconds
//!   under write load on `convene serve`: `/readyz` says 503, requests fail quickly with
//!   503 problem documents instead of hanging, service comes back by itself, and every
//!   write that was answered 2xx is still there.
//! - Google timing out or answering 500/429 for a whole meeting, with the real wiring
//!   (SQLite, templates, file mailer, the Google adapter against wiremock) and the
//!   worker's clock driven by the test so retries spanning hours run in seconds: the
//!   meeting completes through retries, or the organizer is told; it never stalls
//!   silently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use convene::config::{Config, WorkerConfig};
use convene::http::oauth::{LoginProviders, no_issuer};
use convene::http::{Limits, router};
use convene::system::SystemClock;
use convene::wiring::{Database, Providers, READY_TIMEOUT, google_config, key_ring, wire_with};
use convene::worker::Worker;
use convene_domain::access::{ApiToken, BearerSecret, SessionPolicy, TokenKind};
use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MessageId, TenantId};
use convene_domain::outbox::{
    AnalyticsEvent, AnalyticsKind, Notification, OutboxMessage, OutboxPayload, Recipient,
};
use convene_domain::people::{PersonName, User};
use convene_domain::ports::{Calendars, Clock, Credentials, OutboxStore, Store};
use convene_domain::time::{SignedDuration, Timestamp};
use convene_testkit::{ManualClock, World};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::binary::{Convene, base_env, credential_keys, free_port, peer_present, sqlite_url};
use super::harness::ScratchDatabase;
use super::haystack::mail_folder;

// ---------------------------------------------------------------------------------------
// A worker killed in the middle of delivering 1,000 messages.
// ---------------------------------------------------------------------------------------

const MESSAGES: usize = 1_000;
/// Messages a lane claims at once.
const BATCH: usize = 100;
/// Batches the worker delivers at once: at most `LANES * BATCH` messages can be in
/// flight at the kill.
const LANES: usize = 2;
const SENDER_DOMAIN: &str = "convene.test";

fn now_micros() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap()
}

/// Half emails (each to its own recipient), half analytics events, in one tenant.
fn outbox_messages(tenant: TenantId) -> Vec<OutboxMessage> {
    let now = now_micros();
    (0..MESSAGES)
        .map(|i| {
            let payload = if i % 2 == 0 {
                OutboxPayload::Notify(Box::new(Notification::GrantRevoked {
                    to: Recipient {
                        participant: None,
                        name: PersonName::parse(&format!("Receiver {i}")).unwrap(),
                        email: EmailAddress::parse(&format!("r{i}@receivers.test")).unwrap(),
                        zone: None,
                    },
                    provider: Provider::Google,
                }))
            } else {
                OutboxPayload::Analytics(AnalyticsEvent {
                    kind: AnalyticsKind::VoteCast,
                    tenant,
                    user: None,
                    at: now,
                    properties: BTreeMap::from([("n".to_owned(), json!(i))]),
                })
            };
            OutboxMessage {
                id: MessageId::from_uuid(uuid::Uuid::now_v7()),
                tenant,
                key: format!("fault-test:{i}"),
                payload,
                created_at: now,
            }
        })
        .collect()
}

/// The `insert_id`s of every event Amplitude received, in arrival order, with the
/// index of the request each came in.
async fn received_events(amplitude: &MockServer) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, r) in amplitude
        .received_requests()
        .await
        .unwrap()
        .iter()
        .enumerate()
    {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        for e in body["events"].as_array().unwrap() {
            out.push((n, e["insert_id"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// The message ids the file mailer logged writing (`email written to a file`).
fn written(logs: &str) -> Vec<String> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "email written to a file")
        .map(|v| v["fields"]["message_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The messages the worker logged completing (`delivered`).
fn delivered_before_kill(logs: &str) -> BTreeSet<String> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "delivered")
        .map(|v| v["fields"]["message_id"].as_str().unwrap().to_owned())
        .collect()
}

fn eml_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .count()
        })
        .unwrap_or(0)
}

async fn killed_worker_loses_nothing(url: &str, dir: &Path) {
    let keys = credential_keys();
    let ring = convene_crypto::KeyRing::parse(&keys.0, &keys.1).unwrap();
    let database = Database::open(url, ring).await.unwrap();
    database.migrate().await.unwrap();
    let store = database.store();
    let world = World::new();
    store.insert_tenant(&world.tenant).await.unwrap();
    let messages = outbox_messages(world.tenant.id);
    for chunk in messages.chunks(100) {
        store.enqueue(chunk).await.unwrap();
    }
    let emails: BTreeSet<String> = messages
        .iter()
        .filter(|m| matches!(m.payload, OutboxPayload::Notify(_)))
        .map(|m| m.id.to_string())
        .collect();
    let events: BTreeSet<String> = messages
        .iter()
        .filter(|m| matches!(m.payload, OutboxPayload::Analytics(_)))
        .map(|m| m.id.to_string())
        .collect();
    let recipient: HashMap<String, String> = messages
        .iter()
        .filter_map(|m| Some((m.id.to_string(), m.payload.recipient()?.to_string())))
        .collect();

    let amplitude = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2/httpapi"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"code": 200}))
                .set_delay(Duration::from_millis(40)),
        )
        .mount(&amplitude)
        .await;
    let mail = dir.join("mail");
    let env = base_env(url, &keys)
        // The worker logs each delivered message at DEBUG.
        .with("CONVENE_LOG__LEVEL", "info,convene::worker=debug")
        .with("CONVENE_MAIL__BACKEND", "file")
        .with("CONVENE_MAIL__DIR", mail.display().to_string())
        .with(
            "CONVENE_MAIL__FROM_ADDRESS",
            format!("convene@{SENDER_DOMAIN}"),
        )
        .with("CONVENE_ANALYTICS__BACKEND", "amplitude")
        .with("CONVENE_ANALYTICS__AMPLITUDE_URL", amplitude.uri())
        .with("CONVENE_ANALYTICS__AMPLITUDE_KEY", "amplitude-key")
        .with(
            "CONVENE_ANALYTICS__PSEUDONYM_SECRET",
            "analytics pseudonym secret of the fault tests",
        )
        .with("CONVENE_WORKER__BATCH", BATCH.to_string())
        .with("CONVENE_WORKER__LANES", LANES.to_string())
        .with("CONVENE_WORKER__POLL_MS", "20")
        .with("CONVENE_WORKER__LEASE_SECS", "2");

    // Deliver until a little more than half has arrived (more than both lanes can hold:
    // some batches were completed), then kill the worker outright.
    let first = Convene::start(&["worker"], &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let arrived = eml_count(&mail) + received_events(&amplitude).await.len();
        if arrived >= MESSAGES / 2 + 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker delivered only {arrived} messages in 30 s:\n{}",
            first.logs()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first_logs = tokio::task::spawn_blocking(move || first.kill())
        .await
        .unwrap();
    let requests_before_kill = amplitude.received_requests().await.unwrap().len();
    let arrived_at_kill = eml_count(&mail) + received_events(&amplitude).await.len();
    let counts = store.outbox_counts().await.unwrap();
    assert!(
        counts.pending + counts.in_flight > 0,
        "the kill landed before the end of the delivery: {counts:?}"
    );
    assert_eq!(counts.dead, 0);

    // A new worker finishes the job (in-flight claims lapse after the 2 s lease).
    let second = Convene::start(&["worker"], &env);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let c = store.outbox_counts().await.unwrap();
        if c.delivered as usize == MESSAGES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart, still {c:?}:\n{}",
            second.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second_logs = tokio::task::spawn_blocking(move || second.stop())
        .await
        .unwrap();
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.in_flight, counts.dead),
        (0, 0, 0),
        "{counts:?}"
    );

    // Emails: exactly one file per message, named by its idempotency key, which is also
    // its Message-ID; nothing half-written left behind.
    let leftovers: Vec<String> = std::fs::read_dir(&mail)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".eml"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let files = mail_folder(&mail);
    let delivered: BTreeSet<String> = files
        .iter()
        .map(|m| m.file.trim_end_matches(".eml").to_owned())
        .collect();
    assert_eq!(files.len(), emails.len());
    assert_eq!(delivered, emails, "every email arrived, and nothing else");
    for m in &files {
        let id = m.file.trim_end_matches(".eml");
        assert_eq!(m.message_id, format!("{id}@{SENDER_DOMAIN}"));
        assert_eq!(m.to, recipient[id], "{id} went to its own recipient");
    }
    let (before, after) = (written(&first_logs), written(&second_logs));
    let completed = delivered_before_kill(&first_logs);
    let sent_twice: BTreeSet<&String> = before.iter().filter(|id| after.contains(id)).collect();
    assert!(
        sent_twice.len() <= LANES * BATCH,
        "only messages in flight at the kill are sent again: {}",
        sent_twice.len()
    );
    assert!(
        completed.len() >= MESSAGES / 2 - LANES * BATCH,
        "the first worker logged what it completed: {}",
        completed.len()
    );
    let in_batches: u64 = first_logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "outbox batch handled")
        .filter_map(|v| v["fields"]["delivered"].as_u64())
        .sum();
    assert!(
        in_batches >= completed.len() as u64,
        "one INFO line a batch counts what it delivered: {in_batches} for {}",
        completed.len()
    );
    for id in &sent_twice {
        assert!(
            !completed.contains(*id),
            "{id} was sent again though the outbox knew it delivered"
        );
    }
    let logged: BTreeSet<String> = before.iter().chain(&after).cloned().collect();
    assert!(logged.is_subset(&emails));

    // Analytics: every event arrived; repeats only of events sent before the kill, in
    // the batches that were in flight, each repeat carrying the same insert_id (Amplitude
    // drops repeats of an insert_id).
    let received = received_events(&amplitude).await;
    let ids: BTreeSet<String> = received.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        ids, events,
        "every analytics event arrived, and nothing else"
    );
    let mut times: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (request, id) in &received {
        times.entry(id).or_default().push(*request);
    }
    let repeated: Vec<(&&str, &Vec<usize>)> = times.iter().filter(|(_, r)| r.len() > 1).collect();
    assert!(
        repeated.len() <= LANES * BATCH,
        "{} repeated",
        repeated.len()
    );
    for (id, requests) in &repeated {
        assert!(
            !completed.contains(**id),
            "{id} was sent again though the outbox knew it delivered"
        );
        assert_eq!(requests.len(), 2, "{id} arrived {} times", requests.len());
        assert!(
            requests[0] < requests_before_kill && requests[1] >= requests_before_kill,
            "{id} was repeated only across the kill: requests {requests:?}, kill after {requests_before_kill}"
        );
    }
    eprintln!(
        "killed with {arrived_at_kill} of {MESSAGES} arrived; {} emails and {} events sent twice",
        sent_twice.len(),
        repeated.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_delivery_loses_nothing_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    killed_worker_loses_nothing(&sqlite_url(dir.path()), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_delivery_loses_nothing_over_postgresql() {
    let url = std::env::var("DATABASE_URL").ok();
    if !peer_present("PostgreSQL (DATABASE_URL)", url.is_some()) {
        return;
    }
    let scratch = ScratchDatabase::create(&url.unwrap(), "killed_worker").await;
    let dir = tempfile::tempdir().unwrap();
    let target = scratch.url.clone();
    let path = dir.path().to_owned();
    let outcome =
        tokio::spawn(async move { killed_worker_loses_nothing(&target, &path).await }).await;
    scratch.drop_it().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL stopped for 10 seconds under load.
// ---------------------------------------------------------------------------------------

/// PostgreSQL's server programs: `/usr/lib/postgresql/<newest>/bin`, else `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("pg_ctl").exists() && p.join("initdb").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL cluster of this test's own, on a free port, so stopping it disturbs no
/// other test. initdb refuses to run as root: then it runs as the `postgres` user.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn create(bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres: is_root(),
        };
        if cluster.as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "the cluster's folder is given to the postgres user");
        }
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start();
        cluster
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops it as a crash would: no checkpoint, connections cut.
    fn stop_immediately(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// One request of the load and how it went.
#[derive(Clone, Debug)]
struct Outcome {
    started: Instant,
    latency: Duration,
    /// `None`: no answer (the client gave up or the connection broke).
    status: Option<StatusCode>,
    problem: bool,
    /// The id of the token a 201 created.
    created: Option<String>,
}

async fn timed(req: reqwest::RequestBuilder) -> Outcome {
    let started = Instant::now();
    let result = req.send().await;
    let (status, problem, body) = match result {
        Ok(r) => {
            let status = r.status();
            let problem = r
                .headers()
                .get("content-type")
                .is_some_and(|c| c == "application/problem+json");
            (Some(status), problem, r.text().await.unwrap_or_default())
        }
        Err(_) => (None, false, String::new()),
    };
    let created = (status == Some(StatusCode::CREATED))
        .then(|| serde_json::from_str::<Value>(&body).ok())
        .flatten()
        .and_then(|v| v["id"].as_str().map(str::to_owned));
    Outcome {
        started,
        latency: started.elapsed(),
        status,
        problem,
        created,
    }
}

/// Longest a request may take while the database is down: the store's wait for a
/// connection (5 s) and a margin. The request timeout (15 s) must never be what answers.
const OUTAGE_LATENCY: Duration = Duration::from_secs(7);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_stopped_for_ten_seconds_is_reported_and_survived() {
    let bin = postgres_bin();
    if !peer_present("PostgreSQL server programs (initdb, pg_ctl)", bin.is_some()) {
        return;
    }
    let bin = bin.unwrap();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(move || Cluster::create(bin))
            .await
            .unwrap(),
    );

    // Ada and her API token, straight into the database.
    let keys = credential_keys();
    let ring = convene_crypto::KeyRing::parse(&keys.0, &keys.1).unwrap();
    let database = Database::open(&cluster.url(), ring).await.unwrap();
    database.migrate().await.unwrap();
    let store = database.store();
    let world = World::new();
    store.insert_tenant(&world.tenant).await.unwrap();
    let ada = world.user("ada@outage.test", "UTC");
    store.insert_user(&ada).await.unwrap();
    let token = api_token(store.as_ref(), &ada).await;
    drop(store);
    drop(database);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env = base_env(&cluster.url(), &keys)
        .with("CONVENE_LOG__LEVEL", "info")
        .with("CONVENE_BIND", format!("127.0.0.1:{port}"))
        .with("CONVENE_BASE_URL", base.clone())
        .with(
            "CONVENE_MAIL__DIR",
            cluster.dir.path().join("mail").display().to_string(),
        )
        .with("CONVENE_LIMITS__PER_IP_PER_MINUTE", "100000")
        .with("CONVENE_LIMITS__PER_ACCOUNT_PER_MINUTE", "100000");
    let serve = Convene::serve(&env, &base).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Three writers create API tokens without pause; a probe asks /readyz.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let probes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut load = Vec::new();
    for w in 0..3 {
        let (http, base, token, stop, writes) = (
            http.clone(),
            base.clone(),
            token.clone(),
            stop.clone(),
            writes.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let o = timed(
                    http.post(format!("{base}/api/v1/tokens"))
                        .bearer_auth(&token)
                        .json(&json!({"label": format!("writer {w} #{n}")})),
                )
                .await;
                writes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(o);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }
    {
        let (http, base, stop, probes) = (http.clone(), base.clone(), stop.clone(), probes.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let o = timed(http.get(format!("{base}/readyz"))).await;
                probes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(o);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_immediately())
        .await
        .unwrap();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    // PostgreSQL may accept connections a little before `pg_ctl start` returns.
    let restarting = Instant::now();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start())
        .await
        .unwrap();
    let up = Instant::now();

    // Service resumes by itself: a write answered 201 after the restart.
    let deadline = up + Duration::from_secs(30);
    let resumed = loop {
        let w = writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(o) = w
            .iter()
            .find(|o| o.started > up && o.status == Some(StatusCode::CREATED))
        {
            break o.started + o.latency;
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded within 30 s of PostgreSQL's return:\n{}",
            serve.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    let writes = writes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let probes = probes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();

    // No request hung: each was answered, and quickly.
    for o in writes.iter().chain(&probes) {
        assert!(o.status.is_some(), "a request got no answer: {o:?}");
        assert!(
            o.latency < OUTAGE_LATENCY,
            "a request took {:?} (status {:?})",
            o.latency,
            o.status
        );
    }
    // While the database was down: every answer a 503 problem document. (An answer in
    // the first half second may still be of a request the database finished before.)
    let settled = down + Duration::from_millis(500);
    let answered_down = |o: &&Outcome| {
        let answered = o.started + o.latency;
        answered > settled && answered < restarting
    };
    let during: Vec<&Outcome> = writes.iter().filter(answered_down).collect();
    assert!(
        during.len() >= 3,
        "writes were answered during the outage: {}",
        during.len()
    );
    for o in &during {
        assert_eq!(o.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{o:?}");
        assert!(o.problem, "a 503 problem document: {o:?}");
    }
    let readiness: Vec<&Outcome> = probes.iter().filter(answered_down).collect();
    assert!(readiness.len() >= 3, "/readyz was asked during the outage");
    for o in &readiness {
        assert_eq!(
            o.status,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "/readyz: {o:?}"
        );
        assert!(o.problem, "/readyz: {o:?}");
        assert!(
            o.latency < READY_TIMEOUT + Duration::from_millis(500),
            "/readyz answers within its bound: {o:?}"
        );
    }
    assert!(
        probes
            .iter()
            .any(|o| o.started > resumed && o.status == Some(StatusCode::OK)),
        "/readyz is 200 again"
    );
    assert!(
        writes
            .iter()
            .any(|o| o.started + o.latency < down && o.status == Some(StatusCode::CREATED)),
        "writes succeeded before the outage"
    );
    assert!(
        resumed < up + Duration::from_secs(15),
        "service resumed {:?} after PostgreSQL did",
        resumed - up
    );

    // Every write answered 201 is stored.
    let listed: Value = http
        .get(format!("{base}/api/v1/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let accepted: Vec<&str> = writes.iter().filter_map(|o| o.created.as_deref()).collect();
    let lost: Vec<&&str> = accepted
        .iter()
        .filter(|id| !stored.contains(**id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} accepted writes lost: {lost:?}",
        lost.len()
    );
    eprintln!(
        "{} writes ({} accepted, {} during the outage), {} readiness probes; resumed {:?} after PostgreSQL",
        writes.len(),
        accepted.len(),
        during.len(),
        probes.len(),
        resumed - up
    );
    let logs = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// A personal API token of `user`, stored hashed; returns the secret.
async fn api_token(store: &dyn Store, user: &User) -> String {
    let secret = BearerSecret::issue(
        TokenKind::Api,
        user.tenant,
        uuid::Uuid::now_v7().as_bytes().repeat(2).as_slice(),
    )
    .unwrap();
    store
        .insert_api_token(&ApiToken {
            id: convene_domain::ids::ApiTokenId::from_uuid(uuid::Uuid::now_v7()),
            tenant: user.tenant,
            user: user.id,
            label: "tests".into(),
            token_hash: secret.hash(),
            created_at: now_micros(),
            expires_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    secret.expose().to_owned()
}

// ---------------------------------------------------------------------------------------
// A calendar provider failing for a whole meeting.
// ---------------------------------------------------------------------------------------

/// How Google fails.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// Never answers in time.
    Timeout,
    /// 500 Internal Server Error.
    ServerError,
    /// 429 with a Retry-After of two minutes.
    RateLimited,
}

impl Failure {
    fn response(self) -> ResponseTemplate {
        match self {
            Self::Timeout => ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(3)),
            Self::ServerError => ResponseTemplate::new(500).set_body_json(json!({
                "error": {"code": 500, "message": "Backend Error",
                          "errors": [{"domain": "global", "reason": "backendError"}]}
            })),
            Self::RateLimited => ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(json!({
                    "error": {"code": 429, "message": "Rate Limit Exceeded",
                              "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded"}]}
                })),
        }
    }
}

fn free_busy_ok(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let calendars: serde_json::Map<String, Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_owned(), json!({"busy": []})))
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"],
        "calendars": calendars,
    }))
}

fn event_ok(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    ResponseTemplate::new(200).set_body_json(json!({
        "id": body["id"], "status": "confirmed", "hangoutLink": "https://meet.google.com/flt-rec-ovr",
        "conferenceData": {"entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/flt-rec-ovr"}]}
    }))
}

/// Google's free/busy: failing as `failure` says while `down` is set, else answering.
struct Outage {
    down: Arc<AtomicBool>,
    failure: Failure,
}

impl wiremock::Respond for Outage {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.down.load(Ordering::SeqCst) {
            self.failure.response()
        } else {
            free_busy_ok(request)
        }
    }
}

/// Convene over its real wiring and the Google adapter against wiremock; the worker's
/// clock is the test's.
struct CalendarFaults {
    dir: tempfile::TempDir,
    google: MockServer,
    base: String,
    http: reqwest::Client,
    sqlite: Arc<convene_sqlite::SqliteStore>,
    worker: Worker,
    clock: ManualClock,
    organizer: User,
    token: String,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

const GUEST: &str = "guest@outside.test";

impl CalendarFaults {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let google = MockServer::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (keys, current) = credential_keys();
        let g = google.uri();
        let mut config = Config {
            database_url: sqlite_url(dir.path()),
            base_url: base.clone(),
            ..Config::default()
        };
        config.keys.credentials = Some(SecretString::from(keys));
        config.keys.current = Some(current);
        config.keys.guest_links = Some(SecretString::from(
            "calendar faults guest link secret, 32+ bytes".to_owned(),
        ));
        config.mail.dir = dir.path().join("mail");
        config.google.client_id = Some("convene-client".into());
        config.google.client_secret = Some(SecretString::from("secret".to_owned()));
        config.google.token_url = format!("{g}/token");
        config.google.revoke_url = format!("{g}/revoke");
        config.google.userinfo_url = format!("{g}/v1/userinfo");
        config.google.calendar_url = format!("{g}/calendar/v3");
        let database = Database::open(&config.database_url, key_ring(&config).unwrap())
            .await
            .unwrap();
        database.migrate().await.unwrap();
        let Database::Sqlite(sqlite) = database.clone() else {
            unreachable!("a sqlite: URL opens SQLite")
        };
        let store = database.store();
        // The adapter as configured, with timeouts short enough for a test: one retry,
        // 300 ms per attempt, and a Retry-After over 3 s handed back to the outbox.
        let mut google_settings = google_config(&config).unwrap().unwrap();
        google_settings.http = convene_http::HttpSettings {
            timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            retry: convene_http::RetryPolicy {
                max_retries: 1,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                max_retry_after: Duration::from_secs(3),
            },
            ..convene_http::HttpSettings::default()
        };
        let system: Arc<dyn Clock> = Arc::new(SystemClock::default());
        let calendar =
            convene_google::GoogleCalendar::new(&google_settings, store.clone(), system.clone())
                .unwrap();
        let identity = convene_google::GoogleIdentity::new(&google_settings, system).unwrap();
        let providers = Providers {
            calendars: Calendars::new().with(Arc::new(calendar)),
            logins: LoginProviders::new().with(Arc::new(identity), no_issuer()),
        };
        let wired = wire_with(&config, database, providers).unwrap();
        let clock = ManualClock::new(now_micros());
        let worker = Worker::new(
            wired.app.scheduler.clone(),
            store.clone(),
            Arc::new(clock.clone()),
            SessionPolicy::default(),
            WorkerConfig::default(),
        );
        let routes = router(
            wired.app.clone(),
            Limits {
                body_bytes: 64 * 1024,
                timeout: Duration::from_secs(15),
                https: false,
            },
        );
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(convene::serve(listener, routes, rx));

        let world = World::new();
        store.insert_tenant(&world.tenant).await.unwrap();
        let organizer = world.user("ada@faults.test", "UTC");
        store.insert_user(&organizer).await.unwrap();
        let grant = Grant::new(
            convene_domain::ids::GrantId::from_uuid(uuid::Uuid::now_v7()),
            organizer.tenant,
            organizer.id,
            Provider::Google,
            organizer.email.to_string(),
            [Scope::ReadFreeBusy, Scope::WriteEvents],
            now_micros(),
        )
        .unwrap();
        store.save_grant(&grant, &[]).await.unwrap();
        store
            .put_credentials(
                organizer.tenant,
                grant.id(),
                &Credentials {
                    refresh_token: SecretString::from("refresh-ada".to_owned()),
                    access_token: Some(SecretString::from("access-ada".to_owned())),
                    access_expires_at: Some(now_micros() + SignedDuration::from_hours(24)),
                },
            )
            .await
            .unwrap();
        let token = api_token(store.as_ref(), &organizer).await;
        Self {
            dir,
            google,
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            sqlite,
            worker,
            clock,
            organizer,
            token,
            _shutdown: tx,
        }
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    async fn mount(&self, verb: &str, route: &str, response: impl wiremock::Respond + 'static) {
        Mock::given(method(verb))
            .and(path(route))
            .respond_with(response)
            .mount(&self.google)
            .await;
    }

    async fn create_meeting(&self) -> (StatusCode, Value, Duration) {
        let start = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/v1/meetings", self.base))
            .bearer_auth(&self.token)
            .json(&json!({
                "title": "Fault drill", "duration_minutes": 30,
                "window": {"start": (Timestamp::now() + SignedDuration::from_hours(24)).to_string(),
                           "end": (Timestamp::now() + SignedDuration::from_hours(24 * 6)).to_string()},
                "participants": [{"email": GUEST}],
            }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        if !status.is_success() {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
        (status, r.json().await.unwrap(), start.elapsed())
    }

    async fn meeting(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/api/v1/meetings/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// When the next undelivered message is due, by the outbox's own columns.
    async fn next_due(&self) -> Option<Timestamp> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE state WHEN 'in_flight' THEN claimed_until \
             ELSE COALESCE(available_at, created_at) END) \
             FROM outbox WHERE state IN ('pending', 'in_flight')",
        )
        .fetch_one(self.sqlite.pool())
        .await
        .unwrap();
        due.map(|us| Timestamp::from_microsecond(us).unwrap())
    }

    /// Runs the worker as its loop would, with the clock jumping to each retry, until
    /// nothing is left to try.
    async fn drain(&self) {
        for _ in 0..500 {
            if self.worker.tick().await.unwrap() > 0 {
                continue;
            }
            match self.next_due().await {
                Some(t) => self.clock.set(t.max(self.clock.now())),
                None => return,
            }
        }
        panic!("the outbox never emptied");
    }

    /// The guest votes for the first proposal through the link in their email.
    async fn guest_votes(&self, id: &str) -> (StatusCode, Value) {
        let mail = mail_folder(&self.mail_dir())
            .into_iter()
            .find(|m| m.to == GUEST && m.text.contains("/vote/"))
            .expect("the guest's proposals");
        let token = mail
            .text
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .find_map(|w| w.split("/m/").nth(1))
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let view = self.meeting(id).await;
        let first = view["proposals"][0]["id"].as_str().unwrap().to_owned();
        let r = self
            .http
            .post(format!("{}/api/v1/guest/{token}/votes", self.base))
            .json(&json!({"answers": [{"proposal": first, "available": true}]}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    fn invitations_to(&self, to: &str) -> Vec<String> {
        mail_folder(&self.mail_dir())
            .into_iter()
            .filter(|m| m.to == to && m.is_calendar("REQUEST"))
            .map(|m| m.text)
            .collect()
    }

    async fn inserts(&self) -> usize {
        self.google
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/events"))
            .count()
    }
}

/// Records the worker's time of each request it answers, then answers with `inner`.
struct Timed<R> {
    clock: ManualClock,
    seen: Arc<Mutex<Vec<Timestamp>>>,
    inner: R,
}

impl<R: wiremock::Respond> wiremock::Respond for Timed<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.clock.now());
        self.inner.respond(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_google_refuses_with_500_then_429_completes_through_retries() {
    let t = CalendarFaults::start().await;
    t.mount("POST", "/calendar/v3/freeBusy", free_busy_ok).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Two outbox attempts meet 500s (the adapter tries twice each), the third a 429
    // asking for two minutes, the fourth gets through.
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(Timed {
            clock: t.clock.clone(),
            seen: seen.clone(),
            inner: Failure::ServerError.response(),
        })
        .up_to_n_times(4)
        .mount(&t.google)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(Timed {
            clock: t.clock.clone(),
            seen: seen.clone(),
            inner: Failure::RateLimited.response(),
        })
        .up_to_n_times(1)
        .mount(&t.google)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(Timed {
            clock: t.clock.clone(),
            seen: seen.clone(),
            inner: event_ok,
        })
        .mount(&t.google)
        .await;

    let (status, view, _) = t.create_meeting().await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let id = view["id"].as_str().unwrap().to_owned();
    t.drain().await;
    let (status, voted) = t.guest_votes(&id).await;
    assert_eq!(status, StatusCode::OK, "{voted}");
    assert_eq!(voted["state"], "booked");
    t.drain().await;

    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert_eq!(
        seen.len(),
        6,
        "2 attempts × 2 tries of 500, one 429, one success"
    );
    assert!(
        seen[5] >= seen[4] + SignedDuration::from_secs(120),
        "the attempt after the 429 waited for its Retry-After: {seen:?}"
    );
    assert!(
        seen[2] > seen[1] && seen[4] > seen[3],
        "the outbox backed off between attempts: {seen:?}"
    );
    let view = t.meeting(&id).await;
    assert_eq!(view["state"], "booked");
    assert_eq!(
        view["conference_url"],
        "https://meet.google.com/flt-rec-ovr"
    );
    let invitations = t.invitations_to(GUEST);
    assert_eq!(invitations.len(), 1);
    assert!(invitations[0].contains("meet.google.com/flt-rec-ovr"));
    assert!(
        t.invitations_to(t.organizer.email.as_str()).is_empty(),
        "the organizer has the event on their calendar, not an emailed invitation"
    );
    let counts = t.sqlite.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.in_flight, counts.dead), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_failing_for_a_whole_meeting_never_leaves_it_silently_stalled() {
    for failure in [Failure::Timeout, Failure::ServerError, Failure::RateLimited] {
        let t = CalendarFaults::start().await;
        // Free/busy fails while `down` is set; every calendar write fails, for good.
        let down = Arc::new(AtomicBool::new(true));
        t.mount(
            "POST",
            "/calendar/v3/freeBusy",
            Outage {
                down: down.clone(),
                failure,
            },
        )
        .await;
        t.mount(
            "POST",
            "/calendar/v3/calendars/primary/events",
            failure.response(),
        )
        .await;

        // Asking for the meeting: the organizer is told at once; nothing is created.
        let (status, problem, took) = t.create_meeting().await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{failure:?}: {problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("calendar could not be read"),
            "{failure:?}: {problem}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{failure:?}: answered in {took:?}"
        );
        assert!(
            t.next_due().await.is_none(),
            "{failure:?}: nothing was enqueued"
        );
        down.store(false, Ordering::SeqCst);

        let (status, view, _) = t.create_meeting().await;
        assert_eq!(status, StatusCode::CREATED, "{failure:?}: {view}");
        let id = view["id"].as_str().unwrap().to_owned();
        t.drain().await;

        // The last vote re-checks the organizer's calendar before booking. Unreadable,
        // the vote is still counted (nothing accepted is lost) and the poll is due at
        // once; the worker's sweep books it when the calendar answers, not before.
        down.store(true, Ordering::SeqCst);
        let (status, voted) = t.guest_votes(&id).await;
        assert_eq!(status, StatusCode::OK, "{failure:?}: {voted}");
        assert_eq!(voted["state"], "polling", "{failure:?}");
        let view = t.meeting(&id).await;
        assert!(
            view["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["email"] == GUEST && p["answered"] == true),
            "{failure:?}: the vote is counted: {view}"
        );
        t.worker.housekeeping().await.unwrap();
        assert_eq!(
            t.meeting(&id).await["state"],
            "polling",
            "{failure:?}: not booked blind"
        );
        down.store(false, Ordering::SeqCst);
        t.worker.housekeeping().await.unwrap();
        assert_eq!(
            t.meeting(&id).await["state"],
            "booked",
            "{failure:?}: booked by the sweep once the calendar answers"
        );

        // Every write to the organizer's calendar fails, until the outbox gives up.
        t.drain().await;
        assert!(
            t.inserts().await >= 12,
            "{failure:?}: the write was retried as the policy says ({} tries)",
            t.inserts().await
        );
        let view = t.meeting(&id).await;
        assert_eq!(view["state"], "booked", "{failure:?}");
        assert!(view["conference_url"].is_null(), "{failure:?}: {view}");
        // The booking stands without the event: the guest is invited, and so is the
        // organizer, whose calendar could not take it.
        for who in [GUEST, t.organizer.email.as_str()] {
            let invitations = t.invitations_to(who);
            assert_eq!(invitations.len(), 1, "{failure:?}: invitation to {who}");
            assert!(invitations[0].contains("Fault drill"));
        }
        assert!(
            t.next_due().await.is_none(),
            "{failure:?}: nothing left waiting"
        );
    }
}
