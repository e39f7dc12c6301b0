// The cache protocol through the C ABI: the library reads, locks and decides; the caller serves,
// generates and reports (ezdb_cache_begin / _next / _free), and misuse is refused, not a crash.

mod common;
use common::*;
use ezdb::*;
use std::ptr;

fn rules() -> ezdb_cache_rules {
    ezdb_cache_rules {
        ttl: -1,
        expiry: -1,
        retrieve: 1,
        generate: EZDB_CACHE_GENERATE_ALWAYS,
        generate_while_busy: 0,
        holds_lock: 0,
        max_passes: 8,
        poll_ms: 50,
        max_wait_ms: 0,
    }
}

fn begin(
    cluster: *mut ezdb_cluster,
    name: &str,
    rules: &ezdb_cache_rules,
    local: i64,
) -> (ezdb_status, *mut ezdb_cache, ezdb_cache_step, *mut ezdb_lock) {
    let (mut run, mut lock) = (ptr::null_mut(), ptr::null_mut());
    let mut step: ezdb_cache_step = unsafe { std::mem::zeroed() };
    let mut row: ezdb_file_info = unsafe { std::mem::zeroed() };
    let status = unsafe {
        ezdb_cache_begin(
            cluster,
            name.as_ptr().cast(),
            name.len(),
            rules,
            local,
            &mut run,
            &mut step,
            &mut lock,
            &mut row,
        )
    };
    (status, run, step, lock)
}

