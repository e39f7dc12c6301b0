//! The waits for a pooled connection: how long each caller waited for one (a histogram), and
//! how many gave up after the pool-wait timeout, so a server can show pool saturation apart
//! from the time its statements take (index_image's `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram's buckets (as Prometheus `le`), in microseconds.
const BOUNDS_MICROS: [u64; 10] = [
    100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000,
];

/// The waits for a pooled connection since the handle connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolWaits {
    /// Waits that ended, with a connection or by the pool-wait timeout.
    pub count: u64,
    /// Their total time.
    pub total: Duration,
    /// For each bound, the waits of at most that long (cumulative, as Prometheus buckets; the
    /// `+Inf` bucket is `count`).
    pub buckets: Vec<(Duration, u64)>,
    /// Waits that ran out (the caller got an error: the pool was busy, the host fine).
    pub timeouts: u64,
}

#[derive(Default)]
pub(crate) struct PoolWaitCounters {
    /// Waits per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    total_micros: AtomicU64,
    timeouts: AtomicU64,
}

impl PoolWaitCounters {
    /// Records one wait; `timed_out` when it ended without a connection.
    pub(crate) fn record(&self, waited: Duration, timed_out: bool) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BOUNDS_MICROS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
        if timed_out {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> PoolWaits {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let mut cumulative = 0;
        let buckets = BOUNDS_MICROS
            .iter()
            .zip(&counts)
            .map(|(bound, n)| {
                cumulative += n;
                (Duration::from_micros(*bound), cumulative)
            })
            .collect();
        PoolWaits {
            count: counts.iter().sum(),
            total: Duration::from_micros(self.total_micros.load(Ordering::Relaxed)),
            buckets,
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fall_in_cumulative_buckets_and_timeouts_are_counted() {
        let counters = PoolWaitCounters::default();
        counters.record(Duration::from_micros(50), false);
        counters.record(Duration::from_millis(3), false);
        counters.record(Duration::from_secs(9), true);
        let waits = counters.snapshot();
        assert_eq!(waits.count, 3);
        assert_eq!(waits.timeouts, 1);
        assert_eq!(waits.total, Duration::from_micros(9_003_050));
        assert_eq!(waits.buckets[0], (Duration::from_micros(100), 1));
        assert_eq!(waits.buckets[3], (Duration::from_millis(5), 2));
        assert_eq!(waits.buckets.last(), Some(&(Duration::from_secs(5), 2)));
    }
}
