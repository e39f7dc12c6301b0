// Listing names: all files or by scope (include or exclude), and expired files for purge tools.

use crate::cluster::Cluster;
use crate::db::done;
use crate::error::{Error, Op, Result};
use crate::selector::{Filter, Selector, Value};
use sqlx::Row;

/// Which scopes a listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeFilter {
    All,
    Only(Vec<String>),
    AllBut(Vec<String>),
}

impl Cluster {
    /// Names of every row (deleted and `.generating` rows too, as legacy `getFileList`), sorted.
    pub async fn list(&self, scopes: &ScopeFilter) -> Result<Vec<String>> {
        let filter = match scopes {
            ScopeFilter::All => Filter::default().and("1 = 1", Vec::new()),
            ScopeFilter::Only(s) => Selector::Scopes(s.clone()).filter()?,
            ScopeFilter::AllBut(s) if s.is_empty() => Filter::default().and("1 = 1", Vec::new()),
            ScopeFilter::AllBut(s) => {
                let included = Selector::Scopes(s.clone()).filter()?;
                Filter {
                    sql: format!("NOT {}", included.sql),
                    values: included.values,
                }
            }
        };
        self.names(&filter, "", None).await
    }

    /// Legacy `expiredFilesList`: names of deleted rows in `scopes`, optionally only those whose
    /// original mtime is older than `older_than`, `limit` at most starting after `offset`.
    pub async fn list_expired(
        &self,
        scopes: &[String],
        older_than: Option<i64>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<String>> {
        if scopes.is_empty() {
            return Err(Error::InvalidArgument {
                name: "expired files".into(),
                what: "scopes",
                value: String::new(),
                reason: "give at least one scope".into(),
            });
        }
        let mut filter = Selector::Scopes(scopes.to_vec())
            .filter()?
            .and("expired = 1", Vec::new());
        if let Some(at) = older_than {
            filter = filter.and("ABS(mtime) < ?", vec![Value::Int(at)]);
        }
        self.names(&filter, " ORDER BY name_hash", Some((limit, offset))).await
    }

    async fn names(&self, filter: &Filter, order: &str, page: Option<(u32, u64)>) -> Result<Vec<String>> {
        let limit = page.map_or(String::new(), |(limit, offset)| format!(" LIMIT {offset}, {limit}"));
        let order = if order.is_empty() { " ORDER BY name" } else { order };
        let tables = self.meta_tables();
        // One statement over every table, so that a page (LIMIT offset, n) counts the rows of
        // all of them in one order; unpaged, each table is read alone and the names merged.
        let statements: Vec<String> = if page.is_some() && tables.len() > 1 {
            let parts: Vec<String> = tables
                .iter()
                .map(|table| {
                    format!(
                        "SELECT CAST(name AS CHAR) AS name, name_hash FROM {table} WHERE {}",
                        filter.sql
                    )
                })
                .collect();
            vec![format!("{}{order}{limit}", parts.join(" UNION ALL "))]
        } else {
            tables
                .iter()
                .map(|table| {
                    format!(
                        "SELECT CAST(name AS CHAR) FROM {table} WHERE {}{order}{limit}",
                        filter.sql
                    )
                })
                .collect()
        };
        let binds = if statements.len() < tables.len() {
            tables.len()
        } else {
            1
        };
        let mut names = Vec::new();
        for sql in &statements {
            let mut some: Vec<String> = self
                .inner
                .db
                .retrying(Op::List, "file list", |mut conn| async move {
                    let mut query = sqlx::query(sql);
                    for _ in 0..binds {
                        query = filter.bind(query);
                    }
                    let rows = query.fetch_all(&mut *conn).await;
                    let names = rows.and_then(|rows| rows.iter().map(|r| r.try_get::<String, _>(0)).collect());
                    done(conn, names.map_err(Into::into))
                })
                .await?;
            names.append(&mut some);
        }
        if statements.len() > 1 {
            names.sort();
        }
        Ok(names)
    }
}
