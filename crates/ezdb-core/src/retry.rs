//! Which database failures are worth running the whole transaction again (deadlocks, Galera
//! certification conflicts, nodes not ready, lost connections), and how long to wait first.

use crate::error::{is_connection_error, mysql_error_code};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why an attempt failed in a way that a new attempt may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transient {
    /// Deadlock or lock wait timeout (1213, 1205): the transaction was rolled back. On Galera a
    /// certification conflict with a transaction committed on another node is also 1213, at
    /// COMMIT; a `wsrep_sync_wait` that timed out is 1205.
    LockConflict,
    /// The server answers but may not run queries now: a Galera node outside the primary
    /// component or still joining (1047 "WSREP has not yet prepared node for application
    /// use"), or a server shutting down (1053). Another host may serve the next attempt.
    NodeNotReady,
    /// The connection is gone (server restart or kill, network, killed session).
    Connection,
}

impl Transient {
    /// True when the host should be left for another one (the failure is the host's, not the
    /// transaction's).
    pub(crate) fn is_host_failure(self) -> bool {
        matches!(self, Transient::NodeNotReady | Transient::Connection)
    }
}

/// The kind of transient failure `e` is, if any.
pub(crate) fn classify(e: &sqlx::Error) -> Option<Transient> {
    match mysql_error_code(e) {
        Some(1205 | 1213) => return Some(Transient::LockConflict),
        Some(1053) => return Some(Transient::NodeNotReady),
        // 1047 is "unknown command" elsewhere: only the Galera meaning is transient.
        Some(1047) if e.to_string().contains("WSREP") => return Some(Transient::NodeNotReady),
        _ => {}
    }
    is_connection_error(e).then_some(Transient::Connection)
}

/// The wait before attempt `tries + 1`: "full jitter" in `[0, min(cap, base * 2^tries)]`, so
/// writers that collided spread out instead of colliding again in step. Lock conflicts stay
/// short (a long wait only lets the other writer start its next transaction first); a node or
/// connection failure waits up to a second (a node needs that long to leave or rejoin).
pub(crate) fn backoff(base: Duration, tries: u32, kind: Transient) -> Duration {
    let cap = match kind {
        Transient::LockConflict => Duration::from_millis(250),
        Transient::NodeNotReady | Transient::Connection => Duration::from_secs(1),
    };
    let ceiling = base.saturating_mul(1 << tries.min(16)).min(cap);
    ceiling.mul_f64(random_fraction())
}

/// A number in `[0, 1)`, different in every process and call (xorshift over the clock, the pid
/// and a counter); good enough for jitter, not for anything secret.
pub(crate) fn random_fraction() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let base = Duration::from_millis(5);
        let waits: Vec<Duration> = (0..50).map(|_| backoff(base, 10, Transient::LockConflict)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(250)));
        assert!(waits.windows(2).any(|w| w[0] != w[1]), "jitter varies the waits");
        assert!(backoff(base, 30, Transient::Connection) <= Duration::from_secs(1));
    }
}
