// Files through the C functions against a real MariaDB: binary-safe store and the four ways to
// read, stat/exists, soft delete and purge, patterns, copy/move, lists and global expiry.

mod common;
use common::*;
use ezdb::*;
use std::ptr;

#[test]
fn every_byte_value_round_trips_through_each_read() {
    let f = Fixture::new();
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 256) as u8).collect();
    assert_eq!(
        store(f.cluster, "var/site/storage/all.bin", &content, "binaryfile"),
        ezdb_status::EZDB_OK
    );
    let name = b"var/site/storage/all.bin";
    assert_eq!(
        fetch(f.cluster, name, ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
        content
    );

    let mut small = vec![0u8; 10];
    let mut needed = 0usize;
    let status = unsafe {
        ezdb_fetch_into(
            f.cluster,
            name.as_ptr().cast(),
            name.len(),
            0,
            small.as_mut_ptr().cast(),
            10,
            &mut needed,
            ptr::null_mut(),
        )
    };
    assert_eq!((status, needed), (ezdb_status::EZDB_BUFFER_TOO_SMALL, content.len()));
    assert!(last_error().contains("out_len"), "{}", last_error());
    assert_eq!(small, vec![0u8; 10], "a too-small buffer is left untouched");
    let mut buf = vec![0u8; needed];
    let status = unsafe {
        ezdb_fetch_into(
            f.cluster,
            name.as_ptr().cast(),
            name.len(),
            0,
            buf.as_mut_ptr().cast(),
            needed,
            &mut needed,
            ptr::null_mut(),
        )
    };
    assert_eq!((status, &buf), (ezdb_status::EZDB_OK, &content));

    let (mut data, mut len) = (ptr::null_mut(), 0usize);
    let status = unsafe {
        ezdb_fetch_range(
            f.cluster,
            name.as_ptr().cast(),
            name.len(),
            65_530,
            10,
            0,
            &mut data,
            &mut len,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) },
        &content[65_530..65_540]
    );
    unsafe { ezdb_bytes_free(data, len) };
    let status = unsafe {
        ezdb_fetch_range(
            f.cluster,
            name.as_ptr().cast(),
            name.len(),
            0,
            0,
            0,
            &mut data,
            &mut len,
            ptr::null_mut(),
        )
    };
    assert_eq!(
        status,
        ezdb_status::EZDB_OK,
        "length 0 reads to the end: {}",
        last_error()
    );
    assert_eq!(
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) },
        &content[..]
    );
    unsafe { ezdb_bytes_free(data, len) };

    let dir = std::env::temp_dir().join(format!("ezdb-ffi-{}", std::process::id()));
    let path = dir.join("deep/copy.bin");
    let path_text = path.to_str().unwrap();
    let mut info: ezdb_file_info = unsafe { std::mem::zeroed() };
    let status = unsafe {
        ezdb_fetch_to_file(
            f.cluster,
            name.as_ptr().cast(),
            name.len(),
            path_text.as_ptr().cast(),
            path_text.len(),
            0,
            &mut info,
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(
        (
            info.size,
            text(info.scope, info.scope_len),
            text(info.datatype, info.datatype_len)
        ),
        (content.len() as u64, "binaryfile".into(), "text/plain".into())
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn empty_and_nul_content_is_stored_as_given() {
    let f = Fixture::new();
    for (name, content) in [("e/empty", &b""[..]), ("e/nul", &b"\0a\0\0b\0"[..])] {
        assert_eq!(
            store(f.cluster, name, content, ""),
            ezdb_status::EZDB_OK,
            "{}",
            last_error()
        );
        assert_eq!(
            fetch(f.cluster, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
            content
        );
        let info = stat(f.cluster, name).unwrap();
        assert_eq!(
            (info.size, text(info.scope, info.scope_len), info.deleted),
            (content.len() as u64, "UNKNOWN_SCOPE".into(), 0)
        );
    }
}

#[test]
fn delete_hides_the_file_until_purge_removes_it() {
    let f = Fixture::new();
    store(f.cluster, "d/file", b"bytes", "test");
    assert!(exists(f.cluster, "d/file"));
    let mut count = 0u64;
    assert_eq!(
        unsafe { ezdb_delete(f.cluster, "d/file".as_ptr().cast(), 6, &mut count) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(count, 1);
    assert!(!exists(f.cluster, "d/file"));
    assert_eq!(
        fetch(f.cluster, b"d/file", ezdb_fetch_flags::EZDB_FETCH_LIVE),
        Err(ezdb_status::EZDB_NOT_FOUND)
    );
    assert_eq!(
        fetch(f.cluster, b"d/file", ezdb_fetch_flags::EZDB_FETCH_INCLUDE_DELETED).unwrap(),
        b"bytes"
    );
    let info = stat(f.cluster, "d/file").unwrap();
    assert!(info.deleted == 1 && info.mtime < 0);
    let mut purged = 0;
    assert_eq!(
        unsafe { ezdb_purge(f.cluster, "d/file".as_ptr().cast(), 6, -1, &mut purged) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(purged, 1);
    assert_eq!(stat(f.cluster, "d/file").unwrap_err(), ezdb_status::EZDB_NOT_FOUND);
}

#[test]
fn pattern_deletes_and_prefix_purge_count_what_they_touch() {
    let f = Fixture::new();
    for name in ["c/a/x_1", "c/a/x%2", "c/a/y", "c/b/x", "c/b/z.cache", "c/bz.cache"] {
        store(f.cluster, name, b"1", "test");
    }
    let mut count = 0u64;
    let (path, part) = ("c/a", "x_");
    assert_eq!(
        unsafe { ezdb_delete_prefix(f.cluster, path.as_ptr().cast(), 3, part.as_ptr().cast(), 2, &mut count) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(count, 1, "'_' is literal, so only x_1 matches");
    let glob = "c/b/*.cache";
    assert_eq!(
        unsafe { ezdb_delete_wildcard(f.cluster, glob.as_ptr().cast(), glob.len(), &mut count) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(count, 1, "the dot is literal and the glob anchored");
    let dirs = b"a\0b";
    assert_eq!(
        unsafe {
            ezdb_delete_by_dir_list(
                f.cluster,
                dirs.as_ptr().cast(),
                3,
                "c".as_ptr().cast(),
                1,
                "x".as_ptr().cast(),
                1,
                &mut count,
            )
        },
        ezdb_status::EZDB_OK
    );
    assert_eq!(count, 2, "c/a/x%2 and c/b/x");
    assert_eq!(
        unsafe { ezdb_purge_prefix(f.cluster, "c".as_ptr().cast(), 1, -1, 2, 1, &mut count) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(count, 2, "one batch of 2 in this call");
    assert_eq!(
        unsafe { ezdb_purge_prefix(f.cluster, "c".as_ptr().cast(), 1, -1, 2, 0, &mut count) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(count, 2, "the rest in the next call, without a batch limit");
    assert!(exists(f.cluster, "c/a/y") && exists(f.cluster, "c/bz.cache"));
}

#[test]
fn copy_and_move_keep_the_bytes_and_report_missing_sources() {
    let f = Fixture::new();
    store(f.cluster, "m/src", b"payload", "image");
    let copy =
        |s: &str, d: &str| unsafe { ezdb_copy(f.cluster, s.as_ptr().cast(), s.len(), d.as_ptr().cast(), d.len()) };
    let rename =
        |s: &str, d: &str| unsafe { ezdb_move(f.cluster, s.as_ptr().cast(), s.len(), d.as_ptr().cast(), d.len()) };
    assert_eq!(copy("m/src", "m/copy"), ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(rename("m/copy", "m/moved"), ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(
        fetch(f.cluster, b"m/moved", ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
        b"payload"
    );
    assert_eq!(stat(f.cluster, "m/copy").unwrap_err(), ezdb_status::EZDB_NOT_FOUND);
    assert_eq!(rename("m/none", "m/x"), ezdb_status::EZDB_NOT_FOUND, "{}", last_error());
    assert!(last_error().contains("m/none"), "{}", last_error());
}

#[test]
fn lists_by_scope_and_expired_lists() {
    let f = Fixture::new();
    store(f.cluster, "l/1", b"1", "image");
    store(f.cluster, "l/2", b"2", "viewcache");
    store(f.cluster, "l/3", b"3", "viewcache");
    unsafe { ezdb_delete(f.cluster, "l/3".as_ptr().cast(), 3, ptr::null_mut()) };
    let list = |scopes: &[u8], exclude: i32| {
        let (mut data, mut len, mut count) = (ptr::null_mut(), 0usize, 0usize);
        let status = unsafe {
            ezdb_list(
                f.cluster,
                scopes.as_ptr().cast(),
                scopes.len(),
                exclude,
                &mut data,
                &mut len,
                &mut count,
            )
        };
        assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
        take_list(data, len, count)
    };
    assert_eq!(list(b"", 0), ["l/1", "l/2", "l/3"]);
    assert_eq!(list(b"viewcache\0image", 0), ["l/1", "l/2", "l/3"]);
    assert_eq!(list(b"viewcache", 1), ["l/1"]);
    assert_eq!(list(b"nothing", 0), Vec::<String>::new());
    let (mut data, mut len, mut count) = (ptr::null_mut(), 0usize, 0usize);
    let scopes = b"viewcache";
    let status = unsafe {
        ezdb_list_expired(
            f.cluster,
            scopes.as_ptr().cast(),
            scopes.len(),
            -1,
            0,
            0,
            &mut data,
            &mut len,
            &mut count,
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(take_list(data, len, count), ["l/3"]);
}

#[test]
fn a_global_expiry_hides_the_files_it_covers() {
    let f = Fixture::new();
    store(f.cluster, "var/site/cache/content/a.cache", b"view", "viewcache");
    let mut now = 0i64;
    assert_eq!(unsafe { ezdb_now(f.cluster, &mut now) }, ezdb_status::EZDB_OK);
    let key = "content-view-cache";
    let (mut stored, mut read) = (0i64, 0i64);
    assert_eq!(
        unsafe { ezdb_set_global_expiry(f.cluster, key.as_ptr().cast(), key.len(), now + 5, &mut stored) },
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        unsafe { ezdb_global_expiry(f.cluster, key.as_ptr().cast(), key.len(), &mut read) },
        ezdb_status::EZDB_OK
    );
    assert_eq!((stored, read), (now + 5, now + 5));
    assert!(!exists(f.cluster, "var/site/cache/content/a.cache"));
    let info = stat(f.cluster, "var/site/cache/content/a.cache").unwrap();
    assert_eq!((info.has_global_expiry, info.global_expiry), (1, now + 5));
    let fresh = ezdb_freshness {
        ttl: -1,
        expiry: -1,
        now,
    };
    assert_eq!(
        unsafe { ezdb_info_is_fresh(&info, &fresh) },
        0,
        "a globally expired entry is never fresh"
    );
    let unset = "never-set";
    assert_eq!(
        unsafe { ezdb_global_expiry(f.cluster, unset.as_ptr().cast(), unset.len(), &mut read) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(read, -1);
}

#[test]
fn scopes_datatypes_and_trunks_as_long_as_the_columns_hold_come_back_whole() {
    let f = Fixture::new();
    // VARCHAR(20) and VARCHAR(255) of 4-byte characters: 80 and 1020 bytes.
    let scope = "😀".repeat(20);
    let datatype = "𝄞".repeat(255);
    let name = "var/site/cache/content/站点/2-a54e😀.cache";
    let status = unsafe {
        ezdb_store(
            f.cluster,
            name.as_ptr().cast(),
            name.len(),
            b"x".as_ptr().cast(),
            1,
            scope.as_ptr().cast(),
            scope.len(),
            datatype.as_ptr().cast(),
            datatype.len(),
            0,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    let info = stat(f.cluster, name).unwrap();
    assert_eq!(text(info.scope, info.scope_len), scope);
    assert_eq!(text(info.datatype, info.datatype_len), datatype);
    assert_eq!(
        text(info.name_trunk, info.name_trunk_len),
        name,
        "other scopes: the whole name"
    );

    store(f.cluster, name, b"y", "viewcache");
    let info = stat(f.cluster, name).unwrap();
    assert_eq!(
        text(info.name_trunk, info.name_trunk_len),
        "var/site/cache/content/站点/2-",
        "a view cache's trunk is cut after the first '-' of its file name"
    );
}
