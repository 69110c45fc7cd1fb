//! Throughput of the PostgreSQL store, as figures printed to stdout (not a timed test):
//!
//! - votes per second with 2 concurrent writers, each vote a real request's work: load
//!   the meeting, check one guest's ballot, `cast_ballot` (a `Conflict` would be counted
//!   and the vote started over; ballots do not conflict with each other); both on one
//!   meeting and on a meeting each;
//! - outbox messages claimed and completed per second by 2 workers.
//!
//! Needs `DATABASE_URL` (a role that may create databases); without it, says so and
//! exits. Works in a scratch database it creates and drops.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p convene-postgres
//! ```
// The figures on stdout are this binary's whole point.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use convene_crypto::{KeyId, KeyRing};
use convene_domain::ids::{MeetingId, TenantId};
use convene_domain::meeting::{Answer, GuestPass};
use convene_domain::outbox::{AnalyticsEvent, AnalyticsKind, OutboxMessage, OutboxPayload};
use convene_domain::ports::{MeetingStore, OutboxStore, StoreError, TenantStore, UserStore};
use convene_domain::time::SignedDuration;
use convene_postgres::PgStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

#[allow(dead_code)]
#[path = "../../sql/tests/shared/scenarios.rs"]
mod scenarios;

/// How long each vote measurement runs.
const VOTING: Duration = Duration::from_secs(5);
/// Email guests per meeting (each vote rewrites nothing but the voter's answers).
const GUESTS: usize = 50;
/// Messages drained by the workers.
const MESSAGES: u128 = 5_000;
/// Messages per claim.
const BATCH: u32 = 10;

fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("skipped: DATABASE_URL not set, the PostgreSQL benchmark did not run");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(&url));
}

async fn run(url: &str) {
    let scratch = format!("convene_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(url)
        .await
        .expect("DATABASE_URL connects");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {scratch}")))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    let scratch_url = scratch_url(url, &scratch);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&scratch_url)
        .await
        .expect("the scratch database");
    let ring = KeyRing::from_keys(
        [(KeyId::new("bench").expect("an id"), [7; 32])],
        KeyId::new("bench").expect("an id"),
    )
    .expect("a ring");
    let store = Arc::new(PgStore::from_pool(pool.clone(), ring));
    store.migrate().await.expect("migrations");
    println!("PostgreSQL store benchmark (2 writers, 2 workers; pool of 8 connections)");

    let tenant = scenarios::tenant(1, "bench");
    let org = scenarios::user(2, &tenant, "org@bench.example", "Organizer");
    store.insert_tenant(&tenant).await.expect("insert_tenant");
    store.insert_user(&org).await.expect("insert_user");
    let shared = scenarios::poll(10, &org, GUESTS);
    let own = [
        scenarios::poll(11, &org, GUESTS),
        scenarios::poll(12, &org, GUESTS),
    ];
    for m in std::iter::once(&shared).chain(&own) {
        store.insert_meeting(m, &[]).await.expect("insert_meeting");
    }

    let (votes, conflicts) = voting(&store, tenant.id, [shared.id(), shared.id()]).await;
    println!(
        "votes, one meeting, 2 writers:           {:>7.0} votes/s ({votes} votes, {conflicts} conflicts retried, {GUESTS} guests)",
        votes as f64 / VOTING.as_secs_f64()
    );
    let (votes, conflicts) = voting(&store, tenant.id, [own[0].id(), own[1].id()]).await;
    println!(
        "votes, a meeting per writer:             {:>7.0} votes/s ({votes} votes, {conflicts} conflicts)",
        votes as f64 / VOTING.as_secs_f64()
    );

    let rate = draining(&store, tenant.id).await;
    println!(
        "outbox, 2 workers, claim {BATCH} + complete each: {rate:>7.0} messages/s ({MESSAGES} messages)"
    );

    pool.close().await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE {scratch} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("DROP DATABASE");
}

/// `url` with its database replaced by `db`.
fn scratch_url(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
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

/// Two writers vote for `VOTING`; returns (votes saved, conflicts retried).
async fn voting(store: &Arc<PgStore>, tenant: TenantId, meetings: [MeetingId; 2]) -> (u64, u64) {
    let votes = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + VOTING;
    let mut writers = Vec::new();
    for (w, meeting) in meetings.into_iter().enumerate() {
        let (store, votes, conflicts) = (store.clone(), votes.clone(), conflicts.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                let m = store.meeting(tenant, meeting).await.expect("meeting");
                let guests = m.participants().len() - 1;
                let guest = m.participants()[1 + (n * 2 + w) % guests].id;
                let proposal = m.proposals()[n % 2].id;
                let answer = if n.is_multiple_of(3) {
                    Answer::No
                } else {
                    Answer::Yes
                };
                let now = scenarios::t0() + SignedDuration::from_secs(n as i64);
                let pass = GuestPass {
                    tenant,
                    meeting,
                    participant: guest,
                    expires_at: now + SignedDuration::from_hours(24),
                };
                let ballot = m
                    .ballot_with_pass(&pass, &[(proposal, answer)], now)
                    .expect("a valid vote");
                match store.cast_ballot(&ballot, &[]).await {
                    Ok(_) => {
                        votes.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                    Err(StoreError::Conflict) => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("cast_ballot: {e}"),
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("a writer");
    }
    (
        votes.load(Ordering::Relaxed),
        conflicts.load(Ordering::Relaxed),
    )
}

/// Enqueues `MESSAGES`, then two workers claim and complete them all; messages/s.
async fn draining(store: &Arc<PgStore>, tenant: TenantId) -> f64 {
    let t0 = scenarios::t0();
    let messages: Vec<OutboxMessage> = (0..MESSAGES)
        .map(|i| OutboxMessage {
            id: scenarios::id(1_000_000 + i),
            tenant,
            key: format!("bench:{i}"),
            payload: OutboxPayload::Analytics(AnalyticsEvent {
                kind: AnalyticsKind::VoteCast,
                tenant,
                user: None,
                at: t0,
                properties: Default::default(),
            }),
            created_at: t0,
        })
        .collect();
    for chunk in messages.chunks(500) {
        store.enqueue(chunk).await.expect("enqueue");
    }
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let now = t0 + SignedDuration::from_mins(1);
            loop {
                let batch = store
                    .claim(now, SignedDuration::from_mins(5), BATCH)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return;
                }
                for c in batch {
                    store
                        .complete(c.message.tenant, c.message.id, now)
                        .await
                        .expect("complete");
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("a worker");
    }
    let elapsed = started.elapsed();
    let counts = store.outbox_counts().await.expect("outbox_counts");
    assert_eq!(
        counts.delivered as u128, MESSAGES,
        "every message delivered"
    );
    MESSAGES as f64 / elapsed.as_secs_f64()
}
