//! One struct per table row, and its conversion to and from the domain.
//!
//! Going in (`XRow::of`), values are checked against the [field limits](crate::limits)
//! and refused as `Invalid` before any SQL runs. Coming out (`into_*`), anything that does
//! not parse back into the domain's types is `Corrupt`, naming the column or record:
//! never a silently wrong value.
//!
//! Column names are the field names; ids are UUIDs, instants are [`Micros`], JSON columns
//! are [`JsonText`], token hashes are 32 bytes.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::IpAddr;

use convene_domain::access::{ApiToken, Session, TokenHash};
use convene_domain::audit::{Actor, AuditEntry};
use convene_domain::consent::{Grant, GrantSnapshot, GrantState, RevokedBy, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::ids::MeetingId;
use convene_domain::meeting::{
    Ballot, BookedEvent, Meeting, MeetingSnapshot, MeetingState, MeetingTitle, Participant,
    ParticipantKind, Proposal, Tally, Vote,
};
use convene_domain::outbox::OutboxMessage;
use convene_domain::outbox::RetryDecision;
use convene_domain::people::{Buffers, PersonName, Role, User, UserStatus};
use convene_domain::ports::{ClaimedMessage, OutboxCounts, StoreError};
use convene_domain::tenant::{Tenant, TenantKey, TenantSettings};
use convene_domain::time::{Interval, MeetingLength, SignedDuration, Timestamp, Zone};
use serde::Serialize;
use uuid::Uuid;

use crate::names::{self, actor_kind, grant_state, outbox_state, participant_kind};
use crate::values::duration_micros;
use crate::{JsonText, Micros, corrupt, limits};

/// An email as compared: ASCII lower case (the domain compares addresses
/// ASCII-case-insensitively).
pub fn email_lower(email: &EmailAddress) -> String {
    email.as_str().to_ascii_lowercase()
}

/// Names a row (and one of its fields) in a `Corrupt` or `Invalid` message; written out
/// only when such a message is made, so that reading rows formats nothing.
#[derive(Clone, Copy, Debug)]
struct What {
    table: &'static str,
    id: Uuid,
    field: Option<&'static str>,
}

impl What {
    /// The row `id` of `table`, as in "user 0190…".
    fn row(table: &'static str, id: Uuid) -> Self {
        Self {
            table,
            id,
            field: None,
        }
    }

    /// One field of the row, as in "user 0190…: working hours".
    fn field(self, field: &'static str) -> Self {
        Self {
            field: Some(field),
            ..self
        }
    }
}

impl Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.table, self.id)?;
        match self.field {
            Some(field) => write!(f, ": {field}"),
            None => Ok(()),
        }
    }
}

fn int(what: impl Display, n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Invalid(format!("{what} {n} is too large to store")))
}

fn uint<T: TryFrom<i64>>(what: impl Display, n: i64) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| corrupt(what, format_args!("{n} is out of range")))
}

fn interval(what: impl Display, start: Micros, end: Micros) -> Result<Interval, StoreError> {
    Interval::new(start.timestamp()?, end.timestamp()?).map_err(|e| corrupt(what, e))
}

/// An interval's ends, refused when truncation to microseconds would empty it.
fn interval_micros(what: impl Display, i: Interval) -> Result<(Micros, Micros), StoreError> {
    let (start, end) = (Micros::of(i.start()), Micros::of(i.end()));
    if start >= end {
        return Err(StoreError::Invalid(format!(
            "{what} is shorter than a microsecond"
        )));
    }
    Ok((start, end))
}

fn person_name(what: impl Display, name: &str) -> Result<PersonName, StoreError> {
    PersonName::parse(name).map_err(|e| corrupt(what, e))
}

fn email(what: impl Display, address: &str) -> Result<EmailAddress, StoreError> {
    EmailAddress::parse(address).map_err(|e| corrupt(what, e))
}

fn zone(what: impl Display, name: &str) -> Result<Zone, StoreError> {
    Zone::parse(name).map_err(|e| corrupt(what, e))
}

fn token_hash(what: impl Display, bytes: &[u8]) -> Result<TokenHash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenHash::from_bytes)
        .map_err(|_| corrupt(what, format_args!("{} bytes, expected 32", bytes.len())))
}

// ---------------------------------------------------------------- tenants

/// `tenants`: `key` is [`TenantKey::as_key`] (unique); `key_kind` and `key_value` keep
/// the key exactly as given.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantRow {
    /// The tenant's id.
    pub tenant_id: Uuid,
    /// Normalised external key, unique.
    pub key: String,
    /// `google_workspace`, `microsoft`, `personal` or `local`.
    pub key_kind: String,
    /// The domain, tid, subject or slug as given.
    pub key_value: String,
    /// Display name.
    pub name: String,
    /// `TenantSettings` in its serde form.
    pub settings: JsonText,
    /// When first seen.
    pub created_at: Micros,
}

impl TenantRow {
    /// The row for a tenant.
    pub fn of(t: &Tenant) -> Result<Self, StoreError> {
        let (key_kind, key_value) = match &t.key {
            TenantKey::GoogleWorkspace { domain } => ("google_workspace", domain),
            TenantKey::Microsoft { tid } => ("microsoft", tid),
            TenantKey::Personal { subject } => ("personal", subject),
            TenantKey::Local { slug } => ("local", slug),
        };
        let key = t.key.as_key();
        limits::text("tenant key", &key, limits::TENANT_KEY)?;
        limits::text("tenant name", &t.name, limits::TENANT_NAME)?;
        Ok(Self {
            tenant_id: t.id.as_uuid(),
            key,
            key_kind: key_kind.to_owned(),
            key_value: key_value.clone(),
            name: t.name.clone(),
            settings: Self::settings(&t.settings)?,
            created_at: Micros::of(t.created_at),
        })
    }

