//! Figures about a cluster for operators: files and bytes by scope, live and expired (deleted,
//! or older than their scope's global expiry key, as every node sees them), oldest and newest,
//! and the `.generating` locks with their age.

use crate::cluster::Cluster;
use crate::db::done;
use crate::error::{Op, Result};
use crate::expiry::expiry_key_scope;
use crate::name::{like_prefix, LIKE_ESCAPE};
use sqlx::Row;
use std::collections::BTreeMap;

/// Counts for one scope (`.generating` lock rows excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeStats {
    pub scope: String,
    pub files: u64,
    pub bytes: u64,
    /// Deleted, or older than the scope's global expiry key (what every node treats as expired).
    pub expired_files: u64,
    pub expired_bytes: u64,
    /// Of `expired_files`, those only a global expiry key expires (their rows are untouched).
    pub expired_by_key: u64,
    /// Oldest and newest original mtime (Unix seconds).
    pub oldest: i64,
    pub newest: i64,
}

/// A `.generating` lock row and how old it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub name: String,
    pub age_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub scopes: Vec<ScopeStats>,
    pub locks: Vec<LockInfo>,
}

const LOCK_PATTERN: &str = "%.generating";

impl Cluster {
    pub async fn stats(&self) -> Result<Stats> {
        let now = self.now();
        // The newest key of each scope: an entry older than it is expired on every node.
        let mut thresholds: BTreeMap<&'static str, i64> = BTreeMap::new();
        for (key, at) in self.global_expiries().await? {
            let scope = expiry_key_scope(&key);
            if !scope.is_empty() {
                let t = thresholds.entry(scope).or_insert(at);
                *t = (*t).max(at);
            }
        }
        // `mtime < the scope's key` in SQL: a CASE over the (few) scoped keys, never matching
        // when there is none.
        let key_case = if thresholds.is_empty() {
            "FALSE".to_owned()
        } else {
            let arms = " WHEN CAST(? AS BINARY) THEN mtime < ?".repeat(thresholds.len());
            format!("(CASE CAST(scope AS BINARY){arms} ELSE FALSE END)")
        };
        let mut totals: BTreeMap<String, ScopeStats> = BTreeMap::new();
        let mut locks = Vec::new();
        for table in self.meta_tables() {
            let (scopes, table_locks) = self.table_stats(table, &key_case, &thresholds, now).await?;
            for scope in scopes {
                match totals.get_mut(&scope.scope) {
                    Some(total) => total.add(&scope),
                    None => {
                        totals.insert(scope.scope.clone(), scope);
                    }
                }
            }
            locks.extend(table_locks);
        }
        locks.sort_by_key(|lock: &LockInfo| std::cmp::Reverse(lock.age_secs));
        Ok(Stats {
            scopes: totals.into_values().collect(),
            locks,
        })
    }

    /// The figures of one metadata table (eZDFS sites have two).
    async fn table_stats(
        &self,
        table: &str,
        key_case: &str,
        thresholds: &BTreeMap<&'static str, i64>,
        now: i64,
    ) -> Result<(Vec<ScopeStats>, Vec<LockInfo>)> {
        let sql = format!(
            "SELECT CAST(scope AS CHAR), CAST(COUNT(*) AS UNSIGNED), CAST(COALESCE(SUM(size), 0) AS UNSIGNED),
                    CAST(SUM(expired = 1 OR mtime < 0 OR {key_case}) AS UNSIGNED),
                    CAST(COALESCE(SUM(IF(expired = 1 OR mtime < 0 OR {key_case}, size, 0)), 0) AS UNSIGNED),
                    CAST(SUM(NOT (expired = 1 OR mtime < 0) AND {key_case}) AS UNSIGNED),
                    CAST(MIN(ABS(mtime)) AS SIGNED), CAST(MAX(ABS(mtime)) AS SIGNED)
             FROM {table} WHERE name NOT LIKE ? GROUP BY scope ORDER BY scope"
        );
        let locks_sql = format!(
            "SELECT CAST(name AS CHAR), CAST(ABS(mtime) AS SIGNED) FROM {table} WHERE name LIKE ? ORDER BY mtime"
        );
        let (sql, locks_sql) = (&sql, &locks_sql);
        self.inner
            .db
            .retrying(Op::List, "statistics", |mut conn| async move {
                let stats = async {
                    let mut query = sqlx::query(sql);
                    for _ in 0..3 {
                        for (scope, at) in thresholds {
                            query = query.bind(*scope).bind(*at);
                        }
                    }
                    let rows = query.bind(LOCK_PATTERN).fetch_all(&mut *conn).await?;
                    let scopes = rows.iter().map(scope_stats).collect::<Result<Vec<_>, sqlx::Error>>()?;
                    let locks: Vec<(String, i64)> = sqlx::query_as(locks_sql)
                        .bind(LOCK_PATTERN)
                        .fetch_all(&mut *conn)
                        .await?;
                    let locks = locks
                        .into_iter()
                        .map(|(name, mtime)| LockInfo {
                            name,
                            age_secs: now - mtime,
                        })
                        .collect();
                    Ok((scopes, locks))
                }
                .await;
                done(conn, stats)
            })
            .await
    }
}

