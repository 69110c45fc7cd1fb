//! Meetings with their participants, proposals and votes, and erasure.
//!
//! A meeting is read in a fixed number of statements whatever its size: the meeting
//! rows, then one statement per child table for all of them. It is written the same way:
//! the meeting row (compared on `version` for an update), then per child table one
//! statement deleting the rows no longer there and one inserting or updating, from a JSON
//! array, only the rows that changed.

use async_trait::async_trait;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MeetingId, TenantId, UserId};
use convene_domain::meeting::{Ballot, Meeting, Tally};
use convene_domain::outbox::OutboxMessage;
use convene_domain::people::PersonName;
use convene_domain::ports::{Erasure, ErasureStore, MeetingStore, Page, StoreError};
use convene_domain::time::Timestamp;
use convene_sql::erasure::{ErasureRows, Needles, ScrubPlan};
use convene_sql::errors::{Failure, store_error};
use convene_sql::rows::{
    BallotRows, MeetingRow, MeetingRows, OutboxRow, ParticipantRow, ProposalRow, VoteRow, assemble,
    email_lower, meeting_ids, tally, tenants_of,
};
use convene_sql::{JsonText, Micros};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::{SqliteStore, id_list, json_rows, limit};

/// Which meetings involve a person: organised by or connected as the user (of their
/// tenant), or with their email among the participants (any tenant). `?1` tenant, `?2`
/// user, `?3` email in lower case.
macro_rules! involving {
    () => {
        "SELECT tenant_id, id FROM meetings WHERE tenant_id = ?1 AND organizer_id = ?2 \
         UNION SELECT tenant_id, meeting_id FROM participants \
            WHERE tenant_id = ?1 AND user_id = ?2 \
         UNION SELECT tenant_id, meeting_id FROM participants WHERE email_lower = ?3"
    };
}

