// The cluster handle: settings recorded by ezdb_open, shared by every handle with the same
// settings, and per process a runtime and connections built on first use, rebuilt after fork.

use crate::args;
use crate::registry::Registry;
use crate::status::Failure;
use ezdb_core::{Cluster, ClusterConfig, Layout, LayoutSettings};
use parking_lot::Mutex;
use std::ffi::c_char;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::runtime::Runtime;

pub(crate) static CLUSTERS: Registry = Registry::new("cluster handle (ezdb_cluster*)");

/// The connection states of this process, one per distinct (URL, options). They outlive the
/// handles, so a PHP request that opens a handle reuses the previous request's connection.
static SHARED: Mutex<Vec<(String, Arc<Shared>)>> = Mutex::new(Vec::new());

/// Settings of `ezdb_open`; zero (NULL) means "the default". Fill with `ezdb_options_init`.
/// `ezdb_open` copies everything, strings included: the caller may free them afterwards.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ezdb_options {
    /// `DBChunkSize`: bytes per stored chunk, 1..=65535 (default 65535).
    pub chunk_size: u32,
    /// `CacheGenerationTimeout`: seconds after which a `.generating` lock may be taken over (default 60).
    pub generation_timeout_secs: u32,
    /// `DBExecuteRetries`: attempts for a transaction hit by a deadlock or a lost connection (default 8).
    pub max_attempts: u32,
    /// Milliseconds to wait for a connection to open (default 5000).
    pub connect_timeout_ms: u32,
    /// `LegacyExpiryFile`: cluster name of the legacy `expiry.php` (e.g.
    /// `var/site/cache/expiry.php`, eZ Publish's `<VarDir>/<CacheDir>/expiry.php`), through which
    /// legacy nodes share global expiry keys. UTF-8, pointer + length; NULL/0: none.
    pub legacy_expiry_file: *const c_char,
    pub legacy_expiry_file_len: usize,
    /// Where files live: `ezdb` (the default: `ezdbfile` + `ezdbfile_data`), `dfs` (legacy eZDFS,
    /// `FileHandler=eZDFSFileHandler`: `ezdfsfile` + `ezdfsfile_cache`, bytes at
    /// `<mount_point>/<name>`) or `ibexa-dfs` (Ibexa's one table `ibexa_dfs_file`). The DFS
    /// fields below are refused with `ezdb`. UTF-8, pointer + length; NULL/0: unset.
    pub layout: *const c_char,
    pub layout_len: usize,
    /// `[eZDFSClusteringSettings] MountPointPath`: the shared directory every node mounts;
    /// required by the DFS layouts. A relative path is taken from the working directory at
    /// `ezdb_open`. It is checked (a writable directory) when the process connects: a missing
    /// share gives `EZDB_CONFIG`. UTF-8, pointer + length; NULL/0: unset.
    pub mount_point: *const c_char,
    pub mount_point_len: usize,
    /// The DFS storage table (legacy eZDFS hard-codes `ezdfsfile`; `ibexa_dfs_file` for
    /// `ibexa-dfs`). UTF-8, pointer + length; NULL/0: that default.
    pub dfs_storage_table: *const c_char,
    pub dfs_storage_table_len: usize,
    /// `[eZDFSClusteringSettings] MetaDataTableNameCache` (or `CLUSTER_METADATA_TABLE_CACHE`): the
    /// DFS cache table (default `ezdfsfile_cache`; the storage table for `ibexa-dfs`; equal to the
    /// storage table for one table). UTF-8, pointer + length; NULL/0: that default.
    pub dfs_cache_table: *const c_char,
    pub dfs_cache_table_len: usize,
    /// `site.ini [FileSettings] CacheDir`: a name containing it goes to the cache table (default
    /// `cache`). UTF-8, pointer + length; NULL/0: that default.
    pub cache_dir: *const c_char,
    pub cache_dir_len: usize,
    /// `site.ini [FileSettings] StorageDir`: ...unless it also contains this (default `storage`).
    /// UTF-8, pointer + length; NULL/0: that default.
    pub storage_dir: *const c_char,
    pub storage_dir_len: usize,
    /// Read replicas: URLs (`mysql://user:pass@host:port/db`) of asynchronous replicas of `url`,
    /// separated by NUL bytes, as every list of this library. Plain reads (fetch, stat, exists,
    /// streams) use one that is up and at most `max_replica_lag_secs` behind; what it lacks is
    /// read from the primary before "not found" is answered; writes, locks and re-checks always
    /// use the primary. The user needs `SLAVE MONITOR` on the replicas. A URL that is not
    /// `mysql://` gives `EZDB_CONFIG`. UTF-8, pointer + length; NULL/0: none.
    pub read_replicas: *const c_char,
    pub read_replicas_len: usize,
    /// Seconds a read replica may lag behind the primary and still be read from; 0: the
    /// default (5).
    pub max_replica_lag_secs: u32,
}

