// The cluster schema: idempotent install from sql/mysql/schema.sql, and a check that an existing
// (possibly legacy) database has what the core needs, naming each difference precisely.

use crate::error::{Error, Op, Result};
use sqlx::mysql::MySqlConnection;
use sqlx::Executor;

/// The schema file shipped in `sql/mysql/schema.sql`.
pub const SCHEMA_SQL: &str = include_str!("../../../sql/mysql/schema.sql");

/// Columns the core reads or writes, with the data type family each must have.
const REQUIRED_COLUMNS: &[(&str, &str, &[&str])] = &[
    ("ezdbfile", "datatype", &["varchar"]),
    ("ezdbfile", "name", &["text", "mediumtext", "longtext"]),
    ("ezdbfile", "name_trunk", &["text", "mediumtext", "longtext"]),
    ("ezdbfile", "name_hash", &["varchar", "char"]),
    ("ezdbfile", "scope", &["varchar"]),
    ("ezdbfile", "size", &["bigint"]),
    ("ezdbfile", "mtime", &["int"]),
    ("ezdbfile", "expired", &["tinyint"]),
    ("ezdbfile_data", "name_hash", &["varchar", "char"]),
    ("ezdbfile_data", "offset", &["int"]),
    ("ezdbfile_data", "filedata", &["blob", "mediumblob", "longblob"]),
    ("ezdbfile_expiry", "name", &["varchar"]),
    ("ezdbfile_expiry", "scope", &["varchar"]),
    ("ezdbfile_expiry", "expiry", &["int"]),
];

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

pub(crate) async fn install(conn: &mut MySqlConnection) -> Result<()> {
    for statement in statements() {
        conn.execute(statement.as_str())
            .await
            .map_err(|e| Error::db(Op::Schema, "schema install", e))?;
    }
    Ok(())
}

/// Every way the connected database differs from what the core needs; empty when compatible.
pub(crate) async fn check(conn: &mut MySqlConnection) -> Result<Vec<String>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR)
         FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('ezdbfile', 'ezdbfile_data', 'ezdbfile_expiry')",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::db(Op::Schema, "schema check", e))?;
    let mut problems = Vec::new();
    for (table, column, families) in REQUIRED_COLUMNS {
        let found = rows
            .iter()
            .find(|(t, c, _)| t == table && c.eq_ignore_ascii_case(column));
        match found {
            None if !rows.iter().any(|(t, _, _)| t == table) => {
                let problem = format!("table {table} is missing");
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
            None => problems.push(format!("column {table}.{column} is missing")),
            Some((_, _, ty)) if !families.contains(&ty.to_ascii_lowercase().as_str()) => {
                problems.push(format!("column {table}.{column} is {ty}, expected one of {families:?}"))
            }
            Some(_) => {}
        }
    }
    problems.extend(check_keys(conn).await?);
    Ok(problems)
}

async fn check_keys(conn: &mut MySqlConnection) -> Result<Vec<String>> {
    let constraints: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(CONSTRAINT_TYPE AS CHAR) FROM information_schema.TABLE_CONSTRAINTS
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('ezdbfile', 'ezdbfile_data')",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| Error::db(Op::Schema, "schema check", e))?;
    let has = |table: &str, kind: &str| constraints.iter().any(|(t, k)| t == table && k == kind);
    let mut problems = Vec::new();
    if !has("ezdbfile", "PRIMARY KEY") {
        problems.push("ezdbfile has no PRIMARY KEY (name_hash)".to_owned());
    }
    if !has("ezdbfile_data", "PRIMARY KEY") {
        problems.push("ezdbfile_data has no PRIMARY KEY (name_hash, `offset`)".to_owned());
    }
    if !has("ezdbfile_data", "FOREIGN KEY") {
        problems.push(
            "ezdbfile_data has no FOREIGN KEY to ezdbfile ON DELETE CASCADE: purges would leave chunks behind"
                .to_owned(),
        );
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_file_has_three_tables_and_quotes_offset() {
        let statements: Vec<String> = super::statements().collect();
        assert_eq!(statements.len(), 3);
        assert!(statements.iter().all(|s| !s.contains(" offset ")));
        assert!(statements[1].contains("`offset`"));
    }
}
