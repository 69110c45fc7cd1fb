//! The background worker: drains the outbox with the retry policy, closes polls past
//! their deadline (expired, or decided when their votes are all in: a last vote that
//! found the organizer's calendar unreadable makes its poll due at once), purges
//! sessions past their lifetime and delivered messages past `worker.keep_delivered`,
//! and checks every calendar grant with its provider every
//! `worker.grant_check_interval`. Several workers (in several processes), and the
//! `worker.lanes` lanes of each, share the outbox; each message is claimed by one at a
//! time. Several may check grants at once: a refresh is idempotent, and a refused
//! grant's user is told once (the outbox keeps one message per key).

use std::sync::Arc;
use std::time::Duration;

use convene_domain::access::SessionPolicy;
use convene_domain::outbox::{RetryDecision, RetryPolicy};
use convene_domain::ports::{Clock, Store, StoreError};
use convene_domain::service::{GrantCheck, Scheduler};
use convene_domain::time::Timestamp;
use jiff::SignedDuration;
use rand::Rng;
use tokio::sync::watch;

use crate::config::WorkerConfig;

/// Delivered messages deleted by one statement.
pub const PURGE_BATCH: u32 = 5_000;
/// At most this many purge statements a housekeeping run (once a minute): 500,000
/// messages a minute, far more than one deployment delivers.
pub const PURGE_ROUNDS: usize = 100;

/// The worker.
#[derive(Clone)]
pub struct Worker {
    scheduler: Scheduler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    sessions: SessionPolicy,
    config: WorkerConfig,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over the use cases and the store.
    pub fn new(
        scheduler: Scheduler,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sessions: SessionPolicy,
        config: WorkerConfig,
    ) -> Self {
        Self {
            scheduler,
            store,
            clock,
            retry: RetryPolicy::default(),
            sessions,
            config,
        }
    }

