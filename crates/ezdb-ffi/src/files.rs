// Storing, reading, stat/exists, copying and moving single files through the C ABI. Each
// function checks its arguments, runs one core operation and writes the caller's out-values.

use crate::args;
use crate::guard::{guarded, guarded_ok};
use crate::handle::{ezdb_cluster, CLUSTERS};
use crate::info::{ezdb_file_info, fill};
use crate::output::give;
use crate::status::{ezdb_fetch_flags, ezdb_status, Failure};
use ezdb_core::{ByteRange, FileData, StoreOptions, Visibility};
use std::ffi::c_char;
use std::path::Path;

pub(crate) unsafe fn store_options(
    scope: *const c_char,
    scope_len: usize,
    datatype: *const c_char,
    datatype_len: usize,
    mtime: i64,
) -> Result<StoreOptions, Failure> {
    Ok(StoreOptions {
        scope: args::optional_text(scope, scope_len, "scope")?.map(str::to_owned),
        datatype: args::optional_text(datatype, datatype_len, "datatype")?.map(str::to_owned),
        mtime: (mtime > 0).then_some(mtime),
    })
}

fn visibility(flags: u32) -> Visibility {
    if flags & ezdb_fetch_flags::EZDB_FETCH_INCLUDE_DELETED as u32 != 0 {
        Visibility::IncludeExpired
    } else {
        Visibility::Live
    }
}

/// Stores `data` under `name` in one transaction, replacing any previous version; a failure
/// leaves the previous version intact. Empty `scope`/`datatype` give `UNKNOWN_SCOPE`/`misc`;
/// `mtime` <= 0 stamps the database clock. `out` (nullable, caller-owned) receives the new row.
#[no_mangle]
pub unsafe extern "C" fn ezdb_store(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    data: *const c_char,
    data_len: usize,
    scope: *const c_char,
    scope_len: usize,
    datatype: *const c_char,
    datatype_len: usize,
    mtime: i64,
    out: *mut ezdb_file_info,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let data = args::bytes(data, data_len, "data")?;
        let options = store_options(scope, scope_len, datatype, datatype_len, mtime)?;
        let meta = cluster.run(|c| async move { c.store(name, data, &options).await })?;
        fill(args::optional_out(out), &meta);
        Ok(())
    })
}

/// Stores the local file at `path` under `name`, streaming it (large files are never held in
/// memory whole). Same rules as `ezdb_store`; the local file is never modified or removed.
#[no_mangle]
pub unsafe extern "C" fn ezdb_store_file(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    path: *const c_char,
    path_len: usize,
    scope: *const c_char,
    scope_len: usize,
    datatype: *const c_char,
    datatype_len: usize,
    mtime: i64,
    out: *mut ezdb_file_info,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let path = Path::new(args::text(path, path_len, "path")?);
        let options = store_options(scope, scope_len, datatype, datatype_len, mtime)?;
        let meta = cluster.run(|c| async move { c.store_file(name, path, &options).await })?;
        fill(args::optional_out(out), &meta);
        Ok(())
    })
}

/// Reads the whole file (one statement, so one consistent version). On `EZDB_OK`, `*out_data`
/// / `*out_len` hold the bytes, owned by the caller and released with `ezdb_bytes_free`
/// (NULL when empty). `out_info` (nullable) receives the metadata. `flags`: `ezdb_fetch_flags`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_fetch(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    flags: u32,
    out_data: *mut *mut c_char,
    out_len: *mut usize,
    out_info: *mut ezdb_file_info,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let (out_data, out_len) = (args::out(out_data, "out_data")?, args::out(out_len, "out_len")?);
        let data = cluster.run(|c| async move { c.fetch_with_meta(name, visibility(flags)).await })?;
        fill(args::optional_out(out_info), &data.meta);
        give(data.bytes, out_data, out_len);
        Ok(())
    })
}

/// Reads the whole file into the caller's buffer `buf` of `cap` bytes. `*out_len` receives the
/// file size; when it exceeds `cap` the answer is `EZDB_BUFFER_TOO_SMALL` and `buf` is untouched.
#[no_mangle]
pub unsafe extern "C" fn ezdb_fetch_into(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    flags: u32,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_info: *mut ezdb_file_info,
) -> ezdb_status {
    guarded(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let out_len = args::out(out_len, "out_len")?;
        if buf.is_null() && cap > 0 {
            return Err(Failure::invalid(format!("buf is NULL but cap is {cap}")));
        }
        let data = cluster.run(|c| async move { c.fetch_with_meta(name, visibility(flags)).await })?;
        fill(args::optional_out(out_info), &data.meta);
        *out_len = data.bytes.len();
        if data.bytes.len() > cap {
            return Err(Failure::new(
                ezdb_status::EZDB_BUFFER_TOO_SMALL,
                format!(
                    "fetch of '{name}': the file has {} bytes but the buffer only {cap}; retry with a buffer of out_len bytes",
                    data.bytes.len()
                ),
            ));
        }
        if !data.bytes.is_empty() {
            std::ptr::copy_nonoverlapping(data.bytes.as_ptr(), buf.cast::<u8>(), data.bytes.len());
        }
        Ok(ezdb_status::EZDB_OK)
    })
}

