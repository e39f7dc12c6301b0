// The checked-in headers (include/ezdb.h for C, php/ezdb.h for PHP FFI) must equal what
// cbindgen generates from the current source; EZDB_UPDATE_HEADERS=1 rewrites them.

use std::path::Path;

fn check(generated: &str, checked_in: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let generated = std::fs::read_to_string(Path::new(env!("OUT_DIR")).join(generated)).unwrap();
    let target = root.join(checked_in);
    if std::env::var_os("EZDB_UPDATE_HEADERS").is_some() {
        std::fs::write(&target, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&target).unwrap_or_default();
    assert!(
        current == generated,
        "{checked_in} is out of date with crates/ezdb-ffi; regenerate it with \
         `EZDB_UPDATE_HEADERS=1 cargo test -p ezdb-ffi --test header` and commit it"
    );
}

#[test]
fn c_header_is_up_to_date() {
    check("ezdb.h", "include/ezdb.h");
}

#[test]
fn php_header_is_up_to_date() {
    check("ezdb.php.h", "php/ezdb.h");
}
