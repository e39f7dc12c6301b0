// Global expiry through the C ABI: one timestamp per key (content-view-cache, ...) that
// expires every file of the scopes it covers at once, without touching their rows.

use crate::args;
use crate::guard::guarded_ok;
use crate::handle::{ezdb_cluster, CLUSTERS};
use crate::status::ezdb_status;
use std::ffi::c_char;

/// Sets the global expiry `key` to `at` (Unix seconds; <= 0: the database clock now), updated
/// atomically on its own. `*out_at` (nullable) receives the time stored.
#[no_mangle]
pub unsafe extern "C" fn ezdb_set_global_expiry(
    cluster: *mut ezdb_cluster,
    key: *const c_char,
    key_len: usize,
    at: i64,
    out_at: *mut i64,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let key = args::text(key, key_len, "key")?;
        let stored = cluster.run(|c| async move { c.set_global_expiry(key, (at > 0).then_some(at)).await })?;
        if let Some(out) = args::optional_out(out_at) {
            *out = stored;
        }
        Ok(())
    })
}

/// `*out` = the global expiry `key`'s timestamp, or -1 when it was never set.
#[no_mangle]
pub unsafe extern "C" fn ezdb_global_expiry(
    cluster: *mut ezdb_cluster,
    key: *const c_char,
    key_len: usize,
    out: *mut i64,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let key = args::text(key, key_len, "key")?;
        let out = args::out(out, "out (the expiry)")?;
        *out = cluster
            .run(|c| async move { c.global_expiry(key).await })?
            .unwrap_or(-1);
        Ok(())
    })
}
