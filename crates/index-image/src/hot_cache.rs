//! The memory tier: hot files kept whole, bounded by their real weight (content, name,
//! metadata strings and a per-entry overhead, so 0-byte files count too), in quick_cache's
//! S3-FIFO policy (a file read once, as in a scan of cold files, leaves before files read
//! again), shared without a global lock. Misses are single-flight: the first request for a name
//! loads it while the others wait for its result. An entry is served without asking the
//! database for `revalidate_after`, then re-checked against the row (by the request, or before
//! that by the background revalidation: [`crate::revalidation`]).

use crate::revalidation::{Checks, Clock};
use bytes::Bytes;
use ezdb_core::FileMeta;
use quick_cache::sync::{Cache, PlaceholderGuard};
use std::sync::Arc;
use std::time::Duration;

/// Bytes an entry costs beyond its content, name and labels (the entry, its Arc, the
/// metadata struct and the cache's slot), rounded up.
const ENTRY_OVERHEAD: u64 = 256;

#[derive(Clone)]
pub struct Cached {
    pub meta: FileMeta,
    pub body: Bytes,
}

struct Entry {
    file: Cached,
    checks: Arc<Checks>,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<String, Arc<Entry>> for Weigh {
    fn weight(&self, name: &String, entry: &Arc<Entry>) -> u64 {
        weight(name, &entry.file)
    }
}

fn weight(name: &str, file: &Cached) -> u64 {
    let meta = &file.meta;
    ENTRY_OVERHEAD + (name.len() + meta.name.len() + meta.scope.len() + meta.datatype.len() + file.body.len()) as u64
}

type Files = Cache<String, Arc<Entry>, Weigh>;

pub struct HotCache {
    files: Option<Files>,
    /// Largest weight one entry may have (and fit its shard).
    max_weight: u64,
    revalidate_after: Duration,
    clock: Clock,
}

/// What the cache knows about a name.
pub enum Lookup<'a> {
    /// Checked recently: serve it.
    Fresh(Cached, Arc<Checks>),
    /// Cached but due for a check against the database.
    Stale(Cached, Arc<Checks>),
    /// Not cached. With a slot, this request loads the file for every request waiting on it
    /// (fill the slot, or drop it to let them load on their own); without, the cache is off.
    Miss(Option<LoadSlot<'a>>),
}

/// The right to load a missing name; the other requests for it wait until it is filled or
/// dropped.
pub struct LoadSlot<'a> {
    guard: PlaceholderGuard<
        'a,
        String,
        Arc<Entry>,
        Weigh,
        quick_cache::DefaultHashBuilder,
        quick_cache::sync::DefaultLifecycle<String, Arc<Entry>>,
    >,
    cache: &'a HotCache,
}

impl HotCache {
    pub fn new(capacity: usize, max_file: usize, revalidate_after: Duration, clock: Clock) -> HotCache {
        let capacity = capacity as u64;
        if capacity == 0 || max_file == 0 {
            return HotCache {
                files: None,
                max_weight: 0,
                revalidate_after,
                clock,
            };
        }
        // Shards of at least four of the largest files, at most 16 of them.
        let max_file = max_file as u64 + ENTRY_OVERHEAD;
        let mut shards = 16u64;
        while shards > 1 && capacity / shards < 4 * max_file {
            shards /= 2;
        }
        let options = quick_cache::OptionsBuilder::new()
            .shards(shards as usize)
            .estimated_items_capacity((capacity / (32 << 10)).max(64) as usize)
            .weight_capacity(capacity)
            .build()
            .expect("every option is set");
        let files = Cache::with_options(options, Weigh, Default::default(), Default::default());
        // quick_cache admits an entry up to 97 % of its shard ("hot" allocation).
        let max_weight = max_file.min(files.shard_capacity() * 9 / 10);
        HotCache {
            files: Some(files),
            max_weight,
            revalidate_after,
            clock,
        }
    }

