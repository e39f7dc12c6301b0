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

#[test]
fn c_header_compiles_as_c_and_cpp() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let source =
        "#include \"ezdb.h\"\nint main(void) { ezdb_options o; ezdb_options_init(&o); return (int)EZDB_OK; }\n";
    for (compiler, language) in [("cc", "c"), ("c++", "c++")] {
        let output = std::process::Command::new(compiler)
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-x", language, "-I"])
            .arg(root.join("include"))
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(source.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap_or_else(|e| panic!("cannot run {compiler} (the C compiler Rust links with): {e}"));
        assert!(
            output.status.success(),
            "include/ezdb.h does not compile as {language}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
