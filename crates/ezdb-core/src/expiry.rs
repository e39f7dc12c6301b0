//! Global expiry keys ("clear the view cache" without touching a row), honoured by every read
//! for the scope a key covers. They live where legacy nodes keep them, the clustered
//! `expiry.php` (`legacy_expiry_file`), and in ezdb's optional `ezdbfile_expiry` table (one row
//! per key, updated atomically); a key set through ezdb goes to both where both exist, and reads
//! take the later of the two, so a clear made on any node is seen by every other.

use crate::cluster::{Cluster, Inner};
use crate::content::ContentReader;
use crate::db::{done, Attempt};
use crate::error::{Error, Op, Result};
use crate::name::FileName;
use crate::store::RowSpec;
use sqlx::mysql::{MySqlArguments, MySqlConnection, MySqlRow};
use sqlx::query::Query;
use sqlx::{MySql, Row};
use std::collections::BTreeMap;
use std::sync::Mutex;

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

/// The SQL through which a metadata read learns, in the same statement, the global expiry of the
/// file's scope: the `@<scope>` row of `ezdbfile_expiry` when that table exists, and the version
/// (mtime, size) of the legacy `expiry.php` row when one is configured, whose keys are parsed
/// once per version ([`ExpiryFileCache`]). Without either source the columns are NULL.
pub(crate) struct ExpirySql<'a> {
    table: bool,
    file: Option<&'a FileName>,
    /// The metadata table holding `expiry.php` (the eZDFS cache table on a DFS site).
    file_table: &'a str,
}

impl<'a> ExpirySql<'a> {
    pub(crate) fn of(inner: &'a Inner) -> ExpirySql<'a> {
        let file = inner.expiry_file.as_ref().map(|f| &f.name);
        ExpirySql {
            table: inner.db.capabilities.has_expiry_table(),
            file,
            file_table: match (&inner.dfs, file) {
                (Some(dfs), Some(file)) => dfs.table(file),
                _ => "ezdbfile",
            },
        }
    }

    /// Selected after the metadata columns: `table_expiry` when the table exists,
    /// `expiry_file_mtime` and `expiry_file_size` when the legacy file is configured (only what
    /// can be non-NULL: every column costs its metadata on each execution). Read them with
    /// [`ExpiryColumns::from_row`] of the same `ExpirySql`.
    pub(crate) fn columns(&self) -> &'static str {
        match (self.table, self.file.is_some()) {
            (true, true) => {
                ", CAST(e.expiry AS SIGNED) AS table_expiry, \
                 CAST(x.mtime AS SIGNED) AS expiry_file_mtime, CAST(x.size AS UNSIGNED) AS expiry_file_size"
            }
            (true, false) => ", CAST(e.expiry AS SIGNED) AS table_expiry",
            (false, true) => {
                ", CAST(x.mtime AS SIGNED) AS expiry_file_mtime, CAST(x.size AS UNSIGNED) AS expiry_file_size"
            }
            (false, false) => "",
        }
    }

    /// The packed metadata column of a read by name hash, with what the joined sources say
    /// ([`FileMeta::from_row_of`](crate::meta::FileMeta::from_row_of) reads both): one column
    /// instead of the metadata plus [`ExpirySql::columns`].
    pub(crate) fn meta_columns(&self) -> &'static str {
        crate::meta::META_COLUMNS_BY_HASH[self.variant()]
    }

    /// Which of the SQL texts this gives (0..4): the table's presence (which can change at
    /// `install_schema`) and the legacy file's, for statements built once per handle.
    pub(crate) fn variant(&self) -> usize {
        usize::from(self.table) | usize::from(self.file.is_some()) << 1
    }

    /// Joined after `FROM <metadata table> f`; binds one value (see [`ExpirySql::bind`]) when
    /// the legacy file is configured, before any other placeholder of the statement.
    pub(crate) fn joins(&self) -> String {
        let table_join = if self.table {
            " LEFT JOIN ezdbfile_expiry e ON e.name = CONCAT('@', f.scope)"
        } else {
            ""
        };
        match self.file {
            Some(_) => format!("{table_join} LEFT JOIN {} x ON x.name_hash = ?", self.file_table),
            None => table_join.to_owned(),
        }
    }

    /// A condition for `WHERE`: the table's key (when the table exists) does not expire the file.
    pub(crate) fn table_condition(&self) -> &'static str {
        if self.table {
            " AND (e.expiry IS NULL OR f.mtime >= e.expiry)"
        } else {
            ""
        }
    }

    pub(crate) fn bind<'q>(&self, query: Query<'q, MySql, MySqlArguments>) -> Query<'q, MySql, MySqlArguments>
    where
        'a: 'q,
    {
        match self.file {
            Some(file) => query.bind(file.hash()),
            None => query,
        }
    }
}

