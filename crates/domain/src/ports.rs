//! Ports: the traits through which the domain reaches the outside world.
//!
//! Each trait's documentation states its contract in "MUST" sentences; the contract
//! suites in `convene-testkit` turn those sentences into tests that every implementation
//! (the in-memory fakes, SQLite, PostgreSQL, the provider adapters) must pass.
//!
//! Every store method that reads or writes tenant data takes the [`TenantId`] and MUST
//! filter on it: a row of another tenant is indistinguishable from a missing one
//! ([`StoreError::NotFound`]). The few methods that work across tenants (the worker's
//! outbox claim, housekeeping purges, erasure's search for a person) say so.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use uuid::Uuid;

use crate::access::{ApiToken, Session, TokenHash};
use crate::audit::{AuditEntry, AuditFrom};
use crate::consent::{Grant, Provider, ReadAccess, Scope, WriteAccess};
use crate::email::EmailAddress;
use crate::ids::{ApiTokenId, GrantId, MeetingId, MessageId, SessionId, TenantId, UserId};
use crate::meeting::{Ballot, BookedEvent, Meeting, Tally};
use crate::outbox::{
    AnalyticsEvent, Attendee, DeliveryError, Notification, OutboxMessage, RetryDecision,
};
use crate::people::{PersonName, User};
use crate::tenant::{Tenant, TenantKey, TenantSettings};
use crate::time::{Interval, SignedDuration, Timestamp, Zone};

// ---------------------------------------------------------------- time and ids

/// The current time. The domain never reads the system clock; it asks this.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now. MUST never go backwards between two calls on one instance.
    fn now(&self) -> Timestamp;
}

/// Makes ids. Production uses UUIDv7 (time-ordered, so indexes stay compact); tests use
/// sequential ids.
pub trait IdGenerator: Send + Sync + fmt::Debug {
    /// A new id. MUST never return the same UUID twice on one instance.
    fn next_uuid(&self) -> Uuid;
}

impl dyn IdGenerator {
    /// A new id of the wanted kind.
    pub fn new_id<T: From<Uuid>>(&self) -> T {
        T::from(self.next_uuid())
    }
}

// ---------------------------------------------------------------- stores

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No such record in this tenant (also for records of another tenant).
    #[error("not found")]
    NotFound,
    /// The record changed since it was read (optimistic concurrency).
    #[error("the record was changed by someone else; reload and try again")]
    Conflict,
    /// A unique key is taken (an email within a tenant, a tenant key, an id).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// The tenant does not exist.
    #[error("unknown tenant")]
    UnknownTenant,
    /// A value the store cannot hold (too large, malformed).
    #[error("invalid data: {0}")]
    Invalid(String),
    /// The database could not be reached or timed out; nothing was changed.
    #[error("the database is unavailable")]
    Unavailable(String),
    /// Stored data could not be read back (a bug, or a wrong decryption key).
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
}

/// A page of a list, by keyset: the items after `after`, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page<K> {
    /// The last key of the previous page.
    pub after: Option<K>,
    /// How many items at most.
    pub limit: u32,
}

impl<K> Page<K> {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The page after `after` of the size a client asked for, within `size`'s bounds
    /// (its default when the client did not say).
    pub fn asked(
        after: Option<K>,
        requested: Option<u32>,
        size: PageSize,
    ) -> Result<Self, PageSizeError> {
        Ok(Self {
            after,
            limit: size.limit(requested)?,
        })
    }
}

/// How many items one page of a listing holds: what a client gets when it does not say,
/// and the most it may ask for (a larger request is refused, not cut short, so that a
/// client never mistakes a cut page for the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize {
    /// The size of a page when the client does not ask for one.
    pub default: u32,
    /// The largest page a client may ask for.
    pub max: u32,
}

impl PageSize {
    /// Meetings, tenant members and the users an operator lists: 20 by default, at most 100.
    pub const LISTING: Self = Self {
        default: 20,
        max: 100,
    };
    /// Ranked candidate slots of an availability request: 10 by default, at most 100.
    pub const CANDIDATES: Self = Self {
        default: 10,
        max: 100,
    };
    /// Audit rows: 1,000 by default, at most 10,000 (an export pages through more).
    pub const AUDIT: Self = Self {
        default: 1_000,
        max: 10_000,
    };

