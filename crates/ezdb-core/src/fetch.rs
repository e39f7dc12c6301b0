// Reading files: metadata and chunks come from one statement (one consistent snapshot), checked
// for gaps and size, delivered whole, as a byte range, to a local file, or as a bounded stream.

use crate::cluster::{Cluster, Inner};
use crate::content::{ByteRange, ChunkCheck};
use crate::db::{done, Attempt, AttemptError, Conn};
use crate::error::{Error, Op, Result};
use crate::expiry::{cached_global_expiry, reload_expiry_file, resolve_global_expiry, ExpiryColumns, ExpirySql};
use crate::meta::{is_expired, FileMeta};
use crate::name::FileName;
use bytes::Bytes;
use futures_util::TryStreamExt;
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Which rows a read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Only live files: deleted or globally expired files are "not found".
    Live,
    /// Any row, deleted or expired too (the stale copy served while a cache regenerates).
    IncludeExpired,
}

/// A whole file read at once.
#[derive(Debug, Clone)]
pub struct FileData {
    pub meta: FileMeta,
    pub bytes: Vec<u8>,
}

/// Chunks in flight between the reading task and a stream's consumer: enough to keep the
/// socket busy, small enough that a 64 MiB file needs well under 1 MiB of buffers.
pub(crate) const STREAM_BUFFER_CHUNKS: usize = 4;

/// The SQL of the hot single-statement reads, built once per handle for each
/// [`ExpirySql::variant`] instead of formatted on every call.
#[derive(Default)]
pub(crate) struct ReadStatements {
    exists: [OnceLock<String>; 4],
    exists_with_file: [OnceLock<String>; 4],
    stat: [OnceLock<String>; 4],
    read: [OnceLock<String>; 4],
    read_range: [OnceLock<String>; 4],
}

/// The SQL of `slot` for `expiry`, built by `build` the first time.
fn statement<'s>(slot: &'s [OnceLock<String>; 4], expiry: &ExpirySql<'_>, build: impl FnOnce() -> String) -> &'s str {
    slot[expiry.variant()].get_or_init(build)
}

/// Where the chunks of a read go. Returning `false` stops the read early.
trait ChunkSink {
    async fn meta(&mut self, meta: &FileMeta) -> bool;
    async fn chunk(&mut self, data: &[u8]) -> bool;
}

impl Cluster {
    /// Metadata of `name`, deleted rows included; `None` when there is no row.
    pub async fn stat(&self, name: &str) -> Result<Option<FileMeta>> {
        self.stat_file(&FileName::new(name)?).await
    }

    /// [`Cluster::stat`] of a name already checked.
    pub(crate) async fn stat_file(&self, name: &FileName) -> Result<Option<FileMeta>> {
        let inner = &*self.inner;
        if let Some(dfs) = &inner.dfs {
            return dfs.stat(inner, name).await;
        }
        self.inner
            .db
            .reading(Op::Stat, name.as_str(), Option::is_some, |mut conn| async move {
                let meta = stat_row(inner, &mut conn, name).await.map_err(AttemptError::from);
                done(conn, meta)
            })
            .await
    }

    /// [`Cluster::stat`] of many names at once, in their order: one statement per
    /// [`STAT_BATCH`] names (per metadata table on eZDFS) instead of one each. What a gateway
    /// revalidates its cached copies with in the background.
    pub async fn stat_many(&self, names: &[&str]) -> Result<Vec<Option<FileMeta>>> {
        let files = names.iter().map(|n| FileName::new(n)).collect::<Result<Vec<_>>>()?;
        let mut metas = Vec::with_capacity(files.len());
        for batch in files.chunks(STAT_BATCH) {
            metas.extend(self.stat_batch(batch).await?);
        }
        Ok(metas)
    }

