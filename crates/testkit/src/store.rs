//! [`MemoryStore`]: every store port in memory.
//!
//! Honest rather than convenient: every method filters on the tenant (a record of
//! another tenant is `NotFound`), unique keys are enforced (`Duplicate`), inserting into
//! a missing tenant is `UnknownTenant`, meetings carry optimistic versions, and the
//! outbox keeps one message per key with leases, retries and dead letters, exactly as
//! the contract suites in [`crate::contract`] check for every adapter. Each call takes
//! one lock, so what a SQL adapter does in one transaction happens here all at once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use convene_domain::access::{ApiToken, Session, TokenHash};
use convene_domain::audit::{AuditEntry, AuditFrom};
use convene_domain::consent::{Grant, GrantState};
use convene_domain::email::EmailAddress;
use convene_domain::ids::{ApiTokenId, GrantId, MeetingId, MessageId, SessionId, TenantId, UserId};
use convene_domain::meeting::{
    Ballot, Meeting, MeetingError, MeetingSnapshot, MeetingState, ParticipantKind, Tally,
};
use convene_domain::outbox::{OutboxMessage, OutboxPayload, RetryDecision};
use convene_domain::people::{PersonName, User};
use convene_domain::ports::{
    AuditLog, ClaimedMessage, Credentials, Erasure, ErasureStore, GrantStore, MeetingStore,
    OutboxCounts, OutboxStore, Page, SessionStore, StoreError, TenantStore, UserStore,
};
use convene_domain::tenant::{Tenant, TenantKey, TenantSettings};
use convene_domain::time::{SignedDuration, Timestamp};
use secrecy::ExposeSecret;

use crate::lock;

/// Where an outbox message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting for an attempt: at once (`None`) or from `not_before` (a retry).
    Pending {
        /// The retry time, if the message failed before.
        not_before: Option<Timestamp>,
    },
    /// Claimed by a worker until `claimed_until`; claimable again afterwards.
    InFlight {
        /// When the claim lapses.
        claimed_until: Timestamp,
    },
    /// Delivered; never handed out again.
    Delivered {
        /// When the worker completed it.
        at: Timestamp,
    },
    /// Given up on.
    Dead,
}

/// One row of the outbox, as tests inspect it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    /// The message.
    pub message: OutboxMessage,
    /// Its state.
    pub state: OutboxState,
    /// Attempts so far (claims).
    pub attempts: u32,
    /// The error of the latest failed attempt.
    pub last_error: Option<String>,
}

impl OutboxEntry {
    fn due(&self, now: Timestamp) -> bool {
        match self.state {
            OutboxState::Pending { not_before } => not_before.is_none_or(|t| t <= now),
            OutboxState::InFlight { claimed_until } => claimed_until <= now,
            OutboxState::Delivered { .. } | OutboxState::Dead => false,
        }
    }

    fn undelivered(&self) -> bool {
        matches!(
            self.state,
            OutboxState::Pending { .. } | OutboxState::InFlight { .. }
        )
    }
}

#[derive(Default)]
struct State {
    fail_next: Option<StoreError>,
    tenants: BTreeMap<TenantId, Tenant>,
    users: BTreeMap<UserId, User>,
    grants: BTreeMap<GrantId, Grant>,
    credentials: BTreeMap<GrantId, (TenantId, Credentials)>,
    /// Reads of `credentials`: one per `credentials` or `credentials_of` call.
    credential_reads: usize,
    /// `grants_of` calls.
    grants_of_calls: usize,
    meetings: BTreeMap<MeetingId, MeetingSnapshot>,
    sessions: BTreeMap<SessionId, Session>,
    tokens: BTreeMap<ApiTokenId, ApiToken>,
    audit: Vec<AuditEntry>,
    outbox: Vec<OutboxEntry>,
}

/// Every store port in memory. Share it as `Arc<MemoryStore>`, which is an
/// `Arc<dyn Store>`; keep the concrete `Arc` to use the inspection helpers.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl fmt::Debug for MemoryStore {
    /// Counts only: never credentials, names or payloads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("MemoryStore")
            .field("tenants", &s.tenants.len())
            .field("users", &s.users.len())
            .field("grants", &s.grants.len())
            .field("credentials", &s.credentials.len())
            .field("meetings", &s.meetings.len())
            .field("sessions", &s.sessions.len())
            .field("api_tokens", &s.tokens.len())
            .field("audit", &s.audit.len())
            .field("outbox", &s.outbox.len())
            .finish()
    }
}

fn email_key(email: &EmailAddress) -> String {
    email.as_str().to_ascii_lowercase()
}

fn same_email(a: &EmailAddress, b: &EmailAddress) -> bool {
    a.as_str().eq_ignore_ascii_case(b.as_str())
}

fn restore(snapshot: &MeetingSnapshot) -> Result<Meeting, StoreError> {
    Meeting::restore(snapshot.clone())
        .map_err(|e| StoreError::Corrupt(format!("meeting {}: {e}", snapshot.id)))
}

