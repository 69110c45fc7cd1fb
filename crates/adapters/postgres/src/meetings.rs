//! Meetings with their participants, proposals and votes, and erasure.
//!
//! A meeting is read in a fixed number of statements whatever its size, in one
//! `REPEATABLE READ` snapshot: the meeting rows, then one statement per child table for
//! all of them (`tenant_id = ANY(...) AND meeting_id = ANY(...)`: conditions on the
//! primary key's leading columns, which the planner answers from the index however
//! stale its statistics; children are then matched to their meeting by both keys). It
//! is written in two: the meeting row (compared on `version` for an update), then one
//! statement whose parts delete the children no longer there and insert or update, from
//! arrays (`UNNEST`), only the children that changed.
//!
//! A meeting read again while nothing changed it is answered from the copy kept by
//! [`crate::recent`] after one statement on the meeting rows.
//!
//! Single-meeting reads and ballots go through [`crate::batch`]: concurrent calls share
//! one transaction. A ballot batch is one statement: it locks its meetings still polling
//! in the ballots' round (`FOR UPDATE`, in key order), writes only the voters' rows
//! (numbered from the meeting's vote counter) and raises the versions, so that votes
//! never conflict with each other but do with a change loaded before them.

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
    AuditRow, BallotRows, MeetingRow, MeetingRows, OutboxRow, ParticipantRow, ProposalRow, VoteRow,
    assemble, distinct_keys, email_lower, meeting_ids, meeting_keys, tally_on_read, tenants_of,
};
use convene_sql::{JsonText, Micros};
use sqlx::PgConnection;
use uuid::Uuid;

use std::collections::HashMap;

use crate::batch::{Coalescer, Lost};
use crate::recent::{Key, Stamp};
use crate::{Db, PgStore, limit};

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

impl Db {
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
                "SELECT * FROM participants \
                 WHERE tenant_id = ANY($1::uuid[]) AND meeting_id = ANY($2::uuid[]) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(tenants.clone())
            .bind(ids.clone())
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        let proposals: Vec<ProposalRow> = self
            .query_as(
                "SELECT * FROM proposals \
                 WHERE tenant_id = ANY($1::uuid[]) AND meeting_id = ANY($2::uuid[]) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(tenants.clone())
            .bind(ids.clone())
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        let votes: Vec<VoteRow> = self
            .query_as(
                "SELECT * FROM votes \
                 WHERE tenant_id = ANY($1::uuid[]) AND meeting_id = ANY($2::uuid[]) \
                 ORDER BY tenant_id, meeting_id, position",
            )
            .bind(tenants)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
        assemble(meetings, participants, proposals, votes)
    }
}

impl PgStore {
    /// Meetings from their rows: one statement per child table for all of them.
    pub(crate) async fn load_meetings(
        &self,
        conn: &mut PgConnection,
        meetings: Vec<MeetingRow>,
    ) -> Result<Vec<Meeting>, StoreError> {
        self.db.load_meetings(conn, meetings).await
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
                 booked_end, state_at, round, sequence, event, created_at, version, \
                 next_vote) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18, $19)",
            ),
            m,
            m.version,
        )
        .bind(next_vote(rows))
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
                 round = $14, sequence = $15, event = $16, created_at = $17, version = $18 + 1, \
                 next_vote = $19 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $18",
            ),
            m,
            m.version,
        )
        .bind(next_vote(rows))
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
        self.db
            .recent
            .forget([(rows.meeting.tenant_id, rows.meeting.id)]);
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

/// How many read batches run at once.
const LOAD_LANES: usize = 3;

/// How many ballot batches run at once: fewer lanes make larger batches, so fewer
/// statements and commits a ballot. On the 2-core benchmark machine 2 lanes counted more
/// ballots with less CPU than 3 or 5, and 1 left the cores idle waiting on round trips.
/// Each batch holds a connection only for its transaction; a pool smaller than the lanes
/// (`database_connections`) makes them take turns.
const BALLOT_LANES: usize = 2;

/// How many audit appends run at once. One: appends that arrive while it runs are
/// written together by the next (the commit, not the row, is most of an append's cost).
const AUDIT_LANES: usize = 1;

/// At most this many requests share one transaction.
const MAX_BATCH: usize = 64;