    /// The stored form of a tenant's settings.
    pub fn settings(settings: &TenantSettings) -> Result<JsonText, StoreError> {
        let json = JsonText::of("tenant settings", settings)?;
        limits::json(
            "tenant settings",
            json.as_str(),
            limits::TENANT_SETTINGS_BYTES,
        )?;
        Ok(json)
    }

    /// The tenant back.
    pub fn into_tenant(self) -> Result<Tenant, StoreError> {
        let value = self.key_value;
        let key = match self.key_kind.as_str() {
            "google_workspace" => TenantKey::GoogleWorkspace { domain: value },
            "microsoft" => TenantKey::Microsoft { tid: value },
            "personal" => TenantKey::Personal { subject: value },
            "local" => TenantKey::Local { slug: value },
            other => {
                return Err(corrupt(
                    "tenants.key_kind",
                    format_args!("unknown value {other:?}"),
                ));
            }
        };
        Ok(Tenant {
            id: self.tenant_id.into(),
            key,
            settings: self
                .settings
                .parse(What::row("tenant", self.tenant_id).field("settings"))?,
            name: self.name,
            created_at: self.created_at.timestamp()?,
        })
    }
}

/// A user's row with their tenant's settings (`users` joined to `tenants`).
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// The user's columns.
    #[cfg_attr(feature = "sqlx", sqlx(flatten))]
    pub user: UserRow,
    /// `tenants.settings`, selected as `tenant_settings`.
    pub tenant_settings: JsonText,
}

impl MemberRow {
    /// The user and the settings.
    pub fn into_member(self) -> Result<(User, TenantSettings), StoreError> {
        let settings = self
            .tenant_settings
            .parse(What::row("tenant", self.user.tenant_id).field("settings"))?;
        Ok((self.user.into_user()?, settings))
    }
}

/// A user's row with one of their grants, or none (`users` left-joined to `grants`,
/// the grant's columns selected as `grant_*`; its tenant and user are the user's).
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserGrantRow {
    /// The user's columns.
    #[cfg_attr(feature = "sqlx", sqlx(flatten))]
    pub user: UserRow,
    /// `grants.id`; `NULL` for a user without grants.
    pub grant_id: Option<Uuid>,
    /// `grants.provider`.
    pub grant_provider: Option<String>,
    /// `grants.account`.
    pub grant_account: Option<String>,
    /// `grants.scopes`.
    pub grant_scopes: Option<JsonText>,
    /// `grants.state`.
    pub grant_state: Option<String>,
    /// `grants.revoked_by`.
    pub grant_revoked_by: Option<String>,
    /// `grants.revoked_by_admin`.
    pub grant_revoked_by_admin: Option<Uuid>,
    /// `grants.changed_at`.
    pub grant_changed_at: Option<Micros>,
    /// `grants.granted_at`.
    pub grant_granted_at: Option<Micros>,
}

