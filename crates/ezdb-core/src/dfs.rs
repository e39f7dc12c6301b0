//! The eZDFS layout's file operations: the metadata row in the table [`DfsLayout::table_for`]
//! picks, the bytes at `<mount>/<name>` ([`Mount`]). The rules are the core's (name cleaning,
//! labels, liveness, mtimes that move forward); only where the bytes go differs from eZDB.
//!
//! Order of a write: the new bytes are written and fsynced under a temporary name first; then,
//! in one transaction, the row is locked and upserted, the bytes are renamed over the file and
//! the transaction commits. A failed commit puts the previous file back, so the mount always
//! agrees with the committed row. A purge moves the file aside while it holds the row lock and
//! unlinks it only after the row's deletion is committed: a re-store of the same name waits for
//! the lock and its new file is never the one removed.

use crate::cluster::{Cluster, Inner};
use crate::content::{ByteRange, Content};
use crate::db::{done, Attempt, AttemptError, Conn};
use crate::error::{Error, Op, Result};
use crate::expiry::{resolve_global_expiry, ExpirySql};
use crate::fetch::{FileData, FileStream, StreamItem, Visibility, STREAM_BUFFER_CHUNKS};
use crate::generation::{take_lock_row, verify_lock, GenerationLock};
use crate::layout::DfsLayout;
use crate::meta::{FileMeta, META_COLUMNS};
use crate::mount::{Aside, Installed, Mount};
use crate::name::FileName;
use crate::purge::PurgeFilter;
use crate::selector::{Filter, Value};
use crate::store::{
    begin_store, mtime_after_previous, upsert_meta, validate_labels, Replace, RowSpec, StoreOptions, Stored,
    MAX_DFS_SCOPE_CHARS,
};
use bytes::Bytes;
use sqlx::mysql::MySqlConnection;
use sqlx::Row;
use std::io::SeekFrom;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// Bytes per piece of a streamed read.
const STREAM_PIECE: usize = 64 * 1024;
/// Reads that find the file and its row disagreeing (a rewrite between the two) start again
/// this many times before the disagreement is reported.
const READ_ATTEMPTS: usize = 3;

/// The eZDFS tables and the opened mount.
#[derive(Debug)]
pub(crate) struct Dfs {
    pub(crate) layout: DfsLayout,
    pub(crate) mount: Mount,
}

/// What a publishing transaction checks first about a generation lock.
#[derive(Clone, Copy)]
pub(crate) enum LockCheck<'a> {
    /// A plain store: nothing.
    None,
    /// The lock (in this table) must still be ours; it stays.
    Verify(&'a str, &'a GenerationLock),
    /// The lock must still be ours; its row is deleted in the transaction.
    Take(&'a str, &'a GenerationLock),
}

/// How one publishing transaction runs.
struct Publish<'a> {
    op: Op,
    check: LockCheck<'a>,
    /// The row's mtime when the lock was not invalidated by a clear, and when it was.
    mtimes: (i64, i64),
    /// Moves the mtime past the replaced row's (a plain store without a given mtime).
    later_than_previous: bool,
    /// Whether a newer live row is kept.
    replace: Replace,
}

/// What [`Dfs::publish_staged`] did.
enum Published<'s> {
    Written(RowSpec<'s>),
    KeptNewer(i64),
}

impl<'s> Published<'s> {
    /// The row written by a publish that replaces whatever it finds.
    fn written(self, name: &FileName) -> Result<RowSpec<'s>> {
        match self {
            Published::Written(spec) => Ok(spec),
            Published::KeptNewer(_) => Err(Error::integrity(
                Op::Store,
                name.as_str(),
                "an unconditional publish kept the previous row; please report it",
            )),
        }
    }
}

/// A file opened for reading: its row, and the open file whose size matched it.
struct OpenFile {
    meta: FileMeta,
    file: tokio::fs::File,
    range: Option<ByteRange>,
}

impl Dfs {
    pub(crate) fn open(layout: &DfsLayout) -> Result<Dfs> {
        Ok(Dfs {
            mount: Mount::open(&layout.mount_point, layout.read_only)?,
            layout: layout.clone(),
        })
    }

    /// The table of `name`: the one rule of [`DfsLayout::table_for`].
    pub(crate) fn table(&self, name: &FileName) -> &str {
        self.layout.table_for(name.as_str())
    }

