// Connections to the cluster database: a pool or one dedicated connection, the database clock,
// and the bounded retry (with backoff) of work hit by deadlocks, lock waits or a lost connection.

use crate::capabilities::Capabilities;
use crate::config::{redact_url, ClusterConfig, ConnectionMode};
use crate::error::{is_connection_error, is_transient_lock_error, Error, Op, Result};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Connection, Executor, MySql};
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Statements every new connection runs: short lock waits (so no caller blocks for long) and
/// READ COMMITTED writes (no gap locks between publishers of unrelated names).
const SESSION_SETUP: [&str; 2] = [
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION innodb_lock_wait_timeout = 10",
];

/// Where connections come from.
enum Source {
    Pool(MySqlPool),
    Dedicated(Arc<Mutex<Option<MySqlConnection>>>),
}

/// Where a connection in use came from.
enum Held {
    Pooled(PoolConnection<MySql>),
    Dedicated(OwnedMutexGuard<Option<MySqlConnection>>),
}

/// A connection in use; derefs to the driver connection. It tracks transactions it opened: one
/// still open when the connection is dropped (an error path, a cancelled request) makes the
/// connection be closed, so no lock can outlive the work that took it.
pub(crate) struct Conn {
    held: Held,
    in_transaction: bool,
}

impl Deref for Conn {
    type Target = MySqlConnection;
    fn deref(&self) -> &MySqlConnection {
        match &self.held {
            Held::Pooled(c) => c,
            Held::Dedicated(g) => g.as_ref().expect("dedicated connection is opened before use"),
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut MySqlConnection {
        match &mut self.held {
            Held::Pooled(c) => c,
            Held::Dedicated(g) => g.as_mut().expect("dedicated connection is opened before use"),
        }
    }
}

impl Conn {
    fn new(held: Held) -> Conn {
        Conn {
            held,
            in_transaction: false,
        }
    }

    pub(crate) async fn begin(&mut self) -> std::result::Result<(), sqlx::Error> {
        self.execute("BEGIN").await?;
        self.in_transaction = true;
        Ok(())
    }

    pub(crate) async fn commit(&mut self) -> std::result::Result<(), sqlx::Error> {
        self.execute("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    /// Rolls back a transaction left open by a failed attempt; a connection that cannot even do
    /// that stays marked, and is closed when dropped.
    async fn roll_back_if_open(&mut self) {
        if self.in_transaction && self.execute("ROLLBACK").await.is_ok() {
            self.in_transaction = false;
        }
    }

    /// Closes the connection instead of reusing it.
    pub(crate) fn discard(mut self) {
        self.close_now();
    }

    fn close_now(&mut self) {
        match &mut self.held {
            Held::Pooled(c) => c.close_on_drop(),
            Held::Dedicated(g) => **g = None,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.in_transaction {
            self.close_now();
        }
    }
}

/// An error inside one attempt: a driver error (maybe retryable) or a final domain error.
pub(crate) enum AttemptError {
    Sql(sqlx::Error),
    Final(Error),
}

impl From<sqlx::Error> for AttemptError {
    fn from(e: sqlx::Error) -> Self {
        AttemptError::Sql(e)
    }
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> Self {
        AttemptError::Final(e)
    }
}

pub(crate) type Attempt<T> = std::result::Result<T, AttemptError>;

pub(crate) struct Db {
    main: Source,
    /// A second connection for re-checks, never inside a transaction of `main`.
    recheck: Source,
    options: MySqlConnectOptions,
    clock_offset_ms: Arc<AtomicI64>,
    /// Limits and optional tables of the server, read on the first connection.
    pub(crate) capabilities: Capabilities,
    max_attempts: u32,
    backoff: Duration,
    connect_timeout: Duration,
}

impl Db {
    pub(crate) async fn connect(config: &ClusterConfig) -> Result<Db> {
        let url = redact_url(&config.url);
        let options = MySqlConnectOptions::from_str(&config.url)
            .map_err(|source| Error::Connect {
                url: url.clone(),
                source,
            })?
            .log_statements(tracing::log::LevelFilter::Trace);
        let clock_offset_ms = Arc::new(AtomicI64::new(0));
        // A direct connection first: a pool would hide the real cause behind a timeout.
        let mut first = open(&options, &clock_offset_ms, config.connect_timeout)
            .await
            .map_err(|source| Error::Connect {
                url: url.clone(),
                source,
            })?;
        let capabilities = Capabilities::default();
        capabilities.detect(&mut first).await.map_err(|source| Error::Connect {
            url: url.clone(),
            source,
        })?;
        let (main, recheck) = match config.mode {
            ConnectionMode::Dedicated => (
                Source::Dedicated(Arc::new(Mutex::new(Some(first)))),
                Source::Dedicated(Arc::new(Mutex::new(None))),
            ),
            ConnectionMode::Pool { max_connections } => {
                drop(first);
                let pool = pool(&options, &clock_offset_ms, config, max_connections);
                (Source::Pool(pool.clone()), Source::Pool(pool))
            }
        };
        Ok(Db {
            main,
            recheck,
            options,
            clock_offset_ms,
            capabilities,
            max_attempts: config.max_attempts,
            backoff: config.retry_backoff,
            connect_timeout: config.connect_timeout,
        })
    }

    pub(crate) async fn acquire(&self) -> std::result::Result<Conn, sqlx::Error> {
        self.acquire_from(&self.main).await
    }

    /// A connection distinct from any the caller may be holding a transaction on.
    pub(crate) async fn acquire_recheck(&self) -> std::result::Result<Conn, sqlx::Error> {
        self.acquire_from(&self.recheck).await
    }

    async fn acquire_from(&self, source: &Source) -> std::result::Result<Conn, sqlx::Error> {
        match source {
            Source::Pool(pool) => Ok(Conn::new(Held::Pooled(pool.acquire().await?))),
            Source::Dedicated(slot) => {
                let mut guard = slot.clone().lock_owned().await;
                if guard.is_none() {
                    *guard = Some(open(&self.options, &self.clock_offset_ms, self.connect_timeout).await?);
                }
                Ok(Conn::new(Held::Dedicated(guard)))
            }
        }
    }

    /// Closes every connection politely (COM_QUIT); a later call opens new ones (dedicated
    /// mode) or fails with a closed pool (pool mode).
    pub(crate) async fn close(&self) {
        for source in [&self.main, &self.recheck] {
            match source {
                Source::Pool(pool) => pool.close().await,
                Source::Dedicated(slot) => {
                    if let Some(conn) = slot.lock().await.take() {
                        let _ = conn.close().await;
                    }
                }
            }
        }
    }

    /// The database server's clock, in Unix seconds (corrected by the offset measured when a
    /// connection opened), so every web server stamps files with the same clock.
    pub(crate) fn now(&self) -> i64 {
        let local_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (local_ms + self.clock_offset_ms.load(Ordering::Relaxed)).div_euclid(1000)
    }

    /// Runs `attempt` until it succeeds, retrying deadlocks, lock-wait timeouts and lost
    /// connections with exponential backoff, at most `max_attempts` times.
    pub(crate) async fn retrying<T, F, Fut>(&self, op: Op, name: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = (Option<Conn>, Attempt<T>)>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = match self.acquire().await {
                Ok(conn) => attempt(conn).await,
                Err(e) => (None, Err(AttemptError::Sql(e))),
            };
            let (conn, error) = match outcome {
                (_, Ok(value)) => return Ok(value),
                (conn, Err(error)) => (conn, error),
            };
            let error = match (conn, error) {
                (Some(mut conn), AttemptError::Final(e)) => {
                    conn.roll_back_if_open().await;
                    return Err(e);
                }
                (_, AttemptError::Final(e)) => return Err(e),
                (Some(conn), AttemptError::Sql(e)) if is_connection_error(&e) => {
                    conn.discard();
                    e
                }
                (Some(mut conn), AttemptError::Sql(e)) => {
                    conn.roll_back_if_open().await;
                    e
                }
                (None, AttemptError::Sql(e)) => e,
            };
            let retryable = is_transient_lock_error(&error) || is_connection_error(&error);
            if !retryable || tries >= self.max_attempts {
                return Err(Error::db(op, name, error));
            }
            tracing::debug!(%op, name, tries, %error, "retrying");
            tokio::time::sleep(backoff(self.backoff, tries)).await;
        }
    }
}

/// Exponential backoff with jitter from the clock's nanoseconds, capped at one second.
fn backoff(base: Duration, tries: u32) -> Duration {
    let exp = base.saturating_mul(1 << tries.min(8));
    let jitter_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos()) as u64;
    let jitter = Duration::from_nanos(jitter_ns % (exp.as_nanos() as u64 + 1));
    (exp / 2 + jitter / 2).min(Duration::from_secs(1))
}

async fn open(
    options: &MySqlConnectOptions,
    clock_offset_ms: &AtomicI64,
    timeout: Duration,
) -> std::result::Result<MySqlConnection, sqlx::Error> {
    let connecting = MySqlConnection::connect_with(options);
    let mut conn = tokio::time::timeout(timeout, connecting).await.map_err(|_| {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connection timed out",
        ))
    })??;
    set_up_session(&mut conn, clock_offset_ms).await?;
    Ok(conn)
}

fn pool(options: &MySqlConnectOptions, clock: &Arc<AtomicI64>, config: &ClusterConfig, max: u32) -> MySqlPool {
    let clock = clock.clone();
    MySqlPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(config.connect_timeout)
        .after_connect(move |conn, _meta| {
            let clock = clock.clone();
            Box::pin(async move { set_up_session(conn, &clock).await })
        })
        .connect_lazy_with(options.clone())
}

async fn set_up_session(
    conn: &mut MySqlConnection,
    clock_offset_ms: &AtomicI64,
) -> std::result::Result<(), sqlx::Error> {
    for statement in SESSION_SETUP {
        conn.execute(statement).await?;
    }
    let before = SystemTime::now();
    let (db_ms,): (i64,) = sqlx::query_as("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")
        .fetch_one(&mut *conn)
        .await?;
    let local_ms = before.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    clock_offset_ms.store(db_ms - local_ms, Ordering::Relaxed);
    Ok(())
}

/// Helper for attempts: returns the connection with the result so a broken one can be dropped.
pub(crate) fn done<T>(conn: Conn, result: Attempt<T>) -> (Option<Conn>, Attempt<T>) {
    (Some(conn), result)
}
