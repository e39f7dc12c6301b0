// ezdb-core: the eZDB cluster file store on MySQL/MariaDB, compatible row for row with the
// legacy eZ Publish handler, correct under concurrency. Start at [`Cluster::connect`].
//!
//! Files live in `ezdbfile` (metadata, primary key = md5 of the name) and `ezdbfile_data`
//! (chunks of at most 65535 bytes). Every write is one transaction; every read is one
//! statement, hence one snapshot. Deletes are soft (negated mtime, `expired = 1`) until purged.
//! Cache entries are regenerated under a `.generating` lock row shared with legacy nodes; see
//! [`Cluster::process_cache`].

mod cache_protocol;
mod capabilities;
mod check;
mod cluster;
mod config;
mod content;
mod copy;
mod db;
mod delete;
mod dfs;
mod error;
mod expiry;
mod fetch;
mod generation;
mod layout;
mod list;
mod meta;
mod mount;
mod mount_check;
mod name;
mod pool_waits;
mod process_cache;
mod purge;
mod quarantine;
mod replica;
mod retry;
pub mod schema;
mod selector;
mod stats;
mod store;
mod topology;

pub use cache_protocol::{CacheAction, CacheEvent, CacheGenerate, CacheRead, CacheRules, CacheRun};
pub use check::{analyze_layout, Chunk, Fault, LayoutFix, Outcome, Problem};
pub use cluster::Cluster;
pub use config::{redact_url, ClusterConfig, ConnectionMode, DEFAULT_MAX_REPLICA_LAG, MAX_CHUNK_SIZE};
pub use content::{ByteRange, Content};
pub use error::{Error, Op, Result};
pub use expiry::{expiry_key_scope, parse_expiry_php, render_expiry_php, SCOPED_EXPIRY_KEYS};
pub use fetch::{FileData, FileStream, Visibility};
pub use generation::{Generation, GenerationLock};
pub use layout::{
    DfsLayout, Layout, LayoutError, LayoutSetting, LayoutSettings, DFS_CACHE_TABLE, DFS_STORAGE_TABLE, IBEXA_DFS_TABLE,
    LAYOUT_NAMES,
};
pub use list::ScopeFilter;
pub use meta::{is_expired, is_file_expired, FileMeta, Freshness, DEFAULT_DATATYPE, DEFAULT_SCOPE};
pub use mount::{is_mount_temp_name, MOUNT_TEMP_PREFIX};
pub use mount_check::{
    MountCheckOptions, MountOutcome, MountProblem, MountReport, MountSkipped, DEFAULT_MOUNT_GRACE, MOUNT_QUARANTINE_DIR,
};
pub use name::{
    cache_type, clean_path, clean_path_bytes, name_hash, name_trunk, FileName, GENERATING_SUFFIX, MAX_NAME_BYTES,
};
pub use pool_waits::PoolWaits;
pub use process_cache::{CacheEntry, CachePolicy, CacheSource, Regeneration};
pub use purge::PurgeFilter;
pub use quarantine::{QuarantineItem, Restored, QUARANTINE_TABLE};
pub use selector::{Batches, QueryPlan, Selector};
pub use stats::{LockInfo, ScopeStats, Stats};
pub use store::{StoreOptions, Stored};