    async fn stat_batch(&self, files: &[FileName]) -> Result<Vec<Option<FileMeta>>> {
        let Some(first) = files.first() else {
            return Ok(Vec::new());
        };
        let inner = &*self.inner;
        // A replica that lacks one of them may only lag: the primary answers then.
        let all_found = |metas: &Vec<Option<FileMeta>>| metas.iter().all(Option::is_some);
        inner
            .db
            .reading(Op::Stat, first.as_str(), all_found, |mut conn| async move {
                let metas = stat_rows(inner, &mut conn, files).await.map_err(AttemptError::from);
                done(conn, metas)
            })
            .await
    }

    /// Metadata of `name` as [`Cluster::stat`] gives it, but only when its bytes can be read:
    /// on eZDFS a row whose file is missing from the mount is `None` (as a read would be
    /// not found) and a file of another size than its row is an integrity error (as a read
    /// would be). What a gateway answers HEAD and conditional requests from, so that they
    /// agree with GET. On eZDB it is `stat`.
    pub async fn stat_readable(&self, name: &str) -> Result<Option<FileMeta>> {
        let file = FileName::new(name)?;
        let inner = &*self.inner;
        match &inner.dfs {
            Some(dfs) => dfs.stat_readable(inner, &file).await,
            None => self.stat(name).await,
        }
    }

    /// True when `name` is stored and neither deleted nor expired by a global expiry key.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        let name = &FileName::new(name)?;
        let inner = &*self.inner;
        if let Some(dfs) = &inner.dfs {
            return dfs.exists(inner, name).await;
        }
        self.inner
            .db
            .reading(
                Op::Exists,
                name.as_str(),
                |live| *live,
                |mut conn| async move {
                    let live = live_row(inner, &mut conn, name).await.map_err(AttemptError::from);
                    done(conn, live)
                },
            )
            .await
    }

    /// The whole content of a live file.
    pub async fn fetch(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.fetch_with_meta(name, Visibility::Live).await?.bytes)
    }

    /// The whole content and metadata of a file.
    pub async fn fetch_with_meta(&self, name: &str, visibility: Visibility) -> Result<FileData> {
        self.read(name, visibility, None).await
    }

    /// Bytes `range.start..=range.end` of a live file; the range must start inside the file and
    /// is cut at its end. Only the chunks that hold the range are read.
    pub async fn fetch_range(&self, name: &str, range: ByteRange) -> Result<FileData> {
        self.read(name, Visibility::Live, Some(range)).await
    }

    async fn read(&self, name: &str, visibility: Visibility, range: Option<ByteRange>) -> Result<FileData> {
        let name = FileName::new(name)?;
        let name = &name;
        let inner = &*self.inner;
        if let Some(dfs) = &inner.dfs {
            return dfs.read(inner, name, visibility, range).await;
        }
        self.inner
            .db
            .reading(
                Op::Fetch,
                name.as_str(),
                |_| true,
                |mut conn| async move {
                    let mut sink = VecSink {
                        bytes: Vec::new(),
                        range_len: range.map(|r| r.len()),
                    };
                    let read = read_rows(inner, &mut conn, name, visibility, range, &mut sink).await;
                    done(
                        conn,
                        read.map(|meta| FileData {
                            meta,
                            bytes: sink.bytes,
                        }),
                    )
                },
            )
            .await
    }

    /// Downloads a file to `path`: written under a temporary name in the same directory, then
    /// renamed, so a concurrent reader (or PHP `include`) sees the old file or the new one whole.
    /// On any error the previous local file is left as it was.
    pub async fn fetch_to_file(&self, name: &str, path: &Path, visibility: Visibility) -> Result<FileMeta> {
        let mut stream = self.open_stream(name, visibility, None).await?;
        let temp = temporary_path(path);
        let written = write_stream(&mut stream, &temp).await;
        let renamed = match written {
            Ok(()) => tokio::fs::rename(&temp, path)
                .await
                .map_err(|e| Error::io(Op::Fetch, name, path, e)),
            Err(e) => Err(e),
        };
        if renamed.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        renamed.map(|()| stream.meta)
    }

    /// Opens a file for streaming: returns its metadata at once and its bytes chunk by chunk, with
    /// backpressure (the database read waits while the consumer is slow). With a range, only the
    /// bytes of the range are streamed.
    pub async fn open_stream(
        &self,
        name: &str,
        visibility: Visibility,
        range: Option<ByteRange>,
    ) -> Result<FileStream> {
        let name = FileName::new(name)?;
        if let Some(dfs) = &self.inner.dfs {
            return dfs.open_stream(&self.inner, &name, visibility, range).await;
        }
        let (tx, mut rx) = mpsc::channel(STREAM_BUFFER_CHUNKS);
        let read = stream_task(self.inner.clone(), name.clone(), visibility, range, tx);
        let mut reading: Option<Reading> = Some(Box::pin(read));
        match std::future::poll_fn(|cx| poll_item(&mut reading, &mut rx, cx)).await {
            Some(Ok(StreamItem::Meta(meta))) => Ok(FileStream::from_reading(meta, rx, reading, range)),
            Some(Err(e)) => Err(e),
            _ => Err(Error::integrity(
                Op::Fetch,
                name.as_str(),
                "the read stopped before the metadata",
            )),
        }
    }
}

