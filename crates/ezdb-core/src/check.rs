// Consistency check of the cluster tables (the checkdbfiles step legacy never had): what can be
// wrong with rows and chunks, how to find each kind, and the safe repair of each.

use crate::cluster::Cluster;
use crate::db::{done, Conn};
use crate::error::{Op, Result};
use crate::name::{name_hash, name_trunk, GENERATING_SUFFIX};
use futures_util::TryStreamExt;
use sqlx::mysql::MySqlConnection;

/// One inconsistency found in the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `name_hash` is not the md5 of `name`: lookups by name never find the row.
    HashMismatch { name: String, stored_hash: String },
    /// The chunks below `size` hold another number of bytes (metadata without data, lost chunks).
    SizeMismatch { name: String, size: u64, chunk_bytes: u64 },
    /// Chunks at or after the end of the file (left by an old, longer version).
    StrayChunks { name: String, chunks: u64 },
    /// Chunks whose metadata row is gone (only possible without the foreign key).
    OrphanChunks { name_hash: String, chunks: u64 },
    /// `expired` disagrees with the sign of `mtime`.
    ExpiredFlag { name: String, mtime: i64, expired: bool },
    /// `name_trunk` is not what the name and scope give.
    WrongTrunk {
        name: String,
        trunk: String,
        expected: String,
    },
    /// A `.generating` lock older than the generation timeout: its process is gone.
    StaleLock { name: String, mtime: i64, age_secs: i64 },
}

impl Problem {
    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            Problem::HashMismatch { name, stored_hash } => format!("{name}: name_hash {stored_hash} is not md5(name)"),
            Problem::SizeMismatch {
                name,
                size,
                chunk_bytes,
            } => {
                format!("{name}: metadata says {size} bytes, chunks hold {chunk_bytes}")
            }
            Problem::StrayChunks { name, chunks } => format!("{name}: {chunks} chunk(s) beyond the end of the file"),
            Problem::OrphanChunks { name_hash, chunks } => {
                format!("{chunks} chunk(s) of {name_hash} have no metadata row")
            }
            Problem::ExpiredFlag { name, mtime, expired } => format!("{name}: expired = {expired} but mtime = {mtime}"),
            Problem::WrongTrunk { name, trunk, expected } => {
                format!("{name}: name_trunk {trunk:?}, expected {expected:?}")
            }
            Problem::StaleLock { name, age_secs, .. } => format!("{name}: generation lock abandoned {age_secs} s ago"),
        }
    }

    /// The kind, for counting and machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::HashMismatch { .. } => "hash-mismatch",
            Problem::SizeMismatch { .. } => "size-mismatch",
            Problem::StrayChunks { .. } => "stray-chunks",
            Problem::OrphanChunks { .. } => "orphan-chunks",
            Problem::ExpiredFlag { .. } => "expired-flag",
            Problem::WrongTrunk { .. } => "wrong-trunk",
            Problem::StaleLock { .. } => "stale-lock",
        }
    }

    /// What a repair does; `None` when it cannot be repaired safely.
    pub fn repair_action(&self) -> &'static str {
        match self {
            Problem::HashMismatch { .. } => "re-key the row and its chunks to md5(name) (skipped if that key is taken)",
            Problem::SizeMismatch { .. } => {
                "remove the row: its bytes are incomplete, so nothing readable is lost; re-upload or regenerate it"
            }
            Problem::StrayChunks { .. } => "delete the chunks beyond the end",
            Problem::OrphanChunks { .. } => "delete the chunks",
            Problem::ExpiredFlag { .. } => "set expired from the sign of mtime",
            Problem::WrongTrunk { .. } => "set name_trunk",
            Problem::StaleLock { .. } => "remove the lock row (only if unchanged since the check)",
        }
    }
}

impl Cluster {
    /// Scans the tables for every kind of [`Problem`]. Reads every chunk's length, so on a large
    /// cluster it takes as long as reading the data once.
    pub async fn check(&self) -> Result<Vec<Problem>> {
        let stale_before = self.now() - self.config().generation_timeout.as_secs() as i64;
        let now = self.now();
        self.inner
            .db
            .retrying(Op::List, "consistency check", |mut conn| async move {
                let found = find_all(&mut conn, stale_before, now).await;
                done(conn, found.map_err(Into::into))
            })
            .await
    }