    /// The size to read for a request of `requested` items.
    pub fn limit(self, requested: Option<u32>) -> Result<u32, PageSizeError> {
        match requested {
            None => Ok(self.default),
            Some(n) if (1..=self.max).contains(&n) => Ok(n),
            Some(_) => Err(PageSizeError { max: self.max }),
        }
    }
}

/// A page size out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("between 1 and {max}")]
pub struct PageSizeError {
    /// The largest page that may be asked for.
    pub max: u32,
}

/// Tenants.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Saves a new tenant. MUST return `Duplicate` when its id or key is taken.
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// One tenant. MUST return `UnknownTenant` when absent.
    async fn tenant(&self, id: TenantId) -> Result<Tenant, StoreError>;
    /// The tenant with this external key, if any.
    async fn tenant_by_key(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError>;
    /// Every tenant id (for per-tenant housekeeping).
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError>;
    /// One user with their tenant's settings, in one round trip (what a scheduling
    /// request reads of its organizer). MUST return `NotFound` when the user is absent
    /// or of another tenant.
    async fn member(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<(User, TenantSettings), StoreError>;
    /// Replaces a tenant's settings. MUST return `UnknownTenant` when absent.
    async fn update_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> Result<(), StoreError>;
}

/// People with an account.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Saves a new user. MUST return `UnknownTenant` when the user's tenant does not
    /// exist, `Duplicate` when the id, or the email within the tenant, is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// One user. MUST return `NotFound` when absent or of another tenant.
    async fn user(&self, tenant: TenantId, id: UserId) -> Result<User, StoreError>;
    /// The user with this email in the tenant (emails compare case-insensitively).
    async fn user_by_email(
        &self,
        tenant: TenantId,
        email: &EmailAddress,
    ) -> Result<Option<User>, StoreError>;
    /// Users with these emails in the tenant (compared case-insensitively; unknown emails
    /// are skipped), each with every grant of theirs whatever its state (as
    /// [`GrantStore::grants_of`] reads them), in one round trip: a new meeting needs both
    /// before it can read any calendar.
    async fn users_by_emails_with_grants(
        &self,
        tenant: TenantId,
        emails: &[EmailAddress],
    ) -> Result<Vec<(User, Vec<Grant>)>, StoreError>;
    /// Users with these ids in the tenant, in one round trip (unknown ids are skipped).
    async fn users(&self, tenant: TenantId, ids: &[UserId]) -> Result<Vec<User>, StoreError>;
    /// Users of a tenant ordered by id.
    async fn list_users(
        &self,
        tenant: TenantId,
        page: Page<UserId>,
    ) -> Result<Vec<User>, StoreError>;
    /// Saves changes to a user (name, zone, working hours, buffers, email, role,
    /// status). MUST return
    /// `NotFound` when absent or of another tenant, `Duplicate` when the new email is taken.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
}

