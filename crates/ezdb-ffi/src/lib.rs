// libezdb: the C ABI over ezdb-core, a thin blocking layer for PHP FFI and C. Every function
// catches panics, returns an `ezdb_status`, and documents who owns each pointer.
//!
//! Conventions shared by every function:
//! - Strings and bytes come in as pointer + length (`const char *x, size_t x_len`), never
//!   NUL-terminated; file names must be UTF-8. A NULL pointer is allowed only with length 0.
//! - On failure the status says what kind of failure it was, and [`ezdb_last_error`] the
//!   message (naming the operation, the file and what to do).
//! - Memory the library returns (bytes, name lists, handles) is freed only by the library's
//!   own functions: `ezdb_bytes_free`, `ezdb_close`, `ezdb_generation_end`/`_abort`, `ezdb_cache_free`.
//! - Connections and the async runtime are created lazily per process and rebuilt after a
//!   `fork()`, so a handle opened before PHP-FPM forks its workers works in each worker.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod args;
mod cache;
mod cluster;
mod expiry;
mod files;
mod generation;
mod guard;
mod handle;
mod info;
mod last_error;
mod listing;
mod output;
mod registry;
mod removal;
mod rules;
mod status;

pub use cache::*;
pub use cluster::*;
pub use expiry::*;
pub use files::*;
pub use generation::*;
pub use handle::{ezdb_cluster, ezdb_options};
pub use info::{ezdb_file_info, ezdb_freshness, ezdb_info_is_fresh};
pub use last_error::ezdb_last_error;
pub use listing::*;
pub use output::ezdb_bytes_free;
pub use removal::*;
pub use rules::*;
pub use status::{ezdb_fetch_flags, ezdb_status};
