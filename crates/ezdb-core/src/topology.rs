//! The database servers behind one URL: several hosts for failover
//! (`mysql://u:p@h1:3306,h2:3306,h3:3306/db`), which one is in use, a backoff per host after a
//! failed connect (no hot loop against a node that is down or starting), and the per-session
//! settings of a Galera node (read-your-writes, large transactions in fragments).

use sqlx::mysql::MySqlConnection;
use sqlx::{Executor, Row};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `wsrep_sync_wait` set on every session of a Galera node: bit 1 (READ) makes every SELECT,
/// SHOW and BEGIN wait until the node has applied everything the cluster committed before it
/// started, so a file stored through one node is found at once through any other, and every
/// transaction starts from the cluster's latest state. Bit 2 (UPDATE and DELETE) does the same
/// for the autocommit writes (a delete, a purge, an expiry mark): without it, a delete sent to
/// one node right after a store acknowledged by another can match no row there yet and do
/// nothing, and an empty write-set has nothing for certification to reject, so the file would
/// outlive its delete. Bit 4 (INSERT and REPLACE) is left off: every insert ezdb makes either
/// runs in a transaction that began with a waiting BEGIN or is a lock row whose conflict
/// certification does catch; each wait costs a cluster round trip.
pub(crate) const GALERA_SYNC_WAIT: u32 = 1 | 2;

/// `wsrep_trx_fragment_size` (in bytes) set on every session of a Galera node: a transaction
/// whose write-set grows past it is replicated in fragments of this size while it runs (Galera 4
/// streaming replication) instead of in one piece at COMMIT. So a large store, a replace or the
/// purge of a large file stays within `wsrep_max_ws_size` (which then bounds each fragment, not
/// the file) and never stalls the cluster applying one huge write-set; transactions below it
/// (nearly all) replicate as usual, with no streaming overhead. A file store stays one
/// transaction: readers still see the old or the new version whole.
pub(crate) const GALERA_FRAGMENT_BYTES: u32 = 4 << 20;

/// Splits a URL whose authority lists several hosts into one single-host URL per host, in
/// order; a URL with one host comes back as it is. User, password, path and query are shared.
pub(crate) fn split_hosts(url: &str) -> Vec<String> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return vec![url.to_owned()];
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    if !hosts.contains(',') {
        return vec![url.to_owned()];
    }
    hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|host| format!("{}{userinfo}{host}{}", &url[..scheme_end], &rest[authority_end..]))
        .collect()
}

/// Which host of the list connections go to: all clients use the first healthy one (one
/// writer node, as a balancer with one active node and backups does, so Galera's certification
/// rarely has to reject anything), and move to the next when it fails.
pub(crate) struct HostChoice {
    keys: Vec<String>,
    current: AtomicUsize,
}

impl HostChoice {
    pub(crate) fn new(keys: Vec<String>) -> HostChoice {
        HostChoice {
            keys,
            current: AtomicUsize::new(0),
        }
    }

    /// The hosts to try, in order: the one in use first, then the others; a host that failed
    /// within its backoff is left out unless every host did.
    pub(crate) fn candidates(&self) -> Vec<usize> {
        let n = self.keys.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let ready: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| cooling(&self.keys[i]).is_none())
            .collect();
        if ready.is_empty() {
            order
        } else {
            ready
        }
    }

    /// Records that host `i` works: it becomes the one in use and its backoff is cleared.
    pub(crate) fn succeeded(&self, i: usize) {
        self.current.store(i, Ordering::Relaxed);
        healthy(&self.keys[i]);
    }

    /// Records that a connect to host `i` failed (refused, timed out, node not ready): it is
    /// left alone for a backoff and the next connection goes to the next host.
    pub(crate) fn failed(&self, i: usize, error: &str) {
        self.left(i);
        failed(&self.keys[i], error);
    }

    /// Records that a connection to host `i` broke in use (lost, or the node stopped being
    /// ready): the next connection goes to the next host, which its connect then vets. No
    /// backoff: one killed session says nothing about the host.
    pub(crate) fn left(&self, i: usize) {
        let n = self.keys.len();
        let _ = self
            .current
            .compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// When every host is within its backoff after a failure: the wait left and the last error,
    /// so a caller in a loop gets that error at once instead of hammering the servers.
    pub(crate) fn all_cooling(&self) -> Option<(Duration, String)> {
        let waits: Vec<(Duration, String)> = self.keys.iter().filter_map(|k| cooling(k)).collect();
        if waits.len() < self.keys.len() {
            return None;
        }
        waits.into_iter().min_by_key(|(wait, _)| *wait)
    }
}