/// What one read's row says about global expiry, before the legacy file's keys are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExpiryColumns {
    table: Option<i64>,
    /// (mtime, size) of the `expiry.php` row; `None` when not configured or not stored.
    file_version: Option<(i64, u64)>,
}

impl ExpiryColumns {
    /// The table's key and the legacy file's version, as a packed metadata column carries them
    /// ([`META_COLUMNS_BY_HASH`](crate::meta::META_COLUMNS_BY_HASH)).
    pub(crate) fn new(table: Option<i64>, file_version: Option<(i64, u64)>) -> ExpiryColumns {
        ExpiryColumns { table, file_version }
    }

    /// The columns `sql` selected ([`ExpirySql::columns`]) from `row`.
    pub(crate) fn from_row(row: &MySqlRow, sql: &ExpirySql<'_>) -> std::result::Result<ExpiryColumns, sqlx::Error> {
        let file_version = match sql.file {
            Some(_) => {
                let mtime: Option<i64> = row.try_get("expiry_file_mtime")?;
                let size: Option<u64> = row.try_get("expiry_file_size")?;
                mtime.zip(size)
            }
            None => None,
        };
        Ok(ExpiryColumns {
            table: if sql.table { row.try_get("table_expiry")? } else { None },
            file_version,
        })
    }
}

/// The configured legacy `expiry.php` and its keys as last parsed, per version of its row.
pub(crate) struct ExpiryFile {
    pub(crate) name: FileName,
    parsed: Mutex<Option<ParsedExpiryFile>>,
}

struct ParsedExpiryFile {
    version: (i64, u64),
    /// The latest expiry of the keys covering each scope.
    by_scope: BTreeMap<&'static str, i64>,
}

/// Cached knowledge of the legacy file, consulted by every read of a handle.
pub(crate) type ExpiryFileCache = Option<ExpiryFile>;

impl ExpiryFile {
    pub(crate) fn new(name: &str) -> Result<ExpiryFile> {
        Ok(ExpiryFile {
            name: FileName::new(name)?,
            parsed: Mutex::new(None),
        })
    }

    /// The legacy file's expiry for `scope` at `version`, or `Err(())` when the file changed
    /// since it was last parsed (the caller reloads it and asks again).
    fn scope_expiry(&self, version: (i64, u64), scope: &str) -> std::result::Result<Option<i64>, ()> {
        let parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        match parsed.as_ref() {
            Some(p) if p.version == version => Ok(p.by_scope.get(scope).copied()),
            _ => Err(()),
        }
    }

    /// The expiry for `scope` in the version parsed last, whatever it is.
    fn latest(&self, scope: &str) -> Option<i64> {
        let parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        parsed.as_ref().and_then(|p| p.by_scope.get(scope).copied())
    }

    fn remember(&self, version: (i64, u64), keys: &BTreeMap<String, i64>) {
        let mut by_scope = BTreeMap::new();
        for (key, at) in keys {
            if let Some((_, scope)) = SCOPED_EXPIRY_KEYS.iter().find(|(k, _)| k == key) {
                let latest = by_scope.entry(*scope).or_insert(*at);
                *latest = (*latest).max(*at);
            }
        }
        *self.parsed.lock().unwrap_or_else(|e| e.into_inner()) = Some(ParsedExpiryFile { version, by_scope });
    }