/// Meeting reads and ballots waiting to share a transaction with others of their kind
/// ([`crate::batch`]): under load, one read transaction serves many `meeting` calls and
/// one write transaction counts many ballots.
pub(crate) struct Batches {
    loads: Coalescer<(Uuid, Uuid), Result<Meeting, StoreError>>,
    ballots: Coalescer<Cast, Result<Tally, Failure>>,
    pub(crate) audit: Coalescer<Vec<AuditRow>, Result<(), StoreError>>,
}

impl Default for Batches {
    fn default() -> Self {
        Self {
            loads: Coalescer::new(LOAD_LANES, MAX_BATCH),
            ballots: Coalescer::new(BALLOT_LANES, MAX_BATCH),
            audit: Coalescer::new(AUDIT_LANES, MAX_BATCH),
        }
    }
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("loads", &self.loads)
            .field("ballots", &self.ballots)
            .field("audit", &self.audit)
            .finish()
    }
}

/// A ballot to count, with the outbox messages that go with it.
pub(crate) struct Cast {
    ballot: Ballot,
    rows: BallotRows,
    messages: Vec<OutboxRow>,
}

/// What a caller is told when the batch holding its request died (a bug: it panicked).
pub(crate) fn lost(what: &str) -> StoreError {
    StoreError::Unavailable(format!("{what} was lost with the batch that held it"))
}

/// A batch's failure as each of its requests should see it: an unreachable database is
/// the same answer for all; anything else may be one request's fault, so each is tried
/// again alone.
fn shared_failure(failure: Failure) -> Option<StoreError> {
    match failure {
        Failure::Db(e) => match store_error(e) {
            e @ StoreError::Unavailable(_) => Some(e),
            _ => None,
        },
        Failure::Store(e @ StoreError::Unavailable(_)) => Some(e),
        _ => None,
    }
}

impl Db {
    /// Meetings by `(tenant, id)`, each `NotFound` when absent: one read transaction for
    /// all of them.
    async fn load_batch(&self, keys: Vec<(Uuid, Uuid)>) -> Vec<Result<Meeting, StoreError>> {
        let pick = |found: &HashMap<(Uuid, Uuid), Meeting>, key| {
            found.get(key).cloned().ok_or(StoreError::NotFound)
        };
        match self.load_keys(&keys).await {
            Ok(found) => keys.iter().map(|k| pick(&found, k)).collect(),
            Err(e) if keys.len() == 1 || matches!(e, StoreError::Unavailable(_)) => {
                keys.iter().map(|_| Err(e.clone())).collect()
            }
            Err(_) => {
                // One meeting that does not read back must not fail the others.
                let mut answers = Vec::with_capacity(keys.len());
                for key in &keys {
                    let alone = self.load_keys(std::slice::from_ref(key)).await;
                    answers.push(alone.and_then(|found| pick(&found, key)));
                }
                answers
            }
        }
    }

