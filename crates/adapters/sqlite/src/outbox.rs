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
use sqlx::SqliteConnection;

use crate::{SqliteStore, json_rows, limit};

impl SqliteStore {
    /// Enqueues checked messages: at most one per (tenant, key); a taken key is a no-op.
    pub(crate) async fn enqueue_rows(
        &self,
        conn: &mut SqliteConnection,
        rows: &[OutboxRow],
    ) -> Result<(), Failure> {
        if rows.is_empty() {
            return Ok(());
        }
        self.query(
            "INSERT INTO outbox (tenant_id, id, key, kind, payload, state, attempts, created_at) \
             SELECT unhex(j.value ->> 'tenant_id', '-'), unhex(j.value ->> 'id', '-'), \
             j.value ->> 'key', j.value ->> 'kind', j.value ->> 'payload', 'pending', 0, \
             j.value ->> 'created_at' FROM json_each(?1) AS j WHERE true ORDER BY j.key \
             ON CONFLICT (tenant_id, key) DO NOTHING",
        )
        .bind(json_rows(rows)?)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// `NotFound` unless the message exists in the tenant.
    async fn message_exists(&self, tenant: TenantId, id: MessageId) -> Result<(), StoreError> {
        let found: Option<(i64,)> = self
            .query_as("SELECT 1 FROM outbox WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        found.map(drop).ok_or(StoreError::NotFound)
    }
}

/// Marks message `?2` of tenant `?1` delivered at `?3`, its payload dropped (a message
/// delivered already is left as it is).
const DELIVER: &str = "UPDATE outbox SET state = 'delivered', payload = NULL, claimed_until = NULL, \
     available_at = NULL, last_error = NULL, done_at = ?3 \
     WHERE tenant_id = ?1 AND id = ?2 AND state <> 'delivered'";

#[async_trait]
impl OutboxStore for SqliteStore {
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
        let mut tx = self.write().await?;
        let rows: Vec<ClaimedRow> = self
            .query_as(
                "UPDATE outbox SET state = 'in_flight', claimed_until = ?2, \
                 attempts = attempts + 1 \
                 WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM outbox \
                   WHERE (state = 'pending' AND (available_at IS NULL OR available_at <= ?1)) \
                      OR (state = 'in_flight' AND claimed_until <= ?1) \
                   ORDER BY created_at, id LIMIT ?3) \
                 RETURNING tenant_id, id, key, payload, created_at, attempts, claimed_until",
            )
            .bind(Micros::of(now))
            .bind(Micros::of(claimed_until))
            .bind(limit(limit_))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        claimed(rows)
    }

    async fn complete(
        &self,
        tenant: TenantId,
        id: MessageId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let done = self
            .query(DELIVER)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(Micros::of(now))
            .execute(&self.writer)
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
        // One write transaction (one commit) for the batch.
        let mut tx = self.write().await?;
        for (tenant, id) in delivered {
            self.query(DELIVER)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .bind(Micros::of(now))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
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
                "UPDATE outbox SET state = ?3, available_at = ?4, claimed_until = NULL, \
                 last_error = ?5 \
                 WHERE tenant_id = ?1 AND id = ?2 AND state <> 'delivered'",
            )
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .bind(state)
            .bind(available_at)
            .bind(limits::last_error(error))
            .execute(&self.writer)
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
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        outbox_counts(rows)
    }

    async fn purge_delivered(
        &self,
        delivered_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = self
            .query(
                "DELETE FROM outbox WHERE rowid IN ( \
                   SELECT rowid FROM outbox WHERE state = 'delivered' AND done_at < ?1 \
                   ORDER BY done_at LIMIT ?2)",
            )
            .bind(Micros::of(delivered_before))
            .bind(i64::from(limit))
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = entries
            .iter()
            .map(AuditRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        let tenants: Vec<_> = rows.iter().map(|r| r.tenant_id).collect();
        let result = async {
            self.query(
                "INSERT INTO audit_log (tenant_id, id, actor_kind, actor_id, action, subject, \
                 at, source) \
                 SELECT unhex(j.value ->> 'tenant_id', '-'), unhex(j.value ->> 'id', '-'), \
                 j.value ->> 'actor_kind', unhex(j.value ->> 'actor_id', '-'), \
                 j.value ->> 'action', j.value ->> 'subject', j.value ->> 'at', \
                 j.value ->> 'source' FROM json_each(?1) AS j ORDER BY j.key",
            )
            .bind(json_rows(&rows)?)
            .execute(&self.writer)
            .await?;
            Ok(())
        }
        .await;
        self.settle(result, &tenants).await
    }

    async fn entries(
        &self,
        tenant: TenantId,
        from: AuditFrom,
        limit_: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = self
            .query_as(
                "SELECT * FROM audit_log WHERE tenant_id = ?1 \
                 AND (at > ?2 OR (at = ?2 AND (?3 IS NULL OR id > ?3))) \
                 ORDER BY at, id LIMIT ?4",
            )
            .bind(tenant.as_uuid())
            .bind(Micros::of(from.since))
            .bind(from.after.map(|a| a.as_uuid()))
            .bind(limit(limit_))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(AuditRow::into_entry).collect()
    }
}
