// Connections to the cluster database: a pool or one dedicated connection (per host of the
// URL, see topology.rs), the database clock, and the bounded retry (with backoff) of work hit
// by deadlocks, certification conflicts, lock waits, a node not ready or a lost connection.

use crate::capabilities::Capabilities;
use crate::config::{redact_url, ClusterConfig, ConnectionMode};
use crate::error::{is_connection_error, Error, Op, Result};
use crate::pool_waits::{PoolWaitCounters, PoolWaits};
use crate::replica::Replicas;
use crate::retry::{self, Transient};
use crate::topology::{self, HostChoice};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Connection, Executor, MySql};
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// Statements every new connection runs: short lock waits (so no caller blocks for long) and
/// READ COMMITTED writes (no gap locks between publishers of unrelated names).
const SESSION_SETUP: [&str; 2] = [
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION innodb_lock_wait_timeout = 10",
];

/// Where connections come from: one pool per host (each behind its gate, see [`PoolGate`]), or
/// one dedicated connection (to whichever host answered).
enum Source {
    Pool(Vec<(MySqlPool, Arc<PoolGate>)>),
    Dedicated(Arc<Mutex<Option<(usize, MySqlConnection)>>>),
}

/// The waiting room of one pool: as many permits as the pool has connections, so a caller
/// waits here, for `pool_wait_timeout`, while every connection is in use, and the pool's own
/// acquire (bounded by `connect_timeout`) only opens connections. The permit is held with the
/// connection (the connection's ping on release may keep the next caller waiting in the pool
/// for one round trip).
struct PoolGate {
    permits: Arc<Semaphore>,
}

/// Where a connection in use came from.
enum Held {
    Pooled(PoolConnection<MySql>),
    Dedicated(OwnedMutexGuard<Option<(usize, MySqlConnection)>>),
}

/// A connection in use; derefs to the driver connection. It tracks transactions it opened: one
/// still open when the connection is dropped (an error path, a cancelled request) makes the
/// connection be closed, so no lock can outlive the work that took it.
pub(crate) struct Conn {
    held: Held,
    /// Index of the host it is connected to.
    host: usize,
    in_transaction: bool,
    /// The connection was lost during COMMIT: the outcome is unknown.
    commit_lost: bool,
    /// Its place in the pool's gate, given back with the connection.
    _gate: Option<OwnedSemaphorePermit>,
}