    /// Repairs one problem as [`Problem::repair_action`] says. Returns false when it was left
    /// alone (no longer there, or not safe to repair).
    pub async fn repair(&self, problem: &Problem) -> Result<bool> {
        self.inner
            .db
            .retrying(Op::Delete, "repair", |mut conn| async move {
                let repaired = repair_one(&mut conn, problem).await;
                done(conn, repaired.map_err(Into::into))
            })
            .await
    }
}

async fn find_all(conn: &mut MySqlConnection, stale_before: i64, now: i64) -> Result<Vec<Problem>, sqlx::Error> {
    let mut problems = Vec::new();
    let hashes: Vec<(String, String)> =
        sqlx::query_as("SELECT CAST(name AS CHAR), CAST(name_hash AS CHAR) FROM ezdbfile WHERE name_hash <> MD5(name)")
            .fetch_all(&mut *conn)
            .await?;
    problems.extend(
        hashes
            .into_iter()
            .map(|(name, stored_hash)| Problem::HashMismatch { name, stored_hash }),
    );
    let sizes: Vec<(String, u64, u64)> = sqlx::query_as(
        "SELECT CAST(f.name AS CHAR), CAST(f.size AS UNSIGNED), CAST(COALESCE(SUM(LENGTH(d.filedata)), 0) AS UNSIGNED)
         FROM ezdbfile f LEFT JOIN ezdbfile_data d ON d.name_hash = f.name_hash AND d.`offset` < f.size
         GROUP BY f.name_hash, f.name, f.size HAVING COALESCE(SUM(LENGTH(d.filedata)), 0) <> f.size",
    )
    .fetch_all(&mut *conn)
    .await?;
    problems.extend(
        sizes
            .into_iter()
            .map(|(name, size, chunk_bytes)| Problem::SizeMismatch {
                name,
                size,
                chunk_bytes,
            }),
    );
    let strays: Vec<(String, u64)> = sqlx::query_as(
        "SELECT CAST(f.name AS CHAR), CAST(COUNT(*) AS UNSIGNED) FROM ezdbfile_data d JOIN ezdbfile f ON f.name_hash = d.name_hash
         WHERE d.`offset` >= f.size AND NOT (d.`offset` = f.size AND LENGTH(d.filedata) = 0)
         GROUP BY f.name_hash, f.name",
    )
    .fetch_all(&mut *conn)
    .await?;
    problems.extend(
        strays
            .into_iter()
            .map(|(name, chunks)| Problem::StrayChunks { name, chunks }),
    );
    let orphans: Vec<(String, u64)> = sqlx::query_as(
        "SELECT CAST(d.name_hash AS CHAR), CAST(COUNT(*) AS UNSIGNED) FROM ezdbfile_data d
         LEFT JOIN ezdbfile f ON f.name_hash = d.name_hash WHERE f.name_hash IS NULL GROUP BY d.name_hash",
    )
    .fetch_all(&mut *conn)
    .await?;
    problems.extend(
        orphans
            .into_iter()
            .map(|(name_hash, chunks)| Problem::OrphanChunks { name_hash, chunks }),
    );
    let flags: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT CAST(name AS CHAR), CAST(mtime AS SIGNED), CAST(expired AS SIGNED) FROM ezdbfile WHERE (expired <> 0) <> (mtime < 0)",
    )
    .fetch_all(&mut *conn)
    .await?;
    problems.extend(flags.into_iter().map(|(name, mtime, expired)| Problem::ExpiredFlag {
        name,
        mtime,
        expired: expired != 0,
    }));
    problems.extend(wrong_trunks(conn).await?);
    let locks: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CAST(name AS CHAR), CAST(mtime AS SIGNED) FROM ezdbfile WHERE name LIKE '%.generating' AND ABS(mtime) < ?",
    )
    .bind(stale_before)
    .fetch_all(&mut *conn)
    .await?;
    problems.extend(locks.into_iter().map(|(name, mtime)| Problem::StaleLock {
        name,
        mtime,
        age_secs: now - mtime.abs(),
    }));
    Ok(problems)
}

