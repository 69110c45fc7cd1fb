//! [`CoalescedCredentials`]: the calendar adapters' concurrent credential reads as one
//! store read.
//!
//! An availability request reads its participants' calendars through every provider at
//! once, and each provider's adapter first reads the credentials of its calendars
//! ([`GrantTokens::access_tokens`](crate::tokens::GrantTokens::access_tokens)). Given the
//! same `CoalescedCredentials`, the adapters' reads that start together become one
//! [`GrantStore::credentials_of`]: the first caller opens a batch and lets the other
//! ready futures run once (`yield_now`); whoever asks meanwhile joins it; the first
//! caller then reads for all and hands each its own answers, in the order asked. A batch
//! is never kept open longer than that one turn, so a lone read waits for nothing else.
//!
//! Only the credential reads are coalesced; every other [`GrantStore`] method goes to the
//! store as it is. If the caller that opened a batch is dropped before answering, those
//! who joined read for themselves.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use convene_domain::consent::Grant;
use convene_domain::ids::{GrantId, TenantId, UserId};
use convene_domain::outbox::OutboxMessage;
use convene_domain::ports::{Credentials, GrantStore, Page, StoreError};
use tokio::sync::oneshot;

/// One answer per grant asked, in the order asked.
type Answers = Vec<Result<Option<Credentials>, StoreError>>;

/// A [`GrantStore`] whose concurrent [`GrantStore::credentials_of`] calls are read
/// together (see [the module](self)). Share one between the calendar adapters.
pub struct CoalescedCredentials {
    store: Arc<dyn GrantStore>,
    /// The batch being gathered, if its first caller has not read it yet.
    open: Mutex<Option<Vec<Joined>>>,
}

/// A caller that joined an open batch: what it asked and where its answers go.
struct Joined {
    grants: Vec<(TenantId, GrantId)>,
    reply: oneshot::Sender<Answers>,
}

impl fmt::Debug for CoalescedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalescedCredentials")
            .finish_non_exhaustive()
    }
}

impl CoalescedCredentials {
    /// Coalesces the credential reads of `store`.
    pub fn new(store: Arc<dyn GrantStore>) -> Self {
        Self {
            store,
            open: Mutex::new(None),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Vec<Joined>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first caller's hold on the batch it opened: closes it (so that those who joined
/// read for themselves) if that caller is dropped before taking it.
struct Opened<'a> {
    coalesced: &'a CoalescedCredentials,
    taken: bool,
}

impl Opened<'_> {
    /// Closes the batch and returns who joined it.
    fn take(&mut self) -> Vec<Joined> {
        self.taken = true;
        self.coalesced.slot().take().unwrap_or_default()
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        if !self.taken {
            // Only the caller that opened a batch closes it, so the slot holds this one.
            self.coalesced.slot().take();
        }
    }
}

#[async_trait]
impl GrantStore for CoalescedCredentials {
    async fn save_grant(&self, grant: &Grant, outbox: &[OutboxMessage]) -> Result<(), StoreError> {
        self.store.save_grant(grant, outbox).await
    }

    async fn grant(&self, tenant: TenantId, id: GrantId) -> Result<Grant, StoreError> {
        self.store.grant(tenant, id).await
    }

    async fn grants_of(
        &self,
        tenant: TenantId,
        users: &[UserId],
    ) -> Result<Vec<Grant>, StoreError> {
        self.store.grants_of(tenant, users).await
    }

    async fn active_grants(
        &self,
        tenant: TenantId,
        page: Page<GrantId>,
    ) -> Result<Vec<Grant>, StoreError> {
        self.store.active_grants(tenant, page).await
    }

    async fn put_credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
        credentials: &Credentials,
    ) -> Result<(), StoreError> {
        self.store.put_credentials(tenant, grant, credentials).await
    }

    async fn credentials(
        &self,
        tenant: TenantId,
        grant: GrantId,
    ) -> Result<Option<Credentials>, StoreError> {
        self.store.credentials(tenant, grant).await
    }

    async fn credentials_of(&self, grants: &[(TenantId, GrantId)]) -> Answers {
        if grants.is_empty() {
            return Vec::new();
        }
        let joined = {
            let mut open = self.slot();
            match open.as_mut() {
                Some(batch) => {
                    let (reply, answer) = oneshot::channel();
                    batch.push(Joined {
                        grants: grants.to_vec(),
                        reply,
                    });
                    Some(answer)
                }
                None => {
                    *open = Some(Vec::new());
                    None
                }
            }
        };
        if let Some(answer) = joined {
            return match answer.await {
                Ok(answers) => answers,
                // The caller that opened the batch was dropped before reading it.
                Err(_) => self.store.credentials_of(grants).await,
            };
        }

        let mut opened = Opened {
            coalesced: self,
            taken: false,
        };
        tokio::task::yield_now().await;
        let joined = opened.take();
        if joined.is_empty() {
            return self.store.credentials_of(grants).await;
        }
        let mut all = grants.to_vec();
        for j in &joined {
            all.extend_from_slice(&j.grants);
        }
        let mut answers = self.store.credentials_of(&all).await.into_iter();
        // A store answers once per grant; should one answer short, the missing ones
        // are errors rather than someone else's credentials.
        let mut next = |n: usize| -> Answers {
            (0..n)
                .map(|_| {
                    answers.next().unwrap_or_else(|| {
                        Err(StoreError::Unavailable(
                            "the store answered fewer credentials than asked".into(),
                        ))
                    })
                })
                .collect()
        };
        let mine = next(grants.len());
        for j in joined {
            // A joined caller that was dropped no longer waits: nothing to do.
            let _ = j.reply.send(next(j.grants.len()));
        }
        mine
    }

