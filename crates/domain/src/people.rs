//! People with an account, and the names we keep for everyone.

use serde::{Deserialize, Serialize};

use crate::email::EmailAddress;
use crate::ids::{TenantId, UserId};
use crate::time::{SignedDuration, Timestamp, WeeklyHours, Zone};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty after trimming.
    #[error("a name cannot be empty")]
    Empty,
    /// Longer than [`PersonName::MAX_CHARS`].
    #[error("a name can have at most {max} characters", max = PersonName::MAX_CHARS)]
    TooLong,
    /// Contains control characters (line breaks would allow header injection in emails).
    #[error("a name cannot contain control characters")]
    Control,
}

/// A person's display name: 1 to 200 characters, trimmed, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonName(String);

impl PersonName {
    /// The longest name accepted.
    pub const MAX_CHARS: usize = 200;

    /// Parses a display name.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(NameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name shown in place of a person who erased their account.
    pub fn erased() -> Self {
        Self("Former participant".to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PersonName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PersonName> for String {
    fn from(value: PersonName) -> Self {
        value.0
    }
}

impl std::fmt::Display for PersonName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for PersonName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersonName({:?})", self.0)
    }
}

/// Free time a person wants around their meetings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buffers {
    /// Free time needed before a meeting starts.
    pub before: SignedDuration,
    /// Free time needed after a meeting ends.
    pub after: SignedDuration,
}

impl Buffers {
    /// The largest buffer accepted on either side.
    pub const MAX: SignedDuration = SignedDuration::from_hours(2);

    /// Buffers, each between zero and [`Buffers::MAX`].
    pub fn new(before: SignedDuration, after: SignedDuration) -> Option<Self> {
        let ok = |d: SignedDuration| !d.is_negative() && d <= Self::MAX;
        (ok(before) && ok(after)).then_some(Self { before, after })
    }
}

/// What a user may do in their tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Schedules meetings and manages their own data.
    #[default]
    Member,
    /// Also manages the tenant's people, grants and defaults (never their calendar
    /// content). Claimed only through a verifiable path: the identity provider says so,
    /// or an operator grants it.
    TenantAdmin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::TenantAdmin => "tenant_admin",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "member" => Some(Self::Member),
            "tenant_admin" => Some(Self::TenantAdmin),
            _ => None,
        }
    }
}

/// Whether an account may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UserStatus {
    /// Signs in, schedules, and their calendars are read.
    #[default]
    Active,
    /// Turned off by a tenant admin: cannot sign in, has no sessions or API tokens,
    /// and their calendar grants are not used (they are asked by email instead).
    Deactivated {
        /// When.
        at: Timestamp,
    },
}

/// A person with an account in one tenant.
///
/// Convene keeps exactly this about a person (plus the consents in
/// [`crate::consent`]): never their calendar content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Internal id.
    pub id: UserId,
    /// The tenant the user belongs to.
    pub tenant: TenantId,
    /// Display name.
    pub name: PersonName,
    /// Email address, unique within the tenant.
    pub email: EmailAddress,
    /// The IANA zone the user lives in.
    pub zone: Zone,
    /// When the user is willing to meet, in `zone`.
    pub working_hours: WeeklyHours,
    /// Free time around meetings.
    pub buffers: Buffers,
    /// Member or tenant admin.
    pub role: Role,
    /// Active or deactivated.
    pub status: UserStatus,
    /// When the account was created.
    pub created_at: Timestamp,
}

impl User {
    /// Whether the account may be used (signed in, read, scheduled for).
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }

    /// Whether the user administers their tenant (and is active).
    pub fn is_tenant_admin(&self) -> bool {
        self.is_active() && self.role == Role::TenantAdmin
    }
}
