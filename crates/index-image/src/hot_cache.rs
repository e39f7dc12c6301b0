// A small in-memory cache of hot files, bounded in bytes: an entry is served without asking the
// database for `revalidate_after`, then re-checked against the row's mtime and size, so a
// changed or deleted file is never served stale for longer than that.

use bytes::Bytes;
use ezdb_core::FileMeta;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Cached {
    pub meta: FileMeta,
    pub body: Bytes,
}

struct Entry {
    file: Cached,
    checked: Instant,
}

pub struct HotCache {
    capacity: usize,
    max_file: usize,
    revalidate_after: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Insertion order, for eviction (oldest first).
    order: VecDeque<String>,
    bytes: usize,
}

/// What the cache knows about a name.
pub enum Lookup {
    /// Checked recently: serve it.
    Fresh(Cached),
    /// Cached but due for a check against the database.
    Stale(Cached),
    Miss,
}

impl HotCache {
    pub fn new(capacity: usize, max_file: usize, revalidate_after: Duration) -> HotCache {
        HotCache {
            capacity,
            max_file: max_file.min(capacity),
            revalidate_after,
            state: Mutex::default(),
        }
    }

    /// Whether a file of this size may be cached.
    pub fn admits(&self, size: u64) -> bool {
        size as usize <= self.max_file && self.capacity > 0
    }

    pub fn get(&self, name: &str) -> Lookup {
        let state = self.state.lock().expect("cache lock");
        match state.entries.get(name) {
            Some(e) if e.checked.elapsed() < self.revalidate_after => Lookup::Fresh(e.file.clone()),
            Some(e) => Lookup::Stale(e.file.clone()),
            None => Lookup::Miss,
        }
    }

    /// Marks an entry as checked against the database just now.
    pub fn confirm(&self, name: &str) {
        if let Some(entry) = self.state.lock().expect("cache lock").entries.get_mut(name) {
            entry.checked = Instant::now();
        }
    }

    pub fn insert(&self, name: &str, file: Cached) {
        if !self.admits(file.body.len() as u64) {
            return;
        }
        let mut state = self.state.lock().expect("cache lock");
        state.remove(name);
        while state.bytes + file.body.len() > self.capacity {
            let Some(oldest) = state.order.pop_front() else { break };
            state.remove_entry(&oldest);
        }
        state.bytes += file.body.len();
        state.order.push_back(name.to_owned());
        state.entries.insert(
            name.to_owned(),
            Entry {
                file,
                checked: Instant::now(),
            },
        );
    }

    pub fn remove(&self, name: &str) {
        self.state.lock().expect("cache lock").remove(name);
    }
}

impl State {
    fn remove(&mut self, name: &str) {
        if self.remove_entry(name) {
            self.order.retain(|n| n != name);
        }
    }

    fn remove_entry(&mut self, name: &str) -> bool {
        match self.entries.remove(name) {
            Some(entry) => {
                self.bytes -= entry.file.body.len();
                true
            }
            None => false,
        }
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

    #[test]
    fn bounded_by_bytes_oldest_evicted_first() {
        let cache = HotCache::new(100, 60, Duration::from_secs(60));
        cache.insert("a", file(40, 1));
        cache.insert("b", file(40, 1));
        cache.insert("c", file(40, 1));
        assert!(matches!(cache.get("a"), Lookup::Miss));
        assert!(matches!(cache.get("c"), Lookup::Fresh(_)));
        cache.insert("big", file(61, 1));
        assert!(matches!(cache.get("big"), Lookup::Miss), "larger than max_file");
        cache.insert("c", file(50, 2));
        assert!(matches!(cache.get("c"), Lookup::Fresh(f) if f.meta.mtime == 2));
        assert!(cache.state.lock().unwrap().bytes <= 100);
    }

    #[test]
    fn entries_go_stale_after_the_revalidation_interval() {
        let cache = HotCache::new(100, 100, Duration::ZERO);
        cache.insert("a", file(10, 1));
        assert!(matches!(cache.get("a"), Lookup::Stale(_)));
    }
}
