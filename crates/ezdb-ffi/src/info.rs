// What the library reports about a file (`ezdb_file_info`, filled into the caller's struct) and
// the caller's freshness rule for cache entries (`ezdb_freshness`).

use ezdb_core::{FileMeta, Freshness};
use std::ffi::c_char;

/// A file's metadata, written by the library into a struct the caller owns.
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
    /// NUL-terminated (the column holds at most 20 characters).
    pub scope: [c_char; 32],
    /// NUL-terminated, cut at 255 bytes.
    pub datatype: [c_char; 256],
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

pub(crate) fn fill(out: Option<&mut ezdb_file_info>, meta: &FileMeta) {
    let Some(out) = out else { return };
    out.size = meta.size;
    out.mtime = meta.mtime;
    out.deleted = i32::from(meta.deleted || meta.mtime < 0);
    out.has_global_expiry = i32::from(meta.global_expiry.is_some());
    out.global_expiry = meta.global_expiry.unwrap_or(0);
    copy_text(&mut out.scope, &meta.scope);
    copy_text(&mut out.datatype, &meta.datatype);
}

fn copy_text(target: &mut [c_char], text: &str) {
    let mut len = text.len().min(target.len() - 1);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    for (slot, byte) in target.iter_mut().zip(text.as_bytes()[..len].iter()) {
        *slot = *byte as c_char;
    }
    target[len] = 0;
}

fn read_text(source: &[c_char]) -> String {
    let bytes: Vec<u8> = source.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// 1 when a file described by `info` (from `ezdb_stat`/`ezdb_fetch`) may be served as fresh
/// under `freshness`, else 0 (also for NULL arguments). Pure: no database call. A deleted file,
/// or one older than the global expiry of its scope, is never fresh.
#[no_mangle]
pub unsafe extern "C" fn ezdb_info_is_fresh(info: *const ezdb_file_info, freshness: *const ezdb_freshness) -> i32 {
    let (Some(info), Some(freshness)) = (info.as_ref(), freshness.as_ref()) else {
        return 0;
    };
    let meta = FileMeta {
        name: String::new(),
        size: info.size,
        mtime: info.mtime,
        scope: read_text(&info.scope),
        datatype: read_text(&info.datatype),
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
