//! The cluster schema: idempotent install from sql/mysql/schema.sql; an inspection of an existing
//! (often legacy) database that reports every risk as a typed [`Finding`] with what it breaks and
//! the [`Fix`] that repairs it; and an upgrade that applies the fixes safe while legacy nodes run.

mod findings;
mod observe;
mod upgrade;

pub use findings::{
    Finding, FindingKind, Fix, Severity, ONLINE_DDL, OPTIONAL_TABLES, REQUIRED_TABLES, TARGET_CHARSET, TARGET_COLLATION,
};
pub use upgrade::{StepOutcome, UpgradeOptions, UpgradeReport, UpgradeStep};

use crate::error::{Error, Op, Result};
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

/// Creates the tables that are missing, with the statements the check gives for them; never
/// changes an existing table.
pub(crate) async fn install(conn: &mut MySqlConnection) -> Result<()> {
    let missing = inspect(conn)
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

/// Every finding for the connected database, most fundamental first; empty when it is exactly
/// what `sql/mysql/schema.sql` creates.
pub(crate) async fn inspect(conn: &mut MySqlConnection) -> Result<Vec<Finding>> {
    let observed = observe::observe(conn).await?;
    Ok(findings::evaluate(&observed))
}

pub(crate) async fn upgrade(conn: &mut MySqlConnection, options: &UpgradeOptions) -> Result<UpgradeReport> {
    upgrade::upgrade(conn, options).await
}

#[cfg(test)]
mod tests;