/// The bytes of a file as they arrive from the database.
///
/// The read that feeds it runs inside the stream's own polls while the part to read is at
/// most [`READ_IN_PLACE_MAX`]: no task of its own, so no hop between threads per chunk, which on
/// few cores cost more than the read. A larger read runs as a task of its own, ahead of the
/// consumer by up to [`STREAM_BUFFER_CHUNKS`] chunks. Either way a stream dropped before its
/// end closes the connection (never reused with rows unread).
pub struct FileStream {
    pub meta: FileMeta,
    rx: mpsc::Receiver<Result<StreamItem>>,
    /// The read feeding `rx` when it runs in place; `None` once it ended or runs as a task.
    reading: Option<Reading>,
}

/// A read sending a file's items to its stream's channel.
pub(crate) type Reading = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The largest part of a file read inside its stream's polls (see [`FileStream`]).
pub(crate) const READ_IN_PLACE_MAX: u64 = 1 << 20;

pub(crate) enum StreamItem {
    Meta(FileMeta),
    Chunk(Bytes),
}

impl FileStream {
    /// A stream whose metadata is known and whose chunks `reading` sends to `rx`.
    pub(crate) fn from_reading(
        meta: FileMeta,
        rx: mpsc::Receiver<Result<StreamItem>>,
        reading: Option<Reading>,
        range: Option<ByteRange>,
    ) -> FileStream {
        let mut stream = FileStream { meta, rx, reading };
        stream.read_apart_if_large(range);
        stream
    }

    /// Moves the read to a task of its own when the part to read is larger than
    /// [`READ_IN_PLACE_MAX`].
    fn read_apart_if_large(&mut self, range: Option<ByteRange>) {
        let len = range.map_or(self.meta.size, |r| r.len().min(self.meta.size));
        if len > READ_IN_PLACE_MAX {
            if let Some(reading) = self.reading.take() {
                tokio::spawn(reading);
            }
        }
    }

    /// The next piece of content; `None` after the last one. An error ends the stream (for
    /// example when the chunks turn out shorter than the metadata size).
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        futures_util::StreamExt::next(self).await
    }
}

impl futures_core::Stream for FileStream {
    type Item = Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        poll_item(&mut this.reading, &mut this.rx, cx).map(|item| match item? {
            Ok(StreamItem::Chunk(bytes)) => Some(Ok(bytes)),
            Ok(StreamItem::Meta(_)) => None,
            Err(e) => Some(Err(e)),
        })
    }
}

