//! Convene's store on SQLite, the embedded default: one file, nothing to install.
//!
//! [`SqliteStore`] implements every store port of the domain, so an
//! `Arc<SqliteStore>` is an `Arc<dyn Store>`. It passes the same contract suites
//! (`convene_testkit::contract`) as the PostgreSQL adapter and the in-memory fake.
//!
//! - **One writer.** SQLite allows one writing transaction at a time, so every write goes
//!   through a pool of exactly one connection and opens `BEGIN IMMEDIATE` (taking the
//!   write lock up front, so a transaction never fails half-way on a lock); reads use a
//!   separate pool and see a consistent snapshot (WAL). An in-memory database has a
//!   single connection for both.
//! - **Connections** run in WAL mode (`synchronous = FULL`: a commit survives a power
//!   cut) with foreign keys on and a busy timeout.
//! - **Schema** from `migrations/sqlite`, embedded ([`MIGRATOR`], [`SqliteStore::migrate`]).
//! - **Credentials** are sealed with `convene-crypto` before they reach SQL; rotate them
//!   with [`SqliteStore::rotate_keys`].
//! - **Queries** are counted ([`SqliteStore::queries`]) so tests can prove a fixed number
//!   per operation.
//!
//! Rows, conversions, limits and erasure rules live in `convene-sql`, shared with the
//! PostgreSQL adapter; this crate holds only SQLite's SQL.

#![warn(missing_docs)]

mod meetings;
mod outbox;
mod people;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use convene_crypto::KeyRing;
use convene_domain::ports::StoreError;
use convene_sql::credentials::CredentialsRow;
use convene_sql::errors::{self, Failure, store_error};
use sqlx::migrate::Migrator;
use sqlx::query::{Query, QueryAs};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, Sqlite, Transaction};
use uuid::Uuid;

/// The schema, embedded from `migrations/sqlite`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../../migrations/sqlite");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections of a file database.
const READERS: u32 = 4;

/// How many credentials rows key rotation reads per batch.
const ROTATION_BATCH: i64 = 100;

/// Every store port on SQLite.
pub struct SqliteStore {
    /// The one connection that writes.
    writer: SqlitePool,
    /// Connections that read (the writer's pool for an in-memory database).
    reader: SqlitePool,
    ring: Arc<KeyRing>,
    queries: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("ring", &self.ring)
            .field("queries", &self.queries())
            .finish_non_exhaustive()
    }
}

