//! index_image: an HTTP/1.1 server that serves rewritten image URLs from an ezdb cluster
//! database, replacing the PHP gateway. A library with a thin binary: [`run`] serves a bound
//! listener until a shutdown future completes, so tests start it in-process.

mod config;
mod database;
mod disk_cache;
mod headers;
mod hot_cache;
mod http_range;
mod metrics;
mod page_cache;
mod preconditions;
mod request_clock;
mod request_name;
mod revalidation;
mod serve;
mod server;
mod spool;
mod watched_io;

pub use config::{Config, ConfigError};
pub use server::{run, RunError};
