// The cluster handle: settings recorded by ezdb_open, and per process a runtime and dedicated
// connections created on first use and rebuilt (never dropped) when a fork changed the pid.

use crate::registry::Registry;
use crate::status::Failure;
use ezdb_core::{Cluster, ClusterConfig};
use parking_lot::Mutex;
use std::future::Future;
use std::time::Duration;
use tokio::runtime::Runtime;

pub(crate) static CLUSTERS: Registry = Registry::new("cluster handle (ezdb_cluster*)");

/// Settings of `ezdb_open`; zero means "the default". Fill with `ezdb_options_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ezdb_options {
    /// `DBChunkSize`: bytes per stored chunk, 1..=65535 (default 65535).
    pub chunk_size: u32,
    /// `CacheGenerationTimeout`: seconds after which a `.generating` lock may be taken over (default 60).
    pub generation_timeout_secs: u32,
    /// `DBExecuteRetries`: attempts for a transaction hit by a deadlock or a lost connection (default 8).
    pub max_attempts: u32,
    /// Milliseconds to wait for a connection to open (default 5000).
    pub connect_timeout_ms: u32,
}

/// An opened cluster. Opaque; created by `ezdb_open`, freed by `ezdb_close`.
///
/// One call at a time runs on a handle (others on the same handle wait); open one handle per
/// thread for parallel work. Do not fork while another thread is inside a call on it.
pub struct ezdb_cluster {
    config: ClusterConfig,
    process: Mutex<Option<ProcessState>>,
}

/// What one process built for itself: a single-threaded runtime and the connections.
struct ProcessState {
    pid: u32,
    runtime: Runtime,
    cluster: Cluster,
}

impl ezdb_cluster {
    pub(crate) fn new(url: &str, options: &ezdb_options) -> ezdb_cluster {
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
        ezdb_cluster {
            config,
            process: Mutex::new(None),
        }
    }

    /// Runs `operation` on this process's connections, connecting first when needed.
    pub(crate) fn run<T, F, Fut>(&self, operation: F) -> Result<T, Failure>
    where
        F: FnOnce(Cluster) -> Fut,
        Fut: Future<Output = ezdb_core::Result<T>>,
    {
        let mut process = self.process.lock();
        let pid = std::process::id();
        if process.as_ref().is_some_and(|state| state.pid != pid) {
            // Inherited from the parent: its socket is the parent's and its runtime's threads
            // do not exist here. Dropping would send COM_QUIT on the parent's connection.
            std::mem::forget(process.take());
        }
        if process.is_none() {
            *process = Some(ProcessState::open(&self.config, pid)?);
        }
        let state = process.as_ref().expect("opened above");
        state
            .runtime
            .block_on(operation(state.cluster.clone()))
            .map_err(Failure::from)
    }

    /// Closes this process's connections; the next call opens new ones.
    pub(crate) fn disconnect(&self) {
        let mut process = self.process.lock();
        match process.take() {
            Some(state) if state.pid == std::process::id() => {
                state.runtime.block_on(state.cluster.close());
            }
            inherited => std::mem::forget(inherited),
        }
    }
}

impl Drop for ezdb_cluster {
    fn drop(&mut self) {
        self.disconnect();
    }
}

impl ProcessState {
    fn open(config: &ClusterConfig, pid: u32) -> Result<ProcessState, Failure> {
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
        Ok(ProcessState { pid, runtime, cluster })
    }
}
