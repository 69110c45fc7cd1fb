//! Meetings with their participants, proposals and votes, and erasure.
//!
//! A meeting is read in a fixed number of statements whatever its size, in one
//! `REPEATABLE READ` snapshot: the meeting rows, then one statement per child table for
//! all of them (`(tenant_id, meeting_id) IN UNNEST(...)`). It is written in two: the
//! meeting row (compared on `version` for an update), then one statement whose parts
//! delete the children no longer there and insert or update, from arrays (`UNNEST`),
//! only the children that changed.

use async_trait::async_trait;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MeetingId, TenantId, UserId};
use convene_domain::meeting::Meeting;
use convene_domain::outbox::OutboxMessage;
use convene_domain::people::PersonName;
use convene_domain::ports::{Erasure, ErasureStore, MeetingStore, Page, StoreError};
use convene_domain::time::Timestamp;
use convene_sql::erasure::{ErasureRows, Needles, ScrubPlan};
use convene_sql::errors::{Failure, store_error};
use convene_sql::rows::{
    MeetingRow, MeetingRows, OutboxRow, ParticipantRow, ProposalRow, VoteRow, assemble,
    email_lower, meeting_ids, meeting_keys, tenants_of,
};
use convene_sql::{JsonText, Micros};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{PgStore, limit};

/// Which meetings involve a person: organised by or connected as the user (of their
/// tenant), or with their email among the participants (any tenant). `$1` tenant, `$2`
/// user, `$3` email in lower case.
macro_rules! involving {
    () => {
        "SELECT tenant_id, id FROM meetings WHERE tenant_id = $1 AND organizer_id = $2 \
         UNION SELECT tenant_id, meeting_id FROM participants \
            WHERE tenant_id = $1 AND user_id = $2 \
         UNION SELECT tenant_id, meeting_id FROM participants WHERE email_lower = $3"
    };
}