    /// Claims one batch, delivers it, and records each outcome. Returns how many
    /// messages were handled.
    pub async fn tick(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let lease = SignedDuration::from_secs(i64::try_from(self.config.lease_secs).unwrap_or(120));
        let batch = self.store.claim(now, lease, self.config.batch).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let results = self.scheduler.deliver_batch(&batch).await;
        let (delivered, failed): (Vec<_>, Vec<_>) = batch
            .iter()
            .zip(results)
            .partition(|(_, result)| result.is_ok());
        // The delivered ones are reported first and together: one statement for the
        // batch, not one each, and before a failure's report can cut the tick short.
        // (Should it fail, their claims lapse and they are delivered again: the outbox is
        // at-least-once, and every delivery carries an idempotency key.)
        let done: Vec<_> = delivered
            .iter()
            .map(|(c, _)| (c.message.tenant, c.message.id))
            .collect();
        self.store.complete_all(&done, self.clock.now()).await?;
        // One line a batch at INFO (under load a message a vote would be most of the
        // log); each message at DEBUG.
        if !delivered.is_empty() || !failed.is_empty() {
            tracing::info!(
                delivered = delivered.len(),
                failed = failed.len(),
                "outbox batch handled"
            );
        }
        for (claimed, _) in &delivered {
            let (m, kind) = (&claimed.message, claimed.message.payload.kind());
            metrics::counter!("outbox_delivered_total", "kind" => kind).increment(1);
            tracing::debug!(message_id = %m.id, kind, attempts = claimed.attempts, "delivered");
        }
        for (claimed, result) in failed {
            let Err(e) = result else { continue };
            let m = &claimed.message;
            let kind = m.payload.kind();
            let jitter: f64 = rand::rng().random();
            let mut decision =
                self.retry
                    .after_failure(claimed.attempts, &e, jitter, self.clock.now());
            tracing::warn!(message_id = %m.id, kind, attempts = claimed.attempts, error = %e, ?decision, "delivery failed");
            if decision == RetryDecision::Dead {
                // A dead message must not take a booking or a revocation with it.
                match self.scheduler.gave_up(m).await {
                    Ok(()) => tracing::warn!(message_id = %m.id, kind, "given up"),
                    Err(e) => {
                        tracing::warn!(message_id = %m.id, kind, error = %e, "giving up failed; trying again later");
                        decision =
                            RetryDecision::RetryAt(self.clock.now() + SignedDuration::from_mins(1));
                    }
                }
            }
            match self
                .store
                .fail(m.tenant, m.id, &e.to_string(), decision)
                .await
            {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
            metrics::counter!("outbox_failed_total", "kind" => kind).increment(1);
        }
        Ok(batch.len())
    }

    /// Closes due polls in every tenant (expired, or decided when everyone answered),
    /// purges sessions past their lifetime and delivered messages past their retention.
    pub async fn housekeeping(&self) -> Result<(), StoreError> {
        for tenant in self.store.tenant_ids().await? {
            match self.scheduler.expire_due(tenant).await {
                Ok(n) if n > 0 => tracing::info!(%tenant, closed = n, "due polls closed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(%tenant, error = %e, "closing due polls failed"),
            }
        }
        let now = self.clock.now();
        let purged = self
            .store
            .purge_sessions(now - self.sessions.idle, now - self.sessions.absolute)
            .await?;
        if purged > 0 {
            tracing::info!(purged, "sessions purged");
        }
        let purged = self.purge_delivered(now).await?;
        if purged > 0 {
            tracing::info!(purged, "delivered outbox messages purged");
        }
        Ok(())
    }

    /// Deletes delivered messages older than `worker.keep_delivered` (at least a day),
    /// [`PURGE_BATCH`] at a time so that no statement holds many rows, at most
    /// [`PURGE_ROUNDS`] batches a run; returns how many.
    pub async fn purge_delivered(&self, now: Timestamp) -> Result<u64, StoreError> {
        let keep = self
            .config
            .keep_delivered
            .max(Duration::from_secs(24 * 3600));
        let keep = SignedDuration::try_from(keep).unwrap_or(SignedDuration::MAX);
        let Ok(before) = now.checked_sub(keep) else {
            return Ok(0);
        };
        let mut purged = 0;
        for _ in 0..PURGE_ROUNDS {
            let n = self.store.purge_delivered(before, PURGE_BATCH).await?;
            purged += n;
            if n < u64::from(PURGE_BATCH) {
                break;
            }
        }
        Ok(purged)
    }

    /// One run of the periodic grant check over every tenant: each active grant of an
    /// active user is refreshed with its provider; one the provider refuses is revoked
    /// and its user told once. Logs counts per tenant (never tokens) and returns the
    /// totals. A tenant whose check fails is logged and skipped.
    pub async fn check_grants(&self) -> Result<GrantCheck, StoreError> {
        let mut total = GrantCheck::default();
        for tenant in self.store.tenant_ids().await? {
            match self.scheduler.check_grants(tenant).await {
                Ok(c) => {
                    if c.checked > 0 {
                        tracing::info!(
                            %tenant,
                            checked = c.checked,
                            valid = c.valid,
                            refused = c.refused,
                            unavailable = c.unavailable,
                            "grants checked"
                        );
                    }
                    metrics::counter!("grant_checks_total", "outcome" => "valid")
                        .increment(c.valid as u64);
                    metrics::counter!("grant_checks_total", "outcome" => "refused")
                        .increment(c.refused as u64);
                    metrics::counter!("grant_checks_total", "outcome" => "unavailable")
                        .increment(c.unavailable as u64);
                    total.checked += c.checked;
                    total.valid += c.valid;
                    total.refused += c.refused;
                    total.unavailable += c.unavailable;
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "checking grants failed"),
            }
        }
        Ok(total)
    }

    /// The grant check, at start and then every `grant_check_interval` (at least a
    /// minute), until `shutdown` turns true. Runs beside the outbox loop, so a slow
    /// provider never holds up email.
    async fn check_grants_periodically(self, mut shutdown: watch::Receiver<bool>) {
        let every = self
            .config
            .grant_check_interval
            .max(Duration::from_secs(60));
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.check_grants().await {
                Ok(c) => tracing::info!(
                    checked = c.checked,
                    refused = c.refused,
                    unavailable = c.unavailable,
                    "grant check done"
                ),
                Err(e) => tracing::warn!(error = %e, "grant check failed; next time"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                // A closed channel can never say stop: stop now rather than spin.
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }

    /// Runs until `shutdown` turns true: then it stops claiming and returns once the
    /// batches in hand are finished (graceful on SIGTERM). Delivers `worker.lanes`
    /// batches at once, each lane claiming its own; the first lane also keeps house.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let grant_checks = tokio::spawn(self.clone().check_grants_periodically(shutdown.clone()));
        let lanes: Vec<_> = (1..self.config.lanes.max(1))
            .map(|_| tokio::spawn(self.clone().deliver_until(shutdown.clone(), false)))
            .collect();
        self.clone().deliver_until(shutdown, true).await;
        for lane in lanes {
            if let Err(e) = lane.await {
                tracing::warn!(error = %e, "a delivery lane failed");
            }
        }
        if let Err(e) = grant_checks.await {
            tracing::warn!(error = %e, "the grant check task failed");
        }
        tracing::info!("worker stopped");
    }

    /// One lane: claims and delivers batches until `shutdown` turns true, resting
    /// `worker.poll_ms` when the outbox has nothing due; with `housekeeping`, also
    /// keeps house every minute.
    async fn deliver_until(self, mut shutdown: watch::Receiver<bool>, housekeeping: bool) {
        let idle = Duration::from_millis(self.config.poll_ms.max(10));
        let mut last_housekeeping: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if housekeeping
                && last_housekeeping.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                if let Err(e) = self.housekeeping().await {
                    tracing::warn!(error = %e, "housekeeping failed");
                }
                last_housekeeping = Some(tokio::time::Instant::now());
            }
            let handled = match self.tick().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox unavailable; retrying");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use convene_domain::ids::MessageId;
    use convene_domain::outbox::{AnalyticsEvent, AnalyticsKind, OutboxMessage, OutboxPayload};
    use convene_domain::ports::{OutboxCounts, OutboxStore as _};
    use convene_testkit::fixtures::World;

    use super::*;

    fn worker(world: &World, keep_delivered: Duration) -> Worker {
        Worker::new(
            world.scheduler.clone(),
            world.store.clone(),
            Arc::new(world.clock.clone()),
            SessionPolicy::default(),
            WorkerConfig {
                keep_delivered,
                ..WorkerConfig::default()
            },
        )
    }

    /// An analytics event of the world's tenant, queued now under `key`.
    fn event(world: &World, key: &str) -> OutboxMessage {
        OutboxMessage {
            id: world.new_id(),
            tenant: world.tenant.id,
            key: key.into(),
            payload: OutboxPayload::Analytics(AnalyticsEvent {
                kind: AnalyticsKind::MeetingCreated,
                tenant: world.tenant.id,
                user: None,
                at: world.now(),
                properties: Default::default(),
            }),
            created_at: world.now(),
        }
    }

    /// Queues an analytics event and delivers it now; returns its id.
    async fn delivered(world: &World, key: &str) -> MessageId {
        let message = event(world, key);
        let id = message.id;
        world.store.enqueue(&[message]).await.unwrap();
        let claimed = world
            .store
            .claim(world.now(), SignedDuration::from_mins(1), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        world
            .store
            .complete(world.tenant.id, id, world.now())
            .await
            .unwrap();
        id
    }

    #[tokio::test]
    async fn housekeeping_purges_delivered_messages_past_their_retention() {
        let world = World::new();
        let day = SignedDuration::from_hours(24);
        delivered(&world, "40 days ago").await;
        world.clock.advance(day * 11);
        delivered(&world, "29 days ago").await;
        world.clock.advance(day * 28);
        delivered(&world, "a day ago").await;
        world.clock.advance(day);
        let pending = OutboxCounts {
            delivered: 3,
            ..OutboxCounts::default()
        };
        assert_eq!(world.store.outbox_counts().await, Ok(pending));

        let thirty_days = worker(&world, Duration::from_secs(30 * 24 * 3600));
        thirty_days.housekeeping().await.unwrap();
        assert_eq!(
            world.store.outbox_counts().await.map(|c| c.delivered),
            Ok(2),
            "only the message delivered more than 30 days ago is gone"
        );
        // A retention under a day is taken as a day.
        let too_short = worker(&world, Duration::from_secs(60));
        assert_eq!(too_short.purge_delivered(world.now()).await, Ok(1));
        assert_eq!(
            world.store.outbox_counts().await.map(|c| c.delivered),
            Ok(1),
            "the message delivered a day ago is kept"
        );
    }

    /// An analytics receiver that lets a call through only when two others are in
    /// flight with it (else it fails them after a while).
    struct ThreeAtOnce(tokio::sync::Barrier);

    #[async_trait::async_trait]
    impl convene_domain::ports::Analytics for ThreeAtOnce {
        async fn record(
            &self,
            events: &[(MessageId, AnalyticsEvent)],
        ) -> Vec<Result<(), convene_domain::outbox::DeliveryError>> {
            let met = tokio::time::timeout(Duration::from_secs(5), self.0.wait()).await;
            events
                .iter()
                .map(|_| match met {
                    Ok(_) => Ok(()),
                    Err(_) => Err(convene_domain::outbox::DeliveryError::Transient {
                        reason: "alone".into(),
                        retry_after: None,
                    }),
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn a_worker_delivers_one_batch_a_lane_at_once() {
        let world = World::new();
        let mut ports = world.scheduler.ports().clone();
        ports.analytics = Arc::new(ThreeAtOnce(tokio::sync::Barrier::new(3)));
        let scheduler = Scheduler::new(ports, convene_domain::service::SchedulingPolicy::default());
        let events: Vec<OutboxMessage> = (0..6)
            .map(|i| event(&world, &format!("event {i}")))
            .collect();
        world.store.enqueue(&events).await.unwrap();
        let worker = Worker::new(
            scheduler,
            world.store.clone(),
            Arc::new(world.clock.clone()),
            SessionPolicy::default(),
            WorkerConfig {
                batch: 2,
                lanes: 3,
                poll_ms: 10,
                ..WorkerConfig::default()
            },
        );
        let (stop, shutdown) = watch::channel(false);
        let running = tokio::spawn(worker.run(shutdown));
        let delivered = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let counts = world.store.outbox_counts().await.unwrap();
                if counts.delivered == 6 {
                    return counts;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        stop.send(true).unwrap();
        running.await.unwrap();
        assert_eq!(
            delivered.map(|c| (c.delivered, c.pending)),
            Ok((6, 0)),
            "three lanes delivered three batches of two at once"
        );
    }

    #[tokio::test]
    async fn a_large_backlog_is_purged_in_batches_within_one_run() {
        let world = World::new();
        let n = u64::from(PURGE_BATCH) + 7;
        let messages: Vec<OutboxMessage> = (0..n)
            .map(|i| event(&world, &format!("event {i}")))
            .collect();
        world.store.enqueue(&messages).await.unwrap();
        let limit = u32::try_from(n).unwrap();
        let claimed = world
            .store
            .claim(world.now(), SignedDuration::from_mins(1), limit)
            .await
            .unwrap();
        let done: Vec<_> = claimed
            .iter()
            .map(|c| (c.message.tenant, c.message.id))
            .collect();
        world.store.complete_all(&done, world.now()).await.unwrap();
        world.clock.advance(SignedDuration::from_hours(24 * 31));
        let purged = worker(&world, Duration::from_secs(30 * 24 * 3600))
            .purge_delivered(world.now())
            .await;
        assert_eq!(purged, Ok(n));
        assert_eq!(
            world.store.outbox_counts().await,
            Ok(OutboxCounts::default())
        );
    }
}
