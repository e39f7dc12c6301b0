// Cache generation through the C ABI: the legacy-compatible `.generating` lock as an opaque
// `ezdb_lock`, with the re-check on a separate connection, heartbeat, stage, publish and abort.

use crate::args;
use crate::files::store_options;
use crate::guard::{guarded, guarded_ok};
use crate::handle::{ezdb_cluster, CLUSTERS};
use crate::info::{ezdb_file_info, ezdb_freshness, fill};
use crate::registry::Registry;
use crate::status::{ezdb_status, Failure};
use ezdb_core::{GenerationLock, Regeneration, StoreOptions};
use std::ffi::{c_char, CString};

static LOCKS: Registry = Registry::new("generation lock (ezdb_lock*)");

/// A held generation lock. Opaque; created by `ezdb_generation_start`, consumed (freed) by
/// `ezdb_generation_end`, `_publish` or `_abort`, whatever their result. Use it only in the
/// process that took it.
pub struct ezdb_lock {
    lock: GenerationLock,
    lock_name: CString,
    /// The scope given at start: the default scope of what is staged or published.
    scope: Option<String>,
}

impl ezdb_lock {
    /// Store options of a stage/publish call; an empty scope falls back to the lock's.
    unsafe fn options(
        &self,
        scope: *const c_char,
        scope_len: usize,
        datatype: *const c_char,
        datatype_len: usize,
    ) -> Result<StoreOptions, Failure> {
        let mut options = store_options(scope, scope_len, datatype, datatype_len, 0)?;
        options.scope = options.scope.or_else(|| self.scope.clone());
        Ok(options)
    }
}

/// Hands a held lock to the caller as an `ezdb_lock` (`scope`: the default of what it publishes).
pub(crate) fn lock_handle(lock: GenerationLock, scope: Option<&str>) -> *mut ezdb_lock {
    let lock_name = CString::new(lock.lock_name()).unwrap_or_default();
    let scope = scope.map(str::to_owned);
    LOCKS.give(ezdb_lock { lock, lock_name, scope })
}

/// Takes the generation lock of `name` (a legacy-compatible `<name>.generating` row, so legacy
/// nodes and libezdb exclude each other). `scope` (may be empty) sets the lock row's expiry
/// group. Answers:
/// - `EZDB_OK`: the lock is ours; `*out_lock` receives it (caller-owned until end/publish/abort).
/// - `EZDB_BUSY`: another process generates; `*out_remaining` = seconds until its lock may be
///   taken over (serve a stale copy, or wait and call again).
/// - `EZDB_FRESH` (only when `recheck` is not NULL): after taking the lock, a separate
///   autocommit connection found the entry fresh under `recheck` (another process had just
///   published it): the lock was released; read the entry again and serve it.
#[no_mangle]
pub unsafe extern "C" fn ezdb_generation_start(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    scope: *const c_char,
    scope_len: usize,
    recheck: *const ezdb_freshness,
    out_lock: *mut *mut ezdb_lock,
    out_remaining: *mut i64,
) -> ezdb_status {
    guarded(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let scope = args::optional_text(scope, scope_len, "scope")?;
        let out_lock = args::out(out_lock, "out_lock")?;
        let out_remaining = args::out(out_remaining, "out_remaining")?;
        let recheck = recheck.as_ref().copied();
        let outcome = cluster.run(|c| async move {
            match recheck {
                None => Ok(c.start_generation(name, scope).await?.into()),
                Some(freshness) => {
                    let now = if freshness.now > 0 { freshness.now } else { c.now() };
                    c.start_regeneration(name, scope, &freshness.rule(), now).await
                }
            }
        })?;
        Ok(match outcome {
            Regeneration::Acquired(lock) => {
                *out_lock = lock_handle(lock, scope);
                ezdb_status::EZDB_OK
            }
            Regeneration::Busy { remaining_secs } => {
                *out_remaining = remaining_secs;
                ezdb_status::EZDB_BUSY
            }
            Regeneration::Fresh(_) => ezdb_status::EZDB_FRESH,
        })
    })
}

/// The lock row's name (`<name>.generating`), NUL-terminated, owned by the lock: valid until
/// the lock is consumed. NULL for a NULL or dead lock.
#[no_mangle]
pub unsafe extern "C" fn ezdb_lock_name(lock: *const ezdb_lock) -> *const c_char {
    match LOCKS.get(lock) {
        Ok(lock) => lock.lock_name.as_ptr(),
        Err(_) => std::ptr::null(),
    }
}

