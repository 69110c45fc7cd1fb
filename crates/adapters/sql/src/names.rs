//! The text stored for every enum of the domain. The names are those of the domain's own
//! serde forms (`snake_case`), so a stored name and an exported JSON value agree.

use convene_domain::audit::AuditAction;
use convene_domain::consent::{Provider, Scope};
use convene_domain::meeting::{Answer, Attendance};
use convene_domain::ports::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Outbox states (`outbox.state`).
pub mod outbox_state {
    /// Waiting for a first attempt or a retry (`available_at`).
    pub const PENDING: &str = "pending";
    /// Claimed by a worker until `claimed_until`.
    pub const IN_FLIGHT: &str = "in_flight";
    /// Delivered; the payload is gone.
    pub const DELIVERED: &str = "delivered";
    /// Given up on; the payload is kept for an operator.
    pub const DEAD: &str = "dead";
}

/// Participant kinds (`participants.kind`).
pub mod participant_kind {
    /// A user whose calendar is read.
    pub const CONNECTED: &str = "connected";
    /// A guest with an email.
    pub const EMAIL: &str = "email";
    /// A guest known by name only.
    pub const LINK: &str = "link";
    /// A person who erased their account.
    pub const ERASED: &str = "erased";
}

/// Grant states (`grants.state`) and who revoked (`grants.revoked_by`).
pub mod grant_state {
    /// In use.
    pub const ACTIVE: &str = "active";
    /// Withdrawn.
    pub const REVOKED: &str = "revoked";
    /// The user erased their account.
    pub const ERASED: &str = "erased";
    /// Revoked by the user.
    pub const BY_USER: &str = "user";
    /// Revoked by an administrator (`grants.revoked_by_admin`).
    pub const BY_ADMIN: &str = "admin";
    /// Refused by the provider.
    pub const BY_PROVIDER: &str = "provider";
}

/// Audit actor kinds (`audit_log.actor_kind`).
pub mod actor_kind {
    /// A user acting on their own data.
    pub const USER: &str = "user";
    /// An administrator.
    pub const ADMIN: &str = "admin";
    /// A guest through their link.
    pub const GUEST: &str = "guest";
    /// Convene itself.
    pub const SYSTEM: &str = "system";
}

/// The serde name of a unit variant (`"read_free_busy"`).
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        // Only unit variants of `rename_all = "snake_case"` enums are passed here.
        other => format!("{other:?}"),
    }
}

/// Parses a serde name back, or `Corrupt` naming the column.
fn from_serde_name<T: DeserializeOwned>(column: &str, name: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| crate::corrupt(column, format_args!("unknown value {name:?}")))
}

/// `google`, `microsoft`, `ics`.
pub fn provider(p: Provider) -> &'static str {
    p.as_str()
}

/// Parses [`provider`].
pub fn parse_provider(name: &str) -> Result<Provider, StoreError> {
    name.parse()
        .map_err(|_| crate::corrupt("grants.provider", format_args!("unknown value {name:?}")))
}

/// `read_free_busy`, `write_events`.
pub fn scope(s: Scope) -> String {
    serde_name(&s)
}

/// Parses [`scope`].
pub fn parse_scope(name: &str) -> Result<Scope, StoreError> {
    from_serde_name("grants.scopes", name)
}

/// `required`, `optional`.
pub fn attendance(a: Attendance) -> &'static str {
    match a {
        Attendance::Required => "required",
        Attendance::Optional => "optional",
    }
}

/// Parses [`attendance`].
pub fn parse_attendance(name: &str) -> Result<Attendance, StoreError> {
    from_serde_name("participants.attendance", name)
}

/// `yes`, `no`.
pub fn answer(a: Answer) -> &'static str {
    match a {
        Answer::Yes => "yes",
        Answer::No => "no",
    }
}

/// Parses [`answer`].
pub fn parse_answer(name: &str) -> Result<Answer, StoreError> {
    from_serde_name("votes.answer", name)
}

/// The audit action's stored name ([`AuditAction::as_str`]).
pub fn audit_action(a: AuditAction) -> &'static str {
    a.as_str()
}

/// Parses [`audit_action`].
pub fn parse_audit_action(name: &str) -> Result<AuditAction, StoreError> {
    from_serde_name("audit_log.action", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_agree_with_the_domain() {
        for s in [Scope::ReadFreeBusy, Scope::WriteEvents] {
            assert_eq!(parse_scope(&scope(s)).unwrap(), s);
        }
        assert_eq!(scope(Scope::ReadFreeBusy), "read_free_busy");
        for a in [Attendance::Required, Attendance::Optional] {
            assert_eq!(parse_attendance(attendance(a)).unwrap(), a);
            assert_eq!(attendance(a), serde_name(&a));
        }
        for a in [Answer::Yes, Answer::No] {
            assert_eq!(parse_answer(answer(a)).unwrap(), a);
            assert_eq!(answer(a), serde_name(&a));
        }
        for p in Provider::ALL {
            assert_eq!(parse_provider(provider(p)).unwrap(), p);
        }
        for a in [
            AuditAction::SignIn,
            AuditAction::FreeBusyRead,
            AuditAction::GrantConnected,
            AuditAction::GrantRevoked,
            AuditAction::UserExported,
            AuditAction::UserErased,
            AuditAction::AdminReadUser,
            AuditAction::AdminListUsers,
            AuditAction::AdminReadGrants,
            AuditAction::AdminReadAudit,
            AuditAction::AdminReadOutbox,
            AuditAction::KeysRotated,
            AuditAction::TokenCreated,
            AuditAction::TokenRevoked,
        ] {
            assert_eq!(parse_audit_action(audit_action(a)).unwrap(), a);
        }
        assert!(matches!(
            parse_answer("maybe"),
            Err(StoreError::Corrupt(m)) if m.contains("votes.answer")
        ));
    }
}
