// What the library reports about a file (`ezdb_file_info`, filled into the caller's struct, its
// texts kept per thread by the library) and the caller's freshness rule (`ezdb_freshness`).

use ezdb_core::{FileMeta, Freshness};
use std::cell::RefCell;
use std::ffi::c_char;

/// A file's metadata, written by the library into a struct the caller owns.
///
/// The texts (`scope`, `datatype`, `name_trunk`) are pointer + length, UTF-8, each followed by a
/// NUL byte (not counted in the length), as long as the columns hold them. They are owned by the
/// library: valid until the next call on the same thread that fills an `ezdb_file_info`
/// (`ezdb_stat`, `ezdb_store*`, `ezdb_fetch*`, `ezdb_generation_end`/`_publish`), or until the
/// thread ends. Copy them to keep them; never free them. `ezdb_info_is_fresh` reads only the
/// numeric fields, so a copied struct stays usable with it after the texts are gone.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ezdb_file_info {
    pub size: u64,
    /// Unix seconds; negative when the file was deleted (legacy `-ABS(mtime)`).
    pub mtime: i64,
    /// 1 when the row is soft-deleted (`expired = 1` or a negative mtime).
    pub deleted: i32,
    /// 1 when a global expiry key covers the file's scope (then see `global_expiry`).
    pub has_global_expiry: i32,
    pub global_expiry: i64,
    /// The row's `scope` (library-owned, see above).
    pub scope: *const c_char,
    pub scope_len: usize,
    /// The row's `datatype` (library-owned, see above).
    pub datatype: *const c_char,
    pub datatype_len: usize,
    /// The row's `name_trunk`, its expiry group (library-owned, see above).
    pub name_trunk: *const c_char,
    pub name_trunk_len: usize,
}

/// When a cache entry counts as fresh (legacy `processCache` `$ttl` and `$expiry`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ezdb_freshness {
    /// Maximum age in seconds; negative: no limit; 0: always stale.
    pub ttl: i64,
    /// Entries with an mtime below this Unix time are stale; negative: none.
    pub expiry: i64,
    /// The caller's "now" (Unix seconds, database clock from `ezdb_now`); 0 or less: now.
    pub now: i64,
}

impl ezdb_freshness {
    pub(crate) fn rule(&self) -> Freshness {
        Freshness {
            ttl: Some(self.ttl).filter(|t| *t >= 0),
            expiry: Some(self.expiry).filter(|e| *e >= 0),
        }
    }
}

thread_local! {
    /// The texts of the last `ezdb_file_info` filled on this thread: "scope\0datatype\0trunk\0".
    /// Reused, so a fill allocates only when a longer text than ever before comes along.
    static TEXTS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn fill(out: Option<&mut ezdb_file_info>, meta: &FileMeta) {
    let Some(out) = out else { return };
    out.size = meta.size;
    out.mtime = meta.mtime;
    out.deleted = i32::from(meta.deleted || meta.mtime < 0);
    out.has_global_expiry = i32::from(meta.global_expiry.is_some());
    out.global_expiry = meta.global_expiry.unwrap_or(0);
    let texts = [&meta.scope, &meta.datatype, &meta.name_trunk];
    TEXTS.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        let mut starts = [0; 3];
        for (start, text) in starts.iter_mut().zip(texts) {
            *start = buffer.len();
            buffer.extend_from_slice(text.as_bytes());
            buffer.push(0);
        }
        // Pointers are taken after the last push: the buffer no longer moves.
        let base = buffer.as_ptr().cast::<c_char>();
        (out.scope, out.scope_len) = (base.wrapping_add(starts[0]), meta.scope.len());
        (out.datatype, out.datatype_len) = (base.wrapping_add(starts[1]), meta.datatype.len());
        (out.name_trunk, out.name_trunk_len) = (base.wrapping_add(starts[2]), meta.name_trunk.len());
    });
}

/// 1 when a file described by `info` (from `ezdb_stat`/`ezdb_fetch`) may be served as fresh
/// under `freshness`, else 0 (also for NULL arguments). Pure: no database call, and only the
/// numeric fields of `info` are read. A deleted file, or one older than the global expiry of its
/// scope, is never fresh.
#[no_mangle]
pub unsafe extern "C" fn ezdb_info_is_fresh(info: *const ezdb_file_info, freshness: *const ezdb_freshness) -> i32 {
    let (Some(info), Some(freshness)) = (info.as_ref(), freshness.as_ref()) else {
        return 0;
    };
    let meta = FileMeta {
        name: String::new(),
        size: info.size,
        mtime: info.mtime,
        scope: String::new(),
        datatype: String::new(),
        name_trunk: String::new(),
        deleted: info.deleted != 0,
        global_expiry: (info.has_global_expiry != 0).then_some(info.global_expiry),
    };
    let now = match freshness.now {
        now if now > 0 => now,
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    i32::from(freshness.rule().accepts(&meta, now))
}