/// Legacy `checkCacheGenerationTimeout`: refreshes the lock (a heartbeat, so a long generation
/// is not taken over) and sets `*out_still_ours` to 1, or to 0 when another process took the
/// lock over or removed it (then publishing would be refused).
#[no_mangle]
pub unsafe extern "C" fn ezdb_generation_check(
    cluster: *mut ezdb_cluster,
    lock: *mut ezdb_lock,
    out_still_ours: *mut i32,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let held = LOCKS.get_mut(lock)?;
        let out = args::out(out_still_ours, "out_still_ours")?;
        let ours = cluster.run(|c| async move { c.check_generation(&mut held.lock).await })?;
        *out = i32::from(ours);
        Ok(())
    })
}

/// Stores `data` under the lock row (legacy style: content written to `<name>.generating`),
/// to be published by `ezdb_generation_end`. The lock stays held. An empty `scope` means the
/// scope given to `ezdb_generation_start`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_generation_stage(
    cluster: *mut ezdb_cluster,
    lock: *mut ezdb_lock,
    data: *const c_char,
    data_len: usize,
    scope: *const c_char,
    scope_len: usize,
    datatype: *const c_char,
    datatype_len: usize,
) -> ezdb_status {
    guarded_ok(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let held = LOCKS.get_mut(lock)?;
        let data = args::bytes(data, data_len, "data")?;
        let options = held.options(scope, scope_len, datatype, datatype_len)?;
        cluster.run(|c| async move { c.stage(&mut held.lock, data, &options).await })
    })
}

/// Publishes the staged content as the file and releases the lock, in one transaction that
/// first verifies the lock is still ours. Consumes `lock` (freed whatever the result).
/// `EZDB_LOCK_LOST`: another process took the lock over; nothing was published, the newer
/// result is kept. `out` (nullable) receives the published row.
#[no_mangle]
pub unsafe extern "C" fn ezdb_generation_end(
    cluster: *mut ezdb_cluster,
    lock: *mut ezdb_lock,
    out: *mut ezdb_file_info,
) -> ezdb_status {
    guarded_ok(|| {
        let held = LOCKS.take(lock)?;
        let cluster = CLUSTERS.get(cluster)?;
        let meta = cluster.run(|c| async move { c.end_generation(held.lock).await })?;
        fill(args::optional_out(out), &meta);
        Ok(())
    })
}

/// Stage + end in one transaction: publishes `data` as the new version and releases the lock.
/// Consumes `lock`. Same answers as `ezdb_generation_end`; an empty `scope` as in `_stage`.
#[no_mangle]
pub unsafe extern "C" fn ezdb_generation_publish(
    cluster: *mut ezdb_cluster,
    lock: *mut ezdb_lock,
    data: *const c_char,
    data_len: usize,
    scope: *const c_char,
    scope_len: usize,
    datatype: *const c_char,
    datatype_len: usize,
    out: *mut ezdb_file_info,
) -> ezdb_status {
    guarded_ok(|| {
        let held = LOCKS.take(lock)?;
        let cluster = CLUSTERS.get(cluster)?;
        let data = args::bytes(data, data_len, "data")?;
        let options = held.options(scope, scope_len, datatype, datatype_len)?;
        let meta = cluster.run(|c| async move { c.publish(held.lock, data, &options).await })?;
        fill(args::optional_out(out), &meta);
        Ok(())
    })
}

/// Releases the lock without publishing (anything staged goes with it); removes the lock row
/// only while it is still ours, never the file itself. Consumes `lock`; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn ezdb_generation_abort(cluster: *mut ezdb_cluster, lock: *mut ezdb_lock) -> ezdb_status {
    if lock.is_null() {
        return ezdb_status::EZDB_OK;
    }
    guarded_ok(|| {
        let held = LOCKS.take(lock)?;
        let cluster = CLUSTERS.get(cluster).map_err(|e| {
            Failure::invalid(format!(
                "{}; the lock was freed, its row expires after the generation timeout",
                e.message
            ))
        })?;
        cluster.run(|c| async move { c.abort_generation(held.lock).await })
    })
}
