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
        let mut names = Vec::new();
        for table in self.meta_tables() {
            let sql = &format!(
                "SELECT CAST(name AS CHAR) FROM {table} WHERE {}{order}{limit}",
                filter.sql
            );
            let mut some: Vec<String> = self
                .inner
                .db
                .retrying(Op::List, "file list", |mut conn| async move {
                    let rows = filter.bind(sqlx::query(sql)).fetch_all(&mut *conn).await;
                    let names = rows.and_then(|rows| rows.iter().map(|r| r.try_get::<String, _>(0)).collect());
                    done(conn, names.map_err(Into::into))
                })
                .await?;
            names.append(&mut some);
        }
        if self.meta_tables().len() > 1 && page.is_none() {
            names.sort();
        }
        Ok(names)
    }
}
