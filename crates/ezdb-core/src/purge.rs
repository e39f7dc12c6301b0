// Physical removal of expired files (legacy purge): metadata rows are deleted in short batches
// and their chunks follow through the foreign-key cascade.

use crate::cluster::Cluster;
use crate::db::done;
use crate::error::{Op, Result};
use crate::name::FileName;
use crate::selector::{BatchAction, Batches, Filter, Selector, Value};
use sqlx::Row;

/// Which matched rows a purge removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeFilter {
    /// Soft-deleted rows only (legacy default).
    Expired,
    /// Every row whose mtime is below this Unix time, live or deleted (deleted rows have negative
    /// mtimes, so they always qualify). Legacy `purge(..., expiry)`.
    OlderThan(i64),
    /// Soft-deleted rows whose original mtime is below this Unix time (deleted rows keep only
    /// their negated mtime, so this is the closest to "expired for N days" the schema allows).
    ExpiredBefore(i64),
}

impl PurgeFilter {
    pub(crate) fn condition(self) -> (&'static str, Vec<Value>) {
        match self {
            // `expired = 1` alone (not `OR mtime < 0`) lets the (expired, name) index pick rows;
            // a negative mtime without the flag is an inconsistency `check` reports.
            PurgeFilter::Expired => ("expired = 1", Vec::new()),
            PurgeFilter::OlderThan(at) => ("mtime < ?", vec![Value::Int(at)]),
            PurgeFilter::ExpiredBefore(at) => ("expired = 1 AND ABS(mtime) < ?", vec![Value::Int(at)]),
        }
    }
}

impl Cluster {
    /// Removes the row of `name` if `filter` selects it. Returns whether a row went.
    pub async fn purge(&self, name: &str, filter: PurgeFilter) -> Result<bool> {
        let name = &FileName::new(name)?;
        if let Some(dfs) = &self.inner.dfs {
            return dfs.purge(&self.inner, name, filter).await;
        }
        let (condition, values) = filter.condition();
        let filter = &Filter::default()
            .and("name_hash = ?", vec![Value::Text(name.hash().to_owned())])
            .and(condition, values);
        self.inner
            .db
            .retrying(Op::Purge, name.as_str(), |mut conn| async move {
                let sql = format!("DELETE FROM ezdbfile WHERE {}", filter.sql);
                let deleted = filter.bind(sqlx::query(&sql)).execute(&mut *conn).await;
                done(conn, deleted.map(|r| r.rows_affected() > 0).map_err(Into::into))
            })
            .await
    }

    /// Removes every row matched by `selector` and `filter`, `batches.size` rows per statement with
    /// `batches.pause` between statements, reporting each batch to `progress`. Interrupting it
    /// loses nothing: each batch is committed on its own, and running it again finishes the job.
    pub async fn purge_matching(
        &self,
        selector: &Selector,
        filter: PurgeFilter,
        batches: Batches,
        progress: impl FnMut(u64),
    ) -> Result<u64> {
        let (condition, values) = filter.condition();
        let sql_filter = self.selector_filter(selector)?.and(condition, values);
        self.in_batches(
            Op::Purge,
            &selector.describe(),
            &sql_filter,
            BatchAction::Purge,
            batches,
            progress,
        )
        .await
    }

    /// What [`Cluster::purge_matching`] would remove: the number of rows and up to `limit` names.
    pub async fn preview_purge(
        &self,
        selector: &Selector,
        filter: PurgeFilter,
        limit: u32,
    ) -> Result<(u64, Vec<String>)> {
        let (condition, values) = filter.condition();
        let sql_filter = &self.selector_filter(selector)?.and(condition, values);
        let mut count = 0;
        let mut names = Vec::new();
        for table in self.meta_tables() {
            let (n, mut some) = self.preview_table(table, selector, sql_filter, limit).await?;
            count += n;
            names.append(&mut some);
        }
        names.sort();
        names.truncate(limit as usize);
        Ok((count, names))
    }

    async fn preview_table(
        &self,
        table: &str,
        selector: &Selector,
        sql_filter: &Filter,
        limit: u32,
    ) -> Result<(u64, Vec<String>)> {
        self.inner
            .db
            .retrying(Op::Purge, &selector.describe(), |mut conn| async move {
                let preview = async {
                    let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE {}", sql_filter.sql);
                    let count: i64 = sql_filter
                        .bind(sqlx::query(&count_sql))
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get(0)?;
                    let names_sql = format!(
                        "SELECT CAST(name AS CHAR) FROM {table} WHERE {} ORDER BY name LIMIT {limit}",
                        sql_filter.sql
                    );
                    let rows = sql_filter.bind(sqlx::query(&names_sql)).fetch_all(&mut *conn).await?;
                    let names = rows
                        .iter()
                        .map(|r| r.try_get::<String, _>(0))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((count as u64, names))
                }
                .await;
                done(conn, preview)
            })
            .await
    }
}