/// Users and their grants from [`UserGrantRow`]s ordered by user id: one entry per user
/// (whose columns are read once however many grants they have), grants in row order.
pub fn users_with_grants(rows: Vec<UserGrantRow>) -> Result<Vec<(User, Vec<Grant>)>, StoreError> {
    let mut out: Vec<(User, Vec<Grant>)> = Vec::new();
    for row in rows {
        let grant = match row.grant_id {
            None => None,
            Some(id) => {
                let missing = || corrupt(What::row("grant", id), "a joined column is NULL");
                Some(
                    GrantRow {
                        tenant_id: row.user.tenant_id,
                        id,
                        user_id: row.user.id,
                        provider: row.grant_provider.ok_or_else(missing)?,
                        account: row.grant_account.ok_or_else(missing)?,
                        scopes: row.grant_scopes.ok_or_else(missing)?,
                        state: row.grant_state.ok_or_else(missing)?,
                        revoked_by: row.grant_revoked_by,
                        revoked_by_admin: row.grant_revoked_by_admin,
                        changed_at: row.grant_changed_at,
                        granted_at: row.grant_granted_at.ok_or_else(missing)?,
                    }
                    .into_grant()?,
                )
            }
        };
        match out.last_mut() {
            Some((user, grants)) if user.id.as_uuid() == row.user.id => grants.extend(grant),
            _ => out.push((row.user.into_user()?, grant.into_iter().collect())),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- users

/// `users`: `email_lower` is unique per tenant.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Email as given.
    pub email: String,
    /// Email as compared ([`email_lower`]).
    pub email_lower: String,
    /// IANA zone name.
    pub zone: String,
    /// `WeeklyHours` in its serde form.
    pub working_hours: JsonText,
    /// Buffer before meetings, in microseconds.
    pub buffer_before_us: i64,
    /// Buffer after meetings, in microseconds.
    pub buffer_after_us: i64,
    /// `member` or `tenant_admin`.
    pub role: String,
    /// When a tenant admin deactivated the account (NULL while active).
    pub deactivated_at: Option<Micros>,
    /// Account creation.
    pub created_at: Micros,
}

impl UserRow {
    /// The row for a user.
    pub fn of(u: &User) -> Result<Self, StoreError> {
        let working_hours = JsonText::of("working hours", &u.working_hours)?;
        limits::json(
            "working hours",
            working_hours.as_str(),
            limits::WORKING_HOURS_BYTES,
        )?;
        Ok(Self {
            tenant_id: u.tenant.as_uuid(),
            id: u.id.as_uuid(),
            name: u.name.as_str().to_owned(),
            email: u.email.as_str().to_owned(),
            email_lower: email_lower(&u.email),
            zone: u.zone.name().to_owned(),
            working_hours,
            buffer_before_us: duration_micros(u.buffers.before),
            buffer_after_us: duration_micros(u.buffers.after),
            role: u.role.as_str().to_owned(),
            deactivated_at: match u.status {
                UserStatus::Active => None,
                UserStatus::Deactivated { at } => Some(Micros::of(at)),
            },
            created_at: Micros::of(u.created_at),
        })
    }

    /// The user back.
    pub fn into_user(self) -> Result<User, StoreError> {
        let what = What::row("user", self.id);
        let buffers = Buffers::new(
            SignedDuration::from_micros(self.buffer_before_us),
            SignedDuration::from_micros(self.buffer_after_us),
        )
        .ok_or_else(|| corrupt(what, "buffers out of range"))?;
        Ok(User {
            id: self.id.into(),
            tenant: self.tenant_id.into(),
            name: person_name(what, &self.name)?,
            email: email(what, &self.email)?,
            zone: zone(what, &self.zone)?,
            working_hours: self.working_hours.parse(what.field("working hours"))?,
            buffers,
            role: Role::parse(&self.role).ok_or_else(|| {
                corrupt("users.role", format_args!("unknown value {:?}", self.role))
            })?,
            status: match self.deactivated_at {
                None => UserStatus::Active,
                Some(at) => UserStatus::Deactivated {
                    at: at.timestamp()?,
                },
            },
            created_at: self.created_at.timestamp()?,
        })
    }
}

// ---------------------------------------------------------------- grants

/// `grants`: `(tenant_id, user_id, provider, account)` is unique among rows whose state is
/// not `erased`.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrantRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// The user who consented (kept after they are erased: an opaque id).
    pub user_id: Uuid,
    /// Provider name.
    pub provider: String,
    /// The provider's account id (empty once erased).
    pub account: String,
    /// Scope names, a JSON array.
    pub scopes: JsonText,
    /// `active`, `revoked` or `erased`.
    pub state: String,
    /// For `revoked`: `user`, `admin` or `provider`.
    pub revoked_by: Option<String>,
    /// For a revocation by an administrator: who.
    pub revoked_by_admin: Option<Uuid>,
    /// When it was revoked or erased.
    pub changed_at: Option<Micros>,
    /// When consent was given.
    pub granted_at: Micros,
}

impl GrantRow {
    /// The row for a grant.
    pub fn of(g: &Grant) -> Result<Self, StoreError> {
        limits::text("grant account", g.account(), limits::GRANT_ACCOUNT)?;
        let scopes: Vec<String> = g.scopes().map(names::scope).collect();
        let (state, revoked_by, revoked_by_admin, changed_at) = match g.state() {
            GrantState::Active => (grant_state::ACTIVE, None, None, None),
            GrantState::Revoked { by, at } => {
                let (by, admin) = match by {
                    RevokedBy::User => (grant_state::BY_USER, None),
                    RevokedBy::Admin { admin } => (grant_state::BY_ADMIN, Some(admin.as_uuid())),
                    RevokedBy::Provider => (grant_state::BY_PROVIDER, None),
                };
                (
                    grant_state::REVOKED,
                    Some(by.to_owned()),
                    admin,
                    Some(Micros::of(at)),
                )
            }
            GrantState::Erased { at } => (grant_state::ERASED, None, None, Some(Micros::of(at))),
        };
        Ok(Self {
            tenant_id: g.tenant().as_uuid(),
            id: g.id().as_uuid(),
            user_id: g.user().as_uuid(),
            provider: names::provider(g.provider()).to_owned(),
            account: g.account().to_owned(),
            scopes: JsonText::of("scopes", &scopes)?,
            state: state.to_owned(),
            revoked_by,
            revoked_by_admin,
            changed_at,
            granted_at: Micros::of(g.granted_at()),
        })
    }

    /// Whether the row is of an erased grant (which clashes with nothing).
    pub fn is_erased(&self) -> bool {
        self.state == grant_state::ERASED
    }

    /// The grant back.
    pub fn into_grant(self) -> Result<Grant, StoreError> {
        let what = What::row("grant", self.id);
        let changed_at = || {
            self.changed_at
                .ok_or_else(|| corrupt(what, "no changed_at"))?
                .timestamp()
        };
        let state = match self.state.as_str() {
            grant_state::ACTIVE => GrantState::Active,
            grant_state::ERASED => GrantState::Erased { at: changed_at()? },
            grant_state::REVOKED => {
                let by = match (self.revoked_by.as_deref(), self.revoked_by_admin) {
                    (Some(grant_state::BY_USER), _) => RevokedBy::User,
                    (Some(grant_state::BY_PROVIDER), _) => RevokedBy::Provider,
                    (Some(grant_state::BY_ADMIN), Some(admin)) => RevokedBy::Admin {
                        admin: admin.into(),
                    },
                    (by, _) => {
                        return Err(corrupt(what, format_args!("revoked_by {by:?}")));
                    }
                };
                GrantState::Revoked {
                    by,
                    at: changed_at()?,
                }
            }
            other => return Err(corrupt(what, format_args!("state {other:?}"))),
        };
        let scopes: Vec<String> = self.scopes.parse(what.field("scopes"))?;
        let scopes = scopes
            .iter()
            .map(|s| names::parse_scope(s))
            .collect::<Result<Vec<Scope>, _>>()?;
        Grant::restore(GrantSnapshot {
            id: self.id.into(),
            tenant: self.tenant_id.into(),
            user: self.user_id.into(),
            provider: names::parse_provider(&self.provider)?,
            account: self.account,
            scopes,
            state,
            granted_at: self.granted_at.timestamp()?,
        })
        .map_err(|e| corrupt(what, e))
    }
}

// ---------------------------------------------------------------- meetings

/// `meetings`: one row per meeting; `version` is compared on update.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MeetingRow {
    /// Tenant of the organizer.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// The organizer (a user of the tenant).
    pub organizer_id: Uuid,
    /// Title.
    pub title: String,
    /// Length in minutes.
    pub duration_min: i64,
    /// Search window start.
    pub window_start: Micros,
    /// Search window end.
    pub window_end: Micros,
    /// [`MeetingState::name`].
    pub state: String,
    /// For `polling`: the poll's deadline.
    pub deadline: Option<Micros>,
    /// For `booked`: the proposal.
    pub booked_proposal: Option<Uuid>,
    /// For `booked`: the slot's start.
    pub booked_start: Option<Micros>,
    /// For `booked`: the slot's end.
    pub booked_end: Option<Micros>,
    /// When the meeting entered its state (not for `polling`).
    pub state_at: Option<Micros>,
    /// Poll round.
    pub round: i64,
    /// iCalendar `SEQUENCE`.
    pub sequence: i64,
    /// The booked event (`BookedEvent` in its serde form), once created.
    pub event: Option<JsonText>,
    /// When asked for.
    pub created_at: Micros,
    /// Optimistic version.
    pub version: i64,
}

