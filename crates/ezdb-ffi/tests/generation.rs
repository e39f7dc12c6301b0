// The cache-generation lock through the C ABI: exclusion, remaining time, the re-check that
// finds a freshly published entry, staged and direct publishing, heartbeat and lock loss.

mod common;
use common::*;
use ezdb::*;
use std::ptr;

fn start(
    cluster: *mut ezdb_cluster,
    name: &str,
    recheck: Option<&ezdb_freshness>,
) -> (ezdb_status, *mut ezdb_lock, i64) {
    let (mut lock, mut remaining) = (ptr::null_mut(), -7i64);
    let recheck = recheck.map_or(ptr::null(), |r| r as *const _);
    let scope = "viewcache";
    let status = unsafe {
        ezdb_generation_start(
            cluster,
            name.as_ptr().cast(),
            name.len(),
            scope.as_ptr().cast(),
            scope.len(),
            recheck,
            &mut lock,
            &mut remaining,
        )
    };
    (status, lock, remaining)
}

#[test]
fn the_lock_excludes_other_handles_until_published() {
    let f = Fixture::new();
    let other = open(&f.db.url);
    let name = "var/site/cache/content/1.cache";
    let (status, lock, _) = start(f.cluster, name, None);
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    let lock_name = unsafe { std::ffi::CStr::from_ptr(ezdb_lock_name(lock)) };
    assert_eq!(lock_name.to_str().unwrap(), format!("{name}.generating"));
    let (busy, _, remaining) = start(other, name, None);
    assert_eq!(busy, ezdb_status::EZDB_BUSY);
    assert!((55..=60).contains(&remaining), "{remaining}");

    let mut ours = 0;
    assert_eq!(
        unsafe { ezdb_generation_check(f.cluster, lock, &mut ours) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(ours, 1);
    let body = b"<?php return 1;";
    let dt = "php";
    let mut info: ezdb_file_info = unsafe { std::mem::zeroed() };
    let status = unsafe {
        ezdb_generation_publish(
            f.cluster,
            lock,
            body.as_ptr().cast(),
            body.len(),
            ptr::null(),
            0,
            dt.as_ptr().cast(),
            dt.len(),
            &mut info,
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(
        (info.size, text(info.scope, info.scope_len)),
        (body.len() as u64, "viewcache".to_string())
    );
    assert_eq!(
        fetch(other, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
        body
    );
    let (again, lock, _) = start(other, name, None);
    assert_eq!(again, ezdb_status::EZDB_OK, "the lock was released");
    unsafe { ezdb_generation_abort(other, lock) };
    unsafe { ezdb_close(other) };
}

#[test]
fn the_recheck_finds_an_entry_published_after_the_callers_read() {
    let f = Fixture::new();
    let name = "var/site/cache/content/2.cache";
    let mut now = 0;
    unsafe { ezdb_now(f.cluster, &mut now) };
    // The caller read "missing"; meanwhile another process published a fresh entry.
    store(f.cluster, name, b"fresh", "viewcache");
    let rule = ezdb_freshness {
        ttl: 60,
        expiry: -1,
        now,
    };
    let (status, lock, _) = start(f.cluster, name, Some(&rule));
    assert_eq!(status, ezdb_status::EZDB_FRESH, "{}", last_error());
    assert!(lock.is_null());
    let (status, lock, _) = start(f.cluster, name, None);
    assert_eq!(status, ezdb_status::EZDB_OK, "FRESH released the lock");
    unsafe { ezdb_generation_abort(f.cluster, lock) };

    // An expired entry is regenerated: the re-check hands the lock to the caller.
    unsafe { ezdb_delete(f.cluster, name.as_ptr().cast(), name.len(), ptr::null_mut()) };
    let (status, lock, _) = start(f.cluster, name, Some(&rule));
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    unsafe { ezdb_generation_abort(f.cluster, lock) };
    assert_eq!(
        fetch(f.cluster, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_INCLUDE_DELETED).unwrap(),
        b"fresh",
        "abort never touches the file"
    );
}

#[test]
fn staged_content_is_published_by_end_and_a_lost_lock_publishes_nothing() {
    let f = Fixture::new();
    let name = "g/staged";
    store(f.cluster, name, b"old", "misc");
    let (status, lock, _) = start(f.cluster, name, None);
    assert_eq!(status, ezdb_status::EZDB_OK);
    let body = b"new";
    assert_eq!(
        unsafe { ezdb_generation_stage(f.cluster, lock, body.as_ptr().cast(), 3, ptr::null(), 0, ptr::null(), 0) },
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        fetch(f.cluster, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
        b"old",
        "staging does not publish"
    );
    assert_eq!(
        unsafe { ezdb_generation_end(f.cluster, lock, ptr::null_mut()) },
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        fetch(f.cluster, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
        b"new"
    );

    // Another process removes our lock row (as a takeover would): publishing is refused.
    let (status, lock, _) = start(f.cluster, name, None);
    assert_eq!(status, ezdb_status::EZDB_OK);
    let lock_row = format!("{name}.generating");
    let mut purged = 0;
    unsafe {
        ezdb_purge(
            f.cluster,
            lock_row.as_ptr().cast(),
            lock_row.len(),
            i64::MAX,
            &mut purged,
        )
    };
    assert_eq!(purged, 1);
    let mut ours = 1;
    assert_eq!(
        unsafe { ezdb_generation_check(f.cluster, lock, &mut ours) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(ours, 0);
    let status = unsafe {
        ezdb_generation_publish(
            f.cluster,
            lock,
            "late".as_ptr().cast(),
            4,
            ptr::null(),
            0,
            ptr::null(),
            0,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, ezdb_status::EZDB_LOCK_LOST, "{}", last_error());
    assert_eq!(
        fetch(f.cluster, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
        b"new"
    );
}