/// Consents, and the encrypted credentials that go with them.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Inserts or replaces a grant (by id), and enqueues `outbox` in the same
    /// transaction. MUST return `Duplicate` when another grant of the same user, provider
    /// and account exists (erased grants, whose account is cleared, never collide).
    async fn save_grant(&self, grant: &Grant, outbox: &[OutboxMessage]) -> Result<(), StoreError>;
    /// One grant. MUST return `NotFound` when absent or of another tenant.
    async fn grant(&self, tenant: TenantId, id: GrantId) -> Result<Grant, StoreError>;
    /// Every grant of these users, whatever their state, in one round trip.
    async fn grants_of(&self, tenant: TenantId, users: &[UserId])
    -> Result<Vec<Grant>, StoreError>;
    /// The tenant's active grants, ordered by id, at most `page.limit` after
    /// `page.after` (for the periodic grant check).
    async fn active_grants(
        &self,
        tenant: TenantId,
        page: Page<GrantId>,
    ) -> Result<Vec<Grant>, StoreError>;
    /// Stores credentials for a grant, replacing earlier ones. Implementations MUST keep
    /// tokens encrypted at rest and never log them.
    async fn put_credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
        credentials: &Credentials,
    ) -> Result<(), StoreError>;
    /// The grant's credentials, if any. MUST return `Corrupt` (not garbage) when they
    /// cannot be decrypted.
    async fn credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
    ) -> Result<Option<Credentials>, StoreError>;
    /// The credentials of many grants, one answer per grant asked, in the order asked:
    /// `Ok(None)` for a grant without credentials (or of another tenant than the one
    /// given with it), `Err(Corrupt)` for credentials that cannot be decrypted (the
    /// others are still answered). A store that cannot be read answers `Err` for every
    /// grant. The default asks [`GrantStore::credentials`] for each; stores read them all
    /// at once (an availability request checks every participant's grant).
    async fn credentials_of(
        &self,
        grants: &[(TenantId, GrantId)],
    ) -> Vec<Result<Option<Credentials>, StoreError>> {
        let mut answers = Vec::with_capacity(grants.len());
        for &(tenant, grant) in grants {
            answers.push(self.credentials(tenant, grant).await);
        }
        answers
    }
    /// Forgets a grant's credentials. Deleting absent credentials is not an error.
    async fn delete_credentials(&self, tenant: TenantId, grant: GrantId) -> Result<(), StoreError>;
}

