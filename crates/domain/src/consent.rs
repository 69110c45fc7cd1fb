//! Consent: a user's grant to one calendar provider, and the capabilities it yields.
//!
//! Reading a calendar takes a [`ReadAccess`], booking takes a [`WriteAccess`]. Neither can
//! be built from outside this module: the only way to get one is from an *active* [`Grant`]
//! holding the needed [`Scope`]. A calendar call without consent therefore does not
//! compile, rather than failing a check someone forgot to write.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{GrantId, TenantId, UserId};
use crate::time::Timestamp;

/// An outside system holding a user's calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Google Workspace or a consumer Google account.
    Google,
    /// Microsoft 365 (Graph).
    Microsoft,
    /// A private iCal feed or a CalDAV calendar.
    Ics,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 3] = [Provider::Google, Provider::Microsoft, Provider::Ics];

    /// The lower-case name used in URLs and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Microsoft => "microsoft",
            Self::Ics => "ics",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = ConsentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ConsentError::UnknownProvider(s.to_owned()))
    }
}

/// What a grant allows Convene to do with a calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read free/busy (never event content).
    ReadFreeBusy,
    /// Create, update and cancel the events Convene books.
    WriteEvents,
}

/// Who withdrew a consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum RevokedBy {
    /// The user themselves.
    User,
    /// An administrator of the user's tenant or of the operator.
    Admin {
        /// The administrator's user id.
        admin: UserId,
    },
    /// The provider refused the grant (`invalid_grant`): revoked by the user or their IT
    /// at the provider, expired, or superseded.
    Provider,
}

/// Where a grant is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GrantState {
    /// In use.
    Active,
    /// Withdrawn; never used again. Credentials are deleted.
    Revoked {
        /// Who withdrew it.
        by: RevokedBy,
        /// When.
        at: Timestamp,
    },
    /// The user erased their account; only the fact that a grant existed remains.
    Erased {
        /// When.
        at: Timestamp,
    },
}

/// Why a consent operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// The grant was revoked or erased.
    #[error("the calendar connection was revoked; reconnect it to use it again")]
    NotActive,
    /// The grant lacks the scope the operation needs.
    #[error("the calendar connection does not allow {0:?}")]
    MissingScope(Scope),
    /// A grant without any scope or without an account id.
    #[error("a grant needs an account and at least one scope")]
    Invalid,
    /// An unknown provider name.
    #[error("unknown calendar provider {0:?}")]
    UnknownProvider(String),
}

/// A user's consent to one provider account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    id: GrantId,
    tenant: TenantId,
    user: UserId,
    provider: Provider,
    account: String,
    scopes: BTreeSet<Scope>,
    state: GrantState,
    granted_at: Timestamp,
}

impl Grant {
    /// A new, active grant for `account` (the provider's id of the calendar account: a
    /// Google `sub`, a Microsoft object id, a feed's opaque id).
    pub fn new(
        id: GrantId,
        tenant: TenantId,
        user: UserId,
        provider: Provider,
        account: String,
        scopes: impl IntoIterator<Item = Scope>,
        now: Timestamp,
    ) -> Result<Self, ConsentError> {
        let scopes: BTreeSet<Scope> = scopes.into_iter().collect();
        if scopes.is_empty() || account.trim().is_empty() {
            return Err(ConsentError::Invalid);
        }
        Ok(Self {
            id,
            tenant,
            user,
            provider,
            account,
            scopes,
            state: GrantState::Active,
            granted_at: now,
        })
    }

    /// Rebuilds a grant from storage, as it was saved.
    pub fn restore(snapshot: GrantSnapshot) -> Result<Self, ConsentError> {
        let GrantSnapshot {
            id,
            tenant,
            user,
            provider,
            account,
            scopes,
            state,
            granted_at,
        } = snapshot;
        let active = matches!(state, GrantState::Active);
        if active && (scopes.is_empty() || account.trim().is_empty()) {
            return Err(ConsentError::Invalid);
        }
        Ok(Self {
            id,
            tenant,
            user,
            provider,
            account,
            scopes: scopes.into_iter().collect(),
            state,
            granted_at,
        })
    }

