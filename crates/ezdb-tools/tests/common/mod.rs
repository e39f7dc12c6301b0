//! What the tool tests share: the checks of a finished tool run.
#![allow(dead_code)]

use std::process::Output;

/// The run succeeded; its stdout.
pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The run failed with one clear line on stderr; (stdout, stderr).
pub fn failed_output(output: &Output) -> (String, String) {
    assert!(
        !output.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

/// The run failed with one clear line on stderr; that line.
pub fn failed(output: &Output) -> String {
    failed_output(output).1
}