fn limit(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Whether a meeting involves a user (of `tenant`) or an address, as
/// [`ErasureStore::meetings_involving`] defines it.
fn involves(m: &MeetingSnapshot, tenant: TenantId, user: UserId, email: &EmailAddress) -> bool {
    let as_user = m.tenant == tenant
        && (m.organizer == user
            || m.participants
                .iter()
                .any(|p| p.kind == ParticipantKind::Connected { user }));
    as_user
        || m.participants
            .iter()
            .any(|p| p.email.as_ref().is_some_and(|e| same_email(e, email)))
}

impl State {
    fn known_tenant(&self, tenant: TenantId) -> Result<(), StoreError> {
        if self.tenants.contains_key(&tenant) {
            Ok(())
        } else {
            Err(StoreError::UnknownTenant)
        }
    }

    fn email_taken(&self, tenant: TenantId, email: &EmailAddress, except: UserId) -> bool {
        self.users
            .values()
            .any(|u| u.tenant == tenant && u.id != except && same_email(&u.email, email))
    }

    fn grant_clash(&self, grant: &Grant) -> bool {
        // Erased grants have forgotten their account: they clash with nothing.
        let erased = |g: &Grant| matches!(g.state(), GrantState::Erased { .. });
        !erased(grant)
            && self.grants.values().any(|g| {
                g.id() != grant.id()
                    && !erased(g)
                    && g.tenant() == grant.tenant()
                    && g.user() == grant.user()
                    && g.provider() == grant.provider()
                    && g.account() == grant.account()
            })
    }

    fn check_grant(&self, grant: &Grant) -> Result<(), StoreError> {
        self.known_tenant(grant.tenant())?;
        if let Some(existing) = self.grants.get(&grant.id())
            && existing.tenant() != grant.tenant()
        {
            return Err(StoreError::Duplicate(format!("grant id {}", grant.id())));
        }
        if self.grant_clash(grant) {
            return Err(StoreError::Duplicate(format!(
                "a {} grant of this user for this account",
                grant.provider()
            )));
        }
        Ok(())
    }

    fn stored_meeting(
        &self,
        tenant: TenantId,
        id: MeetingId,
    ) -> Result<&MeetingSnapshot, StoreError> {
        self.meetings
            .get(&id)
            .filter(|m| m.tenant == tenant)
            .ok_or(StoreError::NotFound)
    }

    /// Checks a whole batch of messages before any is enqueued.
    fn check_messages(&self, messages: &[OutboxMessage]) -> Result<(), StoreError> {
        for m in messages {
            self.known_tenant(m.tenant)?;
            let clash = self.outbox.iter().any(|e| {
                e.message.id == m.id && (e.message.tenant != m.tenant || e.message.key != m.key)
            });
            let clash_in_batch = messages
                .iter()
                .any(|o| o.id == m.id && (o.tenant != m.tenant || o.key != m.key));
            if clash || clash_in_batch {
                return Err(StoreError::Duplicate(format!("outbox message id {}", m.id)));
            }
        }
        Ok(())
    }

    /// Enqueues checked messages: at most one per (tenant, key).
    fn enqueue(&mut self, messages: &[OutboxMessage]) {
        let mut keys: HashSet<(TenantId, String)> = self
            .outbox
            .iter()
            .map(|e| (e.message.tenant, e.message.key.clone()))
            .collect();
        for m in messages {
            if keys.insert((m.tenant, m.key.clone())) {
                self.outbox.push(OutboxEntry {
                    message: m.clone(),
                    state: OutboxState::Pending { not_before: None },
                    attempts: 0,
                    last_error: None,
                });
            }
        }
    }

    fn outbox_entry(
        &mut self,
        tenant: TenantId,
        id: MessageId,
    ) -> Result<&mut OutboxEntry, StoreError> {
        self.outbox
            .iter_mut()
            .find(|e| e.message.id == id && e.message.tenant == tenant)
            .ok_or(StoreError::NotFound)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next store call, whatever the method, returns `error` and changes nothing.
    pub fn fail_next(&self, error: StoreError) {
        lock(&self.state).fail_next = Some(error);
    }

    /// Takes the lock for one store call, or fails it as asked by [`Self::fail_next`].
    fn begin(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut s = lock(&self.state);
        match s.fail_next.take() {
            Some(e) => Err(e),
            None => Ok(s),
        }
    }

    /// How many times credentials were read: once per
    /// [`GrantStore::credentials`] call and once per [`GrantStore::credentials_of`] call
    /// however many grants it asks for (what a database would answer in one statement).
    pub fn credential_reads(&self) -> usize {
        lock(&self.state).credential_reads
    }

    /// How many times [`GrantStore::grants_of`] was called (a use case that already
    /// read the grants with their users must not read them again).
    pub fn grants_of_calls(&self) -> usize {
        lock(&self.state).grants_of_calls
    }

    /// Every outbox message in any state, in enqueue order.
    pub fn outbox_messages(&self) -> Vec<OutboxMessage> {
        lock(&self.state)
            .outbox
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }

    /// Messages not yet delivered and not dead (pending or claimed), in enqueue order.
    pub fn pending_outbox(&self) -> Vec<OutboxMessage> {
        lock(&self.state)
            .outbox
            .iter()
            .filter(|e| e.undelivered())
            .map(|e| e.message.clone())
            .collect()
    }

    /// Every outbox row with its state and attempts, in enqueue order.
    pub fn outbox_entries(&self) -> Vec<OutboxEntry> {
        lock(&self.state).outbox.clone()
    }

    /// The earliest future instant at which an undelivered message becomes claimable (a
    /// retry time or a lapsing claim), if any is waiting for one.
    pub fn next_due_at(&self, now: Timestamp) -> Option<Timestamp> {
        lock(&self.state)
            .outbox
            .iter()
            .filter_map(|e| match e.state {
                OutboxState::Pending {
                    not_before: Some(t),
                } => Some(t),
                OutboxState::InFlight { claimed_until } => Some(claimed_until),
                _ => None,
            })
            .filter(|t| *t > now)
            .min()
    }

    /// Every audit row of every tenant, in append order.
    pub fn audit_entries(&self) -> Vec<AuditEntry> {
        lock(&self.state).audit.clone()
    }

    /// A text dump of every stored value of every table, secrets included (as a
    /// database column would hold them), for privacy scans: a name or email that must
    /// be gone must not appear in it.
    pub fn dump_text(&self) -> String {
        use std::fmt::Write as _;
        let s = lock(&self.state);
        let json = |v: &dyn erased::Json| v.json();
        let mut out = String::new();
        let mut section = |name: &str, rows: Vec<String>| {
            let _ = writeln!(out, "== {name}");
            for row in rows {
                let _ = writeln!(out, "{row}");
            }
        };
        section("tenants", s.tenants.values().map(|t| json(t)).collect());
        section("users", s.users.values().map(|u| json(u)).collect());
        section("grants", s.grants.values().map(|g| json(g)).collect());
        section(
            "credentials",
            s.credentials
                .iter()
                .map(|(grant, (tenant, c))| {
                    format!(
                        "grant={grant} tenant={tenant} refresh_token={} access_token={} access_expires_at={}",
                        c.refresh_token.expose_secret(),
                        c.access_token.as_ref().map_or("", |t| t.expose_secret()),
                        c.access_expires_at.map(|t| t.to_string()).unwrap_or_default(),
                    )
                })
                .collect(),
        );
        section("meetings", s.meetings.values().map(|m| json(m)).collect());
        section("sessions", s.sessions.values().map(|x| json(x)).collect());
        section("api_tokens", s.tokens.values().map(|x| json(x)).collect());
        section("audit", s.audit.iter().map(|x| json(x)).collect());
        section(
            "outbox",
            s.outbox
                .iter()
                .map(|e| {
                    format!(
                        "{:?} attempts={} last_error={} {}",
                        e.state,
                        e.attempts,
                        e.last_error.as_deref().unwrap_or(""),
                        json(&e.message)
                    )
                })
                .collect(),
        );
        out
    }
}

/// Serialising rows of different types through one closure.
mod erased {
    pub(super) trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|e| format!("<unserialisable: {e}>"))
        }
    }
}

