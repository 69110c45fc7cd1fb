//! People use cases: sign-in and consent, revocation, export and erasure.

use serde::Serialize;

use crate::access::{ApiToken, BearerSecret, TokenKind, TokenTerms};
use crate::audit::{Actor, AuditAction};
use crate::consent::{Grant, GrantState, Provider, RevokedBy, Scope};
use crate::ids::{ApiTokenId, GrantId, MeetingId, TenantId, UserId};
use crate::meeting::{Answer, MeetingSnapshot, MeetingState};
use crate::outbox::AnalyticsKind;
use crate::people::{Buffers, Role, User, UserStatus};
use crate::ports::{Credentials, Erasure, SignIn, StoreError};
use crate::tenant::{Tenant, TenantKey};
use crate::time::{Timestamp, WeeklyHours, Zone};

use super::effects::Effects;
use super::{Requester, Scheduler, ServiceError};

/// A grant as exported: never the tokens.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportedGrant {
    /// Id.
    pub id: GrantId,
    /// Provider.
    pub provider: Provider,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// State.
    pub state: GrantState,
    /// When consent was given.
    pub granted_at: Timestamp,
}

/// A meeting of someone else that the user takes part in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportedParticipation {
    /// The meeting.
    pub meeting: MeetingId,
    /// Its title.
    pub title: String,
    /// Its state.
    pub state: MeetingState,
    /// The user's answers in the current round.
    pub answers: Vec<(crate::ids::ProposalId, Answer)>,
}

/// An API token as exported: never the secret or its hash.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportedToken {
    /// Id.
    pub id: crate::ids::ApiTokenId,
    /// Label.
    pub label: String,
    /// Created.
    pub created_at: Timestamp,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
}

/// Everything Convene holds about a user.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserExport {
    /// The account.
    pub user: User,
    /// Calendar consents.
    pub grants: Vec<ExportedGrant>,
    /// Meetings they organised, in full.
    pub meetings_organized: Vec<MeetingSnapshot>,
    /// Others' meetings they take part in.
    pub participations: Vec<ExportedParticipation>,
    /// Their API tokens.
    pub api_tokens: Vec<ExportedToken>,
    /// When this export was made.
    pub exported_at: Timestamp,
}

/// What erasing a user did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureReport {
    /// The erased user's former id (kept in the audit log, which holds only ids).
    pub user: UserId,
    /// Grants revoked at their provider.
    pub revoked_at_provider: usize,
    /// Grants whose provider could not be reached to revoke (their credentials are
    /// deleted all the same, so Convene can never use them again).
    pub provider_failures: usize,
    /// Meetings they organised, deleted (open ones were cancelled first).
    pub meetings_deleted: usize,
    /// Others' meetings where they were pseudonymised.
    pub meetings_pseudonymised: usize,
}