/// Drives `reading` if it runs in place (until it ends), then takes the next item of `rx`.
fn poll_item(
    reading: &mut Option<Reading>,
    rx: &mut mpsc::Receiver<Result<StreamItem>>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Option<Result<StreamItem>>> {
    if let Some(read) = reading {
        if read.as_mut().poll(cx).is_ready() {
            *reading = None;
        }
    }
    rx.poll_recv(cx)
}

async fn stream_task(
    inner: Arc<Inner>,
    name: FileName,
    visibility: Visibility,
    range: Option<ByteRange>,
    tx: mpsc::Sender<Result<StreamItem>>,
) {
    // A read replica first, when one is usable; when it has nothing (it may lag) or fails
    // before the metadata went out, the primary answers.
    if let Some(conn) = inner.db.acquire_replica().await {
        let mut conn = ReadConn(Some(conn));
        let mut sink = ChannelSink::new(&tx);
        let outcome = read_rows(&inner, conn.get(), &name, visibility, range, &mut sink).await;
        if sink.sent_meta {
            finish_stream(conn.finish(), &name, &sink, outcome).await;
            return;
        }
        match outcome {
            Err(AttemptError::Sql(e)) => inner.db.replica_failed(conn.finish(), &e.to_string()),
            _ => conn.finish().discard(),
        }
    }
    let mut conn = match inner.db.acquire().await {
        Ok(conn) => ReadConn(Some(conn)),
        Err(e) => {
            let _ = tx.send(Err(Error::db(Op::Fetch, name.as_str(), e))).await;
            return;
        }
    };
    let mut sink = ChannelSink::new(&tx);
    let outcome = read_rows(&inner, conn.get(), &name, visibility, range, &mut sink).await;
    finish_stream(conn.finish(), &name, &sink, outcome).await;
}

/// The connection of a read in progress: when the read is dropped before its statement ended
/// (its stream dropped mid-file), the connection is closed, never reused with rows unread.
struct ReadConn(Option<Conn>);

impl ReadConn {
    fn get(&mut self) -> &mut Conn {
        self.0
            .as_mut()
            .expect("the connection is taken only when the read ends")
    }

    /// The connection, once the statement has ended (all rows read, or an error).
    fn finish(mut self) -> Conn {
        self.0.take().expect("the connection is taken only when the read ends")
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.discard();
        }
    }
}

/// Sends a stream's error, if any; a connection with unread rows is closed, never reused.
async fn finish_stream(conn: Conn, name: &FileName, sink: &ChannelSink, outcome: Attempt<FileMeta>) {
    let error = match outcome {
        Ok(_) => None,
        Err(AttemptError::Final(e)) => Some(e),
        Err(AttemptError::Sql(e)) => Some(Error::db(Op::Fetch, name.as_str(), e)),
    };
    if sink.stopped || error.is_some() {
        conn.discard();
    }
    if let Some(e) = error {
        let _ = sink.tx.send(Err(e)).await;
    }
}

/// Reads metadata and chunks with one statement and feeds them, checked, to `sink`.
async fn read_rows(
    inner: &Inner,
    conn: &mut MySqlConnection,
    name: &FileName,
    visibility: Visibility,
    range: Option<ByteRange>,
    sink: &mut impl ChunkSink,
) -> Attempt<FileMeta> {
    // In READ COMMITTED the join and the metadata read that follows a join without rows see
    // two snapshots: a file committed between them (its first creation, or a store replacing
    // an empty file) shows its size without its chunks, which once surfaced as "chunks hold 0
    // of N bytes". Such a read starts again; the next join sees the committed chunks. So does
    // one that found the legacy expiry.php changed (it is read again first).
    for _ in 0..3 {
        if let Some(meta) = read_rows_once(inner, conn, name, visibility, range, sink).await? {
            return Ok(meta);
        }
    }
    Err(Error::integrity(
        Op::Fetch,
        name.as_str(),
        "the file kept changing under the read (its chunks, or the legacy expiry.php), in three reads",
    )
    .into())
}