    /// Everything a store needs to save this grant.
    pub fn snapshot(&self) -> GrantSnapshot {
        GrantSnapshot {
            id: self.id,
            tenant: self.tenant,
            user: self.user,
            provider: self.provider,
            account: self.account.clone(),
            scopes: self.scopes.iter().copied().collect(),
            state: self.state,
            granted_at: self.granted_at,
        }
    }

    /// The grant's id.
    pub fn id(&self) -> GrantId {
        self.id
    }
    /// The tenant of the user.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
    /// The user who consented.
    pub fn user(&self) -> UserId {
        self.user
    }
    /// The provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }
    /// The provider's account id (empty once erased).
    pub fn account(&self) -> &str {
        &self.account
    }
    /// The scopes consented to.
    pub fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.scopes.iter().copied()
    }
    /// Where the grant is in its life.
    pub fn state(&self) -> GrantState {
        self.state
    }
    /// When consent was given (or last renewed).
    pub fn granted_at(&self) -> Timestamp {
        self.granted_at
    }
    /// Whether the grant may be used.
    pub fn is_active(&self) -> bool {
        matches!(self.state, GrantState::Active)
    }

    /// The user consented again (signed in anew): the grant is active with these scopes.
    pub fn renew(
        &mut self,
        scopes: impl IntoIterator<Item = Scope>,
        now: Timestamp,
    ) -> Result<(), ConsentError> {
        if matches!(self.state, GrantState::Erased { .. }) {
            return Err(ConsentError::NotActive);
        }
        let scopes: BTreeSet<Scope> = scopes.into_iter().collect();
        if scopes.is_empty() {
            return Err(ConsentError::Invalid);
        }
        self.scopes = scopes;
        self.state = GrantState::Active;
        self.granted_at = now;
        Ok(())
    }

    /// Withdraws consent. Revoking a revoked grant is a no-op that keeps the first
    /// revocation (who and when); it returns whether this call changed anything.
    pub fn revoke(&mut self, by: RevokedBy, now: Timestamp) -> Result<bool, ConsentError> {
        match self.state {
            GrantState::Active => {
                self.state = GrantState::Revoked { by, at: now };
                Ok(true)
            }
            GrantState::Revoked { .. } => Ok(false),
            GrantState::Erased { .. } => Err(ConsentError::NotActive),
        }
    }

    /// Forgets the account: only the fact that a grant existed remains.
    pub fn erase(&mut self, now: Timestamp) {
        self.account.clear();
        self.scopes.clear();
        self.state = GrantState::Erased { at: now };
    }

    /// The capability to read this calendar's free/busy.
    pub fn read_access(&self) -> Result<ReadAccess, ConsentError> {
        self.capability(Scope::ReadFreeBusy).map(ReadAccess)
    }

    /// The capability to book events on this calendar.
    pub fn write_access(&self) -> Result<WriteAccess, ConsentError> {
        self.capability(Scope::WriteEvents).map(WriteAccess)
    }

    fn capability(&self, scope: Scope) -> Result<CalendarRef, ConsentError> {
        if !self.is_active() {
            return Err(ConsentError::NotActive);
        }
        if !self.scopes.contains(&scope) {
            return Err(ConsentError::MissingScope(scope));
        }
        Ok(CalendarRef {
            grant: self.id,
            tenant: self.tenant,
            user: self.user,
            provider: self.provider,
            account: self.account.clone(),
        })
    }
}

