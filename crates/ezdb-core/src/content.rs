// File content as rows of `ezdbfile_data`: where bytes come from when storing, how they are
// written in multi-row statements, and how chunks read back are checked for gaps and size.

use crate::db::Attempt;
use crate::error::{Error, Op, Result};
use sqlx::mysql::MySqlConnection;
use std::path::Path;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes to store. A failed attempt can be replayed from bytes and files, not from a reader.
pub enum Content<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    Reader(Option<Box<dyn AsyncRead + Unpin + Send + 'a>>),
}

pub(crate) type ContentReader<'a> = Box<dyn AsyncRead + Unpin + Send + 'a>;

impl<'a> Content<'a> {
    pub fn reader(reader: impl AsyncRead + Unpin + Send + 'a) -> Content<'a> {
        Content::Reader(Some(Box::new(reader)))
    }

    /// Size known before reading, used for the metadata row (corrected after the last chunk).
    pub(crate) fn size_hint(&self) -> Option<u64> {
        match self {
            Content::Bytes(b) => Some(b.len() as u64),
            _ => None,
        }
    }

    /// Opens the content for one store attempt.
    pub(crate) async fn open(&mut self, name: &str) -> Result<ContentReader<'a>> {
        match self {
            Content::Bytes(bytes) => Ok(Box::new(*bytes)),
            Content::File(path) => {
                let path: &Path = path;
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::io(Op::Store, name, path, e))?;
                Ok(Box::new(file))
            }
            Content::Reader(reader) => reader.take().ok_or_else(|| Error::Source {
                op: Op::Store,
                name: name.to_owned(),
                source: std::io::Error::other(
                    "the database failed after the stream was consumed and a stream cannot be replayed; store it again",
                ),
            }),
        }
    }
}

/// Writes all of `reader` as the chunks of `hash`, replacing any previous chunks, in statements
/// of `per_statement` chunks. Returns the number of bytes written. Empty content gets one empty
/// chunk at offset 0, the layout legacy readers accept.
pub(crate) async fn write_chunks(
    conn: &mut MySqlConnection,
    name: &str,
    hash: &str,
    reader: &mut ContentReader<'_>,
    chunk_size: usize,
    per_statement: usize,
) -> Attempt<u64> {
    let mut offset: u64 = 0;
    loop {
        let chunks = match read_chunks(reader, chunk_size, per_statement).await {
            Ok(chunks) => chunks,
            Err(source) => {
                return Err(Error::Source {
                    op: Op::Store,
                    name: name.to_owned(),
                    source,
                }
                .into())
            }
        };
        let last = chunks.len() < per_statement || chunks.last().is_some_and(|c| c.len() < chunk_size);
        if chunks.is_empty() && offset > 0 {
            break;
        }
        let chunks = if chunks.is_empty() { vec![Vec::new()] } else { chunks };
        offset = insert_chunks(conn, hash, offset, chunks).await?;
        if last {
            break;
        }
    }
    remove_leftover_chunks(conn, hash, offset, chunk_size).await?;
    Ok(offset)
}

/// Deletes the previous version's chunks that the new one did not overwrite: those past its
/// end, and those of another chunk size (a legacy layout). An empty file keeps its empty chunk.
async fn remove_leftover_chunks(
    conn: &mut MySqlConnection,
    hash: &str,
    size: u64,
    chunk_size: usize,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ezdbfile_data WHERE name_hash = ? AND (`offset` >= ? OR `offset` % ? != 0)")
        .bind(hash)
        .bind(size.max(1))
        .bind(chunk_size as u64)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_chunks(
    conn: &mut MySqlConnection,
    hash: &str,
    mut offset: u64,
    chunks: Vec<Vec<u8>>,
) -> std::result::Result<u64, sqlx::Error> {
    let placeholders = vec!["(?, ?, ?)"; chunks.len()].join(", ");
    // Overwriting in place is cheaper for InnoDB than deleting the old rows first.
    let sql = format!(
        "INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) VALUES {placeholders} \
         ON DUPLICATE KEY UPDATE filedata = VALUES(filedata)"
    );
    let mut query = sqlx::query(&sql);
    for chunk in chunks {
        let len = chunk.len() as u64;
        query = query.bind(hash).bind(offset).bind(chunk);
        offset += len;
    }
    query.execute(&mut *conn).await?;
    Ok(offset)
}

/// Reads up to `count` full chunks; only the last one may be short. Empty at the end of input.
async fn read_chunks(reader: &mut ContentReader<'_>, chunk_size: usize, count: usize) -> std::io::Result<Vec<Vec<u8>>> {
    let mut chunks = Vec::with_capacity(count);
    while chunks.len() < count {
        let mut chunk = Vec::with_capacity(chunk_size);
        (&mut *reader).take(chunk_size as u64).read_to_end(&mut chunk).await?;
        let full = chunk.len() == chunk_size;
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        if !full {
            break;
        }
    }
    Ok(chunks)
}

/// Checks chunks as they arrive in offset order: contiguous, covering what was asked, never
/// beyond the metadata size. Accepts the legacy layouts: no chunk for empty content, and an
/// empty chunk at the very end.
pub(crate) struct ChunkCheck<'n> {
    name: &'n str,
    op: Op,
    size: u64,
    /// The first chunk must start at or before this offset (0 for a whole read).
    from: u64,
    /// The chunks must reach at least this offset (the size for a whole read).
    until: u64,
    next: Option<u64>,
}