    pub(crate) async fn stat(&self, inner: &Inner, name: &FileName) -> Result<Option<FileMeta>> {
        inner
            .db
            .reading(Op::Stat, name.as_str(), Option::is_some, |mut conn| async move {
                let meta = self.stat_row(inner, &mut conn, name).await.map_err(AttemptError::from);
                done(conn, meta)
            })
            .await
    }

    /// The row of `name` with the global expiry of its scope, read with the same statement
    /// (the expiry sources of [`ExpirySql`]: ezdb's table, the legacy `expiry.php` version).
    pub(crate) async fn stat_row(
        &self,
        inner: &Inner,
        conn: &mut MySqlConnection,
        name: &FileName,
    ) -> std::result::Result<Option<FileMeta>, sqlx::Error> {
        let expiry = ExpirySql::of(inner);
        let sql = format!(
            "SELECT {} FROM {} f{} WHERE f.name_hash = ?",
            expiry.meta_columns(),
            self.table(name),
            expiry.joins()
        );
        let row = expiry
            .bind(sqlx::query(&sql))
            .bind(name.hash())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (mut meta, columns) = FileMeta::from_row_of(&row, name.as_str().to_owned())?;
        meta.global_expiry = resolve_global_expiry(inner, conn, columns, &meta.scope).await?;
        Ok(Some(meta))
    }

