// Deleting through the C ABI: soft deletes (the row is marked expired, as legacy does) of one
// file or of a pattern, and physical purges of what is expired.

use crate::args;
use crate::guard::guarded_ok;
use crate::handle::{ezdb_cluster, CLUSTERS};
use crate::status::ezdb_status;
use ezdb_core::{Batches, PurgeFilter, Selector};
use std::ffi::c_char;
use std::time::Duration;

fn count_out(out: *mut u64, count: u64) {
    if let Some(out) = unsafe { args::optional_out(out) } {
        *out = count;
    }
}

/// Soft-deletes `name` (negated mtime, `expired = 1`); `*out_count` (nullable) = rows changed
/// (0 when there was no live row).
#[no_mangle]
pub unsafe extern "C" fn ezdb_delete(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    out_count: *mut u64,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let deleted = cluster.run(|c| async move { c.delete(name).await })?;
        count_out(out_count, u64::from(deleted));
        Ok(())
    })
}

/// Legacy `fileDelete($path, $fnamePart)`: soft-deletes every name starting with
/// `<path>/<name_part>` (`%` and `_` are literal), in bounded batches.
#[no_mangle]
pub unsafe extern "C" fn ezdb_delete_prefix(
    cluster: *mut ezdb_cluster,
    path: *const c_char,
    path_len: usize,
    name_part: *const c_char,
    name_part_len: usize,
    out_count: *mut u64,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let path = args::text(path, path_len, "path")?;
        let name_part = args::text(name_part, name_part_len, "name_part")?;
        let count = cluster.run(|c| async move { c.delete_prefix(path, name_part).await })?;
        count_out(out_count, count);
        Ok(())
    })
}

/// Legacy `fileDeleteByWildcard`: soft-deletes names matching the glob (`*`, `?`, `{a,b}`;
/// every other character literal).
#[no_mangle]
pub unsafe extern "C" fn ezdb_delete_wildcard(
    cluster: *mut ezdb_cluster,
    glob: *const c_char,
    glob_len: usize,
    out_count: *mut u64,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let glob = args::text(glob, glob_len, "glob")?;
        let count = cluster.run(|c| async move { c.delete_wildcard(glob).await })?;
        count_out(out_count, count);
        Ok(())
    })
}

/// Legacy `fileDeleteByDirList`: for each directory of `dirs` (NUL-separated), soft-deletes
/// `<common_path>/<dir>/<common_suffix>*` (an exact trunk match for view and block caches).
#[no_mangle]
pub unsafe extern "C" fn ezdb_delete_by_dir_list(
    cluster: *mut ezdb_cluster,
    dirs: *const c_char,
    dirs_len: usize,
    common_path: *const c_char,
    common_path_len: usize,
    common_suffix: *const c_char,
    common_suffix_len: usize,
    out_count: *mut u64,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let dirs = args::list(dirs, dirs_len, "dirs")?;
        let common_path = args::text(common_path, common_path_len, "common_path")?;
        let common_suffix = args::text(common_suffix, common_suffix_len, "common_suffix")?;
        let count = cluster.run(|c| async move {
            let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
            c.delete_by_dir_list(&dirs, common_path, common_suffix).await
        })?;
        count_out(out_count, count);
        Ok(())
    })
}

fn purge_filter(older_than: i64) -> PurgeFilter {
    if older_than < 0 {
        PurgeFilter::Expired
    } else {
        PurgeFilter::OlderThan(older_than)
    }
}

/// Physically removes `name` with its chunks if it is soft-deleted (`older_than` < 0), or if
/// its mtime is below `older_than` (live or not). `*out_purged` (nullable) = 1 when it went.
#[no_mangle]
pub unsafe extern "C" fn ezdb_purge(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    older_than: i64,
    out_purged: *mut i32,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let purged = cluster.run(|c| async move { c.purge(name, purge_filter(older_than)).await })?;
        if let Some(out) = args::optional_out(out_purged) {
            *out = i32::from(purged);
        }
        Ok(())
    })
}

/// Legacy handler `purge()`: removes `path` itself and every name under `path/` selected as in
/// `ezdb_purge`, `batch` rows per short transaction (0: 1000), at most `max_batches`
/// transactions in this call (0: until none is left; call again while `*out_count` > 0 to
/// report or pause between calls). Safe to interrupt and re-run.
#[no_mangle]
pub unsafe extern "C" fn ezdb_purge_prefix(
    cluster: *mut ezdb_cluster,
    path: *const c_char,
    path_len: usize,
    older_than: i64,
    batch: u32,
    max_batches: u32,
    out_count: *mut u64,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let path = args::text(path, path_len, "path")?.trim_end_matches('/');
        let batches = Batches {
            size: if batch == 0 { 1000 } else { batch },
            pause: Duration::ZERO,
            max_batches: (max_batches > 0).then_some(max_batches),
        };
        let count = cluster.run(|c| async move {
            let filter = purge_filter(older_than);
            let under = Selector::Prefix(format!("{path}/"));
            let children = c.purge_matching(&under, filter, batches, |_| {}).await?;
            Ok(children + u64::from(c.purge(path, filter).await?))
        })?;
        count_out(out_count, count);
        Ok(())
    })
}
