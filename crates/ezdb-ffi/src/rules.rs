//! The core's pure rules for callers that decide something without a database call (the PHP
//! shim's legacy methods): whether a file is expired, whether a row is live, a name's cache
//! type, name cleaning. No handle, no I/O; each is the core's own function, so the rule has one
//! home whatever layer asks.

use crate::guard::guarded_ok;
use crate::status::{ezdb_status, Failure};
use std::ffi::c_char;
use std::panic::catch_unwind;

/// Legacy `isFileExpired`: 1 when a file of `mtime` is expired under `expiry` (a Unix time; used
/// only when `has_expiry` is non-zero) and `ttl` (seconds before `now`; only when `has_ttl` is
/// non-zero), else 0. An mtime of 0 or below is always expired.
#[no_mangle]
pub extern "C" fn ezdb_is_file_expired(
    mtime: i64,
    has_expiry: i32,
    expiry: i64,
    now: i64,
    has_ttl: i32,
    ttl: i64,
) -> i32 {
    let expiry = (has_expiry != 0).then_some(expiry);
    let ttl = (has_ttl != 0).then_some(ttl);
    // An expired answer is the safe one: the caller regenerates.
    catch_unwind(|| i32::from(ezdb_core::is_file_expired(mtime, expiry, now, ttl))).unwrap_or(1)
}

/// 1 when a row (its `mtime`, `deleted` flag and the global expiry of its scope, used only when
/// `has_global_expiry` is non-zero) counts as expired: deleted, or older than the key; else 0.
#[no_mangle]
pub extern "C" fn ezdb_is_row_expired(mtime: i64, deleted: i32, has_global_expiry: i32, global_expiry: i64) -> i32 {
    let key = (has_global_expiry != 0).then_some(global_expiry);
    catch_unwind(|| i32::from(ezdb_core::is_expired(mtime, deleted != 0, key))).unwrap_or(1)
}

/// The cache type of a name (`viewcache`, `cacheblock` or `misc`), the key of legacy
/// `NonExistantStaleCacheHandling`. Returns a static NUL-terminated string owned by the
/// library: never freed, valid for the life of the process. `name` is `name_len` bytes (not
/// NUL-terminated; NULL only with 0); bytes that are not UTF-8 never match a cache directory.
#[no_mangle]
pub unsafe extern "C" fn ezdb_cache_type(name: *const c_char, name_len: usize) -> *const c_char {
    let kind = catch_unwind(|| {
        if name.is_null() || name_len == 0 {
            return "misc";
        }
        // SAFETY: the caller passes `name_len` readable bytes at `name`.
        let bytes = unsafe { std::slice::from_raw_parts(name.cast::<u8>(), name_len) };
        ezdb_core::cache_type(&String::from_utf8_lossy(bytes))
    })
    .unwrap_or("misc");
    match kind {
        "viewcache" => c"viewcache".as_ptr(),
        "cacheblock" => c"cacheblock".as_ptr(),
        _ => c"misc".as_ptr(),
    }
}

/// Legacy `cleanPath` of the `path_len` bytes at `path` (runs of `/` and `\` become one `/`,
/// one trailing `/` goes), written to `out`, which the caller owns and which must hold
/// `path_len` bytes (the result is never longer); `*out_len` receives its length. No NUL is
/// written. NULL `out` or `out_len` (or NULL `path` with a length) is `EZDB_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_clean_path(
    path: *const c_char,
    path_len: usize,
    out: *mut c_char,
    out_len: *mut usize,
) -> ezdb_status {
    guarded_ok(|| {
        if out_len.is_null() || (path_len > 0 && (path.is_null() || out.is_null())) {
            return Err(Failure::invalid(
                "ezdb_clean_path needs the path, a buffer of path_len bytes and out_len",
            ));
        }
        let bytes: &[u8] = if path_len == 0 {
            &[]
        } else {
            // SAFETY: the caller passes `path_len` readable bytes at `path`.
            unsafe { std::slice::from_raw_parts(path.cast::<u8>(), path_len) }
        };
        let cleaned = ezdb_core::clean_path_bytes(bytes);
        // SAFETY: `out` holds `path_len` >= `cleaned.len()` writable bytes (checked above when
        // there are any), and `out_len` is writable.
        unsafe {
            if !cleaned.is_empty() {
                std::ptr::copy_nonoverlapping(cleaned.as_ptr(), out.cast::<u8>(), cleaned.len());
            }
            *out_len = cleaned.len();
        }
        Ok(())
    })
}
