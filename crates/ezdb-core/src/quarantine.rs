//! The quarantine: where a repair puts what it takes out of `ezdbfile`/`ezdbfile_data` (a
//! whole row with its chunks, or some chunks), byte for byte, and where
//! [`Cluster::restore`] takes it back from. Two tables of ours, created by the first repair
//! that needs them; legacy nodes never read them.

use crate::cluster::Cluster;
use crate::db::{done, Attempt, Conn};
use crate::error::{Op, Result};
use sqlx::mysql::MySqlConnection;
use sqlx::Executor;

/// Names, labels and bytes are kept as binary strings: copied back, they are the same bytes.
const CREATE_TABLES: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS ezdbfile_quarantine (
       id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       quarantined_at BIGINT NOT NULL,
       reason VARCHAR(64) NOT NULL,
       removed VARCHAR(16) NOT NULL,
       name_hash VARBINARY(64) NOT NULL,
       name LONGBLOB NULL,
       name_trunk LONGBLOB NULL,
       datatype VARBINARY(1020) NULL,
       scope VARBINARY(255) NULL,
       size BIGINT UNSIGNED NULL,
       mtime BIGINT NULL,
       expired TINYINT NULL,
       size_after BIGINT UNSIGNED NULL,
       KEY ezdbfile_quarantine_hash (name_hash)
     ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS ezdbfile_quarantine_data (
       quarantine_id BIGINT UNSIGNED NOT NULL,
       `offset` BIGINT UNSIGNED NOT NULL,
       filedata LONGBLOB NOT NULL,
       PRIMARY KEY (quarantine_id, `offset`)
     ) ENGINE=InnoDB",
];

/// Name of the quarantine table, for reports ("moved to ezdbfile_quarantine #7").
pub const QUARANTINE_TABLE: &str = "ezdbfile_quarantine";

/// What a repair takes out.
pub(crate) enum Removal<'a> {
    /// The row and all its chunks.
    Row,
    /// These chunks of a row (the row stays, its size becomes `size_after` if given), or of no
    /// row at all (orphans).
    Chunks {
        offsets: &'a [u64],
        size_after: Option<u64>,
    },
}

/// One quarantined item, as `ezdb check --restore` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineItem {
    pub id: u64,
    pub quarantined_at: i64,
    /// The kind of problem that put it there.
    pub reason: String,
    /// `row` (the row and its chunks), `chunks` (some chunks of a row that stays) or `orphans`.
    pub removed: String,
    pub name_hash: String,
    pub name: Option<String>,
    pub chunks: u64,
    pub bytes: u64,
}

/// What [`Cluster::restore`] did with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Back in the cluster tables, out of the quarantine.
    Restored { name: Option<String> },
    /// Left in the quarantine: restoring would overwrite something (the reason says what).
    Conflict(String),
    /// No quarantined item has this id.
    NoSuchItem,
}

pub(crate) async fn ensure_tables(mut conn: Conn) -> (Option<Conn>, Attempt<()>) {
    let mut result = Ok(());
    for sql in CREATE_TABLES {
        if let Err(e) = conn.execute(sql).await {
            result = Err(e.into());
            break;
        }
    }
    done(conn, result)
}

/// Copies what `removal` names into the quarantine, then deletes it, inside the caller's
/// transaction (the row and chunks already locked). Returns the quarantine id.
pub(crate) async fn move_out(
    conn: &mut MySqlConnection,
    hash: &str,
    size_before: Option<u64>,
    removal: &Removal<'_>,
    reason: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let (removed, size_after) = match removal {
        Removal::Row => ("row", None),
        Removal::Chunks { size_after, .. } if size_before.is_some() => ("chunks", *size_after),
        Removal::Chunks { .. } => ("orphans", None),
    };
    let inserted = sqlx::query(
        "INSERT INTO ezdbfile_quarantine (quarantined_at, reason, removed, name_hash, name, name_trunk, datatype,
           scope, size, mtime, expired, size_after)
         SELECT ?, ?, ?, ?, f.name, f.name_trunk, f.datatype, f.scope, f.size, f.mtime, f.expired, ?
         FROM (SELECT 1) one LEFT JOIN ezdbfile f ON f.name_hash = ?",
    )
    .bind(now)
    .bind(reason)
    .bind(removed)
    .bind(hash)
    .bind(size_after)
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    let id = inserted.last_insert_id();
    match removal {
        Removal::Row => {
            sqlx::query(
                "INSERT INTO ezdbfile_quarantine_data (quarantine_id, `offset`, filedata)
                 SELECT ?, `offset`, filedata FROM ezdbfile_data WHERE name_hash = ?",
            )
            .bind(id)
            .bind(hash)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM ezdbfile_data WHERE name_hash = ?")
                .bind(hash)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM ezdbfile WHERE name_hash = ?")
                .bind(hash)
                .execute(&mut *conn)
                .await?;
        }
        Removal::Chunks { offsets, .. } => {
            for offset in *offsets {
                sqlx::query(
                    "INSERT INTO ezdbfile_quarantine_data (quarantine_id, `offset`, filedata)
                     SELECT ?, `offset`, filedata FROM ezdbfile_data WHERE name_hash = ? AND `offset` = ?",
                )
                .bind(id)
                .bind(hash)
                .bind(offset)
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM ezdbfile_data WHERE name_hash = ? AND `offset` = ?")
                    .bind(hash)
                    .bind(offset)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(id)
}

async fn tables_exist(conn: &mut MySqlConnection) -> Result<bool, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
         AND TABLE_NAME IN ('ezdbfile_quarantine', 'ezdbfile_quarantine_data')",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(n == 2)
}

async fn list(conn: &mut MySqlConnection) -> Result<Vec<QuarantineItem>, sqlx::Error> {
    if !tables_exist(conn).await? {
        return Ok(Vec::new());
    }
    type ItemRow = (u64, i64, String, String, String, Option<String>, u64, u64);
    let rows: Vec<ItemRow> = sqlx::query_as(
        "SELECT q.id, q.quarantined_at, CAST(q.reason AS CHAR), CAST(q.removed AS CHAR), CAST(q.name_hash AS CHAR),
                CAST(q.name AS CHAR), CAST(COUNT(d.`offset`) AS UNSIGNED),
                CAST(COALESCE(SUM(LENGTH(d.filedata)), 0) AS UNSIGNED)
         FROM ezdbfile_quarantine q LEFT JOIN ezdbfile_quarantine_data d ON d.quarantine_id = q.id
         GROUP BY q.id ORDER BY q.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, quarantined_at, reason, removed, name_hash, name, chunks, bytes)| QuarantineItem {
                id,
                quarantined_at,
                reason,
                removed,
                name_hash,
                name,
                chunks,
                bytes,
            },
        )
        .collect())
}