/// A grant's fields, for storage adapters. Build a [`Grant`] back with [`Grant::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantSnapshot {
    /// See [`Grant::id`].
    pub id: GrantId,
    /// See [`Grant::tenant`].
    pub tenant: TenantId,
    /// See [`Grant::user`].
    pub user: UserId,
    /// See [`Grant::provider`].
    pub provider: Provider,
    /// See [`Grant::account`].
    pub account: String,
    /// See [`Grant::scopes`].
    pub scopes: Vec<Scope>,
    /// See [`Grant::state`].
    pub state: GrantState,
    /// See [`Grant::granted_at`].
    pub granted_at: Timestamp,
}

/// Which calendar a capability points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CalendarRef {
    grant: GrantId,
    tenant: TenantId,
    user: UserId,
    provider: Provider,
    account: String,
}

impl CalendarRef {
    /// The grant this capability came from.
    pub fn grant(&self) -> GrantId {
        self.grant
    }
    /// The tenant of the calendar's owner.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
    /// The calendar's owner.
    pub fn user(&self) -> UserId {
        self.user
    }
    /// The provider holding the calendar.
    pub fn provider(&self) -> Provider {
        self.provider
    }
    /// The provider's account id.
    pub fn account(&self) -> &str {
        &self.account
    }
}

/// Proof that an active grant allows reading this calendar's free/busy.
/// Only [`Grant::read_access`] makes one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadAccess(CalendarRef);

impl std::ops::Deref for ReadAccess {
    type Target = CalendarRef;
    fn deref(&self) -> &CalendarRef {
        &self.0
    }
}

/// Proof that an active grant allows booking events on this calendar.
/// Only [`Grant::write_access`] makes one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WriteAccess(CalendarRef);

impl std::ops::Deref for WriteAccess {
    type Target = CalendarRef;
    fn deref(&self) -> &CalendarRef {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn grant(scopes: &[Scope]) -> Grant {
        Grant::new(
            GrantId::from_uuid(Uuid::from_u128(1)),
            TenantId::from_uuid(Uuid::from_u128(2)),
            UserId::from_uuid(Uuid::from_u128(3)),
            Provider::Google,
            "sub-123".into(),
            scopes.iter().copied(),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap()
    }

    #[test]
    fn access_needs_an_active_grant_with_the_scope() {
        let mut g = grant(&[Scope::ReadFreeBusy]);
        assert!(g.read_access().is_ok());
        assert_eq!(
            g.write_access(),
            Err(ConsentError::MissingScope(Scope::WriteEvents))
        );
        assert_eq!(
            g.revoke(RevokedBy::Provider, Timestamp::UNIX_EPOCH),
            Ok(true)
        );
        assert_eq!(g.read_access(), Err(ConsentError::NotActive));
    }

    #[test]
    fn revoking_twice_keeps_the_first_revocation() {
        let mut g = grant(&[Scope::ReadFreeBusy]);
        let first = Timestamp::from_second(10).unwrap();
        g.revoke(RevokedBy::User, first).unwrap();
        assert_eq!(
            g.revoke(RevokedBy::Provider, Timestamp::from_second(20).unwrap()),
            Ok(false)
        );
        assert_eq!(
            g.state(),
            GrantState::Revoked {
                by: RevokedBy::User,
                at: first
            }
        );
    }

    #[test]
    fn erasure_forgets_the_account_and_is_final() {
        let mut g = grant(&[Scope::ReadFreeBusy, Scope::WriteEvents]);
        g.erase(Timestamp::UNIX_EPOCH);
        assert_eq!(g.account(), "");
        assert!(g.read_access().is_err());
        assert!(
            g.renew([Scope::ReadFreeBusy], Timestamp::UNIX_EPOCH)
                .is_err()
        );
        assert!(Grant::restore(g.snapshot()).is_ok());
    }

    #[test]
    fn a_grant_needs_scopes_and_an_account() {
        let err = Grant::new(
            GrantId::from_uuid(Uuid::nil()),
            TenantId::from_uuid(Uuid::nil()),
            UserId::from_uuid(Uuid::nil()),
            Provider::Ics,
            " ".into(),
            [Scope::ReadFreeBusy],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(err, Err(ConsentError::Invalid));
    }
}
