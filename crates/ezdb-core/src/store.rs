// Storing files: from bytes, a local file or a stream, each as one transaction (metadata row,
// then chunks), so readers see the old or the new version whole and a failure keeps the old one.

use crate::cluster::Cluster;
use crate::content::{write_chunks, Content, ContentReader};
use crate::db::{done, Attempt, Conn};
use crate::error::{Error, Op, Result};
use crate::meta::{FileMeta, DEFAULT_DATATYPE, DEFAULT_SCOPE};
use crate::name::{name_trunk, FileName};
use sqlx::mysql::MySqlConnection;
use std::path::Path;
use tokio::io::AsyncRead;

const MAX_SCOPE_CHARS: usize = 20;
/// eZDFS tables widened `scope` to 25 characters.
pub(crate) const MAX_DFS_SCOPE_CHARS: usize = 25;
const MAX_DATATYPE_CHARS: usize = 255;

/// How a stored file is labelled.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Category such as `image`, `viewcache`; at most 20 characters. Default `UNKNOWN_SCOPE`.
    pub scope: Option<String>,
    /// MIME type or label; at most 255 characters. Default `misc`.
    pub datatype: Option<String>,
    /// Modification time (Unix seconds). Default: the database clock now.
    pub mtime: Option<i64>,
}

impl StoreOptions {
    pub fn new(scope: &str, datatype: &str) -> StoreOptions {
        StoreOptions {
            scope: Some(scope.to_owned()),
            datatype: Some(datatype.to_owned()),
            mtime: None,
        }
    }
}

/// What a conditional store did ([`Cluster::store_file_unless_newer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The file was written: its row.
    Written(FileMeta),
    /// A live version with a later mtime was found under the row lock and kept; nothing written.
    KeptNewer { mtime: i64 },
}

/// Whether a store replaces whatever row it finds, or keeps a newer live one (decided under the
/// row lock, in the store's own transaction, so a concurrent writer is never overwritten by a
/// decision made before it wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    Always,
    UnlessNewer,
}

/// The metadata row a write produces.
#[derive(Clone, Copy)]
pub(crate) struct RowSpec<'a> {
    pub(crate) name: &'a FileName,
    pub(crate) scope: &'a str,
    pub(crate) datatype: &'a str,
    pub(crate) mtime: i64,
    pub(crate) expired: bool,
}

impl RowSpec<'_> {
    pub(crate) fn meta(&self, size: u64) -> FileMeta {
        FileMeta {
            name: self.name.as_str().to_owned(),
            size,
            mtime: self.mtime,
            scope: self.scope.to_owned(),
            datatype: self.datatype.to_owned(),
            name_trunk: name_trunk(self.name.as_str(), self.scope),
            deleted: self.expired,
            global_expiry: None,
        }
    }
}

impl Cluster {
    /// Stores `bytes` under `name`, replacing any previous version (deleted or not).
    pub async fn store(&self, name: &str, bytes: &[u8], options: &StoreOptions) -> Result<FileMeta> {
        self.store_content(name, Content::Bytes(bytes), options).await
    }

    /// Stores the local file at `path`: read at once up to 1 MiB (one blocking read instead of
    /// one per chunk), streamed chunk by chunk beyond.
    pub async fn store_file(&self, name: &str, path: &Path, options: &StoreOptions) -> Result<FileMeta> {
        const READ_WHOLE_UP_TO: u64 = 1 << 20;
        let io_error = |e| Error::io(Op::Store, name, path, e);
        let size = tokio::fs::metadata(path).await.map_err(io_error)?.len();
        if size <= READ_WHOLE_UP_TO {
            let bytes = tokio::fs::read(path).await.map_err(io_error)?;
            return self.store_content(name, Content::Bytes(&bytes), options).await;
        }
        self.store_content(name, Content::File(path), options).await
    }

    /// Stores everything `reader` yields, streamed chunk by chunk; never holds the whole file.
    pub async fn store_reader(
        &self,
        name: &str,
        reader: impl AsyncRead + Unpin + Send,
        options: &StoreOptions,
    ) -> Result<FileMeta> {
        self.store_content(name, Content::reader(reader), options).await
    }

    pub async fn store_content(&self, name: &str, content: Content<'_>, options: &StoreOptions) -> Result<FileMeta> {
        match self.store_as(name, content, options, Replace::Always).await? {
            Stored::Written(meta) => Ok(meta),
            Stored::KeptNewer { .. } => Err(Error::integrity(
                Op::Store,
                name,
                "an unconditional store kept the previous row; please report it",
            )),
        }
    }