#[async_trait]
impl TenantStore for MemoryStore {
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        if s.tenants.contains_key(&tenant.id) {
            return Err(StoreError::Duplicate(format!("tenant id {}", tenant.id)));
        }
        let key = tenant.key.as_key();
        if s.tenants.values().any(|t| t.key.as_key() == key) {
            return Err(StoreError::Duplicate(format!("tenant key {key}")));
        }
        s.tenants.insert(tenant.id, tenant.clone());
        Ok(())
    }

    async fn tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        self.begin()?
            .tenants
            .get(&id)
            .cloned()
            .ok_or(StoreError::UnknownTenant)
    }

    async fn tenant_by_key(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        let key = key.as_key();
        Ok(self
            .begin()?
            .tenants
            .values()
            .find(|t| t.key.as_key() == key)
            .cloned())
    }

    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        Ok(self.begin()?.tenants.keys().copied().collect())
    }

    async fn member(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<(User, TenantSettings), StoreError> {
        let s = self.begin()?;
        let found = s
            .users
            .get(&user)
            .filter(|u| u.tenant == tenant)
            .ok_or(StoreError::NotFound)?;
        let settings = &s.tenants.get(&tenant).ok_or(StoreError::NotFound)?.settings;
        Ok((found.clone(), settings.clone()))
    }

    async fn update_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        let t = s
            .tenants
            .get_mut(&tenant)
            .ok_or(StoreError::UnknownTenant)?;
        t.settings = settings.clone();
        Ok(())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        s.known_tenant(user.tenant)?;
        if s.users.contains_key(&user.id) {
            return Err(StoreError::Duplicate(format!("user id {}", user.id)));
        }
        if s.email_taken(user.tenant, &user.email, user.id) {
            return Err(StoreError::Duplicate("a user with this email".into()));
        }
        s.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn user(&self, tenant: TenantId, id: UserId) -> Result<User, StoreError> {
        self.begin()?
            .users
            .get(&id)
            .filter(|u| u.tenant == tenant)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn user_by_email(
        &self,
        tenant: TenantId,
        email: &EmailAddress,
    ) -> Result<Option<User>, StoreError> {
        Ok(self
            .begin()?
            .users
            .values()
            .find(|u| u.tenant == tenant && same_email(&u.email, email))
            .cloned())
    }

    async fn users_by_emails_with_grants(
        &self,
        tenant: TenantId,
        emails: &[EmailAddress],
    ) -> Result<Vec<(User, Vec<Grant>)>, StoreError> {
        let wanted: HashSet<String> = emails.iter().map(email_key).collect();
        let state = self.begin()?;
        Ok(state
            .users
            .values()
            .filter(|u| u.tenant == tenant && wanted.contains(&email_key(&u.email)))
            .map(|u| {
                let grants = state
                    .grants
                    .values()
                    .filter(|g| g.tenant() == tenant && g.user() == u.id)
                    .cloned()
                    .collect();
                (u.clone(), grants)
            })
            .collect())
    }

    async fn users(&self, tenant: TenantId, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let wanted: HashSet<UserId> = ids.iter().copied().collect();
        Ok(self
            .begin()?
            .users
            .values()
            .filter(|u| u.tenant == tenant && wanted.contains(&u.id))
            .cloned()
            .collect())
    }

    async fn list_users(
        &self,
        tenant: TenantId,
        page: Page<UserId>,
    ) -> Result<Vec<User>, StoreError> {
        Ok(self
            .begin()?
            .users
            .values()
            .filter(|u| u.tenant == tenant && page.after.is_none_or(|a| u.id > a))
            .take(limit(page.limit))
            .cloned()
            .collect())
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        if s.users
            .get(&user.id)
            .is_none_or(|u| u.tenant != user.tenant)
        {
            return Err(StoreError::NotFound);
        }
        if s.email_taken(user.tenant, &user.email, user.id) {
            return Err(StoreError::Duplicate("a user with this email".into()));
        }
        s.users.insert(user.id, user.clone());
        Ok(())
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn save_grant(&self, grant: &Grant, outbox: &[OutboxMessage]) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        s.check_grant(grant)?;
        s.check_messages(outbox)?;
        s.grants.insert(grant.id(), grant.clone());
        s.enqueue(outbox);
        Ok(())
    }

    async fn grant(&self, tenant: TenantId, id: GrantId) -> Result<Grant, StoreError> {
        self.begin()?
            .grants
            .get(&id)
            .filter(|g| g.tenant() == tenant)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn grants_of(
        &self,
        tenant: TenantId,
        users: &[UserId],
    ) -> Result<Vec<Grant>, StoreError> {
        let wanted: HashSet<UserId> = users.iter().copied().collect();
        let mut state = self.begin()?;
        state.grants_of_calls += 1;
        Ok(state
            .grants
            .values()
            .filter(|g| g.tenant() == tenant && wanted.contains(&g.user()))
            .cloned()
            .collect())
    }

    async fn active_grants(
        &self,
        tenant: TenantId,
        page: Page<GrantId>,
    ) -> Result<Vec<Grant>, StoreError> {
        Ok(self
            .begin()?
            .grants
            .values()
            .filter(|g| {
                g.tenant() == tenant && g.is_active() && page.after.is_none_or(|a| g.id() > a)
            })
            .take(limit(page.limit))
            .cloned()
            .collect())
    }

    async fn put_credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
        credentials: &Credentials,
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        if s.grants.get(&grant).is_none_or(|g| g.tenant() != tenant) {
            return Err(StoreError::NotFound);
        }
        s.credentials.insert(grant, (tenant, credentials.clone()));
        Ok(())
    }

    async fn credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
    ) -> Result<Option<Credentials>, StoreError> {
        let mut s = self.begin()?;
        s.credential_reads += 1;
        Ok(s.credentials
            .get(&grant)
            .filter(|(t, _)| *t == tenant)
            .map(|(_, c)| c.clone()))
    }

    async fn credentials_of(
        &self,
        grants: &[(TenantId, GrantId)],
    ) -> Vec<Result<Option<Credentials>, StoreError>> {
        let mut s = match self.begin() {
            Ok(s) => s,
            Err(e) => return grants.iter().map(|_| Err(e.clone())).collect(),
        };
        s.credential_reads += 1;
        grants
            .iter()
            .map(|(tenant, grant)| {
                Ok(s.credentials
                    .get(grant)
                    .filter(|(t, _)| t == tenant)
                    .map(|(_, c)| c.clone()))
            })
            .collect()
    }

    async fn delete_credentials(&self, tenant: TenantId, grant: GrantId) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        if s.credentials.get(&grant).is_some_and(|(t, _)| *t == tenant) {
            s.credentials.remove(&grant);
        }
        Ok(())
    }
}

