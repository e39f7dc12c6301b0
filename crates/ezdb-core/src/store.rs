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

/// The metadata row a write produces.
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
        let name = FileName::new(name)?;
        let (scope, datatype) = validate_labels(&name, options)?;
        let spec = RowSpec {
            name: &name,
            scope,
            datatype,
            mtime: options.mtime.unwrap_or_else(|| self.now()),
            expired: false,
        };
        let size_hint = content.size_hint();
        // Shared by the attempts; each one opens (or, for a stream, takes) the content anew.
        let content = &tokio::sync::Mutex::new(content);
        let spec = &spec;
        let name = &name;
        let size = self
            .inner
            .db
            .retrying(Op::Store, name.as_str(), |mut conn| async move {
                let result = async {
                    let mut reader = content.lock().await.open(name.as_str()).await?;
                    self.write_file_tx(&mut conn, spec, &mut reader, size_hint).await
                }
                .await;
                done(conn, result)
            })
            .await?;
        Ok(spec.meta(size))
    }

    async fn write_file_tx(
        &self,
        conn: &mut Conn,
        spec: &RowSpec<'_>,
        reader: &mut ContentReader<'_>,
        size_hint: Option<u64>,
    ) -> Attempt<u64> {
        conn.begin().await?;
        let size = self.write_file(conn, spec, reader, size_hint).await?;
        conn.commit().await?;
        Ok(size)
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
        upsert_meta(conn, spec, declared).await?;
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

/// Inserts or replaces the metadata row: the legacy column set, the trunk recomputed.
async fn upsert_meta(conn: &mut MySqlConnection, spec: &RowSpec<'_>, size: u64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE datatype = VALUES(datatype), name_trunk = VALUES(name_trunk),
           scope = VALUES(scope), size = VALUES(size), mtime = VALUES(mtime), expired = VALUES(expired)",
    )
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

fn validate_labels<'o>(name: &FileName, options: &'o StoreOptions) -> Result<(&'o str, &'o str)> {
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
    check_label(name, "scope", scope, MAX_SCOPE_CHARS)?;
    check_label(name, "datatype", datatype, MAX_DATATYPE_CHARS)?;
    Ok((scope, datatype))
}

fn check_label(name: &FileName, what: &'static str, value: &str, max_chars: usize) -> Result<()> {
    let reason = if value.chars().count() > max_chars {
        format!("longer than {max_chars} characters, the size of the legacy column")
    } else if value.contains('\0') {
        "contains a NUL byte".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument {
        name: name.as_str().to_owned(),
        what,
        value: value.to_owned(),
        reason,
    })
}