impl ScopeStats {
    fn add(&mut self, other: &ScopeStats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.expired_files += other.expired_files;
        self.expired_bytes += other.expired_bytes;
        self.expired_by_key += other.expired_by_key;
        self.oldest = self.oldest.min(other.oldest);
        self.newest = self.newest.max(other.newest);
    }
}

impl Cluster {
    /// Whether any row's name starts with `dir/` (one index probe): is `--cache-dir` right?
    pub async fn has_files_under(&self, dir: &str) -> Result<bool> {
        let pattern = like_prefix(&format!("{}/", dir.trim_end_matches('/')));
        for table in self.meta_tables() {
            let sql = format!("SELECT 1 FROM {table} WHERE name LIKE ? ESCAPE '{LIKE_ESCAPE}' LIMIT 1");
            let (sql, pattern) = (&sql, &pattern);
            let found = self
                .inner
                .db
                .retrying(Op::List, dir, |mut conn| async move {
                    let found: Result<Option<(i32,)>, sqlx::Error> =
                        sqlx::query_as(sql).bind(pattern).fetch_optional(&mut *conn).await;
                    done(conn, found.map(|f| f.is_some()).map_err(Into::into))
                })
                .await?;
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The distinct `.../cache` directories the names are under (the sites' cache directories),
    /// at most 50. Reads every name: for a tool's fallback, not a hot path.
    pub async fn cache_dirs(&self) -> Result<Vec<String>> {
        let mut all = std::collections::BTreeSet::new();
        for table in self.meta_tables() {
            let sql = format!(
                "SELECT DISTINCT CAST(SUBSTRING(name, 1, LOCATE('/cache/', name) + 5) AS CHAR) FROM {table}
                 WHERE LOCATE('/cache/', name) > 0 ORDER BY 1 LIMIT 50"
            );
            let sql = &sql;
            let dirs: Vec<String> = self
                .inner
                .db
                .retrying(Op::List, "cache directories", |mut conn| async move {
                    let dirs: Result<Vec<(String,)>, sqlx::Error> = sqlx::query_as(sql).fetch_all(&mut *conn).await;
                    done(
                        conn,
                        dirs.map(|d| d.into_iter().map(|(d,)| d).collect()).map_err(Into::into),
                    )
                })
                .await?;
            all.extend(dirs);
        }
        Ok(all.into_iter().take(50).collect())
    }
}

fn scope_stats(row: &sqlx::mysql::MySqlRow) -> Result<ScopeStats, sqlx::Error> {
    Ok(ScopeStats {
        scope: row.try_get(0)?,
        files: row.try_get(1)?,
        bytes: row.try_get(2)?,
        expired_files: row.try_get(3)?,
        expired_bytes: row.try_get(4)?,
        expired_by_key: row.try_get(5)?,
        oldest: row.try_get(6)?,
        newest: row.try_get(7)?,
    })
}
