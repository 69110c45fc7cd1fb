//! The outbox (one worker claims in an immediate transaction) and the audit log.

use async_trait::async_trait;
use convene_domain::audit::{AuditEntry, AuditFrom};
use convene_domain::ids::{MessageId, TenantId};
use convene_domain::outbox::{OutboxMessage, RetryDecision};
use convene_domain::ports::{AuditLog, ClaimedMessage, OutboxCounts, OutboxStore, StoreError};
use convene_domain::time::{SignedDuration, Timestamp};
use convene_sql::errors::{Failure, store_error};
use convene_sql::rows::{
    AuditRow, ClaimedRow, OutboxRow, claimed, claimed_until, failed_state, outbox_counts,
};
use convene_sql::{Micros, limits};
use sqlx::PgConnection;

use crate::batch::Lost;
use crate::meetings::lost;
use crate::{Db, PgStore, limit};

impl PgStore {
    /// Enqueues checked messages: at most one per (tenant, key); a taken key is a no-op.
    pub(crate) async fn enqueue_rows(
        &self,
        conn: &mut PgConnection,
        rows: &[OutboxRow],
    ) -> Result<(), Failure> {
        self.db.enqueue_rows(conn, rows).await
    }

    /// `NotFound` unless the message exists in the tenant.
    async fn message_exists(&self, tenant: TenantId, id: MessageId) -> Result<(), StoreError> {
        let found: Option<(i32,)> = self
            .query_as("SELECT 1 FROM outbox WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        found.map(drop).ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue(&self, messages: &[OutboxMessage]) -> Result<(), StoreError> {
        let rows = OutboxRow::of_all(messages)?;
        let tenants: Vec<_> = rows.iter().map(|r| r.tenant_id).collect();
        let result = async {
            let mut tx = self.write().await?;
            self.enqueue_rows(&mut tx, &rows).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.settle(result, &tenants).await
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: SignedDuration,
        limit_: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        let claimed_until = claimed_until(now, lease)?;
        // One statement: the rows are locked (skipping those another worker holds) and
        // marked in flight before anyone else can see them as due.
        let rows: Vec<ClaimedRow> = self
            .query_as(
                "WITH due AS ( \
                   SELECT tenant_id, id FROM outbox \
                   WHERE (state = 'pending' AND (available_at IS NULL OR available_at <= $1)) \
                      OR (state = 'in_flight' AND claimed_until <= $1) \
                   ORDER BY created_at, id LIMIT $3 \
                   FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox AS o SET state = 'in_flight', claimed_until = $2, \
                   attempts = o.attempts + 1 \
                 FROM due WHERE o.tenant_id = due.tenant_id AND o.id = due.id \
                 RETURNING o.tenant_id, o.id, o.key, o.payload, o.created_at, o.attempts, \
                   o.claimed_until",
            )
            .bind(Micros::of(now))
            .bind(Micros::of(claimed_until))
            .bind(limit(limit_))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        claimed(rows)
    }

    async fn complete(
        &self,
        tenant: TenantId,
        id: MessageId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let done = self
            .query(
                "UPDATE outbox SET state = 'delivered', payload = NULL, claimed_until = NULL, \
                 available_at = NULL, last_error = NULL, done_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND state <> 'delivered'",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(Micros::of(now))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            // Delivered already (by this worker's earlier report, or another's): fine.
            self.message_exists(tenant, id).await?;
        }
        Ok(())
    }

    async fn complete_all(
        &self,
        delivered: &[(TenantId, MessageId)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if delivered.is_empty() {
            return Ok(());
        }
        let (tenants, ids): (Vec<uuid::Uuid>, Vec<uuid::Uuid>) = delivered
            .iter()
            .map(|(t, m)| (t.as_uuid(), m.as_uuid()))
            .unzip();
        self.query(
            "UPDATE outbox AS o SET state = 'delivered', payload = NULL, claimed_until = NULL, \
             available_at = NULL, last_error = NULL, done_at = $3 \
             FROM UNNEST($1::uuid[], $2::uuid[]) AS d (t, m) \
             WHERE o.tenant_id = d.t AND o.id = d.m AND o.state <> 'delivered'",
        )
        .bind(tenants)
        .bind(ids)
        .bind(Micros::of(now))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn fail(
        &self,
        tenant: TenantId,
        id: MessageId,
        error: &str,
        decision: RetryDecision,
    ) -> Result<(), StoreError> {
        let (state, available_at) = failed_state(decision);
        let done = self
            .query(
                "UPDATE outbox SET state = $3::text, available_at = $4, claimed_until = NULL, \
                 last_error = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND state <> 'delivered'",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(state)
            .bind(available_at)
            .bind(limits::last_error(error))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            // A late report after delivery changes nothing.
            self.message_exists(tenant, id).await?;
        }
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows: Vec<(String, i64)> = self
            .query_as("SELECT state, count(*) FROM outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        outbox_counts(rows)
    }

    async fn purge_delivered(
        &self,
        delivered_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Rows another worker is purging are skipped, not waited for.
        let done = self
            .query(
                "DELETE FROM outbox AS o USING ( \
                   SELECT tenant_id, id FROM outbox \
                   WHERE state = 'delivered' AND done_at < $1 \
                   ORDER BY done_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS d \
                 WHERE o.tenant_id = d.tenant_id AND o.id = d.id",
            )
            .bind(Micros::of(delivered_before))
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl AuditLog for PgStore {
    async fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = entries
            .iter()
            .map(AuditRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        // Grouped rows keep no index on the ids: one append repeating an id is refused
        // here; ids of different appends are distinct UUIDv7s by construction.
        let mut ids = std::collections::HashSet::with_capacity(rows.len());
        if rows.iter().any(|r| !ids.insert((r.tenant_id, r.id))) {
            return Err(StoreError::Duplicate(
                convene_sql::errors::unique_subject("audit_log").into(),
            ));
        }
        let db = self.db.clone();
        self.batches
            .audit
            .call(rows, move |appends| {
                let db = db.clone();
                async move { db.audit_batch(appends).await }
            })
            .await
            .unwrap_or_else(|Lost| Err(lost("the audit entry")))
    }

    async fn entries(
        &self,
        tenant: TenantId,
        from: AuditFrom,
        limit_: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = self
            .query_as(
                "SELECT g.tenant_id, e.id, g.actor_kind, g.actor_id, g.action, e.subject, \
                 g.at, g.source \
                 FROM audit_log AS g CROSS JOIN LATERAL UNNEST(g.ids, g.subjects) AS e (id, subject) \
                 WHERE g.tenant_id = $1 AND g.at >= $2 \
                 AND (g.at > $2 OR $3::uuid IS NULL OR e.id > $3) \
                 ORDER BY g.at, e.id LIMIT $4",
            )
            .bind(tenant.as_uuid())
            .bind(Micros::of(from.since))
            .bind(from.after.map(|a| a.as_uuid()))
            .bind(limit(limit_))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(AuditRow::into_entry).collect()
    }
}

impl crate::Db {
    /// Enqueues outbox rows in one statement (a key already enqueued is skipped).
    pub(crate) async fn enqueue_rows(
        &self,
        conn: &mut PgConnection,
        rows: &[OutboxRow],
    ) -> Result<(), Failure> {
        if rows.is_empty() {
            return Ok(());
        }
        self.query(
            "INSERT INTO outbox (tenant_id, id, key, kind, payload, state, attempts, created_at) \
             SELECT t, i, k, kd, p, 'pending', 0, c \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], \
             $6::timestamptz[]) WITH ORDINALITY AS x (t, i, k, kd, p, c, n) ORDER BY n \
             ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.kind.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.payload.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

impl Db {
    /// The entries of many appends (each already checked): one statement for all, each
    /// answered as if alone. When that statement fails for a reason other than an
    /// unreachable database, which may be one append's fault, each is tried alone.
    pub(crate) async fn audit_batch(
        &self,
        mut appends: Vec<Vec<AuditRow>>,
    ) -> Vec<Result<(), StoreError>> {
        if appends.len() == 1 {
            // Alone (no load): written as it is, without the copy a retry would need.
            return vec![self.insert_audit(appends.pop().unwrap_or_default()).await];
        }
        let all: Vec<AuditRow> = appends.iter().flatten().cloned().collect();
        match self.insert_audit(all).await {
            Ok(()) => appends.iter().map(|_| Ok(())).collect(),
            Err(e @ StoreError::Unavailable(_)) => appends.iter().map(|_| Err(e.clone())).collect(),
            Err(_) => {
                let mut answers = Vec::with_capacity(appends.len());
                for rows in appends {
                    answers.push(self.insert_audit(rows).await);
                }
                answers
            }
        }
    }

    async fn insert_audit(&self, rows: Vec<AuditRow>) -> Result<(), StoreError> {
        let groups = AuditGroups::of(rows)?;
        let tenants = groups.tenants.clone();
        let result = self
            .query(
                // One row per group of entries that share everything but their id and
                // subject (migration 0008): an availability request's 50 reads are one
                // row. The groups are formed here, so PostgreSQL only slices each group's
                // ids and subjects out of the two flat arrays (no sort, no aggregate).
                "INSERT INTO audit_log (tenant_id, at, actor_kind, actor_id, action, source, \
                 ids, subjects) \
                 SELECT t, at, ak, ai, a, src, ($7::uuid[])[o + 1 : o + n], \
                 ($8::text[])[o + 1 : o + n] \
                 FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::uuid[], \
                 $5::text[], $6::text[], $9::int4[], $10::int4[]) \
                 AS g (t, at, ak, ai, a, src, o, n)",
            )
            .bind(groups.tenants)
            .bind(groups.at)
            .bind(groups.actor_kinds)
            .bind(groups.actor_ids)
            .bind(groups.actions)
            .bind(groups.sources)
            .bind(groups.ids)
            .bind(groups.subjects)
            .bind(groups.offsets)
            .bind(groups.lengths)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(Failure::from);
        self.settle(result, &tenants).await
    }
}

/// Audit rows gathered into the stored groups: the entries sharing tenant, instant,
/// actor, action and source, in the order their first entry came; each group's ids
/// ascending with their subjects, as `ids[offset .. offset + length]` of the flat arrays
/// (what a read unnests, ordered by id, comes back in the order written).
#[derive(Debug, Default, PartialEq)]
struct AuditGroups {
    tenants: Vec<uuid::Uuid>,
    at: Vec<Micros>,
    actor_kinds: Vec<String>,
    actor_ids: Vec<Option<uuid::Uuid>>,
    actions: Vec<String>,
    sources: Vec<Option<String>>,
    offsets: Vec<i32>,
    lengths: Vec<i32>,
    ids: Vec<uuid::Uuid>,
    subjects: Vec<String>,
}

impl AuditGroups {
    fn of(rows: Vec<AuditRow>) -> Result<Self, StoreError> {
        type Key = (
            uuid::Uuid,
            Micros,
            String,
            Option<uuid::Uuid>,
            String,
            Option<String>,
        );
        let mut order: Vec<(Key, Vec<(uuid::Uuid, String)>)> = Vec::new();
        let mut index: std::collections::HashMap<Key, usize> = std::collections::HashMap::new();
        for row in rows {
            let key = (
                row.tenant_id,
                row.at,
                row.actor_kind,
                row.actor_id,
                row.action,
                row.source,
            );
            let at = *index.entry(key.clone()).or_insert_with(|| {
                order.push((key, Vec::new()));
                order.len() - 1
            });
            order[at].1.push((row.id, row.subject));
        }
        let mut groups = Self::default();
        for ((tenant, at, actor_kind, actor_id, action, source), mut entries) in order {
            entries.sort_by_key(|(id, _)| *id);
            let position = |n: usize| {
                i32::try_from(n).map_err(|_| StoreError::Invalid("too many audit entries".into()))
            };
            groups.offsets.push(position(groups.ids.len())?);
            groups.lengths.push(position(entries.len())?);
            groups.tenants.push(tenant);
            groups.at.push(at);
            groups.actor_kinds.push(actor_kind);
            groups.actor_ids.push(actor_id);
            groups.actions.push(action);
            groups.sources.push(source);
            for (id, subject) in entries {
                groups.ids.push(id);
                groups.subjects.push(subject);
            }
        }
        Ok(groups)
    }
}
