//! When a cached copy (either tier) was last confirmed against its row, and the background
//! revalidation of the copies in use: every half interval, the names served from a tier in the
//! last few intervals whose check is half its age are stat'ed together, a few hundred per
//! statement ([`Cluster::stat_many`]), and confirmed or dropped. A copy in steady use is so
//! confirmed before its interval runs out and its requests never wait on a stat; a copy past
//! its interval is still checked by the request itself, so the bound on staleness is the
//! interval whatever the background does.

use crate::disk_cache::DiskCache;
use crate::hot_cache::HotCache;
use crate::metrics::{Metrics, Tier};
use ezdb_core::{Cluster, FileMeta};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A name stays in the background set while it was served within this many intervals.
const ACTIVE_INTERVALS: u32 = 5;
/// At most this many names are re-checked per pass (the rest wait for the next pass, or for
/// their own request): bounds what the background asks of the database.
const MAX_PER_PASS: usize = 4096;

/// Milliseconds since a start, never 0 (0 marks "never checked").
#[derive(Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { epoch: Instant::now() }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// The check state of one cached copy.
pub struct Checks {
    /// When its row was last seen unchanged (0: not since this process started).
    checked_ms: AtomicU64,
    /// When it was last served.
    used_ms: AtomicU64,
    /// It is in the background set.
    active: AtomicBool,
}

impl Checks {
    /// Checked at `checked_ms` (0: not yet).
    pub fn new(checked_ms: u64) -> Checks {
        Checks {
            checked_ms: AtomicU64::new(checked_ms),
            used_ms: AtomicU64::new(checked_ms),
            active: AtomicBool::new(false),
        }
    }

    /// Whether it was checked less than `interval` before `now_ms`.
    pub fn is_fresh(&self, now_ms: u64, interval: Duration) -> bool {
        let checked = self.checked_ms.load(Ordering::Relaxed);
        checked != 0 && Duration::from_millis(now_ms.saturating_sub(checked)) < interval
    }

    /// Its row was seen unchanged by a read that started at `at_ms`.
    pub fn confirm(&self, at_ms: u64) {
        self.checked_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.checked_ms.load(Ordering::Relaxed))
    }
}

/// The names whose copies the background keeps confirmed.
pub struct Revalidator {
    clock: Clock,
    interval: Duration,
    /// Names served since the last pass that were not in the set.
    joining: Mutex<Vec<String>>,
}

impl Revalidator {
    pub fn new(clock: Clock, interval: Duration) -> Revalidator {
        Revalidator {
            clock,
            interval,
            joining: Mutex::new(Vec::new()),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A copy of `name` was just served from a tier.
    pub fn served(&self, name: &str, checks: &Checks) {
        checks.used_ms.store(self.clock.now_ms(), Ordering::Relaxed);
        if !checks.active.load(Ordering::Relaxed) && !checks.active.swap(true, Ordering::Relaxed) {
            self.joining.lock().expect("never poisoned").push(name.to_owned());
        }
    }

    /// Re-checks the copies in use every half interval, until the task is dropped. Off when
    /// the interval is zero (every request checks).
    pub async fn run(
        self: Arc<Self>,
        cluster: Cluster,
        memory: Arc<HotCache>,
        disk: Option<Arc<DiskCache>>,
        metrics: Arc<Metrics>,
    ) {
        if self.interval.is_zero() {
            return;
        }
        let half = self.interval / 2;
        let mut active: HashSet<String> = HashSet::new();
        let mut ticks = tokio::time::interval(half.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            active.extend(std::mem::take(&mut *self.joining.lock().expect("never poisoned")));
            let now = self.clock.now_ms();
            let window = (self.interval * ACTIVE_INTERVALS).as_millis() as u64;
            let mut due: Vec<String> = Vec::new();
            active.retain(|name| {
                let copies = copies(&memory, disk.as_deref(), name);
                let in_use = copies
                    .iter()
                    .any(|(_, _, c)| now.saturating_sub(c.used_ms.load(Ordering::Relaxed)) < window);
                if !in_use {
                    for (_, _, checks) in &copies {
                        checks.active.store(false, Ordering::Relaxed);
                    }
                    return false;
                }
                if due.len() < MAX_PER_PASS && copies.iter().any(|(_, _, c)| c.age_ms(now) >= half.as_millis() as u64) {
                    due.push(name.clone());
                }
                true
            });
            if due.is_empty() {
                continue;
            }
            let started = self.clock.now_ms();
            let names: Vec<&str> = due.iter().map(String::as_str).collect();
            let timer = metrics.database();
            let rows = cluster.stat_many(&names).await;
            drop(timer);
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    // The requests check for themselves meanwhile.
                    tracing::debug!(error = %e, names = due.len(), "background revalidation failed");
                    continue;
                }
            };
            metrics.revalidation_pass(due.len());
            for (name, row) in due.iter().zip(rows) {
                for (tier, meta, checks) in copies(&memory, disk.as_deref(), name) {
                    let unchanged = row.as_ref() == Some(&meta);
                    metrics.revalidated(tier, unchanged);
                    if unchanged {
                        checks.confirm(started);
                    } else {
                        match tier {
                            Tier::Memory => memory.remove_if_is(name, &checks),
                            Tier::Disk => {
                                if let Some(disk) = &disk {
                                    disk.remove_if_is(name, &checks)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The copies of `name` the tiers hold now.
fn copies(memory: &HotCache, disk: Option<&DiskCache>, name: &str) -> Vec<(Tier, FileMeta, Arc<Checks>)> {
    let mut found = Vec::with_capacity(2);
    if let Some((meta, checks)) = memory.peek(name) {
        found.push((Tier::Memory, meta, checks));
    }
    if let Some((meta, checks)) = disk.and_then(|d| d.peek(name)) {
        found.push((Tier::Disk, meta, checks));
    }
    found
}
