// The core's pure rules through the C ABI, as the PHP shim calls them.

use ezdb::*;
use std::ffi::{c_char, CStr};

fn clean(path: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; path.len()];
    let mut len = usize::MAX;
    let status = unsafe {
        ezdb_clean_path(
            path.as_ptr().cast::<c_char>(),
            path.len(),
            out.as_mut_ptr().cast::<c_char>(),
            &mut len,
        )
    };
    assert_eq!(status, ezdb_status::EZDB_OK);
    out.truncate(len);
    out
}

#[test]
fn clean_path_is_the_legacy_rule_on_any_bytes() {
    assert_eq!(clean(b"var//site\\\\storage/images/"), b"var/site/storage/images");
    assert_eq!(clean(b"/"), b"");
    assert_eq!(clean(b""), b"");
    assert_eq!(
        clean(b"a/\xff\xfe//b"),
        b"a/\xff\xfe/b",
        "bytes that are not UTF-8 are kept"
    );
    let mut len = 0usize;
    let refused = unsafe { ezdb_clean_path(std::ptr::null(), 3, std::ptr::null_mut(), &mut len) };
    assert_eq!(refused, ezdb_status::EZDB_INVALID_ARGUMENT);
}

#[test]
fn cache_types_and_expiry_are_the_cores() {
    let kind = |name: &str| unsafe {
        CStr::from_ptr(ezdb_cache_type(name.as_ptr().cast::<c_char>(), name.len()))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(kind("var/site/cache/content/site/2-x.cache"), "viewcache");
    assert_eq!(kind("var/site/cache/template-block/1/x.cache"), "cacheblock");
    assert_eq!(kind("var/site/storage/images/x.jpg"), "misc");
    assert_eq!(
        unsafe { CStr::from_ptr(ezdb_cache_type(std::ptr::null(), 0)) }
            .to_str()
            .unwrap(),
        "misc"
    );

    let now = 1_000_000;
    assert_eq!(ezdb_is_file_expired(0, 0, 0, now, 0, 0), 1, "no mtime is expired");
    assert_eq!(ezdb_is_file_expired(now - 10, 0, 0, now, 0, 0), 0, "no limit");
    assert_eq!(
        ezdb_is_file_expired(now - 10, 1, now - 5, now, 0, 0),
        1,
        "older than the expiry"
    );
    assert_eq!(ezdb_is_file_expired(now - 10, 0, 0, now, 1, 60), 0, "within the ttl");
    assert_eq!(
        ezdb_is_file_expired(now - 10, 0, 0, now, 1, -1),
        1,
        "a negative ttl is a number, as legacy"
    );
    assert_eq!(ezdb_is_row_expired(now, 1, 0, 0), 1, "deleted");
    assert_eq!(ezdb_is_row_expired(now, 0, 1, now + 1), 1, "older than the key");
    assert_eq!(ezdb_is_row_expired(now, 0, 1, now), 0, "equal to the key is still live");
}
