// Settings of one cluster connection: database URL, connection mode, chunk size, retries and
// the cache-generation timeouts; the legacy `file.ini`/`site.ini` names are given beside each.

use crate::error::{Error, Result};
use crate::layout::Layout;
use std::time::Duration;

/// Largest chunk a legacy `BLOB` column holds.
pub const MAX_CHUNK_SIZE: usize = 65_535;

/// Default of [`ClusterConfig::max_replica_lag`]: a read replica further behind is skipped.
pub const DEFAULT_MAX_REPLICA_LAG: Duration = Duration::from_secs(5);

/// How connections are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMode {
    /// A pool shared by concurrent tasks (servers, tools).
    Pool { max_connections: u32 },
    /// One connection, used by one caller at a time, plus a second one for re-checks: the
    /// cheapest round trip (no pool ping), the right choice for one PHP process.
    Dedicated,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `mysql://user:pass@host:port/db`, or `mysql://user@localhost/db?socket=/run/mysqld/mysqld.sock`.
    /// Several hosts for failover (e.g. the nodes of a Galera cluster):
    /// `mysql://user:pass@h1:3306,h2:3306,h3:3306/db`; the first that works is used by every
    /// connection, the next one when it fails.
    pub url: String,
    pub mode: ConnectionMode,
    /// `DBChunkSize`: bytes per `ezdbfile_data` row written (1..=65535). Reads accept any layout.
    pub chunk_size: usize,
    /// Chunks sent per INSERT statement; keeps each statement far below `max_allowed_packet`.
    pub chunks_per_statement: usize,
    /// `DBExecuteRetries`: attempts for a transaction that hits a deadlock or lock wait timeout,
    /// or loses its connection.
    pub max_attempts: u32,
    /// First backoff between attempts; doubled each time, with jitter.
    pub retry_backoff: Duration,
    /// On Galera (certification conflicts, a node rejoining) and after a host failure when the
    /// URL names other hosts to fail over to, attempts go on past `max_attempts` until this
    /// much time has passed since the first one.
    pub retry_budget: Duration,
    /// URLs of asynchronous read replicas of the primary (`url`). Plain reads (fetch, stat,
    /// exists, streams) go to one of them when it is up, replicating and at most
    /// `max_replica_lag` behind; what they do not find is looked up on the primary before
    /// "not found" is answered. Writes, locks and re-checks always use the primary. The user
    /// needs the `SLAVE MONITOR` privilege on the replicas (to read their lag).
    pub read_replicas: Vec<String>,
    /// Replicas further behind the primary than this are skipped (whole seconds).
    pub max_replica_lag: Duration,
    /// How long to wait for a connection to open before giving up.
    pub connect_timeout: Duration,
    /// How long a caller waits for a free pooled connection while every one is in use; then it
    /// gets [`sqlx::Error::PoolTimedOut`] (the host is fine, the pool busy). Opening a new
    /// connection is bounded by `connect_timeout` instead. Waits are counted in
    /// [`Cluster::pool_waits`](crate::Cluster::pool_waits).
    pub pool_wait_timeout: Duration,
    /// `CacheGenerationTimeout`: age after which a `.generating` lock may be taken over, and the
    /// longest a caller without a stale copy waits for another process's generation.
    pub generation_timeout: Duration,
    /// Interval between polls while waiting for another process's generation.
    pub generation_poll: Duration,
    /// Rows changed per statement when expiring or purging many files.
    pub batch_size: u32,
    /// Cluster name of the legacy `expiry.php` (e.g. `var/site/cache/expiry.php`): when set,
    /// global-expiry changes are also written there, so legacy nodes see them.
    pub legacy_expiry_file: Option<String>,
    /// The tables and byte store of the site: eZDB (default) or eZDFS with a shared mount.
    pub layout: Layout,
}