    /// Looks `name` up; on a miss, waits for a load of it already in flight.
    pub async fn lookup(&self, name: &str) -> Lookup<'_> {
        let Some(files) = &self.files else {
            return Lookup::Miss(None);
        };
        match files.get_value_or_guard_async(name).await {
            Ok(entry) => {
                if entry.checks.is_fresh(self.clock.now_ms(), self.revalidate_after) {
                    Lookup::Fresh(entry.file.clone(), entry.checks.clone())
                } else {
                    Lookup::Stale(entry.file.clone(), entry.checks.clone())
                }
            }
            Err(guard) => Lookup::Miss(Some(LoadSlot { guard, cache: self })),
        }
    }

    /// The metadata and check state of the copy of `name`, if any (no effect on eviction).
    pub fn peek(&self, name: &str) -> Option<(FileMeta, Arc<Checks>)> {
        let entry = self.files.as_ref()?.peek(name)?;
        Some((entry.file.meta.clone(), entry.checks.clone()))
    }

    /// Drops the copy of `name` if it is still the one `checks` belongs to (not a newer one).
    pub fn remove_if_is(&self, name: &str, checks: &Arc<Checks>) {
        if let Some(files) = &self.files {
            files.remove_if(name, |entry| Arc::ptr_eq(&entry.checks, checks));
        }
    }

    /// Whether a file of this size may be cached.
    pub fn admits(&self, name: &str, file_size: u64, meta: &FileMeta) -> bool {
        let labels = (name.len() + meta.name.len() + meta.scope.len() + meta.datatype.len()) as u64;
        self.files.is_some() && ENTRY_OVERHEAD + labels + file_size <= self.max_weight
    }

    /// Bytes held now, as weighed.
    #[cfg(test)]
    fn weight(&self) -> u64 {
        self.files.as_ref().map_or(0, |f| f.weight())
    }
}

impl LoadSlot<'_> {
    /// Caches the loaded file and hands it to the requests waiting for it.
    pub fn fill(self, name: &str, file: Cached) {
        if !self.cache.admits(name, file.body.len() as u64, &file.meta) {
            return;
        }
        let entry = Arc::new(Entry {
            file,
            checks: Arc::new(Checks::new(self.cache.clock.now_ms())),
        });
        let _ = self.guard.insert(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize, mtime: i64) -> Cached {
        let meta = FileMeta {
            name: "n".into(),
            size: len as u64,
            mtime,
            scope: "image".into(),
            datatype: "image/png".into(),
            name_trunk: "n".into(),
            deleted: false,
            global_expiry: None,
        };
        Cached {
            meta,
            body: Bytes::from(vec![0; len]),
        }
    }

    async fn put(cache: &HotCache, name: &str, file: Cached) {
        match cache.lookup(name).await {
            Lookup::Miss(Some(slot)) => slot.fill(name, file),
            _ => panic!("{name} was cached already"),
        }
    }

    #[tokio::test]
    async fn bounded_by_real_weight_even_for_empty_files() {
        let cache = HotCache::new(64 << 10, 16 << 10, Duration::from_secs(60), Clock::new());
        for i in 0..10_000 {
            put(&cache, &format!("var/storage/images/empty/{i}.png"), file(0, 1)).await;
        }
        assert!(cache.weight() <= 64 << 10, "{} bytes weighed", cache.weight());
        assert!(
            !cache.admits("n", 16 << 10, &file(0, 1).meta),
            "the entry's overhead counts"
        );
    }

    #[tokio::test]
    async fn a_hot_file_survives_a_scan_of_cold_ones() {
        let cache = HotCache::new(1 << 20, 64 << 10, Duration::from_secs(60), Clock::new());
        put(&cache, "hot", file(8 << 10, 1)).await;
        for _ in 0..30 {
            assert!(matches!(cache.lookup("hot").await, Lookup::Fresh(..)));
        }
        for i in 0..2_000 {
            let name = format!("cold/{i}");
            put(&cache, &name, file(8 << 10, 1)).await;
        }
        assert!(
            matches!(cache.lookup("hot").await, Lookup::Fresh(..)),
            "evicted by a scan"
        );
    }

    #[tokio::test]
    async fn entries_go_stale_after_the_revalidation_interval() {
        let cache = HotCache::new(1 << 20, 1 << 10, Duration::ZERO, Clock::new());
        put(&cache, "a", file(10, 1)).await;
        assert!(matches!(cache.lookup("a").await, Lookup::Stale(..)));
        let off = HotCache::new(0, 1 << 10, Duration::ZERO, Clock::new());
        assert!(matches!(off.lookup("a").await, Lookup::Miss(None)));
    }
}
