//! Convene's store on PostgreSQL, for production: any number of `convene` processes on
//! any number of machines share one database.
//!
//! [`PgStore`] implements every store port of the domain, so an `Arc<PgStore>` is an
//! `Arc<dyn Store>`. It passes the same contract suites (`convene_testkit::contract`) as
//! the SQLite adapter and the in-memory fake.
//!
//! - **Concurrency.** Meetings carry a version compared on update (`Conflict` for the
//!   loser of a race, with its outbox messages rolled back); the outbox is claimed with
//!   `FOR UPDATE SKIP LOCKED` in a statement that marks the rows in flight, so workers
//!   never share a message; reads of a meeting run in one `REPEATABLE READ` snapshot,
//!   or, for a meeting read here recently and unchanged since (same row `xmin` and
//!   `version`), check only its row and answer from the copy kept.
//! - **Audit log**: a trigger refuses `UPDATE`, `DELETE` and `TRUNCATE`.
//! - **Schema** from `migrations/postgres`, embedded ([`MIGRATOR`], [`PgStore::migrate`]);
//!   [`PgStore::ping`] says whether the database is reachable and migrated (`/readyz`).
//! - **Credentials** are sealed with `convene-crypto` before they reach SQL; rotate them
//!   with [`PgStore::rotate_keys`].
//! - **Connections**: a completed single statement's connection is kept for the next one
//!   rather than given back to sqlx's pool, which pings every connection it takes back
//!   (`pool.rs`); transactions take theirs from sqlx.
//! - **Queries** are counted ([`PgStore::queries`]) so tests can prove a fixed number
//!   per operation.
//!
//! Rows, conversions, limits and erasure rules live in `convene-sql`, shared with the
//! SQLite adapter; this crate holds only PostgreSQL's SQL.

#![warn(missing_docs)]

mod batch;
mod meetings;
mod outbox;
mod people;
mod pool;
mod recent;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use convene_crypto::KeyRing;
use convene_domain::ports::StoreError;
use convene_sql::credentials::CredentialsRow;
use convene_sql::errors::{self, Failure, store_error};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use crate::pool::Connections;
use sqlx::query::{Query, QueryAs};
use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

/// The schema, embedded from `migrations/postgres`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../../migrations/postgres");

/// Connections per process, by default: on a small machine more connections than
/// cores mostly add backends to wake (see [`PgStore::connect_sized`]).
pub const DEFAULT_CONNECTIONS: u32 = 10;

/// How long a call waits for a free connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle for longer than this is pinged before it is handed out; one
/// used more recently is trusted, as its last statement just went through (HikariCP's
/// `aliveBypassWindowMs` rule). Under load this saves a round trip on every checkout;
/// after an outage the connections have been idle and are tested again.
pub(crate) const TRUST_RECENT_USE: Duration = Duration::from_millis(500);

/// How many credentials rows key rotation reads per batch.
const ROTATION_BATCH: i64 = 100;

/// Every store port on PostgreSQL.
pub struct PgStore {
    pool: Connections,
    ring: Arc<KeyRing>,
    db: Db,
    batches: meetings::Batches,
}

/// The pool and the statement counter: what a batch's task needs of the store.
#[derive(Clone, Debug)]
pub(crate) struct Db {
    pool: Connections,
    queries: Arc<AtomicU64>,
    recent: Arc<recent::Recent>,
}

impl Db {
    /// A counted statement.
    fn query(&self, sql: &'static str) -> Query<'static, Postgres, PgArguments> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        sqlx::query(sql)
    }

    /// A counted statement whose rows are `T`.
    fn query_as<T>(&self, sql: &'static str) -> QueryAs<'static, Postgres, T, PgArguments>
    where
        T: for<'r> FromRow<'r, PgRow>,
    {
        self.queries.fetch_add(1, Ordering::Relaxed);
        sqlx::query_as(sql)
    }

    /// A write transaction (`READ COMMITTED`).
    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(store_error)
    }

    /// A read transaction: one snapshot for every statement in it, so a meeting and its
    /// children are read at one version.
    async fn read(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(store_error)
    }

    /// The domain's reading of a failed write: a missing reference is `UnknownTenant`
    /// when one of `tenants` does not exist, `Invalid` otherwise.
    async fn settle<T>(
        &self,
        result: Result<T, Failure>,
        tenants: &[Uuid],
    ) -> Result<T, StoreError> {
        // The failed transaction is gone; ask outside it.
        errors::settle(result, tenants, |t| self.tenant_exists(&self.pool, t)).await
    }

