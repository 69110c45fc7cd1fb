//! Tenant administration: members and roles, deactivation, grants, defaults, the
//! periodic grant check, and the people in scope of a security incident.
//!
//! Every use case here that reads or changes another person's data is audited with the
//! administrator as actor. A tenant admin acts only within their own tenant: the store's
//! lookups are scoped by the requester's tenant, so another tenant's user is "not found".

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use serde::Serialize;

use crate::audit::{Actor, AuditAction, AuditEntry, AuditFrom};
use crate::consent::{Grant, Provider};
use crate::email::EmailAddress;
use crate::ids::{GrantId, MeetingId, ParticipantId, TenantId, UserId};
use crate::meeting::{HandOverTo, Meeting, MeetingState, ParticipantKind};
use crate::outbox::Recipient;
use crate::people::{PersonName, Role, User, UserStatus};
use crate::ports::{Credentials, IdentityError, Page, StoreError};
use crate::tenant::{Tenant, TenantSettings};
use crate::time::Timestamp;

use super::effects::Effects;
use super::{Requester, Scheduler, ServiceError};

/// What happens to the open meetings a deactivated user organises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeetingHandling {
    /// Call them off: participants get a cancellation.
    Cancel,
    /// Hand them to another active member of the tenant, who organises them from now on.
    HandTo(UserId),
}

/// What deactivating a user did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deactivation {
    /// The deactivated user.
    pub user: UserId,
    /// Their open meetings that were cancelled.
    pub meetings_cancelled: usize,
    /// Their open meetings handed to another organizer.
    pub meetings_handed_over: usize,
    /// Others' open polls in which they are now asked by email.
    pub polls_demoted: usize,
    /// Personal API tokens revoked.
    pub tokens_revoked: u64,
}

/// A member of a tenant as its admins see them: the account and its calendar
/// connections, never calendar content or tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantMember {
    /// The account.
    pub user: User,
    /// Their grants, whatever their state.
    pub grants: Vec<Grant>,
}

/// What one run of the periodic grant check found in a tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GrantCheck {
    /// Active grants asked about.
    pub checked: usize,
    /// Still valid (their refreshed tokens were stored).
    pub valid: usize,
    /// Refused by the provider (`invalid_grant`): now revoked, their user told once.
    pub refused: usize,
    /// The provider could not be reached: checked again next time.
    pub unavailable: usize,
}

/// Who an incident may have touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AffectedPerson {
    /// A user with an account.
    User {
        /// Their id.
        user: UserId,
    },
    /// A guest, known through a meeting (the first one found).
    Guest {
        /// The meeting.
        meeting: MeetingId,
        /// Their participant id there.
        participant: ParticipantId,
    },
}

/// One person whose data was held in an incident's scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PersonInScope {
    /// Their tenant.
    pub tenant: TenantId,
    /// Who.
    pub person: AffectedPerson,
    /// Name as stored.
    pub name: PersonName,
    /// Email, when they have one (link guests have none and cannot be told).
    pub email: Option<EmailAddress>,
    /// What Convene held about them (stable names, see `docs/security.md`).
    pub data: BTreeSet<&'static str>,
}

/// The people whose data Convene held in some tenants since some time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentScope {
    /// The tenants looked at.
    pub tenants: Vec<TenantId>,
    /// The start of the incident window.
    pub since: Timestamp,
    /// When the scope was computed (the end of the window).
    pub at: Timestamp,
    /// Everyone in scope, users first, then guests, each in a stable order.
    pub people: Vec<PersonInScope>,
}

impl IncidentScope {
    /// The people who can be told (those with an email).
    pub fn recipients(&self) -> impl Iterator<Item = &PersonInScope> {
        self.people.iter().filter(|p| p.email.is_some())
    }
}

/// Why an incident message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentMessageError {
    /// The template does not start with a `Subject:` line followed by a blank line.
    #[error(
        "the template must start with a \"Subject: ...\" line, then a blank line, then the message"
    )]
    Shape,
    /// The subject is empty, too long, or has control characters.
    #[error("the subject must have 1 to 200 characters and no control characters")]
    Subject,
    /// The body is empty or longer than [`IncidentMessage::MAX_BODY`].
    #[error("the message must have 1 to {} characters", IncidentMessage::MAX_BODY)]
    Body,
}