/// Trunks are computed here, not in SQL: the rules live in one place, `name_trunk`.
async fn wrong_trunks(conn: &mut MySqlConnection) -> Result<Vec<Problem>, sqlx::Error> {
    let mut rows = sqlx::query_as::<_, (String, String, String)>(
        "SELECT CAST(name AS CHAR), CAST(scope AS CHAR), CAST(name_trunk AS CHAR) FROM ezdbfile",
    )
    .fetch(conn);
    let mut problems = Vec::new();
    while let Some((name, scope, trunk)) = rows.try_next().await? {
        let expected = name_trunk(&name, &scope);
        if trunk != expected && !name.ends_with(GENERATING_SUFFIX) {
            problems.push(Problem::WrongTrunk { name, trunk, expected });
        }
    }
    Ok(problems)
}

async fn repair_one(conn: &mut Conn, problem: &Problem) -> Result<bool, sqlx::Error> {
    let changed = match problem {
        Problem::HashMismatch { name, stored_hash } => return rekey(conn, name, stored_hash).await,
        Problem::SizeMismatch { name, size, .. } => sqlx::query("DELETE FROM ezdbfile WHERE name_hash = ? AND size = ?")
            .bind(name_hash(name))
            .bind(size)
        .execute(&mut **conn)
        .await?
        .rows_affected(),
        Problem::StrayChunks { name, .. } => sqlx::query(
            "DELETE d FROM ezdbfile_data d JOIN ezdbfile f ON f.name_hash = d.name_hash
             WHERE d.name_hash = ? AND d.`offset` >= f.size AND NOT (d.`offset` = f.size AND LENGTH(d.filedata) = 0)",
        )
        .bind(name_hash(name))
        .execute(&mut **conn)
        .await?
        .rows_affected(),
        Problem::OrphanChunks { name_hash, .. } => sqlx::query(
            "DELETE FROM ezdbfile_data WHERE name_hash = ? AND NOT EXISTS (SELECT 1 FROM ezdbfile f WHERE f.name_hash = ?)",
        )
        .bind(name_hash)
        .bind(name_hash)
        .execute(&mut **conn)
        .await?
        .rows_affected(),
        Problem::ExpiredFlag { name, .. } => sqlx::query("UPDATE ezdbfile SET expired = (mtime < 0) WHERE name_hash = ?")
            .bind(name_hash(name))
            .execute(&mut **conn)
            .await?
            .rows_affected(),
        Problem::WrongTrunk { name, expected, .. } => sqlx::query("UPDATE ezdbfile SET name_trunk = ? WHERE name_hash = ?")
            .bind(expected)
            .bind(name_hash(name))
            .execute(&mut **conn)
            .await?
            .rows_affected(),
        Problem::StaleLock { name, mtime, .. } => sqlx::query("DELETE FROM ezdbfile WHERE name_hash = ? AND mtime = ?")
            .bind(name_hash(name))
            .bind(mtime)
            .execute(&mut **conn)
            .await?
            .rows_affected(),
    };
    Ok(changed > 0)
}

/// Moves a row stored under a wrong hash (and its chunks) to md5(name), unless that key is taken.
async fn rekey(conn: &mut Conn, name: &str, stored_hash: &str) -> Result<bool, sqlx::Error> {
    let right = name_hash(name);
    conn.begin().await?;
    let taken: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM ezdbfile WHERE name_hash = ? FOR UPDATE")
        .bind(&right)
        .fetch_optional(&mut **conn)
        .await?;
    if taken.is_some() {
        conn.commit().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
         SELECT datatype, name, name_trunk, ?, scope, size, mtime, expired FROM ezdbfile WHERE name_hash = ?",
    )
    .bind(&right)
    .bind(stored_hash)
    .execute(&mut **conn)
    .await?;
    sqlx::query("UPDATE ezdbfile_data SET name_hash = ? WHERE name_hash = ?")
        .bind(&right)
        .bind(stored_hash)
        .execute(&mut **conn)
        .await?;
    sqlx::query("DELETE FROM ezdbfile WHERE name_hash = ?")
        .bind(stored_hash)
        .execute(&mut **conn)
        .await?;
    conn.commit().await?;
    Ok(true)
}