impl<'n> ChunkCheck<'n> {
    pub(crate) fn new(op: Op, name: &'n str, size: u64, range: Option<ByteRange>) -> Self {
        let (from, until) = range.map_or((0, size), |r| (r.start, r.end + 1));
        ChunkCheck {
            name,
            op,
            size,
            from,
            until,
            next: None,
        }
    }

    /// Verifies one chunk starting at `offset` with `len` bytes.
    pub(crate) fn accept(&mut self, offset: u64, len: u64) -> Result<()> {
        let contiguous = match self.next {
            None => offset <= self.from,
            Some(next) => offset == next,
        };
        if !contiguous {
            let expected = self.next.unwrap_or(self.from);
            let kind = if offset > expected { "gap" } else { "overlap" };
            return Err(self.error(format!("chunk {kind}: expected offset {expected}, found {offset}")));
        }
        let next = offset + len;
        if next > self.size {
            return Err(self.error(format!("chunks hold more than the {} bytes of the metadata", self.size)));
        }
        self.next = Some(next);
        Ok(())
    }

    pub(crate) fn finish(&self) -> Result<()> {
        let reached = self.next.unwrap_or(0);
        if reached < self.until {
            return Err(self.error(format!("chunks hold {reached} of {} bytes", self.size)));
        }
        Ok(())
    }

    fn error(&self, detail: String) -> Error {
        Error::integrity(self.op, self.name, detail)
    }
}

/// A byte range `[start, end]` (inclusive) of a file, as HTTP Range asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// `range` of a read of the `size`-byte file `name`: it must start inside the file and is cut
    /// at its end.
    pub(crate) fn checked(range: Option<ByteRange>, name: &str, size: u64) -> Result<Option<ByteRange>> {
        let Some(r) = range else { return Ok(None) };
        if r.start >= size {
            return Err(Error::InvalidArgument {
                name: name.to_owned(),
                what: "byte range",
                value: format!("{}-{}", r.start, r.end),
                reason: format!("starts at or after the end of the {size}-byte file"),
            });
        }
        Ok(Some(ByteRange {
            start: r.start,
            end: r.end.min(size - 1),
        }))
    }

    pub fn len(&self) -> u64 {
        (self.end - self.start).saturating_add(1)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The part of chunk `[offset, offset + data.len())` inside the range.
    pub(crate) fn slice<'d>(&self, offset: u64, data: &'d [u8]) -> &'d [u8] {
        let chunk_end = offset + data.len() as u64;
        let from = self.start.max(offset).min(chunk_end) - offset;
        let to = (self.end + 1).min(chunk_end).max(offset) - offset;
        &data[from as usize..to.max(from) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_legacy_layouts_and_rejects_gaps() {
        let mut empty = ChunkCheck::new(Op::Fetch, "n", 0, None);
        empty.finish().unwrap();
        empty.accept(0, 0).unwrap();
        empty.finish().unwrap();

        let mut trailing = ChunkCheck::new(Op::Fetch, "n", 10, None);
        trailing.accept(0, 10).unwrap();
        trailing.accept(10, 0).unwrap();
        trailing.finish().unwrap();

        let mut gap = ChunkCheck::new(Op::Fetch, "n", 20, None);
        gap.accept(0, 5).unwrap();
        assert!(gap.accept(10, 5).unwrap_err().to_string().contains("gap"));

        let mut short = ChunkCheck::new(Op::Fetch, "n", 20, None);
        short.accept(0, 5).unwrap();
        assert!(short.finish().unwrap_err().to_string().contains("5 of 20"));

        let range = Some(ByteRange {
            start: 70_000,
            end: 70_009,
        });
        let mut ranged = ChunkCheck::new(Op::Fetch, "n", 200_000, range);
        ranged.accept(65_535, 65_535).unwrap();
        ranged.finish().unwrap();
        let mut late = ChunkCheck::new(Op::Fetch, "n", 200_000, range);
        assert!(late.accept(131_070, 10).is_err());
    }

    #[test]
    fn range_slices_cut_chunks_exactly() {
        let range = ByteRange { start: 5, end: 14 };
        assert_eq!(range.slice(0, b"0123456789"), b"56789");
        assert_eq!(range.slice(10, b"abcdefghij"), b"abcde");
        assert_eq!(range.slice(20, b"xyz"), b"");
        assert_eq!(range.len(), 10);
    }
}