/// The operator's message to the people in an incident's scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentMessage {
    /// Subject line.
    pub subject: String,
    /// Plain-text body; `{name}` is replaced by each recipient's name.
    pub body: String,
}

impl IncidentMessage {
    /// The longest body accepted.
    pub const MAX_BODY: usize = 20_000;

    /// Parses a template: `Subject: <subject>`, a blank line, then the body.
    pub fn parse(template: &str) -> Result<Self, IncidentMessageError> {
        let template = template.replace("\r\n", "\n");
        let (head, body) = template
            .split_once("\n\n")
            .ok_or(IncidentMessageError::Shape)?;
        let subject = head
            .strip_prefix("Subject:")
            .ok_or(IncidentMessageError::Shape)?
            .trim();
        if subject.is_empty()
            || subject.chars().count() > 200
            || subject.chars().any(char::is_control)
        {
            return Err(IncidentMessageError::Subject);
        }
        let body = body.trim();
        if body.is_empty() || body.chars().count() > Self::MAX_BODY {
            return Err(IncidentMessageError::Body);
        }
        Ok(Self {
            subject: subject.to_owned(),
            body: body.to_owned(),
        })
    }

    /// The body for one recipient.
    pub fn body_for(&self, name: &PersonName) -> String {
        self.body.replace("{name}", name.as_str())
    }
}

impl Scheduler {
    /// The requester, who must be an active tenant admin.
    async fn tenant_admin(&self, who: &Requester) -> Result<User, ServiceError> {
        let admin = self.organizer(who).await?;
        if admin.role != Role::TenantAdmin {
            return Err(ServiceError::NotTenantAdmin);
        }
        Ok(admin)
    }

