//! The audit log: who accessed or changed whose personal data, when, and from where.
//! Append-only: stores offer no way to change or delete a row.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ids::{AuditId, ParticipantId, TenantId, UserId};
use crate::time::Timestamp;

/// Who did it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user acting on their own data or meetings.
    User(UserId),
    /// An administrator (operator support or tenant admin).
    Admin(UserId),
    /// A guest through their link.
    Guest(ParticipantId),
    /// Convene itself (the worker, a scheduled check, a CLI task).
    System,
}

/// What was done. Names are stable: they are stored and exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A user signed in.
    SignIn,
    /// A calendar's free/busy was read (subject: the grant).
    FreeBusyRead,
    /// A calendar was connected (subject: the grant).
    GrantConnected,
    /// A calendar connection was withdrawn (subject: the grant).
    GrantRevoked,
    /// A user's data was exported.
    UserExported,
    /// A user was erased (subject: their former id).
    UserErased,
    /// An administrator read a user's personal data.
    AdminReadUser,
    /// An administrator listed users.
    AdminListUsers,
    /// An administrator read grants.
    AdminReadGrants,
    /// An administrator read the audit log.
    AdminReadAudit,
    /// An administrator read the outbox.
    AdminReadOutbox,
    /// An encryption key rotation re-encrypted credentials.
    KeysRotated,
    /// A personal API token was created.
    TokenCreated,
    /// A personal API token was revoked.
    TokenRevoked,
    /// A user's role changed (subject: the user).
    RoleChanged,
    /// A tenant admin deactivated a user (subject: the user).
    UserDeactivated,
    /// A tenant admin reactivated a user (subject: the user).
    UserReactivated,
    /// A meeting was handed to another organizer (subject: the meeting).
    MeetingHandedOver,
    /// A tenant's defaults changed (subject: the tenant).
    TenantSettingsChanged,
    /// The periodic check found a grant refused by its provider (subject: the grant).
    GrantCheckRefused,
    /// A person in an incident's scope was notified (subject: the user or participant).
    IncidentNotified,
    /// An incident report listed the people in scope (subject: the tenant).
    IncidentReported,
}

impl AuditAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::FreeBusyRead => "free_busy_read",
            Self::GrantConnected => "grant_connected",
            Self::GrantRevoked => "grant_revoked",
            Self::UserExported => "user_exported",
            Self::UserErased => "user_erased",
            Self::AdminReadUser => "admin_read_user",
            Self::AdminListUsers => "admin_list_users",
            Self::AdminReadGrants => "admin_read_grants",
            Self::AdminReadAudit => "admin_read_audit",
            Self::AdminReadOutbox => "admin_read_outbox",
            Self::KeysRotated => "keys_rotated",
            Self::TokenCreated => "token_created",
            Self::TokenRevoked => "token_revoked",
            Self::RoleChanged => "role_changed",
            Self::UserDeactivated => "user_deactivated",
            Self::UserReactivated => "user_reactivated",
            Self::MeetingHandedOver => "meeting_handed_over",
            Self::TenantSettingsChanged => "tenant_settings_changed",
            Self::GrantCheckRefused => "grant_check_refused",
            Self::IncidentNotified => "incident_notified",
            Self::IncidentReported => "incident_reported",
        }
    }
}

/// One audit row. Holds ids only: no names, no emails, so erasure leaves it intact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Id.
    pub id: AuditId,
    /// Tenant whose data was touched.
    pub tenant: TenantId,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: AuditAction,
    /// Which record (an opaque id as text).
    pub subject: String,
    /// When.
    pub at: Timestamp,
    /// From which address, when the action came over the network.
    pub source: Option<IpAddr>,
}

impl AuditEntry {
    /// The order of the log: by instant, then by id (many rows share an instant: one
    /// availability request audits each calendar it read).
    pub fn position(&self) -> (Timestamp, AuditId) {
        (self.at, self.id)
    }
}

/// Where a page of the audit log starts. Pages follow [`AuditEntry::position`]; the
/// next page starts [`AuditFrom::after`] the last row of the one before, so no row is
/// skipped or repeated however many share an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditFrom {
    /// Rows at or after this instant…
    pub since: Timestamp,
    /// …except, when set, those at exactly `since` whose id is this one or lower.
    pub after: Option<AuditId>,
}

impl AuditFrom {
    /// Every row at or after `since`.
    pub fn since(since: Timestamp) -> Self {
        Self { since, after: None }
    }

