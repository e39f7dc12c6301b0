//! The disk tier: files read from the database kept in a local directory, bounded in bytes
//! (quick_cache as the index, its eviction unlinking the file), written under a temporary name
//! and renamed into place (a reader or a restart sees a whole file or none), and found again
//! after a restart. Each file starts with a header holding the row's metadata; an entry is
//! re-checked against the database before its first use after a start and then every
//! `revalidate_after` (by the request, or before that by [`crate::revalidation`]). A hit is
//! read (or, when the memory tier does not keep it, mapped: [`DiskCache::map_part`], so hyper
//! writes it to the socket from the page cache without a copy through a buffer of ours) on the
//! serving thread when the page cache holds it, and on a blocking thread otherwise
//! ([`crate::page_cache`]).

use crate::page_cache::{self, ReadPath};
use crate::revalidation::{Checks, Clock};
use crate::spool::SpoolFile;
use ezdb_core::{FileMeta, FileStream};
use quick_cache::sync::Cache;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// First bytes of every file of the tier (with the format version).
const MAGIC: &str = "ezdb-disk-cache-1";
/// Prefix of files being written; left-overs of a crash are removed at start.
const TEMPORARY: &str = ".tmp.";

pub struct DiskEntry {
    pub meta: FileMeta,
    path: PathBuf,
    /// Where the content starts in the file.
    header_len: u64,
    pub checks: Arc<Checks>,
}

impl DiskEntry {
    /// Opens the tier file, checking that it is whole (header and content).
    fn open(&self) -> std::io::Result<std::fs::File> {
        let file = std::fs::File::open(&self.path)?;
        if file.metadata()?.len() != self.header_len + self.meta.size {
            return Err(std::io::Error::other("disk-tier file has the wrong length"));
        }
        Ok(file)
    }
}

/// A read-only mapping of `len` bytes of `file` from `offset`, its pages read in first with
/// `populate` (which waits for the disk if they are not in the page cache).
fn map(file: &std::fs::File, offset: u64, len: usize, populate: bool) -> std::io::Result<memmap2::Mmap> {
    let mut options = memmap2::MmapOptions::new();
    options.offset(offset).len(len);
    if populate {
        options.populate();
    }
    // SAFETY: the mapping is read-only and tier files are never written or truncated after
    // they are renamed into place (see DiskCache::map_part); only an outside hand changing the
    // tier's directory could invalidate it, as for any mapped file.
    unsafe { options.map(file) }
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<String, Arc<DiskEntry>> for Weigh {
    fn weight(&self, _: &String, entry: &Arc<DiskEntry>) -> u64 {
        entry.header_len + entry.meta.size
    }
}

/// Evicted entries take their file with them.
#[derive(Clone)]
struct Unlink;

impl quick_cache::Lifecycle<String, Arc<DiskEntry>> for Unlink {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: String, entry: Arc<DiskEntry>) {
        let _ = std::fs::remove_file(&entry.path);
    }
}

type Index = Cache<String, Arc<DiskEntry>, Weigh, quick_cache::DefaultHashBuilder, Unlink>;

pub struct DiskCache {
    dir: PathBuf,
    index: Index,
    max_file: u64,
    revalidate_after: Duration,
    clock: Clock,
}

/// What the disk tier has for a name.
pub enum DiskLookup {
    Fresh(Arc<DiskEntry>),
    Stale(Arc<DiskEntry>),
    Miss,
}

impl DiskCache {
    /// Opens (creating) the directory and indexes the files a previous run left.
    pub fn open(
        dir: &Path,
        bytes: u64,
        max_file: u64,
        revalidate_after: Duration,
        clock: Clock,
    ) -> std::io::Result<DiskCache> {
        std::fs::create_dir_all(dir)?;
        let options = quick_cache::OptionsBuilder::new()
            .shards(4)
            .estimated_items_capacity((bytes / (64 << 10)).max(256) as usize)
            .weight_capacity(bytes)
            .build()
            .expect("every option is set");
        let index = Cache::with_options(options, Weigh, Default::default(), Unlink);
        let max_file = max_file.min(index.shard_capacity() * 9 / 10);
        let cache = DiskCache {
            dir: dir.to_owned(),
            index,
            max_file,
            revalidate_after,
            clock,
        };
        cache.reindex()?;
        Ok(cache)
    }

    pub fn admits(&self, size: u64) -> bool {
        size <= self.max_file
    }