#[async_trait]
impl MeetingStore for MemoryStore {
    async fn insert_meeting(
        &self,
        meeting: &Meeting,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        s.known_tenant(meeting.tenant())?;
        if s.meetings.contains_key(&meeting.id()) {
            return Err(StoreError::Duplicate(format!(
                "meeting id {}",
                meeting.id()
            )));
        }
        s.check_messages(outbox)?;
        s.meetings.insert(meeting.id(), meeting.snapshot().clone());
        s.enqueue(outbox);
        Ok(())
    }

    async fn meeting(&self, tenant: TenantId, id: MeetingId) -> Result<Meeting, StoreError> {
        restore(self.begin()?.stored_meeting(tenant, id)?)
    }

    async fn update_meeting(
        &self,
        meeting: &Meeting,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        if s.stored_meeting(meeting.tenant(), meeting.id())?.version != meeting.version() {
            return Err(StoreError::Conflict);
        }
        s.check_messages(outbox)?;
        let mut snapshot = meeting.snapshot().clone();
        snapshot.version += 1;
        s.meetings.insert(meeting.id(), snapshot);
        s.enqueue(outbox);
        Ok(())
    }

    async fn cast_ballot(
        &self,
        ballot: &Ballot,
        outbox: &[OutboxMessage],
    ) -> Result<Tally, StoreError> {
        let mut s = self.begin()?;
        let mut m = restore(s.stored_meeting(ballot.tenant, ballot.meeting)?)?;
        s.check_messages(outbox)?;
        m.count(ballot).map_err(|e| match e {
            MeetingError::WrongState { .. } | MeetingError::StaleBallot { .. } => {
                StoreError::Conflict
            }
            other => StoreError::Invalid(other.to_string()),
        })?;
        let mut snapshot = m.snapshot().clone();
        snapshot.version += 1;
        let tally = Tally {
            votes: Some(snapshot.votes.clone()),
            version: snapshot.version,
        };
        s.meetings.insert(ballot.meeting, snapshot);
        s.enqueue(outbox);
        Ok(tally)
    }

