//! Tenants: the unit of isolation. Data of one tenant is never served to another.

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::time::Timestamp;

/// What identifies a tenant at its identity provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TenantKey {
    /// A Google Workspace domain (the `hd` claim).
    GoogleWorkspace {
        /// The primary domain, lower case.
        domain: String,
    },
    /// A Microsoft Entra tenant (the `tid` claim).
    Microsoft {
        /// The tenant's GUID as text.
        tid: String,
    },
    /// A person without an organisation (a consumer Google or Microsoft account): a
    /// tenant of one, keyed by the provider's subject id.
    Personal {
        /// Provider name and subject, e.g. `google:1234`.
        subject: String,
    },
    /// An organisation set up by the operator (the demo, self-hosted installs with ICS
    /// feeds only).
    Local {
        /// A short unique name.
        slug: String,
    },
}

impl TenantKey {
    /// A stable text form, unique across kinds, for storage and lookups.
    pub fn as_key(&self) -> String {
        match self {
            Self::GoogleWorkspace { domain } => format!("google:{}", domain.to_ascii_lowercase()),
            Self::Microsoft { tid } => format!("microsoft:{}", tid.to_ascii_lowercase()),
            Self::Personal { subject } => format!("personal:{subject}"),
            Self::Local { slug } => format!("local:{slug}"),
        }
    }

    /// Parses the text made by [`TenantKey::as_key`].
    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, rest) = key.split_once(':')?;
        if rest.is_empty() {
            return None;
        }
        let rest = rest.to_owned();
        Some(match kind {
            "google" => Self::GoogleWorkspace { domain: rest },
            "microsoft" => Self::Microsoft { tid: rest },
            "personal" => Self::Personal { subject: rest },
            "local" => Self::Local { slug: rest },
            _ => return None,
        })
    }
}

/// An organisation using Convene.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Internal id, carried by every row of this tenant.
    pub id: TenantId,
    /// External identity.
    pub key: TenantKey,
    /// Display name (the domain or the organisation's name).
    pub name: String,
    /// When the tenant was first seen.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips() {
        for key in [
            TenantKey::GoogleWorkspace {
                domain: "example.com".into(),
            },
            TenantKey::Microsoft {
                tid: "9188040d-6c67-4c5b-b112-36a304b66dad".into(),
            },
            TenantKey::Personal {
                subject: "google:42".into(),
            },
            TenantKey::Local {
                slug: "demo".into(),
            },
        ] {
            assert_eq!(TenantKey::from_key(&key.as_key()), Some(key));
        }
        assert_eq!(TenantKey::from_key("nope"), None);
        assert_eq!(TenantKey::from_key("google:"), None);
    }
}
