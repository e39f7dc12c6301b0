//! What the connected server and database offer, read once at connect (and again after
//! [`Cluster::install_schema`](crate::Cluster::install_schema)): the packet limit that sizes every
//! statement, and which of ezdb's optional tables exist. A legacy database has only `ezdbfile`
//! and `ezdbfile_data`; everything works on it, and the optional tables only add what they add.

use crate::config::MAX_CHUNK_SIZE;
use sqlx::mysql::MySqlConnection;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Bytes of a chunk INSERT besides the chunk data: header, hash, offset, parameter types.
const STATEMENT_OVERHEAD: u64 = 1024;
/// Room left below `max_allowed_packet`, for the server's own framing.
const PACKET_MARGIN: u64 = 16 * 1024;

/// The capabilities of one cluster database, shared by every connection of a handle.
#[derive(Debug, Default)]
pub(crate) struct Capabilities {
    /// `ezdbfile_expiry` exists: global expiry keys without the legacy `expiry.php`.
    expiry_table: AtomicBool,
    /// The server's `max_allowed_packet`: no statement we send may be larger.
    max_allowed_packet: AtomicU64,
    /// The narrowest character set of the `name` columns of the metadata tables (a
    /// [`NameCharset`] as u8).
    name_charset: AtomicU8,
}

/// What the `name` column can hold: a text it cannot hold is in no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum NameCharset {
    /// utf8mb4 or anything not known to be narrower.
    Any = 0,
    /// utf8 / utf8mb3: no character outside the Basic Multilingual Plane.
    Utf8mb3 = 1,
    /// latin1 (cp1252 on MariaDB and MySQL).
    Latin1 = 2,
}

impl NameCharset {
    fn of(name: &str) -> NameCharset {
        match name {
            "utf8" | "utf8mb3" => NameCharset::Utf8mb3,
            "latin1" => NameCharset::Latin1,
            _ => NameCharset::Any,
        }
    }

    /// The one of two that holds fewer characters (latin1 < utf8mb3 < anything else).
    fn narrower(self, other: NameCharset) -> NameCharset {
        match (self, other) {
            (NameCharset::Latin1, _) | (_, NameCharset::Latin1) => NameCharset::Latin1,
            (NameCharset::Utf8mb3, _) | (_, NameCharset::Utf8mb3) => NameCharset::Utf8mb3,
            (NameCharset::Any, NameCharset::Any) => NameCharset::Any,
        }
    }

    /// Whether every character of `text` fits the column.
    pub(crate) fn holds(self, text: &str) -> bool {
        // The characters cp1252 puts at 0x80-0x9F, beside the Latin-1 range.
        const CP1252_EXTRAS: &str = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ";
        match self {
            NameCharset::Any => true,
            NameCharset::Utf8mb3 => text.chars().all(|c| (c as u32) <= 0xFFFF),
            NameCharset::Latin1 => text.chars().all(|c| (c as u32) <= 0xFF || CP1252_EXTRAS.contains(c)),
        }
    }
}

impl Capabilities {
    /// Reads the limits, the optional tables, and the character set of the `name` column of
    /// `name_tables` (the layout's metadata tables) from the server.
    pub(crate) async fn detect(&self, conn: &mut MySqlConnection, name_tables: &[&str]) -> Result<(), sqlx::Error> {
        let (packet, expiry_tables): (u64, i64) = sqlx::query_as(
            "SELECT CAST(@@max_allowed_packet AS UNSIGNED),
                    (SELECT COUNT(*) FROM information_schema.TABLES
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ezdbfile_expiry')",
        )
        .fetch_one(&mut *conn)
        .await?;
        let mut charset = NameCharset::Any;
        for table in name_tables {
            let name: Option<String> = sqlx::query_scalar(
                "SELECT CAST(CHARACTER_SET_NAME AS CHAR) FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'name'",
            )
            .bind(table)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
            charset = charset.narrower(NameCharset::of(name.as_deref().unwrap_or("")));
        }
        self.max_allowed_packet.store(packet, Ordering::Relaxed);
        self.expiry_table.store(expiry_tables > 0, Ordering::Relaxed);
        self.name_charset.store(charset as u8, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn has_expiry_table(&self) -> bool {
        self.expiry_table.load(Ordering::Relaxed)
    }

    pub(crate) fn name_charset(&self) -> NameCharset {
        match self.name_charset.load(Ordering::Relaxed) {
            1 => NameCharset::Utf8mb3,
            2 => NameCharset::Latin1,
            _ => NameCharset::Any,
        }
    }

    pub(crate) fn max_allowed_packet(&self) -> u64 {
        self.max_allowed_packet.load(Ordering::Relaxed)
    }

    /// How many chunks of `chunk_size` bytes one INSERT may carry: at most `wanted`, and as many
    /// as fit the server's packet limit (1 when even two would not). `None` when not even one
    /// chunk fits: the server refuses every statement that would carry it.
    pub(crate) fn chunks_per_statement(&self, chunk_size: usize, wanted: usize) -> Option<usize> {
        chunks_fitting(self.max_allowed_packet(), chunk_size, wanted)
    }
}

fn chunks_fitting(packet: u64, chunk_size: usize, wanted: usize) -> Option<usize> {
    let per_chunk = chunk_size.clamp(1, MAX_CHUNK_SIZE) as u64 + STATEMENT_OVERHEAD;
    let room = packet.saturating_sub(PACKET_MARGIN);
    match room / per_chunk {
        0 if packet >= per_chunk => Some(1),
        0 => None,
        fit => Some((fit as usize).min(wanted.max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::chunks_fitting;

    #[test]
    fn statements_follow_the_packet_limit() {
        // The 16 MiB default keeps the configured 16 chunks; 1 MiB servers get 15; 64 KiB one.
        assert_eq!(chunks_fitting(16 << 20, 65_535, 16), Some(16));
        assert_eq!(chunks_fitting(1 << 20, 65_535, 16), Some(15));
        assert_eq!(chunks_fitting(80 * 1024, 65_535, 16), Some(1));
        assert_eq!(chunks_fitting(32 * 1024, 65_535, 16), None);
        assert_eq!(chunks_fitting(32 * 1024, 8192, 16), Some(1));
    }
}
