// ezdb-tools: what the `ezcache` and `ezdb` binaries share: the legacy cache items, expiry
// texts, progress reporting, and the import/export rules.

pub mod age;
pub mod cache_items;
pub mod cli;
pub mod connect;
pub mod files;
pub mod migrate;
pub mod progress;
pub mod schema_cmd;

/// Prints a line to stdout; a closed pipe (`ezcache --list | head`) ends the program quietly
/// instead of panicking.
#[macro_export]
macro_rules! emit {
    ($($arg:tt)*) => { $crate::emit_line(format_args!($($arg)*)) };
}

pub fn emit_line(args: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout(), "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}
