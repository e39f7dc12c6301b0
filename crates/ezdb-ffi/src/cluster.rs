// Opening, connecting, closing a cluster handle, and the calls about the database as a whole
// (schema, clock, version).

use crate::args;
use crate::guard::{guarded, guarded_ok};
use crate::handle::{ezdb_cluster, ezdb_options, Settings, CLUSTERS};
use crate::status::ezdb_status;
use std::ffi::c_char;

/// The library version, e.g. "0.1.0". Static: never free it.
#[no_mangle]
pub extern "C" fn ezdb_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Fills `*out` with the defaults (all zero: chunk 65535, timeout 60 s, 8 attempts, connect 5 s,
/// no legacy `expiry.php`, the eZDB layout with every DFS field unset, no read replicas, a
/// replica lag bound of 5 s).
#[no_mangle]
pub unsafe extern "C" fn ezdb_options_init(out: *mut ezdb_options) {
    if let Some(out) = out.as_mut() {
        *out = ezdb_options::default();
    }
}

/// Records the settings of a cluster and returns its handle in `*out`; connects on first use,
/// in each process (fork-safe). Handles with the same URL and options share that connection,
/// which stays open after `ezdb_close`, so the next PHP request reuses it.
///
/// `url`: `mysql://user:pass@host:port/db` or `mysql://user@localhost/db?socket=/path`.
/// `options` may be NULL (defaults); it is copied, strings included. Invalid settings (an unknown
/// layout, a DFS layout without `mount_point`, DFS fields with the `ezdb` layout, a table name
/// that is not a plain identifier, a read replica that is not a `mysql://` URL) give
/// `EZDB_CONFIG` with the reason in `ezdb_last_error`; a mount point that is not a writable
/// directory gives `EZDB_CONFIG` when the process connects.
/// The handle is owned by the caller and must be released with `ezdb_close`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_open(
    url: *const c_char,
    url_len: usize,
    options: *const ezdb_options,
    out: *mut *mut ezdb_cluster,
) -> ezdb_status {
    guarded_ok(|| {
        let out = args::out(out, "out (the handle)")?;
        let url = args::text(url, url_len, "url")?;
        let options = Settings::read(&options.as_ref().copied().unwrap_or_default())?;
        *out = CLUSTERS.give(ezdb_cluster::open(url, &options)?);
        Ok(())
    })
}

/// Connects now (if this process is not connected yet), so a bad URL or password is reported
/// at start-up rather than by the first file operation.
#[no_mangle]
pub unsafe extern "C" fn ezdb_connect(cluster: *mut ezdb_cluster) -> ezdb_status {
    guarded_ok(|| CLUSTERS.get(cluster)?.run(|_| async { Ok(()) }))
}

/// Closes this process's connections for the handle's settings (shared with other handles
/// opened with the same settings); the next call reconnects. The handle stays open.
#[no_mangle]
pub unsafe extern "C" fn ezdb_disconnect(cluster: *mut ezdb_cluster) -> ezdb_status {
    guarded_ok(|| {
        CLUSTERS.get(cluster)?.disconnect();
        Ok(())
    })
}

/// Frees the handle; the process's connection for its settings stays open for the next
/// `ezdb_open` (see `ezdb_disconnect`). NULL is a no-op; the pointer is invalid after.
#[no_mangle]
pub unsafe extern "C" fn ezdb_close(cluster: *mut ezdb_cluster) {
    if cluster.is_null() {
        return;
    }
    guarded(|| {
        drop(CLUSTERS.take(cluster)?);
        Ok(ezdb_status::EZDB_OK)
    });
}

/// Creates the cluster tables when missing (idempotent; safe on a legacy database).
#[no_mangle]
pub unsafe extern "C" fn ezdb_install_schema(cluster: *mut ezdb_cluster) -> ezdb_status {
    guarded_ok(|| CLUSTERS.get(cluster)?.run(|c| async move { c.install_schema().await }))
}

/// The database server's clock in Unix seconds: the clock every mtime is stamped with.
#[no_mangle]
pub unsafe extern "C" fn ezdb_now(cluster: *mut ezdb_cluster, out: *mut i64) -> ezdb_status {
    guarded_ok(|| {
        let out = args::out(out, "out (the time)")?;
        *out = CLUSTERS.get(cluster)?.run(|c| async move { Ok(c.now()) })?;
        Ok(())
    })
}