/// Meetings, with their participants, proposals and votes.
#[async_trait]
pub trait MeetingStore: Send + Sync {
    /// Saves a new meeting and enqueues `outbox`, atomically. MUST return `Duplicate`
    /// when the id is taken and `UnknownTenant` when the tenant does not exist.
    async fn insert_meeting(
        &self,
        meeting: &Meeting,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError>;
    /// One meeting. MUST return `NotFound` when absent or of another tenant.
    async fn meeting(&self, tenant: TenantId, id: MeetingId) -> Result<Meeting, StoreError>;
    /// Saves a changed meeting and enqueues `outbox`, atomically, only if the stored
    /// version equals `meeting.version()`; the stored version becomes one more. MUST
    /// return `Conflict` (changing nothing, enqueuing nothing) when the versions differ,
    /// and `NotFound` when absent or of another tenant.
    async fn update_meeting(
        &self,
        meeting: &Meeting,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError>;
    /// Counts a ballot and enqueues `outbox`, atomically, without saving the rest of the
    /// meeting: as [`Meeting::count`](crate::meeting::Meeting::count) does, each answer
    /// replaces the participant's earlier one for its proposal and new answers come after
    /// the votes so far. The stored version becomes one more, so that a change loaded
    /// before the ballot and saved with [`MeetingStore::update_meeting`] conflicts and is
    /// decided again on the votes. Ballots never conflict with each other: concurrent
    /// ones on one meeting are all counted, one after the other. Returns the meeting's
    /// votes and version right after this ballot; the votes MAY be left out when the new
    /// version is the ballot's `read_version` + 1 (nothing else came between, see
    /// [`Tally`]). MUST return `Conflict` (changing
    /// nothing, enqueuing nothing) when the meeting no longer polls in the ballot's round,
    /// and `NotFound` when absent or of another tenant.
    async fn cast_ballot(
        &self,
        ballot: &Ballot,
        outbox: &[OutboxMessage],
    ) -> Result<Tally, StoreError>;
    /// Meetings organised by a user, newest first (by id, which is time-ordered).
    async fn meetings_organized_by(
        &self,
        tenant: TenantId,
        user: UserId,
        page: Page<MeetingId>,
    ) -> Result<Vec<Meeting>, StoreError>;
    /// Every meeting of the tenant ordered by id, at most `page.limit` after
    /// `page.after` (for incident reports).
    async fn meetings_in_tenant(
        &self,
        tenant: TenantId,
        page: Page<MeetingId>,
    ) -> Result<Vec<Meeting>, StoreError>;
    /// Meetings in which a user takes part as a connected participant (organised ones
    /// included).
    async fn meetings_with_user(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<Meeting>, StoreError>;
    /// Polls of the tenant whose deadline is at or before `now`, at most `limit`.
    async fn polls_due(
        &self,
        tenant: TenantId,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<MeetingId>, StoreError>;
}

/// Erasure of a person: the one operation that spans tenants, because a person may be an
/// email guest of any tenant's meetings.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Every meeting, of any tenant, that the user (of `tenant`) organised or takes part
    /// in, or in which `email` is a participant.
    async fn meetings_involving(
        &self,
        tenant: TenantId,
        user: UserId,
        email: &EmailAddress,
    ) -> Result<Vec<Meeting>, StoreError>;
    /// Erases a user in one transaction. MUST: save `changed` meetings (as
    /// [`MeetingStore::update_meeting`] does; `Conflict`, changing nothing, when one's
    /// version differs or it no longer exists, so the caller retries on fresh state), delete the meetings in `deleted`, delete the user and their
    /// credentials, sessions and API tokens, save `grants` (already erased), apply
    /// [`OutboxPayload::erase_person`](crate::outbox::OutboxPayload::erase_person) to every
    /// undelivered outbox message (dropping those addressed to `email`, rewriting those
    /// that name them), and enqueue `outbox`. Afterwards no row in the store may hold the
    /// user's name or email.
    async fn erase_user(&self, erasure: &Erasure) -> Result<(), StoreError>;
}

/// Everything [`ErasureStore::erase_user`] must do, prepared by the domain.
#[derive(Debug)]
pub struct Erasure {
    /// The user's tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// Their email (pending messages to it are dropped).
    pub email: EmailAddress,
    /// Meetings where they took part, pseudonymised.
    pub changed: Vec<Meeting>,
    /// Meetings they organised (of their own tenant).
    pub deleted: Vec<MeetingId>,
    /// Their grants, erased.
    pub grants: Vec<Grant>,
    /// Notices to others (cancellations of their meetings).
    pub outbox: Vec<OutboxMessage>,
}

/// Browser sessions and personal API tokens; only hashes of secrets are stored.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Saves a session.
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;
    /// The session with this secret hash in the tenant.
    async fn session(
        &self,
        tenant: TenantId,
        hash: &TokenHash,
    ) -> Result<Option<Session>, StoreError>;
    /// Records activity on a session.
    async fn touch_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Ends a session (absent is not an error).
    async fn delete_session(&self, tenant: TenantId, id: SessionId) -> Result<(), StoreError>;
    /// Ends every session of a user.
    async fn delete_sessions_of(&self, tenant: TenantId, user: UserId) -> Result<(), StoreError>;
    /// Housekeeping across tenants: deletes sessions last seen before `idle_before` or
    /// created before `created_before`; returns how many.
    async fn purge_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Saves an API token.
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError>;
    /// The token with this secret hash in the tenant (revoked ones included).
    async fn api_token(
        &self,
        tenant: TenantId,
        hash: &TokenHash,
    ) -> Result<Option<ApiToken>, StoreError>;
    /// A user's tokens, newest first.
    async fn api_tokens_of(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes every live token of the user; returns how many.
    async fn revoke_api_tokens_of(
        &self,
        tenant: TenantId,
        user: UserId,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Revokes one of the user's tokens. MUST return `NotFound` when the token is not
    /// theirs.
    async fn revoke_api_token(
        &self,
        tenant: TenantId,
        user: UserId,
        id: ApiTokenId,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends rows, in one round trip. There is no way to change or delete rows.
    async fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError>;
    /// Rows of the tenant that `from` admits, in [`AuditEntry::position`] order, at
    /// most `limit`.
    async fn entries(
        &self,
        tenant: TenantId,
        from: AuditFrom,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

/// A message handed to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedMessage {
    /// The message.
    pub message: OutboxMessage,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The claim lapses then: if the worker has not completed or failed the message by
    /// that time, another worker may claim it.
    pub claimed_until: Timestamp,
}

/// The outbox's delivery side. (Messages are enqueued by the state-changing methods of
/// the other stores, in the same transaction.)
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Enqueues messages that go with no state change. MUST keep at most one message per
    /// (tenant, key): enqueuing a key again is a no-op.
    async fn enqueue(&self, messages: &[OutboxMessage]) -> Result<(), StoreError>;
    /// Across tenants: claims up to `limit` messages due at `now` (new, retry time
    /// reached, or claim lapsed), oldest first, for `lease`. MUST NOT hand one message to
    /// two workers while its claim holds.
    async fn claim(
        &self,
        now: Timestamp,
        lease: SignedDuration,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError>;
    /// The message was delivered: it is never handed out again, and its payload (which
    /// holds names and addresses) MUST be discarded.
    async fn complete(
        &self,
        tenant: TenantId,
        id: MessageId,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Each message of `delivered` was delivered, as [`OutboxStore::complete`] says of
    /// one; a message no longer in the outbox (erased meanwhile) or of another tenant is
    /// left alone, without an error. A worker reports a whole batch at once, so a store
    /// SHOULD do it in one statement; this default asks [`OutboxStore::complete`] for
    /// each.
    async fn complete_all(
        &self,
        delivered: &[(TenantId, MessageId)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for &(tenant, id) in delivered {
            match self.complete(tenant, id, now).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    /// The attempt failed: retry at the decided time, or keep the message as dead.
    async fn fail(
        &self,
        tenant: TenantId,
        id: MessageId,
        error: &str,
        decision: RetryDecision,
    ) -> Result<(), StoreError>;
    /// Counts by state, for operators.
    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
    /// Housekeeping across tenants: deletes at most `limit` delivered messages, those
    /// delivered before `delivered_before` first (oldest first), and returns how many.
    /// Pending, in-flight and dead messages are never purged. A purged message's key is
    /// forgotten: enqueuing it again queues a new message, so the retention must outlast
    /// anything that could enqueue the same effect again.
    async fn purge_delivered(
        &self,
        delivered_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

/// How many messages are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting for a first or further attempt.
    pub pending: u64,
    /// Claimed by a worker now.
    pub in_flight: u64,
    /// Delivered.
    pub delivered: u64,
    /// Given up on.
    pub dead: u64,
}

/// Every store role, for adapters that implement them all.
pub trait Store:
    TenantStore
    + UserStore
    + GrantStore
    + MeetingStore
    + ErasureStore
    + SessionStore
    + AuditLog
    + OutboxStore
{
}

impl<T> Store for T where
    T: TenantStore
        + UserStore
        + GrantStore
        + MeetingStore
        + ErasureStore
        + SessionStore
        + AuditLog
        + OutboxStore
{
}

// ---------------------------------------------------------------- calendars

/// Why a calendar call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The provider refused the grant (`invalid_grant`): it must be marked revoked.
    #[error("the provider revoked the calendar connection")]
    ConsentRevoked,
    /// Too many requests, even after the adapter's retries.
    #[error("the provider is rate limiting")]
    RateLimited {
        /// What the provider asked to wait.
        retry_after: Option<SignedDuration>,
    },
    /// Down, timing out or answering 5xx, even after the adapter's retries.
    #[error("the calendar provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request as malformed (a bug on our side).
    #[error("the calendar provider refused the request: {0}")]
    BadRequest(String),
    /// The calendar or event does not exist.
    #[error("calendar or event not found")]
    NotFound,
}

/// The busy time of one calendar, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarBusy {
    /// Which grant's calendar.
    pub grant: GrantId,
    /// Busy intervals (any order, may overlap), or the error for this calendar alone.
    pub busy: Result<Vec<Interval>, CalendarError>,
}

/// What to put on the organizer's calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRequest {
    /// Stable per meeting and booking: a retry with the same id MUST NOT create a second
    /// event (Google's `conferenceData.createRequest.requestId`, Graph's
    /// `transactionId`).
    pub request_id: String,
    /// The iCalendar UID of the meeting.
    pub uid: String,
    /// Title.
    pub title: String,
    /// When.
    pub slot: Interval,
    /// The organizer's zone (events show in it).
    pub zone: Zone,
    /// Who is invited (the organizer excluded).
    pub attendees: Vec<Attendee>,
    /// Ask for a Meet or Teams link.
    pub conference: bool,
    /// The existing event to move instead of creating one.
    pub existing: Option<String>,
}

/// A calendar system: Google, Microsoft 365, ICS/CalDAV.
///
/// Adapters MUST drop calendar content (titles, descriptions, locations, attendees of
/// existing events) at their edge: only intervals come back, and nothing but counts and
/// durations is logged. They retry 429/5xx/timeouts themselves (honouring
/// `Retry-After`) before returning `RateLimited` or `Unavailable`.
#[async_trait]
pub trait CalendarProvider: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> Provider;
    /// Busy intervals of each calendar over `window`. MUST return exactly one entry per
    /// input calendar; one calendar's failure MUST NOT fail the others. Adapters batch
    /// (and split long windows) as their provider requires.
    async fn free_busy(&self, calendars: &[ReadAccess], window: Interval) -> Vec<CalendarBusy>;
    /// Creates (or moves, when `event.existing` is set) the event. MUST be idempotent per
    /// `event.request_id`.
    async fn book_event(
        &self,
        calendar: &WriteAccess,
        event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError>;
    /// Cancels an event. An event already gone MUST count as cancelled.
    async fn cancel_event(
        &self,
        calendar: &WriteAccess,
        event_id: &str,
    ) -> Result<(), CalendarError>;
}

// ---------------------------------------------------------------- identity

/// OAuth credentials of one grant. Secrets redact themselves in `Debug`.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The long-lived token (for ICS feeds: the private feed URL, which is a secret too).
    pub refresh_token: SecretString,
    /// A short-lived access token, if one is cached.
    pub access_token: Option<SecretString>,
    /// When the access token expires.
    pub access_expires_at: Option<Timestamp>,
}

/// Who signed in, as the provider vouches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The provider's stable subject id.
    pub subject: String,
    /// Verified email.
    pub email: EmailAddress,
    /// Display name.
    pub name: PersonName,
    /// The tenant the provider puts them in.
    pub tenant: TenantKey,
    /// Whether the provider vouches that they administer that tenant (Microsoft's
    /// Global Administrator role in the `wids` claim). Grants the tenant admin role
    /// at sign-in; never set for personal tenants.
    pub tenant_admin: bool,
}

/// The result of a successful code exchange.
#[derive(Clone, Debug)]
pub struct SignIn {
    /// Who.
    pub identity: ProviderIdentity,
    /// Scopes actually granted (a user may untick some).
    pub scopes: Vec<Scope>,
    /// Tokens.
    pub credentials: Credentials,
}

/// Why an identity call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// `invalid_grant`: the grant is gone at the provider.
    #[error("the provider revoked the grant")]
    ConsentRevoked,
    /// The provider refused the request (wrong code, wrong verifier, mix-up...).
    #[error("sign-in refused: {0}")]
    Refused(String),
    /// The provider is down or timing out.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
}

/// What the browser is sent to the provider with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// Anti-CSRF `state`, bound to the browser session.
    pub state: String,
    /// PKCE S256 challenge.
    pub pkce_challenge: String,
    /// OpenID `nonce`.
    pub nonce: String,
    /// Scopes to ask for (least privilege: write only when booking is enabled).
    pub scopes: Vec<Scope>,
}

/// An OAuth 2.0 / OpenID Connect provider.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> Provider;
    /// The URL to send the browser to.
    fn authorization_url(&self, request: &AuthorizationRequest) -> String;
    /// Exchanges an authorization code (with the PKCE verifier) for an identity and
    /// tokens. MUST refuse a response issued for another provider or client.
    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &str,
    ) -> Result<SignIn, IdentityError>;
    /// A fresh access token. When the provider rotates refresh tokens, the returned
    /// credentials carry the new one and the caller MUST store it. MUST return
    /// `ConsentRevoked` on `invalid_grant`.
    async fn refresh(&self, credentials: &Credentials) -> Result<Credentials, IdentityError>;
    /// Revokes the grant at the provider. Already revoked MUST count as success.
    async fn revoke(&self, credentials: &Credentials) -> Result<(), IdentityError>;
}

// ---------------------------------------------------------------- messages

/// The iCalendar part of an email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarPart {
    /// `REQUEST` or `CANCEL`.
    pub method: String,
    /// The .ics text (CRLF line endings).
    pub ics: String,
}

/// An email ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The outbox message it comes from (receivers de-duplicate on it).
    pub idempotency_key: MessageId,
    /// Recipient address.
    pub to: EmailAddress,
    /// Recipient name.
    pub to_name: PersonName,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// The invitation or cancellation, if any.
    pub calendar: Option<CalendarPart>,
}