    /// A user of the admin's tenant.
    async fn member(&self, who: &Requester, user: UserId) -> Result<User, ServiceError> {
        self.store()
            .user(who.tenant, user)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ServiceError::NotFound("user"),
                other => other.into(),
            })
    }

    fn admin_audit(
        &self,
        who: &Requester,
        action: AuditAction,
        subject: impl ToString,
    ) -> AuditEntry {
        self.audit_entry(
            who.tenant,
            Actor::Admin(who.user),
            action,
            subject,
            who.source,
        )
    }

    /// The tenant's members with their calendar connections, by id. Audited.
    pub async fn tenant_members(
        &self,
        who: &Requester,
        page: Page<UserId>,
    ) -> Result<Vec<TenantMember>, ServiceError> {
        self.tenant_admin(who).await?;
        let users = self.store().list_users(who.tenant, page).await?;
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let mut grants: HashMap<UserId, Vec<Grant>> = HashMap::new();
        for g in self.store().grants_of(who.tenant, &ids).await? {
            grants.entry(g.user()).or_default().push(g);
        }
        self.store()
            .append(&[self.admin_audit(who, AuditAction::AdminListUsers, who.tenant)])
            .await?;
        Ok(users
            .into_iter()
            .map(|user| TenantMember {
                grants: grants.remove(&user.id).unwrap_or_default(),
                user,
            })
            .collect())
    }

    /// One member with their calendar connections. Audited.
    pub async fn tenant_member(
        &self,
        who: &Requester,
        user: UserId,
    ) -> Result<TenantMember, ServiceError> {
        self.tenant_admin(who).await?;
        let user = self.member(who, user).await?;
        let grants = self.store().grants_of(who.tenant, &[user.id]).await?;
        self.store()
            .append(&[self.admin_audit(who, AuditAction::AdminReadUser, user.id)])
            .await?;
        Ok(TenantMember { user, grants })
    }

    /// Sets a member's role. An admin cannot remove their own role (another admin
    /// must), so a tenant is never left without one by accident. Audited.
    pub async fn set_role(
        &self,
        who: &Requester,
        user: UserId,
        role: Role,
    ) -> Result<User, ServiceError> {
        self.tenant_admin(who).await?;
        if user == who.user && role != Role::TenantAdmin {
            return Err(ServiceError::NotAllowed(
                "you cannot remove your own administrator role; ask another administrator".into(),
            ));
        }
        let mut target = self.member(who, user).await?;
        if target.role != role {
            target.role = role;
            self.store().update_user(&target).await?;
        }
        self.store()
            .append(&[self.admin_audit(who, AuditAction::RoleChanged, target.id)])
            .await?;
        Ok(target)
    }

    /// An operator makes a user a tenant admin (`convene tenant grant-admin`): the
    /// verifiable path for a tenant whose provider cannot vouch for its admins.
    pub async fn grant_tenant_admin(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<User, ServiceError> {
        let mut target = self.store().user(tenant, user).await?;
        if target.role != Role::TenantAdmin {
            target.role = Role::TenantAdmin;
            self.store().update_user(&target).await?;
        }
        self.audit(tenant, Actor::System, AuditAction::RoleChanged, user, None)
            .await?;
        Ok(target)
    }

    /// Deactivates a member: they cannot sign in, their sessions end and API tokens
    /// are revoked at once, their calendars are no longer read (others' polls ask them
    /// by email), and their open meetings are cancelled or handed over as chosen.
    /// Running it again finishes what an interrupted run left. Audited.
    pub async fn deactivate_user(
        &self,
        who: &Requester,
        user: UserId,
        handling: MeetingHandling,
    ) -> Result<Deactivation, ServiceError> {
        self.tenant_admin(who).await?;
        if user == who.user {
            return Err(ServiceError::NotAllowed(
                "you cannot deactivate yourself; ask another administrator".into(),
            ));
        }
        let mut target = self.member(who, user).await?;
        let heir = match handling {
            MeetingHandling::Cancel => None,
            MeetingHandling::HandTo(heir) if heir == user => {
                return Err(ServiceError::NotAllowed(
                    "meetings cannot be handed to the user being deactivated".into(),
                ));
            }
            MeetingHandling::HandTo(heir) => {
                let heir = self.member(who, heir).await?;
                if !heir.is_active() {
                    return Err(ServiceError::NotAllowed(
                        "meetings can only be handed to an active member".into(),
                    ));
                }
                Some(heir)
            }
        };
        let now = self.ports.clock.now();
        if target.is_active() {
            target.status = UserStatus::Deactivated { at: now };
            self.store().update_user(&target).await?;
        }
        self.store().delete_sessions_of(who.tenant, user).await?;
        let tokens_revoked = self
            .store()
            .revoke_api_tokens_of(who.tenant, user, now)
            .await?;

        let mut report = Deactivation {
            user,
            meetings_cancelled: 0,
            meetings_handed_over: 0,
            polls_demoted: 0,
            tokens_revoked,
        };
        let mut audit = vec![self.admin_audit(who, AuditAction::UserDeactivated, user)];
        for id in self
            .store()
            .meetings_with_user(who.tenant, user)
            .await?
            .into_iter()
            .filter(|m| m.state().is_open())
            .map(|m| m.id())
        {
            let mut attempt = 0;
            loop {
                let mut m = self.store().meeting(who.tenant, id).await?;
                let mut effects = Effects::new(self, who.tenant);
                let outcome = self
                    .release(&mut m, &target, heir.as_ref(), &mut effects)
                    .await?;
                if outcome == Released::Untouched {
                    break;
                }
                match self.store().update_meeting(&m, &effects.messages).await {
                    Ok(()) => {
                        match outcome {
                            Released::Cancelled => report.meetings_cancelled += 1,
                            Released::HandedOver => {
                                report.meetings_handed_over += 1;
                                audit.push(self.admin_audit(
                                    who,
                                    AuditAction::MeetingHandedOver,
                                    id,
                                ));
                            }
                            Released::Demoted => report.polls_demoted += 1,
                            Released::Untouched => {}
                        }
                        break;
                    }
                    Err(StoreError::Conflict) if attempt < self.policy.conflict_retries => {
                        attempt += 1
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.store().append(&audit).await?;
        Ok(report)
    }

    /// Takes a deactivated user out of one open meeting.
    async fn release(
        &self,
        m: &mut Meeting,
        user: &User,
        heir: Option<&User>,
        effects: &mut Effects<'_>,
    ) -> Result<Released, ServiceError> {
        if !m.state().is_open() {
            return Ok(Released::Untouched);
        }
        let now = self.ports.clock.now();
        if m.organizer() != user.id {
            let Some(pid) = m.demote_to_email_guest(user.id) else {
                return Ok(Released::Untouched);
            };
            if let (MeetingState::Polling { .. }, Ok(p)) = (m.state(), m.participant(pid)) {
                let p = p.clone();
                let organizer = self.store().user(m.tenant(), m.organizer()).await?;
                effects.propose_slots(m, &organizer, &p);
            }
            return Ok(Released::Demoted);
        }
        match heir {
            None => {
                let event = m.event().cloned();
                let booked = m.cancel(now)?;
                effects.cancellations(m, Some(user), booked, booked.is_some() && event.is_none());
                if let Some(event) = event {
                    effects.cancel_event(m, event);
                }
                Ok(Released::Cancelled)
            }
            Some(heir) => {
                m.hand_over(
                    HandOverTo {
                        user: heir.id,
                        name: heir.name.clone(),
                        email: heir.email.clone(),
                        zone: heir.zone.clone(),
                    },
                    self.ports.ids.new_id(),
                )?;
                Ok(Released::HandedOver)
            }
        }
    }

    /// Lets a deactivated member back in (they sign in again; their calendars are read
    /// again). Audited.
    pub async fn reactivate_user(
        &self,
        who: &Requester,
        user: UserId,
    ) -> Result<User, ServiceError> {
        self.tenant_admin(who).await?;
        let mut target = self.member(who, user).await?;
        if !target.is_active() {
            target.status = UserStatus::Active;
            self.store().update_user(&target).await?;
        }
        self.store()
            .append(&[self.admin_audit(who, AuditAction::UserReactivated, user)])
            .await?;
        Ok(target)
    }

    /// Revokes a member's grants with a provider, here and at the provider; the member
    /// is told. Audited.
    pub async fn revoke_member_grants(
        &self,
        who: &Requester,
        user: UserId,
        provider: Provider,
    ) -> Result<usize, ServiceError> {
        self.tenant_admin(who).await?;
        self.revoke_grants_as_admin(who, user, provider).await
    }

    /// The admin's tenant, with its settings.
    pub async fn tenant_of_admin(&self, who: &Requester) -> Result<Tenant, ServiceError> {
        self.tenant_admin(who).await?;
        Ok(self.store().tenant(who.tenant).await?)
    }

    /// Replaces the tenant's defaults and guest policy. Audited.
    pub async fn update_tenant_settings(
        &self,
        who: &Requester,
        settings: TenantSettings,
    ) -> Result<Tenant, ServiceError> {
        self.tenant_admin(who).await?;
        let settings = settings.validated()?;
        self.store()
            .update_tenant_settings(who.tenant, &settings)
            .await?;
        self.store()
            .append(&[self.admin_audit(who, AuditAction::TenantSettingsChanged, who.tenant)])
            .await?;
        Ok(self.store().tenant(who.tenant).await?)
    }

    /// The tenant's audit log from `from`, oldest first, at most `limit` rows. The read
    /// itself is audited.
    pub async fn tenant_audit(
        &self,
        who: &Requester,
        from: AuditFrom,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        self.tenant_admin(who).await?;
        let entries = self.store().entries(who.tenant, from, limit).await?;
        self.store()
            .append(&[self.admin_audit(who, AuditAction::AdminReadAudit, who.tenant)])
            .await?;
        Ok(entries)
    }

    /// The periodic grant check: asks each provider whether the tenant's active grants
    /// still hold by refreshing their tokens (a few at a time). A grant the provider
    /// refuses (`invalid_grant`: removed by the user or their IT) is revoked here and its
    /// user told once; refreshed tokens are stored (providers may rotate them). Grants
    /// of deactivated users are left alone: they are not used.
    pub async fn check_grants(&self, tenant: TenantId) -> Result<GrantCheck, ServiceError> {
        const PAGE: u32 = 200;
        const CONCURRENT: usize = 8;
        let mut report = GrantCheck::default();
        let mut after: Option<GrantId> = None;
        loop {
            let grants = self
                .store()
                .active_grants(tenant, Page { after, limit: PAGE })
                .await?;
            let Some(last) = grants.last() else { break };
            after = Some(last.id());
            let full = grants.len() == PAGE as usize;
            let owners: Vec<UserId> = grants.iter().map(Grant::user).collect();
            let active: BTreeSet<UserId> = self
                .store()
                .users(tenant, &owners)
                .await?
                .into_iter()
                .filter(User::is_active)
                .map(|u| u.id)
                .collect();
            let checks = futures::stream::iter(
                grants
                    .into_iter()
                    .filter(|g| active.contains(&g.user()))
                    .map(|g| self.refresh_grant(tenant, g)),
            )
            .buffer_unordered(CONCURRENT)
            .collect::<Vec<_>>()
            .await;
            for check in checks {
                let Some((grant, outcome)) = check? else {
                    continue;
                };
                report.checked += 1;
                match outcome {
                    Ok(fresh) => {
                        self.store().put_credentials(tenant, grant, &fresh).await?;
                        report.valid += 1;
                    }
                    Err(IdentityError::ConsentRevoked) => {
                        if self.grant_refused_by_provider(tenant, grant).await? {
                            self.audit(
                                tenant,
                                Actor::System,
                                AuditAction::GrantCheckRefused,
                                grant,
                                None,
                            )
                            .await?;
                        }
                        report.refused += 1;
                    }
                    Err(_) => report.unavailable += 1,
                }
            }
            if !full {
                break;
            }
        }
        Ok(report)
    }

    /// Asks the grant's provider to refresh its tokens: `None` when no identity adapter
    /// of the provider is configured or the grant has no credentials. A named method
    /// rather than a closure, so the check's future is `Send` (the worker spawns it).
    async fn refresh_grant(
        &self,
        tenant: TenantId,
        grant: Grant,
    ) -> Result<Option<(GrantId, Result<Credentials, IdentityError>)>, ServiceError> {
        let Some(identity) = self.ports.identities.get(grant.provider()).cloned() else {
            return Ok(None);
        };
        let Some(credentials) = self.store().credentials(tenant, grant.id()).await? else {
            return Ok(None);
        };
        Ok(Some((grant.id(), identity.refresh(&credentials).await)))
    }

    /// The people whose data Convene held in `tenants` at any time since `since`: every
    /// user with an account (what is stored about them, and whether their free/busy was
    /// read since then, from the audit log), and every guest of a meeting that was open
    /// or created in the window. Erased people are gone and cannot be told. The report
    /// is audited per tenant.
    pub async fn incident_scope(
        &self,
        tenants: &[TenantId],
        since: Timestamp,
    ) -> Result<IncidentScope, ServiceError> {
        let at = self.ports.clock.now();
        let mut users_in_scope = Vec::new();
        let mut guests_in_scope = Vec::new();
        for &tenant in tenants {
            let (users, guests) = self.tenant_scope(tenant, since).await?;
            users_in_scope.extend(users);
            guests_in_scope.extend(guests);
            self.audit(
                tenant,
                Actor::System,
                AuditAction::IncidentReported,
                tenant,
                None,
            )
            .await?;
        }
        users_in_scope.extend(guests_in_scope);
        Ok(IncidentScope {
            tenants: tenants.to_vec(),
            since,
            at,
            people: users_in_scope,
        })
    }

    async fn tenant_scope(
        &self,
        tenant: TenantId,
        since: Timestamp,
    ) -> Result<(Vec<PersonInScope>, Vec<PersonInScope>), ServiceError> {
        const PAGE: u32 = 500;
        let mut users: BTreeMap<UserId, PersonInScope> = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self
                .store()
                .list_users(tenant, Page { after, limit: PAGE })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let full = page.len() == PAGE as usize;
            let ids: Vec<UserId> = page.iter().map(|u| u.id).collect();
            let grants = self.store().grants_of(tenant, &ids).await?;
            for u in page {
                let mut data = BTreeSet::from(["account: name, email, zone, working hours"]);
                if grants.iter().any(|g| g.user() == u.id && g.is_active()) {
                    data.insert("calendar connection: encrypted OAuth tokens");
                }
                users.insert(
                    u.id,
                    PersonInScope {
                        tenant,
                        person: AffectedPerson::User { user: u.id },
                        name: u.name,
                        email: Some(u.email),
                        data,
                    },
                );
            }
            if !full {
                break;
            }
        }

        // Free/busy reads since the start of the window, from the audit log.
        let grant_owner: HashMap<String, UserId> = {
            let ids: Vec<UserId> = users.keys().copied().collect();
            self.store()
                .grants_of(tenant, &ids)
                .await?
                .into_iter()
                .map(|g| (g.id().to_string(), g.user()))
                .collect()
        };
        let mut from = AuditFrom::since(since);
        loop {
            let rows = self.store().entries(tenant, from, PAGE).await?;
            let full = rows.len() == PAGE as usize;
            for row in &rows {
                if row.action == AuditAction::FreeBusyRead
                    && let Some(user) = grant_owner.get(&row.subject)
                    && let Some(p) = users.get_mut(user)
                {
                    p.data
                        .insert("free/busy read (not stored) during the window");
                }
            }
            match rows.last() {
                Some(last) if full => from = AuditFrom::after(last),
                _ => break,
            }
        }

        let mut guests: BTreeMap<String, PersonInScope> = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self
                .store()
                .meetings_in_tenant(tenant, Page { after, limit: PAGE })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id());
            let full = page.len() == PAGE as usize;
            for m in page.iter().filter(|m| held_since(m, since)) {
                if let Some(p) = users.get_mut(&m.organizer()) {
                    p.data
                        .insert("meetings organised: titles, times, participants");
                }
                for p in m.participants() {
                    match p.kind {
                        ParticipantKind::Connected { user } => {
                            if let Some(u) = users.get_mut(&user)
                                && user != m.organizer()
                            {
                                u.data.insert("meeting participation: votes");
                            }
                        }
                        ParticipantKind::Email | ParticipantKind::Link => {
                            let key = match &p.email {
                                Some(e) => e.as_str().to_ascii_lowercase(),
                                None => format!("link:{}", p.id),
                            };
                            let data = if p.email.is_some() {
                                "guest: name, email, votes"
                            } else {
                                "guest: name, votes"
                            };
                            guests
                                .entry(key)
                                .or_insert_with(|| PersonInScope {
                                    tenant,
                                    person: AffectedPerson::Guest {
                                        meeting: m.id(),
                                        participant: p.id,
                                    },
                                    name: p.name.clone(),
                                    email: p.email.clone(),
                                    data: BTreeSet::new(),
                                })
                                .data
                                .insert(data);
                        }
                        ParticipantKind::Erased => {}
                    }
                }
            }
            if !full {
                break;
            }
        }
        // A guest who also has an account in the tenant is told once, as a user.
        let member_emails: BTreeSet<String> = users
            .values()
            .filter_map(|p| p.email.as_ref().map(|e| e.as_str().to_ascii_lowercase()))
            .collect();
        let guests = guests
            .into_iter()
            .filter(|(k, _)| !member_emails.contains(k))
            .map(|(_, p)| p)
            .collect();
        Ok((users.into_values().collect(), guests))
    }

    /// Sends the incident message to everyone in scope who has an email: one outbox
    /// message each (keyed by `incident` and the person, so running it again sends
    /// nothing twice), and one audit row each. Returns how many were enqueued.
    pub async fn notify_incident(
        &self,
        scope: &IncidentScope,
        message: &IncidentMessage,
        incident: &str,
    ) -> Result<usize, ServiceError> {
        let mut by_tenant: BTreeMap<TenantId, Vec<&PersonInScope>> = BTreeMap::new();
        for p in scope.recipients() {
            by_tenant.entry(p.tenant).or_default().push(p);
        }
        let mut sent = 0;
        for (tenant, people) in by_tenant {
            let mut effects = Effects::new(self, tenant);
            let mut audit = Vec::with_capacity(people.len());
            for p in &people {
                let Some(email) = &p.email else { continue };
                let (subject_id, participant) = match p.person {
                    AffectedPerson::User { user } => (user.to_string(), None),
                    AffectedPerson::Guest { participant, .. } => {
                        (participant.to_string(), Some(participant))
                    }
                };
                effects.incident(
                    format!(
                        "incident:{incident}:{}",
                        email.as_str().to_ascii_lowercase()
                    ),
                    Recipient {
                        participant,
                        name: p.name.clone(),
                        email: email.clone(),
                        zone: None,
                    },
                    message.subject.clone(),
                    message.body_for(&p.name),
                );
                audit.push(self.audit_entry(
                    tenant,
                    Actor::System,
                    AuditAction::IncidentNotified,
                    subject_id,
                    None,
                ));
            }
            sent += effects.messages.len();
            self.store().enqueue(&effects.messages).await?;
            self.store().append(&audit).await?;
        }
        Ok(sent)
    }

    /// The tenant-admin claim at sign-in: when the identity provider vouches that the
    /// user administers their (organisation) tenant, they get the role. Audited.
    pub(super) async fn claim_admin_at_sign_in(
        &self,
        user: &mut User,
        vouched: bool,
        source: Option<std::net::IpAddr>,
    ) -> Result<(), ServiceError> {
        if !vouched || user.role == Role::TenantAdmin {
            return Ok(());
        }
        user.role = Role::TenantAdmin;
        self.store().update_user(user).await?;
        self.audit(
            user.tenant,
            Actor::System,
            AuditAction::RoleChanged,
            user.id,
            source,
        )
        .await
    }
}

/// What [`Scheduler::release`] did to one meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Released {
    Untouched,
    Demoted,
    Cancelled,
    HandedOver,
}