    async fn meetings_organized_by(
        &self,
        tenant: TenantId,
        user: UserId,
        page: Page<MeetingId>,
    ) -> Result<Vec<Meeting>, StoreError> {
        let s = self.begin()?;
        s.meetings
            .values()
            .rev()
            .filter(|m| {
                m.tenant == tenant && m.organizer == user && page.after.is_none_or(|a| m.id < a)
            })
            .take(limit(page.limit))
            .map(restore)
            .collect()
    }

    async fn meetings_in_tenant(
        &self,
        tenant: TenantId,
        page: Page<MeetingId>,
    ) -> Result<Vec<Meeting>, StoreError> {
        let s = self.begin()?;
        s.meetings
            .values()
            .filter(|m| m.tenant == tenant && page.after.is_none_or(|a| m.id > a))
            .take(limit(page.limit))
            .map(restore)
            .collect()
    }

    async fn meetings_with_user(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<Meeting>, StoreError> {
        let s = self.begin()?;
        s.meetings
            .values()
            .rev()
            .filter(|m| {
                m.tenant == tenant
                    && (m.organizer == user
                        || m.participants
                            .iter()
                            .any(|p| p.kind == ParticipantKind::Connected { user }))
            })
            .map(restore)
            .collect()
    }

    async fn polls_due(
        &self,
        tenant: TenantId,
        now: Timestamp,
        limit_: u32,
    ) -> Result<Vec<MeetingId>, StoreError> {
        let s = self.begin()?;
        let mut due: Vec<(Timestamp, MeetingId)> = s
            .meetings
            .values()
            .filter(|m| m.tenant == tenant)
            .filter_map(|m| match m.state {
                MeetingState::Polling { deadline } if deadline <= now => Some((deadline, m.id)),
                _ => None,
            })
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit(limit_))
            .map(|(_, id)| id)
            .collect())
    }
}

#[async_trait]
impl ErasureStore for MemoryStore {
    async fn meetings_involving(
        &self,
        tenant: TenantId,
        user: UserId,
        email: &EmailAddress,
    ) -> Result<Vec<Meeting>, StoreError> {
        let s = self.begin()?;
        s.meetings
            .values()
            .filter(|m| involves(m, tenant, user, email))
            .map(restore)
            .collect()
    }

    async fn erase_user(&self, erasure: &Erasure) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        let Erasure {
            tenant,
            user,
            email,
            changed,
            deleted,
            grants,
            outbox,
        } = erasure;
        let (tenant, user) = (*tenant, *user);