    /// Reads the file's row and bytes (in one statement on eZDB; the row, then the file on the
    /// DFS mount) and remembers its keys.
    async fn reload(
        &self,
        inner: &Inner,
        conn: &mut MySqlConnection,
    ) -> std::result::Result<BTreeMap<String, i64>, sqlx::Error> {
        let (version, bytes) = match &inner.dfs {
            Some(dfs) => {
                let sql = format!(
                    "SELECT CAST(mtime AS SIGNED), CAST(size AS UNSIGNED) FROM {} WHERE name_hash = ?",
                    dfs.table(&self.name)
                );
                let row: Option<(i64, u64)> = sqlx::query_as(&sql)
                    .bind(self.name.hash())
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(version) = row else {
                    return Ok(BTreeMap::new());
                };
                (version, dfs.read_small(&self.name).await)
            }
            None => {
                let rows: Vec<(i64, u64, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT CAST(f.mtime AS SIGNED), CAST(f.size AS UNSIGNED), d.filedata
                     FROM ezdbfile f LEFT JOIN ezdbfile_data d ON d.name_hash = f.name_hash
                     WHERE f.name_hash = ? ORDER BY d.`offset`",
                )
                .bind(self.name.hash())
                .fetch_all(&mut *conn)
                .await?;
                let Some(&(mtime, size, _)) = rows.first() else {
                    return Ok(BTreeMap::new());
                };
                let bytes: Vec<u8> = rows.into_iter().filter_map(|(_, _, data)| data).flatten().collect();
                ((mtime, size), bytes)
            }
        };
        // A deleted expiry.php holds no keys for legacy nodes either.
        let keys = if version.0 < 0 {
            BTreeMap::new()
        } else {
            parse_expiry_php(&bytes)
        };
        self.remember(version, &keys);
        Ok(keys)
    }
}

/// The global expiry covering `scope` according to `columns` (`Some(None)`: no key covers it),
/// or `None` when the legacy file changed since it was last parsed: [`reload_expiry_file`] first.
pub(crate) fn cached_global_expiry(inner: &Inner, columns: ExpiryColumns, scope: &str) -> Option<Option<i64>> {
    let from_file = match (&inner.expiry_file, columns.file_version) {
        (Some(file), Some(version)) => file.scope_expiry(version, scope).ok()?,
        _ => None,
    };
    Some(columns.table.max(from_file))
}

/// Reads the configured legacy expiry file again (no-op when none is configured).
pub(crate) async fn reload_expiry_file(
    inner: &Inner,
    conn: &mut MySqlConnection,
) -> std::result::Result<(), sqlx::Error> {
    if let Some(file) = &inner.expiry_file {
        file.reload(inner, conn).await?;
    }
    Ok(())
}

/// [`cached_global_expiry`], reading the legacy file again on `conn` when it changed. When it
/// changed once more between the two statements, the newer keys are what we go by.
pub(crate) async fn resolve_global_expiry(
    inner: &Inner,
    conn: &mut MySqlConnection,
    columns: ExpiryColumns,
    scope: &str,
) -> std::result::Result<Option<i64>, sqlx::Error> {
    if let Some(at) = cached_global_expiry(inner, columns, scope) {
        return Ok(at);
    }
    reload_expiry_file(inner, conn).await?;
    let latest = inner.expiry_file.as_ref().and_then(|file| file.latest(scope));
    Ok(columns.table.max(latest))
}

impl Cluster {
    /// Sets `key` to `at` (default: the database clock now): every file of the key's scope with an
    /// older mtime counts as expired from this moment, on every server: written into the legacy
    /// `expiry.php` (when `legacy_expiry_file` is set: legacy nodes read it) and into
    /// `ezdbfile_expiry` (when the table exists). Returns the timestamp.
    pub async fn set_global_expiry(&self, key: &str, at: Option<i64>) -> Result<i64> {
        check_key(key)?;
        let at = at.unwrap_or_else(|| self.now());
        let table = self.inner.db.capabilities.has_expiry_table();
        if !table && self.inner.expiry_file.is_none() {
            return Err(Error::Config(format!(
                "cannot set the global expiry key {key}: this database has no ezdbfile_expiry table and no legacy \
                 expiry file is configured; set legacy_expiry_file (PHP: LegacyExpiryFile; ezcache: --cache-dir) to \
                 the site's cache/expiry.php, as legacy nodes use, or run `ezdb schema install`"
            )));
        }
        if table {
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
        }
        if let Some(file) = &self.inner.expiry_file {
            self.mirror_to_legacy_file(&file.name, key, at).await?;
        }
        Ok(at)
    }

    /// The timestamp of `key`, if it was ever set (the later of the legacy file and the table).
    pub async fn global_expiry(&self, key: &str) -> Result<Option<i64>> {
        Ok(self.global_expiries().await?.remove(key))
    }

    /// Every key and its timestamp: the legacy `expiry.php` (when configured) and the
    /// `ezdbfile_expiry` table (when present), the later timestamp of each key.
    pub async fn global_expiries(&self) -> Result<BTreeMap<String, i64>> {
        let inner = &self.inner;
        self.inner
            .db
            .retrying(Op::Expiry, "global expiry keys", |mut conn| async move {
                let keys = async {
                    let mut keys = match &inner.expiry_file {
                        Some(file) => file.reload(inner, &mut conn).await?,
                        None => BTreeMap::new(),
                    };
                    if inner.db.capabilities.has_expiry_table() {
                        for (key, at) in table_keys(&mut conn).await? {
                            let latest = keys.entry(key).or_insert(at);
                            *latest = (*latest).max(at);
                        }
                    }
                    Ok(keys)
                }
                .await;
                done(conn, keys)
            })
            .await
    }

