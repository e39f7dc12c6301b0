// What is known about a stored file (size, mtime, scope, datatype, expiry state) and the
// expiry rules that decide whether a cache entry may be served.

use sqlx::mysql::MySqlRow;
use sqlx::Row;

/// The metadata columns but the name (see [`META_COLUMNS`]).
macro_rules! row_columns {
    () => {
        "CAST(f.size AS UNSIGNED) AS size, CAST(f.mtime AS SIGNED) AS mtime, CAST(f.scope AS CHAR) AS scope, \
         CAST(f.datatype AS CHAR) AS datatype, CAST(f.name_trunk AS CHAR) AS name_trunk, \
         CAST(f.expired AS SIGNED) AS expired"
    };
}

/// Columns of a metadata read. Text columns are cast to CHAR: `_bin` collations would otherwise
/// arrive flagged as binary. The global expiry of the file's scope comes with them, from the
/// sources [`ExpirySql`](crate::expiry::ExpirySql) joins.
pub(crate) const META_COLUMNS: &str = concat!("CAST(f.name AS CHAR) AS name, ", row_columns!());

/// [`META_COLUMNS`] without the name, for reads by name hash, which know the name already
/// ([`FileMeta::from_row_of`]): every column of a result costs its definition packet and decoding
/// on every execution, on the hot single-statement reads.
pub(crate) const META_COLUMNS_BY_HASH: &str = row_columns!();

/// Scope given to files stored without one (legacy `UNKNOWN_SCOPE`).
pub const DEFAULT_SCOPE: &str = "UNKNOWN_SCOPE";
/// Datatype given to files stored without one (legacy `misc`).
pub const DEFAULT_DATATYPE: &str = "misc";

/// A file's metadata row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub name: String,
    pub size: u64,
    /// Unix seconds; negative when the file was deleted (legacy `-ABS(mtime)`).
    pub mtime: i64,
    pub scope: String,
    pub datatype: String,
    /// The expiry group the row belongs to (legacy `name_trunk`, see `name::name_trunk`).
    pub name_trunk: String,
    /// The row is soft-deleted (`expired = 1` or a negative mtime).
    pub deleted: bool,
    /// The global expiry key covering this file's scope, if any.
    pub global_expiry: Option<i64>,
}

impl FileMeta {
    /// The row of a read with [`META_COLUMNS`]; `global_expiry` is filled in by the caller.
    pub(crate) fn from_row(row: &MySqlRow) -> Result<FileMeta, sqlx::Error> {
        FileMeta::from_row_of(row, row.try_get("name")?)
    }

    /// The row of `name` read with [`META_COLUMNS_BY_HASH`] (by its name hash, so the row's name
    /// is `name`); `global_expiry` is filled in by the caller.
    pub(crate) fn from_row_of(row: &MySqlRow, name: String) -> Result<FileMeta, sqlx::Error> {
        let mtime: i64 = row.try_get("mtime")?;
        let expired: i64 = row.try_get("expired")?;
        Ok(FileMeta {
            name,
            size: row.try_get("size")?,
            mtime,
            scope: row.try_get("scope")?,
            datatype: row.try_get("datatype")?,
            name_trunk: row.try_get("name_trunk")?,
            deleted: is_deleted(mtime, expired != 0),
            global_expiry: None,
        })
    }

    /// Deleted, or older than the global expiry of its scope: absent for `exists`, stale for caches.
    pub fn is_expired(&self) -> bool {
        is_expired(self.mtime, self.deleted, self.global_expiry)
    }

    /// The mtime as it was before a soft delete negated it.
    pub fn original_mtime(&self) -> i64 {
        self.mtime.abs()
    }

    /// A generation-lock row rather than content.
    pub fn is_generating(&self) -> bool {
        self.name.ends_with(crate::name::GENERATING_SUFFIX)
    }
}

/// The legacy soft-delete mark: `expired = 1` or a negated mtime.
pub(crate) fn is_deleted(mtime: i64, expired: bool) -> bool {
    expired || mtime < 0
}

