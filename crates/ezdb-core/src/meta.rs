// What is known about a stored file (size, mtime, scope, datatype, expiry state) and the
// expiry rules that decide whether a cache entry may be served.

use crate::expiry::ExpiryColumns;
use sqlx::mysql::MySqlRow;
use sqlx::Row;

/// The metadata but the name, and what the expiry sources joined say (three SQL expressions:
/// the table's key, the legacy file's mtime and size, `''` when not joined), as one column `meta`.
macro_rules! row_columns {
    ($table_expiry:literal, $file_mtime:literal, $file_size:literal) => {
        concat!(
            "CONCAT(f.size, ',', f.mtime, ',', f.expired, ',', ",
            $table_expiry,
            ", ',', ",
            $file_mtime,
            ", ',', ",
            $file_size,
            ", ',', CHAR_LENGTH(CAST(f.scope AS CHAR)), ',', CHAR_LENGTH(CAST(f.datatype AS CHAR)), ',', \
             CAST(f.scope AS CHAR), CAST(f.datatype AS CHAR), CAST(f.name_trunk AS CHAR)) AS meta"
        )
    };
}

/// Columns of a metadata read. The row's fields come packed in one text column, `meta`
/// (`size,mtime,expired,table key,expiry file mtime,expiry file size,scope chars,datatype chars,`
/// then scope, datatype and name_trunk back to back, cut by their character counts; an absent
/// key or file is an empty field; [`FileMeta::from_row_of`] unpacks it): the driver parses every
/// column's definition packet and decodes it by name on every execution, about 2k instructions
/// per column, so six columns cost a hot read (`stat`, every `processCache`) more than the whole
/// statement costs mysqli. Text columns are cast to CHAR (the connection's character set,
/// whatever the table's: legacy tables may use another one), so the counts (characters, not
/// bytes) hold. This one joins no expiry source (its expiry fields are empty).
pub(crate) const META_COLUMNS: &str = concat!("CAST(f.name AS CHAR) AS name, ", row_columns!("''", "''", "''"));

