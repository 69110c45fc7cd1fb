//! Tenants: the unit of isolation. Data of one tenant is never served to another.

use serde::{Deserialize, Serialize};

use crate::email::EmailAddress;
use crate::ids::TenantId;
use crate::people::Buffers;
use crate::time::{SignedDuration, Timestamp, WeeklyHours};

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

/// Why tenant settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Minimum notice below zero or above [`TenantSettings::MAX_NOTICE`].
    #[error("minimum notice must be between 0 and {} hours", TenantSettings::MAX_NOTICE.as_hours())]
    Notice,
    /// A guest domain that is not a domain name.
    #[error("{0:?} is not an email domain")]
    Domain(String),
    /// Too many guest domains.
    #[error("at most {} guest domains", TenantSettings::MAX_DOMAINS)]
    TooManyDomains,
}

/// A tenant's defaults and guest policy, set by its tenant admins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// Working hours a new member starts with (each member can change theirs).
    pub working_hours: WeeklyHours,
    /// Buffers a new member starts with.
    pub buffers: Buffers,
    /// No slot starts sooner than this after a request; `None` keeps the server's
    /// default.
    pub min_notice: Option<SignedDuration>,
    /// Whether people outside the tenant (email and link guests) may be invited.
    pub external_guests: bool,
    /// When not empty, email guests must have an address in one of these domains
    /// (lower case; a subdomain does not match its parent).
    pub guest_domains: Vec<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            working_hours: WeeklyHours::standard(),
            buffers: Buffers::default(),
            min_notice: None,
            external_guests: true,
            guest_domains: Vec::new(),
        }
    }
}

/// Why a guest may not be invited under a tenant's policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestPolicyError {
    /// The tenant does not allow people outside it.
    #[error("your organisation does not allow inviting people outside it")]
    ExternalGuestsOff,
    /// The guest's domain is not in the allowed list.
    #[error("your organisation allows guests only from: {allowed}")]
    DomainNotAllowed {
        /// The allowed domains, comma-separated.
        allowed: String,
    },
    /// A link guest (no email) cannot be checked against the allowed domains.
    #[error("your organisation allows guests only by email, from: {allowed}")]
    LinkGuestNotAllowed {
        /// The allowed domains, comma-separated.
        allowed: String,
    },
}

impl TenantSettings {
    /// The longest minimum notice accepted.
    pub const MAX_NOTICE: SignedDuration = SignedDuration::from_hours(24 * 14);
    /// The most guest domains.
    pub const MAX_DOMAINS: usize = 100;

    /// Checks the values and normalises the domains (trimmed, lower case, sorted,
    /// without repeats).
    pub fn validated(mut self) -> Result<Self, SettingsError> {
        if let Some(n) = self.min_notice
            && (n.is_negative() || n > Self::MAX_NOTICE)
        {
            return Err(SettingsError::Notice);
        }
        if self.guest_domains.len() > Self::MAX_DOMAINS {
            return Err(SettingsError::TooManyDomains);
        }
        let mut domains = Vec::with_capacity(self.guest_domains.len());
        for raw in &self.guest_domains {
            let d = raw.trim().trim_start_matches('@').to_ascii_lowercase();
            let valid_label = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if d.len() > 253 || !d.contains('.') || !d.split('.').all(valid_label) {
                return Err(SettingsError::Domain(raw.clone()));
            }
            domains.push(d);
        }
        domains.sort();
        domains.dedup();
        self.guest_domains = domains;
        Ok(self)
    }

    /// Whether an email guest (someone who is not a member of the tenant) may be
    /// invited.
    pub fn admits_email_guest(&self, email: &EmailAddress) -> Result<(), GuestPolicyError> {
        if !self.external_guests {
            return Err(GuestPolicyError::ExternalGuestsOff);
        }
        if self.guest_domains.is_empty() {
            return Ok(());
        }
        let domain = email.domain().to_ascii_lowercase();
        if self.guest_domains.contains(&domain) {
            Ok(())
        } else {
            Err(GuestPolicyError::DomainNotAllowed {
                allowed: self.guest_domains.join(", "),
            })
        }
    }

    /// Whether a link guest (known by name only) may be invited: only when external
    /// guests are allowed from any domain, since a link cannot be tied to a domain.
    pub fn admits_link_guest(&self) -> Result<(), GuestPolicyError> {
        if !self.external_guests {
            return Err(GuestPolicyError::ExternalGuestsOff);
        }
        if self.guest_domains.is_empty() {
            Ok(())
        } else {
            Err(GuestPolicyError::LinkGuestNotAllowed {
                allowed: self.guest_domains.join(", "),
            })
        }
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
    /// Defaults and guest policy.
    #[serde(default)]
    pub settings: TenantSettings,
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

    fn email(raw: &str) -> EmailAddress {
        EmailAddress::parse(raw).unwrap()
    }

    #[test]
    fn settings_normalise_and_refuse_bad_values() {
        let s = TenantSettings {
            guest_domains: vec![
                " Partner.COM ".into(),
                "@partner.com".into(),
                "b.org".into(),
            ],
            ..TenantSettings::default()
        }
        .validated()
        .unwrap();
        assert_eq!(s.guest_domains, vec!["b.org", "partner.com"]);
        for bad in ["", "localhost", "-a.com", "a..com", "a b.com"] {
            let s = TenantSettings {
                guest_domains: vec![bad.into()],
                ..TenantSettings::default()
            };
            assert_eq!(
                s.validated(),
                Err(SettingsError::Domain(bad.into())),
                "{bad:?}"
            );
        }
        let s = TenantSettings {
            min_notice: Some(SignedDuration::from_hours(-1)),
            ..TenantSettings::default()
        };
        assert_eq!(s.validated(), Err(SettingsError::Notice));
        let s = TenantSettings {
            min_notice: Some(TenantSettings::MAX_NOTICE + SignedDuration::from_secs(1)),
            ..TenantSettings::default()
        };
        assert_eq!(s.validated(), Err(SettingsError::Notice));
    }

    #[test]
    fn guest_policy() {
        let open = TenantSettings::default();
        assert_eq!(open.admits_email_guest(&email("x@anywhere.net")), Ok(()));
        assert_eq!(open.admits_link_guest(), Ok(()));

        let closed = TenantSettings {
            external_guests: false,
            ..TenantSettings::default()
        };
        assert_eq!(
            closed.admits_email_guest(&email("x@anywhere.net")),
            Err(GuestPolicyError::ExternalGuestsOff)
        );
        assert_eq!(
            closed.admits_link_guest(),
            Err(GuestPolicyError::ExternalGuestsOff)
        );

        let listed = TenantSettings {
            guest_domains: vec!["partner.com".into()],
            ..TenantSettings::default()
        };
        assert_eq!(listed.admits_email_guest(&email("x@Partner.com")), Ok(()));
        assert!(matches!(
            listed.admits_email_guest(&email("x@sub.partner.com")),
            Err(GuestPolicyError::DomainNotAllowed { .. })
        ));
        assert!(matches!(
            listed.admits_link_guest(),
            Err(GuestPolicyError::LinkGuestNotAllowed { .. })
        ));
    }
}
