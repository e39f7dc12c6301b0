//! The cluster schema: idempotent install from sql/mysql/schema.sql; an inspection of an existing
//! (often legacy) database that reports every risk as a typed [`Finding`] with what it breaks and
//! the [`Fix`] that repairs it; and an upgrade that applies the fixes safe while legacy nodes run.

mod dfs_findings;
mod findings;
mod observe;
mod upgrade;

pub use findings::{
    Finding, FindingKind, Fix, Severity, ONLINE_DDL, OPTIONAL_TABLES, REQUIRED_TABLES, TARGET_CHARSET, TARGET_COLLATION,
};
pub use upgrade::{StepOutcome, UpgradeOptions, UpgradeReport, UpgradeStep};

use crate::error::{Error, Op, Result};
use crate::layout::Layout;
use sqlx::mysql::MySqlConnection;
use sqlx::Executor;

/// The schema file shipped in `sql/mysql/schema.sql`.
pub const SCHEMA_SQL: &str = include_str!("../../../sql/mysql/schema.sql");

/// The statements of the schema file, without comments.
pub fn statements() -> impl Iterator<Item = String> {
    let without_comments: String = SCHEMA_SQL
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

/// The `CREATE TABLE IF NOT EXISTS` statement of `table` in the schema file.
pub fn table_ddl(table: &str) -> Option<String> {
    let head = format!("CREATE TABLE IF NOT EXISTS {table} (");
    statements().find(|s| s.starts_with(&head))
}

/// `CREATE TABLE IF NOT EXISTS` for an eZDFS metadata table named `table`: the legacy columns
/// (`status` only in the storage table, as legacy creates it), utf8mb4_bin so matching is
/// byte-exact, name prefixes of 191 characters so the keys fit any InnoDB row format.
pub fn dfs_table_ddl(table: &str, with_status: bool) -> String {
    let status = if with_status {
        "\n  status TINYINT(1) NOT NULL DEFAULT '0',"
    } else {
        ""
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
  datatype VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream',
  name TEXT NOT NULL,
  name_trunk TEXT NOT NULL,
  name_hash VARCHAR(34) NOT NULL DEFAULT '',
  scope VARCHAR(25) NOT NULL DEFAULT '',
  size BIGINT(20) UNSIGNED NOT NULL DEFAULT '0',
  mtime INT(11) NOT NULL DEFAULT '0',
  expired TINYINT(1) NOT NULL DEFAULT '0',{status}
  PRIMARY KEY (name_hash),
  KEY {table}_name (name(191)),
  KEY {table}_name_trunk (name_trunk(191)),
  KEY {table}_mtime (mtime),
  KEY {table}_expired_name (expired, name(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )
}

/// Creates the tables that are missing, with the statements the check gives for them; never
/// changes an existing table.
pub(crate) async fn install(conn: &mut MySqlConnection) -> Result<()> {
    let missing = inspect(conn, &Layout::Ezdb)
        .await?
        .into_iter()
        .filter(|f| matches!(f.kind, FindingKind::MissingTable | FindingKind::OptionalTable));
    for fix in missing.filter_map(|f| f.fix) {
        for statement in &fix.statements {
            conn.execute(statement.as_str())
                .await
                .map_err(|e| Error::db(Op::Schema, "schema install", e))?;
        }
    }
    Ok(())
}

/// Every finding for the connected database's tables of `layout`, most fundamental first;
/// empty when they are exactly what ezdb creates (`sql/mysql/schema.sql`, [`dfs_table_ddl`]).
pub(crate) async fn inspect(conn: &mut MySqlConnection, layout: &Layout) -> Result<Vec<Finding>> {
    match layout {
        Layout::Ezdb => {
            let observed = observe::observe(conn, &observe::EZDB_TABLES).await?;
            Ok(findings::evaluate(&observed))
        }
        Layout::Dfs(dfs) => {
            let observed = observe::observe(conn, &dfs.tables()).await?;
            Ok(dfs_findings::evaluate(&observed, dfs))
        }
    }
}

pub(crate) async fn upgrade(
    conn: &mut MySqlConnection,
    options: &UpgradeOptions,
    layout: &Layout,
) -> Result<UpgradeReport> {
    upgrade::upgrade(conn, options, layout).await
}

#[cfg(test)]
mod tests;