/// What counts as live: not deleted, and not older than the global expiry of its scope (an mtime
/// equal to the key is still valid, as legacy compares strictly).
pub fn is_expired(mtime: i64, deleted: bool, global_expiry: Option<i64>) -> bool {
    deleted || global_expiry.is_some_and(|key| mtime < key)
}

/// When a cache entry counts as fresh: legacy `ttl` and `expiry` arguments of `processCache`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// Maximum age in seconds; `Some(0)` means always regenerate; negative means no limit.
    pub ttl: Option<i64>,
    /// Entries with an mtime strictly below this Unix time are expired; negative means none.
    pub expiry: Option<i64>,
}

impl Freshness {
    pub fn ttl(seconds: i64) -> Freshness {
        Freshness {
            ttl: Some(seconds),
            expiry: None,
        }
    }

    pub fn expiry(at: i64) -> Freshness {
        Freshness {
            ttl: None,
            expiry: Some(at),
        }
    }

    /// Whether `meta` may be served as fresh at `now` (database clock).
    pub fn accepts(&self, meta: &FileMeta, now: i64) -> bool {
        let ttl = self.ttl.filter(|t| *t >= 0);
        let expiry = self.expiry.filter(|e| *e >= 0);
        if meta.is_expired() || ttl == Some(0) {
            return false;
        }
        !is_file_expired(meta.mtime, expiry, now, ttl)
    }
}

/// Legacy `isFileExpired`: a missing or negative mtime is expired; otherwise expired when older
/// than `expiry`, or (with a TTL) older than `max(expiry, now - ttl)`. Comparisons are strict.
pub fn is_file_expired(mtime: i64, expiry: Option<i64>, now: i64, ttl: Option<i64>) -> bool {
    if mtime <= 0 {
        return true;
    }
    let limit = match (expiry, ttl) {
        (expiry, None) => expiry,
        (Some(expiry), Some(ttl)) => Some(expiry.max(now - ttl)),
        (None, Some(ttl)) => Some(now - ttl),
    };
    limit.is_some_and(|limit| mtime < limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn legacy_is_file_expired_table() {
        // Spec scenarios 54-58.
        assert!(is_file_expired(-1, Some(-1), NOW, None));
        assert!(is_file_expired(0, Some(-1), NOW, None));
        assert!(is_file_expired(NOW - 3600, Some(NOW), NOW, None));
        assert!(!is_file_expired(NOW, Some(NOW - 3600), NOW, None));
        assert!(!is_file_expired(NOW, Some(-1), NOW, Some(60)));
        assert!(is_file_expired(NOW - 90, Some(-1), NOW, Some(60)));
        assert!(is_file_expired(NOW - 90, Some(NOW), NOW, Some(60)));
        assert!(!is_file_expired(NOW, Some(NOW - 90), NOW, Some(60)));
        assert!(!is_file_expired(NOW, Some(NOW), NOW, None));
        assert!(!is_file_expired(NOW, None, NOW, None));
    }

    fn meta(mtime: i64) -> FileMeta {
        FileMeta {
            name: "n".into(),
            size: 1,
            mtime,
            scope: "viewcache".into(),
            datatype: "php".into(),
            name_trunk: "n".into(),
            deleted: mtime < 0,
            global_expiry: None,
        }
    }

    #[test]
    fn freshness_honours_ttl_zero_deletes_and_global_expiry() {
        assert!(!Freshness::ttl(0).accepts(&meta(NOW), NOW));
        assert!(Freshness::default().accepts(&meta(NOW), NOW));
        assert!(!Freshness::default().accepts(&meta(-NOW), NOW));
        assert!(Freshness::ttl(-5).accepts(&meta(1), NOW));
        let mut covered = meta(NOW - 10);
        covered.global_expiry = Some(NOW - 5);
        assert!(covered.is_expired());
        assert!(!Freshness::default().accepts(&covered, NOW));
        covered.global_expiry = Some(NOW - 10);
        assert!(!covered.is_expired(), "equal to the key is still valid");
    }
}