/// Whether options open an in-memory database (sqlx names them `file:sqlx-in-memory-N`).
fn in_memory(url: &str, options: &SqliteConnectOptions) -> bool {
    let name = options.get_filename().to_string_lossy();
    url.contains(":memory:") || url.contains("mode=memory") || name.contains("in-memory")
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://convene.db`,
    /// `sqlite::memory:`), sealing credentials with `ring`. Does not migrate: call
    /// [`SqliteStore::migrate`].
    pub async fn connect(url: &str, ring: impl Into<Arc<KeyRing>>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true);
        let memory = in_memory(url, &options);
        Self::connect_with(options, memory, ring).await
    }

    /// Opens the database at `url` as [`SqliteStore::connect`] does, but never creates
    /// one: for administration tasks, where a mistyped path must fail rather than yield
    /// a new, empty database.
    pub async fn connect_existing(
        url: &str,
        ring: impl Into<Arc<KeyRing>>,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(false);
        let memory = in_memory(url, &options);
        Self::connect_with(options, memory, ring).await
    }

    /// Opens a database from options (WAL, `synchronous = FULL`, foreign keys and a busy
    /// timeout are added).
    /// `memory` says whether it is an in-memory database, which must live on a single
    /// connection.
    pub async fn connect_with(
        options: SqliteConnectOptions,
        memory: bool,
        ring: impl Into<Arc<KeyRing>>,
    ) -> Result<Self, StoreError> {
        let options = options
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        let options = if memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        };
        // One connection, kept open: an in-memory database lives as long as it does.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(store_error)?;
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options)
                .await
                .map_err(store_error)?
        };
        Ok(Self {
            writer,
            reader,
            ring: ring.into(),
            queries: AtomicU64::new(0),
        })
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrations: {e}")))
    }

    /// The database is reachable and every embedded migration is applied.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let applied: Vec<(i64,)> = self
            .query_as("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrations not applied: {e}")))?;
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
                     WHERE key_id <> ?1 AND (tenant_id, grant_id) > (?2, ?3) \
                     ORDER BY tenant_id, grant_id LIMIT ?4",
                )
                .bind(current.clone())
                .bind(after.0)
                .bind(after.1)
                .bind(ROTATION_BATCH)
                .fetch_all(&self.reader)
                .await
                .map_err(store_error)?;
            let Some(last) = rows.last() else {
                return Ok(rotated);
            };
            after = (last.tenant_id, last.grant_id);
            let mut tx = self.write().await?;
            for row in &rows {
                let Some(new) = row.rotated(&self.ring)? else {
                    continue;
                };
                let done = self
                    .query(
                        "UPDATE credentials SET key_id = ?4, ciphertext = ?5, \
                         updated_at = CAST(unixepoch('subsec') * 1000000 AS INTEGER) \
                         WHERE tenant_id = ?1 AND grant_id = ?2 AND key_id = ?3",
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

    /// Writes a consistent copy of the whole database into a new file at `path`
    /// (`VACUUM INTO`): one read snapshot, taken while writers carry on, compacted, in a
    /// single file without a WAL. Fails when `path` already exists or is not UTF-8.
    pub async fn snapshot_into(&self, path: &Path) -> Result<(), StoreError> {
        let path = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid("the snapshot path is not UTF-8".to_owned()))?;
        self.query("VACUUM INTO ?1")
            .bind(path.to_owned())
            .execute(&self.reader)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// How many SQL statements this store has sent (transaction control excluded).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The writer's pool, for administration and tests that look at raw rows.
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// A counted statement.
    fn query(&self, sql: &'static str) -> Query<'static, Sqlite, SqliteArguments> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        sqlx::query(sql)
    }

    /// A counted statement whose rows are `T`.
    fn query_as<T>(&self, sql: &'static str) -> QueryAs<'static, Sqlite, T, SqliteArguments>
    where
        T: for<'r> FromRow<'r, SqliteRow>,
    {
        self.queries.fetch_add(1, Ordering::Relaxed);
        sqlx::query_as(sql)
    }

    /// A write transaction: the write lock is taken at `BEGIN`.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)
    }

    /// A read transaction: one snapshot for every statement in it.
    async fn read(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.reader.begin().await.map_err(store_error)
    }

    /// The domain's reading of a failed write: a foreign-key violation is
    /// `UnknownTenant` when one of `tenants` does not exist, `Invalid` otherwise.
    async fn settle<T>(
        &self,
        result: Result<T, Failure>,
        tenants: &[Uuid],
    ) -> Result<T, StoreError> {
        // The transaction is gone: its connection is free for this look-up.
        errors::settle(result, tenants, |t| self.tenant_exists(&self.reader, t)).await
    }

    /// Whether a tenant exists (inside a transaction: pass its connection).
    async fn tenant_exists<'c, E>(&self, conn: E, tenant: Uuid) -> Result<bool, StoreError>
    where
        E: sqlx::Executor<'c, Database = Sqlite>,
    {
        let found: Option<(i64,)> = self
            .query_as("SELECT 1 FROM tenants WHERE tenant_id = ?1")
            .bind(tenant)
            .fetch_optional(conn)
            .await
            .map_err(store_error)?;
        Ok(found.is_some())
    }
}

/// A JSON array of ids, for `IN (SELECT unhex(value, '-') FROM json_each(?))`.
fn id_list(ids: impl IntoIterator<Item = Uuid>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|u| u.to_string()).collect();
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_owned())
}

/// A JSON array of rows (serialised with their column names as keys).
fn json_rows<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows)
        .map_err(|e| StoreError::Invalid(format!("rows cannot be written as JSON: {e}")))
}

/// A limit as SQL wants it.
fn limit(n: u32) -> i64 {
    i64::from(n)
}