        // Check everything first: a refused erasure changes nothing.
        s.known_tenant(tenant)?;
        for m in changed {
            if s.stored_meeting(m.tenant(), m.id())?.version != m.version() {
                return Err(StoreError::Conflict);
            }
        }
        for g in grants {
            if g.tenant() != tenant || g.user() != user {
                return Err(StoreError::Invalid(format!(
                    "grant {} is not the erased user's",
                    g.id()
                )));
            }
            s.check_grant(g)?;
        }
        s.check_messages(outbox)?;
        let handled: HashSet<MeetingId> = changed
            .iter()
            .map(Meeting::id)
            .chain(
                deleted
                    .iter()
                    .copied()
                    .filter(|id| s.stored_meeting(tenant, *id).is_ok()),
            )
            .collect();
        if s.meetings
            .values()
            .any(|m| !handled.contains(&m.id) && involves(m, tenant, user, email))
        {
            // A meeting involving them appeared since the domain looked: look again.
            return Err(StoreError::Conflict);
        }

        for m in changed {
            let mut snapshot = m.snapshot().clone();
            snapshot.version += 1;
            s.meetings.insert(m.id(), snapshot);
        }
        for id in deleted {
            if s.stored_meeting(tenant, *id).is_ok() {
                s.meetings.remove(id);
            }
        }
        let name = s
            .users
            .get(&user)
            .filter(|u| u.tenant == tenant)
            .map(|u| u.name.clone());
        if name.is_some() {
            s.users.remove(&user);
        }
        let theirs: HashSet<GrantId> = s
            .grants
            .values()
            .filter(|g| g.tenant() == tenant && g.user() == user)
            .map(Grant::id)
            .chain(grants.iter().map(Grant::id))
            .collect();
        s.credentials
            .retain(|id, (t, _)| !(*t == tenant && theirs.contains(id)));
        s.sessions
            .retain(|_, x| !(x.tenant == tenant && x.user == user));
        s.tokens
            .retain(|_, x| !(x.tenant == tenant && x.user == user));
        for g in grants {
            s.grants.insert(g.id(), g.clone());
        }
        // Messages to them, of any tenant and in any state: pending ones must not be
        // sent, and delivered ones would keep their address.
        s.outbox.retain(|e| {
            !e.message
                .payload
                .recipient()
                .is_some_and(|to| same_email(to, email))
        });
        s.enqueue(outbox);
        // Messages to others may still name them (attendee lists, organizer fields).
        let mut kept = Vec::with_capacity(s.outbox.len());
        for mut e in std::mem::take(&mut s.outbox) {
            match scrub(&e.message.payload, email, name.as_ref()) {
                Scrubbed::Unchanged => kept.push(e),
                Scrubbed::Changed(payload) => {
                    e.message.payload = payload;
                    kept.push(e);
                }
                Scrubbed::Unrepresentable => {}
            }
        }
        s.outbox = kept;
        Ok(())
    }
}

enum Scrubbed {
    Unchanged,
    Changed(OutboxPayload),
    Unrepresentable,
}

