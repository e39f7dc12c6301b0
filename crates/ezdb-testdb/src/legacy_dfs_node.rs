//! A legacy eZDFS node, as far as tests need one: its row statements (eZDFS spec 3.3-3.4) on its
//! own connection, and its file writes on the mount, so a test can show that what either side
//! writes the other reads.

use sqlx::mysql::MySqlConnection;
use sqlx::Connection;
use std::path::{Path, PathBuf};

/// A legacy eZDFS node on the database at `url` and the share at `mount`.
pub struct LegacyDfsNode {
    url: String,
    mount: PathBuf,
}

impl LegacyDfsNode {
    pub fn new(url: &str, mount: &Path) -> LegacyDfsNode {
        LegacyDfsNode {
            url: url.to_owned(),
            mount: mount.to_owned(),
        }
    }

    async fn connect(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("the legacy eZDFS node cannot connect: {e}"))
    }

    /// Its store: the row upsert in `table` (the legacy columns), then the bytes written at
    /// `<mount>/<name>`.
    pub async fn store(&self, table: &str, name: &str, bytes: &[u8], scope: &str, datatype: &str, mtime: i64) {
        let sql = format!(
            "INSERT INTO {table} (name, name_hash, name_trunk, scope, datatype, size, mtime, expired)
             VALUES (?, MD5(?), ?, ?, ?, ?, ?, 0)
             ON DUPLICATE KEY UPDATE size = VALUES(size), mtime = VALUES(mtime), expired = 0"
        );
        sqlx::query(&sql)
            .bind(name)
            .bind(name)
            .bind(name)
            .bind(scope)
            .bind(datatype)
            .bind(bytes.len() as u64)
            .bind(mtime)
            .execute(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("legacy eZDFS store of {name} in {table}: {e}"));
        let path = self.mount.join(name);
        std::fs::create_dir_all(path.parent().expect("a name has a directory")).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Its delete: `mtime = -ABS(mtime), expired = 1`; the file stays on the mount.
    pub async fn delete(&self, table: &str, name: &str) {
        let sql = format!("UPDATE {table} SET mtime = -ABS(mtime), expired = 1 WHERE name_hash = MD5(?)");
        sqlx::query(&sql)
            .bind(name)
            .execute(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("legacy eZDFS delete of {name} in {table}: {e}"));
    }
}
