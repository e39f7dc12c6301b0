// Soft deletes, as legacy does them: the row stays with a negated mtime and `expired = 1` (its
// bytes remain the stale copy) until purged; bulk deletes run in bounded batches.

use crate::cluster::Cluster;
use crate::db::done;
use crate::error::{Op, Result};
use crate::name::{clean_path, FileName};
use crate::selector::{BatchAction, Batches, Selector, Value};

impl Cluster {
    /// Marks one file deleted. Returns false when there was no live row (nothing is created).
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let name = &FileName::new(name)?;
        if let Some(dfs) = &self.inner.dfs {
            return dfs.delete(&self.inner, name).await;
        }
        self.inner
            .db
            .retrying(Op::Delete, name.as_str(), |mut conn| async move {
                let updated = sqlx::query(
                    "UPDATE ezdbfile SET mtime = -ABS(mtime), expired = 1 WHERE name_hash = ? AND expired = 0",
                )
                .bind(name.hash())
                .execute(&mut *conn)
                .await;
                done(conn, updated.map(|r| r.rows_affected() > 0).map_err(Into::into))
            })
            .await
    }

    /// Marks every live file matched by `selector` deleted, in batches; returns how many.
    pub async fn delete_matching(&self, selector: &Selector) -> Result<u64> {
        self.expire_matching(selector, |_| {}).await
    }

    /// Like [`Cluster::delete_matching`], reporting each batch's count to `progress`.
    pub async fn expire_matching(&self, selector: &Selector, progress: impl FnMut(u64)) -> Result<u64> {
        let filter = self.selector_filter(selector)?.and("expired = 0", Vec::<Value>::new());
        let batches = Batches {
            size: self.config().batch_size,
            pause: std::time::Duration::ZERO,
            max_batches: None,
        };
        self.in_batches(
            Op::Delete,
            &selector.describe(),
            &filter,
            BatchAction::Expire,
            batches,
            progress,
        )
        .await
    }

    /// Legacy `fileDelete(path, fnamePart)`: deletes every file named `<path>/<part>...`.
    pub async fn delete_prefix(&self, path: &str, name_part: &str) -> Result<u64> {
        self.delete_matching(&Selector::Prefix(format!("{}/{name_part}", clean_path(path))))
            .await
    }

    /// Legacy `fileDeleteByWildcard`: `*`, `?` and `{a,b}` are wildcards, all else is literal.
    pub async fn delete_wildcard(&self, glob: &str) -> Result<u64> {
        self.delete_matching(&Selector::Glob(clean_path(glob))).await
    }

    /// Legacy `fileDeleteByDirList`: for each directory, the files `<common>/<dir>/<suffix>...`;
    /// under cache/content and cache/template-block by trunk equality (the legacy index use).
    pub async fn delete_by_dir_list(&self, dirs: &[&str], common_path: &str, common_suffix: &str) -> Result<u64> {
        let by_trunk = common_path.contains("/cache/content") || common_path.contains("/cache/template-block");
        let mut total = 0;
        for dir in dirs {
            let text = format!("{common_path}/{dir}/{common_suffix}");
            let selector = if by_trunk {
                Selector::Trunk(text)
            } else {
                Selector::Prefix(text)
            };
            total += self.delete_matching(&selector).await?;
        }
        Ok(total)
    }
}