    /// The meetings of `keys` that exist. Those with a copy kept here ([`crate::recent`])
    /// are first checked in one statement on their meeting rows and answered from the
    /// copy when unchanged; the others are read in full.
    async fn load_keys(&self, keys: &[(Uuid, Uuid)]) -> Result<HashMap<Key, Meeting>, StoreError> {
        let (kept, mut unknown): (Vec<Key>, Vec<Key>) =
            keys.iter().partition(|key| self.recent.holds(key));
        let stamps: Vec<(Uuid, Uuid, i64, i64)> = match kept.as_slice() {
            [] => Vec::new(),
            [(tenant, id)] => self
                .query_as(
                    "SELECT tenant_id, id, xmin::text::int8, version FROM meetings \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?,
            _ => {
                let (tenants, ids) = distinct_keys(kept.iter().copied());
                self.query_as(
                    "SELECT tenant_id, id, xmin::text::int8, version FROM meetings \
                     WHERE tenant_id = ANY($1::uuid[]) AND id = ANY($2::uuid[])",
                )
                .bind(tenants)
                .bind(ids)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?
            }
        };
        let mut found = HashMap::with_capacity(keys.len());
        for (tenant, id, xmin, version) in stamps {
            let key = (tenant, id);
            match self.recent.get(&key, Stamp { xmin, version }) {
                Some(meeting) => {
                    found.insert(key, meeting);
                }
                None => unknown.push(key),
            }
        }
        if !unknown.is_empty() {
            found.extend(self.read_keys(&unknown).await?);
        }
        Ok(found)
    }

    /// The meetings of `keys` that exist, read in full in one snapshot, and kept.
    async fn read_keys(&self, keys: &[(Uuid, Uuid)]) -> Result<HashMap<Key, Meeting>, StoreError> {
        use sqlx::{FromRow as _, Row as _};
        let (tenants, ids) = distinct_keys(keys.iter().copied());
        let mut tx = self.read().await?;
        let rows = if let [(tenant, id)] = keys {
            self.query(
                "SELECT *, xmin::text::int8 AS row_xmin FROM meetings \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_all(&mut *tx)
            .await
        } else {
            self.query(
                "SELECT *, xmin::text::int8 AS row_xmin FROM meetings \
                 WHERE tenant_id = ANY($1::uuid[]) AND id = ANY($2::uuid[])",
            )
            .bind(tenants)
            .bind(ids)
            .fetch_all(&mut *tx)
            .await
        }
        .map_err(store_error)?;
        let mut meeting_rows = Vec::with_capacity(rows.len());
        let mut stamps = Vec::with_capacity(rows.len());
        for row in &rows {
            let m = MeetingRow::from_row(row).map_err(store_error)?;
            let xmin: i64 = row.try_get("row_xmin").map_err(store_error)?;
            stamps.push(Stamp {
                xmin,
                version: m.version,
            });
            meeting_rows.push(m);
        }
        let meetings = self.load_meetings(&mut tx, meeting_rows).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(meetings
            .into_iter()
            .zip(stamps)
            .map(|(m, stamp)| {
                let key = (m.tenant().as_uuid(), m.id().as_uuid());
                self.recent.put(key, stamp, m.clone());
                (key, m)
            })
            .collect())
    }

    /// Counts ballots, each answered as if alone: in groups where each meeting is asked
    /// for one round (nearly always the whole batch), one statement a group.
    async fn cast_batch(&self, batch: Vec<Cast>) -> Vec<Result<Tally, Failure>> {
        let mut answers: Vec<Option<Result<Tally, Failure>>> = batch.iter().map(|_| None).collect();
        let asks = batch
            .iter()
            .map(|c| ((c.rows.tenant_id, c.rows.meeting_id), c.rows.round));
        for group in one_round_a_meeting(asks) {
            let casts: Vec<&Cast> = group.iter().map(|&i| &batch[i]).collect();
            for (i, answer) in group.into_iter().zip(self.cast_group(&casts).await) {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(Failure::Store(lost("the ballot")))))
            .collect()
    }

    /// One group's ballots together; when that fails for a reason that may be one
    /// ballot's, each alone.
    async fn cast_group(&self, group: &[&Cast]) -> Vec<Result<Tally, Failure>> {
        let failure = match self.cast_together(group).await {
            Ok(answers) => return answers,
            Err(failure) => failure,
        };
        if group.len() == 1 {
            return vec![Err(failure)];
        }
        if let Some(e) = shared_failure(failure) {
            return group
                .iter()
                .map(|_| Err(Failure::Store(e.clone())))
                .collect();
        }
        let mut answers = Vec::with_capacity(group.len());
        for cast in group {
            answers.push(match self.cast_together(std::slice::from_ref(cast)).await {
                Ok(mut one) => one.pop().unwrap_or(Err(Failure::Store(lost("the ballot")))),
                Err(failure) => Err(failure),
            });
        }
        answers
    }

    /// Counts ballots (each meeting asked for one round) in one statement, which is its
    /// own transaction: it locks the meetings still polling in that round (in key order,
    /// so that concurrent batches cannot deadlock), raises each one's version by its
    /// number of ballots and its vote counter by its number of new vote rows, writes the
    /// answers merged in arrival order (a later answer to the same proposal by the same
    /// participant wins; new rows numbered from the counter) and the ballots' outbox
    /// messages, and says for each meeting whether it was counted. A ballot nothing came
    /// between is answered from its own copy; the others' meetings are read again, whole
    /// and in one snapshot.
    async fn cast_together(&self, batch: &[&Cast]) -> Result<Vec<Result<Tally, Failure>>, Failure> {
        /// What a batch asks of one meeting.
        struct Asked {
            round: i64,
            ballots: i64,
            new_votes: i64,
        }
        let mut asked: HashMap<Key, Asked> = HashMap::new();
        let mut votes: Vec<VoteRow> = Vec::new();
        let mut slot: HashMap<(Key, Uuid, Uuid), usize> = HashMap::new();
        let mut messages: Vec<(Key, &OutboxRow)> = Vec::new();
        for cast in batch {
            let key = (cast.rows.tenant_id, cast.rows.meeting_id);
            let a = asked.entry(key).or_insert(Asked {
                round: cast.rows.round,
                ballots: 0,
                new_votes: 0,
            });
            if a.round != cast.rows.round {
                return Err(Failure::Store(StoreError::Invalid(
                    "two rounds of one meeting in one ballot statement".into(),
                )));
            }
            a.ballots += 1;
            messages.extend(cast.messages.iter().map(|m| (key, m)));
            for vote in &cast.rows.votes {
                match slot.entry((key, vote.participant_id, vote.proposal_id)) {
                    std::collections::hash_map::Entry::Occupied(at) => {
                        let earlier = &mut votes[*at.get()];
                        earlier.answer.clone_from(&vote.answer);
                        earlier.at = vote.at;
                    }
                    std::collections::hash_map::Entry::Vacant(at) => {
                        at.insert(votes.len());
                        // The position within this batch; the statement adds the counter.
                        votes.push(VoteRow {
                            position: a.new_votes,
                            ..vote.clone()
                        });
                        a.new_votes += 1;
                    }
                }
            }
        }
        let mut keys: Vec<Key> = asked.keys().copied().collect();
        keys.sort_unstable();
        let counted: Vec<Counted> = self
            .query_as(
                "WITH k AS MATERIALIZED ( \
                   SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::int8[], \
                   $5::int8[]) AS k (t, m, round, ballots, votes)), \
                 locked AS MATERIALIZED ( \
                   SELECT mt.tenant_id, mt.id FROM meetings AS mt \
                   JOIN k ON mt.tenant_id = k.t AND mt.id = k.m \
                   WHERE mt.state = 'polling' AND mt.round = k.round \
                   ORDER BY mt.tenant_id, mt.id FOR UPDATE OF mt), \
                 bump AS ( \
                   UPDATE meetings AS mt SET version = mt.version + k.ballots, \
                   next_vote = mt.next_vote + k.votes \
                   FROM locked, k \
                   WHERE mt.tenant_id = locked.tenant_id AND mt.id = locked.id \
                   AND k.t = locked.tenant_id AND k.m = locked.id \
                   RETURNING mt.tenant_id, mt.id, mt.version, mt.xmin::text::int8 AS row_xmin, \
                   mt.next_vote - k.votes AS base), \
                 put AS ( \
                   INSERT INTO votes AS v (tenant_id, meeting_id, participant_id, \
                   proposal_id, position, answer, at) \
                   SELECT r.t, r.m, r.pa, r.pr, bump.base + r.n, r.a, r.at \
                   FROM UNNEST($6::uuid[], $7::uuid[], $8::uuid[], $9::uuid[], $10::int8[], \
                   $11::text[], $12::timestamptz[]) AS r (t, m, pa, pr, n, a, at) \
                   JOIN bump ON bump.tenant_id = r.t AND bump.id = r.m \
                   ON CONFLICT (tenant_id, meeting_id, participant_id, proposal_id) \
                   DO UPDATE SET answer = excluded.answer, at = excluded.at), \
                 sent AS ( \
                   INSERT INTO outbox (tenant_id, id, key, kind, payload, state, attempts, \
                   created_at) \
                   SELECT x.t, x.i, x.k, x.kd, x.p, 'pending', 0, x.c \
                   FROM UNNEST($13::uuid[], $14::uuid[], $15::uuid[], $16::uuid[], \
                   $17::text[], $18::text[], $19::jsonb[], $20::timestamptz[]) \
                   WITH ORDINALITY AS x (mt, mm, t, i, k, kd, p, c, n) \
                   JOIN bump ON bump.tenant_id = x.mt AND bump.id = x.mm \
                   ORDER BY x.n \
                   ON CONFLICT (tenant_id, key) DO NOTHING) \
                 SELECT k.t, k.m, bump.version, bump.row_xmin, \
                 EXISTS (SELECT 1 FROM meetings AS e WHERE e.tenant_id = k.t AND e.id = k.m) \
                 FROM k LEFT JOIN bump ON bump.tenant_id = k.t AND bump.id = k.m",
            )
            .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| asked[k].round).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| asked[k].ballots).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| asked[k].new_votes).collect::<Vec<_>>())
            .bind(votes.iter().map(|v| v.tenant_id).collect::<Vec<_>>())
            .bind(votes.iter().map(|v| v.meeting_id).collect::<Vec<_>>())
            .bind(votes.iter().map(|v| v.participant_id).collect::<Vec<_>>())
            .bind(votes.iter().map(|v| v.proposal_id).collect::<Vec<_>>())
            .bind(votes.iter().map(|v| v.position).collect::<Vec<_>>())
            .bind(votes.iter().map(|v| v.answer.clone()).collect::<Vec<_>>())
            .bind(votes.iter().map(|v| v.at).collect::<Vec<_>>())
            .bind(messages.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
            .bind(messages.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
            .bind(
                messages
                    .iter()
                    .map(|(_, r)| r.tenant_id)
                    .collect::<Vec<_>>(),
            )
            .bind(messages.iter().map(|(_, r)| r.id).collect::<Vec<_>>())
            .bind(
                messages
                    .iter()
                    .map(|(_, r)| r.key.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                messages
                    .iter()
                    .map(|(_, r)| r.kind.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                messages
                    .iter()
                    .map(|(_, r)| r.payload.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                messages
                    .iter()
                    .map(|(_, r)| r.created_at)
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&self.pool)
            .await?;
        let outcome: HashMap<Key, Result<Stamp, StoreError>> = counted
            .into_iter()
            .map(|(t, m, version, xmin, present)| {
                let outcome = match (version, xmin) {
                    (Some(version), Some(xmin)) => Ok(Stamp { xmin, version }),
                    _ if present => Err(StoreError::Conflict),
                    _ => Err(StoreError::NotFound),
                };
                ((t, m), outcome)
            })
            .collect();
        // A ballot nothing came between (the only one of its meeting here, and the
        // version one more than its copy's) is counted on its copy (`Tally::votes` is
        // `None`); the others' meetings are read again.
        let untouched = |cast: &Cast, stamp: &Stamp| {
            let key = (cast.rows.tenant_id, cast.rows.meeting_id);
            asked.get(&key).is_some_and(|a| a.ballots == 1)
                && cast.rows.read_version.checked_add(1) == Some(stamp.version)
        };
        let mut stale: Vec<Key> = Vec::new();
        for cast in batch {
            let key = (cast.rows.tenant_id, cast.rows.meeting_id);
            match outcome.get(&key) {
                Some(Ok(stamp)) if untouched(cast, stamp) => {
                    self.recent.counted(&key, &cast.ballot, *stamp);
                }
                Some(Ok(_)) => stale.push(key),
                _ => self.recent.forget([key]),
            }
        }
        stale.sort_unstable();
        stale.dedup();
        // The ballots are committed: a failed read fails only the answers that needed it
        // (never the batch, which would be cast again).
        let fresh = if stale.is_empty() {
            Ok(HashMap::new())
        } else {
            self.recent.forget(stale.iter().copied());
            self.read_keys(&stale).await
        };
        Ok(batch
            .iter()
            .map(|cast| {
                let key = (cast.rows.tenant_id, cast.rows.meeting_id);
                let stamp = match outcome.get(&key) {
                    Some(Ok(stamp)) => stamp,
                    Some(Err(e)) => return Err(Failure::Store(e.clone())),
                    None => {
                        return Err(Failure::Store(StoreError::Corrupt(format!(
                            "meeting {} lost",
                            key.1
                        ))));
                    }
                };
                if untouched(cast, stamp) {
                    return tally_on_read(stamp.version).map_err(Failure::Store);
                }
                // Counted; since then the meeting may have moved on. In another round
                // (rescheduled, decided) this ballot's answers no longer stand.
                let fresh = fresh.as_ref().map_err(|e| Failure::Store(e.clone()))?;
                match fresh.get(&key) {
                    Some(m)
                        if matches!(
                            m.state(),
                            convene_domain::meeting::MeetingState::Polling { .. }
                        ) && i64::from(m.round()) == cast.rows.round =>
                    {
                        Ok(Tally {
                            votes: Some(m.votes().to_vec()),
                            version: m.version(),
                        })
                    }
                    Some(_) => Err(Failure::Store(StoreError::Conflict)),
                    None => Err(Failure::Store(StoreError::NotFound)),
                }
            })
            .collect())
    }
}

/// What a ballot statement says of one meeting: its key, its new version and row stamp
/// when the ballots were counted, and whether it exists.
type Counted = (Uuid, Uuid, Option<i64>, Option<i64>, bool);

/// The batch's casts in groups where each meeting is asked for one round, in arrival
/// order: a ballot made before a meeting moved to a new round goes in a group of its own.
fn one_round_a_meeting(asks: impl Iterator<Item = (Key, i64)>) -> Vec<Vec<usize>> {
    let mut groups: Vec<(HashMap<Key, i64>, Vec<usize>)> = Vec::new();
    for (i, (key, round)) in asks.enumerate() {
        let fits =
            |rounds: &HashMap<Key, i64>| rounds.get(&key).is_none_or(|&asked| asked == round);
        let g = match groups.iter().position(|(rounds, _)| fits(rounds)) {
            Some(g) => g,
            None => {
                groups.push((HashMap::new(), Vec::new()));
                groups.len() - 1
            }
        };
        groups[g].0.insert(key, round);
        groups[g].1.push(i);
    }
    groups.into_iter().map(|(_, members)| members).collect()
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

/// The vote counter of a meeting saved whole: one past its last vote's position (a
/// ballot numbers its new votes from there).
fn next_vote(rows: &MeetingRows) -> i64 {
    rows.votes
        .iter()
        .map(|v| v.position.saturating_add(1))
        .max()
        .unwrap_or(0)
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
        let db = self.db.clone();
        self.batches
            .loads
            .call((tenant.as_uuid(), id.as_uuid()), move |keys| {
                let db = db.clone();
                async move { db.load_batch(keys).await }
            })
            .await
            .unwrap_or_else(|Lost| Err(lost("the read")))
    }

    async fn cast_ballot(
        &self,
        ballot: &Ballot,
        outbox: &[OutboxMessage],
    ) -> Result<Tally, StoreError> {
        let rows = BallotRows::of(ballot);
        let messages = OutboxRow::of_all(outbox)?;
        let tenants = tenants_of(rows.tenant_id, &messages);
        let db = self.db.clone();
        let result = self
            .batches
            .ballots
            .call(
                Cast {
                    ballot: ballot.clone(),
                    rows,
                    messages,
                },
                move |batch| {
                    let db = db.clone();
                    async move { db.cast_batch(batch).await }
                },
            )
            .await
            .unwrap_or_else(|Lost| Err(Failure::Store(lost("the ballot"))));
        self.settle(result, &tenants).await
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
        // No copy of what the erasure changed or deleted is kept here a moment longer.
        let changed_keys = changed.iter().map(|r| (r.meeting.tenant_id, r.meeting.id));
        let deleted_keys = e.deleted.iter().map(|id| (tenant, id.as_uuid()));
        self.db.recent.forget(changed_keys.chain(deleted_keys));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_asks_a_meeting_for_one_round() {
        let (a, b) = (
            (Uuid::nil(), Uuid::from_u128(1)),
            (Uuid::nil(), Uuid::from_u128(2)),
        );
        let none: Vec<Vec<usize>> = Vec::new();
        assert_eq!(one_round_a_meeting(std::iter::empty()), none);
        assert_eq!(
            one_round_a_meeting([(a, 1), (b, 1), (a, 1), (b, 4)].into_iter()),
            vec![vec![0, 1, 2], vec![3]],
            "one meeting in two rounds goes in two groups; the rest stay together"
        );
        assert_eq!(
            one_round_a_meeting([(a, 2), (a, 1), (a, 3), (a, 1), (b, 7)].into_iter()),
            vec![vec![0, 4], vec![1, 3], vec![2]],
            "each round of a meeting in arrival order"
        );
    }
}