    /// The rows after `last` (the last row of a page).
    pub fn after(last: &AuditEntry) -> Self {
        Self {
            since: last.at,
            after: Some(last.id),
        }
    }

    /// Whether `entry` belongs to the pages starting here.
    pub fn admits(&self, entry: &AuditEntry) -> bool {
        match self.after {
            None => entry.at >= self.since,
            Some(after) => entry.position() > (self.since, after),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every action. The match below fails to compile when one is added and not listed.
    const ALL: [AuditAction; 22] = [
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
        AuditAction::RoleChanged,
        AuditAction::UserDeactivated,
        AuditAction::UserReactivated,
        AuditAction::MeetingHandedOver,
        AuditAction::TenantSettingsChanged,
        AuditAction::GrantCheckRefused,
        AuditAction::IncidentNotified,
        AuditAction::IncidentReported,
    ];

    #[allow(dead_code)]
    fn listed(action: AuditAction) {
        match action {
            AuditAction::SignIn
            | AuditAction::FreeBusyRead
            | AuditAction::GrantConnected
            | AuditAction::GrantRevoked
            | AuditAction::UserExported
            | AuditAction::UserErased
            | AuditAction::AdminReadUser
            | AuditAction::AdminListUsers
            | AuditAction::AdminReadGrants
            | AuditAction::AdminReadAudit
            | AuditAction::AdminReadOutbox
            | AuditAction::KeysRotated
            | AuditAction::TokenCreated
            | AuditAction::TokenRevoked
            | AuditAction::RoleChanged
            | AuditAction::UserDeactivated
            | AuditAction::UserReactivated
            | AuditAction::MeetingHandedOver
            | AuditAction::TenantSettingsChanged
            | AuditAction::GrantCheckRefused
            | AuditAction::IncidentNotified
            | AuditAction::IncidentReported => {}
        }
    }

    #[test]
    fn every_stored_name_is_its_serde_name_and_reads_back() {
        for action in ALL {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.as_str()), "{action:?}");
            let back: AuditAction = serde_json::from_str(&json).unwrap();
            assert_eq!(back, action);
        }
    }

    #[test]
    fn stored_names_are_unique_and_snake_case() {
        let names: HashSet<&str> = ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), ALL.len(), "two actions share a stored name");
        for name in names {
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn entries_round_trip_with_the_actor_tagged() {
        let entry = AuditEntry {
            id: AuditId::from_uuid(uuid::Uuid::from_u128(1)),
            tenant: TenantId::from_uuid(uuid::Uuid::from_u128(2)),
            actor: Actor::Admin(UserId::from_uuid(uuid::Uuid::from_u128(3))),
            action: AuditAction::GrantRevoked,
            subject: "g".into(),
            at: Timestamp::UNIX_EPOCH,
            source: Some("192.0.2.7".parse().unwrap()),
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["actor"]["kind"], "admin");
        assert_eq!(json["action"], "grant_revoked");
        let back: AuditEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
        let system = serde_json::to_value(Actor::System).unwrap();
        assert_eq!(system, serde_json::json!({"kind": "system"}));
    }

    #[test]
    fn a_page_after_a_row_holds_the_later_ids_at_its_instant_and_all_later_rows() {
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        let row = |id: u128, when: &str| AuditEntry {
            id: AuditId::from_uuid(uuid::Uuid::from_u128(id)),
            tenant: TenantId::from_uuid(uuid::Uuid::from_u128(2)),
            actor: Actor::System,
            action: AuditAction::FreeBusyRead,
            subject: "g".into(),
            at: at(when),
            source: None,
        };
        let last = row(5, "2026-03-01T10:00:00Z");
        let from = AuditFrom::after(&last);
        assert!(!from.admits(&last), "not the last row again");
        assert!(!from.admits(&row(4, "2026-03-01T10:00:00Z")));
        assert!(from.admits(&row(6, "2026-03-01T10:00:00Z")));
        assert!(from.admits(&row(1, "2026-03-01T10:00:00.000001Z")));
        assert!(!from.admits(&row(9, "2026-03-01T09:59:59Z")));
        let since = AuditFrom::since(at("2026-03-01T10:00:00Z"));
        assert!(since.admits(&row(1, "2026-03-01T10:00:00Z")), "at or after");
        assert!(!since.admits(&row(9, "2026-03-01T09:59:59.999999Z")));
    }
}