    /// Whether a tenant exists (inside a transaction: pass its connection).
    async fn tenant_exists<'c, E>(&self, conn: E, tenant: Uuid) -> Result<bool, StoreError>
    where
        E: sqlx::Executor<'c, Database = Postgres>,
    {
        let found: Option<(i32,)> = self
            .query_as("SELECT 1 FROM tenants WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await
            .map_err(store_error)?;
        Ok(found.is_some())
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("ring", &self.ring)
            .field("queries", &self.queries())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`), sealing credentials with `ring`.
    /// Does not migrate: call [`PgStore::migrate`].
    pub async fn connect(url: &str, ring: impl Into<Arc<KeyRing>>) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(store_error)?;
        Self::connect_with(options, ring).await
    }

    /// Connects with `options`, as [`PgStore::connect`] does with a URL.
    pub async fn connect_with(
        options: PgConnectOptions,
        ring: impl Into<Arc<KeyRing>>,
    ) -> Result<Self, StoreError> {
        Self::connect_sized(options, ring, DEFAULT_CONNECTIONS).await
    }

    /// Connects with `options`, keeping at most `connections` connections (at least
    /// one). Every statement waits for a free one (at most 5 s, then `Unavailable`).
    pub async fn connect_sized(
        options: PgConnectOptions,
        ring: impl Into<Arc<KeyRing>>,
        connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > TRUST_RECENT_USE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(store_error)?;
        Ok(Self::from_pool(pool, ring))
    }

    /// A store over an existing pool.
    pub fn from_pool(pool: PgPool, ring: impl Into<Arc<KeyRing>>) -> Self {
        let pool = Connections::new(pool);
        let recent = recent::Recent::new(recent::MAX_ROWS, recent::KEEP_FOR);
        recent.sweep_while_alive();
        Self {
            db: Db {
                pool: pool.clone(),
                queries: Arc::new(AtomicU64::new(0)),
                recent,
            },
            pool,
            ring: ring.into(),
            batches: meetings::Batches::default(),
        }
    }

    /// Applies the embedded migrations that are not applied yet (sqlx takes an advisory
    /// lock, so processes starting together do not race).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(self.pool.pool())
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrations: {e}")))
    }

    /// Readiness: the database answers and every embedded migration is applied.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let applied: Vec<(i64,)> = self
            .query_as("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| match store_error(e) {
                StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("migrations not applied? {m}"))
                }
                other => other,
            })?;
        let missing = MIGRATOR
            .iter()
            .filter(|m| !applied.iter().any(|(v,)| *v == m.version))
            .count();
        if missing > 0 {
            return Err(StoreError::Unavailable(format!(
                "{missing} migration(s) not applied"
            )));
        }
        Ok(())
    }

    /// Re-encrypts every credentials row not sealed under the ring's current key, and
    /// returns how many were. Rows are read in batches and each is rewritten only if it
    /// is still the one read (a concurrent `put_credentials` wins). Fails with `Corrupt`
    /// when a row cannot be opened (its key is missing from the ring, or wrong).
    pub async fn rotate_keys(&self) -> Result<u64, StoreError> {
        let current = self.ring.current().as_str().to_owned();
        let mut after = (Uuid::nil(), Uuid::nil());
        let mut rotated = 0;
        loop {
            let rows: Vec<CredentialsRow> = self
                .query_as(
                    "SELECT tenant_id, grant_id, key_id, ciphertext FROM credentials \
                     WHERE key_id <> $1 AND (tenant_id, grant_id) > ($2, $3) \
                     ORDER BY tenant_id, grant_id LIMIT $4",
                )
                .bind(current.clone())
                .bind(after.0)
                .bind(after.1)
                .bind(ROTATION_BATCH)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
            let Some(last) = rows.last() else {
                return Ok(rotated);
            };
            after = (last.tenant_id, last.grant_id);
            let mut tx = self.pool.begin().await.map_err(store_error)?;
            for row in &rows {
                let Some(new) = row.rotated(&self.ring)? else {
                    continue;
                };
                let done = self
                    .query(
                        "UPDATE credentials SET key_id = $4, ciphertext = $5, updated_at = now() \
                         WHERE tenant_id = $1 AND grant_id = $2 AND key_id = $3",
                    )
                    .bind(row.tenant_id)
                    .bind(row.grant_id)
                    .bind(row.key_id.clone())
                    .bind(new.key_id)
                    .bind(new.ciphertext)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                rotated += done.rows_affected();
            }
            tx.commit().await.map_err(store_error)?;
        }
    }

    /// How many SQL statements this store has sent (transaction control excluded).
    pub fn queries(&self) -> u64 {
        self.db.queries.load(Ordering::Relaxed)
    }

    /// The pool, for administration and tests that look at raw rows.
    pub fn pool(&self) -> &PgPool {
        self.pool.pool()
    }

    /// A counted statement.
    fn query(&self, sql: &'static str) -> Query<'static, Postgres, PgArguments> {
        self.db.query(sql)
    }

    /// A counted statement whose rows are `T`.
    fn query_as<T>(&self, sql: &'static str) -> QueryAs<'static, Postgres, T, PgArguments>
    where
        T: for<'r> FromRow<'r, PgRow>,
    {
        self.db.query_as(sql)
    }

    /// A write transaction (read committed: version checks and row locks do the rest).
    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.db.write().await
    }

    /// A read transaction: one snapshot for every statement in it, so a meeting and its
    /// children are read at one version.
    async fn read(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.db.read().await
    }

    /// The domain's reading of a failed write: a missing reference is `UnknownTenant`
    /// when one of `tenants` does not exist, `Invalid` otherwise.
    async fn settle<T>(
        &self,
        result: Result<T, Failure>,
        tenants: &[Uuid],
    ) -> Result<T, StoreError> {
        self.db.settle(result, tenants).await
    }

    /// Whether a tenant exists (inside a transaction: pass its connection).
    async fn tenant_exists<'c, E>(&self, conn: E, tenant: Uuid) -> Result<bool, StoreError>
    where
        E: sqlx::Executor<'c, Database = Postgres>,
    {
        self.db.tenant_exists(conn, tenant).await
    }
}

/// A limit as SQL wants it.
fn limit(n: u32) -> i64 {
    i64::from(n)
}