    /// The row, when its file is on the mount with the row's size (see
    /// [`Cluster::stat_readable`](crate::Cluster::stat_readable)).
    pub(crate) async fn stat_readable(&self, inner: &Inner, name: &FileName) -> Result<Option<FileMeta>> {
        match self.open_checked(inner, name, Visibility::IncludeExpired, None).await {
            Ok(open) => Ok(Some(open.meta)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A live row: neither deleted nor older than its scope's global expiry. The bytes are not
    /// looked at, as legacy `exists()`; reads report a live row without its file as not found.
    pub(crate) async fn exists(&self, inner: &Inner, name: &FileName) -> Result<bool> {
        inner
            .db
            .reading(
                Op::Exists,
                name.as_str(),
                |live| *live,
                |mut conn| async move {
                    let meta = self.stat_row(inner, &mut conn, name).await;
                    done(
                        conn,
                        meta.map(|m| m.is_some_and(|m| !m.is_expired())).map_err(Into::into),
                    )
                },
            )
            .await
    }

    /// The whole file of a small name (expiry.php), empty when it is not on the mount.
    pub(crate) async fn read_small(&self, name: &FileName) -> Vec<u8> {
        match self.mount.path_of(name) {
            Ok(path) => tokio::fs::read(path).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Read-modify-write of a small file under its row lock: `change` gets the locked row's mtime
    /// and the current bytes and returns the new bytes and mtime, published as a store is.
    pub(crate) async fn rewrite_locked(
        &self,
        cluster: &Cluster,
        name: &FileName,
        scope: &str,
        datatype: &str,
        change: impl Fn(Option<i64>, &[u8]) -> (Vec<u8>, i64),
    ) -> Result<()> {
        let table = self.table(name);
        let change = &change;
        cluster
            .inner
            .db
            .retrying(Op::Expiry, name.as_str(), |mut conn| async move {
                let result = async {
                    conn.begin().await?;
                    let lock = format!("SELECT CAST(mtime AS SIGNED) FROM {table} WHERE name_hash = ? FOR UPDATE");
                    let old: Option<i64> = sqlx::query_scalar(&lock)
                        .bind(name.hash())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let (bytes, mtime) = change(old, &self.read_small(name).await);
                    let staged = self.mount.stage(Op::Expiry, name, &mut &bytes[..]).await?;
                    let spec = RowSpec {
                        name,
                        scope,
                        datatype,
                        mtime,
                        expired: false,
                    };
                    let installed = async {
                        upsert_meta(&mut conn, table, &spec, staged.size).await?;
                        Ok::<_, AttemptError>(self.mount.install_copy(Op::Expiry, name, &staged.temp)?)
                    }
                    .await;
                    staged.discard();
                    let installed = installed?;
                    commit_installed(&mut conn, installed).await?;
                    Ok(())
                }
                .await;
                done(conn, result)
            })
            .await
    }

    /// The row and the open file, checked against each other: a live row whose file is missing
    /// is not found (a cache regenerates it under the lock), a file whose size is not the row's
    /// is an integrity error once a second read of both agrees on the disagreement.
    async fn open_checked(
        &self,
        inner: &Inner,
        name: &FileName,
        visibility: Visibility,
        range: Option<ByteRange>,
    ) -> Result<OpenFile> {
        let mut last_mismatch = None;
        for _ in 0..READ_ATTEMPTS {
            let meta = self
                .stat(inner, name)
                .await?
                .ok_or_else(|| Error::not_found(Op::Fetch, name.as_str()))?;
            if visibility == Visibility::Live && meta.is_expired() {
                return Err(Error::not_found(Op::Fetch, name.as_str()));
            }
            let Some((file, size)) = self.mount.open_file(Op::Fetch, name).await? else {
                if last_mismatch.is_some() {
                    continue;
                }
                tracing::warn!(name = name.as_str(), "live row without its file on the DFS mount");
                return Err(Error::not_found(Op::Fetch, name.as_str()));
            };
            if size != meta.size {
                last_mismatch = Some((size, meta.size));
                continue;
            }
            let range = ByteRange::checked(range, name.as_str(), meta.size)?;
            return Ok(OpenFile { meta, file, range });
        }
        let (on_mount, in_row) = last_mismatch.unwrap_or_default();
        Err(Error::integrity(
            Op::Fetch,
            name.as_str(),
            format!(
                "the file on the DFS mount holds {on_mount} bytes but its row says {in_row}; \
                 run `ezdb check` to see and repair it"
            ),
        ))
    }

    pub(crate) async fn read(
        &self,
        inner: &Inner,
        name: &FileName,
        visibility: Visibility,
        range: Option<ByteRange>,
    ) -> Result<FileData> {
        let OpenFile { meta, mut file, range } = self.open_checked(inner, name, visibility, range).await?;
        let path = self.mount.path_of(name)?;
        let io = |e| Error::io(Op::Fetch, name.as_str(), &path, e);
        let (start, len) = span(&meta, range);
        file.seek(SeekFrom::Start(start)).await.map_err(io)?;
        let mut bytes = Vec::with_capacity(len as usize);
        (&mut file).take(len).read_to_end(&mut bytes).await.map_err(io)?;
        if bytes.len() as u64 != len {
            return Err(Error::integrity(
                Op::Fetch,
                name.as_str(),
                "the file on the DFS mount became shorter during the read",
            ));
        }
        Ok(FileData { meta, bytes })
    }

    /// Opens the file before the metadata is returned, so a rewrite (a rename over it) while the
    /// stream runs keeps delivering the bytes that matched the metadata.
    pub(crate) async fn open_stream(
        &self,
        inner: &Inner,
        name: &FileName,
        visibility: Visibility,
        range: Option<ByteRange>,
    ) -> Result<FileStream> {
        let OpenFile { meta, mut file, range } = self.open_checked(inner, name, visibility, range).await?;
        let (start, len) = span(&meta, range);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_CHUNKS);
        let label = name.as_str().to_owned();
        let path = self.mount.path_of(name)?;
        let reading = Box::pin(async move {
            let io = |e| Error::io(Op::Fetch, &label, &path, e);
            if let Err(e) = file.seek(SeekFrom::Start(start)).await {
                let _ = tx.send(Err(io(e))).await;
                return;
            }
            let mut left = len;
            while left > 0 {
                let mut piece = vec![0u8; STREAM_PIECE.min(left as usize)];
                match file.read(&mut piece).await {
                    Ok(0) => {
                        let short = Error::integrity(Op::Fetch, &label, "the file on the DFS mount ended early");
                        let _ = tx.send(Err(short)).await;
                        return;
                    }
                    Ok(n) => {
                        piece.truncate(n);
                        left -= n as u64;
                        if tx.send(Ok(StreamItem::Chunk(Bytes::from(piece)))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(io(e))).await;
                        return;
                    }
                }
            }
        });
        Ok(FileStream::from_reading(meta, rx, Some(reading), range))
    }

    /// Stores `content` as the new version of `name` (module comment: bytes first, then the row
    /// and the rename in one transaction).
    pub(crate) async fn store(
        &self,
        cluster: &Cluster,
        name: &FileName,
        mut content: Content<'_>,
        options: &StoreOptions,
        replace: Replace,
    ) -> Result<Stored> {
        let (scope, datatype) = validate_labels(name, options, MAX_DFS_SCOPE_CHARS)?;
        let mtime = options.mtime.unwrap_or_else(|| cluster.now());
        let spec = RowSpec {
            name,
            scope,
            datatype,
            mtime,
            expired: false,
        };
        let mut reader = content.open(name.as_str()).await?;
        let staged = self.mount.stage(Op::Store, name, &mut reader).await?;
        let size = staged.size;
        let publish = Publish {
            op: Op::Store,
            check: LockCheck::None,
            mtimes: (mtime, mtime),
            later_than_previous: options.mtime.is_none(),
            replace,
        };
        let published = self.publish_staged(cluster, &spec, size, &staged.temp, &publish).await;
        staged.discard();
        Ok(match published? {
            Published::Written(spec) => Stored::Written(RowSpec { name, ..spec }.meta(size)),
            Published::KeptNewer(mtime) => Stored::KeptNewer { mtime },
        })
    }

    /// Publishes `content` for a generation lock: as the file (`check` takes the lock row) or as
    /// the staged `.generating` file (`check` verifies it).
    pub(crate) async fn publish_bytes(
        &self,
        cluster: &Cluster,
        spec: &RowSpec<'_>,
        content: &[u8],
        check: LockCheck<'_>,
        mtimes: (i64, i64),
    ) -> Result<FileMeta> {
        let staged = self.mount.stage(Op::Generation, spec.name, &mut &content[..]).await?;
        let publish = Publish {
            op: Op::Generation,
            check,
            mtimes,
            later_than_previous: false,
            replace: Replace::Always,
        };
        let published = self
            .publish_staged(cluster, spec, staged.size, &staged.temp, &publish)
            .await;
        staged.discard();
        let written = published?.written(spec.name)?;
        Ok(RowSpec {
            name: spec.name,
            ..written
        }
        .meta(content.len() as u64))
    }

    /// Legacy end of generation: the staged `<mount>/<lock>` file becomes `<mount>/<file>` and
    /// its row the file's row, in one transaction that takes the lock row.
    pub(crate) async fn publish_staged_lock(
        &self,
        cluster: &Cluster,
        lock: &FileName,
        file: &FileName,
        check: LockCheck<'_>,
        mtimes: (i64, i64),
    ) -> Result<FileMeta> {
        let staged = self.stat(&cluster.inner, lock).await?.ok_or_else(|| Error::LockLost {
            name: file.as_str().to_owned(),
        })?;
        let temp = self.mount.path_of(lock)?;
        let size = std::fs::metadata(&temp)
            .map_err(|e| Error::io(Op::Generation, file.as_str(), &temp, e))?
            .len();
        let spec = RowSpec {
            name: file,
            scope: &staged.scope,
            datatype: &staged.datatype,
            mtime: mtimes.0,
            expired: false,
        };
        let publish = Publish {
            op: Op::Generation,
            check,
            mtimes,
            later_than_previous: false,
            replace: Replace::Always,
        };
        let written = self
            .publish_staged(cluster, &spec, size, &temp, &publish)
            .await?
            .written(file)?;
        let _ = std::fs::remove_file(&temp);
        Ok(RowSpec { name: file, ..written }.meta(size))
    }

    /// Removes a staged `.generating` file after its lock row was released.
    pub(crate) fn remove_staged(&self, lock: &FileName) {
        if let Ok(path) = self.mount.path_of(lock) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// In one transaction: the lock check, the row upsert, a rename of a link of `temp` over
    /// the file, the commit; the rename is undone when the commit fails. `temp` stays for
    /// another attempt (the caller removes it). Returns the row as written.
    async fn publish_staged<'s>(
        &self,
        cluster: &Cluster,
        spec: &RowSpec<'s>,
        size: u64,
        temp: &std::path::Path,
        publish: &Publish<'_>,
    ) -> Result<Published<'s>> {
        let table = self.table(spec.name);
        cluster
            .inner
            .db
            .retrying(publish.op, spec.name.as_str(), |mut conn| async move {
                let result = async {
                    if let Some(mtime) = begin_store(&mut conn, table, spec, publish.replace).await? {
                        return Ok(Published::KeptNewer(mtime));
                    }
                    let invalidated = match publish.check {
                        LockCheck::None => false,
                        LockCheck::Verify(lock_table, lock) => verify_lock(&mut conn, lock_table, lock).await?,
                        LockCheck::Take(lock_table, lock) => take_lock_row(&mut conn, lock_table, lock).await?,
                    };
                    let mut spec = *spec;
                    spec.mtime = if invalidated {
                        publish.mtimes.1
                    } else {
                        publish.mtimes.0
                    };
                    spec.expired = invalidated;
                    if publish.later_than_previous {
                        spec.mtime = mtime_after_previous(&mut conn, table, &spec).await?;
                    }
                    upsert_meta(&mut conn, table, &spec, size).await?;
                    let installed = self.mount.install_copy(publish.op, spec.name, temp)?;
                    commit_installed(&mut conn, installed).await?;
                    Ok(Published::Written(spec))
                }
                .await;
                done(conn, result)
            })
            .await
    }

    /// Copies `src` to `dst` through a staged file: labels and mtime kept, a deleted source
    /// gives a deleted copy (as legacy); a missing source (row or file) copies nothing.
    pub(crate) async fn copy(&self, cluster: &Cluster, src: &FileName, dst: &FileName) -> Result<()> {
        let Some(meta) = self.stat(&cluster.inner, src).await? else {
            return Ok(());
        };
        let Some((file, _)) = self.mount.open_file(Op::Copy, src).await? else {
            return Ok(());
        };
        let options = StoreOptions {
            scope: Some(meta.scope.clone()),
            datatype: Some(meta.datatype.clone()),
            mtime: Some(meta.mtime.abs()),
        };
        self.store(cluster, dst, Content::reader(file), &options, Replace::Always)
            .await?;
        if meta.deleted {
            self.delete(&cluster.inner, dst).await?;
        }
        Ok(())
    }

    /// Moves `src` to `dst` in one transaction, as one change for readers: with the source row
    /// locked, the destination row takes its columns (in the destination's table) and the source
    /// row goes; on the mount the destination becomes a hard link of the source file (renamed over
    /// the old destination, which is kept until the commit) and the source file is moved aside
    /// (unlinked after the commit). A failed commit puts everything back. A source row without
    /// its file is not moved (not found).
    pub(crate) async fn rename(&self, cluster: &Cluster, src: &FileName, dst: &FileName) -> Result<()> {
        let (src_table, dst_table) = (self.table(src), self.table(dst));
        let src_path = self.mount.path_of(src)?;
        self.mount.path_of(dst)?;
        let select = &format!("SELECT {META_COLUMNS} FROM {src_table} f WHERE f.name_hash = ? FOR UPDATE");
        let remove = &format!("DELETE FROM {src_table} WHERE name_hash = ?");
        let src_path = &src_path;
        let moved = cluster
            .inner
            .db
            .retrying(Op::Move, src.as_str(), |mut conn| async move {
                let result = async {
                    conn.begin().await?;
                    let row = sqlx::query(select).bind(src.hash()).fetch_optional(&mut *conn).await?;
                    let meta = match row {
                        Some(row) => FileMeta::from_row(&row)?,
                        None => {
                            conn.commit().await?;
                            return Ok(false);
                        }
                    };
                    if !std::fs::symlink_metadata(src_path).is_ok_and(|m| m.is_file()) {
                        tracing::warn!(name = src.as_str(), "move of a row without its file on the DFS mount");
                        conn.commit().await?;
                        return Ok(false);
                    }
                    let spec = RowSpec {
                        name: dst,
                        scope: &meta.scope,
                        datatype: &meta.datatype,
                        mtime: meta.mtime,
                        expired: meta.deleted,
                    };
                    upsert_meta(&mut conn, dst_table, &spec, meta.size).await?;
                    sqlx::query(remove).bind(src.hash()).execute(&mut *conn).await?;
                    let installed = self.mount.install_copy(Op::Move, dst, src_path)?;
                    let aside = match self.mount.take_aside(Op::Move, src) {
                        Ok(aside) => aside,
                        Err(e) => {
                            installed.undo();
                            return Err(e.into());
                        }
                    };
                    match commit_installed(&mut conn, installed).await {
                        Ok(()) => {
                            if let Some(aside) = aside {
                                aside.remove();
                            }
                            Ok(true)
                        }
                        Err(e) => {
                            if let Some(aside) = aside {
                                aside.restore();
                            }
                            Err(e.into())
                        }
                    }
                }
                .await;
                done(conn, result)
            })
            .await?;
        if moved {
            Ok(())
        } else {
            Err(Error::not_found(Op::Move, src.as_str()))
        }
    }

    pub(crate) async fn delete(&self, inner: &Inner, name: &FileName) -> Result<bool> {
        let sql = &format!(
            "UPDATE {} SET mtime = -ABS(mtime), expired = 1 WHERE name_hash = ? AND expired = 0",
            self.table(name)
        );
        inner
            .db
            .retrying(Op::Delete, name.as_str(), |mut conn| async move {
                let updated = sqlx::query(sql).bind(name.hash()).execute(&mut *conn).await;
                done(conn, updated.map(|r| r.rows_affected() > 0).map_err(Into::into))
            })
            .await
    }

    /// Removes the row of `name` when `filter` selects it, and then its file.
    pub(crate) async fn purge(&self, inner: &Inner, name: &FileName, filter: PurgeFilter) -> Result<bool> {
        let (condition, values) = filter.condition();
        let filter = &Filter::default()
            .and("name_hash = ?", vec![Value::Text(name.hash().to_owned())])
            .and(condition, values);
        let table = self.table(name);
        inner
            .db
            .retrying(Op::Purge, name.as_str(), |mut conn| async move {
                let purged = self.purge_batch(&mut conn, table, filter, 1).await;
                done(conn, purged.map(|(n, _)| n > 0))
            })
            .await
    }

    /// One purge batch of at most `size` rows of `table` matching `filter`: rows locked and
    /// their files moved aside, rows deleted, commit, then the files unlinked (restored when the
    /// commit fails). Returns (rows deleted, rows picked).
    pub(crate) async fn purge_batch(
        &self,
        conn: &mut Conn,
        table: &str,
        filter: &Filter,
        size: u32,
    ) -> Attempt<(u64, usize)> {
        conn.begin().await?;
        let pick = format!(
            "SELECT CAST(name_hash AS CHAR), CAST(name AS CHAR) FROM {table} WHERE {} LIMIT {size} FOR UPDATE",
            filter.sql
        );
        let rows = filter.bind(sqlx::query(&pick)).fetch_all(&mut **conn).await?;
        if rows.is_empty() {
            conn.commit().await?;
            return Ok((0, 0));
        }
        let mut hashes = Vec::with_capacity(rows.len());
        let mut names = Vec::with_capacity(rows.len());
        for row in &rows {
            hashes.push(row.try_get::<String, _>(0)?);
            names.push(row.try_get::<String, _>(1)?);
        }
        let mut asides: Vec<Aside> = Vec::new();
        for name in &names {
            // A name the mount refuses (`..`) has no file there to remove.
            let Ok(file) = FileName::new(name) else { continue };
            if let Ok(Some(aside)) = self.mount.take_aside(Op::Purge, &file) {
                asides.push(aside);
            }
        }
        let marks = vec!["?"; hashes.len()].join(", ");
        let delete = format!("DELETE FROM {table} WHERE name_hash IN ({marks})");
        let mut query = sqlx::query(&delete);
        for hash in &hashes {
            query = query.bind(hash.as_str());
        }
        let deleted = async {
            let deleted = query.execute(&mut **conn).await?.rows_affected();
            conn.commit().await?;
            Ok::<u64, sqlx::Error>(deleted)
        }
        .await;
        match deleted {
            Ok(deleted) => {
                asides.into_iter().for_each(Aside::remove);
                Ok((deleted, hashes.len()))
            }
            Err(e) => {
                asides.into_iter().for_each(Aside::restore);
                Err(e.into())
            }
        }
    }
}

/// Commits the row that describes installed bytes: the old bytes go when it commits, come back
/// when it does not, so the mount always agrees with the committed row.
async fn commit_installed(conn: &mut Conn, installed: Installed) -> std::result::Result<(), sqlx::Error> {
    match conn.commit().await {
        Ok(()) => {
            installed.keep();
            Ok(())
        }
        Err(e) => {
            installed.undo();
            Err(e)
        }
    }
}

/// (first byte, length) of a read.
fn span(meta: &FileMeta, range: Option<ByteRange>) -> (u64, u64) {
    match range {
        Some(r) => (r.start, r.end - r.start + 1),
        None => (0, meta.size),
    }
}