impl Default for ezdb_options {
    fn default() -> ezdb_options {
        ezdb_options {
            chunk_size: 0,
            generation_timeout_secs: 0,
            max_attempts: 0,
            connect_timeout_ms: 0,
            legacy_expiry_file: std::ptr::null(),
            legacy_expiry_file_len: 0,
            layout: std::ptr::null(),
            layout_len: 0,
            mount_point: std::ptr::null(),
            mount_point_len: 0,
            dfs_storage_table: std::ptr::null(),
            dfs_storage_table_len: 0,
            dfs_cache_table: std::ptr::null(),
            dfs_cache_table_len: 0,
            cache_dir: std::ptr::null(),
            cache_dir_len: 0,
            storage_dir: std::ptr::null(),
            storage_dir_len: 0,
            read_replicas: std::ptr::null(),
            read_replicas_len: 0,
            max_replica_lag_secs: 0,
        }
    }
}

/// The settings of an `ezdb_options`, copied out of the caller's memory and checked. The whole
/// of it (the layout included) keys the connection state handles share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    chunk_size: u32,
    generation_timeout_secs: u32,
    max_attempts: u32,
    connect_timeout_ms: u32,
    legacy_expiry_file: Option<String>,
    layout: Layout,
    read_replicas: Vec<String>,
    max_replica_lag_secs: u32,
}

impl Settings {
    pub(crate) unsafe fn read(options: &ezdb_options) -> Result<Settings, Failure> {
        let legacy_expiry_file = args::optional_text(
            options.legacy_expiry_file,
            options.legacy_expiry_file_len,
            "options.legacy_expiry_file",
        )?;
        Ok(Settings {
            chunk_size: options.chunk_size,
            generation_timeout_secs: options.generation_timeout_secs,
            max_attempts: options.max_attempts,
            connect_timeout_ms: options.connect_timeout_ms,
            legacy_expiry_file: legacy_expiry_file.map(str::to_owned),
            layout: layout(options)?,
            read_replicas: args::list(
                options.read_replicas,
                options.read_replicas_len,
                "options.read_replicas",
            )?,
            max_replica_lag_secs: options.max_replica_lag_secs,
        })
    }
}

/// The layout fields, read as text and turned into a `Layout` by the core's one parser.
unsafe fn layout(options: &ezdb_options) -> Result<Layout, Failure> {
    let field = |ptr, len, what| args::optional_text(ptr, len, what).map(|text| text.map(str::to_owned));
    let settings = LayoutSettings {
        layout: field(options.layout, options.layout_len, "options.layout")?,
        mount_point: field(options.mount_point, options.mount_point_len, "options.mount_point")?
            .map(|path| absolute(PathBuf::from(path))),
        storage_table: field(
            options.dfs_storage_table,
            options.dfs_storage_table_len,
            "options.dfs_storage_table",
        )?,
        cache_table: field(
            options.dfs_cache_table,
            options.dfs_cache_table_len,
            "options.dfs_cache_table",
        )?,
        cache_dir: field(options.cache_dir, options.cache_dir_len, "options.cache_dir")?,
        storage_dir: field(options.storage_dir, options.storage_dir_len, "options.storage_dir")?,
    };
    Ok(settings.to_layout().map_err(ezdb_core::Error::from)?)
}

/// `path` from the current directory, now: connections are made later (once per process, maybe
/// after a chdir) and shared by handles with equal settings, so a relative mount point must mean
/// the same directory for all of them. Left as it is when there is no current directory (the
/// mount check at connect then reports it).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// An opened cluster. Opaque; created by `ezdb_open`, freed by `ezdb_close`.
///
/// Handles opened with the same URL and options share one connection per process, kept after
/// `ezdb_close` (like PHP's persistent connections) until `ezdb_disconnect` or the process
/// ends; calls through them run one at a time. Do not fork while another thread is in a call.
pub struct ezdb_cluster {
    shared: Arc<Shared>,
}

/// Settings and this process's connection state, shared by the handles opened with them.
struct Shared {
    config: ClusterConfig,
    process: Mutex<Option<ProcessState>>,
}

/// What one process built for itself: a single-threaded runtime and the connections.
struct ProcessState {
    pid: u32,
    /// [`FORKS`] when it was built.
    forks: u64,
    runtime: Runtime,
    cluster: Cluster,
}

/// Forks this process went through since the library was loaded, counted in each child by a
/// `pthread_atfork` handler. Every call checks whether its state was built by this process:
/// comparing this counter is an atomic load, where `std::process::id()` is a `getpid` system
/// call (glibc does not cache the pid), on every call of every hot path.
static FORKS: AtomicU64 = AtomicU64::new(0);
/// The handler is registered (else, should `pthread_atfork` fail, every call compares pids).
static COUNTING_FORKS: AtomicBool = AtomicBool::new(false);
static WATCH_FORKS: Once = Once::new();

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

