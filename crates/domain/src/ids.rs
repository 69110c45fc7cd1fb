//! Typed identifiers. Every id is a UUID (version 7 in production, made by an
//! [`IdGenerator`](crate::ports::IdGenerator)); a distinct type per entity keeps a meeting
//! id from ever being passed where a user id is expected.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID that already identifies this kind of entity.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID, for storage.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A tenant: one Google Workspace domain, one Microsoft tenant, or one local organisation.
    TenantId
);
id_type!(
    /// A person with an account.
    UserId
);
id_type!(
    /// A user's consent to one calendar provider.
    GrantId
);
id_type!(
    /// A meeting being scheduled, booked or ended.
    MeetingId
);
id_type!(
    /// One participant of one meeting.
    ParticipantId
);
id_type!(
    /// One proposed slot of one meeting.
    ProposalId
);
id_type!(
    /// One message in the outbox (also its idempotency key towards receivers).
    MessageId
);
id_type!(
    /// One row of the audit log.
    AuditId
);
id_type!(
    /// A browser session.
    SessionId
);
id_type!(
    /// A personal API token.
    ApiTokenId
);