    pub fn lookup(&self, name: &str) -> DiskLookup {
        match self.index.get(name) {
            None => DiskLookup::Miss,
            Some(entry) => {
                if entry.checks.is_fresh(self.clock.now_ms(), self.revalidate_after) {
                    DiskLookup::Fresh(entry)
                } else {
                    DiskLookup::Stale(entry)
                }
            }
        }
    }

    /// The metadata and check state of the copy of `name`, if any (no effect on eviction).
    pub fn peek(&self, name: &str) -> Option<(FileMeta, Arc<Checks>)> {
        let entry = self.index.peek(name)?;
        Some((entry.meta.clone(), entry.checks.clone()))
    }

    /// Drops the copy of `name` (and its file) if it is still the one `checks` belongs to.
    pub fn remove_if_is(&self, name: &str, checks: &Arc<Checks>) {
        if let Some((_, entry)) = self.index.remove_if(name, |e| Arc::ptr_eq(&e.checks, checks)) {
            let _ = std::fs::remove_file(&entry.path);
        }
    }

    /// `len` bytes of the entry's content from `start`, mapped from the file: the response is
    /// written from the page cache with no copy through user space (hyper hands the bytes to
    /// `writev` as they are). When the page cache holds every page the mapping is made here;
    /// otherwise the pages are read in (MAP_POPULATE) on a blocking thread, so a page not in
    /// the page cache never stalls the runtime when hyper writes. Tier files are never changed
    /// in place (written whole under another name, renamed, unlinked when evicted), so a
    /// mapping stays valid while it is sent, an eviction included.
    pub async fn map_part(&self, entry: &DiskEntry, start: u64, len: u64) -> std::io::Result<(bytes::Bytes, ReadPath)> {
        if len == 0 {
            return Ok((bytes::Bytes::new(), ReadPath::PageCache));
        }
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        let offset = entry.header_len + start;
        // Opened here: the inode of a tier file in use is in the kernel's caches (as nginx,
        // which opens files on its event loop).
        let file = entry.open()?;
        let mapped = map(&file, offset, len, false)?;
        if page_cache::is_resident(&mapped) {
            return Ok((bytes::Bytes::from_owner(mapped), ReadPath::PageCache));
        }
        drop(mapped);
        let mapped = tokio::task::spawn_blocking(move || map(&file, offset, len, true)).await;
        let mapped = mapped.map_err(std::io::Error::other)??;
        Ok((bytes::Bytes::from_owner(mapped), ReadPath::Disk))
    }