impl fmt::Debug for OutgoingEmail {
    /// Never prints bodies: logs must not contain email content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("idempotency_key", &self.idempotency_key)
            .field("calendar", &self.calendar.as_ref().map(|c| &c.method))
            .finish_non_exhaustive()
    }
}

/// Turns a [`Notification`] into an email (templates, guest links).
pub trait EmailComposer: Send + Sync {
    /// Renders one notification.
    fn compose(
        &self,
        message: MessageId,
        tenant: TenantId,
        notification: &Notification,
    ) -> Result<OutgoingEmail, DeliveryError>;
}

/// Sends transactional email.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email. Transient failures (429, 5xx, connection) MUST be
    /// [`DeliveryError::Transient`], refusals [`DeliveryError::Permanent`].
    async fn send(&self, email: &OutgoingEmail) -> Result<(), DeliveryError>;
}

/// Records product events.
#[async_trait]
pub trait Analytics: Send + Sync {
    /// Whether events reach anyone. When `false` (analytics switched off), use cases
    /// write no analytics event at all: nothing is kept, queued or processed that no one
    /// will receive. Events queued before analytics was switched off are still handed to
    /// [`Analytics::record`], which then drops them.
    fn records(&self) -> bool {
        true
    }

    /// Records events, each with its outbox message id as the de-duplication key. MUST
    /// return one result per event, in order.
    async fn record(
        &self,
        events: &[(MessageId, AnalyticsEvent)],
    ) -> Vec<Result<(), DeliveryError>>;
}

