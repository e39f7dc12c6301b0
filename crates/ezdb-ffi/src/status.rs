// The status codes every function returns, and how core errors map onto them. The message
// that goes with a failure is kept per thread (see last_error.rs).

use ezdb_core::Error;

/// Result of every libezdb call. Values below 10 are answers, 10 and above failures (read
/// `ezdb_last_error()` for the message).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ezdb_status {
    /// Success.
    EZDB_OK = 0,
    /// The file has no row (or, for live reads, is deleted or expired).
    EZDB_NOT_FOUND = 1,
    /// Another process holds the generation lock; see the `out_remaining` argument.
    EZDB_BUSY = 2,
    /// After the lock was taken, the separate re-check connection found a fresh entry that
    /// another process had just published: the lock was released; read the entry and serve it.
    EZDB_FRESH = 3,
    /// A NULL pointer, a closed handle, a name that is empty, too long, not UTF-8 or has NUL.
    EZDB_INVALID_ARGUMENT = 10,
    /// The caller's buffer is too small; `out_len` holds the size needed.
    EZDB_BUFFER_TOO_SMALL = 11,
    /// The database cannot be reached or refused the login.
    EZDB_CONNECT = 12,
    /// A statement failed (after the retries for deadlocks and lost connections).
    EZDB_DATABASE = 13,
    /// A local file could not be read or written.
    EZDB_IO = 14,
    /// Stored rows are inconsistent (chunks missing or of the wrong size); run `ezdb check`.
    EZDB_INTEGRITY = 15,
    /// The generation lock was taken over or removed by another process; nothing was published.
    EZDB_LOCK_LOST = 16,
    /// Waited too long for another process's generation.
    EZDB_TIMEOUT = 17,
    /// The cluster tables are missing or incompatible; run `ezdb schema install`.
    EZDB_SCHEMA = 18,
    /// Invalid options given to `ezdb_open`.
    EZDB_CONFIG = 19,
    /// A bug inside libezdb was caught before it could cross into the caller; please report it.
    EZDB_PANIC = 20,
}

/// Flags of the fetch functions.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ezdb_fetch_flags {
    /// Only live files: deleted or globally expired files are `EZDB_NOT_FOUND`.
    EZDB_FETCH_LIVE = 0,
    /// Deleted and expired rows too (legacy fetch semantics; the stale copy of a cache).
    EZDB_FETCH_INCLUDE_DELETED = 1,
}

/// A failed call: its status and the message for `ezdb_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: ezdb_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: ezdb_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ezdb_status::EZDB_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let status = match &error {
            Error::InvalidName { .. } | Error::InvalidArgument { .. } => ezdb_status::EZDB_INVALID_ARGUMENT,
            Error::Config(_) => ezdb_status::EZDB_CONFIG,
            Error::Connect { .. } => ezdb_status::EZDB_CONNECT,
            Error::NotFound { .. } => ezdb_status::EZDB_NOT_FOUND,
            Error::Integrity { .. } => ezdb_status::EZDB_INTEGRITY,
            Error::Io { .. } | Error::Source { .. } => ezdb_status::EZDB_IO,
            Error::LockLost { .. } => ezdb_status::EZDB_LOCK_LOST,
            Error::GenerationTimeout { .. } => ezdb_status::EZDB_TIMEOUT,
            Error::Schema(_) => ezdb_status::EZDB_SCHEMA,
            // The message says which: a failing statement, a commit whose outcome is unknown
            // (read the file back before repeating it), or the caller's generate callback.
            Error::Database { .. } | Error::OutcomeUnknown { .. } | Error::Generate { .. } => {
                ezdb_status::EZDB_DATABASE
            }
        };
        Failure::new(status, error.to_string())
    }
}
