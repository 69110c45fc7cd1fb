//! What identifies a user to Amplitude.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use convene_domain::ids::{MessageId, TenantId, UserId};
use convene_domain::outbox::{AnalyticsEvent, DeliveryError};
use convene_domain::people::User;
use convene_domain::ports::{StoreError, UserStore};
use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};

/// The setting that decides what Amplitude learns about a user.
pub enum Identity {
    /// The default: `user_id` is the hex HMAC-SHA256 of Convene's user id under
    /// `secret`, stable for a user and meaningless without the secret. No name or email
    /// is ever sent.
    Pseudonymous {
        /// The HMAC key (keep it secret and stable: changing it splits every user in two).
        secret: SecretString,
    },
    /// `user_id` is the user's email, and `user_properties` carry their name and email,
    /// looked up in `users` for the event's tenant. Amplitude then holds personal data:
    /// the privacy notice must say so (see `docs/analytics.md`). A user no longer found
    /// (erased) is sent as their tenant's device, like events without a user.
    EmailAndName {
        /// Where users are looked up.
        users: Arc<dyn UserStore>,
    },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pseudonymous { .. } => f.write_str("Pseudonymous([redacted])"),
            Self::EmailAndName { .. } => f.write_str("EmailAndName"),
        }
    }
}

/// Who an event is sent as.
pub(crate) enum Who {
    /// A user.
    User {
        /// Amplitude's `user_id`.
        user_id: String,
        /// Sent only in [`Identity::EmailAndName`].
        user_properties: Option<serde_json::Map<String, serde_json::Value>>,
    },
    /// No user: a device id derived from the tenant.
    Device(String),
}

impl Who {
    /// The id Amplitude throttles on.
    pub(crate) fn key(&self) -> &str {
        match self {
            Self::User { user_id, .. } => user_id,
            Self::Device(device_id) => device_id,
        }
    }
}

/// The device id of a tenant's events without a user (Amplitude wants at least 5
/// characters).
pub(crate) fn tenant_device(tenant: TenantId) -> String {
    format!("tenant-{}", tenant.as_uuid().simple())
}

/// Hex HMAC-SHA256 of the user id.
pub(crate) fn pseudonym(secret: &SecretString, user: UserId) -> String {
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(user.as_uuid().to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Identity {
    /// Who each event is sent as, in order. Looks users up once per tenant.
    pub(crate) async fn resolve(
        &self,
        events: &[(MessageId, AnalyticsEvent)],
    ) -> Vec<Result<Who, DeliveryError>> {
        match self {
            Self::Pseudonymous { secret } => events
                .iter()
                .map(|(_, e)| {
                    Ok(match e.user {
                        Some(user) => Who::User {
                            user_id: pseudonym(secret, user),
                            user_properties: None,
                        },
                        None => Who::Device(tenant_device(e.tenant)),
                    })
                })
                .collect(),
            Self::EmailAndName { users } => {
                let mut wanted: BTreeMap<TenantId, Vec<UserId>> = BTreeMap::new();
                for (_, e) in events {
                    if let Some(u) = e.user {
                        wanted.entry(e.tenant).or_default().push(u);
                    }
                }
                let mut found: HashMap<(TenantId, UserId), Result<User, StoreError>> =
                    HashMap::new();
                for (tenant, mut ids) in wanted {
                    ids.sort();
                    ids.dedup();
                    match users.users(tenant, &ids).await {
                        Ok(list) => {
                            for u in list {
                                found.insert((tenant, u.id), Ok(u));
                            }
                        }
                        Err(e) => {
                            for id in ids {
                                found.insert((tenant, id), Err(e.clone()));
                            }
                        }
                    }
                }
                events
                    .iter()
                    .map(|(_, e)| {
                        let Some(user) = e.user else {
                            return Ok(Who::Device(tenant_device(e.tenant)));
                        };
                        match found.get(&(e.tenant, user)) {
                            Some(Ok(u)) => {
                                let mut props = serde_json::Map::new();
                                props.insert("name".into(), u.name.as_str().into());
                                props.insert("email".into(), u.email.as_str().into());
                                Ok(Who::User {
                                    user_id: u.email.as_str().to_owned(),
                                    user_properties: Some(props),
                                })
                            }
                            Some(Err(_)) => Err(DeliveryError::Transient {
                                reason: "the user store is unavailable".into(),
                                retry_after: None,
                            }),
                            // Erased since: nothing left to identify them by.
                            None => Ok(Who::Device(tenant_device(e.tenant))),
                        }
                    })
                    .collect()
            }
        }
    }
}