impl Scheduler {
    /// A user signed in through a provider: their tenant and account are found or made,
    /// and their consent (with its tokens) is stored. A new account starts in UTC with
    /// office hours, until the user sets their zone.
    pub async fn sign_in(
        &self,
        provider: Provider,
        sign_in: SignIn,
        source: Option<std::net::IpAddr>,
    ) -> Result<User, ServiceError> {
        let now = self.ports.clock.now();
        let tenant = self.tenant_for(&sign_in.identity.tenant, now).await?;
        let identity = &sign_in.identity;
        let mut user = match self
            .store()
            .user_by_email(tenant.id, &identity.email)
            .await?
        {
            Some(user) => user,
            None => {
                let user = User {
                    id: self.ports.ids.new_id(),
                    tenant: tenant.id,
                    name: identity.name.clone(),
                    email: identity.email.clone(),
                    zone: Zone::utc(),
                    working_hours: tenant.settings.working_hours.clone(),
                    buffers: tenant.settings.buffers,
                    role: Role::Member,
                    status: UserStatus::Active,
                    created_at: now,
                };
                match self.store().insert_user(&user).await {
                    Ok(()) => user,
                    Err(StoreError::Duplicate(_)) => self
                        .store()
                        .user_by_email(tenant.id, &identity.email)
                        .await?
                        .ok_or(ServiceError::Conflict)?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if !user.is_active() {
            return Err(ServiceError::Deactivated);
        }
        // Only an organisation's admin can be vouched for: a personal tenant has none.
        let vouched =
            identity.tenant_admin && !matches!(identity.tenant, TenantKey::Personal { .. });
        self.claim_admin_at_sign_in(&mut user, vouched, source)
            .await?;
        self.audit(
            tenant.id,
            Actor::User(user.id),
            AuditAction::SignIn,
            user.id,
            source,
        )
        .await?;
        if !sign_in.scopes.is_empty() {
            // The calendar account is the verified address: both Google's freeBusy and
            // Graph's getSchedule take it as the calendar id, so reads batch.
            self.connect(
                &user,
                provider,
                identity.email.to_string(),
                &sign_in.scopes,
                &sign_in.credentials,
                source,
            )
            .await?;
        }
        Ok(user)
    }

    /// Connects (or reconnects) a calendar: the grant is active with `scopes`, and the
    /// credentials are stored (encrypted by the store).
    pub async fn connect_calendar(
        &self,
        who: &Requester,
        provider: Provider,
        account: String,
        scopes: &[Scope],
        credentials: &Credentials,
    ) -> Result<Grant, ServiceError> {
        let user = self.organizer(who).await?;
        self.connect(&user, provider, account, scopes, credentials, who.source)
            .await
    }

    async fn connect(
        &self,
        user: &User,
        provider: Provider,
        account: String,
        scopes: &[Scope],
        credentials: &Credentials,
        source: Option<std::net::IpAddr>,
    ) -> Result<Grant, ServiceError> {
        let now = self.ports.clock.now();
        let existing = self
            .store()
            .grants_of(user.tenant, &[user.id])
            .await?
            .into_iter()
            .find(|g| g.provider() == provider && g.account() == account);
        let grant = match existing {
            Some(mut g) => {
                g.renew(scopes.iter().copied(), now)?;
                g
            }
            None => Grant::new(
                self.ports.ids.new_id(),
                user.tenant,
                user.id,
                provider,
                account,
                scopes.iter().copied(),
                now,
            )?,
        };
        self.store().save_grant(&grant, &[]).await?;
        self.store()
            .put_credentials(user.tenant, grant.id(), credentials)
            .await?;
        self.audit(
            user.tenant,
            Actor::User(user.id),
            AuditAction::GrantConnected,
            grant.id(),
            source,
        )
        .await?;
        Ok(grant)
    }

    async fn tenant_for(&self, key: &TenantKey, now: Timestamp) -> Result<Tenant, ServiceError> {
        if let Some(t) = self.store().tenant_by_key(key).await? {
            return Ok(t);
        }
        let name = match key {
            TenantKey::GoogleWorkspace { domain } => domain.clone(),
            TenantKey::Microsoft { tid } => format!("Microsoft tenant {tid}"),
            TenantKey::Personal { .. } => "Personal".to_owned(),
            TenantKey::Local { slug } => slug.clone(),
        };
        let tenant = Tenant {
            id: self.ports.ids.new_id(),
            key: key.clone(),
            name,
            settings: crate::tenant::TenantSettings::default(),
            created_at: now,
        };
        match self.store().insert_tenant(&tenant).await {
            Ok(()) => Ok(tenant),
            Err(StoreError::Duplicate(_)) => self
                .store()
                .tenant_by_key(key)
                .await?
                .ok_or(ServiceError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a user's zone, working hours and buffers.
    pub async fn update_profile(
        &self,
        who: &Requester,
        zone: Option<Zone>,
        working_hours: Option<WeeklyHours>,
        buffers: Option<Buffers>,
    ) -> Result<User, ServiceError> {
        let mut user = self.organizer(who).await?;
        if let Some(zone) = zone {
            user.zone = zone;
        }
        if let Some(hours) = working_hours {
            user.working_hours = hours;
        }
        if let Some(buffers) = buffers {
            user.buffers = buffers;
        }
        self.store().update_user(&user).await?;
        Ok(user)
    }

    /// The user withdraws their consent to a provider: every grant of theirs with it is
    /// revoked here at once (never used again) and at the provider by the worker. In
    /// open polls they become email guests, asked by email. Returns how many grants were
    /// revoked.
    pub async fn revoke_my_grants(
        &self,
        who: &Requester,
        provider: Provider,
    ) -> Result<usize, ServiceError> {
        let user = self.organizer(who).await?;
        self.revoke_provider(
            &user,
            provider,
            RevokedBy::User,
            Actor::User(user.id),
            who.source,
        )
        .await
    }

    /// An administrator withdraws a user's consent to a provider; the user is told.
    pub async fn revoke_grants_as_admin(
        &self,
        admin: &Requester,
        user: UserId,
        provider: Provider,
    ) -> Result<usize, ServiceError> {
        let target = self.store().user(admin.tenant, user).await?;
        self.revoke_provider(
            &target,
            provider,
            RevokedBy::Admin { admin: admin.user },
            Actor::Admin(admin.user),
            admin.source,
        )
        .await
    }

    /// The provider answered `invalid_grant` for a grant (seen by an adapter or a
    /// periodic check): it is marked revoked and the user is told, once.
    pub async fn grant_refused_by_provider(
        &self,
        tenant: TenantId,
        grant: GrantId,
    ) -> Result<bool, ServiceError> {
        let grant = self.store().grant(tenant, grant).await?;
        let user = self.store().user(tenant, grant.user()).await?;
        let changed = self
            .revoke(grant, RevokedBy::Provider, &user, Actor::System, None)
            .await?;
        if changed {
            self.demote_everywhere(&user).await?;
        }
        Ok(changed)
    }

    async fn revoke_provider(
        &self,
        user: &User,
        provider: Provider,
        by: RevokedBy,
        actor: Actor,
        source: Option<std::net::IpAddr>,
    ) -> Result<usize, ServiceError> {
        let grants = self.store().grants_of(user.tenant, &[user.id]).await?;
        let mut revoked = 0;
        for g in grants
            .into_iter()
            .filter(|g| g.provider() == provider && g.is_active())
        {
            if self.revoke(g, by, user, actor, source).await? {
                revoked += 1;
            }
        }
        if revoked == 0 {
            return Err(ServiceError::NotFound("active grant"));
        }
        self.demote_everywhere(user).await?;
        Ok(revoked)
    }

    /// After a user lost their last readable calendar: in others' open polls they become
    /// email guests and get the proposals by email.
    async fn demote_everywhere(&self, user: &User) -> Result<(), ServiceError> {
        let grants = self.store().grants_of(user.tenant, &[user.id]).await?;
        if grants.iter().any(|g| g.read_access().is_ok()) {
            return Ok(());
        }
        for mut m in self
            .store()
            .meetings_with_user(user.tenant, user.id)
            .await?
        {
            if !matches!(m.state(), MeetingState::Polling { .. }) {
                continue;
            }
            let Some(pid) = m.demote_to_email_guest(user.id) else {
                continue;
            };
            let organizer = self.store().user(user.tenant, m.organizer()).await?;
            let mut effects = Effects::new(self, user.tenant);
            if let Ok(p) = m.participant(pid) {
                let p = p.clone();
                effects.propose_slots(&m, &organizer, &p);
            }
            match self.store().update_meeting(&m, &effects.messages).await {
                // Changed concurrently: the next calendar read demotes them there.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Makes a personal API token for the requester under `terms`; `random` (at least 32
    /// bytes, from the caller, who owns the randomness) becomes its secret, which is
    /// returned once and stored only as a hash. Audited.
    pub async fn create_api_token(
        &self,
        who: &Requester,
        terms: &TokenTerms,
        random: &[u8],
    ) -> Result<(ApiToken, BearerSecret), ServiceError> {
        let secret = BearerSecret::issue(TokenKind::Api, who.tenant, random).ok_or_else(|| {
            ServiceError::Invalid("a token needs at least 32 random bytes".into())
        })?;
        let now = self.ports.clock.now();
        let token = ApiToken {
            id: self.ports.ids.new_id(),
            tenant: who.tenant,
            user: who.user,
            label: terms.label().to_owned(),
            token_hash: secret.hash(),
            created_at: now,
            expires_at: terms.expires_at(now),
            revoked_at: None,
        };
        self.store().insert_api_token(&token).await?;
        self.audit_own(who, AuditAction::TokenCreated, token.id)
            .await?;
        Ok((token, secret))
    }

    /// The requester's personal API tokens (never their secrets).
    pub async fn api_tokens(&self, who: &Requester) -> Result<Vec<ApiToken>, ServiceError> {
        Ok(self.store().api_tokens_of(who.tenant, who.user).await?)
    }

    /// Revokes one of the requester's tokens; anyone else's is `NotFound`. Audited.
    pub async fn revoke_api_token(
        &self,
        who: &Requester,
        id: ApiTokenId,
    ) -> Result<(), ServiceError> {
        self.store()
            .revoke_api_token(who.tenant, who.user, id, self.ports.clock.now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ServiceError::NotFound("token"),
                other => other.into(),
            })?;
        self.audit_own(who, AuditAction::TokenRevoked, id).await
    }

    /// Everything Convene holds about the user, for them to take away. Audited.
    pub async fn export_user(&self, who: &Requester) -> Result<UserExport, ServiceError> {
        let now = self.ports.clock.now();
        let user = self.organizer(who).await?;
        let grants = self.store().grants_of(who.tenant, &[who.user]).await?;
        let meetings = self
            .store()
            .meetings_with_user(who.tenant, who.user)
            .await?;
        let tokens = self.store().api_tokens_of(who.tenant, who.user).await?;
        let (organized, participated): (Vec<_>, Vec<_>) = meetings
            .into_iter()
            .partition(|m| m.organizer() == who.user);
        let export = UserExport {
            user,
            grants: grants
                .iter()
                .map(|g| ExportedGrant {
                    id: g.id(),
                    provider: g.provider(),
                    scopes: g.scopes().collect(),
                    state: g.state(),
                    granted_at: g.granted_at(),
                })
                .collect(),
            meetings_organized: organized.iter().map(|m| m.snapshot().clone()).collect(),
            participations: participated
                .iter()
                .map(|m| {
                    let me = m.participant_for_user(who.user).map(|p| p.id);
                    ExportedParticipation {
                        meeting: m.id(),
                        title: m.title().to_string(),
                        state: m.state(),
                        answers: m
                            .votes()
                            .iter()
                            .filter(|v| Some(v.participant) == me)
                            .map(|v| (v.proposal, v.answer))
                            .collect(),
                    }
                })
                .collect(),
            api_tokens: tokens
                .into_iter()
                .map(|t| ExportedToken {
                    id: t.id,
                    label: t.label,
                    created_at: t.created_at,
                    revoked_at: t.revoked_at,
                })
                .collect(),
            exported_at: now,
        };
        self.audit_own(who, AuditAction::UserExported, who.user)
            .await?;
        Ok(export)
    }

    /// Erases a user: their grants are revoked at the providers, their open meetings
    /// cancelled (participants told) and deleted, their participation in others'
    /// meetings pseudonymised, and their account, credentials, sessions and tokens
    /// deleted, all in one store transaction. Only the audit log keeps their former id.
    pub async fn erase_user(
        &self,
        actor: Actor,
        tenant: TenantId,
        user: UserId,
        source: Option<std::net::IpAddr>,
    ) -> Result<ErasureReport, ServiceError> {
        let account = self.store().user(tenant, user).await.map_err(|e| match e {
            StoreError::NotFound => ServiceError::NotFound("user"),
            other => other.into(),
        })?;
        let mut grants = self.store().grants_of(tenant, &[user]).await?;
        let (mut revoked_at_provider, mut provider_failures) = (0, 0);
        for g in &grants {
            let Some(credentials) = self.store().credentials(tenant, g.id()).await? else {
                continue;
            };
            let Some(identity) = self.ports.identities.get(g.provider()) else {
                continue;
            };
            match identity.revoke(&credentials).await {
                Ok(()) | Err(crate::ports::IdentityError::ConsentRevoked) => {
                    revoked_at_provider += 1
                }
                Err(_) => provider_failures += 1,
            }
        }
        let mut attempt = 0;
        loop {
            let now = self.ports.clock.now();
            let mut effects = Effects::new(self, tenant);
            let mut changed = Vec::new();
            let mut deleted = Vec::new();
            for mut m in self
                .store()
                .meetings_involving(tenant, user, &account.email)
                .await?
            {
                if m.organizer() == user && m.tenant() == tenant {
                    if m.state().is_open()
                        && let Ok(booked) = m.cancel(now)
                    {
                        // The organizer is being erased: the notices carry no name of theirs.
                        m.erase_person(user, &account.email);
                        effects.cancellations(&m, None, booked, false);
                    }
                    deleted.push(m.id());
                } else if m.erase_person(user, &account.email) {
                    changed.push(m);
                }
            }
            for g in &mut grants {
                g.erase(now);
            }
            effects.analytics(AnalyticsKind::UserErased, None, user, &[]);
            let erasure = Erasure {
                tenant,
                user,
                email: account.email.clone(),
                changed,
                deleted,
                grants: grants.clone(),
                outbox: effects.messages,
            };
            match self.store().erase_user(&erasure).await {
                Ok(()) => {
                    self.audit(tenant, actor, AuditAction::UserErased, user, source)
                        .await?;
                    return Ok(ErasureReport {
                        user,
                        revoked_at_provider,
                        provider_failures,
                        meetings_deleted: erasure.deleted.len(),
                        meetings_pseudonymised: erasure.changed.len(),
                    });
                }
                Err(StoreError::Conflict) if attempt < self.policy.conflict_retries => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
