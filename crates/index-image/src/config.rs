//! Settings of index_image, from flags, environment variables or a config file (`--help`
//! explains each); one parser reads all three.

use clap::{CommandFactory, FromArgMatches, Parser};
use ezdb_core::{Layout, LayoutSetting, LayoutSettings};
use std::net::SocketAddr;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "index_image",
    about = "Serve rewritten image URLs straight from an ezdb cluster database (replaces index_image.php / index_cluster.php)",
    after_help = "Example:
  index_image --database-url=mysql://ez:pw@db/cluster --listen=127.0.0.1:8090
  index_image --database-url=mysql://ez:pw@db/cluster --layout=dfs --mount-point=/mnt/nfs   (an eZDFS site)

Put it behind the web server, which rewrites ^/var/([^/]+/)?storage/images(-versioned)?/.* to it
(see deploy/ for nginx, Apache and systemd). GET /healthz answers 200 while the database does."
)]
pub struct Config {
    /// Optional file of `KEY = value` settings (the environment variable names below).
    #[arg(long, env = "INDEX_IMAGE_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Cluster database: mysql://user:pass@host:port/db or mysql://user@localhost/db?socket=/path
    #[arg(long, env = "EZDB_URL")]
    pub database_url: String,
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, env = "INDEX_IMAGE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Name prefixes that may be served; `*` stands for one path segment (a site directory).
    #[arg(
        long = "prefix",
        env = "INDEX_IMAGE_PREFIXES",
        value_delimiter = ',',
        default_value = "var/storage/images/,var/*/storage/images/,var/storage/images-versioned/,var/*/storage/images-versioned/"
    )]
    pub prefixes: Vec<String>,
    /// Scopes that may be served (cache files never are).
    #[arg(
        long = "scope",
        env = "INDEX_IMAGE_SCOPES",
        value_delimiter = ',',
        default_value = "image"
    )]
    pub scopes: Vec<String>,
    /// Seconds browsers and proxies may cache a file (Cache-Control max-age and Expires).
    #[arg(long, env = "INDEX_IMAGE_MAX_AGE", default_value_t = 86_400)]
    pub max_age: u64,
    /// Database connections shared by all requests.
    #[arg(long, env = "INDEX_IMAGE_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
    /// An asynchronous read replica of the database, mysql://user:pass@host:port/db (repeat the
    /// flag, or separate URLs with commas; write a comma inside a URL as %2C). Images are read
    /// from a usable replica; one that is down, not replicating or behind by more than
    /// --max-replica-lag is skipped, and what a replica lacks is read from the primary before
    /// any 404. The user needs the SLAVE MONITOR privilege on each replica.
    #[arg(
        long = "read-replica",
        env = "INDEX_IMAGE_READ_REPLICAS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub read_replicas: Vec<String>,
    /// Seconds a read replica may lag behind the primary and still be read from.
    #[arg(
        long,
        env = "INDEX_IMAGE_MAX_REPLICA_LAG",
        value_name = "SECONDS",
        default_value_t = ezdb_core::DEFAULT_MAX_REPLICA_LAG.as_secs()
    )]
    pub max_replica_lag: u64,
    /// Seconds a request may wait for a free database connection while all --pool-size are
    /// in use; then 503 (index_image_pool_wait_timeouts_total). Opening a connection has its
    /// own limit (1 s). Keep it below --database-timeout.
    #[arg(long, env = "INDEX_IMAGE_POOL_WAIT_TIMEOUT", default_value_t = 5.0)]
    pub pool_wait_timeout: f64,
    /// Bytes of hot files kept in memory (0 turns the cache off).
    #[arg(long, env = "INDEX_IMAGE_CACHE_BYTES", default_value_t = 64 << 20)]
    pub cache_bytes: usize,
    /// Largest file kept in the memory cache, in bytes (4 MiB: large originals of the hot
    /// images fit, while 64 MiB still holds at least 16 of them). Larger files are sent from
    /// the spool directory, smaller ones from memory.
    #[arg(long, env = "INDEX_IMAGE_CACHE_MAX_FILE", default_value_t = 4 << 20)]
    pub cache_max_file: usize,
    /// Seconds a cached file is served before it is re-checked against the database (the
    /// longest a changed or deleted file can still be served from memory).
    #[arg(long, env = "INDEX_IMAGE_CACHE_REVALIDATE", default_value_t = 1.0)]
    pub cache_revalidate: f64,
    /// Most client connections open at once; further clients wait in the listen backlog.
    /// Each takes a descriptor: keep it below the unit's LimitNOFILE minus the pool.
    #[arg(long, env = "INDEX_IMAGE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a client has to send a complete request header, counted from the connection's
    /// start for its first request and from the first byte of each later one (nginx's
    /// client_header_timeout).
    #[arg(long, env = "INDEX_IMAGE_HEADER_TIMEOUT", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a kept-alive connection may wait, after a response, for the first byte of the
    /// next request; then it is closed (nginx's keepalive_timeout).
    #[arg(long, env = "INDEX_IMAGE_IDLE_TIMEOUT", default_value_t = 15.0)]
    pub idle_timeout: f64,
    /// Seconds a response may wait for a client that accepts no byte; then the connection is
    /// closed (and logged).
    #[arg(long, env = "INDEX_IMAGE_SEND_TIMEOUT", default_value_t = 60.0)]
    pub send_timeout: f64,
    /// Seconds the database has to answer one request (metadata and the whole file); later
    /// is 503, logged.
    #[arg(long, env = "INDEX_IMAGE_DATABASE_TIMEOUT", default_value_t = 10.0)]
    pub database_timeout: f64,
    /// Seconds responses in flight may take to finish after SIGTERM; then the remaining
    /// connections are closed. Keep it below systemd's TimeoutStopSec (30 s).
    #[arg(long, env = "INDEX_IMAGE_SHUTDOWN_TIMEOUT", default_value_t = 20.0)]
    pub shutdown_timeout: f64,
    /// Bytes of files held in memory for responses in flight, outside the cache; a file that
    /// does not fit goes through the spool directory instead.
    #[arg(long, env = "INDEX_IMAGE_MEMORY_BYTES", default_value_t = 256 << 20)]
    pub memory_bytes: u64,
    /// Directory for files larger than --cache-max-file while they are sent: each is copied
    /// there from the database at its speed, so a slow client never holds a database
    /// connection. Files there are unlinked at once and vanish when sent. Default: the
    /// system temporary directory.
    #[arg(long, env = "INDEX_IMAGE_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<std::path::PathBuf>,
    /// Bytes the spool directory may hold at once; a large file that does not fit gets 503.
    #[arg(long, env = "INDEX_IMAGE_SPOOL_BYTES", default_value_t = 4 << 30)]
    pub spool_bytes: u64,
    /// Directory of the disk tier: files read from the database are kept there (written
    /// atomically, kept across restarts, re-checked against the database before their first
    /// use and then every --cache-revalidate seconds), like nginx's proxy_cache. Unset: off.
    #[arg(long, env = "INDEX_IMAGE_DISK_CACHE_DIR", value_name = "DIR")]
    pub disk_cache_dir: Option<std::path::PathBuf>,
    /// Bytes the disk tier may hold (files and their headers).
    #[arg(long, env = "INDEX_IMAGE_DISK_CACHE_BYTES", default_value_t = 1 << 30)]
    pub disk_cache_bytes: u64,
    /// Largest file kept in the disk tier, in bytes.
    #[arg(long, env = "INDEX_IMAGE_DISK_CACHE_MAX_FILE", default_value_t = 64 << 20)]
    pub disk_cache_max_file: u64,
    /// Value of the Served-by header (default: this host's name); empty turns it off.
    #[arg(long, env = "INDEX_IMAGE_SERVED_BY")]
    pub served_by: Option<String>,
    /// Layout of the cluster: ezdb (default: rows in ezdbfile, bytes in ezdbfile_data), dfs
    /// (legacy eZDFS, file.ini FileHandler=eZDFSFileHandler: rows in ezdfsfile and
    /// ezdfsfile_cache, bytes at <mount point>/<name>) or ibexa-dfs (Ibexa's one table
    /// ibexa_dfs_file, bytes on the mount). The DFS layouts need --mount-point.
    #[arg(long, env = "INDEX_IMAGE_LAYOUT", value_name = "LAYOUT")]
    pub layout: Option<String>,
    /// eZDFS: the shared directory (NFS) every node mounts, where <mount>/<name> holds each
    /// file's bytes (file.ini [eZDFSClusteringSettings] MountPointPath). Opened at start: a
    /// share that is not mounted stops the start.
    #[arg(long, env = "INDEX_IMAGE_MOUNT_POINT", value_name = "DIR")]
    pub mount_point: Option<std::path::PathBuf>,
    /// eZDFS: table of the storage files, images among them (default ezdfsfile; ibexa_dfs_file
    /// for --layout=ibexa-dfs).
    #[arg(long, env = "INDEX_IMAGE_DFS_STORAGE_TABLE", value_name = "TABLE")]
    pub dfs_storage_table: Option<String>,
    /// eZDFS: table of the cache files (file.ini [eZDFSClusteringSettings]
    /// MetaDataTableNameCache; default ezdfsfile_cache; the storage table for ibexa-dfs).
    #[arg(long, env = "INDEX_IMAGE_DFS_CACHE_TABLE", value_name = "TABLE")]
    pub dfs_cache_table: Option<String>,
    /// eZDFS: site.ini [FileSettings] CacheDir, the text that puts a name in the cache table
    /// (default cache). A marker, not a path; not the disk tier (--disk-cache-dir).
    #[arg(
        long = "dfs-cache-dir",
        visible_alias = "cache-dir",
        env = "INDEX_IMAGE_DFS_CACHE_DIR",
        value_name = "TEXT"
    )]
    pub dfs_cache_dir: Option<String>,
    /// eZDFS: site.ini [FileSettings] StorageDir, the text that keeps a name in the storage
    /// table even when it also holds the CacheDir text (default storage).
    #[arg(
        long = "dfs-storage-dir",
        visible_alias = "storage-dir",
        env = "INDEX_IMAGE_DFS_STORAGE_DIR",
        value_name = "TEXT"
    )]
    pub dfs_storage_dir: Option<String>,
    /// The layout the settings above describe, checked by the core's one parser.
    #[arg(skip)]
    resolved_layout: Layout,
}

