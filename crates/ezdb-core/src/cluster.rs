// The handle to one cluster database: opened from a URL, cheap to clone and share between
// tasks. The file operations live beside it, one module per concern (store, fetch, ...).

use crate::config::ClusterConfig;
use crate::db::Db;
use crate::dfs::Dfs;
use crate::error::{Error, Op, Result};
use crate::expiry::{ExpiryFile, ExpiryFileCache};
use crate::fetch::ReadStatements;
use crate::layout::Layout;
use crate::schema::{self, Finding, UpgradeOptions, UpgradeReport};
use std::sync::Arc;

#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) config: ClusterConfig,
    /// The legacy `expiry.php` named by `legacy_expiry_file`, and its keys as last read.
    pub(crate) expiry_file: ExpiryFileCache,
    /// The eZDFS tables and mount, when the layout is eZDFS; `None` for eZDB.
    pub(crate) dfs: Option<Dfs>,
    /// The SQL of the hot reads, built on first use.
    pub(crate) statements: ReadStatements,
}

impl Cluster {
    /// Connects (once, directly, so a bad URL or password is reported as such) and returns a
    /// handle. Does not create tables: see [`Cluster::install_schema`].
    pub async fn connect(config: ClusterConfig) -> Result<Cluster> {
        config.validate()?;
        let expiry_file = config.legacy_expiry_file.as_deref().map(ExpiryFile::new).transpose()?;
        let dfs = match &config.layout {
            Layout::Ezdb => None,
            Layout::Dfs(layout) => Some(Dfs::open(layout)?),
        };
        let db = Db::connect(&config).await?;
        let cluster = Cluster {
            inner: Arc::new(Inner {
                db,
                config,
                expiry_file,
                dfs,
                statements: ReadStatements::default(),
            }),
        };
        cluster.chunks_per_statement()?;
        Ok(cluster)
    }

    /// Chunks per INSERT: the configured number, fewer when the server's `max_allowed_packet`
    /// would not take them; an error when it cannot take even one chunk of the configured size.
    pub(crate) fn chunks_per_statement(&self) -> Result<usize> {
        let config = &self.inner.config;
        let capabilities = &self.inner.db.capabilities;
        capabilities
            .chunks_per_statement(config.chunk_size, config.chunks_per_statement)
            .ok_or_else(|| {
                Error::Config(format!(
                    "the server's max_allowed_packet ({} bytes) cannot carry one chunk of {} bytes; \
                     lower the chunk size (DBChunkSize) below {} or raise max_allowed_packet on the server",
                    capabilities.max_allowed_packet(),
                    config.chunk_size,
                    capabilities.max_allowed_packet().saturating_sub(20 * 1024)
                ))
            })
    }

    /// Connects with default settings to `url`.
    pub async fn connect_url(url: &str) -> Result<Cluster> {
        Cluster::connect(ClusterConfig::new(url)).await
    }

    /// The metadata tables: `ezdbfile`, or the eZDFS storage and cache tables.
    pub fn meta_tables(&self) -> Vec<&str> {
        self.inner.config.layout.meta_tables()
    }

    /// The metadata table of `name` (for eZDFS, the rule of [`crate::DfsLayout::table_for`]).
    pub fn meta_table(&self, name: &str) -> &str {
        match &self.inner.dfs {
            Some(dfs) => dfs.layout.table_for(name),
            None => "ezdbfile",
        }
    }

    /// The resolved DFS mount point, for an eZDFS layout.
    pub fn mount_point(&self) -> Option<&std::path::Path> {
        self.inner.dfs.as_ref().map(|dfs| dfs.mount.root())
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// How long callers waited for a pooled connection, and how many waits ran out
    /// ([`ClusterConfig::pool_wait_timeout`]); all zero in dedicated mode.
    pub fn pool_waits(&self) -> crate::PoolWaits {
        self.inner.db.pool_waits()
    }

    /// The database server's clock in Unix seconds: the clock every mtime is stamped with.
    pub fn now(&self) -> i64 {
        self.inner.db.now()
    }

    /// Closes the connections of this handle (and of its clones). Dedicated connections reopen
    /// on the next call; a closed pool stays closed.
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    /// Creates the cluster tables when missing; safe to run on a legacy database. On an eZDFS
    /// layout: its metadata tables (the storage table with legacy's `status` column).
    pub async fn install_schema(&self) -> Result<()> {
        let mut conn = self
            .inner
            .db
            .acquire()
            .await
            .map_err(|e| Error::db(Op::Schema, "schema install", e))?;
        match &self.inner.dfs {
            Some(dfs) => {
                for table in dfs.layout.tables() {
                    let ddl = schema::dfs_table_ddl(table, table == dfs.layout.storage_table);
                    sqlx::Executor::execute(&mut *conn, ddl.as_str())
                        .await
                        .map_err(|e| Error::db(Op::Schema, "schema install", e))?;
                }
            }
            None => schema::install(&mut conn).await?,
        }
        self.inner
            .db
            .capabilities
            .detect(&mut conn, &self.meta_tables())
            .await
            .map_err(|e| Error::db(Op::Schema, "schema install", e))
    }

    /// Every finding of [`Cluster::inspect_schema`] as one line each; empty when the database is
    /// exactly what `sql/mysql/schema.sql` creates.
    pub async fn check_schema(&self) -> Result<Vec<String>> {
        Ok(self.inspect_schema().await?.iter().map(Finding::summary).collect())
    }

    /// Every risk of the database's cluster tables (character set, collation, column types,
    /// engine, keys, missing tables), each with what it breaks and the statements that fix it.
    pub async fn inspect_schema(&self) -> Result<Vec<Finding>> {
        let mut conn = self
            .inner
            .db
            .acquire()
            .await
            .map_err(|e| Error::db(Op::Schema, "schema check", e))?;
        schema::inspect(&mut conn, &self.inner.config.layout).await
    }

    /// Applies the fixes of [`Cluster::inspect_schema`]: online ones, and with
    /// `allow_offline` those that block writes while a table is rebuilt. Runs on a connection of
    /// its own that is closed afterwards (it changes session settings); this handle then uses the
    /// optional tables the upgrade created, as after [`Cluster::install_schema`].
    pub async fn upgrade_schema(&self, options: &UpgradeOptions) -> Result<UpgradeReport> {
        let mut conn = self
            .inner
            .db
            .acquire()
            .await
            .map_err(|e| Error::db(Op::Schema, "schema upgrade", e))?;
        let report = schema::upgrade(&mut conn, options, &self.inner.config.layout).await;
        // A created optional table is used from now on, as after install_schema.
        let detected = match (&report, options.dry_run) {
            (Ok(_), false) => self.inner.db.capabilities.detect(&mut conn, &self.meta_tables()).await,
            _ => Ok(()),
        };
        conn.discard();
        detected.map_err(|e| Error::db(Op::Schema, "schema upgrade", e))?;
        report
    }
}
