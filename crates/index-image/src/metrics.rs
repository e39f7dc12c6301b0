//! Counters of the server's work, rendered in the Prometheus text format at `/metrics`:
//! requests by status, content bytes, hits and misses per cache tier, revalidations (by requests
//! and in the background), database
//! time and deadlines missed, waits for a pooled connection (counted by the core), open
//! connections, and where disk-tier reads found their bytes.

use crate::page_cache::ReadPath;
use ezdb_core::PoolWaits;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// (labels, value) pairs of one metric.
type Samples = Vec<(String, String)>;
/// Name, type, help and samples.
type Family<'a> = (&'a str, &'a str, &'a str, Samples);

/// A cache tier, as labelled in the metrics.
#[derive(Clone, Copy)]
pub enum Tier {
    Memory = 0,
    Disk = 1,
}

const TIERS: [&str; 2] = ["memory", "disk"];

#[derive(Default)]
struct PerTier {
    hits: AtomicU64,
    misses: AtomicU64,
    unchanged: AtomicU64,
    changed: AtomicU64,
}

pub struct Metrics {
    /// Responses by status code, 100..=599.
    statuses: Vec<AtomicU64>,
    content_bytes: AtomicU64,
    tiers: [PerTier; 2],
    database_micros: AtomicU64,
    database_reads: AtomicU64,
    database_deadlines: AtomicU64,
    connections: AtomicI64,
    revalidation_passes: AtomicU64,
    revalidation_names: AtomicU64,
    /// Disk-tier reads by [`ReadPath`].
    disk_reads: [AtomicU64; 2],
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            statuses: (100..600).map(|_| AtomicU64::new(0)).collect(),
            content_bytes: AtomicU64::new(0),
            tiers: Default::default(),
            database_micros: AtomicU64::new(0),
            database_reads: AtomicU64::new(0),
            database_deadlines: AtomicU64::new(0),
            connections: AtomicI64::new(0),
            revalidation_passes: AtomicU64::new(0),
            revalidation_names: AtomicU64::new(0),
            disk_reads: Default::default(),
        }
    }
}

/// Adds the time until it is dropped to the database time.
pub struct DatabaseTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl Drop for DatabaseTimer<'_> {
    fn drop(&mut self) {
        let micros = self.started.elapsed().as_micros() as u64;
        self.metrics.database_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Counts an open connection until it is dropped.
pub struct ConnectionGauge<'a>(&'a Metrics);

impl Drop for ConnectionGauge<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn response(&self, status: u16, content_bytes: u64) {
        if let Some(counter) = self.statuses.get(usize::from(status).wrapping_sub(100)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.content_bytes.fetch_add(content_bytes, Ordering::Relaxed);
    }

