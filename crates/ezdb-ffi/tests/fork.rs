// Fork safety: a handle used before fork() keeps working in the child (which builds its own
// runtime and connection) and in the parent afterwards, as PHP-FPM workers need.

mod common;
use common::*;
use ezdb::*;

#[test]
fn a_child_forked_after_use_and_its_parent_both_keep_working() {
    let f = Fixture::new();
    assert_eq!(
        store(f.cluster, "fork/parent", b"before fork", "test"),
        ezdb_status::EZDB_OK
    );
    let mut children = Vec::new();
    for child in 0..3 {
        match unsafe { libc::fork() } {
            -1 => panic!("fork failed"),
            0 => {
                // In the child: only this thread exists; report through the exit code.
                let name = format!("fork/child{child}");
                let mut ok = true;
                for i in 0..50 {
                    let body = format!("child {child} write {i}");
                    ok &= store(f.cluster, &name, body.as_bytes(), "test") == ezdb_status::EZDB_OK;
                    ok &= fetch(f.cluster, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).as_deref()
                        == Ok(body.as_bytes());
                    ok &= fetch(f.cluster, b"fork/parent", ezdb_fetch_flags::EZDB_FETCH_LIVE).as_deref()
                        == Ok(&b"before fork"[..]);
                }
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            pid => children.push(pid),
        }
    }
    for i in 0..50 {
        let body = format!("parent write {i}");
        assert_eq!(
            store(f.cluster, "fork/parent2", body.as_bytes(), "test"),
            ezdb_status::EZDB_OK,
            "{}",
            last_error()
        );
        assert_eq!(
            fetch(f.cluster, b"fork/parent2", ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
            body.as_bytes()
        );
    }
    for pid in children {
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "a forked child failed (status {status})"
        );
    }
    for child in 0..3 {
        let name = format!("fork/child{child}");
        assert_eq!(
            fetch(f.cluster, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
            format!("child {child} write 49").as_bytes()
        );
    }
}
