//! The store's connections: sqlx's pool, plus a few of its connections kept here between
//! single statements instead of being given back after each.
//!
//! sqlx gives a connection back to its pool through a spawned task that first pings the
//! server (a `Sync` and its answer) to learn whether the connection is still usable. An
//! availability request ran eight single statements (five now), so as many extra round
//! trips, tasks and wake-ups of a PostgreSQL backend; under the load bench that was about
//! a tenth of the machine's CPU a request. A statement that completes leaves its
//! connection ready for the next (PostgreSQL has answered `ReadyForQuery`), so nothing
//! needs checking: [`Connections`] keeps such a connection and hands it to the next
//! statement. What could leave a connection in doubt goes back to sqlx, which checks it
//! as before: an error, a statement dropped before it finished, a connection kept long
//! enough that sqlx's lifetime rules should see it again. Transactions are sqlx's own
//! (their end is not a completed statement), taken from the connections this keeps no
//! hold of: at most half the pool is kept, so they never wait on an idle one here.
//! Tested against a server in this module (`on_a_server`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, PgPool, Postgres, SqlStr, Transaction};

/// A kept connection idle for longer than this goes back to sqlx's pool, whose rule is
/// the same: one idle for longer is pinged before it is handed out (`TRUST_RECENT_USE`
/// in the crate root).
const TRUST_RECENT_USE: Duration = crate::TRUST_RECENT_USE;

/// A connection is given back to sqlx after this long in [`Connections`]'s hands, so
/// that sqlx's idle and lifetime limits still apply to it.
const KEEP_FOR: Duration = Duration::from_secs(60);

/// sqlx's pool, and the connections borrowed from it between statements.
#[derive(Clone)]
pub(crate) struct Connections {
    pool: PgPool,
    kept: Arc<Mutex<Vec<Kept>>>,
    keep: usize,
    /// One permit per connection of the pool: statements take turns first come, first
    /// served, whether their connection is a kept one or sqlx's. (Without it, one that
    /// finds a kept connection passes those queued in sqlx's pool: under load the p99
    /// doubled.)
    turns: Arc<tokio::sync::Semaphore>,
}

/// A connection whose last statement completed.
struct Kept {
    conn: PoolConnection<Postgres>,
    /// When it was taken from sqlx's pool.
    taken: Instant,
    /// When its last statement completed.
    used: Instant,
}

/// A connection lent to one statement.
struct Lent {
    conn: PoolConnection<Postgres>,
    taken: Instant,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("pool", &self.pool)
            .field("kept", &self.kept().len())
            .field("keep", &self.keep)
            .field("free_turns", &self.turns.available_permits())
            .finish()
    }
}

impl Connections {
    /// Over `pool`, keeping at most half its connections between statements (none when
    /// it has only one, which transactions need). Inside a Tokio runtime a task gives
    /// back, while these connections live, each kept connection idle for longer than
    /// [`TRUST_RECENT_USE`]: an idle process holds none, and other users of a shared
    /// pool wait for them at most about that long.
    pub(crate) fn new(pool: PgPool) -> Self {
        let size = usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX);
        let connections = Self {
            pool,
            kept: Arc::default(),
            keep: size / 2,
            turns: Arc::new(tokio::sync::Semaphore::new(
                size.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
        };
        connections.give_back_idle_while_alive();
        connections
    }

    fn give_back_idle_while_alive(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let kept = Arc::downgrade(&self.kept);
        runtime.spawn(async move {
            let mut every = tokio::time::interval(TRUST_RECENT_USE / 2);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(kept) = kept.upgrade() else { return };
                let idle: Vec<Kept> = {
                    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    let (idle, busy) = std::mem::take(&mut *kept)
                        .into_iter()
                        .partition(|k| k.used.elapsed() > TRUST_RECENT_USE);
                    *kept = busy;
                    idle
                };
                drop(idle); // back to sqlx, outside the lock
            }
        });
    }

    /// sqlx's pool.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction on a connection of sqlx's pool.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A transaction begun with `statement` on a connection of sqlx's pool.
    pub(crate) async fn begin_with(
        &self,
        statement: &'static str,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin_with(statement).await
    }