impl ProcessState {
    /// Built by this process, not inherited from the parent across `fork()`.
    fn is_ours(&self) -> bool {
        if COUNTING_FORKS.load(Ordering::Relaxed) {
            self.forks == FORKS.load(Ordering::Relaxed)
        } else {
            self.pid == std::process::id()
        }
    }
}

impl ezdb_cluster {
    /// A handle on the shared state for these settings, created on first use in the process.
    pub(crate) fn open(url: &str, options: &Settings) -> Result<ezdb_cluster, Failure> {
        let key = format!("{url}\0{options:?}");
        let mut shared = SHARED.lock();
        if let Some((_, state)) = shared.iter().find(|(k, _)| *k == key) {
            return Ok(ezdb_cluster { shared: state.clone() });
        }
        let config = config(url, options);
        config.validate()?;
        let state = Arc::new(Shared {
            config,
            process: Mutex::new(None),
        });
        shared.push((key, state.clone()));
        Ok(ezdb_cluster { shared: state })
    }

    pub(crate) fn run<T, F, Fut>(&self, operation: F) -> Result<T, Failure>
    where
        F: FnOnce(Cluster) -> Fut,
        Fut: Future<Output = ezdb_core::Result<T>>,
    {
        self.shared.run(operation)
    }

    /// Runs `operation`, which does no I/O, on this process's cluster (connecting first when
    /// needed), without entering the runtime.
    pub(crate) fn with<T>(&self, operation: impl FnOnce(&Cluster) -> ezdb_core::Result<T>) -> Result<T, Failure> {
        self.shared
            .with(|state| operation(&state.cluster).map_err(Failure::from))
    }

    pub(crate) fn disconnect(&self) {
        self.shared.disconnect();
    }
}

fn config(url: &str, options: &Settings) -> ClusterConfig {
    let mut config = ClusterConfig::new(url).dedicated();
    if options.chunk_size > 0 {
        config.chunk_size = options.chunk_size as usize;
    }
    if options.generation_timeout_secs > 0 {
        config.generation_timeout = Duration::from_secs(options.generation_timeout_secs.into());
    }
    if options.max_attempts > 0 {
        config.max_attempts = options.max_attempts;
    }
    if options.connect_timeout_ms > 0 {
        config.connect_timeout = Duration::from_millis(options.connect_timeout_ms.into());
    }
    if options.max_replica_lag_secs > 0 {
        config.max_replica_lag = Duration::from_secs(options.max_replica_lag_secs.into());
    }
    config.legacy_expiry_file = options.legacy_expiry_file.clone();
    config
        .with_read_replicas(options.read_replicas.iter().cloned())
        .with_layout(options.layout.clone())
}

impl Shared {
    /// Runs `operation` on this process's connections, connecting first when needed.
    fn run<T, F, Fut>(&self, operation: F) -> Result<T, Failure>
    where
        F: FnOnce(Cluster) -> Fut,
        Fut: Future<Output = ezdb_core::Result<T>>,
    {
        self.with(|state| {
            state
                .runtime
                .block_on(operation(state.cluster.clone()))
                .map_err(Failure::from)
        })
    }

    /// Runs `operation` on this process's state, building it first when needed.
    fn with<T>(&self, operation: impl FnOnce(&ProcessState) -> Result<T, Failure>) -> Result<T, Failure> {
        WATCH_FORKS.call_once(|| {
            // SAFETY: `forked` only increments an atomic, which is async-signal-safe.
            let registered = unsafe { libc::pthread_atfork(None, None, Some(forked)) } == 0;
            COUNTING_FORKS.store(registered, Ordering::Relaxed);
        });
        let mut process = self.process.lock();
        if process.as_ref().is_some_and(|state| !state.is_ours()) {
            // Inherited from the parent: its socket is the parent's and its runtime's threads
            // do not exist here. Dropping would send COM_QUIT on the parent's connection.
            std::mem::forget(process.take());
        }
        if process.is_none() {
            *process = Some(ProcessState::open(&self.config)?);
        }
        operation(process.as_ref().expect("opened above"))
    }

    /// Closes this process's connections; the next call opens new ones.
    fn disconnect(&self) {
        let mut process = self.process.lock();
        match process.take() {
            Some(state) if state.is_ours() => {
                state.runtime.block_on(state.cluster.close());
            }
            inherited => std::mem::forget(inherited),
        }
    }
}

impl ProcessState {
    fn open(config: &ClusterConfig) -> Result<ProcessState, Failure> {
        let (pid, forks) = (std::process::id(), FORKS.load(Ordering::Relaxed));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Failure::new(
                    crate::status::ezdb_status::EZDB_IO,
                    format!("cannot start the I/O runtime: {e}; the process may be out of file descriptors"),
                )
            })?;
        let cluster = runtime.block_on(Cluster::connect(config.clone()))?;
        Ok(ProcessState {
            pid,
            forks,
            runtime,
            cluster,
        })
    }
}
