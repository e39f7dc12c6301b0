// Global expiry keys: one timestamp per key, each updated atomically on its own, honoured by
// every read for the scope the key covers; optionally mirrored into the legacy `expiry.php`.

use crate::cluster::Cluster;
use crate::content::ContentReader;
use crate::db::{done, Attempt};
use crate::error::{Error, Op, Result};
use crate::name::FileName;
use crate::store::RowSpec;
use sqlx::mysql::MySqlConnection;
use std::collections::BTreeMap;

/// Keys the kernel uses and the scope of the files each one expires. Other keys are plain
/// timestamps that callers compare themselves (as legacy `eZExpiryHandler` users do).
pub const SCOPED_EXPIRY_KEYS: &[(&str, &str)] = &[
    ("content-view-cache", "viewcache"),
    ("global-template-block-cache", "template-block"),
    ("template-block-cache", "template-block"),
    ("user-info-cache", "user-info-cache"),
];

/// The scope a key expires, or "" for a plain timestamp.
pub fn expiry_key_scope(key: &str) -> &'static str {
    SCOPED_EXPIRY_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, scope)| scope)
}

impl Cluster {
    /// Sets `key` to `at` (default: the database clock now): every file of the key's scope with an
    /// older mtime counts as expired from this moment, on every server. Returns the timestamp.
    pub async fn set_global_expiry(&self, key: &str, at: Option<i64>) -> Result<i64> {
        check_key(key)?;
        let at = at.unwrap_or_else(|| self.now());
        self.inner
            .db
            .retrying(Op::Expiry, key, |mut conn| async move {
                let set = async {
                    conn.begin().await?;
                    upsert_key(&mut conn, key, expiry_key_scope(key), at).await?;
                    refresh_scope_row(&mut conn, expiry_key_scope(key)).await?;
                    conn.commit().await?;
                    Ok(())
                }
                .await;
                done(conn, set)
            })
            .await?;
        if let Some(file) = &self.inner.config.legacy_expiry_file {
            self.mirror_to_legacy_file(file, key, at).await?;
        }
        Ok(at)
    }

    /// The timestamp of `key`, if it was ever set.
    pub async fn global_expiry(&self, key: &str) -> Result<Option<i64>> {
        Ok(self.global_expiries().await?.remove(key))
    }

    /// Every key and its timestamp.
    pub async fn global_expiries(&self) -> Result<BTreeMap<String, i64>> {
        self.inner
            .db
            .retrying(Op::Expiry, "global expiry keys", |mut conn| async move {
                let rows: std::result::Result<Vec<(String, i64)>, _> = sqlx::query_as(
                    "SELECT CAST(name AS CHAR), CAST(expiry AS SIGNED) FROM ezdbfile_expiry WHERE name NOT LIKE '@%'",
                )
                .fetch_all(&mut *conn)
                .await;
                done(conn, rows.map(|r| r.into_iter().collect()).map_err(Into::into))
            })
            .await
    }

    /// Takes the keys a legacy node wrote into `expiry.php` (the configured one) into the
    /// expiry table, keeping the later timestamp of each. Returns how many keys it read.
    pub async fn import_legacy_expiry(&self) -> Result<usize> {
        let Some(file) = self.inner.config.legacy_expiry_file.clone() else {
            return Ok(0);
        };
        let legacy = match self.fetch_with_meta(&file, crate::Visibility::Live).await {
            Ok(data) => parse_expiry_php(&data.bytes),
            Err(e) if e.is_not_found() => return Ok(0),
            Err(e) => return Err(e),
        };
        let current = self.global_expiries().await?;
        for (key, at) in &legacy {
            if check_key(key).is_ok() && current.get(key).is_none_or(|mine| mine < at) {
                self.set_global_expiry(key, Some(*at)).await?;
            }
        }
        Ok(legacy.len())
    }

    /// Read-modify-write of `expiry.php` under a row lock, so our nodes never lose each other's
    /// keys (legacy nodes still rewrite it whole, as they always did).
    async fn mirror_to_legacy_file(&self, file: &str, key: &str, at: i64) -> Result<()> {
        let file = &FileName::new(file)?;
        self.inner
            .db
            .retrying(Op::Expiry, file.as_str(), |mut conn| async move {
                let mirrored = async {
                    conn.begin().await?;
                    let mut keys = parse_expiry_php(&read_locked(&mut conn, file).await?);
                    keys.insert(key.to_owned(), at);
                    let php = render_expiry_php(&keys);
                    let spec = RowSpec {
                        name: file,
                        scope: "expirycache",
                        datatype: "misc",
                        mtime: self.now(),
                        expired: false,
                    };
                    let mut reader: ContentReader<'_> = Box::new(php.as_bytes());
                    self.write_file(&mut conn, &spec, &mut reader, Some(php.len() as u64))
                        .await?;
                    conn.commit().await?;
                    Ok(())
                }
                .await;
                done(conn, mirrored)
            })
            .await
    }
}