/// The argument (its clap id) of each layout setting.
fn layout_argument(setting: LayoutSetting) -> &'static str {
    match setting {
        LayoutSetting::Layout => "layout",
        LayoutSetting::MountPoint => "mount_point",
        LayoutSetting::StorageTable => "dfs_storage_table",
        LayoutSetting::CacheTable => "dfs_cache_table",
        LayoutSetting::CacheDir => "dfs_cache_dir",
        LayoutSetting::StorageDir => "dfs_storage_dir",
    }
}

/// Why the settings could not be read.
#[derive(Debug)]
pub enum ConfigError {
    /// A flag or environment variable is wrong, or `--help`/`--version` was asked for: clap
    /// renders it and knows the exit code.
    Arguments(clap::Error),
    /// The config file cannot be read or has a bad line, or a value is out of range.
    Settings(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Arguments(e) => write!(f, "{e}"),
            ConfigError::Settings(message) => f.write_str(message),
        }
    }
}

impl Config {
    /// Parses `args` (the program name first) as the command line. A config file (`--config FILE`
    /// or INDEX_IMAGE_CONFIG) holds `KEY = value` lines naming the environment variables of the
    /// flags (`EZDB_URL`, `INDEX_IMAGE_LISTEN`, ...; `#` starts a comment). Each line becomes the
    /// flag it names, placed before the command-line flags, so the same parser reads both and a
    /// flag wins over the file; a variable set in the environment wins over the file too. Nothing
    /// global is read but the environment, nothing is written.
    pub fn parse_from<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let command = Config::command().args_override_self(true);
        let first_look = command.clone().ignore_errors(true).try_get_matches_from(&args).ok();
        let file = first_look
            .as_ref()
            .and_then(|m| m.get_one::<std::path::PathBuf>("config").cloned());
        if let (Some(path), Some(first_look)) = (file, first_look) {
            // A flag given on the command line replaces the file's line (a list too).
            let given = |id: &str| first_look.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
            let from_file = file_arguments(&command, &path, given)?;
            let at = args.len().min(1);
            args.splice(at..at, from_file);
        }
        let matches = command.try_get_matches_from(&args).map_err(ConfigError::Arguments)?;
        let mut config = Config::from_arg_matches(&matches).map_err(ConfigError::Arguments)?;
        config.check().map_err(ConfigError::Settings)?;
        config.resolved_layout = config.layout_settings().to_layout().map_err(|e| {
            ConfigError::Settings(format!(
                "invalid configuration: {e} (index_image setting: {})",
                shown_argument(e.setting)
            ))
        })?;
        Ok(config)
    }

    /// The layout settings as given, for the core's parser (which owns defaults and checks).
    fn layout_settings(&self) -> LayoutSettings {
        LayoutSettings {
            layout: self.layout.clone(),
            mount_point: self.mount_point.clone(),
            storage_table: self.dfs_storage_table.clone(),
            cache_table: self.dfs_cache_table.clone(),
            cache_dir: self.dfs_cache_dir.clone(),
            storage_dir: self.dfs_storage_dir.clone(),
        }
    }

    /// The checked layout of the cluster (eZDB, or eZDFS with its tables and mount). index_image
    /// only reads, so a DFS mount may be mounted read-only for it.
    pub fn cluster_layout(&self) -> Layout {
        match &self.resolved_layout {
            Layout::Ezdb => Layout::Ezdb,
            Layout::Dfs(dfs) => Layout::Dfs(dfs.clone().reading_only()),
        }
    }

    /// `config` reading through the read replicas, when any are set.
    pub fn with_read_replicas(&self, config: ezdb_core::ClusterConfig) -> ezdb_core::ClusterConfig {
        config
            .with_read_replicas(&self.read_replicas)
            .with_max_replica_lag(std::time::Duration::from_secs(self.max_replica_lag))
    }

    /// Settings no parser can refuse alone: a wait of 0 s would fail every request at once.
    fn check(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--send-timeout", self.send_timeout),
            ("--database-timeout", self.database_timeout),
            ("--pool-wait-timeout", self.pool_wait_timeout),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                return Err(format!("{flag} must be a number of seconds above 0, not {value}"));
            }
        }
        if self.max_connections == 0 || self.pool_size == 0 {
            return Err("--max-connections and --pool-size must be at least 1".into());
        }
        Ok(())
    }
}