/// One read; `None` (nothing was given to `sink`) when it must start again: the metadata
/// appeared with a size after the join found no chunk, or the legacy expiry.php changed.
async fn read_rows_once(
    inner: &Inner,
    conn: &mut MySqlConnection,
    name: &FileName,
    visibility: Visibility,
    range: Option<ByteRange>,
    sink: &mut impl ChunkSink,
) -> Attempt<Option<FileMeta>> {
    // A chunk holds at most 65535 bytes, so only chunks starting after `start - 65535` can
    // overlap the range: the primary key narrows the read to them.
    let (range_sql, low, high) = match range {
        Some(r) => (
            " AND d.`offset` > ? AND d.`offset` <= ?",
            r.start.min(i64::MAX as u64) as i64 - 65_535,
            // An end past the file ("to the end" as u64::MAX) must not wrap to a negative bind.
            r.end.min(i64::MAX as u64) as i64,
        ),
        None => ("", 0, 0),
    };
    // An inner join keeps the primary-key order without a sort; a file without chunks (empty,
    // or broken) returns no row, and its metadata is then read on its own.
    let expiry = ExpirySql::of(inner);
    let slot = match range {
        Some(_) => &inner.statements.read_range,
        None => &inner.statements.read,
    };
    let sql = statement(slot, &expiry, || {
        format!(
            "SELECT {}, CAST(d.`offset` AS UNSIGNED) AS chunk_offset, d.filedata
             FROM ezdbfile f{} JOIN ezdbfile_data d ON d.name_hash = f.name_hash{range_sql}
             WHERE f.name_hash = ? ORDER BY d.`offset`",
            expiry.meta_columns(),
            expiry.joins()
        )
    });
    let mut query = expiry.bind(sqlx::query(sql));
    if range.is_some() {
        query = query.bind(low).bind(high);
    }
    let mut rows = query.bind(name.hash()).fetch(&mut *conn);
    let first = rows.try_next().await?;
    let meta = match &first {
        Some(row) => {
            let (mut meta, columns) = FileMeta::from_row_of(row, name.as_str().to_owned())?;
            let Some(global_expiry) = cached_global_expiry(inner, columns, &meta.scope) else {
                // The legacy expiry.php changed since it was parsed (rare: after a clear). Read it,
                // then this file again, so the file and its expiry come from one statement.
                drop(rows);
                reload_expiry_file(inner, conn).await?;
                return Ok(None);
            };
            meta.global_expiry = global_expiry;
            meta
        }
        None => {
            drop(rows);
            let meta = stat_row(inner, conn, name)
                .await?
                .ok_or_else(|| Error::not_found(Op::Fetch, name.as_str()))?;
            if meta.size > 0 && range.is_none_or(|r| r.start < meta.size) {
                return Ok(None);
            }
            rows = Box::pin(futures_util::stream::empty());
            meta
        }
    };
    if visibility == Visibility::Live && meta.is_expired() {
        return Err(Error::not_found(Op::Fetch, name.as_str()).into());
    }
    let range = ByteRange::checked(range, name.as_str(), meta.size)?;
    if !sink.meta(&meta).await {
        return Ok(Some(meta));
    }
    let mut check = ChunkCheck::new(Op::Fetch, name.as_str(), meta.size, range);
    let mut row = first;
    while let Some(current) = row {
        if let Some((offset, data)) = chunk_of(&current)? {
            check.accept(offset, data.len() as u64)?;
            let data = match range {
                Some(r) => r.slice(offset, data),
                None => data,
            };
            if !data.is_empty() && !sink.chunk(data).await {
                return Ok(Some(meta));
            }
        }
        row = rows.try_next().await?;
    }
    check.finish()?;
    Ok(Some(meta))
}

fn chunk_of(row: &MySqlRow) -> Result<Option<(u64, &[u8])>, sqlx::Error> {
    let offset: Option<u64> = row.try_get("chunk_offset")?;
    let data: Option<&[u8]> = row.try_get("filedata")?;
    Ok(offset.zip(data))
}