impl SqliteStore {
    /// Meetings from their rows: one statement per child table for all of them.
    pub(crate) async fn load_meetings(
        &self,
        conn: &mut SqliteConnection,
        meetings: Vec<MeetingRow>,
    ) -> Result<Vec<Meeting>, StoreError> {
        if meetings.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(Uuid, Uuid)> = meetings.iter().map(|m| (m.tenant_id, m.id)).collect();
        let keys = serde_json::to_string(&keys)
            .map_err(|e| StoreError::Invalid(format!("meeting keys: {e}")))?;
        let participants: Vec<ParticipantRow> = self
            .query_as(
                "SELECT * FROM participants WHERE (tenant_id, meeting_id) IN \
                 (SELECT unhex(value ->> 0, '-'), unhex(value ->> 1, '-') FROM json_each(?1)) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(keys.clone())
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        let proposals: Vec<ProposalRow> = self
            .query_as(
                "SELECT * FROM proposals WHERE (tenant_id, meeting_id) IN \
                 (SELECT unhex(value ->> 0, '-'), unhex(value ->> 1, '-') FROM json_each(?1)) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(keys.clone())
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        let votes: Vec<VoteRow> = self
            .query_as(
                "SELECT * FROM votes WHERE (tenant_id, meeting_id) IN \
                 (SELECT unhex(value ->> 0, '-'), unhex(value ->> 1, '-') FROM json_each(?1)) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(keys)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        assemble(meetings, participants, proposals, votes)
    }

    /// Inserts a new meeting's rows.
    async fn insert_meeting_rows(
        &self,
        conn: &mut SqliteConnection,
        rows: &MeetingRows,
    ) -> Result<(), Failure> {
        let m = &rows.meeting;
        bind_meeting(
            self.query(
                "INSERT INTO meetings (tenant_id, id, organizer_id, title, duration_min, \
                 window_start, window_end, state, deadline, booked_proposal, booked_start, \
                 booked_end, state_at, round, sequence, event, created_at, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                 ?16, ?17, ?18)",
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
        conn: &mut SqliteConnection,
        rows: &MeetingRows,
    ) -> Result<(), Failure> {
        let m = &rows.meeting;
        let done = bind_meeting(
            self.query(
                "UPDATE meetings SET organizer_id = ?3, title = ?4, duration_min = ?5, \
                 window_start = ?6, window_end = ?7, state = ?8, deadline = ?9, \
                 booked_proposal = ?10, booked_start = ?11, booked_end = ?12, state_at = ?13, \
                 round = ?14, sequence = ?15, event = ?16, created_at = ?17, version = ?18 + 1 \
                 WHERE tenant_id = ?1 AND id = ?2 AND version = ?18",
            ),
            m,
            m.version,
        )
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            let exists: Option<(i64,)> = self
                .query_as("SELECT 1 FROM meetings WHERE tenant_id = ?1 AND id = ?2")
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
    /// gone, then inserts the new rows and updates the changed ones (unchanged rows are
    /// not rewritten).
    async fn write_children(
        &self,
        conn: &mut SqliteConnection,
        rows: &MeetingRows,
    ) -> Result<(), Failure> {
        let (tenant, meeting) = (rows.meeting.tenant_id, rows.meeting.id);
        let vote_keys: Vec<(Uuid, Uuid)> = rows
            .votes
            .iter()
            .map(|v| (v.participant_id, v.proposal_id))
            .collect();
        let vote_keys = serde_json::to_string(&vote_keys)
            .map_err(|e| StoreError::Invalid(format!("votes: {e}")))?;
        self.query(
            "DELETE FROM votes WHERE tenant_id = ?1 AND meeting_id = ?2 \
             AND (participant_id, proposal_id) NOT IN \
             (SELECT unhex(value ->> 0, '-'), unhex(value ->> 1, '-') FROM json_each(?3))",
        )
        .bind(tenant)
        .bind(meeting)
        .bind(vote_keys)
        .execute(&mut *conn)
        .await?;
        self.query(
            "DELETE FROM proposals WHERE tenant_id = ?1 AND meeting_id = ?2 \
             AND id NOT IN (SELECT unhex(value, '-') FROM json_each(?3))",
        )
        .bind(tenant)
        .bind(meeting)
        .bind(id_list(rows.proposals.iter().map(|p| p.id)))
        .execute(&mut *conn)
        .await?;
        self.query(
            "DELETE FROM participants WHERE tenant_id = ?1 AND meeting_id = ?2 \
             AND id NOT IN (SELECT unhex(value, '-') FROM json_each(?3))",
        )
        .bind(tenant)
        .bind(meeting)
        .bind(id_list(rows.participants.iter().map(|p| p.id)))
        .execute(&mut *conn)
        .await?;
        self.query(
            "INSERT INTO participants (tenant_id, meeting_id, id, position, name, email, \
             email_lower, kind, user_id, attendance, zone) \
             SELECT ?1, ?2, unhex(j.value ->> 'id', '-'), j.value ->> 'position', \
             j.value ->> 'name', j.value ->> 'email', j.value ->> 'email_lower', \
             j.value ->> 'kind', unhex(j.value ->> 'user_id', '-'), j.value ->> 'attendance', \
             j.value ->> 'zone' FROM json_each(?3) AS j WHERE true \
             ON CONFLICT (tenant_id, meeting_id, id) DO UPDATE SET \
             position = excluded.position, name = excluded.name, email = excluded.email, \
             email_lower = excluded.email_lower, kind = excluded.kind, \
             user_id = excluded.user_id, attendance = excluded.attendance, zone = excluded.zone \
             WHERE (position, name, email, kind, user_id, attendance, zone) IS NOT \
             (excluded.position, excluded.name, excluded.email, excluded.kind, \
             excluded.user_id, excluded.attendance, excluded.zone)",
        )
        .bind(tenant)
        .bind(meeting)
        .bind(json_rows(&rows.participants)?)
        .execute(&mut *conn)
        .await?;
        self.query(
            "INSERT INTO proposals (tenant_id, meeting_id, id, position, slot_start, slot_end) \
             SELECT ?1, ?2, unhex(j.value ->> 'id', '-'), j.value ->> 'position', \
             j.value ->> 'slot_start', j.value ->> 'slot_end' FROM json_each(?3) AS j \
             WHERE true ON CONFLICT (tenant_id, meeting_id, id) DO UPDATE SET \
             position = excluded.position, slot_start = excluded.slot_start, \
             slot_end = excluded.slot_end \
             WHERE (position, slot_start, slot_end) IS NOT \
             (excluded.position, excluded.slot_start, excluded.slot_end)",
        )
        .bind(tenant)
        .bind(meeting)
        .bind(json_rows(&rows.proposals)?)
        .execute(&mut *conn)
        .await?;
        self.query(
            "INSERT INTO votes (tenant_id, meeting_id, participant_id, proposal_id, position, \
             answer, at) \
             SELECT ?1, ?2, unhex(j.value ->> 'participant_id', '-'), \
             unhex(j.value ->> 'proposal_id', '-'), j.value ->> 'position', \
             j.value ->> 'answer', j.value ->> 'at' FROM json_each(?3) AS j WHERE true \
             ON CONFLICT (tenant_id, meeting_id, participant_id, proposal_id) DO UPDATE SET \
             position = excluded.position, answer = excluded.answer, at = excluded.at \
             WHERE (position, answer, at) IS NOT \
             (excluded.position, excluded.answer, excluded.at)",
        )
        .bind(tenant)
        .bind(meeting)
        .bind(json_rows(&rows.votes)?)
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
        conn: &mut SqliteConnection,
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

/// Binds a meeting row as `?1` … `?18`, with `version` as `?18`.
fn bind_meeting(
    q: sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    m: &MeetingRow,
    version: i64,
) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
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
impl MeetingStore for SqliteStore {
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
            .query_as("SELECT * FROM meetings WHERE tenant_id = ?1 AND id = ?2")
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

    async fn cast_ballot(
        &self,
        ballot: &Ballot,
        outbox: &[OutboxMessage],
    ) -> Result<Tally, StoreError> {
        let rows = BallotRows::of(ballot);
        let messages = OutboxRow::of_all(outbox)?;
        let tenants = tenants_of(rows.tenant_id, &messages);
        let result = async {
            // The database has one writer: ballots on a meeting are counted one after
            // the other, each over what the one before left.
            let mut tx = self.write().await?;
            let (tenant, meeting) = (rows.tenant_id, rows.meeting_id);
            let polling: Option<(String, i64)> = self
                .query_as("SELECT state, round FROM meetings WHERE tenant_id = ?1 AND id = ?2")
                .bind(tenant)
                .bind(meeting)
                .fetch_optional(&mut *tx)
                .await?;
            match polling {
                None => return Err(Failure::Store(StoreError::NotFound)),
                Some((state, round)) if state != "polling" || round != rows.round => {
                    return Err(Failure::Store(StoreError::Conflict));
                }
                Some(_) => {}
            }
            self.query(
                "INSERT INTO votes (tenant_id, meeting_id, participant_id, proposal_id, \
                 position, answer, at) \
                 SELECT ?1, ?2, unhex(j.value ->> 'participant_id', '-'), \
                 unhex(j.value ->> 'proposal_id', '-'), \
                 (SELECT coalesce(max(position), -1) + 1 FROM votes \
                    WHERE tenant_id = ?1 AND meeting_id = ?2) + (j.value ->> 'position'), \
                 j.value ->> 'answer', j.value ->> 'at' FROM json_each(?3) AS j WHERE true \
                 ON CONFLICT (tenant_id, meeting_id, participant_id, proposal_id) DO UPDATE \
                 SET answer = excluded.answer, at = excluded.at",
            )
            .bind(tenant)
            .bind(meeting)
            .bind(json_rows(&rows.votes)?)
            .execute(&mut *tx)
            .await?;
            let (version,): (i64,) = self
                .query_as(
                    "UPDATE meetings SET version = version + 1 \
                     WHERE tenant_id = ?1 AND id = ?2 RETURNING version",
                )
                .bind(tenant)
                .bind(meeting)
                .fetch_one(&mut *tx)
                .await?;
            self.enqueue_rows(&mut tx, &messages).await?;
            let votes: Vec<VoteRow> = self
                .query_as("SELECT * FROM votes WHERE tenant_id = ?1 AND meeting_id = ?2")
                .bind(tenant)
                .bind(meeting)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(tally(votes, version)?)
        }
        .await;
        self.settle(result, &tenants).await
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
                "SELECT * FROM meetings WHERE tenant_id = ?1 AND organizer_id = ?2 \
                 AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
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
                "SELECT * FROM meetings WHERE tenant_id = ?1 \
                 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3",
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
                "SELECT * FROM meetings WHERE tenant_id = ?1 AND (organizer_id = ?2 OR id IN \
                 (SELECT meeting_id FROM participants WHERE tenant_id = ?1 AND user_id = ?2)) \
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
                "SELECT id FROM meetings WHERE tenant_id = ?1 AND state = 'polling' \
                 AND deadline <= ?2 ORDER BY deadline, id LIMIT ?3",
            )
            .bind(tenant.as_uuid())
            .bind(Micros::of(now))
            .bind(limit(limit_))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        Ok(ids.into_iter().map(|(id,)| id.into()).collect())
    }
}

#[async_trait]
impl ErasureStore for SqliteStore {
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
            self.query(
                "DELETE FROM meetings WHERE tenant_id = ?1 \
                 AND id IN (SELECT unhex(value, '-') FROM json_each(?2))",
            )
            .bind(tenant)
            .bind(id_list(meeting_ids(&e.deleted)))
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
                .query_as("SELECT name FROM users WHERE tenant_id = ?1 AND id = ?2")
                .bind(tenant)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
            let name = name.and_then(|(n,)| PersonName::parse(&n).ok());
            self.query(
                "DELETE FROM credentials WHERE tenant_id = ?1 AND grant_id IN \
                 (SELECT id FROM grants WHERE tenant_id = ?1 AND user_id = ?2)",
            )
            .bind(tenant)
            .bind(user)
            .execute(&mut *tx)
            .await?;
            self.query("DELETE FROM sessions WHERE tenant_id = ?1 AND user_id = ?2")
                .bind(tenant)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            self.query("DELETE FROM api_tokens WHERE tenant_id = ?1 AND user_id = ?2")
                .bind(tenant)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            self.query("DELETE FROM users WHERE tenant_id = ?1 AND id = ?2")
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

impl SqliteStore {
    /// Takes a person out of every message that still holds a payload (pending, in
    /// flight or dead), in any tenant: messages to them are deleted, others rewritten.
    async fn scrub_outbox(
        &self,
        conn: &mut SqliteConnection,
        email: &EmailAddress,
        name: Option<&PersonName>,
    ) -> Result<(), Failure> {
        let needles = Needles::of(email, name);
        let candidates: Vec<(Uuid, Uuid, JsonText)> = self
            .query_as(
                "SELECT tenant_id, id, payload FROM outbox WHERE payload IS NOT NULL \
                 AND (instr(lower(payload), ?1) > 0 OR (?2 IS NOT NULL AND instr(payload, ?2) > 0))",
            )
            .bind(needles.email_lower.clone())
            .bind(needles.name_json.clone())
            .fetch_all(&mut *conn)
            .await?;
        let plan = ScrubPlan::of(candidates, email, name);
        let rewritten: Vec<(Uuid, Uuid, String)> = plan
            .rewritten
            .into_iter()
            .map(|(t, i, p)| (t, i, p.0))
            .collect();
        self.query(
            "DELETE FROM outbox WHERE (tenant_id, id) IN \
             (SELECT unhex(value ->> 0, '-'), unhex(value ->> 1, '-') FROM json_each(?1))",
        )
        .bind(json_rows(&plan.dropped)?)
        .execute(&mut *conn)
        .await?;
        self.query(
            "UPDATE outbox SET payload = r.value ->> 2 FROM json_each(?1) AS r \
             WHERE outbox.tenant_id = unhex(r.value ->> 0, '-') \
             AND outbox.id = unhex(r.value ->> 1, '-')",
        )
        .bind(json_rows(&rewritten)?)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
