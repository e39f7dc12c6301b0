//! How every tool finds its database and layout: --url or EZDB_URL, the eZDFS settings and the
//! read replicas as flags or EZDB_* variables, with the error a cron job can log.

use ezdb_core::{Cluster, ClusterConfig, LayoutSettings, DEFAULT_MAX_REPLICA_LAG};
use std::path::PathBuf;

/// Help text shared by the `--url` flags.
pub const URL_HELP: &str =
    "Cluster database, mysql://user:pass@host:port/db or mysql://user@localhost/db?socket=/path [env: EZDB_URL]";

/// Where the files live: the eZDB tables (default) or an eZDFS / Ibexa DFS site (metadata
/// tables plus a shared mount). The same settings as index_image and `ezdb_options`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LayoutArgs {
    /// Layout of the cluster: ezdb (ezdbfile + ezdbfile_data), dfs (legacy eZDFS: ezdfsfile +
    /// ezdfsfile_cache and a mount) or ibexa-dfs (one table, ibexa_dfs_file, and a mount).
    #[arg(long, global = true, env = "EZDB_LAYOUT", value_name = "LAYOUT")]
    pub layout: Option<String>,
    /// eZDFS: the shared directory every node mounts (file.ini MountPointPath).
    #[arg(long, global = true, env = "EZDB_MOUNT_POINT", value_name = "DIR")]
    pub mount_point: Option<PathBuf>,
    /// eZDFS: table of storage files (default ezdfsfile; ibexa_dfs_file for ibexa-dfs).
    #[arg(long, global = true, env = "EZDB_DFS_STORAGE_TABLE", value_name = "TABLE")]
    pub dfs_storage_table: Option<String>,
    /// eZDFS: table of cache files (file.ini MetaDataTableNameCache, default ezdfsfile_cache).
    #[arg(long, global = true, env = "EZDB_DFS_CACHE_TABLE", value_name = "TABLE")]
    pub dfs_cache_table: Option<String>,
    /// eZDFS: site.ini [FileSettings] CacheDir, the marker of names in the cache table (default cache).
    #[arg(
        long = "dfs-cache-dir",
        global = true,
        env = "EZDB_DFS_CACHE_DIR",
        value_name = "TEXT"
    )]
    pub dfs_cache_dir: Option<String>,
    /// eZDFS: site.ini [FileSettings] StorageDir, which keeps a name in the storage table (default storage).
    #[arg(
        long = "dfs-storage-dir",
        global = true,
        env = "EZDB_DFS_STORAGE_DIR",
        value_name = "TEXT"
    )]
    pub dfs_storage_dir: Option<String>,
}

impl LayoutArgs {
    pub fn settings(&self) -> LayoutSettings {
        LayoutSettings {
            layout: self.layout.clone(),
            mount_point: self.mount_point.clone(),
            storage_table: self.dfs_storage_table.clone(),
            cache_table: self.dfs_cache_table.clone(),
            cache_dir: self.dfs_cache_dir.clone(),
            storage_dir: self.dfs_storage_dir.clone(),
        }
    }
}

/// Read replicas, for the commands that only read files (`ezdb export`): the same settings as
/// index_image's `--read-replica`/`--max-replica-lag` and `ezdb_options.read_replicas`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplicaArgs {
    /// An asynchronous read replica of --url (repeat the flag, or separate URLs with commas;
    /// write a comma inside a URL as %2C). Files are read from one that is up and at most
    /// --max-replica-lag seconds behind; what it lacks is read from the primary. The user
    /// needs the SLAVE MONITOR privilege on each replica.
    #[arg(
        long = "read-replica",
        env = "EZDB_READ_REPLICAS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub read_replicas: Vec<String>,
    /// Seconds a read replica may lag behind the primary and still be read from.
    #[arg(
        long,
        env = "EZDB_MAX_REPLICA_LAG",
        value_name = "SECONDS",
        default_value_t = DEFAULT_MAX_REPLICA_LAG.as_secs()
    )]
    pub max_replica_lag: u64,
}

impl ReplicaArgs {
    /// `config` reading through these replicas.
    pub fn apply(&self, config: ClusterConfig) -> ClusterConfig {
        config
            .with_read_replicas(&self.read_replicas)
            .with_max_replica_lag(std::time::Duration::from_secs(self.max_replica_lag))
    }
}

pub async fn connect(
    url: Option<String>,
    layout: &LayoutArgs,
    tune: impl FnOnce(ClusterConfig) -> ClusterConfig,
) -> Result<Cluster, String> {
    let url = url
        .or_else(|| std::env::var("EZDB_URL").ok())
        .ok_or("no database given: pass --url=mysql://user:pass@host:port/db or set EZDB_URL")?;
    let layout = layout.settings().to_layout().map_err(|e| e.to_string())?;
    Cluster::connect(tune(ClusterConfig::new(url).with_layout(layout)))
        .await
        .map_err(|e| e.to_string())
}
