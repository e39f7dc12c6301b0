// Physical removal of expired files (legacy purge): metadata rows are deleted in short batches
// and their chunks follow through the foreign-key cascade.

use crate::cluster::Cluster;
use crate::db::done;
use crate::error::{Op, Result};
use crate::name::FileName;
use crate::selector::{BatchAction, Batches, Filter, Selector, Value};

/// Which matched rows a purge removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeFilter {
    /// Soft-deleted rows only (legacy default).
    Expired,
    /// Every row whose mtime is below this Unix time, live or deleted (deleted rows have negative
    /// mtimes, so they always qualify). Legacy `purge(..., expiry)`.
    OlderThan(i64),
}

impl PurgeFilter {
    fn condition(self) -> (&'static str, Vec<Value>) {
        match self {
            PurgeFilter::Expired => ("expired = 1 OR mtime < 0", Vec::new()),
            PurgeFilter::OlderThan(at) => ("mtime < ?", vec![Value::Int(at)]),
        }
    }
}

impl Cluster {
    /// Removes the row of `name` if `filter` selects it. Returns whether a row went.
    pub async fn purge(&self, name: &str, filter: PurgeFilter) -> Result<bool> {
        let name = &FileName::new(name)?;
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
        let sql_filter = selector.filter()?.and(condition, values);
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
}