/// Whether a meeting held its participants' data at some time since `since`: still
/// open, created since, or closed since.
fn held_since(m: &Meeting, since: Timestamp) -> bool {
    if m.state().is_open() || m.created_at() >= since {
        return true;
    }
    match m.state() {
        MeetingState::Cancelled { at }
        | MeetingState::Expired { at }
        | MeetingState::NoCommonSlot { at } => at >= since,
        // Open meetings returned above.
        MeetingState::Polling { .. } | MeetingState::Booked { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_check_can_run_on_a_spawned_task() {
        fn send<T: Send>(_: &T) {}
        // Type-checked, not called: the worker spawns the check on a multi-threaded
        // runtime, which needs its future to be `Send` for every lifetime involved.
        let _ = |s: &Scheduler, tenant: TenantId| send(&s.check_grants(tenant));
    }

    #[test]
    fn incident_templates_need_a_subject_and_a_body() {
        let m = IncidentMessage::parse("Subject: About your data\r\n\r\nDear {name},\nsorry.\n")
            .unwrap();
        assert_eq!(m.subject, "About your data");
        assert_eq!(
            m.body_for(&PersonName::parse("Ada").unwrap()),
            "Dear Ada,\nsorry."
        );
        assert_eq!(
            IncidentMessage::parse("no subject\n\nbody"),
            Err(IncidentMessageError::Shape)
        );
        assert_eq!(
            IncidentMessage::parse("Subject: x"),
            Err(IncidentMessageError::Shape)
        );
        assert_eq!(
            IncidentMessage::parse("Subject:  \n\nbody"),
            Err(IncidentMessageError::Subject)
        );
        assert_eq!(
            IncidentMessage::parse("Subject: a\u{7}b\n\nbody"),
            Err(IncidentMessageError::Subject)
        );
        assert_eq!(
            IncidentMessage::parse("Subject: a\n\n  \n"),
            Err(IncidentMessageError::Body)
        );
    }
}