/// The one row of `name` for a primary-key statement `sql` whose placeholders are the
/// expiry join's, then the name hash.
async fn name_row(
    expiry: &ExpirySql<'_>,
    conn: &mut MySqlConnection,
    sql: &str,
    name: &FileName,
) -> Result<Option<MySqlRow>, sqlx::Error> {
    expiry
        .bind(sqlx::query(sql))
        .bind(name.hash())
        .fetch_optional(&mut *conn)
        .await
}

async fn stat_row(inner: &Inner, conn: &mut MySqlConnection, name: &FileName) -> Result<Option<FileMeta>, sqlx::Error> {
    let expiry = ExpirySql::of(inner);
    let sql = statement(&inner.statements.stat, &expiry, || {
        format!(
            "SELECT {} FROM ezdbfile f{} WHERE f.name_hash = ?",
            expiry.meta_columns(),
            expiry.joins()
        )
    });
    let Some(row) = name_row(&expiry, conn, sql, name).await? else {
        return Ok(None);
    };
    let (mut meta, columns) = FileMeta::from_row_of(&row, name.as_str().to_owned())?;
    meta.global_expiry = resolve_global_expiry(inner, conn, columns, &meta.scope).await?;
    Ok(Some(meta))
}

/// Names a batched stat asks for in one statement (its `IN` list).
pub(crate) const STAT_BATCH: usize = 256;

/// The rows of `files` (at most [`STAT_BATCH`]), in their order, each from its layout's table.
async fn stat_rows(
    inner: &Inner,
    conn: &mut MySqlConnection,
    files: &[FileName],
) -> Result<Vec<Option<FileMeta>>, sqlx::Error> {
    let mut metas: Vec<Option<FileMeta>> = vec![None; files.len()];
    let mut tables: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let table = inner.dfs.as_ref().map_or("ezdbfile", |dfs| dfs.table(file));
        match tables.iter_mut().find(|(t, _)| *t == table) {
            Some((_, members)) => members.push(i),
            None => tables.push((table, vec![i])),
        }
    }
    let expiry = ExpirySql::of(inner);
    for (table, members) in tables {
        let placeholders = vec!["?"; members.len()].join(", ");
        let sql = format!(
            "SELECT CAST(f.name_hash AS CHAR) AS name_hash, {} FROM {table} f{} \
             WHERE f.name_hash IN ({placeholders})",
            expiry.meta_columns(),
            expiry.joins()
        );
        let mut query = expiry.bind(sqlx::query(&sql));
        for &i in &members {
            query = query.bind(files[i].hash());
        }
        let rows = query.fetch_all(&mut *conn).await?;
        for row in rows {
            let hash: &str = row.try_get("name_hash")?;
            // The hash of a name is unique among the members (equal names share a hash).
            for &i in members.iter().filter(|&&i| files[i].hash() == hash) {
                let (mut meta, columns) = FileMeta::from_row_of(&row, files[i].as_str().to_owned())?;
                meta.global_expiry = resolve_global_expiry(inner, conn, columns, &meta.scope).await?;
                metas[i] = Some(meta);
            }
        }
    }
    Ok(metas)
}