    pub fn hit(&self, tier: Tier) {
        self.tiers[tier as usize].hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn miss(&self, tier: Tier) {
        self.tiers[tier as usize].misses.fetch_add(1, Ordering::Relaxed);
    }

    /// A revalidation against the row found the copy `unchanged` or not.
    pub fn revalidated(&self, tier: Tier, unchanged: bool) {
        let t = &self.tiers[tier as usize];
        let counter = if unchanged { &t.unchanged } else { &t.changed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A background revalidation pass re-checked `names` copies.
    pub fn revalidation_pass(&self, names: usize) {
        self.revalidation_passes.fetch_add(1, Ordering::Relaxed);
        self.revalidation_names.fetch_add(names as u64, Ordering::Relaxed);
    }

    /// A disk-tier file was read (or mapped) by way of `path`.
    pub fn disk_read(&self, path: ReadPath) {
        self.disk_reads[path as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Starts timing one database read.
    pub fn database(&self) -> DatabaseTimer<'_> {
        self.database_reads.fetch_add(1, Ordering::Relaxed);
        DatabaseTimer {
            metrics: self,
            started: Instant::now(),
        }
    }

    pub fn deadline_missed(&self) {
        self.database_deadlines.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection(&self) -> ConnectionGauge<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGauge(self)
    }

    /// The metrics as text; `pool` is the core's count of pool waits (none before the database
    /// first answered).
    pub fn render(&self, pool: Option<PoolWaits>) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let plain = |v: String| vec![(String::new(), v)];
        let per_tier = |f: &dyn Fn(&PerTier) -> u64| -> Samples {
            TIERS
                .iter()
                .zip(&self.tiers)
                .map(|(name, t)| (format!("{{tier=\"{name}\"}}"), f(t).to_string()))
                .collect()
        };
        let statuses: Samples = self
            .statuses
            .iter()
            .enumerate()
            .filter(|(_, c)| load(c) > 0)
            .map(|(i, c)| (format!("{{status=\"{}\"}}", i + 100), load(c).to_string()))
            .collect();
        let seconds = format!("{:.6}", load(&self.database_micros) as f64 / 1e6);
        let families: [Family; 13] = [
            (
                "index_image_requests_total",
                "counter",
                "Responses sent, by status code.",
                statuses,
            ),
            (
                "index_image_content_bytes_total",
                "counter",
                "Bytes of files sent (200 and 206 bodies).",
                plain(load(&self.content_bytes).to_string()),
            ),
            (
                "index_image_cache_hits_total",
                "counter",
                "Requests answered by a cache tier.",
                per_tier(&|t| load(&t.hits)),
            ),
            (
                "index_image_cache_misses_total",
                "counter",
                "Requests a cache tier could not answer.",
                per_tier(&|t| load(&t.misses)),
            ),
            (
                "index_image_revalidations_unchanged_total",
                "counter",
                "Cached copies confirmed by their row.",
                per_tier(&|t| load(&t.unchanged)),
            ),
            (
                "index_image_revalidations_changed_total",
                "counter",
                "Cached copies dropped because their row changed.",
                per_tier(&|t| load(&t.changed)),
            ),
            (
                "index_image_background_revalidation_passes_total",
                "counter",
                "Passes of the background revalidation that re-checked copies in use (one statement per few hundred names).",
                plain(load(&self.revalidation_passes).to_string()),
            ),
            (
                "index_image_background_revalidation_names_total",
                "counter",
                "Names the background revalidation re-checked (their copies are counted in index_image_revalidations_*).",
                plain(load(&self.revalidation_names).to_string()),
            ),
            (
                "index_image_database_reads_total",
                "counter",
                "Metadata and file reads from the database.",
                plain(load(&self.database_reads).to_string()),
            ),
            (
                "index_image_database_seconds_total",
                "counter",
                "Time in database reads, waits for a pooled connection included (index_image_pool_wait_seconds has them alone).",
                plain(seconds),
            ),
            (
                "index_image_database_deadlines_total",
                "counter",
                "Requests that missed the database deadline (503).",
                plain(load(&self.database_deadlines).to_string()),
            ),
            (
                "index_image_disk_tier_reads_total",
                "counter",
                "Disk-tier files read for a response: from the page cache on the serving thread, or on a blocking thread when part of it had to come from the disk (many of those: the page cache is too small for the tier's hot files).",
                [ReadPath::PageCache, ReadPath::Disk]
                    .iter()
                    .map(|p| (format!("{{from=\"{}\"}}", p.label()), load(&self.disk_reads[*p as usize]).to_string()))
                    .collect(),
            ),
            (
                "index_image_connections",
                "gauge",
                "Client connections open.",
                plain(self.connections.load(Ordering::Relaxed).to_string()),
            ),
        ];
        let pool = pool.unwrap_or(PoolWaits {
            count: 0,
            total: std::time::Duration::ZERO,
            buckets: Vec::new(),
            timeouts: 0,
        });
        let mut out = String::new();
        for (name, kind, help, samples) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        let name = "index_image_pool_wait_seconds";
        let help = "Time requests waited for a pooled database connection (timed-out waits included).";
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in &pool.buckets {
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", bound.as_secs_f64());
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", pool.count);
        let _ = writeln!(out, "{name}_sum {:.6}", pool.total.as_secs_f64());
        let _ = writeln!(out, "{name}_count {}", pool.count);
        let name = "index_image_pool_wait_timeouts_total";
        let help = "Waits for a pooled connection that reached --pool-wait-timeout (503).";
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            pool.timeouts
        );
        out
    }
}