    /// Stores the local file at `path` with `options.mtime` (required), unless the cluster holds
    /// a live version with a later mtime: that is checked under the row lock in the store's own
    /// transaction, so a writer that stored a newer version since the caller looked is never
    /// overwritten (what `ezdb import` and `ezdb migrate` need). A deleted row is replaced.
    pub async fn store_file_unless_newer(&self, name: &str, path: &Path, options: &StoreOptions) -> Result<Stored> {
        if options.mtime.is_none() {
            return Err(Error::InvalidArgument {
                name: name.to_owned(),
                what: "mtime",
                value: String::new(),
                reason: "a store that keeps newer versions needs the mtime of the version it stores".into(),
            });
        }
        self.store_as(name, Content::File(path), options, Replace::UnlessNewer)
            .await
    }

    pub(crate) async fn store_as(
        &self,
        name: &str,
        content: Content<'_>,
        options: &StoreOptions,
        replace: Replace,
    ) -> Result<Stored> {
        let name = FileName::new(name)?;
        if let Some(dfs) = &self.inner.dfs {
            return dfs.store(self, &name, content, options, replace).await;
        }
        let (scope, datatype) = validate_labels(&name, options, MAX_SCOPE_CHARS)?;
        let spec = RowSpec {
            name: &name,
            scope,
            datatype,
            mtime: options.mtime.unwrap_or_else(|| self.now()),
            expired: false,
        };
        // An mtime of our choosing is later than the replaced row's, even within its second.
        let later_than_previous = options.mtime.is_none();
        let size_hint = content.size_hint();
        // Shared by the attempts; each one opens (or, for a stream, takes) the content anew.
        let content = &tokio::sync::Mutex::new(content);
        let spec = &spec;
        let name = &name;
        let written = self
            .inner
            .db
            .retrying(Op::Store, name.as_str(), |mut conn| async move {
                let result = async {
                    if let Some(mtime) = begin_store(&mut conn, "ezdbfile", spec, replace).await? {
                        return Ok(Err(mtime));
                    }
                    let mut reader = content.lock().await.open(name.as_str()).await?;
                    self.write_file_tx(&mut conn, *spec, later_than_previous, &mut reader, size_hint)
                        .await
                        .map(Ok)
                }
                .await;
                done(conn, result)
            })
            .await?;
        Ok(match written {
            Ok((size, mtime)) => Stored::Written(RowSpec { mtime, ..*spec }.meta(size)),
            Err(mtime) => Stored::KeptNewer { mtime },
        })
    }

    /// Writes one file in the transaction the caller began, and commits; returns its size and
    /// the mtime written.
    async fn write_file_tx(
        &self,
        conn: &mut Conn,
        mut spec: RowSpec<'_>,
        later_than_previous: bool,
        reader: &mut ContentReader<'_>,
        size_hint: Option<u64>,
    ) -> Attempt<(u64, i64)> {
        if later_than_previous {
            spec.mtime = mtime_after_previous(conn, "ezdbfile", &spec).await?;
        }
        let size = self.write_file(conn, &spec, reader, size_hint).await?;
        conn.commit().await?;
        Ok((size, spec.mtime))
    }

    /// Writes the metadata row and the chunks of one file inside the caller's transaction.
    pub(crate) async fn write_file(
        &self,
        conn: &mut MySqlConnection,
        spec: &RowSpec<'_>,
        reader: &mut ContentReader<'_>,
        size_hint: Option<u64>,
    ) -> Attempt<u64> {
        let declared = size_hint.unwrap_or(0);
        upsert_meta(conn, "ezdbfile", spec, declared).await?;
        let config = &self.inner.config;
        let hash = spec.name.hash();
        let per_statement = self.chunks_per_statement()?;
        let size = write_chunks(conn, spec.name.as_str(), hash, reader, config.chunk_size, per_statement).await?;
        if size != declared {
            sqlx::query("UPDATE ezdbfile SET size = ? WHERE name_hash = ?")
                .bind(size)
                .bind(hash)
                .execute(&mut *conn)
                .await?;
        }
        Ok(size)
    }
}