/// Reads `length` bytes from `offset` (`length` 0: to the end) of a file, with one statement
/// (one consistent version even while the file is rewritten) that reads only the chunks holding
/// them; the range is held in memory until handed over. A range starting at or past the end is
/// `EZDB_INVALID_ARGUMENT`, except `offset` 0 with `length` 0 (the whole file, empty too).
/// `flags`: `ezdb_fetch_flags` (`EZDB_FETCH_INCLUDE_DELETED`: deleted rows too, as legacy
/// `passthrough`). Bytes as `ezdb_fetch`; `out_info` (nullable) receives the metadata.
#[no_mangle]
pub unsafe extern "C" fn ezdb_fetch_range(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    offset: u64,
    length: u64,
    flags: u32,
    out_data: *mut *mut c_char,
    out_len: *mut usize,
    out_info: *mut ezdb_file_info,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let (out_data, out_len) = (args::out(out_data, "out_data")?, args::out(out_len, "out_len")?);
        let visibility = visibility(flags);
        let data = match (offset, length) {
            (0, 0) => cluster.run(|c| async move { c.fetch_with_meta(name, visibility).await })?,
            _ => {
                // The core cuts a range at the end of the file, so "to the end" needs no size first.
                let end = match length {
                    0 => u64::MAX,
                    n => offset.saturating_add(n - 1),
                };
                let range = ByteRange { start: offset, end };
                cluster.run(|c| async move { read_range(&c, name, range, visibility).await })?
            }
        };
        fill(args::optional_out(out_info), &data.meta);
        give(data.bytes, out_data, out_len);
        Ok(())
    })
}

/// A range of any row `visibility` admits, collected from the streaming read (one statement).
async fn read_range(
    cluster: &ezdb_core::Cluster,
    name: &str,
    range: ByteRange,
    visibility: Visibility,
) -> ezdb_core::Result<FileData> {
    if visibility == Visibility::Live {
        return cluster.fetch_range(name, range).await;
    }
    let mut stream = cluster.open_stream(name, visibility, Some(range)).await?;
    let available = stream.meta.size.saturating_sub(range.start);
    let mut bytes = Vec::with_capacity(range.len().min(available) as usize);
    while let Some(chunk) = stream.next_chunk().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(FileData {
        meta: stream.meta,
        bytes,
    })
}

/// Writes the file to the local `path`: into a temporary file beside it, renamed over `path`
/// when complete, so readers (and PHP `include`) never see half a file. Parent directories are
/// created. `flags`: `ezdb_fetch_flags`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_fetch_to_file(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    path: *const c_char,
    path_len: usize,
    flags: u32,
    out_info: *mut ezdb_file_info,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let path = Path::new(args::text(path, path_len, "path")?);
        let meta = cluster.run(|c| async move { c.fetch_to_file(name, path, visibility(flags)).await })?;
        fill(args::optional_out(out_info), &meta);
        Ok(())
    })
}

/// `*out_exists` = 1 when the file is stored and neither deleted nor expired by a global
/// expiry key, else 0. Always asks the database.
#[no_mangle]
pub unsafe extern "C" fn ezdb_exists(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    out_exists: *mut i32,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let out_exists = args::out(out_exists, "out_exists")?;
        *out_exists = i32::from(cluster.run(|c| async move { c.exists(name).await })?);
        Ok(())
    })
}

/// Fills `*out` (caller-owned) with the file's metadata, deleted rows included;
/// `EZDB_NOT_FOUND` when there is no row.
#[no_mangle]
pub unsafe extern "C" fn ezdb_stat(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    out: *mut ezdb_file_info,
) -> ezdb_status {
    guarded(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let out = args::out(out, "out (the file info)")?;
        match cluster.run(|c| async move { c.stat(name).await })? {
            Some(meta) => {
                fill(Some(out), &meta);
                Ok(ezdb_status::EZDB_OK)
            }
            None => Ok(ezdb_status::EZDB_NOT_FOUND),
        }
    })
}

/// Copies `src` to `dst` in one transaction (replacing `dst`); datatype, scope, size and mtime
/// are kept, a deleted source gives a deleted copy. `EZDB_NOT_FOUND` when `src` has no row.
#[no_mangle]
pub unsafe extern "C" fn ezdb_copy(
    cluster: *mut ezdb_cluster,
    src: *const c_char,
    src_len: usize,
    dst: *const c_char,
    dst_len: usize,
) -> ezdb_status {
    two_names(cluster, src, src_len, dst, dst_len, |c, s, d| async move {
        c.copy(&s, &d).await
    })
}

/// Legacy `fileLinkCopy`: the database has no links, so this is `ezdb_copy`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_link_copy(
    cluster: *mut ezdb_cluster,
    src: *const c_char,
    src_len: usize,
    dst: *const c_char,
    dst_len: usize,
) -> ezdb_status {
    two_names(cluster, src, src_len, dst, dst_len, |c, s, d| async move {
        c.link_copy(&s, &d).await
    })
}

/// Renames `src` to `dst` in one transaction, replacing any row at `dst` (even a deleted one).
/// `EZDB_NOT_FOUND` when `src` has no row.
#[no_mangle]
pub unsafe extern "C" fn ezdb_move(
    cluster: *mut ezdb_cluster,
    src: *const c_char,
    src_len: usize,
    dst: *const c_char,
    dst_len: usize,
) -> ezdb_status {
    two_names(cluster, src, src_len, dst, dst_len, |c, s, d| async move {
        c.rename(&s, &d).await
    })
}

unsafe fn two_names<F, Fut>(
    cluster: *mut ezdb_cluster,
    src: *const c_char,
    src_len: usize,
    dst: *const c_char,
    dst_len: usize,
    operation: F,
) -> ezdb_status
where
    F: FnOnce(ezdb_core::Cluster, String, String) -> Fut,
    Fut: std::future::Future<Output = ezdb_core::Result<()>>,
{
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let src = args::text(src, src_len, "src")?.to_owned();
        let dst = args::text(dst, dst_len, "dst")?.to_owned();
        cluster.run(|c| operation(c, src, dst))
    })
}
