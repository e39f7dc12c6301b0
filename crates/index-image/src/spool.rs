//! Local copies of files too large for memory while they are sent: a file is copied from the
//! database as fast as it gives it (one statement, one snapshot), the connection goes back to
//! the pool, and the client then reads the copy at its own pace. A spool file is unlinked as
//! soon as it is created, so it vanishes when sent (or when the process dies); the directory's
//! total is bounded.

use bytes::Bytes;
use ezdb_core::FileStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Space is counted in blocks of this many bytes (a semaphore counts in u32).
const BLOCK: u64 = 64 << 10;
/// Bytes read from a spool file per body chunk.
const READ_CHUNK: usize = 64 << 10;

pub struct Spool {
    dir: PathBuf,
    space: Arc<Semaphore>,
    blocks: u64,
}

/// Why a file could not be spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// The spool holds as much as it may: the request gets 503.
    Full,
    Io(std::io::Error),
    /// The database read failed or returned inconsistent data.
    Read(ezdb_core::Error),
}

/// A complete local copy (a spool file, or part of a disk-tier file), positioned where the
/// bytes to send start.
pub struct SpoolFile {
    file: tokio::fs::File,
    len: u64,
    /// The spool space this copy holds; disk-tier files are bounded by their own index.
    _space: Option<OwnedSemaphorePermit>,
}

impl Spool {
    /// Checks that `dir` takes files.
    pub fn new(dir: &Path, bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let (probe, path) = create_unique(dir)?;
        drop(probe);
        std::fs::remove_file(path)?;
        let blocks = (bytes / BLOCK).min(Semaphore::MAX_PERMITS as u64);
        Ok(Spool {
            dir: dir.to_owned(),
            space: Arc::new(Semaphore::new(blocks as usize)),
            blocks,
        })
    }

    /// Copies the rest of `stream` (`len` bytes) into a new spool file.
    pub async fn write(&self, stream: &mut FileStream, len: u64) -> Result<SpoolFile, SpoolError> {
        let needed = len.div_ceil(BLOCK).max(1);
        if needed > self.blocks {
            return Err(SpoolError::Full);
        }
        let space = self
            .space
            .clone()
            .try_acquire_many_owned(needed as u32)
            .map_err(|_| SpoolError::Full)?;
        let (file, path) = create_unique(&self.dir).map_err(SpoolError::Io)?;
        std::fs::remove_file(&path).map_err(SpoolError::Io)?;
        let mut file = tokio::fs::File::from_std(file);
        copy_stream(stream, &mut file, len).await?;
        file.seek(std::io::SeekFrom::Start(0)).await.map_err(SpoolError::Io)?;
        Ok(SpoolFile {
            file,
            len,
            _space: Some(space),
        })
    }
}

impl SpoolFile {
    /// `len` bytes of an open file from its current position.
    pub fn from_open(file: tokio::fs::File, len: u64) -> SpoolFile {
        SpoolFile {
            file,
            len,
            _space: None,
        }
    }

    /// The copy as body chunks; a read error ends the body early (the connection is then
    /// aborted, so the client sees a cut, never a short file taken for whole) and is logged.
    pub fn into_stream(self, name: String) -> impl futures_core::Stream<Item = std::io::Result<Bytes>> + Send {
        futures_util::stream::unfold((self, name), |(mut spool, name)| async move {
            if spool.len == 0 {
                return None;
            }
            let mut buffer = vec![0; READ_CHUNK.min(spool.len as usize)];
            match spool.file.read(&mut buffer).await {
                Ok(n) if n > 0 => {
                    buffer.truncate(n);
                    spool.len -= n as u64;
                    Some((Ok(Bytes::from(buffer)), (spool, name)))
                }
                Ok(_) => {
                    tracing::error!(%name, "spool file ended early; response aborted");
                    let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "spool file ended early");
                    spool.len = 0;
                    Some((Err(e), (spool, name)))
                }
                Err(e) => {
                    tracing::error!(%name, error = %e, "cannot read the spool file; response aborted");
                    spool.len = 0;
                    Some((Err(e), (spool, name)))
                }
            }
        })
    }
}

/// Writes the rest of `stream` to `file`, which must come to exactly `len` bytes.
pub async fn copy_stream(stream: &mut FileStream, file: &mut tokio::fs::File, len: u64) -> Result<(), SpoolError> {
    let mut written = 0u64;
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk.map_err(SpoolError::Read)?;
        file.write_all(&chunk).await.map_err(SpoolError::Io)?;
        written += chunk.len() as u64;
    }
    file.flush().await.map_err(SpoolError::Io)?;
    if written != len {
        let message = format!("copied {written} bytes of {len} from the database");
        return Err(SpoolError::Io(std::io::Error::other(message)));
    }
    Ok(())
}

/// `dir/index_image.<pid>.<n>.spool`, created new (never an existing file).
fn create_unique(dir: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("index_image.{}.{n}.spool", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}
