//! Read replicas (asynchronous MariaDB/MySQL replicas of the primary): which one a read may
//! use, skipping one that is down, not replicating, or lagging beyond the configured bound.
//! Only plain reads come here; every write, lock and re-check stays on the primary.

use crate::retry::random_fraction;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, MySql, Row};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often each replica's lag is measured (one `SHOW SLAVE STATUS` per replica and handle).
const LAG_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a replica that failed is left alone.
const FAILURE_PAUSE: Duration = Duration::from_secs(5);
/// The longest a read waits for a replica connection before reading the primary instead.
const REPLICA_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The replicas of one handle.
pub(crate) struct Replicas {
    replicas: Vec<Replica>,
    max_lag: Duration,
}

struct Replica {
    label: String,
    pool: MySqlPool,
    state: Mutex<State>,
}

#[derive(Clone, Copy)]
struct State {
    /// When the lag was last measured (or the replica last failed).
    checked_at: Option<Instant>,
    usable: bool,
}

impl Replicas {
    /// Pools (opened lazily) for `urls`; `Err` names a URL that does not parse.
    pub(crate) fn new(
        urls: &[String],
        max_lag: Duration,
        connect_timeout: Duration,
        max_connections: u32,
    ) -> Result<Replicas, (String, sqlx::Error)> {
        let replicas = urls
            .iter()
            .map(|url| {
                let label = crate::config::redact_url(url);
                let options = MySqlConnectOptions::from_str(url)
                    .map_err(|e| (label.clone(), e))?
                    .log_statements(tracing::log::LevelFilter::Trace);
                let pool = MySqlPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(connect_timeout.min(REPLICA_CONNECT_TIMEOUT))
                    .connect_lazy_with(options);
                Ok(Replica {
                    label,
                    pool,
                    state: Mutex::new(State {
                        checked_at: None,
                        usable: true,
                    }),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Replicas { replicas, max_lag })
    }

    /// A connection to a usable replica, starting at a random one; `None` when none is (the
    /// caller reads from the primary).
    pub(crate) async fn acquire(&self) -> Option<PoolConnection<MySql>> {
        let n = self.replicas.len();
        if n == 0 {
            return None;
        }
        let start = (random_fraction() * n as f64) as usize % n;
        for i in (0..n).map(|i| (start + i) % n) {
            let replica = &self.replicas[i];
            let state = *replica.state.lock().unwrap_or_else(|e| e.into_inner());
            let measured = state.checked_at.is_some_and(|t| t.elapsed() < LAG_CHECK_INTERVAL);
            let paused = state.checked_at.is_some_and(|t| t.elapsed() < FAILURE_PAUSE);
            if !state.usable && paused {
                continue;
            }
            let mut conn = match replica.pool.acquire().await {
                Ok(conn) => conn,
                Err(e) => {
                    replica.mark(false, &format!("cannot connect: {e}"));
                    continue;
                }
            };
            if !(measured && state.usable) {
                let verdict = lag_verdict(&mut conn, self.max_lag).await;
                replica.mark(verdict.is_ok(), verdict.as_ref().err().map_or("", String::as_str));
                if verdict.is_err() {
                    continue;
                }
            }
            return Some(conn);
        }
        None
    }

    /// Records that a read on a replica connection failed: it is skipped for a while.
    pub(crate) fn failed(&self, error: &str) {
        // Which replica the connection came from is not tracked per connection: pause them
        // all briefly; reads go to the primary meanwhile, which is always correct.
        for replica in &self.replicas {
            replica.mark(false, error);
        }
    }
}

impl Replica {
    fn mark(&self, usable: bool, why: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !usable && state.usable {
            tracing::warn!(replica = %self.label, why, "read replica skipped; reading from the primary");
        }
        *state = State {
            checked_at: Some(Instant::now()),
            usable,
        };
    }
}

/// `Ok` when the replica replicates and lags at most `max_lag` (`Seconds_Behind_Master`, whole
/// seconds; NULL when its replication threads do not run). Needs the `SLAVE MONITOR` (or
/// `REPLICATION CLIENT`/`SUPER`) privilege; without it the replica is never used.
async fn lag_verdict(conn: &mut PoolConnection<MySql>, max_lag: Duration) -> Result<(), String> {
    let row = sqlx::query("SHOW SLAVE STATUS")
        .fetch_optional(&mut **conn)
        .await
        .map_err(|e| format!("cannot read its replication status ({e}); grant SLAVE MONITOR to the user"))?
        .ok_or("it is not a replica (SHOW SLAVE STATUS is empty)")?;
    let behind: Option<u64> = row
        .try_get("Seconds_Behind_Master")
        .map_err(|e| format!("unreadable Seconds_Behind_Master: {e}"))?;
    match behind {
        None => Err("replication is not running (Seconds_Behind_Master is NULL)".into()),
        Some(secs) if Duration::from_secs(secs) > max_lag => Err(format!(
            "{secs} s behind the primary, more than {} s",
            max_lag.as_secs()
        )),
        Some(_) => Ok(()),
    }
}
