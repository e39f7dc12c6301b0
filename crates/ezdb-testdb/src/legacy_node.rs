//! A legacy eZDB node, as far as tests need one: the statements the legacy PHP handler sends
//! (from the behaviour spec, sections 2.5 and 3.4-3.6), run on their own connection, so a test
//! can show that rows written by either side are read by the other.

use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor};

/// The legacy handler's chunk size (`DBChunkSize` default).
pub const LEGACY_CHUNK_SIZE: usize = 65_535;

/// A legacy node on the database at `url`.
pub struct LegacyNode {
    url: String,
}

impl LegacyNode {
    pub fn new(url: &str) -> LegacyNode {
        LegacyNode { url: url.to_owned() }
    }

    async fn connect(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("legacy node: cannot connect to {}: {e}", self.url))
    }

    /// `storeContents`: upsert the row (MD5 in SQL), upsert each chunk, delete leftovers, in one
    /// transaction.
    pub async fn store_contents(&self, name: &str, data: &[u8], scope: &str, mtime: i64) {
        let mut conn = self.connect().await;
        conn.execute("BEGIN").await.unwrap();
        sqlx::query(
            "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
             VALUES ('misc', ?, ?, MD5(?), ?, ?, ?, 0)
             ON DUPLICATE KEY UPDATE datatype = VALUES(datatype), scope = VALUES(scope), size = VALUES(size),
               mtime = VALUES(mtime), expired = VALUES(expired), name_trunk = VALUES(name_trunk)",
        )
        .bind(name)
        .bind(name)
        .bind(name)
        .bind(scope)
        .bind(data.len() as u64)
        .bind(mtime)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("legacy store of {name}: {e}"));
        for (i, chunk) in data.chunks(LEGACY_CHUNK_SIZE).enumerate() {
            sqlx::query(
                "INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) VALUES (MD5(?), ?, ?)
                 ON DUPLICATE KEY UPDATE filedata = VALUES(filedata)",
            )
            .bind(name)
            .bind((i * LEGACY_CHUNK_SIZE) as u64)
            .bind(chunk)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("legacy chunk of {name}: {e}"));
        }
        sqlx::query("DELETE FROM ezdbfile_data WHERE name_hash = MD5(?) AND (`offset` % ? != 0 OR `offset` > ?)")
            .bind(name)
            .bind(LEGACY_CHUNK_SIZE as u64)
            .bind(data.len() as u64)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.execute("COMMIT").await.unwrap();
    }

    /// `fetchContents`: the row's mtime, then its chunks in order (two statements); `None` when
    /// there is no row or it is deleted (`mtime < 0`).
    pub async fn fetch_contents(&self, name: &str) -> Option<Vec<u8>> {
        let mut conn = self.connect().await;
        let row: Option<(i64,)> = sqlx::query_as("SELECT CAST(mtime AS SIGNED) FROM ezdbfile WHERE name_hash = MD5(?)")
            .bind(name)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
        row.filter(|(mtime,)| *mtime >= 0)?;
        let chunks: Vec<(Vec<u8>,)> =
            sqlx::query_as("SELECT filedata FROM ezdbfile_data WHERE name_hash = MD5(?) ORDER BY `offset`")
                .bind(name)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        Some(chunks.into_iter().flat_map(|c| c.0).collect())
    }
}
