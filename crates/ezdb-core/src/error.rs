// The one error type of the core: every failure names the operation, the file and what to do.
// Callers render it once at their edge (CLI, HTTP, C ABI); nothing here prints.

use std::path::PathBuf;

/// What the caller asked for when something failed; shown in every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Connect,
    Schema,
    Store,
    Fetch,
    Stat,
    Exists,
    Delete,
    Purge,
    Copy,
    Move,
    List,
    Generation,
    Expiry,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Connect => "connect",
            Op::Schema => "schema",
            Op::Store => "store",
            Op::Fetch => "fetch",
            Op::Stat => "stat",
            Op::Exists => "exists",
            Op::Delete => "delete",
            Op::Purge => "purge",
            Op::Copy => "copy",
            Op::Move => "move",
            Op::List => "list",
            Op::Generation => "cache generation",
            Op::Expiry => "global expiry",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid {what} {value:?} for '{name}': {reason}")]
    InvalidArgument {
        name: String,
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("cannot connect to the cluster database {url}: {source}; check the URL (mysql://user:pass@host:port/db or ?socket=/path) and that the server is running")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("{op} of '{name}': no such file in the cluster")]
    NotFound { op: Op, name: String },

    #[error("{op} of '{name}': stored data is inconsistent ({detail}); run `ezdb check` to find and repair such rows")]
    Integrity { op: Op, name: String, detail: String },

    #[error("{op} of '{name}' failed in the database: {source}{hint}")]
    Database {
        op: Op,
        name: String,
        hint: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error("{op} of '{name}': the connection was lost during COMMIT ({source}), so whether the change was applied is unknown; read '{name}' back to see which version is there before repeating it")]
    OutcomeUnknown {
        op: Op,
        name: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("{op} of '{name}': local file {}: {source}", path.display())]
    Io {
        op: Op,
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{op} of '{name}': reading the caller's data failed: {source}; nothing was stored, the previous version is intact")]
    Source {
        op: Op,
        name: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cache generation of '{name}': the lock was taken over or removed by another process; nothing was published, the newer result is kept")]
    LockLost { name: String },

    #[error("cache generation of '{name}': still locked by another process after waiting {waited_secs} s; retry later or raise the generation timeout")]
    GenerationTimeout { name: String, waited_secs: u64 },

    #[error("cache generation of '{name}': the generate callback failed: {source}; the lock was released and the previous version is intact")]
    Generate {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("schema: {0}; run `ezdb schema install` (or Cluster::install_schema) on this database")]
    Schema(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a driver error with the operation and name, adding a hint for the common causes.
    pub(crate) fn db(op: Op, name: &str, source: sqlx::Error) -> Error {
        let hint = hint_for(&source);
        Error::Database {
            op,
            name: name.to_owned(),
            hint,
            source,
        }
    }

    pub(crate) fn io(op: Op, name: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            name: name.to_owned(),
            path: path.into(),
            source,
        }
    }

    pub(crate) fn not_found(op: Op, name: &str) -> Error {
        Error::NotFound {
            op,
            name: name.to_owned(),
        }
    }

    pub(crate) fn integrity(op: Op, name: &str, detail: impl Into<String>) -> Error {
        Error::Integrity {
            op,
            name: name.to_owned(),
            detail: detail.into(),
        }
    }

    /// True when the error means "the file is not there" rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True when the database cannot be reached (no connection, or it was lost through every
    /// retry): a bulk job should stop here rather than fail every remaining item.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Database { source, .. } => is_connection_error(source),
            _ => false,
        }
    }
}

fn hint_for(e: &sqlx::Error) -> &'static str {
    match mysql_error_code(e) {
        Some(1146) => "; a cluster table is missing: run `ezdb schema install`",
        Some(1205) | Some(1213) => "; the database stayed busy through every retry: try again",
        Some(1406) => {
            "; a value is longer than its column allows (a legacy `datatype VARCHAR(60)` cannot hold long MIME \
             types): `ezdb schema check` names the column and `ezdb schema upgrade` widens it"
        }
        Some(1366) => {
            "; the table's character set cannot hold this text (latin1, or utf8/utf8mb3 without 4-byte \
             characters such as emoji): nothing was stored; `ezdb schema check` shows the conversion to utf8mb4"
        }
        Some(1153) => "; raise max_allowed_packet on the server or lower the chunk size",
        Some(1047) | Some(1053) => "; the database node is not ready (outside the cluster's primary component, joining, or shutting down): list other nodes in the URL or check the cluster",
        _ if is_connection_error(e) => "; the database connection was lost: check that the server is up",
        _ => "",
    }
}

/// The server's error number, when the driver error came from the server.
pub(crate) fn mysql_error_code(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|m| m.number()),
        _ => None,
    }
}

/// The connection itself is gone (server restart, network, killed session).
pub(crate) fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::PoolTimedOut => true,
        // 2006 server has gone away, 2013 lost connection, 1927 connection killed, 4031 idle disconnect
        _ => matches!(mysql_error_code(e), Some(2006 | 2013 | 1927 | 4031)),
    }
}