    async fn delete_credentials(&self, tenant: TenantId, grant: GrantId) -> Result<(), StoreError> {
        self.store.delete_credentials(tenant, grant).await
    }
}

#[cfg(test)]
mod tests {
    use convene_domain::consent::{Provider, Scope};
    use convene_domain::ports::{Credentials, TenantStore};
    use convene_domain::tenant::{Tenant, TenantKey, TenantSettings};
    use convene_domain::time::Timestamp;
    use convene_testkit::store::MemoryStore;
    use secrecy::SecretString;
    use uuid::Uuid;

    use super::*;

    /// A distinct id for each call.
    fn next_id() -> u128 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        u128::from(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    fn token(answer: &Result<Option<Credentials>, StoreError>) -> Option<String> {
        use secrecy::ExposeSecret as _;
        answer
            .as_ref()
            .ok()?
            .as_ref()
            .map(|c| c.refresh_token.expose_secret().to_owned())
    }

    /// Five grants of two tenants with credentials (refresh token "r{i}"), and their ids.
    async fn stored() -> (Arc<MemoryStore>, Vec<(TenantId, GrantId)>) {
        let store = Arc::new(MemoryStore::new());
        let mut tenants = Vec::new();
        for slug in ["one", "two"] {
            let id = TenantId::from(Uuid::from_u128(next_id()));
            let tenant = Tenant {
                id,
                key: TenantKey::Local { slug: slug.into() },
                name: slug.into(),
                settings: TenantSettings::default(),
                created_at: Timestamp::UNIX_EPOCH,
            };
            store.insert_tenant(&tenant).await.unwrap();
            tenants.push(id);
        }
        let mut grants = Vec::new();
        for i in 0..5 {
            let tenant = tenants[i % 2];
            let grant = Grant::new(
                GrantId::from(Uuid::from_u128(next_id())),
                tenant,
                UserId::from(Uuid::from_u128(next_id())),
                Provider::Google,
                format!("user{i}@example.com"),
                [Scope::ReadFreeBusy],
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
            store.save_grant(&grant, &[]).await.unwrap();
            let grant = grant.id();
            let credentials = Credentials {
                access_token: None,
                access_expires_at: None,
                refresh_token: SecretString::from(format!("r{i}")),
            };
            store
                .put_credentials(tenant, grant, &credentials)
                .await
                .unwrap();
            grants.push((tenant, grant));
        }
        (store, grants)
    }

    #[tokio::test]
    async fn reads_started_together_are_one_store_read_each_answered_in_order() {
        let (store, grants) = stored().await;
        let coalesced = CoalescedCredentials::new(store.clone());
        let unknown = (grants[0].0, GrantId::from(Uuid::from_u128(next_id())));
        let second = [grants[4], unknown, grants[2]];
        let (a, b, c) = tokio::join!(
            coalesced.credentials_of(&grants[..2]),
            coalesced.credentials_of(&second),
            coalesced.credentials_of(&grants[3..4]),
        );
        assert_eq!(store.credential_reads(), 1);
        let names = |answers: &Answers| answers.iter().map(token).collect::<Vec<_>>();
        assert_eq!(names(&a), [Some("r0".into()), Some("r1".into())]);
        assert_eq!(names(&b), [Some("r4".into()), None, Some("r2".into())]);
        assert_eq!(names(&c), [Some("r3".into())]);
        // Another tenant's grant id is not found, even within one batch.
        let crossed = coalesced
            .credentials_of(&[(grants[1].0, grants[0].1)])
            .await;
        assert_eq!(names(&crossed), [None]);
    }

    #[tokio::test]
    async fn a_lone_read_and_reads_one_after_another_are_read_alone() {
        let (store, grants) = stored().await;
        let coalesced = CoalescedCredentials::new(store.clone());
        assert_eq!(
            token(&coalesced.credentials_of(&grants[..1]).await[0]),
            Some("r0".into())
        );
        assert_eq!(
            token(&coalesced.credentials_of(&grants[1..2]).await[0]),
            Some("r1".into())
        );
        assert!(coalesced.credentials_of(&[]).await.is_empty());
        assert_eq!(store.credential_reads(), 2);
    }

    #[tokio::test]
    async fn those_who_joined_read_alone_when_the_opener_is_dropped() {
        use futures::FutureExt as _;
        let (store, grants) = stored().await;
        let coalesced = CoalescedCredentials::new(store.clone());
        let mut opener = Box::pin(coalesced.credentials_of(&grants[..1]));
        assert!(
            (&mut opener).now_or_never().is_none(),
            "the opener yields once"
        );
        let mut joiner = Box::pin(coalesced.credentials_of(&grants[1..2]));
        assert!((&mut joiner).now_or_never().is_none(), "the joiner waits");
        drop(opener);
        let answered = tokio::time::timeout(std::time::Duration::from_secs(5), joiner)
            .await
            .expect("the joiner is not left waiting");
        assert_eq!(token(&answered[0]), Some("r1".into()));
        // The batch was closed with the opener: a new read is not stuck behind it.
        assert_eq!(
            token(&coalesced.credentials_of(&grants[2..3]).await[0]),
            Some("r2".into())
        );
        assert_eq!(store.credential_reads(), 2);
    }
}