async fn restore_one(conn: &mut Conn, id: u64) -> Result<Restored, sqlx::Error> {
    conn.begin().await?;
    let restored = restore_locked(conn, id).await?;
    conn.commit().await?;
    Ok(restored)
}

async fn restore_locked(conn: &mut MySqlConnection, id: u64) -> Result<Restored, sqlx::Error> {
    if !tables_exist(conn).await? {
        return Ok(Restored::NoSuchItem);
    }
    type ItemRow = (String, String, Option<String>, Option<u64>, Option<i64>, Option<u64>);
    let item: Option<ItemRow> = sqlx::query_as(
        "SELECT CAST(removed AS CHAR), CAST(name_hash AS CHAR), CAST(name AS CHAR), size, mtime, size_after
         FROM ezdbfile_quarantine WHERE id = ? FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((removed, hash, name, size, mtime, size_after)) = item else {
        return Ok(Restored::NoSuchItem);
    };
    let current: Option<(u64, i64)> = sqlx::query_as(
        "SELECT CAST(size AS UNSIGNED), CAST(mtime AS SIGNED) FROM ezdbfile WHERE name_hash = ? FOR UPDATE",
    )
    .bind(&hash)
    .fetch_optional(&mut *conn)
    .await?;
    let label = name.clone().unwrap_or_else(|| hash.clone());
    match (removed.as_str(), current) {
        ("row", Some(_)) => {
            return Ok(Restored::Conflict(format!(
                "{label}: a file is stored under its key again; remove it first to restore the quarantined one"
            )))
        }
        ("row", None) => {
            sqlx::query(
                "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
                 SELECT datatype, name, name_trunk, name_hash, scope, size, mtime, expired FROM ezdbfile_quarantine
                 WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        ("chunks", None) => {
            return Ok(Restored::Conflict(format!(
                "{label}: the file is gone; its chunks cannot be put back"
            )))
        }
        ("chunks", Some((now_size, now_mtime))) => {
            let expected_size = size_after.or(size);
            if Some(now_mtime) != mtime || Some(now_size) != expected_size {
                return Ok(Restored::Conflict(format!(
                    "{label}: the file changed since the repair (size {now_size}, mtime {now_mtime}); restoring would damage the new version"
                )));
            }
        }
        ("orphans", Some(_)) => {
            return Ok(Restored::Conflict(format!(
                "{hash}: a file is stored under this key now; its chunks would corrupt it"
            )))
        }
        _ => {}
    }
    let (taken,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM ezdbfile_data d JOIN ezdbfile_quarantine_data q ON q.`offset` = d.`offset`
         WHERE d.name_hash = ? AND q.quarantine_id = ?",
    )
    .bind(&hash)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if taken > 0 {
        return Ok(Restored::Conflict(format!(
            "{label}: {taken} chunk offset(s) are in use again; nothing restored"
        )));
    }
    // Orphans have no row: the foreign key (if any) would refuse them, as it refused nothing
    // when they were written. Session-only, switched back at once.
    let orphans = removed == "orphans";
    if orphans {
        conn.execute("SET SESSION foreign_key_checks = 0").await?;
    }
    let copied = sqlx::query(
        "INSERT INTO ezdbfile_data (name_hash, `offset`, filedata)
         SELECT ?, `offset`, filedata FROM ezdbfile_quarantine_data WHERE quarantine_id = ?",
    )
    .bind(&hash)
    .bind(id)
    .execute(&mut *conn)
    .await;
    if orphans {
        conn.execute("SET SESSION foreign_key_checks = 1").await?;
    }
    copied?;
    if removed == "chunks" && size_after.is_some() {
        sqlx::query("UPDATE ezdbfile SET size = ? WHERE name_hash = ?")
            .bind(size)
            .bind(&hash)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM ezdbfile_quarantine_data WHERE quarantine_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM ezdbfile_quarantine WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(Restored::Restored { name })
}

impl Cluster {
    /// What repairs have put in the quarantine (empty when no repair ever needed it).
    pub async fn quarantined(&self) -> Result<Vec<QuarantineItem>> {
        self.inner
            .db
            .retrying(Op::List, "quarantine", |mut conn| async move {
                let items = list(&mut conn).await;
                done(conn, items.map_err(Into::into))
            })
            .await
    }

    /// Puts one quarantined item back where the repair took it from, in one transaction, unless
    /// that would overwrite something stored since ([`Restored::Conflict`]).
    pub async fn restore(&self, id: u64) -> Result<Restored> {
        self.inner
            .db
            .retrying(Op::Store, "quarantine restore", |mut conn| async move {
                let restored = restore_one(&mut conn, id).await;
                done(conn, restored.map_err(Into::into))
            })
            .await
    }
}
