// Copying and moving files inside the database: chunks are copied or re-pointed by the server,
// never sent through the client, each operation in one transaction.

use crate::cluster::Cluster;
use crate::db::{done, Attempt, Conn};
use crate::error::{Error, Op, Result};
use crate::name::{name_trunk, FileName};
use sqlx::mysql::MySqlConnection;

impl Cluster {
    /// Copies `source` to `destination` (replacing it): datatype, scope, size and mtime are kept,
    /// the trunk is recomputed; copying a deleted file gives a deleted copy, as legacy does.
    pub async fn copy(&self, source: &str, destination: &str) -> Result<()> {
        let (src, dst) = (&FileName::new(source)?, &FileName::new(destination)?);
        if src == dst {
            return Ok(());
        }
        if let Some(dfs) = &self.inner.dfs {
            return dfs.copy(self, src, dst).await;
        }
        self.inner
            .db
            .retrying(Op::Copy, src.as_str(), |mut conn| async move {
                let copied = copy_tx(&mut conn, src, dst).await;
                done(conn, copied)
            })
            .await
    }

    /// Legacy `fileLinkCopy`: the database has no links, so this is a copy.
    pub async fn link_copy(&self, source: &str, destination: &str) -> Result<()> {
        self.copy(source, destination).await
    }

    /// Renames `source` to `destination`, replacing any row there (even a deleted one). Moving a
    /// file onto itself does nothing.
    pub async fn rename(&self, source: &str, destination: &str) -> Result<()> {
        let (src, dst) = (&FileName::new(source)?, &FileName::new(destination)?);
        if src == dst {
            return Ok(());
        }
        if let Some(dfs) = &self.inner.dfs {
            return dfs.rename(self, src, dst).await;
        }
        self.inner
            .db
            .retrying(Op::Move, src.as_str(), |mut conn| async move {
                let moved = async {
                    conn.begin().await?;
                    move_row(&mut conn, src, dst, None).await?;
                    conn.commit().await?;
                    Ok(())
                }
                .await;
                done(conn, moved)
            })
            .await
    }
}

async fn copy_tx(conn: &mut Conn, src: &FileName, dst: &FileName) -> Attempt<()> {
    conn.begin().await?;
    let scope = lock_source(&mut *conn, src, Op::Copy).await?;
    sqlx::query(
        "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
         SELECT datatype, ?, ?, ?, scope, size, mtime, mtime < 0 OR expired FROM ezdbfile WHERE name_hash = ?
         ON DUPLICATE KEY UPDATE datatype = VALUES(datatype), name_trunk = VALUES(name_trunk), scope = VALUES(scope),
           size = VALUES(size), mtime = VALUES(mtime), expired = VALUES(expired)",
    )
    .bind(dst.as_str())
    .bind(name_trunk(dst.as_str(), &scope))
    .bind(dst.hash())
    .bind(src.hash())
    .execute(&mut **conn)
    .await?;
    sqlx::query("DELETE FROM ezdbfile_data WHERE name_hash = ?")
        .bind(dst.hash())
        .execute(&mut **conn)
        .await?;
    sqlx::query("INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) SELECT ?, `offset`, filedata FROM ezdbfile_data WHERE name_hash = ?")
        .bind(dst.hash())
        .bind(src.hash())
        .execute(&mut **conn)
        .await?;
    conn.commit().await?;
    Ok(())
}

/// Locks the source row for the transaction and returns its scope; not found is final.
async fn lock_source(conn: &mut MySqlConnection, src: &FileName, op: Op) -> Attempt<String> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT CAST(scope AS CHAR) FROM ezdbfile WHERE name_hash = ? FOR UPDATE")
            .bind(src.hash())
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| r.0)
        .ok_or_else(|| Error::not_found(op, src.as_str()).into())
}

/// Inside the caller's transaction: replaces `dst` by `src`'s row and chunks and removes `src`.
/// `mtime` overrides the moved row's mtime (a negative one also marks it expired).
pub(crate) async fn move_row(
    conn: &mut MySqlConnection,
    src: &FileName,
    dst: &FileName,
    mtime: Option<i64>,
) -> Attempt<()> {
    let scope = lock_source(conn, src, Op::Move).await?;
    sqlx::query("DELETE FROM ezdbfile WHERE name_hash = ?")
        .bind(dst.hash())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
         SELECT datatype, ?, ?, ?, scope, size, COALESCE(?, mtime), COALESCE(? < 0, expired) FROM ezdbfile WHERE name_hash = ?",
    )
    .bind(dst.as_str())
    .bind(name_trunk(dst.as_str(), &scope))
    .bind(dst.hash())
    .bind(mtime)
    .bind(mtime)
    .bind(src.hash())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE ezdbfile_data SET name_hash = ? WHERE name_hash = ?")
        .bind(dst.hash())
        .bind(src.hash())
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM ezdbfile WHERE name_hash = ?")
        .bind(src.hash())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