/// `participants`: one row per participant, in `position` order.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParticipantRow {
    /// Tenant of the meeting.
    pub tenant_id: Uuid,
    /// Meeting.
    pub meeting_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Order in the meeting.
    pub position: i64,
    /// Display name.
    pub name: String,
    /// Email, for connected and email participants.
    pub email: Option<String>,
    /// Email as compared (erasure finds a person by it).
    pub email_lower: Option<String>,
    /// `connected`, `email`, `link` or `erased`.
    pub kind: String,
    /// For `connected`: the user.
    pub user_id: Option<Uuid>,
    /// `required` or `optional`.
    pub attendance: String,
    /// IANA zone name, when known.
    pub zone: Option<String>,
}

/// `proposals`: the current round's slots, in `position` order (best first).
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProposalRow {
    /// Tenant of the meeting.
    pub tenant_id: Uuid,
    /// Meeting.
    pub meeting_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Order (best first).
    pub position: i64,
    /// Slot start.
    pub slot_start: Micros,
    /// Slot end.
    pub slot_end: Micros,
}

/// `votes`: one answer per participant and proposal, in `position` order.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VoteRow {
    /// Tenant of the meeting.
    pub tenant_id: Uuid,
    /// Meeting.
    pub meeting_id: Uuid,
    /// Who.
    pub participant_id: Uuid,
    /// For which proposal.
    pub proposal_id: Uuid,
    /// Order in the meeting's list of votes.
    pub position: i64,
    /// `yes` or `no`.
    pub answer: String,
    /// When (the latest change).
    pub at: Micros,
}

impl VoteRow {
    /// The vote back.
    pub fn into_vote(self) -> Result<Vote, StoreError> {
        Ok(Vote {
            participant: self.participant_id.into(),
            proposal: self.proposal_id.into(),
            answer: names::parse_answer(&self.answer)?,
            at: self.at.timestamp()?,
        })
    }
}

/// A ballot as vote rows, for [`MeetingStore::cast_ballot`](convene_domain::ports::MeetingStore::cast_ballot):
/// `position` numbers the answers in the ballot's order from 0; a store places new votes
/// after the meeting's last one by adding that one's position plus one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BallotRows {
    /// Tenant of the meeting.
    pub tenant_id: Uuid,
    /// Meeting.
    pub meeting_id: Uuid,
    /// The round the answers are for.
    pub round: i64,
    /// The version of the copy the ballot was checked against.
    pub read_version: i64,
    /// The answers.
    pub votes: Vec<VoteRow>,
}

impl BallotRows {
    /// The rows of a ballot.
    pub fn of(ballot: &Ballot) -> Self {
        let (tenant_id, meeting_id) = (ballot.tenant.as_uuid(), ballot.meeting.as_uuid());
        Self {
            tenant_id,
            meeting_id,
            round: i64::from(ballot.round),
            // Beyond i64 it cannot match a stored version: the votes are read back.
            read_version: i64::try_from(ballot.read_version).unwrap_or(i64::MAX),
            votes: ballot
                .answers
                .iter()
                .zip(0..)
                .map(|(&(proposal, answer), position)| VoteRow {
                    tenant_id,
                    meeting_id,
                    participant_id: ballot.participant.as_uuid(),
                    proposal_id: proposal.as_uuid(),
                    position,
                    answer: names::answer(answer).to_owned(),
                    at: Micros::of(ballot.at),
                })
                .collect(),
        }
    }
}

/// What a store holds after a ballot: the meeting's vote rows (any order) and version.
pub fn tally(mut votes: Vec<VoteRow>, version: i64) -> Result<Tally, StoreError> {
    votes.sort_by_key(|v| v.position);
    Ok(Tally {
        votes: Some(
            votes
                .into_iter()
                .map(VoteRow::into_vote)
                .collect::<Result<_, _>>()?,
        ),
        version: uint("meeting version", version)?,
    })
}

/// The tally of a ballot that nothing came between: no votes read back (see
/// [`Tally::votes`]).
pub fn tally_on_read(version: i64) -> Result<Tally, StoreError> {
    Ok(Tally {
        votes: None,
        version: uint("meeting version", version)?,
    })
}