impl ClusterConfig {
    pub fn new(url: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            mode: ConnectionMode::Pool { max_connections: 16 },
            chunk_size: MAX_CHUNK_SIZE,
            chunks_per_statement: 16,
            max_attempts: 8,
            retry_backoff: Duration::from_millis(5),
            retry_budget: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            pool_wait_timeout: Duration::from_secs(5),
            read_replicas: Vec::new(),
            max_replica_lag: DEFAULT_MAX_REPLICA_LAG,
            generation_timeout: Duration::from_secs(60),
            generation_poll: Duration::from_millis(100),
            batch_size: 1000,
            legacy_expiry_file: None,
            layout: Layout::Ezdb,
        }
    }

    pub fn dedicated(mut self) -> ClusterConfig {
        self.mode = ConnectionMode::Dedicated;
        self
    }

    pub fn with_pool(mut self, max_connections: u32) -> ClusterConfig {
        self.mode = ConnectionMode::Pool { max_connections };
        self
    }

    pub fn with_chunk_size(mut self, chunk_size: usize) -> ClusterConfig {
        self.chunk_size = chunk_size;
        self
    }

    /// Adds read replicas; see [`ClusterConfig::read_replicas`]. Empty entries (a trailing
    /// comma of a list setting, eZINI's empty `DBReadReplicas[]`) are skipped.
    pub fn with_read_replicas(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> ClusterConfig {
        self.read_replicas
            .extend(urls.into_iter().map(Into::into).filter(|url: &String| !url.is_empty()));
        self
    }

    /// Sets [`ClusterConfig::max_replica_lag`].
    pub fn with_max_replica_lag(mut self, lag: Duration) -> ClusterConfig {
        self.max_replica_lag = lag;
        self
    }

    /// Uses the eZDFS layout: see [`DfsLayout`](crate::DfsLayout).
    pub fn with_layout(mut self, layout: Layout) -> ClusterConfig {
        self.layout = layout;
        self
    }

    pub fn with_generation_timeout(mut self, timeout: Duration) -> ClusterConfig {
        self.generation_timeout = timeout;
        self
    }

    /// Checks the settings without connecting: chunk sizes, attempts, pool size, URL schemes
    /// (the primary's and each read replica's).
    pub fn validate(&self) -> Result<()> {
        if !self.url.starts_with("mysql://") {
            return Err(Error::Config(format!(
                "{} is not a MySQL/MariaDB URL; write mysql://user:pass@host:port/db or mysql://user@localhost/db?socket=/path",
                redact_url(&self.url)
            )));
        }
        if let Some(bad) = self.read_replicas.iter().find(|url| !url.starts_with("mysql://")) {
            return Err(Error::Config(format!(
                "read replica {:?} is not a MySQL/MariaDB URL; write one mysql://user:pass@host:port/db per replica",
                redact_url(bad)
            )));
        }
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::Config(format!(
                "chunk size {} is outside 1..=65535; the legacy BLOB column holds at most 65535 bytes per chunk",
                self.chunk_size
            )));
        }
        if self.chunks_per_statement == 0 || self.chunk_size * self.chunks_per_statement > 8 << 20 {
            return Err(Error::Config(format!(
                "{} chunks per statement of {} bytes is outside 1 chunk..8 MiB; lower chunks_per_statement",
                self.chunks_per_statement, self.chunk_size
            )));
        }
        if self.max_attempts == 0 || self.batch_size == 0 {
            return Err(Error::Config("max_attempts and batch_size must be at least 1".into()));
        }
        if let Layout::Dfs(dfs) = &self.layout {
            dfs.validate()?;
        }
        if let ConnectionMode::Pool { max_connections: 0 } = self.mode {
            return Err(Error::Config("a pool needs at least 1 connection".into()));
        }
        Ok(())
    }
}

/// The URL with its password replaced by `*`, safe for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:{}{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            "*".repeat(userinfo.len() - colon - 1),
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("mysql://u:secret@h:3306/db"), "mysql://u:******@h:3306/db");
        assert_eq!(redact_url("mysql://u@h/db"), "mysql://u@h/db");
    }

    #[test]
    fn a_read_replica_that_is_not_a_url_is_refused() {
        let err = ClusterConfig::new("mysql://u@primary/db")
            .with_read_replicas(["replica:3306"])
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("read replica \"replica:3306\""), "{err}");
    }

    #[test]
    fn oversized_chunks_are_refused() {
        let err = ClusterConfig::new("mysql://x")
            .with_chunk_size(70_000)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("65535"));
    }
}