#[test]
fn generate_once_then_serve_and_refuse_misuse() {
    let f = Fixture::new();
    let name = "var/site/cache/content/steps.cache";
    let (status, run, step, lock) = begin(f.cluster, name, &rules(), 0);
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_GENERATE as i32);
    assert!(!lock.is_null() && step.has_row == 0 && step.now > 0);
    let body = b"built";
    let mut info: ezdb_file_info = unsafe { std::mem::zeroed() };
    let published = unsafe {
        ezdb_generation_publish(
            f.cluster,
            lock,
            body.as_ptr().cast(),
            body.len(),
            ptr::null(),
            0,
            ptr::null(),
            0,
            &mut info,
        )
    };
    assert_eq!(published, ezdb_status::EZDB_OK, "{}", last_error());
    // The run is finished: another event is refused, and freeing it twice is caught.
    let mut next: ezdb_cache_step = unsafe { std::mem::zeroed() };
    let mut no_lock = ptr::null_mut();
    let refused = unsafe {
        ezdb_cache_next(
            f.cluster,
            run,
            EZDB_CACHE_WAITED,
            0,
            &mut next,
            &mut no_lock,
            ptr::null_mut(),
        )
    };
    assert_eq!(refused, ezdb_status::EZDB_INVALID_ARGUMENT);
    assert_eq!(unsafe { ezdb_cache_free(run) }, ezdb_status::EZDB_OK);
    assert_eq!(unsafe { ezdb_cache_free(run) }, ezdb_status::EZDB_INVALID_ARGUMENT);

    // Fresh now: a local copy as new as the row is served; without one, the row is downloaded.
    let (status, run, step, _) = begin(f.cluster, name, &rules(), info.mtime + 1);
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_SERVE_LOCAL as i32);
    assert_eq!((step.retrieve_mtime, step.has_row), (info.mtime + 1, 1));
    // The row it read, asked afterwards (as a caller that passed no out_row does).
    let mut row: ezdb_file_info = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { ezdb_cache_row(run, &mut row) },
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    assert_eq!((row.mtime, row.size, row.deleted), (info.mtime, body.len() as u64, 0));
    assert_eq!(
        unsafe { ezdb_cache_row(run, ptr::null_mut()) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    unsafe { ezdb_cache_free(run) };
    let (_, run, step, _) = begin(f.cluster, name, &rules(), 0);
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_SERVE_STORED as i32);
    assert_eq!((step.local_mtime, step.stale), (info.mtime + 1, 0));
    // The retrieve said "do not cache": a private copy.
    let status = unsafe {
        ezdb_cache_next(
            f.cluster,
            run,
            EZDB_CACHE_NO_CACHE,
            0,
            &mut next,
            &mut no_lock,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(next.action, ezdb_cache_action::EZDB_CACHE_GENERATE_UNSTORED as i32);
    assert_eq!(next.no_cache, 1);
    unsafe { ezdb_cache_free(run) };

    // Read only on a missing entry: give up (legacy failure 2); bad rules are refused.
    let read_only = ezdb_cache_rules {
        generate: EZDB_CACHE_GENERATE_NEVER,
        ..rules()
    };
    let (_, run, step, lock) = begin(f.cluster, "var/site/cache/none.cache", &read_only, 0);
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_GIVE_UP as i32);
    assert!(lock.is_null());
    let mut row: ezdb_file_info = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { ezdb_cache_row(run, &mut row) }, ezdb_status::EZDB_NOT_FOUND);
    unsafe { ezdb_cache_free(run) };
    assert_eq!(
        unsafe { ezdb_cache_row(run, &mut row) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    let bad = ezdb_cache_rules { generate: 9, ..rules() };
    let (status, run, _, _) = begin(f.cluster, name, &bad, 0);
    assert_eq!(status, ezdb_status::EZDB_INVALID_ARGUMENT);
    assert!(run.is_null());
}

fn restart(
    cluster: *mut ezdb_cluster,
    run: *mut ezdb_cache,
    name: &str,
    rules: &ezdb_cache_rules,
    local: i64,
) -> (ezdb_status, ezdb_cache_step, *mut ezdb_lock) {
    let mut lock = ptr::null_mut();
    let mut step: ezdb_cache_step = unsafe { std::mem::zeroed() };
    let mut row: ezdb_file_info = unsafe { std::mem::zeroed() };
    let status = unsafe {
        ezdb_cache_restart(
            cluster,
            run,
            name.as_ptr().cast(),
            name.len(),
            rules,
            local,
            &mut step,
            &mut lock,
            &mut row,
        )
    };
    (status, step, lock)
}

#[test]
fn a_restarted_run_decides_as_a_new_one() {
    let f = Fixture::new();
    let name = "var/site/cache/content/restart.cache";
    // A run that took the lock, started again on another name (read only, nothing stored there):
    // it gives up there, and the lock it handed out stays the caller's, published below.
    let (status, run, step, lock) = begin(f.cluster, name, &rules(), 0);
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_GENERATE as i32);
    let read_only = ezdb_cache_rules {
        generate: EZDB_CACHE_GENERATE_NEVER,
        ..rules()
    };
    let (status, step, no_lock) = restart(f.cluster, run, "var/site/cache/other.cache", &read_only, 0);
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_GIVE_UP as i32);
    assert!(no_lock.is_null() && step.has_row == 0);
    let mut info: ezdb_file_info = unsafe { std::mem::zeroed() };
    let body = b"built";
    let published = unsafe {
        ezdb_generation_publish(
            f.cluster,
            lock,
            body.as_ptr().cast(),
            body.len(),
            ptr::null(),
            0,
            ptr::null(),
            0,
            &mut info,
        )
    };
    assert_eq!(published, ezdb_status::EZDB_OK, "{}", last_error());
    // Fresh now: the same run serves a local copy as new as the row, then downloads without one.
    let (status, step, _) = restart(f.cluster, run, name, &rules(), info.mtime + 1);
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_SERVE_LOCAL as i32);
    assert_eq!((step.retrieve_mtime, step.has_row), (info.mtime + 1, 1));
    let (_, step, _) = restart(f.cluster, run, name, &rules(), 0);
    assert_eq!(step.action, ezdb_cache_action::EZDB_CACHE_SERVE_STORED as i32);
    // Bad arguments leave the run as it was; a freed run is refused.
    let bad = ezdb_cache_rules { generate: 9, ..rules() };
    assert_eq!(
        restart(f.cluster, run, name, &bad, 0).0,
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    let mut next: ezdb_cache_step = unsafe { std::mem::zeroed() };
    let mut next_lock = ptr::null_mut();
    let failed = unsafe {
        ezdb_cache_next(
            f.cluster,
            run,
            EZDB_CACHE_SERVE_FAILED,
            0,
            &mut next,
            &mut next_lock,
            ptr::null_mut(),
        )
    };
    assert_eq!(failed, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(unsafe { ezdb_cache_free(run) }, ezdb_status::EZDB_OK);
    if !next_lock.is_null() {
        unsafe { ezdb_generation_abort(f.cluster, next_lock) };
    }
    assert_eq!(
        restart(f.cluster, run, name, &rules(), 0).0,
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
}
