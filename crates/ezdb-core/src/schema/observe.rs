//! What a database's cluster tables look like, read from information_schema: the facts the
//! findings are judged on, gathered in four queries and nothing else.

use crate::error::{Error, Op, Result};
use sqlx::mysql::{MySql, MySqlArguments, MySqlConnection, MySqlRow};
use sqlx::query::QueryAs;

/// The tables of the eZDB layout the core knows, required and optional.
pub(super) const EZDB_TABLES: [&str; 3] = ["ezdbfile", "ezdbfile_data", "ezdbfile_expiry"];

#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub tables: Vec<TableFacts>,
    pub columns: Vec<ColumnFacts>,
    /// Every index with its columns in order (the primary key is named `PRIMARY`).
    pub indexes: Vec<IndexFacts>,
    pub foreign_keys: Vec<ForeignKeyFacts>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TableFacts {
    pub name: String,
    pub engine: String,
    pub row_format: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ColumnFacts {
    pub table: String,
    pub name: String,
    /// `varchar`, `text`, `int`... lower case.
    pub data_type: String,
    /// The full type, e.g. `int(10) unsigned`, lower case.
    pub column_type: String,
    pub max_chars: Option<u64>,
    pub max_bytes: Option<u64>,
    pub charset: Option<String>,
    pub collation: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct IndexFacts {
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ForeignKeyFacts {
    pub name: String,
    pub table: String,
    pub referenced_table: String,
    pub delete_rule: String,
}

impl Observed {
    pub fn table(&self, name: &str) -> Option<&TableFacts> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn column(&self, table: &str, name: &str) -> Option<&ColumnFacts> {
        self.columns
            .iter()
            .find(|c| c.table == table && c.name.eq_ignore_ascii_case(name))
    }

    pub fn is_innodb(&self, table: &str) -> bool {
        self.table(table)
            .is_some_and(|t| t.engine.eq_ignore_ascii_case("innodb"))
    }

    pub fn primary_key(&self, table: &str) -> Option<&IndexFacts> {
        self.indexes.iter().find(|i| i.table == table && i.name == "PRIMARY")
    }

    /// Whether some index of `table` starts with `columns` (so the server can use it for them).
    pub fn has_index_on(&self, table: &str, columns: &[&str]) -> bool {
        self.indexes.iter().any(|i| {
            i.table == table
                && i.columns.len() >= columns.len()
                && i.columns
                    .iter()
                    .zip(columns)
                    .all(|(have, want)| have.eq_ignore_ascii_case(want))
        })
    }
}

impl ColumnFacts {
    pub fn is_unsigned(&self) -> bool {
        self.column_type.contains("unsigned")
    }
}

/// `sql` with every name of `known` bound, for its `IN (?, ...)`.
fn bound<'q, O>(known: &'q [&str], sql: &'q str) -> QueryAs<'q, MySql, O, MySqlArguments>
where
    O: for<'r> sqlx::FromRow<'r, MySqlRow>,
{
    known
        .iter()
        .fold(sqlx::query_as(sql), |query, table| query.bind(*table))
}

/// The facts of `known` (table names), read with the names bound as parameters.
pub(crate) async fn observe(conn: &mut MySqlConnection, known: &[&str]) -> Result<Observed> {
    let failed = |e| Error::db(Op::Schema, "schema check", e);
    let marks = vec!["?"; known.len()].join(", ");
    let tables: Vec<(String, Option<String>, Option<String>)> = bound(
        known,
        &format!(
            "SELECT CAST(TABLE_NAME AS CHAR), CAST(ENGINE AS CHAR), CAST(ROW_FORMAT AS CHAR)
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})"
        ),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    type ColumnRow = (
        String,
        String,
        String,
        String,
        Option<u64>,
        Option<u64>,
        Option<String>,
        Option<String>,
    );
    let columns: Vec<ColumnRow> = bound(
        known,
        &format!(
            "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR),
                CAST(COLUMN_TYPE AS CHAR), CAST(CHARACTER_MAXIMUM_LENGTH AS UNSIGNED),
                CAST(CHARACTER_OCTET_LENGTH AS UNSIGNED), CAST(CHARACTER_SET_NAME AS CHAR),
                CAST(COLLATION_NAME AS CHAR)
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})
         ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    let index_columns: Vec<(String, String, String)> = bound(
        known,
        &format!(
            "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR)
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})
         ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        ),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;
    let foreign_keys: Vec<(String, String, String, String)> = bound(
        known,
        &format!(
            "SELECT CAST(CONSTRAINT_NAME AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(REFERENCED_TABLE_NAME AS CHAR),
                CAST(DELETE_RULE AS CHAR)
         FROM information_schema.REFERENTIAL_CONSTRAINTS
         WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})"
        ),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(failed)?;

    let mut indexes: Vec<IndexFacts> = Vec::new();
    for (table, name, column) in index_columns {
        match indexes.last_mut() {
            Some(last) if last.table == table && last.name == name => last.columns.push(column),
            _ => indexes.push(IndexFacts {
                table,
                name,
                columns: vec![column],
            }),
        }
    }
    Ok(Observed {
        tables: tables
            .into_iter()
            .map(|(name, engine, row_format)| TableFacts {
                name,
                engine: engine.unwrap_or_default(),
                row_format: row_format.unwrap_or_default(),
            })
            .collect(),
        columns: columns
            .into_iter()
            .map(
                |(table, name, data_type, column_type, max_chars, max_bytes, charset, collation)| ColumnFacts {
                    table,
                    name,
                    data_type: data_type.to_ascii_lowercase(),
                    column_type: column_type.to_ascii_lowercase(),
                    max_chars,
                    max_bytes,
                    charset,
                    collation,
                },
            )
            .collect(),
        indexes,
        foreign_keys: foreign_keys
            .into_iter()
            .map(|(name, table, referenced_table, delete_rule)| ForeignKeyFacts {
                name,
                table,
                referenced_table,
                delete_rule,
            })
            .collect(),
    })
}