    /// The entry's whole content in memory: read here from the page cache, and only what it
    /// does not hold on a blocking thread.
    pub async fn read(&self, entry: &DiskEntry) -> std::io::Result<(bytes::Bytes, ReadPath)> {
        let file = entry.open()?;
        let size = usize::try_from(entry.meta.size).map_err(std::io::Error::other)?;
        let mut content = Vec::with_capacity(size);
        page_cache::read_cached(&file, entry.header_len, &mut content);
        if content.len() == size {
            return Ok((bytes::Bytes::from(content), ReadPath::PageCache));
        }
        let offset = entry.header_len;
        let rest = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            use std::os::unix::fs::FileExt;
            let have = content.len();
            content.resize(size, 0);
            file.read_exact_at(&mut content[have..], offset + have as u64)?;
            Ok(content)
        })
        .await;
        let content = rest.map_err(std::io::Error::other)??;
        Ok((bytes::Bytes::from(content), ReadPath::Disk))
    }

    /// Keeps a file read into memory (best effort: a failure is logged, the response is not
    /// affected).
    pub async fn keep_bytes(self: &Arc<Self>, name: &str, meta: &FileMeta, body: bytes::Bytes) {
        let cache = self.clone();
        let (name, meta) = (name.to_owned(), meta.clone());
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let (mut file, temp) = cache.create_temporary()?;
            let header = header(&meta);
            file.write_all(&header)?;
            file.write_all(&body)?;
            drop(file);
            cache.publish(&name, &meta, temp, header.len() as u64)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, dir = %self.dir.display(), "cannot write the disk tier"),
            Err(e) => tracing::warn!(error = %e, "disk-tier write task failed"),
        }
    }

    /// Copies the rest of `stream` into the tier and opens the result for sending.
    pub async fn keep_stream(
        &self,
        name: &str,
        stream: &mut FileStream,
    ) -> Result<SpoolFile, crate::spool::SpoolError> {
        use crate::spool::SpoolError;
        let meta = stream.meta.clone();
        let (file, temp) = self.create_temporary().map_err(SpoolError::Io)?;
        let mut file = tokio::fs::File::from_std(file);
        let header = header(&meta);
        let copied = async {
            file.write_all(&header).await.map_err(SpoolError::Io)?;
            crate::spool::copy_stream(stream, &mut file, meta.size).await
        }
        .await;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        // Open the content before publishing: an eviction right after cannot take it away.
        let mut reader = tokio::fs::File::open(&temp).await.map_err(SpoolError::Io)?;
        reader
            .seek(std::io::SeekFrom::Start(header.len() as u64))
            .await
            .map_err(SpoolError::Io)?;
        self.publish(name, &meta, temp, header.len() as u64)
            .map_err(SpoolError::Io)?;
        Ok(SpoolFile::from_open(reader, meta.size))
    }

    fn create_temporary(&self) -> std::io::Result<(std::fs::File, PathBuf)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{TEMPORARY}{}.{n}", std::process::id()));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((file, path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Renames a complete temporary file into place and indexes it.
    fn publish(&self, name: &str, meta: &FileMeta, temp: PathBuf, header_len: u64) -> std::io::Result<()> {
        let path = self.dir.join(ezdb_core::name_hash(name));
        if let Err(e) = std::fs::rename(&temp, &path) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        let entry = Arc::new(DiskEntry {
            meta: meta.clone(),
            path,
            header_len,
            checks: Arc::new(Checks::new(self.clock.now_ms())),
        });
        self.index.insert(name.to_owned(), entry);
        Ok(())
    }

    /// Indexes the files of a previous run (to be re-checked before use); removes temporary
    /// and unreadable ones.
    fn reindex(&self) -> std::io::Result<()> {
        for item in std::fs::read_dir(&self.dir)? {
            let path = item?.path();
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if file_name.starts_with(TEMPORARY) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match read_header(&path) {
                Some((meta, header_len)) if ezdb_core::name_hash(&meta.name) == file_name => {
                    let entry = Arc::new(DiskEntry {
                        meta: meta.clone(),
                        path,
                        header_len,
                        checks: Arc::new(Checks::new(0)),
                    });
                    self.index.insert(meta.name, entry);
                }
                _ => {
                    tracing::info!(path = %path.display(), "removing an unreadable disk-tier file");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(())
    }
}

/// `MAGIC\0name\0size\0mtime\0scope\0datatype\0deleted\0global_expiry\n`: NUL never occurs in
/// names or labels (the core refuses it).
fn header(meta: &FileMeta) -> Vec<u8> {
    let expiry = meta.global_expiry.map_or_else(String::new, |e| e.to_string());
    format!(
        "{MAGIC}\0{}\0{}\0{}\0{}\0{}\0{}\0{expiry}\n",
        meta.name, meta.size, meta.mtime, meta.scope, meta.datatype, meta.deleted as u8
    )
    .into_bytes()
}

/// The metadata and content offset of a tier file, if it is whole.
fn read_header(path: &Path) -> Option<(FileMeta, u64)> {
    let mut file = std::fs::File::open(path).ok()?;
    let file_len = file.metadata().ok()?.len();
    let mut start = vec![0; 8192];
    let n = file.read(&mut start).ok()?;
    let end = start[..n].iter().position(|b| *b == b'\n')?;
    let text = std::str::from_utf8(&start[..end]).ok()?;
    let fields: Vec<&str> = text.split('\0').collect();
    let [magic, name, size, mtime, scope, datatype, deleted, expiry] = fields[..] else {
        return None;
    };
    if magic != MAGIC {
        return None;
    }
    let meta = FileMeta {
        name: name.to_owned(),
        // Not kept in the header: the trunk follows from the name and scope.
        name_trunk: ezdb_core::name_trunk(name, scope),
        size: size.parse().ok()?,
        mtime: mtime.parse().ok()?,
        scope: scope.to_owned(),
        datatype: datatype.to_owned(),
        deleted: deleted == "1",
        global_expiry: if expiry.is_empty() {
            None
        } else {
            Some(expiry.parse().ok()?)
        },
    };
    let header_len = end as u64 + 1;
    (file_len == header_len + meta.size).then_some((meta, header_len))
}