    /// Takes the keys a legacy node wrote into `expiry.php` (the configured one) into the
    /// expiry table, keeping the later timestamp of each. Returns how many keys it read.
    pub async fn import_legacy_expiry(&self) -> Result<usize> {
        let Some(file) = &self.inner.expiry_file else {
            return Ok(0);
        };
        if !self.inner.db.capabilities.has_expiry_table() {
            return Ok(0);
        }
        let legacy = match self.fetch_with_meta(file.name.as_str(), crate::Visibility::Live).await {
            Ok(data) => parse_expiry_php(&data.bytes),
            Err(e) if e.is_not_found() => return Ok(0),
            Err(e) => return Err(e),
        };
        let current = self.table_expiries().await?;
        for (key, at) in &legacy {
            if check_key(key).is_ok() && current.get(key).is_none_or(|mine| mine < at) {
                self.set_global_expiry(key, Some(*at)).await?;
            }
        }
        Ok(legacy.len())
    }

    /// Read-modify-write of `expiry.php` under a row lock, so our nodes never lose each other's
    /// keys (legacy nodes still rewrite it whole, as they always did).
    async fn mirror_to_legacy_file(&self, file: &FileName, key: &str, at: i64) -> Result<()> {
        if let Some(dfs) = &self.inner.dfs {
            return dfs
                .rewrite_locked(self, file, "expirycache", "misc", |old_mtime, bytes| {
                    let mut keys = parse_expiry_php(bytes);
                    keys.insert(key.to_owned(), at);
                    let mtime = self.now().max(old_mtime.map_or(0, |m| m.abs() + 1));
                    (render_expiry_php(&keys).into_bytes(), mtime)
                })
                .await;
        }
        self.inner
            .db
            .retrying(Op::Expiry, file.as_str(), |mut conn| async move {
                let mirrored = async {
                    conn.begin().await?;
                    let (old_mtime, bytes) = read_locked(&mut conn, file).await?;
                    let mut keys = parse_expiry_php(&bytes);
                    keys.insert(key.to_owned(), at);
                    let php = render_expiry_php(&keys);
                    // Always a newer mtime, even within one second: legacy nodes re-read their
                    // local copy only when the row is newer, and our readers key their cache on it.
                    let spec = RowSpec {
                        name: file,
                        scope: "expirycache",
                        datatype: "misc",
                        mtime: self.now().max(old_mtime.map_or(0, |m| m.abs() + 1)),
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

impl Cluster {
    /// The keys of the `ezdbfile_expiry` table alone.
    async fn table_expiries(&self) -> Result<BTreeMap<String, i64>> {
        self.inner
            .db
            .retrying(Op::Expiry, "global expiry keys", |mut conn| async move {
                let rows = table_keys(&mut conn).await;
                done(conn, rows.map(|r| r.into_iter().collect()).map_err(Into::into))
            })
            .await
    }
}

/// Every key of the `ezdbfile_expiry` table (not the `@<scope>` rows reads join).
async fn table_keys(conn: &mut MySqlConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT CAST(name AS CHAR), CAST(expiry AS SIGNED) FROM ezdbfile_expiry WHERE name NOT LIKE '@%'")
        .fetch_all(&mut *conn)
        .await
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

/// The mtime and bytes of a small file, its row locked for the transaction; empty when absent.
async fn read_locked(conn: &mut MySqlConnection, file: &FileName) -> Attempt<(Option<i64>, Vec<u8>)> {
    let mtime: Option<(i64,)> =
        sqlx::query_as("SELECT CAST(mtime AS SIGNED) FROM ezdbfile WHERE name_hash = ? FOR UPDATE")
            .bind(file.hash())
            .fetch_optional(&mut *conn)
            .await?;
    let chunks: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT filedata FROM ezdbfile_data WHERE name_hash = ? ORDER BY `offset`")
            .bind(file.hash())
            .fetch_all(&mut *conn)
            .await?;
    Ok((mtime.map(|m| m.0), chunks.into_iter().flat_map(|c| c.0).collect()))
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