/// Calendar providers by kind, as the use cases need them.
#[derive(Clone, Default)]
pub struct Calendars(Vec<Arc<dyn CalendarProvider>>);

impl Calendars {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) the adapter of its provider.
    pub fn with(mut self, provider: Arc<dyn CalendarProvider>) -> Self {
        self.0.retain(|p| p.provider() != provider.provider());
        self.0.push(provider);
        self
    }
    /// The adapter for a provider, if configured.
    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn CalendarProvider>> {
        self.0.iter().find(|p| p.provider() == provider)
    }
}

impl fmt::Debug for Calendars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| p.provider()))
            .finish()
    }
}

/// Identity providers by kind.
#[derive(Clone, Default)]
pub struct Identities(Vec<Arc<dyn IdentityProvider>>);

impl Identities {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) the adapter of its provider.
    pub fn with(mut self, provider: Arc<dyn IdentityProvider>) -> Self {
        self.0.retain(|p| p.provider() != provider.provider());
        self.0.push(provider);
        self
    }
    /// The adapter for a provider, if configured.
    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn IdentityProvider>> {
        self.0.iter().find(|p| p.provider() == provider)
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| p.provider()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_the_default_size_unless_asked_and_never_past_the_maximum() {
        let size = PageSize {
            default: 20,
            max: 100,
        };
        assert_eq!(size.limit(None), Ok(20));
        assert_eq!(size.limit(Some(1)), Ok(1));
        assert_eq!(size.limit(Some(100)), Ok(100));
        assert_eq!(size.limit(Some(0)), Err(PageSizeError { max: 100 }));
        assert_eq!(size.limit(Some(101)), Err(PageSizeError { max: 100 }));
        assert_eq!(PageSizeError { max: 100 }.to_string(), "between 1 and 100");
        let page = Page::asked(Some(7_u32), Some(5), size).unwrap();
        assert_eq!((page.after, page.limit), (Some(7), 5));
        for size in [PageSize::LISTING, PageSize::CANDIDATES, PageSize::AUDIT] {
            assert!(1 <= size.default && size.default <= size.max, "{size:?}");
        }
    }
}