impl Deref for Conn {
    type Target = MySqlConnection;
    fn deref(&self) -> &MySqlConnection {
        match &self.held {
            Held::Pooled(c) => c,
            Held::Dedicated(g) => &g.as_ref().expect("dedicated connection is opened before use").1,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut MySqlConnection {
        match &mut self.held {
            Held::Pooled(c) => c,
            Held::Dedicated(g) => &mut g.as_mut().expect("dedicated connection is opened before use").1,
        }
    }
}

impl Conn {
    fn new(held: Held, host: usize) -> Conn {
        Conn {
            held,
            host,
            in_transaction: false,
            commit_lost: false,
            _gate: None,
        }
    }

    fn holding(mut self, permit: OwnedSemaphorePermit) -> Conn {
        self._gate = Some(permit);
        self
    }

    pub(crate) async fn begin(&mut self) -> std::result::Result<(), sqlx::Error> {
        self.execute("BEGIN").await?;
        self.in_transaction = true;
        Ok(())
    }

    /// Commits. A connection lost during COMMIT leaves the outcome unknown (the server may have
    /// committed, and on Galera replicated, before the reply was lost): the connection
    /// remembers it, and `retrying` reports that instead of repeating the transaction.
    pub(crate) async fn commit(&mut self) -> std::result::Result<(), sqlx::Error> {
        match self.execute("COMMIT").await {
            Ok(_) => {
                self.in_transaction = false;
                Ok(())
            }
            Err(e) => {
                self.commit_lost = is_connection_error(&e);
                Err(e)
            }
        }
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

/// One server of the URL.
struct Host {
    options: MySqlConnectOptions,
    /// The single-host URL without its password: for messages and the per-host backoff.
    label: String,
}

pub(crate) struct Db {
    main: Source,
    /// A second connection for re-checks, never inside a transaction of `main`.
    recheck: Source,
    hosts: Vec<Host>,
    choice: HostChoice,
    session: Arc<SessionState>,
    replicas: Replicas,
    /// Limits and optional tables of the server, read on the first connection.
    pub(crate) capabilities: Capabilities,
    max_attempts: u32,
    backoff: Duration,
    retry_budget: Duration,
    connect_timeout: Duration,
    pool_wait_timeout: Duration,
    pool_waits: PoolWaitCounters,
}

/// What sessions learn when they open, shared by every connection of a handle.
struct SessionState {
    clock_offset_ms: AtomicI64,
    /// A host turned out to be a Galera node (sessions wait for causality; conflicts may
    /// surface at COMMIT and get the longer retry budget).
    galera: AtomicBool,
}

impl Db {
    pub(crate) async fn connect(config: &ClusterConfig) -> Result<Db> {
        let hosts = topology::split_hosts(&config.url)
            .into_iter()
            .map(|url| {
                let label = redact_url(&url);
                MySqlConnectOptions::from_str(&url)
                    .map(|options| Host {
                        options: options.log_statements(tracing::log::LevelFilter::Trace),
                        label: label.clone(),
                    })
                    .map_err(|source| Error::Connect { url: label, source })
            })
            .collect::<Result<Vec<Host>>>()?;
        let choice = HostChoice::new(hosts.iter().map(|h| h.label.clone()).collect());
        let session = Arc::new(SessionState {
            clock_offset_ms: AtomicI64::new(0),
            galera: AtomicBool::new(false),
        });
        // A direct connection first: a pool would hide the real cause behind a timeout.
        let (host, mut first) = open_any(&hosts, &choice, &session, config.connect_timeout)
            .await
            .map_err(|source| Error::Connect {
                url: redact_url(&config.url),
                source,
            })?;
        let capabilities = Capabilities::default();
        capabilities
            .detect(&mut first, &config.layout.meta_tables())
            .await
            .map_err(|source| Error::Connect {
                url: redact_url(&config.url),
                source,
            })?;
        let replica_connections = match config.mode {
            ConnectionMode::Dedicated => 1,
            ConnectionMode::Pool { max_connections } => max_connections,
        };
        let replicas = Replicas::new(
            &config.read_replicas,
            config.max_replica_lag,
            config.connect_timeout,
            replica_connections,
        )
        .map_err(|(url, source)| Error::Connect { url, source })?;
        let (main, recheck) = match config.mode {
            ConnectionMode::Dedicated => (
                Source::Dedicated(Arc::new(Mutex::new(Some((host, first))))),
                Source::Dedicated(Arc::new(Mutex::new(None))),
            ),
            ConnectionMode::Pool { max_connections } => {
                drop(first);
                let pools: Vec<(MySqlPool, Arc<PoolGate>)> = hosts
                    .iter()
                    .map(|h| {
                        let gate = PoolGate {
                            permits: Arc::new(Semaphore::new(max_connections as usize)),
                        };
                        (pool(&h.options, &session, config, max_connections), Arc::new(gate))
                    })
                    .collect();
                (Source::Pool(pools.clone()), Source::Pool(pools))
            }
        };
        Ok(Db {
            main,
            recheck,
            hosts,
            choice,
            session,
            replicas,
            capabilities,
            max_attempts: config.max_attempts,
            backoff: config.retry_backoff,
            retry_budget: config.retry_budget,
            connect_timeout: config.connect_timeout,
            pool_wait_timeout: config.pool_wait_timeout,
            pool_waits: PoolWaitCounters::default(),
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
            Source::Pool(pools) => {
                if let Some(refusal) = all_hosts_cooling(&self.choice) {
                    return Err(refusal);
                }
                let mut last = None;
                for i in self.choice.candidates() {
                    let (pool, gate) = &pools[i];
                    let started = Instant::now();
                    let permit = match tokio::time::timeout(
                        self.pool_wait_timeout,
                        gate.permits.clone().acquire_owned(),
                    )
                    .await
                    {
                        Ok(Ok(permit)) => permit,
                        Ok(Err(_closed)) => return Err(sqlx::Error::PoolClosed),
                        // Every connection in use for the whole wait: the pool is busy, the host fine.
                        Err(_elapsed) => {
                            self.pool_waits.record(started.elapsed(), true);
                            return Err(sqlx::Error::PoolTimedOut);
                        }
                    };
                    match pool.acquire().await {
                        Ok(conn) => {
                            self.pool_waits.record(started.elapsed(), false);
                            self.choice.succeeded(i);
                            return Ok(Conn::new(Held::Pooled(conn), i).holding(permit));
                        }
                        // Every connection open and in use (one being given back): busy, not down.
                        Err(e @ sqlx::Error::PoolTimedOut) if pool.size() >= pool.options().get_max_connections() => {
                            self.pool_waits.record(started.elapsed(), true);
                            return Err(e);
                        }
                        Err(e) => {
                            self.choice.failed(i, &e.to_string());
                            last = Some(e);
                        }
                    }
                }
                Err(last.unwrap_or(sqlx::Error::PoolClosed))
            }
            Source::Dedicated(slot) => {
                let mut guard = slot.clone().lock_owned().await;
                if guard.is_none() {
                    *guard = Some(open_any(&self.hosts, &self.choice, &self.session, self.connect_timeout).await?);
                }
                let host = guard.as_ref().map_or(0, |(host, _)| *host);
                Ok(Conn::new(Held::Dedicated(guard), host))
            }
        }
    }

    /// Closes every connection politely (COM_QUIT); a later call opens new ones (dedicated
    /// mode) or fails with a closed pool (pool mode).
    pub(crate) async fn close(&self) {
        for source in [&self.main, &self.recheck] {
            match source {
                Source::Pool(pools) => {
                    for (pool, _) in pools {
                        pool.close().await;
                    }
                }
                Source::Dedicated(slot) => {
                    if let Some((_, conn)) = slot.lock().await.take() {
                        let _ = conn.close().await;
                    }
                }
            }
        }
    }

    /// The waits for a pooled connection so far (none in dedicated mode).
    pub(crate) fn pool_waits(&self) -> PoolWaits {
        self.pool_waits.snapshot()
    }

    /// The database server's clock, in Unix seconds (corrected by the offset measured when a
    /// connection opened), so every web server stamps files with the same clock.
    pub(crate) fn now(&self) -> i64 {
        let local_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (local_ms + self.session.clock_offset_ms.load(Ordering::Relaxed)).div_euclid(1000)
    }

    /// A connection to a read replica that is up and within the lag bound, if any.
    pub(crate) async fn acquire_replica(&self) -> Option<Conn> {
        let conn = self.replicas.acquire().await?;
        Some(Conn::new(Held::Pooled(conn), 0))
    }

    /// Records that a read on a replica connection failed (it is skipped for a while).
    pub(crate) fn replica_failed(&self, conn: Conn, error: &str) {
        self.replicas.failed(error);
        conn.discard();
    }

    /// A plain read: tried once on a read replica when one is usable; when the replica has
    /// nothing (`found` is false: it may lag behind the primary) or fails, the read runs on
    /// the primary (with the retries of [`Db::retrying`]) before anything is answered.
    pub(crate) async fn reading<T, F, Fut>(
        &self,
        op: Op,
        name: &str,
        found: impl Fn(&T) -> bool,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = (Option<Conn>, Attempt<T>)>,
    {
        if let Some(conn) = self.acquire_replica().await {
            match attempt(conn).await {
                (_, Ok(value)) if found(&value) => return Ok(value),
                (Some(conn), Err(AttemptError::Sql(e))) => self.replica_failed(conn, &e.to_string()),
                _ => {}
            }
        }
        self.retrying(op, name, attempt).await
    }

    /// True once a connection found a Galera node.
    pub(crate) fn is_galera(&self) -> bool {
        self.session.galera.load(Ordering::Relaxed)
    }

    /// Runs `attempt` until it succeeds, retrying the whole transaction on deadlocks,
    /// certification conflicts, lock-wait timeouts, nodes not ready and lost connections, with
    /// jittered exponential backoff: at most `max_attempts` times, or, on Galera and after a
    /// host failure with other hosts to try, until `retry_budget` has passed since the first
    /// attempt (whichever allows more). A host failure moves the next attempt to the next host of the URL. A connection
    /// lost during COMMIT is reported as an unknown outcome, never retried.
    pub(crate) async fn retrying<T, F, Fut>(&self, op: Op, name: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = (Option<Conn>, Attempt<T>)>,
    {
        let started = Instant::now();
        let mut tries = 0;
        let mut host_failed = false;
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
            let host = conn.as_ref().map(|c| c.host);
            let error = match (conn, error) {
                (Some(mut conn), AttemptError::Final(e)) => {
                    conn.roll_back_if_open().await;
                    return Err(e);
                }
                (_, AttemptError::Final(e)) => return Err(e),
                (Some(conn), AttemptError::Sql(source)) if conn.commit_lost => {
                    self.choice.left(conn.host);
                    conn.discard();
                    return Err(Error::OutcomeUnknown {
                        op,
                        name: name.to_owned(),
                        source,
                    });
                }
                (Some(conn), AttemptError::Sql(e)) if retry::classify(&e).is_some_and(Transient::is_host_failure) => {
                    conn.discard();
                    e
                }
                (Some(mut conn), AttemptError::Sql(e)) => {
                    conn.roll_back_if_open().await;
                    e
                }
                (None, AttemptError::Sql(e)) => e,
            };
            let Some(kind) = retry::classify(&error) else {
                return Err(Error::db(op, name, error));
            };
            if kind.is_host_failure() {
                host_failed = true;
                if let Some(host) = host {
                    self.choice.left(host);
                }
            }
            let wait = retry::backoff(self.backoff, tries, kind);
            // A single plain server that is down gets `max_attempts` and fails fast; a cluster
            // (Galera, or several hosts to fail over to) gets the time budget.
            let budgeted = self.is_galera() || (host_failed && self.hosts.len() > 1);
            let within_budget = budgeted && started.elapsed() + wait < self.retry_budget;
            if tries >= self.max_attempts && !within_budget {
                return Err(Error::db(op, name, error));
            }
            tracing::debug!(%op, name, tries, ?kind, %error, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// The error to return at once when every host failed within its backoff: no connect is
/// attempted, so a caller retrying in a loop cannot hammer a server that is down or starting.
fn all_hosts_cooling(choice: &HostChoice) -> Option<sqlx::Error> {
    choice.all_cooling().map(|(wait, last_error)| {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!(
                "no database host reachable (last error: {last_error}); next attempt in {} ms",
                wait.as_millis()
            ),
        ))
    })
}

/// Opens a connection to the first host of the list that accepts one, recording failures.
async fn open_any(
    hosts: &[Host],
    choice: &HostChoice,
    session: &SessionState,
    timeout: Duration,
) -> std::result::Result<(usize, MySqlConnection), sqlx::Error> {
    if let Some(refusal) = all_hosts_cooling(choice) {
        return Err(refusal);
    }
    let mut errors = Vec::new();
    let mut last = None;
    for i in choice.candidates() {
        match open(&hosts[i].options, session, timeout).await {
            Ok(conn) => {
                choice.succeeded(i);
                return Ok((i, conn));
            }
            Err(e) => {
                choice.failed(i, &e.to_string());
                errors.push(format!("{}: {e}", hosts[i].label));
                last = Some(e);
            }
        }
    }
    match last {
        Some(e) if hosts.len() == 1 => Err(e),
        Some(e) if is_connection_error(&e) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!(
                "no host of {} accepted a connection: {}",
                hosts.len(),
                errors.join("; ")
            ),
        ))),
        Some(e) => Err(e),
        None => Err(sqlx::Error::PoolClosed),
    }
}

async fn open(
    options: &MySqlConnectOptions,
    session: &SessionState,
    timeout: Duration,
) -> std::result::Result<MySqlConnection, sqlx::Error> {
    let connecting = MySqlConnection::connect_with(options);
    let mut conn = tokio::time::timeout(timeout, connecting).await.map_err(|_| {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connection timed out",
        ))
    })??;
    set_up_session(&mut conn, session).await?;
    Ok(conn)
}

/// A pooled connection idle this long is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(10);

fn pool(options: &MySqlConnectOptions, session: &Arc<SessionState>, config: &ClusterConfig, max: u32) -> MySqlPool {
    let session = session.clone();
    MySqlPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(config.connect_timeout)
        // sqlx pings every connection as it goes back to the pool; a ping before each use
        // as well would cost every statement a second round trip. Only a connection idle long
        // enough for the server to have dropped it (wait_timeout, a restart) is pinged first;
        // one lost anyway is retried on another (`retrying`).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            let session = session.clone();
            Box::pin(async move { set_up_session(conn, &session).await })
        })
        .connect_lazy_with(options.clone())
}

async fn set_up_session(conn: &mut MySqlConnection, session: &SessionState) -> std::result::Result<(), sqlx::Error> {
    for statement in SESSION_SETUP {
        conn.execute(statement).await?;
    }
    if topology::set_up_galera_session(conn).await? {
        session.galera.store(true, Ordering::Relaxed);
    }
    // After the Galera setup: on a node outside the primary component this fails (1047), so
    // the connection is not handed out.
    let before = SystemTime::now();
    let (db_ms,): (i64,) = sqlx::query_as("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")
        .fetch_one(&mut *conn)
        .await?;
    let local_ms = before.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    session.clock_offset_ms.store(db_ms - local_ms, Ordering::Relaxed);
    Ok(())
}

/// Helper for attempts: returns the connection with the result so a broken one can be dropped.
pub(crate) fn done<T>(conn: Conn, result: Attempt<T>) -> (Option<Conn>, Attempt<T>) {
    (Some(conn), result)
}