impl PgStore {
    /// Meetings from their rows: one statement per child table for all of them.
    pub(crate) async fn load_meetings(
        &self,
        conn: &mut PgConnection,
        meetings: Vec<MeetingRow>,
    ) -> Result<Vec<Meeting>, StoreError> {
        if meetings.is_empty() {
            return Ok(Vec::new());
        }
        let (tenants, ids) = meeting_keys(&meetings);
        let participants: Vec<ParticipantRow> = self
            .query_as(
                "SELECT * FROM participants WHERE (tenant_id, meeting_id) IN \
                 (SELECT * FROM UNNEST($1::uuid[], $2::uuid[])) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(tenants.clone())
            .bind(ids.clone())
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        let proposals: Vec<ProposalRow> = self
            .query_as(
                "SELECT * FROM proposals WHERE (tenant_id, meeting_id) IN \
                 (SELECT * FROM UNNEST($1::uuid[], $2::uuid[])) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(tenants.clone())
            .bind(ids.clone())
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        let votes: Vec<VoteRow> = self
            .query_as(
                "SELECT * FROM votes WHERE (tenant_id, meeting_id) IN \
                 (SELECT * FROM UNNEST($1::uuid[], $2::uuid[])) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(tenants)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        assemble(meetings, participants, proposals, votes)
    }

    /// Inserts a new meeting's rows.
    async fn insert_meeting_rows(
        &self,
        conn: &mut PgConnection,
        rows: &MeetingRows,
    ) -> Result<(), Failure> {
        let m = &rows.meeting;
        bind_meeting(
            self.query(
                "INSERT INTO meetings (tenant_id, id, organizer_id, title, duration_min, \
                 window_start, window_end, state, deadline, booked_proposal, booked_start, \
                 booked_end, state_at, round, sequence, event, created_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18)",
            ),
            m,
            m.version,
        )
        .execute(&mut *conn)
        .await?;
        self.write_children(conn, rows).await
    }

    /// Saves a changed meeting over its stored version (the stored version becomes one
    /// more): `Conflict` when the version differs, `NotFound` when absent.
    pub(crate) async fn update_meeting_rows(
        &self,
        conn: &mut PgConnection,
        rows: &MeetingRows,
    ) -> Result<(), Failure> {
        let m = &rows.meeting;
        let done = bind_meeting(
            self.query(
                "UPDATE meetings SET organizer_id = $3, title = $4, duration_min = $5, \
                 window_start = $6, window_end = $7, state = $8, deadline = $9, \
                 booked_proposal = $10, booked_start = $11, booked_end = $12, state_at = $13, \
                 round = $14, sequence = $15, event = $16, created_at = $17, version = $18 + 1 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $18",
            ),
            m,
            m.version,
        )
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            let exists: Option<(i32,)> = self
                .query_as("SELECT 1 FROM meetings WHERE tenant_id = $1 AND id = $2")
                .bind(m.tenant_id)
                .bind(m.id)
                .fetch_optional(&mut *conn)
                .await?;
            return Err(Failure::Store(if exists.is_some() {
                StoreError::Conflict
            } else {
                StoreError::NotFound
            }));
        }
        self.write_children(conn, rows).await
    }

    /// Makes the child tables hold exactly `rows`' children: deletes the rows that are
    /// gone, inserts the new rows and updates the changed ones (unchanged rows are not
    /// rewritten).
    async fn write_children(
        &self,
        conn: &mut PgConnection,
        rows: &MeetingRows,
    ) -> Result<(), Failure> {
        let (tenant, meeting) = (rows.meeting.tenant_id, rows.meeting.id);
        let p = ParticipantColumns::of(&rows.participants);
        let (vote_participants, vote_proposals): (Vec<Uuid>, Vec<Uuid>) = rows
            .votes
            .iter()
            .map(|v| (v.participant_id, v.proposal_id))
            .unzip();
        // One statement, one round trip. The parts touch disjoint rows (what is gone vs.
        // what is there), and foreign keys are checked at the end of the statement, so
        // votes may refer to participants and proposals inserted beside them.
        self.query(
            "WITH gone_votes AS ( \
               DELETE FROM votes WHERE tenant_id = $1 AND meeting_id = $2 \
               AND (participant_id, proposal_id) NOT IN \
               (SELECT * FROM UNNEST($12::uuid[], $13::uuid[]))), \
             gone_proposals AS ( \
               DELETE FROM proposals WHERE tenant_id = $1 AND meeting_id = $2 \
               AND id <> ALL($17::uuid[])), \
             gone_participants AS ( \
               DELETE FROM participants WHERE tenant_id = $1 AND meeting_id = $2 \
               AND id <> ALL($3::uuid[])), \
             put_participants AS ( \
               INSERT INTO participants AS p (tenant_id, meeting_id, id, position, name, \
               email, email_lower, kind, user_id, attendance, zone) \
               SELECT $1, $2, * FROM UNNEST($3::uuid[], $4::int8[], $5::text[], $6::text[], \
               $7::text[], $8::text[], $9::uuid[], $10::text[], $11::text[]) \
               ON CONFLICT (tenant_id, meeting_id, id) DO UPDATE SET \
               position = excluded.position, name = excluded.name, email = excluded.email, \
               email_lower = excluded.email_lower, kind = excluded.kind, \
               user_id = excluded.user_id, attendance = excluded.attendance, \
               zone = excluded.zone \
               WHERE (p.position, p.name, p.email, p.kind, p.user_id, p.attendance, p.zone) \
               IS DISTINCT FROM (excluded.position, excluded.name, excluded.email, \
               excluded.kind, excluded.user_id, excluded.attendance, excluded.zone)), \
             put_proposals AS ( \
               INSERT INTO proposals AS p (tenant_id, meeting_id, id, position, slot_start, \
               slot_end) \
               SELECT $1, $2, * FROM UNNEST($17::uuid[], $18::int8[], $19::timestamptz[], \
               $20::timestamptz[]) \
               ON CONFLICT (tenant_id, meeting_id, id) DO UPDATE SET \
               position = excluded.position, slot_start = excluded.slot_start, \
               slot_end = excluded.slot_end \
               WHERE (p.position, p.slot_start, p.slot_end) IS DISTINCT FROM \
               (excluded.position, excluded.slot_start, excluded.slot_end)) \
             INSERT INTO votes AS v (tenant_id, meeting_id, participant_id, proposal_id, \
             position, answer, at) \
             SELECT $1, $2, * FROM UNNEST($12::uuid[], $13::uuid[], $14::int8[], $15::text[], \
             $16::timestamptz[]) \
             ON CONFLICT (tenant_id, meeting_id, participant_id, proposal_id) DO UPDATE SET \
             position = excluded.position, answer = excluded.answer, at = excluded.at \
             WHERE (v.position, v.answer, v.at) IS DISTINCT FROM \
             (excluded.position, excluded.answer, excluded.at)",
        )
        .bind(tenant)
        .bind(meeting)
        .bind(p.id)
        .bind(p.position)
        .bind(p.name)
        .bind(p.email)
        .bind(p.email_lower)
        .bind(p.kind)
        .bind(p.user_id)
        .bind(p.attendance)
        .bind(p.zone)
        .bind(vote_participants)
        .bind(vote_proposals)
        .bind(rows.votes.iter().map(|v| v.position).collect::<Vec<_>>())
        .bind(
            rows.votes
                .iter()
                .map(|v| v.answer.clone())
                .collect::<Vec<_>>(),
        )
        .bind(rows.votes.iter().map(|v| v.at).collect::<Vec<_>>())
        .bind(rows.proposals.iter().map(|p| p.id).collect::<Vec<_>>())
        .bind(
            rows.proposals
                .iter()
                .map(|p| p.position)
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.proposals
                .iter()
                .map(|p| p.slot_start)
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.proposals
                .iter()
                .map(|p| p.slot_end)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Inserts a new meeting (`new`) or saves a changed one over its stored version,
    /// with its outbox messages, in one transaction.
    async fn save_meeting(
        &self,
        meeting: &Meeting,
        outbox: &[OutboxMessage],
        new: bool,
    ) -> Result<(), StoreError> {
        let rows = MeetingRows::of(meeting)?;
        let messages = OutboxRow::of_all(outbox)?;
        let tenants = tenants_of(rows.meeting.tenant_id, &messages);
        let result = async {
            let mut tx = self.write().await?;
            if new {
                self.insert_meeting_rows(&mut tx, &rows).await?;
            } else {
                self.update_meeting_rows(&mut tx, &rows).await?;
            }
            self.enqueue_rows(&mut tx, &messages).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.settle(result, &tenants).await
    }

    /// The `(tenant, id)` of every meeting involving a person.
    async fn involving(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        user: UserId,
        email: &EmailAddress,
    ) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
        self.query_as(involving!())
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(email_lower(email))
            .fetch_all(&mut *conn)
            .await
    }
}

/// Participant rows as columns, for `UNNEST`.
struct ParticipantColumns {
    id: Vec<Uuid>,
    position: Vec<i64>,
    name: Vec<String>,
    email: Vec<Option<String>>,
    email_lower: Vec<Option<String>>,
    kind: Vec<String>,
    user_id: Vec<Option<Uuid>>,
    attendance: Vec<String>,
    zone: Vec<Option<String>>,
}

impl ParticipantColumns {
    fn of(rows: &[ParticipantRow]) -> Self {
        Self {
            id: rows.iter().map(|p| p.id).collect(),
            position: rows.iter().map(|p| p.position).collect(),
            name: rows.iter().map(|p| p.name.clone()).collect(),
            email: rows.iter().map(|p| p.email.clone()).collect(),
            email_lower: rows.iter().map(|p| p.email_lower.clone()).collect(),
            kind: rows.iter().map(|p| p.kind.clone()).collect(),
            user_id: rows.iter().map(|p| p.user_id).collect(),
            attendance: rows.iter().map(|p| p.attendance.clone()).collect(),
            zone: rows.iter().map(|p| p.zone.clone()).collect(),
        }
    }
}

/// Binds a meeting row as `$1` … `$18`, with `version` as `$18`.
fn bind_meeting(
    q: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>,
    m: &MeetingRow,
    version: i64,
) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(m.tenant_id)
        .bind(m.id)
        .bind(m.organizer_id)
        .bind(m.title.clone())
        .bind(m.duration_min)
        .bind(m.window_start)
        .bind(m.window_end)
        .bind(m.state.clone())
        .bind(m.deadline)
        .bind(m.booked_proposal)
        .bind(m.booked_start)
        .bind(m.booked_end)
        .bind(m.state_at)
        .bind(m.round)
        .bind(m.sequence)
        .bind(m.event.clone())
        .bind(m.created_at)
        .bind(version)
}

#[async_trait]
impl MeetingStore for PgStore {
    async fn insert_meeting(
        &self,
        meeting: &Meeting,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError> {
        self.save_meeting(meeting, outbox, true).await
    }

    async fn meeting(&self, tenant: TenantId, id: MeetingId) -> Result<Meeting, StoreError> {
        let mut tx = self.read().await?;
        let row: Option<MeetingRow> = self
            .query_as("SELECT * FROM meetings WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let row = row.ok_or(StoreError::NotFound)?;
        let mut meetings = self.load_meetings(&mut tx, vec![row]).await?;
        tx.commit().await.map_err(store_error)?;
        meetings.pop().ok_or(StoreError::NotFound)
    }

    async fn update_meeting(
        &self,
        meeting: &Meeting,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError> {
        self.save_meeting(meeting, outbox, false).await
    }

    async fn meetings_organized_by(
        &self,
        tenant: TenantId,
        user: UserId,
        page: Page<MeetingId>,
    ) -> Result<Vec<Meeting>, StoreError> {
        let mut tx = self.read().await?;
        let rows: Vec<MeetingRow> = self
            .query_as(
                "SELECT * FROM meetings WHERE tenant_id = $1 AND organizer_id = $2 \
                 AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
            )
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(limit(page.limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let meetings = self.load_meetings(&mut tx, rows).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(meetings)
    }

    async fn meetings_in_tenant(
        &self,
        tenant: TenantId,
        page: Page<MeetingId>,
    ) -> Result<Vec<Meeting>, StoreError> {
        let mut tx = self.read().await?;
        let rows: Vec<MeetingRow> = self
            .query_as(
                "SELECT * FROM meetings WHERE tenant_id = $1 \
                 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
            )
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(limit(page.limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let meetings = self.load_meetings(&mut tx, rows).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(meetings)
    }

    async fn meetings_with_user(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<Meeting>, StoreError> {
        let mut tx = self.read().await?;
        let rows: Vec<MeetingRow> = self
            .query_as(
                "SELECT * FROM meetings WHERE tenant_id = $1 AND (organizer_id = $2 OR id IN \
                 (SELECT meeting_id FROM participants WHERE tenant_id = $1 AND user_id = $2)) \
                 ORDER BY id DESC",
            )
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let meetings = self.load_meetings(&mut tx, rows).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(meetings)
    }

    async fn polls_due(
        &self,
        tenant: TenantId,
        now: Timestamp,
        limit_: u32,
    ) -> Result<Vec<MeetingId>, StoreError> {
        let ids: Vec<(Uuid,)> = self
            .query_as(
                "SELECT id FROM meetings WHERE tenant_id = $1 AND state = 'polling' \
                 AND deadline <= $2 ORDER BY deadline, id LIMIT $3",
            )
            .bind(tenant.as_uuid())
            .bind(Micros::of(now))
            .bind(limit(limit_))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(ids.into_iter().map(|(id,)| id.into()).collect())
    }
}

#[async_trait]
impl ErasureStore for PgStore {
    async fn meetings_involving(
        &self,
        tenant: TenantId,
        user: UserId,
        email: &EmailAddress,
    ) -> Result<Vec<Meeting>, StoreError> {
        let mut tx = self.read().await?;
        let rows: Vec<MeetingRow> = self
            .query_as(concat!(
                "SELECT * FROM meetings WHERE (tenant_id, id) IN (",
                involving!(),
                ") ORDER BY tenant_id, id"
            ))
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(email_lower(email))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let meetings = self.load_meetings(&mut tx, rows).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(meetings)
    }

    async fn erase_user(&self, e: &Erasure) -> Result<(), StoreError> {
        let ErasureRows {
            changed,
            grants,
            messages,
            tenants,
        } = ErasureRows::of(e)?;
        let (tenant, user) = (e.tenant.as_uuid(), e.user.as_uuid());
        let result = async {
            let mut tx = self.write().await?;
            if !self.tenant_exists(&mut *tx, tenant).await? {
                return Err(Failure::Store(StoreError::UnknownTenant));
            }
            for rows in &changed {
                match self.update_meeting_rows(&mut tx, rows).await {
                    // A meeting gone since the domain looked: the caller looks again.
                    Err(Failure::Store(StoreError::NotFound)) => {
                        return Err(Failure::Store(StoreError::Conflict));
                    }
                    other => other?,
                }
            }
            self.query("DELETE FROM meetings WHERE tenant_id = $1 AND id = ANY($2)")
                .bind(tenant)
                .bind(meeting_ids(&e.deleted))
                .execute(&mut *tx)
                .await?;
            if !self
                .involving(&mut tx, e.tenant, e.user, &e.email)
                .await?
                .is_empty()
            {
                // A meeting involving them appeared since the domain looked.
                return Err(Failure::Store(StoreError::Conflict));
            }
            let name: Option<(String,)> = self
                .query_as("SELECT name FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
            let name = name.and_then(|(n,)| PersonName::parse(&n).ok());
            self.query(
                "DELETE FROM credentials WHERE tenant_id = $1 AND grant_id IN \
                 (SELECT id FROM grants WHERE tenant_id = $1 AND user_id = $2)",
            )
            .bind(tenant)
            .bind(user)
            .execute(&mut *tx)
            .await?;
            self.query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            self.query("DELETE FROM api_tokens WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            self.query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            for g in &grants {
                self.put_grant(&mut tx, g).await?;
            }
            self.enqueue_rows(&mut tx, &messages).await?;
            self.scrub_outbox(&mut tx, &e.email, name.as_ref()).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.settle(result, &tenants).await
    }
}

impl PgStore {
    /// Takes a person out of every message that still holds a payload (pending, in
    /// flight or dead), in any tenant: messages to them are deleted, others rewritten.
    async fn scrub_outbox(
        &self,
        conn: &mut PgConnection,
        email: &EmailAddress,
        name: Option<&PersonName>,
    ) -> Result<(), Failure> {
        let needles = Needles::of(email, name);
        let candidates: Vec<(Uuid, Uuid, JsonText)> = self
            .query_as(
                "SELECT tenant_id, id, payload FROM outbox WHERE payload IS NOT NULL \
                 AND (strpos(lower(payload::text), $1) > 0 \
                   OR ($2::text IS NOT NULL AND strpos(payload::text, $2) > 0))",
            )
            .bind(needles.email_lower.clone())
            .bind(needles.name_json.clone())
            .fetch_all(&mut *conn)
            .await?;
        let plan = ScrubPlan::of(candidates, email, name);
        let (dropped_tenants, dropped_ids): (Vec<Uuid>, Vec<Uuid>) =
            plan.dropped.into_iter().unzip();
        let (tenants, (ids, payloads)): (Vec<Uuid>, (Vec<Uuid>, Vec<JsonText>)) = plan
            .rewritten
            .into_iter()
            .map(|(t, i, p)| (t, (i, p)))
            .unzip();
        self.query(
            "DELETE FROM outbox WHERE (tenant_id, id) IN \
             (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]))",
        )
        .bind(dropped_tenants)
        .bind(dropped_ids)
        .execute(&mut *conn)
        .await?;
        self.query(
            "UPDATE outbox AS o SET payload = x.payload \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::jsonb[]) AS x (tenant_id, id, payload) \
             WHERE o.tenant_id = x.tenant_id AND o.id = x.id",
        )
        .bind(tenants)
        .bind(ids)
        .bind(payloads)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
