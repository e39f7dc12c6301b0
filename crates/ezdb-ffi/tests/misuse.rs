// Misuse of the C ABI gives an error status and a message, never a crash: NULL pointers, freed
// handles and locks, invalid UTF-8 and NUL in names, bad URLs, an unreachable server.

mod common;
use common::*;
use ezdb::*;
use std::ptr;

#[test]
fn null_pointers_are_refused_with_the_argument_named() {
    let f = Fixture::new();
    let mut out = 0;
    assert_eq!(
        unsafe { ezdb_exists(ptr::null_mut(), "a".as_ptr().cast(), 1, &mut out) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    assert!(last_error().contains("NULL"), "{}", last_error());
    assert_eq!(
        unsafe { ezdb_exists(f.cluster, ptr::null(), 5, &mut out) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    assert!(last_error().contains("name is NULL"), "{}", last_error());
    assert_eq!(
        unsafe { ezdb_exists(f.cluster, "a".as_ptr().cast(), 1, ptr::null_mut()) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    assert!(last_error().contains("out_exists"), "{}", last_error());
    assert_eq!(
        unsafe { ezdb_stat(f.cluster, "a".as_ptr().cast(), 1, ptr::null_mut()) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { ezdb_open(ptr::null(), 0, ptr::null(), ptr::null_mut()) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    unsafe {
        ezdb_close(ptr::null_mut());
        ezdb_bytes_free(ptr::null_mut(), 10);
        ezdb_options_init(ptr::null_mut());
        assert_eq!(ezdb_generation_abort(f.cluster, ptr::null_mut()), ezdb_status::EZDB_OK);
        assert!(ezdb_lock_name(ptr::null()).is_null());
        assert_eq!(ezdb_info_is_fresh(ptr::null(), ptr::null()), 0);
    }
}

#[test]
fn a_closed_handle_is_refused_not_dereferenced() {
    let f = Fixture::new();
    let cluster = open(&f.db.url);
    assert!(!exists(cluster, "x"));
    unsafe { ezdb_close(cluster) };
    let mut out = 0;
    assert_eq!(
        unsafe { ezdb_exists(cluster, "x".as_ptr().cast(), 1, &mut out) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    assert!(last_error().contains("not live"), "{}", last_error());
    unsafe { ezdb_close(cluster) }; // a double close is refused quietly
    let forged = 0x1000 as *mut ezdb_cluster;
    assert_eq!(unsafe { ezdb_connect(forged) }, ezdb_status::EZDB_INVALID_ARGUMENT);
}

#[test]
fn a_consumed_lock_cannot_be_used_again() {
    let f = Fixture::new();
    let (mut lock, mut remaining) = (ptr::null_mut(), 0i64);
    let name = "g/twice";
    let status = unsafe {
        ezdb_generation_start(
            f.cluster,
            name.as_ptr().cast(),
            name.len(),
            ptr::null(),
            0,
            ptr::null(),
            &mut lock,
            &mut remaining,
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert_eq!(unsafe { ezdb_generation_abort(f.cluster, lock) }, ezdb_status::EZDB_OK);
    assert_eq!(
        unsafe { ezdb_generation_abort(f.cluster, lock) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { ezdb_generation_end(f.cluster, lock, ptr::null_mut()) },
        ezdb_status::EZDB_INVALID_ARGUMENT
    );
    assert!(last_error().contains("generation lock"), "{}", last_error());
}

#[test]
fn bad_names_get_a_clear_error() {
    let f = Fixture::new();
    let mut out = 0;
    for (name, expected) in [
        (&b"\xff\xfe/bad"[..], "not valid UTF-8"),
        (&b"a\0b"[..], "NUL"),
        (&b""[..], "empty"),
    ] {
        let status = unsafe { ezdb_exists(f.cluster, name.as_ptr().cast(), name.len(), &mut out) };
        assert_eq!(status, ezdb_status::EZDB_INVALID_ARGUMENT);
        assert!(last_error().contains(expected), "{expected}: {}", last_error());
        assert_eq!(
            fetch(f.cluster, name, ezdb_fetch_flags::EZDB_FETCH_LIVE),
            Err(ezdb_status::EZDB_INVALID_ARGUMENT)
        );
    }
    let long = "n/".repeat(5000);
    assert_eq!(store(f.cluster, &long, b"x", ""), ezdb_status::EZDB_INVALID_ARGUMENT);
}

#[test]
fn unreachable_servers_and_bad_urls_report_the_cause() {
    let closed_port = "mysql://root@127.0.0.1:9/nothing";
    let options = ezdb_options {
        connect_timeout_ms: 1000,
        max_attempts: 1,
        ..Default::default()
    };
    let mut cluster = ptr::null_mut();
    assert_eq!(
        unsafe { ezdb_open(closed_port.as_ptr().cast(), closed_port.len(), &options, &mut cluster) },
        ezdb_status::EZDB_OK
    );
    assert_eq!(unsafe { ezdb_connect(cluster) }, ezdb_status::EZDB_CONNECT);
    assert!(
        last_error().contains("127.0.0.1:9") && last_error().contains("check the URL"),
        "{}",
        last_error()
    );
    assert!(
        !exists_status_ok(cluster),
        "every call reports the outage, none crashes"
    );
    unsafe { ezdb_close(cluster) };

    for (url, options, expected) in [
        (
            "postgres://elsewhere".to_string(),
            ezdb_options::default(),
            "not a MySQL/MariaDB URL",
        ),
        (
            ezdb_testdb::server_url(),
            ezdb_options {
                chunk_size: 70_000,
                ..Default::default()
            },
            "65535",
        ),
    ] {
        let status = unsafe { ezdb_open(url.as_ptr().cast(), url.len(), &options, &mut cluster) };
        assert_eq!(
            status,
            ezdb_status::EZDB_CONFIG,
            "settings are checked when the handle is opened"
        );
        assert!(last_error().contains(expected), "{}", last_error());
    }
}

#[test]
fn the_legacy_expiry_file_setting_is_copied_and_checked() {
    let f = Fixture::new();
    let url = &f.db.url;
    let mut cluster = ptr::null_mut();
    let bad = b"var/\xff/expiry.php";
    let options = ezdb_options {
        legacy_expiry_file: bad.as_ptr().cast(),
        legacy_expiry_file_len: bad.len(),
        ..Default::default()
    };
    let status = unsafe { ezdb_open(url.as_ptr().cast(), url.len(), &options, &mut cluster) };
    assert_eq!(status, ezdb_status::EZDB_INVALID_ARGUMENT);
    assert!(last_error().contains("legacy_expiry_file"), "{}", last_error());

    let file = String::from("var/site/cache/expiry.php");
    let options = ezdb_options {
        legacy_expiry_file: file.as_ptr().cast(),
        legacy_expiry_file_len: file.len(),
        ..Default::default()
    };
    let status = unsafe { ezdb_open(url.as_ptr().cast(), url.len(), &options, &mut cluster) };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    drop(file);
    let (key, mut at) = ("content-view-cache", 0i64);
    let status = unsafe { ezdb_set_global_expiry(cluster, key.as_ptr().cast(), key.len(), 0, &mut at) };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    assert!(
        stat(cluster, "var/site/cache/expiry.php").is_ok(),
        "the clear reached the legacy expiry.php named by the (since freed) setting"
    );
    unsafe {
        ezdb_disconnect(cluster);
        ezdb_close(cluster);
    }
}

fn exists_status_ok(cluster: *mut ezdb_cluster) -> bool {
    let mut out = 0;
    unsafe { ezdb_exists(cluster, "x".as_ptr().cast(), 1, &mut out) == ezdb_status::EZDB_OK }
}

#[test]
fn a_call_from_inside_an_async_runtime_is_an_error_not_a_crash() {
    let f = Fixture::new();
    let cluster = f.cluster as usize;
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let mut out = 0;
        unsafe { ezdb_exists(cluster as *mut ezdb_cluster, "x".as_ptr().cast(), 1, &mut out) }
    });
    assert_eq!(status, ezdb_status::EZDB_PANIC);
    assert!(last_error().contains("please report"), "{}", last_error());
}

#[test]
fn freeing_bytes_twice_or_bytes_not_from_libezdb_is_refused_not_a_crash() {
    let f = Fixture::new();
    assert_eq!(store(f.cluster, "twice", b"some bytes", "misc"), ezdb_status::EZDB_OK);
    let (mut data, mut len) = (ptr::null_mut(), 0usize);
    let status = unsafe {
        ezdb_fetch(
            f.cluster,
            "twice".as_ptr().cast(),
            5,
            ezdb_fetch_flags::EZDB_FETCH_LIVE as u32,
            &mut data,
            &mut len,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK);
    assert_eq!(
        unsafe { ezdb_bytes_free(data, len + 1) },
        ezdb_status::EZDB_INVALID_ARGUMENT,
        "a wrong length is refused"
    );
    assert!(last_error().contains("out_len"), "{}", last_error());
    assert_eq!(unsafe { ezdb_bytes_free(data, len) }, ezdb_status::EZDB_OK);
    assert_eq!(
        unsafe { ezdb_bytes_free(data, len) },
        ezdb_status::EZDB_INVALID_ARGUMENT,
        "a second free is refused"
    );
    assert!(last_error().contains("already freed"), "{}", last_error());
    let mut own = *b"not from libezdb";
    assert_eq!(
        unsafe { ezdb_bytes_free(own.as_mut_ptr().cast(), own.len()) },
        ezdb_status::EZDB_INVALID_ARGUMENT,
        "a foreign pointer is refused"
    );
    assert_eq!(unsafe { ezdb_bytes_free(ptr::null_mut(), 3) }, ezdb_status::EZDB_OK);
}