/// A meeting as rows: what a store writes and reads back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingRows {
    /// The meeting row.
    pub meeting: MeetingRow,
    /// Its participants, in order.
    pub participants: Vec<ParticipantRow>,
    /// Its proposals, in order.
    pub proposals: Vec<ProposalRow>,
    /// Its votes, in order.
    pub votes: Vec<VoteRow>,
}

impl MeetingRows {
    /// The rows of a meeting, at its current version.
    pub fn of(m: &Meeting) -> Result<Self, StoreError> {
        let s = m.snapshot();
        let (tenant_id, meeting_id) = (s.tenant.as_uuid(), s.id.as_uuid());
        if s.participants.len() > Meeting::MAX_PARTICIPANTS {
            return Err(StoreError::Invalid(format!(
                "a meeting can have at most {} participants",
                Meeting::MAX_PARTICIPANTS
            )));
        }
        if let Some(e) = &s.event {
            limits::text("event id", &e.event_id, limits::EVENT_ID)?;
            if let Some(url) = &e.conference_url {
                limits::text("conference link", url, limits::CONFERENCE_URL)?;
            }
        }
        let (window_start, window_end) = interval_micros("the search window", s.window)?;
        let mut row = MeetingRow {
            tenant_id,
            id: meeting_id,
            organizer_id: s.organizer.as_uuid(),
            title: s.title.as_str().to_owned(),
            duration_min: s.duration.minutes(),
            window_start,
            window_end,
            state: s.state.name().to_owned(),
            deadline: None,
            booked_proposal: None,
            booked_start: None,
            booked_end: None,
            state_at: None,
            round: i64::from(s.round),
            sequence: i64::from(s.sequence),
            event: s
                .event
                .as_ref()
                .map(|e| JsonText::of("booked event", e))
                .transpose()?,
            created_at: Micros::of(s.created_at),
            version: int("meeting version", s.version)?,
        };
        match s.state {
            MeetingState::Polling { deadline } => row.deadline = Some(Micros::of(deadline)),
            MeetingState::Booked { proposal, slot, at } => {
                let (start, end) = interval_micros("the booked slot", slot)?;
                row.booked_proposal = Some(proposal.as_uuid());
                row.booked_start = Some(start);
                row.booked_end = Some(end);
                row.state_at = Some(Micros::of(at));
            }
            MeetingState::Cancelled { at }
            | MeetingState::Expired { at }
            | MeetingState::NoCommonSlot { at } => row.state_at = Some(Micros::of(at)),
        }
        let participants = s
            .participants
            .iter()
            .zip(0..)
            .map(|(p, position)| {
                let (kind, user_id) = match p.kind {
                    ParticipantKind::Connected { user } => {
                        (participant_kind::CONNECTED, Some(user.as_uuid()))
                    }
                    ParticipantKind::Email => (participant_kind::EMAIL, None),
                    ParticipantKind::Link => (participant_kind::LINK, None),
                    ParticipantKind::Erased => (participant_kind::ERASED, None),
                };
                ParticipantRow {
                    tenant_id,
                    meeting_id,
                    id: p.id.as_uuid(),
                    position,
                    name: p.name.as_str().to_owned(),
                    email: p.email.as_ref().map(|e| e.as_str().to_owned()),
                    email_lower: p.email.as_ref().map(email_lower),
                    kind: kind.to_owned(),
                    user_id,
                    attendance: names::attendance(p.attendance).to_owned(),
                    zone: p.zone.as_ref().map(|z| z.name().to_owned()),
                }
            })
            .collect();
        let proposals = s
            .proposals
            .iter()
            .zip(0..)
            .map(|(p, position)| {
                let (slot_start, slot_end) = interval_micros("a proposed slot", p.slot)?;
                Ok(ProposalRow {
                    tenant_id,
                    meeting_id,
                    id: p.id.as_uuid(),
                    position,
                    slot_start,
                    slot_end,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let votes = s
            .votes
            .iter()
            .zip(0..)
            .map(|(v, position)| VoteRow {
                tenant_id,
                meeting_id,
                participant_id: v.participant.as_uuid(),
                proposal_id: v.proposal.as_uuid(),
                position,
                answer: names::answer(v.answer).to_owned(),
                at: Micros::of(v.at),
            })
            .collect();
        Ok(Self {
            meeting: row,
            participants,
            proposals,
            votes,
        })
    }

    /// The meeting back, its invariants checked by [`Meeting::restore`].
    pub fn into_meeting(self) -> Result<Meeting, StoreError> {
        let Self {
            meeting: m,
            mut participants,
            mut proposals,
            mut votes,
        } = self;
        let what = What::row("meeting", m.id);
        participants.sort_by_key(|p| p.position);
        proposals.sort_by_key(|p| p.position);
        votes.sort_by_key(|v| v.position);
        let state = match m.state.as_str() {
            "polling" => MeetingState::Polling {
                deadline: m
                    .deadline
                    .ok_or_else(|| corrupt(what, "polling without a deadline"))?
                    .timestamp()?,
            },
            "booked" => {
                let (Some(proposal), Some(start), Some(end)) =
                    (m.booked_proposal, m.booked_start, m.booked_end)
                else {
                    return Err(corrupt(what, "booked without a slot"));
                };
                MeetingState::Booked {
                    proposal: proposal.into(),
                    slot: interval(what, start, end)?,
                    at: state_at(what, m.state_at)?,
                }
            }
            "cancelled" => MeetingState::Cancelled {
                at: state_at(what, m.state_at)?,
            },
            "expired" => MeetingState::Expired {
                at: state_at(what, m.state_at)?,
            },
            "no_common_slot" => MeetingState::NoCommonSlot {
                at: state_at(what, m.state_at)?,
            },
            other => return Err(corrupt(what, format_args!("state {other:?}"))),
        };
        let participants = participants
            .into_iter()
            .map(|p| {
                let kind = match (p.kind.as_str(), p.user_id) {
                    (participant_kind::CONNECTED, Some(user)) => {
                        ParticipantKind::Connected { user: user.into() }
                    }
                    (participant_kind::EMAIL, _) => ParticipantKind::Email,
                    (participant_kind::LINK, _) => ParticipantKind::Link,
                    (participant_kind::ERASED, _) => ParticipantKind::Erased,
                    (kind, _) => {
                        return Err(corrupt(
                            what,
                            format_args!("participant {} of kind {kind:?}", p.id),
                        ));
                    }
                };
                Ok(Participant {
                    id: p.id.into(),
                    name: person_name(what, &p.name)?,
                    email: p.email.as_deref().map(|e| email(what, e)).transpose()?,
                    kind,
                    attendance: names::parse_attendance(&p.attendance)?,
                    zone: p.zone.as_deref().map(|z| zone(what, z)).transpose()?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let proposals = proposals
            .into_iter()
            .map(|p| {
                Ok(Proposal {
                    id: p.id.into(),
                    slot: interval(what, p.slot_start, p.slot_end)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let votes = votes
            .into_iter()
            .map(VoteRow::into_vote)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let snapshot = MeetingSnapshot {
            id: m.id.into(),
            tenant: m.tenant_id.into(),
            organizer: m.organizer_id.into(),
            title: MeetingTitle::parse(&m.title).map_err(|e| corrupt(what, e))?,
            duration: MeetingLength::from_minutes(m.duration_min).map_err(|e| corrupt(what, e))?,
            window: interval(what, m.window_start, m.window_end)?,
            participants,
            round: uint(what, m.round)?,
            proposals,
            votes,
            state,
            sequence: uint(what, m.sequence)?,
            event: m
                .event
                .map(|e| e.parse::<BookedEvent>(what.field("event")))
                .transpose()?,
            created_at: m.created_at.timestamp()?,
            version: uint(what, m.version)?,
        };
        Meeting::restore(snapshot).map_err(|e| corrupt(what, e))
    }
}

fn state_at(
    what: impl Display,
    at: Option<Micros>,
) -> Result<convene_domain::time::Timestamp, StoreError> {
    at.ok_or_else(|| corrupt(what, "no state_at"))?.timestamp()
}

/// Meetings from their rows and their children's rows, in the order of `meetings`.
/// Children may come in any order and for any of the meetings (grouped here by tenant
/// and meeting).
pub fn assemble(
    meetings: Vec<MeetingRow>,
    participants: Vec<ParticipantRow>,
    proposals: Vec<ProposalRow>,
    votes: Vec<VoteRow>,
) -> Result<Vec<Meeting>, StoreError> {
    type Key = (Uuid, Uuid);
    fn group<T>(rows: Vec<T>, key: impl Fn(&T) -> Key) -> HashMap<Key, Vec<T>> {
        let mut map: HashMap<Key, Vec<T>> = HashMap::new();
        for row in rows {
            map.entry(key(&row)).or_default().push(row);
        }
        map
    }
    let mut participants = group(participants, |p| (p.tenant_id, p.meeting_id));
    let mut proposals = group(proposals, |p| (p.tenant_id, p.meeting_id));
    let mut votes = group(votes, |v| (v.tenant_id, v.meeting_id));
    meetings
        .into_iter()
        .map(|m| {
            let key = (m.tenant_id, m.id);
            MeetingRows {
                participants: participants.remove(&key).unwrap_or_default(),
                proposals: proposals.remove(&key).unwrap_or_default(),
                votes: votes.remove(&key).unwrap_or_default(),
                meeting: m,
            }
            .into_meeting()
        })
        .collect()
}

/// The distinct tenants and the distinct ids of meeting rows, for loading their
/// children in one query per child table (`tenant_id = ANY(..) AND meeting_id = ANY(..)`,
/// the children then matched to their meeting by both keys).
pub fn meeting_keys(meetings: &[MeetingRow]) -> (Vec<Uuid>, Vec<Uuid>) {
    distinct_keys(meetings.iter().map(|m| (m.tenant_id, m.id)))
}

/// The distinct first and the distinct second halves of `(tenant, id)` pairs, each in
/// ascending order: a planner estimates `= ANY(array)` by the array's length, so
/// repeating one tenant per meeting would make it take an index for a poor one.
pub fn distinct_keys(keys: impl IntoIterator<Item = (Uuid, Uuid)>) -> (Vec<Uuid>, Vec<Uuid>) {
    let (tenants, ids): (
        std::collections::BTreeSet<Uuid>,
        std::collections::BTreeSet<Uuid>,
    ) = keys.into_iter().unzip();
    (tenants.into_iter().collect(), ids.into_iter().collect())
}

/// The ids of meetings, as stored.
pub fn meeting_ids(ids: &[MeetingId]) -> Vec<Uuid> {
    ids.iter().map(MeetingId::as_uuid).collect()
}

// ---------------------------------------------------------------- sessions and tokens

/// `sessions`: `token_hash` is unique per tenant.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Who is signed in.
    pub user_id: Uuid,
    /// SHA-256 of the cookie's secret.
    pub token_hash: Vec<u8>,
    /// Sign-in.
    pub created_at: Micros,
    /// Last request.
    pub last_seen_at: Micros,
}

impl SessionRow {
    /// The row for a session.
    pub fn of(s: &Session) -> Self {
        Self {
            tenant_id: s.tenant.as_uuid(),
            id: s.id.as_uuid(),
            user_id: s.user.as_uuid(),
            token_hash: s.token_hash.as_bytes().to_vec(),
            created_at: Micros::of(s.created_at),
            last_seen_at: Micros::of(s.last_seen_at),
        }
    }

    /// The session back.
    pub fn into_session(self) -> Result<Session, StoreError> {
        Ok(Session {
            id: self.id.into(),
            tenant: self.tenant_id.into(),
            user: self.user_id.into(),
            token_hash: token_hash(What::row("session", self.id), &self.token_hash)?,
            created_at: self.created_at.timestamp()?,
            last_seen_at: self.last_seen_at.timestamp()?,
        })
    }
}

/// `api_tokens`: `token_hash` is unique per tenant.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiTokenRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The owner's label.
    pub label: String,
    /// SHA-256 of the secret.
    pub token_hash: Vec<u8>,
    /// Made.
    pub created_at: Micros,
    /// Refused after.
    pub expires_at: Option<Micros>,
    /// Revoked.
    pub revoked_at: Option<Micros>,
}

impl ApiTokenRow {
    /// The row for a token.
    pub fn of(t: &ApiToken) -> Result<Self, StoreError> {
        limits::text("token label", &t.label, limits::TOKEN_LABEL)?;
        Ok(Self {
            tenant_id: t.tenant.as_uuid(),
            id: t.id.as_uuid(),
            user_id: t.user.as_uuid(),
            label: t.label.clone(),
            token_hash: t.token_hash.as_bytes().to_vec(),
            created_at: Micros::of(t.created_at),
            expires_at: t.expires_at.map(Micros::of),
            revoked_at: t.revoked_at.map(Micros::of),
        })
    }

    /// The token back.
    pub fn into_token(self) -> Result<ApiToken, StoreError> {
        Ok(ApiToken {
            id: self.id.into(),
            tenant: self.tenant_id.into(),
            user: self.user_id.into(),
            label: self.label,
            token_hash: token_hash(What::row("api token", self.id), &self.token_hash)?,
            created_at: self.created_at.timestamp()?,
            expires_at: self.expires_at.map(Micros::timestamp).transpose()?,
            revoked_at: self.revoked_at.map(Micros::timestamp).transpose()?,
        })
    }
}

// ---------------------------------------------------------------- audit

/// `audit_log`: append-only.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// Tenant whose data was touched.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// `user`, `admin`, `guest` or `system`.
    pub actor_kind: String,
    /// The user or participant, except for `system`.
    pub actor_id: Option<Uuid>,
    /// [`AuditAction::as_str`](convene_domain::audit::AuditAction::as_str).
    pub action: String,
    /// Which record (an opaque id).
    pub subject: String,
    /// When.
    pub at: Micros,
    /// The source address, as text.
    pub source: Option<String>,
}

impl AuditRow {
    /// The row for an entry.
    pub fn of(e: &AuditEntry) -> Result<Self, StoreError> {
        limits::text("audit subject", &e.subject, limits::AUDIT_SUBJECT)?;
        let (actor_kind, actor_id) = match e.actor {
            Actor::User(u) => (actor_kind::USER, Some(u.as_uuid())),
            Actor::Admin(u) => (actor_kind::ADMIN, Some(u.as_uuid())),
            Actor::Guest(p) => (actor_kind::GUEST, Some(p.as_uuid())),
            Actor::System => (actor_kind::SYSTEM, None),
        };
        Ok(Self {
            tenant_id: e.tenant.as_uuid(),
            id: e.id.as_uuid(),
            actor_kind: actor_kind.to_owned(),
            actor_id,
            action: names::audit_action(e.action).to_owned(),
            subject: e.subject.clone(),
            at: Micros::of(e.at),
            source: e.source.map(|ip| ip.to_string()),
        })
    }

    /// The entry back.
    pub fn into_entry(self) -> Result<AuditEntry, StoreError> {
        let what = What::row("audit row", self.id);
        let actor = match (self.actor_kind.as_str(), self.actor_id) {
            (actor_kind::USER, Some(id)) => Actor::User(id.into()),
            (actor_kind::ADMIN, Some(id)) => Actor::Admin(id.into()),
            (actor_kind::GUEST, Some(id)) => Actor::Guest(id.into()),
            (actor_kind::SYSTEM, None) => Actor::System,
            (kind, _) => return Err(corrupt(what, format_args!("actor {kind:?}"))),
        };
        Ok(AuditEntry {
            id: self.id.into(),
            tenant: self.tenant_id.into(),
            actor,
            action: names::parse_audit_action(&self.action)?,
            subject: self.subject,
            at: self.at.timestamp()?,
            source: self
                .source
                .map(|s| s.parse::<IpAddr>().map_err(|e| corrupt(what, e)))
                .transpose()?,
        })
    }
}

// ---------------------------------------------------------------- outbox

/// A new `outbox` row (state `pending`, no attempts yet).
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id (also the idempotency key given to receivers).
    pub id: Uuid,
    /// Natural key, unique per tenant.
    pub key: String,
    /// [`OutboxPayload::kind`](convene_domain::outbox::OutboxPayload::kind), for operators.
    pub kind: String,
    /// `OutboxPayload` in its serde form.
    pub payload: JsonText,
    /// Enqueued.
    pub created_at: Micros,
}

impl OutboxRow {
    /// The row for a message.
    pub fn of(m: &OutboxMessage) -> Result<Self, StoreError> {
        limits::text("outbox key", &m.key, limits::OUTBOX_KEY)?;
        let payload = JsonText::of("outbox payload", &m.payload)?;
        limits::json(
            "outbox payload",
            payload.as_str(),
            limits::OUTBOX_PAYLOAD_BYTES,
        )?;
        Ok(Self {
            tenant_id: m.tenant.as_uuid(),
            id: m.id.as_uuid(),
            key: m.key.clone(),
            kind: m.payload.kind().to_owned(),
            payload,
            created_at: Micros::of(m.created_at),
        })
    }

    /// The rows of a batch of messages, all checked before any is written.
    pub fn of_all(messages: &[OutboxMessage]) -> Result<Vec<Self>, StoreError> {
        messages.iter().map(Self::of).collect()
    }
}

/// An `outbox` row as a claim returns it.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClaimedRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Natural key.
    pub key: String,
    /// The payload (present while undelivered).
    pub payload: Option<JsonText>,
    /// Enqueued.
    pub created_at: Micros,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// When the claim lapses.
    pub claimed_until: Option<Micros>,
}

impl ClaimedRow {
    /// The claimed message.
    pub fn into_claimed(self) -> Result<ClaimedMessage, StoreError> {
        let what = What::row("outbox message", self.id);
        let payload = self
            .payload
            .ok_or_else(|| corrupt(what, "claimed without a payload"))?
            .parse(what)?;
        Ok(ClaimedMessage {
            message: OutboxMessage {
                id: self.id.into(),
                tenant: self.tenant_id.into(),
                key: self.key,
                payload,
                created_at: self.created_at.timestamp()?,
            },
            attempts: uint(what, self.attempts)?,
            claimed_until: self
                .claimed_until
                .ok_or_else(|| corrupt(what, "claimed without claimed_until"))?
                .timestamp()?,
        })
    }
}

/// Claimed rows as messages, oldest first (`created_at`, then id), whatever order the
/// database returned them in.
pub fn claimed(mut rows: Vec<ClaimedRow>) -> Result<Vec<ClaimedMessage>, StoreError> {
    rows.sort_by_key(|r| (r.created_at, r.id));
    rows.into_iter().map(ClaimedRow::into_claimed).collect()
}

/// The tenants a write touches: its own, then those of the messages it enqueues (to tell
/// `UnknownTenant` from `Invalid` when a reference is missing).
pub fn tenants_of(tenant: Uuid, messages: &[OutboxRow]) -> Vec<Uuid> {
    let mut tenants = vec![tenant];
    tenants.extend(messages.iter().map(|m| m.tenant_id));
    tenants
}

/// Until when a claim made at `now` holds: `Invalid` unless the lease is positive and
/// ends in range.
pub fn claimed_until(now: Timestamp, lease: SignedDuration) -> Result<Timestamp, StoreError> {
    if lease.is_negative() || lease.is_zero() {
        return Err(StoreError::Invalid("a claim needs a positive lease".into()));
    }
    now.checked_add(lease)
        .map_err(|_| StoreError::Invalid("the lease ends out of range".into()))
}

/// The state and `available_at` a failed delivery leaves a message in.
pub fn failed_state(decision: RetryDecision) -> (&'static str, Option<Micros>) {
    match decision {
        RetryDecision::RetryAt(t) => (outbox_state::PENDING, Some(Micros::of(t))),
        RetryDecision::Dead => (outbox_state::DEAD, None),
    }
}

/// Outbox counts from `(state, count)` rows; an unknown state is `Corrupt`.
pub fn outbox_counts(
    rows: impl IntoIterator<Item = (String, i64)>,
) -> Result<OutboxCounts, StoreError> {
    let mut counts = OutboxCounts::default();
    for (state, n) in rows {
        // A count from SQL is never negative.
        let n = u64::try_from(n).unwrap_or(0);
        match state.as_str() {
            outbox_state::PENDING => counts.pending = n,
            outbox_state::IN_FLIGHT => counts.in_flight = n,
            outbox_state::DELIVERED => counts.delivered = n,
            outbox_state::DEAD => counts.dead = n,
            other => {
                return Err(corrupt(
                    "outbox.state",
                    format_args!("unknown value {other:?}"),
                ));
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_row() -> UserRow {
        UserRow {
            tenant_id: Uuid::from_u128(1),
            id: Uuid::from_u128(2),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            email_lower: "ada@example.com".into(),
            zone: "Europe/Paris".into(),
            working_hours: JsonText("[]".into()),
            buffer_before_us: 0,
            buffer_after_us: 0,
            role: "member".into(),
            deactivated_at: None,
            created_at: Micros(0),
        }
    }

    #[test]
    fn a_corrupt_field_is_named_with_its_row() {
        let id = Uuid::from_u128(2);
        let bad_hours = UserRow {
            working_hours: JsonText("{".into()),
            ..user_row()
        };
        let Err(StoreError::Corrupt(m)) = bad_hours.into_user() else {
            panic!("unparsable working hours must be Corrupt");
        };
        assert!(m.starts_with(&format!("user {id}: working hours: ")), "{m}");
        let bad_zone = UserRow {
            zone: "Mars/Olympus_Mons".into(),
            ..user_row()
        };
        let Err(StoreError::Corrupt(m)) = bad_zone.into_user() else {
            panic!("an unknown zone must be Corrupt");
        };
        assert!(m.starts_with(&format!("user {id}: ")), "{m}");
        assert!(!m.contains("working hours"), "{m}");
    }
}