    /// How many connections are kept right now.
    #[cfg(all(test, has_database_url))]
    pub(crate) fn kept_now(&self) -> usize {
        self.kept().len()
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used kept connection, or one from sqlx's pool. A kept
    /// connection idle for longer than [`TRUST_RECENT_USE`], or taken from sqlx more
    /// than [`KEEP_FOR`] ago, goes back to sqlx instead (which checks it).
    async fn lend(&self) -> Result<Lent, sqlx::Error> {
        // The wait for a turn and for sqlx's connection share sqlx's acquire timeout.
        let deadline = tokio::time::Instant::now() + self.pool.options().get_acquire_timeout();
        let turn = tokio::time::timeout_at(deadline, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let Some(kept) = self.kept().pop() else { break };
            if kept.taken.elapsed() > KEEP_FOR || kept.used.elapsed() > TRUST_RECENT_USE {
                continue; // dropped: back to sqlx
            }
            return Ok(Lent {
                conn: kept.conn,
                taken: kept.taken,
                _turn: turn,
            });
        }
        let conn = tokio::time::timeout_at(deadline, self.pool.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Lent {
            conn,
            taken: Instant::now(),
            _turn: turn,
        })
    }

    /// Takes back a connection whose statement completed, unless enough are kept (then
    /// it goes back to sqlx).
    fn keep(&self, lent: Lent) {
        let mut kept = self.kept();
        if kept.len() < self.keep && lent.taken.elapsed() <= KEEP_FOR {
            kept.push(Kept {
                conn: lent.conn,
                taken: lent.taken,
                used: Instant::now(),
            });
        }
    }
}

impl<'c> Executor<'c> for &'c Connections {
    type Database = Postgres;

