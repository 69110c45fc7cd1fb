//! Test support for the calendar adapters' integration tests (feature `testing`): grants
//! with credentials in a memory store, log capture for the canary tests, and the rule for
//! missing test peers. Test support fails loudly: it panics instead of returning errors.
#![allow(clippy::expect_used)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::ids::{GrantId, TenantId, UserId};
use convene_domain::ports::{Credentials, GrantStore, TenantStore};
use convene_domain::tenant::{Tenant, TenantKey};
use convene_domain::time::{SignedDuration, Timestamp};
use convene_testkit::{ManualClock, MemoryStore};
use secrecy::SecretString;
use uuid::Uuid;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_uuid() -> Uuid {
    Uuid::from_u128(
        0xC0FE_0000_0000_0000_0000 + u128::from(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
    )
}

/// A memory store and a manual clock, with helpers to connect calendars.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The store (grants and credentials).
    pub store: Arc<MemoryStore>,
    /// The clock the adapters judge token lifetimes with.
    pub clock: Arc<ManualClock>,
}

impl Fixture {
    /// An empty store; the clock at `now` (RFC 3339).
    pub fn at(now: &str) -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(ManualClock::at(now)),
        }
    }

    /// A new tenant.
    ///
    /// # Panics
    /// When the store refuses it.
    pub async fn tenant(&self, slug: &str) -> TenantId {
        let id = TenantId::from(next_uuid());
        self.store
            .insert_tenant(&Tenant {
                id,
                key: TenantKey::Local {
                    slug: format!("{slug}-{id}"),
                },
                name: slug.to_owned(),
                settings: convene_domain::tenant::TenantSettings::default(),
                created_at: Timestamp::UNIX_EPOCH,
            })
            .await
            .expect("a tenant");
        id
    }

    /// A grant of a new user of `tenant` to `account` of `provider`, with `credentials`
    /// stored.
    ///
    /// # Panics
    /// When the store refuses it.
    pub async fn connect(
        &self,
        tenant: TenantId,
        provider: Provider,
        account: &str,
        credentials: Credentials,
    ) -> Grant {
        let grant = Grant::new(
            GrantId::from(next_uuid()),
            tenant,
            UserId::from(next_uuid()),
            provider,
            account.to_owned(),
            [Scope::ReadFreeBusy, Scope::WriteEvents],
            Timestamp::UNIX_EPOCH,
        )
        .expect("a valid grant");
        self.store.save_grant(&grant, &[]).await.expect("saved");
        self.store
            .put_credentials(tenant, grant.id(), &credentials)
            .await
            .expect("stored");
        grant
    }

    /// The grant's stored credentials.
    ///
    /// # Panics
    /// When the store fails.
    pub async fn credentials(&self, grant: &Grant) -> Option<Credentials> {
        self.store
            .credentials(grant.tenant(), grant.id())
            .await
            .expect("readable")
    }

    /// Credentials with a refresh token and, if given, an access token valid for an hour
    /// from the clock's now.
    pub fn tokens(&self, refresh: &str, access: Option<&str>) -> Credentials {
        Credentials {
            refresh_token: SecretString::from(refresh.to_owned()),
            access_token: access.map(|a| SecretString::from(a.to_owned())),
            access_expires_at: access.and_then(|_| {
                self.clock
                    .now()
                    .checked_add(SignedDuration::from_hours(1))
                    .ok()
            }),
        }
    }
}

/// Everything logged (at every level, with every field) while a [`Logs`] guard lives,
/// on this thread: the canary tests search it for calendar content.
#[derive(Debug)]
pub struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Starts capturing (use a current-thread runtime, the `#[tokio::test]` default).
    pub fn capture() -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        Self {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }
}

/// Whether a test peer (an outside program a test runs) is there. When it is not, the
/// test prints `skipped: <what> missing` and returns, unless `CONVENE_REQUIRE_PEERS=1`,
/// which turns the absence into a failure.
///
/// # Panics
/// When the peer is missing and `CONVENE_REQUIRE_PEERS=1`.
#[allow(clippy::print_stdout)]
pub fn peer_present(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var("CONVENE_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("{what} missing (CONVENE_REQUIRE_PEERS=1); run scripts/install-test-peers");
    }
    println!("skipped: {what} missing");
    false
}

/// A free TCP port on 127.0.0.1.
///
/// # Panics
/// When no port can be had.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