/// Consecutive connect failures of one host, shared by every handle of the process.
struct Health {
    failures: u32,
    last_failure: Instant,
    last_error: String,
}

fn health_map() -> &'static Mutex<HashMap<String, Health>> {
    static MAP: std::sync::OnceLock<Mutex<HashMap<String, Health>>> = std::sync::OnceLock::new();
    MAP.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The backoff after `failures` consecutive failures: 50 ms doubling up to 2 s.
fn connect_backoff(failures: u32) -> Duration {
    Duration::from_millis(50)
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(2))
}

/// The time left in the backoff of `key`, with its last error, if it is cooling down.
fn cooling(key: &str) -> Option<(Duration, String)> {
    let map = health_map().lock().unwrap_or_else(|e| e.into_inner());
    let health = map.get(key)?;
    let until = health.last_failure + connect_backoff(health.failures);
    let left = until.checked_duration_since(Instant::now())?;
    Some((left, health.last_error.clone()))
}

fn failed(key: &str, error: &str) {
    let mut map = health_map().lock().unwrap_or_else(|e| e.into_inner());
    let health = map.entry(key.to_owned()).or_insert(Health {
        failures: 0,
        last_failure: Instant::now(),
        last_error: String::new(),
    });
    health.failures = health.failures.saturating_add(1);
    health.last_failure = Instant::now();
    health.last_error = error.to_owned();
}

fn healthy(key: &str) {
    let mut map = health_map().lock().unwrap_or_else(|e| e.into_inner());
    map.remove(key);
}

/// Detects a Galera node (`wsrep_on = ON`), sets its session up (causal reads, fragments) and
/// refuses it when it is not ready for queries (a connection error, so the next host is
/// tried); returns whether it is one. Works on MySQL too (no such variable: not Galera).
pub(crate) async fn set_up_galera_session(conn: &mut MySqlConnection) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SHOW VARIABLES LIKE 'wsrep_on'")
        .fetch_optional(&mut *conn)
        .await?;
    let galera = match row {
        Some(row) => row.try_get::<String, _>(1)?.eq_ignore_ascii_case("ON"),
        None => false,
    };
    if galera {
        let setup = format!(
            "SET SESSION wsrep_sync_wait = {GALERA_SYNC_WAIT}, wsrep_trx_fragment_unit = 'bytes', \
             wsrep_trx_fragment_size = {GALERA_FRAGMENT_BYTES}"
        );
        conn.execute(setup.as_str()).await?;
        // A node outside the primary component still answers table-less queries: ask it.
        let ready = sqlx::query("SHOW STATUS LIKE 'wsrep_ready'")
            .fetch_optional(&mut *conn)
            .await?;
        let ready = ready.map(|row| row.try_get::<String, _>(1)).transpose()?;
        if !ready.is_some_and(|r| r.eq_ignore_ascii_case("ON")) {
            return Err(sqlx::Error::Protocol(
                "the Galera node is not ready for queries (wsrep_ready is not ON: outside the primary \
                 component, joining or desynced)"
                    .into(),
            ));
        }
    }
    Ok(galera)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_hosts_become_one_url_each() {
        assert_eq!(
            split_hosts("mysql://u:p@h1:3306,h2:3307,h3/db?socket=x"),
            vec![
                "mysql://u:p@h1:3306/db?socket=x",
                "mysql://u:p@h2:3307/db?socket=x",
                "mysql://u:p@h3/db?socket=x"
            ]
        );
        assert_eq!(split_hosts("mysql://u@h1/db"), vec!["mysql://u@h1/db"]);
        assert_eq!(split_hosts("mysql://h1,h2"), vec!["mysql://h1", "mysql://h2"]);
    }

    #[test]
    fn a_failed_host_is_skipped_until_its_backoff_ends() {
        let hosts = HostChoice::new(vec!["test-a:1".into(), "test-b:1".into()]);
        assert_eq!(hosts.candidates(), vec![0, 1]);
        hosts.failed(0, "refused");
        assert_eq!(hosts.candidates(), vec![1]);
        assert!(hosts.all_cooling().is_none());
        hosts.failed(1, "refused too");
        assert_eq!(hosts.candidates().len(), 2, "all cooling: try them all");
        assert!(hosts.all_cooling().is_some());
        hosts.succeeded(1);
        assert_eq!(hosts.candidates()[0], 1);
        healthy("test-a:1");
    }
}