    /// The statement's results, read whole before they are yielded (every caller in
    /// this crate collects them anyway), so the connection is free once they are.
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let all = async move {
            let mut lent = self.lend().await?;
            let all: Vec<_> = (&mut *lent.conn).fetch_many(query).try_collect().await?;
            self.keep(lent);
            Ok::<_, sqlx::Error>(all)
        };
        futures::stream::once(all)
            .map_ok(|all| futures::stream::iter(all.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(async move {
            let mut lent = self.lend().await?;
            let row = (&mut *lent.conn).fetch_optional(query).await?;
            self.keep(lent);
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        (&self.pool).describe(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_pool_is_kept_and_none_of_a_single_connection() {
        let lazy = |n| {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(n)
                .connect_lazy("postgres://nobody@127.0.0.1:1/none")
                .expect("a lazy pool")
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            assert_eq!(Connections::new(lazy(1)).keep, 0);
            assert_eq!(Connections::new(lazy(4)).keep, 2);
            assert_eq!(Connections::new(lazy(10)).keep, 5);
        });
    }
}

/// Against a server (each test gets a fresh database; `DATABASE_URL` at build time).
#[cfg(all(test, has_database_url))]
mod on_a_server {
    use super::*;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    async fn connections(options: PgConnectOptions, size: u32) -> Connections {
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .expect("a pool");
        Connections::new(pool)
    }

    async fn backend(c: &Connections) -> i32 {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(c)
            .await
            .expect("a pid")
    }

    #[sqlx::test(migrations = false)]
    async fn statements_one_after_another_share_one_kept_connection(
        _: PgPoolOptions,
        options: PgConnectOptions,
    ) {
        let c = connections(options, 4).await;
        let first = backend(&c).await;
        assert_eq!(c.kept_now(), 1, "kept after it completed");
        for _ in 0..20 {
            assert_eq!(backend(&c).await, first, "the same connection again");
        }
        let rows: Vec<i32> = sqlx::query_scalar("SELECT generate_series(1, 3)")
            .fetch_all(&c)
            .await
            .expect("rows");
        assert_eq!(rows, [1, 2, 3], "every row, in order");
        assert_eq!(c.kept_now(), 1);
        // Two at once: one kept, the other from sqlx, then both kept (half of four).
        let (a, b) = tokio::join!(
            sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid() FROM pg_sleep(0.05)")
                .fetch_one(&c),
            sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid() FROM pg_sleep(0.05)")
                .fetch_one(&c),
        );
        assert_ne!(a.expect("a"), b.expect("b"), "two connections at once");
        assert_eq!(c.kept_now(), 2);
    }

    #[sqlx::test(migrations = false)]
    async fn a_failed_or_abandoned_statement_gives_its_connection_back_to_sqlx(
        _: PgPoolOptions,
        options: PgConnectOptions,
    ) {
        let c = connections(options, 4).await;
        let failed = sqlx::query_scalar::<_, i32>("SELECT 1 / 0")
            .fetch_one(&c)
            .await;
        assert!(failed.is_err(), "division by zero");
        assert_eq!(c.kept_now(), 0, "an error leaves nothing kept");

        // Dropped while PostgreSQL still works on it: the connection goes back to sqlx,
        // never to the next statement here, which answers its own question.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.5)").fetch_one(&c),
        )
        .await;
        assert!(abandoned.is_err(), "timed out");
        assert_eq!(c.kept_now(), 0);
        let answer: i32 = sqlx::query_scalar("SELECT 42")
            .fetch_one(&c)
            .await
            .expect("an answer");
        assert_eq!(answer, 42);
        assert_eq!(c.kept_now(), 1);
    }

    #[sqlx::test(migrations = false)]
    async fn an_idle_connection_goes_back_and_one_the_server_closed_is_replaced(
        admin: PgPoolOptions,
        options: PgConnectOptions,
    ) {
        let c = connections(options.clone(), 4).await;
        let first = backend(&c).await;
        let admin = admin.connect_with(options).await.expect("admin");
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(first)
            .fetch_one(&admin)
            .await
            .expect("terminate");
        assert!(killed);
        tokio::time::sleep(TRUST_RECENT_USE + Duration::from_millis(400)).await;
        assert_eq!(c.kept_now(), 0, "given back while idle");
        let next = backend(&c).await;
        assert_ne!(next, first, "pinged, found dead, replaced");
    }

    #[sqlx::test(migrations = false)]
    async fn a_statement_waits_its_turn_no_longer_than_the_acquire_timeout(
        _: PgPoolOptions,
        options: PgConnectOptions,
    ) {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(200))
            .connect_with(options)
            .await
            .expect("a pool");
        let c = Connections::new(pool);
        let slow = sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_sleep(1)").fetch_one(&c);
        let late = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let started = Instant::now();
            let r = sqlx::query_scalar::<_, i32>("SELECT 2").fetch_one(&c).await;
            (r, started.elapsed())
        };
        let (slow, (late, waited)) = tokio::join!(slow, late);
        assert_eq!(slow.expect("the slow one"), 1);
        assert!(matches!(late, Err(sqlx::Error::PoolTimedOut)), "{late:?}");
        assert!(waited < Duration::from_millis(600), "{waited:?}");
    }

    #[sqlx::test(migrations = false)]
    async fn transactions_never_wait_on_kept_connections(
        _: PgPoolOptions,
        options: PgConnectOptions,
    ) {
        let c = connections(options, 2).await;
        // Both connections busy at once, then done: only one stays here.
        let sleep = "SELECT pg_backend_pid() FROM pg_sleep(0.05)";
        let (a, b) = tokio::join!(
            sqlx::query_scalar::<_, i32>(sleep).fetch_one(&c),
            sqlx::query_scalar::<_, i32>(sleep).fetch_one(&c),
        );
        assert_ne!(a.expect("a"), b.expect("b"));
        assert_eq!(c.kept_now(), 1, "half of two");
        let begun = tokio::time::timeout(Duration::from_secs(1), c.begin()).await;
        let mut tx = begun.expect("not waiting").expect("a transaction");
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *tx)
            .await
            .expect("in the transaction");
        assert_eq!(one, 1);
        // A statement meanwhile takes the kept connection.
        let other = tokio::time::timeout(Duration::from_secs(1), backend(&c)).await;
        assert!(other.is_ok(), "the kept connection served it");
        tx.commit().await.expect("commit");
    }
}