/// [`META_COLUMNS`] without the name, for reads by name hash, which know the name already
/// ([`FileMeta::from_row_of`]), with the global expiry of the file's scope from the sources
/// [`ExpirySql`](crate::expiry::ExpirySql) joins, indexed by its `variant()` (table | file << 1).
pub(crate) const META_COLUMNS_BY_HASH: [&str; 4] = [
    row_columns!("''", "''", "''"),
    row_columns!("IFNULL(CAST(e.expiry AS SIGNED), '')", "''", "''"),
    row_columns!(
        "''",
        "IFNULL(CAST(x.mtime AS SIGNED), '')",
        "IFNULL(CAST(x.size AS UNSIGNED), '')"
    ),
    row_columns!(
        "IFNULL(CAST(e.expiry AS SIGNED), '')",
        "IFNULL(CAST(x.mtime AS SIGNED), '')",
        "IFNULL(CAST(x.size AS UNSIGNED), '')"
    ),
];

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
        Ok(FileMeta::from_row_of(row, row.try_get("name")?)?.0)
    }

    /// The row of `name` read with [`META_COLUMNS_BY_HASH`] (by its name hash, so the row's name
    /// is `name`), and what its expiry sources said; `global_expiry` is filled in by the caller
    /// from them.
    pub(crate) fn from_row_of(row: &MySqlRow, name: String) -> Result<(FileMeta, ExpiryColumns), sqlx::Error> {
        let packed: &str = row.try_get("meta")?;
        unpack(packed, name).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "meta".into(),
            source: format!("not a packed metadata row: {packed:?}").into(),
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

/// The fields of a `meta` column ([`META_COLUMNS`]); `None` when it is not one.
fn unpack(packed: &str, name: String) -> Option<(FileMeta, ExpiryColumns)> {
    // Eight number fields, each ended by a comma, then the texts (which may hold commas).
    let mut rest = packed;
    let mut number = || {
        // A byte search: the fields are a few digits, shorter than a substring search's setup.
        let end = rest.bytes().position(|b| b == b',')?;
        let field = &rest[..end];
        rest = &rest[end + 1..];
        Some(field)
    };
    let size: u64 = number()?.parse().ok()?;
    let mtime: i64 = number()?.parse().ok()?;
    let expired: i64 = number()?.parse().ok()?;
    // An empty field: the source is not joined, or has no key / no file.
    let table_expiry = optional(number()?)?;
    let file_mtime = optional(number()?)?;
    let file_size = optional(number()?)?;
    let scope_chars: usize = number()?.parse().ok()?;
    let datatype_chars: usize = number()?.parse().ok()?;
    let (scope, rest) = split_chars(rest, scope_chars)?;
    let (datatype, name_trunk) = split_chars(rest, datatype_chars)?;
    let meta = FileMeta {
        name,
        size,
        mtime,
        scope: scope.to_owned(),
        datatype: datatype.to_owned(),
        name_trunk: name_trunk.to_owned(),
        deleted: is_deleted(mtime, expired != 0),
        global_expiry: None,
    };
    Some((meta, ExpiryColumns::new(table_expiry, file_mtime.zip(file_size))))
}

/// A number field that may be empty (`Some(None)`); `None` when it is neither.
fn optional<T: std::str::FromStr>(field: &str) -> Option<Option<T>> {
    match field {
        "" => Some(None),
        number => number.parse().ok().map(Some),
    }
}

/// `text` cut after its first `chars` characters; `None` when it has fewer.
fn split_chars(text: &str, chars: usize) -> Option<(&str, &str)> {
    if chars == 0 {
        return Some(("", text));
    }
    // ASCII (as names, scopes and datatypes nearly always are): characters are bytes.
    if text.as_bytes().get(..chars).is_some_and(<[u8]>::is_ascii) {
        return Some(text.split_at(chars));
    }
    let (at, c) = text.char_indices().nth(chars - 1)?;
    Some(text.split_at(at + c.len_utf8()))
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
    fn packed_rows_unpack_texts_by_character_counts() {
        let (meta, expiry) = unpack("1024,-17,1,,,,4,10,scopeé,/x,y/z😀trunk, with commas", "n".into()).unwrap();
        assert_eq!((meta.size, meta.mtime, meta.deleted), (1024, -17, true));
        assert_eq!(meta.scope, "scop");
        assert_eq!(meta.datatype, "eé,/x,y/z😀");
        assert_eq!(meta.name_trunk, "trunk, with commas");
        assert_eq!(expiry, ExpiryColumns::new(None, None));
        let (empty, _) = unpack("0,5,0,,,,0,0,", "n".into()).unwrap();
        assert_eq!(
            (empty.scope.as_str(), empty.datatype.as_str(), empty.name_trunk.as_str()),
            ("", "", "")
        );
        assert!(!empty.deleted);
        assert!(
            unpack("1,2,0,,,,5,0,abc", "n".into()).is_none(),
            "texts shorter than their counts"
        );
        assert!(unpack("1,2,0", "n".into()).is_none());
        assert!(unpack("x,2,0,,,,0,0,", "n".into()).is_none());
        assert!(
            unpack("1,2,0,x,,,0,0,", "n".into()).is_none(),
            "a key that is not a number"
        );
    }

    #[test]
    fn packed_rows_carry_the_expiry_sources() {
        let (meta, expiry) = unpack("3,20,0,-7,,,2,1,abcn", "n".into()).unwrap();
        assert_eq!(
            (meta.scope.as_str(), meta.datatype.as_str(), meta.name_trunk.as_str()),
            ("ab", "c", "n")
        );
        assert_eq!(expiry, ExpiryColumns::new(Some(-7), None));
        let (_, expiry) = unpack("3,20,0,,1700000000,512,0,0,", "n".into()).unwrap();
        assert_eq!(expiry, ExpiryColumns::new(None, Some((1_700_000_000, 512))));
        let (_, expiry) = unpack("3,20,0,9,1700000000,,0,0,", "n".into()).unwrap();
        assert_eq!(
            expiry,
            ExpiryColumns::new(Some(9), None),
            "a file version needs both its mtime and size"
        );
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