/// The mtime for a rewrite: `spec.mtime` (now), or one second past the replaced row's when that
/// is not older (a rewrite within the same second). Readers that validate a copy by mtime and
/// size (an HTTP cache, a legacy node's local copy) then always see an ezdb rewrite. Under more
/// than one rewrite a second of one name, mtimes run ahead of the clock until the rewrites
/// stop. The row is locked here, as the upsert that follows would lock it anyway.
pub(crate) async fn mtime_after_previous(
    conn: &mut MySqlConnection,
    table: &str,
    spec: &RowSpec<'_>,
) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT CAST(mtime AS SIGNED) FROM {table} WHERE name_hash = ? FOR UPDATE");
    let previous: Option<i64> = sqlx::query_scalar(&sql)
        .bind(spec.name.hash())
        .fetch_optional(&mut *conn)
        .await?;
    // A deleted row keeps its mtime negated.
    Ok(match previous.map(i64::abs) {
        Some(previous) if previous >= spec.mtime => previous + 1,
        _ => spec.mtime,
    })
}

/// Begins a store's transaction. For [`Replace::UnlessNewer`] it first locks the row of `spec`'s
/// name (REPEATABLE READ, so that the lock on an absent row also holds off its insert) and, when
/// a live row with a later mtime is there, commits at once and returns that mtime: nothing is to
/// be written.
pub(crate) async fn begin_store(
    conn: &mut Conn,
    table: &str,
    spec: &RowSpec<'_>,
    replace: Replace,
) -> Result<Option<i64>, sqlx::Error> {
    if replace == Replace::Always {
        conn.begin().await?;
        return Ok(None);
    }
    sqlx::Executor::execute(&mut **conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    conn.begin().await?;
    let sql = format!(
        "SELECT CAST(mtime AS SIGNED) FROM {table} WHERE name_hash = ? AND expired = 0 AND mtime > ? FOR UPDATE"
    );
    let newer: Option<i64> = sqlx::query_scalar(&sql)
        .bind(spec.name.hash())
        .bind(spec.mtime)
        .fetch_optional(&mut **conn)
        .await?;
    if newer.is_some() {
        conn.commit().await?;
    }
    Ok(newer)
}

/// Inserts or replaces the metadata row: the legacy column set, the trunk recomputed.
pub(crate) async fn upsert_meta(
    conn: &mut MySqlConnection,
    table: &str,
    spec: &RowSpec<'_>,
    size: u64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {table} (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE datatype = VALUES(datatype), name_trunk = VALUES(name_trunk),
           scope = VALUES(scope), size = VALUES(size), mtime = VALUES(mtime), expired = VALUES(expired)"
    );
    sqlx::query(&sql)
        .bind(spec.datatype)
        .bind(spec.name.as_str())
        .bind(name_trunk(spec.name.as_str(), spec.scope))
        .bind(spec.name.hash())
        .bind(spec.scope)
        .bind(size)
        .bind(spec.mtime)
        .bind(spec.expired)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) fn validate_labels<'o>(
    name: &FileName,
    options: &'o StoreOptions,
    max_scope_chars: usize,
) -> Result<(&'o str, &'o str)> {
    let scope = options
        .scope
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SCOPE);
    let datatype = options
        .datatype
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_DATATYPE);
    check_label(name, "scope", scope, max_scope_chars)?;
    check_label(name, "datatype", datatype, MAX_DATATYPE_CHARS)?;
    Ok((scope, datatype))
}

fn check_label(name: &FileName, what: &'static str, value: &str, max_chars: usize) -> Result<()> {
    let Some(reason) = label_refusal(value, max_chars) else {
        return Ok(());
    };
    Err(Error::InvalidArgument {
        name: name.as_str().to_owned(),
        what,
        value: value.to_owned(),
        reason,
    })
}

fn label_refusal(value: &str, max_chars: usize) -> Option<String> {
    if value.chars().count() > max_chars {
        Some(format!(
            "longer than {max_chars} characters, the size of the legacy column"
        ))
    } else if value.contains('\0') {
        Some("contains a NUL byte".to_owned())
    } else {
        None
    }
}

/// Why a store would refuse this `scope` or `datatype` value, if it would (for `ezdb check`).
pub(crate) fn refused_label(what: &str, value: &str) -> Option<String> {
    let max_chars = if what == "scope" {
        MAX_SCOPE_CHARS
    } else {
        MAX_DATATYPE_CHARS
    };
    label_refusal(value, max_chars)
}
