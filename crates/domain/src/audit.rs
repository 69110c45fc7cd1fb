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
