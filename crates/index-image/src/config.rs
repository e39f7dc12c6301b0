// Settings of index_image, from flags or environment variables (`--help` explains each).

use clap::Parser;
use std::net::SocketAddr;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "index_image",
    about = "Serve rewritten image URLs straight from an ezdb cluster database (replaces index_image.php / index_cluster.php)",
    after_help = "Example:
  index_image --database-url=mysql://ez:pw@db/cluster --listen=127.0.0.1:8090

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
    /// Bytes of hot files kept in memory (0 turns the cache off).
    #[arg(long, env = "INDEX_IMAGE_CACHE_BYTES", default_value_t = 64 << 20)]
    pub cache_bytes: usize,
    /// Largest file kept in the memory cache, in bytes (4 MiB: large originals of the hot
    /// images fit, while 64 MiB still holds at least 16 of them).
    #[arg(long, env = "INDEX_IMAGE_CACHE_MAX_FILE", default_value_t = 4 << 20)]
    pub cache_max_file: usize,
    /// Seconds a cached file is served before it is re-checked against the database (the
    /// longest a changed or deleted file can still be served from memory).
    #[arg(long, env = "INDEX_IMAGE_CACHE_REVALIDATE", default_value_t = 1.0)]
    pub cache_revalidate: f64,
    /// Value of the Served-by header (default: this host's name); empty turns it off.
    #[arg(long, env = "INDEX_IMAGE_SERVED_BY")]
    pub served_by: Option<String>,
}

/// Reads `--config FILE` (or INDEX_IMAGE_CONFIG): `KEY = value` lines naming the environment
/// variables above (`EZDB_URL`, `INDEX_IMAGE_LISTEN`, ...); `#` starts a comment. A variable
/// already set in the environment, or a flag, wins over the file.
pub fn load_config_file(args: &[String]) -> Result<(), String> {
    let from_args = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--config") {
            Some(rest) if rest.starts_with('=') => Some(rest[1..].to_owned()),
            Some("") => args.get(i + 1).cloned(),
            _ => None,
        });
    let Some(path) = from_args.or_else(|| std::env::var("INDEX_IMAGE_CONFIG").ok()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read the config file {path}: {e}"))?;
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{path}:{}: expected KEY = value, found {line:?}", number + 1));
        };
        let (key, value) = (key.trim(), value.trim().trim_matches('"'));
        if !KNOWN_KEYS.contains(&key) {
            return Err(format!(
                "{path}:{}: unknown setting {key}; known: {}",
                number + 1,
                KNOWN_KEYS.join(", ")
            ));
        }
        if std::env::var_os(key).is_none() {
            // Single-threaded here: main() calls this before starting the runtime.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

const KNOWN_KEYS: &[&str] = &[
    "EZDB_URL",
    "INDEX_IMAGE_LISTEN",
    "INDEX_IMAGE_PREFIXES",
    "INDEX_IMAGE_SCOPES",
    "INDEX_IMAGE_MAX_AGE",
    "INDEX_IMAGE_POOL_SIZE",
    "INDEX_IMAGE_CACHE_BYTES",
    "INDEX_IMAGE_CACHE_MAX_FILE",
    "INDEX_IMAGE_CACHE_REVALIDATE",
    "INDEX_IMAGE_SERVED_BY",
];

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