async fn upsert_key(conn: &mut MySqlConnection, key: &str, scope: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ezdbfile_expiry (name, scope, expiry) VALUES (?, ?, ?)
         ON DUPLICATE KEY UPDATE scope = VALUES(scope), expiry = VALUES(expiry)",
    )
    .bind(key)
    .bind(scope)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Recomputes the `@<scope>` row that reads join: the latest expiry of the scope's keys.
async fn refresh_scope_row(conn: &mut MySqlConnection, scope: &str) -> Result<(), sqlx::Error> {
    if scope.is_empty() {
        return Ok(());
    }
    let (latest,): (Option<i64>,) = sqlx::query_as(
        "SELECT CAST(MAX(expiry) AS SIGNED) FROM ezdbfile_expiry WHERE scope = ? AND name NOT LIKE '@%' FOR UPDATE",
    )
    .bind(scope)
    .fetch_one(&mut *conn)
    .await?;
    upsert_key(conn, &format!("@{scope}"), scope, latest.unwrap_or(0)).await
}

/// The bytes of a small file, its row locked for the transaction; empty when absent.
async fn read_locked(conn: &mut MySqlConnection, file: &FileName) -> Attempt<Vec<u8>> {
    sqlx::query("SELECT name_hash FROM ezdbfile WHERE name_hash = ? FOR UPDATE")
        .bind(file.hash())
        .execute(&mut *conn)
        .await?;
    let chunks: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT filedata FROM ezdbfile_data WHERE name_hash = ? ORDER BY `offset`")
            .bind(file.hash())
            .fetch_all(&mut *conn)
            .await?;
    Ok(chunks.into_iter().flat_map(|c| c.0).collect())
}

fn check_key(key: &str) -> Result<()> {
    let valid =
        !key.is_empty() && key.len() <= 100 && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if valid {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        name: key.to_owned(),
        what: "expiry key",
        value: key.to_owned(),
        reason: "use 1 to 100 characters among letters, digits and - _ . : (e.g. content-view-cache)".into(),
    })
}

/// Reads the `'key' => 123` pairs of a legacy `expiry.php`.
pub fn parse_expiry_php(php: &[u8]) -> BTreeMap<String, i64> {
    let text = String::from_utf8_lossy(php);
    let mut keys = BTreeMap::new();
    let mut rest = text.as_ref();
    while let Some(open) = rest.find('\'') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('\'') else { break };
        let key = &after[..close];
        let tail = after[close + 1..].trim_start();
        rest = &after[close + 1..];
        if let Some(value) = tail.strip_prefix("=>") {
            let value = value.trim_start();
            let digits: String = value.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
            if let Ok(at) = digits.parse() {
                keys.insert(key.to_owned(), at);
            }
        }
    }
    keys
}

/// Writes keys in the legacy `expiry.php` form that `eZExpiryHandler` includes.
pub fn render_expiry_php(keys: &BTreeMap<String, i64>) -> String {
    let entries: Vec<String> = keys.iter().map(|(k, v)| format!("'{k}' => {v}")).collect();
    format!("<?php\n$Timestamps = array( {} );\n?>\n", entries.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_php_round_trips() {
        let mut keys = BTreeMap::new();
        keys.insert("content-view-cache".to_owned(), 1_700_000_000);
        keys.insert("user-info-cache".to_owned(), 1_600_000_000);
        let php = render_expiry_php(&keys);
        assert!(php.starts_with("<?php\n$Timestamps = array("));
        assert_eq!(parse_expiry_php(php.as_bytes()), keys);
        assert!(parse_expiry_php(b"<?php $Timestamps = array(); ?>").is_empty());
    }

    #[test]
    fn keys_are_restricted_to_safe_characters() {
        assert!(check_key("content-view-cache").is_ok());
        assert!(check_key("a'b").is_err());
        assert!(check_key("").is_err());
        assert_eq!(expiry_key_scope("content-view-cache"), "viewcache");
        assert_eq!(expiry_key_scope("class-identifier-cache"), "");
    }
}