/// Removes an erased person from a message: their address becomes `null` (with the
/// name beside it replaced), their account name becomes [`PersonName::erased`]. A
/// payload that cannot hold the result is dropped.
fn scrub(payload: &OutboxPayload, email: &EmailAddress, name: Option<&PersonName>) -> Scrubbed {
    fn walk(v: &mut serde_json::Value, email: &str, name: Option<&str>, erased: &str) -> bool {
        use serde_json::Value;
        match v {
            Value::String(s) if s.eq_ignore_ascii_case(email) => {
                *v = Value::Null;
                true
            }
            Value::String(s) if Some(s.as_str()) == name => {
                *s = erased.to_owned();
                true
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |c, i| walk(i, email, name, erased) | c),
            Value::Object(fields) => {
                let theirs = fields
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(email));
                let mut changed = false;
                if theirs && let Some(n) = fields.get_mut("name").filter(|n| n.is_string()) {
                    *n = Value::String(erased.to_owned());
                    changed = true;
                }
                fields
                    .values_mut()
                    .fold(changed, |c, f| walk(f, email, name, erased) | c)
            }
            _ => false,
        }
    }
    let Ok(mut value) = serde_json::to_value(payload) else {
        return Scrubbed::Unrepresentable;
    };
    let erased = PersonName::erased();
    if !walk(
        &mut value,
        email.as_str(),
        name.map(PersonName::as_str),
        erased.as_str(),
    ) {
        return Scrubbed::Unchanged;
    }
    serde_json::from_value(value).map_or(Scrubbed::Unrepresentable, Scrubbed::Changed)
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        s.known_tenant(session.tenant)?;
        if s.sessions.contains_key(&session.id)
            || s.sessions
                .values()
                .any(|x| x.token_hash == session.token_hash)
        {
            return Err(StoreError::Duplicate("session".into()));
        }
        s.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn session(
        &self,
        tenant: TenantId,
        hash: &TokenHash,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self
            .begin()?
            .sessions
            .values()
            .find(|x| x.tenant == tenant && x.token_hash == *hash)
            .cloned())
    }

    async fn touch_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        let session = s
            .sessions
            .get_mut(&id)
            .filter(|x| x.tenant == tenant)
            .ok_or(StoreError::NotFound)?;
        session.last_seen_at = session.last_seen_at.max(now);
        Ok(())
    }

    async fn delete_session(&self, tenant: TenantId, id: SessionId) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        if s.sessions.get(&id).is_some_and(|x| x.tenant == tenant) {
            s.sessions.remove(&id);
        }
        Ok(())
    }

    async fn delete_sessions_of(&self, tenant: TenantId, user: UserId) -> Result<(), StoreError> {
        self.begin()?
            .sessions
            .retain(|_, x| !(x.tenant == tenant && x.user == user));
        Ok(())
    }

    async fn purge_sessions(
        &self,
        idle_before: Timestamp,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut s = self.begin()?;
        let before = s.sessions.len();
        s.sessions
            .retain(|_, x| x.last_seen_at >= idle_before && x.created_at >= created_before);
        Ok(u64::try_from(before - s.sessions.len()).unwrap_or(u64::MAX))
    }

    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        s.known_tenant(token.tenant)?;
        if s.tokens.contains_key(&token.id)
            || s.tokens.values().any(|x| x.token_hash == token.token_hash)
        {
            return Err(StoreError::Duplicate("api token".into()));
        }
        s.tokens.insert(token.id, token.clone());
        Ok(())
    }

    async fn api_token(
        &self,
        tenant: TenantId,
        hash: &TokenHash,
    ) -> Result<Option<ApiToken>, StoreError> {
        Ok(self
            .begin()?
            .tokens
            .values()
            .find(|x| x.tenant == tenant && x.token_hash == *hash)
            .cloned())
    }

    async fn api_tokens_of(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<ApiToken>, StoreError> {
        let s = self.begin()?;
        let mut tokens: Vec<ApiToken> = s
            .tokens
            .values()
            .filter(|x| x.tenant == tenant && x.user == user)
            .cloned()
            .collect();
        tokens.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));
        Ok(tokens)
    }

    async fn revoke_api_tokens_of(
        &self,
        tenant: TenantId,
        user: UserId,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut s = self.begin()?;
        let mut revoked = 0;
        for t in s
            .tokens
            .values_mut()
            .filter(|t| t.tenant == tenant && t.user == user && t.revoked_at.is_none())
        {
            t.revoked_at = Some(now);
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn revoke_api_token(
        &self,
        tenant: TenantId,
        user: UserId,
        id: ApiTokenId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        let token = s
            .tokens
            .get_mut(&id)
            .filter(|x| x.tenant == tenant && x.user == user)
            .ok_or(StoreError::NotFound)?;
        // Revoking twice keeps the first revocation.
        token.revoked_at.get_or_insert(now);
        Ok(())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        let mut ids: HashSet<_> = s.audit.iter().map(|e| e.id).collect();
        for e in entries {
            s.known_tenant(e.tenant)?;
            if !ids.insert(e.id) {
                return Err(StoreError::Duplicate(format!("audit id {}", e.id)));
            }
        }
        s.audit.extend_from_slice(entries);
        Ok(())
    }

    async fn entries(
        &self,
        tenant: TenantId,
        from: AuditFrom,
        limit_: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let s = self.begin()?;
        let mut rows: Vec<AuditEntry> = s
            .audit
            .iter()
            .filter(|e| e.tenant == tenant && from.admits(e))
            .cloned()
            .collect();
        rows.sort_by_key(AuditEntry::position);
        rows.truncate(limit(limit_));
        Ok(rows)
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn enqueue(&self, messages: &[OutboxMessage]) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        s.check_messages(messages)?;
        s.enqueue(messages);
        Ok(())
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: SignedDuration,
        limit_: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        if lease.is_negative() || lease.is_zero() {
            return Err(StoreError::Invalid("a claim needs a positive lease".into()));
        }
        let claimed_until = now
            .checked_add(lease)
            .map_err(|_| StoreError::Invalid("the lease ends out of range".into()))?;
        let mut s = self.begin()?;
        let mut due: Vec<(Timestamp, usize)> = s
            .outbox
            .iter()
            .enumerate()
            .filter(|(_, e)| e.due(now))
            .map(|(i, e)| (e.message.created_at, i))
            .collect();
        due.sort();
        let mut out = Vec::new();
        for (_, i) in due.into_iter().take(limit(limit_)) {
            let e = &mut s.outbox[i];
            e.state = OutboxState::InFlight { claimed_until };
            e.attempts = e.attempts.saturating_add(1);
            out.push(ClaimedMessage {
                message: e.message.clone(),
                attempts: e.attempts,
                claimed_until,
            });
        }
        Ok(out)
    }

    async fn complete(
        &self,
        tenant: TenantId,
        id: MessageId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        let e = s.outbox_entry(tenant, id)?;
        if !matches!(e.state, OutboxState::Delivered { .. }) {
            e.state = OutboxState::Delivered { at: now };
        }
        Ok(())
    }

    async fn fail(
        &self,
        tenant: TenantId,
        id: MessageId,
        error: &str,
        decision: RetryDecision,
    ) -> Result<(), StoreError> {
        let mut s = self.begin()?;
        let e = s.outbox_entry(tenant, id)?;
        // A late failure report after another worker delivered it changes nothing.
        if matches!(e.state, OutboxState::Delivered { .. }) {
            return Ok(());
        }
        e.last_error = Some(error.to_owned());
        e.state = match decision {
            RetryDecision::RetryAt(t) => OutboxState::Pending {
                not_before: Some(t),
            },
            RetryDecision::Dead => OutboxState::Dead,
        };
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let s = self.begin()?;
        let mut c = OutboxCounts::default();
        for e in &s.outbox {
            match e.state {
                OutboxState::Pending { .. } => c.pending += 1,
                OutboxState::InFlight { .. } => c.in_flight += 1,
                OutboxState::Delivered { .. } => c.delivered += 1,
                OutboxState::Dead => c.dead += 1,
            }
        }
        Ok(c)
    }

    async fn purge_delivered(
        &self,
        delivered_before: Timestamp,
        limit_: u32,
    ) -> Result<u64, StoreError> {
        let mut s = self.begin()?;
        let mut old: Vec<(Timestamp, usize)> = s
            .outbox
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e.state {
                OutboxState::Delivered { at } if at < delivered_before => Some((at, i)),
                _ => None,
            })
            .collect();
        old.sort();
        let mut purged: Vec<usize> = old
            .into_iter()
            .take(limit(limit_))
            .map(|(_, i)| i)
            .collect();
        purged.sort_unstable();
        for &i in purged.iter().rev() {
            s.outbox.remove(i);
        }
        Ok(purged.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use convene_domain::consent::{Provider, Scope};
    use convene_domain::time::{WeeklyHours, Zone};
    use secrecy::SecretString;
    use uuid::Uuid;

    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            id: TenantId::from_uuid(Uuid::from_u128(1)),
            key: TenantKey::Local { slug: "t".into() },
            name: "T".into(),
            settings: convene_domain::tenant::TenantSettings::default(),
            created_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn fail_next_fails_one_call_and_changes_nothing() {
        let store = MemoryStore::new();
        store.fail_next(StoreError::Unavailable("down".into()));
        assert_eq!(
            store.insert_tenant(&tenant()).await,
            Err(StoreError::Unavailable("down".into()))
        );
        assert_eq!(store.tenant_ids().await, Ok(vec![]));
        store.insert_tenant(&tenant()).await.unwrap();
        assert_eq!(store.tenant_ids().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_dump_holds_secrets_and_debug_does_not() {
        let store = MemoryStore::new();
        let t = tenant();
        store.insert_tenant(&t).await.unwrap();
        let user = User {
            id: UserId::from_uuid(Uuid::from_u128(2)),
            tenant: t.id,
            name: PersonName::parse("Ada").unwrap(),
            email: EmailAddress::parse("ada@example.org").unwrap(),
            zone: Zone::utc(),
            working_hours: WeeklyHours::standard(),
            buffers: Default::default(),
            role: convene_domain::people::Role::Member,
            status: convene_domain::people::UserStatus::Active,
            created_at: Timestamp::UNIX_EPOCH,
        };
        store.insert_user(&user).await.unwrap();
        let grant = Grant::new(
            GrantId::from_uuid(Uuid::from_u128(3)),
            t.id,
            user.id,
            Provider::Google,
            "ada-sub".into(),
            [Scope::ReadFreeBusy],
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        store.save_grant(&grant, &[]).await.unwrap();
        let creds = Credentials {
            refresh_token: SecretString::from("very-secret-refresh"),
            access_token: None,
            access_expires_at: None,
        };
        store
            .put_credentials(t.id, grant.id(), &creds)
            .await
            .unwrap();
        let dump = store.dump_text();
        for needle in [
            "ada@example.org",
            "Ada",
            "ada-sub",
            "very-secret-refresh",
            "== outbox",
        ] {
            assert!(dump.contains(needle), "{needle} missing from {dump}");
        }
        let debug = format!("{store:?}");
        assert!(
            !debug.contains("very-secret-refresh") && !debug.contains("ada@"),
            "{debug}"
        );
        assert_eq!(
            store
                .put_credentials(t.id, GrantId::from_uuid(Uuid::from_u128(9)), &creds)
                .await,
            Err(StoreError::NotFound),
            "credentials need a grant of the tenant"
        );
    }
}