/// A layout setting as index_image spells it: the flag and its variable (also the config-file key).
fn shown_argument(setting: LayoutSetting) -> String {
    let command = Config::command();
    let id = layout_argument(setting);
    let shown = command.get_arguments().find(|a| a.get_id() == id).and_then(|arg| {
        let env = arg.get_env()?.to_string_lossy().into_owned();
        Some(format!("--{} ({env})", arg.get_long()?))
    });
    shown.unwrap_or_else(|| id.to_owned())
}

/// The lines of a config file as `--flag=value` arguments, skipping settings the command line
/// (`given`) or the environment already set.
fn file_arguments(
    command: &clap::Command,
    path: &std::path::Path,
    given: impl Fn(&str) -> bool,
) -> Result<Vec<std::ffi::OsString>, ConfigError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Settings(format!("cannot read the config file {shown}: {e}")))?;
    // (variable, long flag, argument id)
    let settings: Vec<(String, String, String)> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            Some((env, arg.get_long()?.to_owned(), arg.get_id().to_string()))
        })
        .filter(|(env, _, _)| env != "INDEX_IMAGE_CONFIG")
        .collect();
    let mut arguments = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = number + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Settings(format!(
                "{shown}:{at}: expected KEY = value, found {line:?}"
            )));
        };
        let (key, value) = (key.trim(), value.trim().trim_matches('"'));
        let Some((_, long, id)) = settings.iter().find(|(env, _, _)| env == key) else {
            let known: Vec<&str> = settings.iter().map(|(env, _, _)| env.as_str()).collect();
            return Err(ConfigError::Settings(format!(
                "{shown}:{at}: unknown setting {key}; known: {}",
                known.join(", ")
            )));
        };
        if !given(id) && std::env::var_os(key).is_none() {
            arguments.push(format!("--{long}={value}").into());
        }
    }
    Ok(arguments)
}

impl Config {
    /// The Served-by value to send, if any.
    pub fn served_by(&self) -> Option<String> {
        match &self.served_by {
            Some(value) if value.is_empty() => None,
            Some(value) => Some(value.clone()),
            None => std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty()),
        }
    }
}

/// A setting in seconds as a duration (negative counts as zero).
pub fn seconds(value: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(value.max(0.0))
}
