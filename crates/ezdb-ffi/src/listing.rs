// Listing names through the C ABI: all files or by scope, and expired files for purge tools.
// Lists come back as one block of names separated by NUL bytes.

use crate::args;
use crate::guard::guarded_ok;
use crate::handle::{ezdb_cluster, CLUSTERS};
use crate::output::give_list;
use crate::status::ezdb_status;
use ezdb_core::ScopeFilter;
use std::ffi::c_char;

/// Names of every row (deleted and `.generating` rows too, as legacy `getFileList`), sorted.
/// `scopes`: NUL-separated, empty for all; `exclude` = 1 lists every scope but those.
/// On `EZDB_OK`: `*out_data`/`*out_len` hold the names separated by NUL bytes (owned by the
/// caller, freed with `ezdb_bytes_free`; NULL when empty), `*out_count` their number.
#[no_mangle]
pub unsafe extern "C" fn ezdb_list(
    cluster: *mut ezdb_cluster,
    scopes: *const c_char,
    scopes_len: usize,
    exclude: i32,
    out_data: *mut *mut c_char,
    out_len: *mut usize,
    out_count: *mut usize,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let scopes = args::list(scopes, scopes_len, "scopes")?;
        let (out_data, out_len) = (args::out(out_data, "out_data")?, args::out(out_len, "out_len")?);
        let out_count = args::out(out_count, "out_count")?;
        let filter = match (scopes.is_empty(), exclude != 0) {
            (true, _) => ScopeFilter::All,
            (false, true) => ScopeFilter::AllBut(scopes),
            (false, false) => ScopeFilter::Only(scopes),
        };
        let names = cluster.run(|c| async move { c.list(&filter).await })?;
        give_list(names, out_data, out_len, out_count);
        Ok(())
    })
}

/// Legacy `fetchExpiredItems`: names of soft-deleted rows in `scopes` (NUL-separated, at least
/// one), optionally only those deleted from an mtime below `older_than` (< 0: any), `limit`
/// names at most (0: 100) after skipping `offset`. Output as `ezdb_list`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_list_expired(
    cluster: *mut ezdb_cluster,
    scopes: *const c_char,
    scopes_len: usize,
    older_than: i64,
    offset: u64,
    limit: u32,
    out_data: *mut *mut c_char,
    out_len: *mut usize,
    out_count: *mut usize,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let scopes = args::list(scopes, scopes_len, "scopes")?;
        let (out_data, out_len) = (args::out(out_data, "out_data")?, args::out(out_len, "out_len")?);
        let out_count = args::out(out_count, "out_count")?;
        let limit = if limit == 0 { 100 } else { limit };
        let older_than = (older_than >= 0).then_some(older_than);
        let names = cluster.run(|c| async move { c.list_expired(&scopes, older_than, limit, offset).await })?;
        give_list(names, out_data, out_len, out_count);
        Ok(())
    })
}