/// Whether a live (not deleted, not globally expired) row exists: one statement on the primary
/// key. The server decides what it can (soft delete, the table's key); only a configured legacy
/// expiry file's key is applied here, from the columns the statement returns.
async fn live_row(inner: &Inner, conn: &mut MySqlConnection, name: &FileName) -> Result<bool, sqlx::Error> {
    let expiry = ExpirySql::of(inner);
    let live = || {
        format!(
            "FROM ezdbfile f{} WHERE f.name_hash = ? AND f.expired = 0 AND f.mtime >= 0{}",
            expiry.joins(),
            expiry.table_condition()
        )
    };
    if inner.expiry_file.is_none() {
        let sql = statement(&inner.statements.exists, &expiry, || format!("SELECT 1 {}", live()));
        return Ok(name_row(&expiry, conn, sql, name).await?.is_some());
    }
    let sql = statement(&inner.statements.exists_with_file, &expiry, || {
        format!(
            "SELECT CAST(f.mtime AS SIGNED) AS mtime, CAST(f.scope AS CHAR) AS scope{} {}",
            expiry.columns(),
            live()
        )
    });
    let Some(row) = name_row(&expiry, conn, sql, name).await? else {
        return Ok(false);
    };
    let (mtime, scope): (i64, &str) = (row.try_get("mtime")?, row.try_get("scope")?);
    let global_expiry = resolve_global_expiry(inner, conn, ExpiryColumns::from_row(&row, &expiry)?, scope).await?;
    Ok(!is_expired(mtime, false, global_expiry))
}

/// Stat on the re-check connection: sees the last committed row, outside any transaction of ours.
pub(crate) async fn stat_committed(cluster: &Cluster, name: &FileName) -> Result<Option<FileMeta>> {
    let db = &cluster.inner.db;
    let mut conn = db
        .acquire_recheck()
        .await
        .map_err(|e| Error::db(Op::Generation, name.as_str(), e))?;
    let meta = match &cluster.inner.dfs {
        Some(dfs) => dfs.stat_row(&cluster.inner, &mut conn, name).await,
        None => stat_row(&cluster.inner, &mut conn, name).await,
    };
    meta.map_err(|e| Error::db(Op::Generation, name.as_str(), e))
}

struct VecSink {
    bytes: Vec<u8>,
    /// Length of the range read, when it is one: the buffer needs at most that much.
    range_len: Option<u64>,
}

impl ChunkSink for VecSink {
    async fn meta(&mut self, meta: &FileMeta) -> bool {
        let needed = self.range_len.map_or(meta.size, |len| len.min(meta.size));
        self.bytes = Vec::with_capacity(needed as usize);
        true
    }

    async fn chunk(&mut self, data: &[u8]) -> bool {
        self.bytes.extend_from_slice(data);
        true
    }
}

struct ChannelSink {
    tx: mpsc::Sender<Result<StreamItem>>,
    stopped: bool,
    /// The metadata went out: the stream is committed to this connection's answer.
    sent_meta: bool,
}

impl ChunkSink for ChannelSink {
    async fn meta(&mut self, meta: &FileMeta) -> bool {
        self.sent_meta = true;
        self.send(StreamItem::Meta(meta.clone())).await
    }

    async fn chunk(&mut self, data: &[u8]) -> bool {
        self.send(StreamItem::Chunk(Bytes::copy_from_slice(data))).await
    }
}

impl ChannelSink {
    fn new(tx: &mpsc::Sender<Result<StreamItem>>) -> ChannelSink {
        ChannelSink {
            tx: tx.clone(),
            stopped: false,
            sent_meta: false,
        }
    }

    async fn send(&mut self, item: StreamItem) -> bool {
        let sent = self.tx.send(Ok(item)).await.is_ok();
        self.stopped |= !sent;
        sent
    }
}

/// `dir/.file.<pid>.<n>.tmp`: beside the target (same filesystem, so the rename is atomic) and
/// unique per process and call.
fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let unique = format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    path.with_file_name(unique)
}

async fn write_stream(stream: &mut FileStream, temp: &Path) -> Result<()> {
    let name = stream.meta.name.clone();
    let io_error = |e| Error::io(Op::Fetch, &name, temp, e);
    if let Some(dir) = temp.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(io_error)?;
    }
    let mut file = tokio::fs::File::create(temp).await.map_err(io_error)?;
    while let Some(chunk) = stream.next_chunk().await {
        file.write_all(&chunk?).await.map_err(io_error)?;
    }
    file.flush().await.map_err(io_error)?;
    Ok(())
}
