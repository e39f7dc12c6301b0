//! Consistency check of the cluster tables (the checkdbfiles step legacy never had): what can be
//! wrong with rows and chunks, how each is found, and the repair of each that never loses a byte.
//!
//! Every repair re-reads its row and chunks under lock (`SELECT ... FOR UPDATE`) inside the
//! transaction that changes them, acts only when it finds exactly the problem the check found,
//! and identifies rows by their stored `name_hash`. What it removes goes to the quarantine
//! first (see `quarantine.rs`), from which [`Cluster::restore`] brings it back.

use crate::cluster::Cluster;
use crate::db::{done, Conn};
use crate::error::{Error, Op, Result};
use crate::name::{clean_path, name_hash, name_trunk, FileName, GENERATING_SUFFIX};
use crate::quarantine::{self, Removal};
use crate::retry::{classify, Transient};
use crate::store::refused_label;
use sqlx::mysql::MySqlConnection;
use sqlx::Executor;
use std::collections::{BTreeMap, BTreeSet};

/// One stored chunk: where it starts and how many bytes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub len: u64,
}

/// What is wrong with the chunks of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Bytes `[at, next)` have no chunk.
    Gap { at: u64, next: u64 },
    /// The chunk at `offset` starts before `at`, the end of the bytes before it.
    Overlap { at: u64, offset: u64 },
    /// The chunk at `offset` is not on the file's chunk grid (a multiple of its chunk size).
    OffGrid { offset: u64 },
    /// A chunk shorter than the chunk size that is not the file's last.
    ShortChunk { offset: u64, len: u64 },
    /// A chunk at or after the end the metadata gives (other than one empty trailing chunk).
    BeyondEnd { offset: u64, len: u64 },
    /// The chunks hold another number of bytes than the metadata size.
    Total { size: u64, chunk_bytes: u64 },
}

impl Fault {
    fn describe(&self) -> String {
        match self {
            Fault::Gap { at, next } => format!("gap of {} bytes at {at}", next - at),
            Fault::Overlap { at, offset } => format!("chunk at {offset} overlaps the bytes before {at}"),
            Fault::OffGrid { offset } => format!("chunk at {offset} is off the chunk grid"),
            Fault::ShortChunk { offset, len } => format!("short chunk ({len} bytes) at {offset} before the end"),
            Fault::BeyondEnd { offset, len } => format!("chunk of {len} bytes at {offset}, beyond the end"),
            Fault::Total { size, chunk_bytes } => format!("metadata says {size} bytes, chunks hold {chunk_bytes}"),
        }
    }
}

/// How a damaged layout is repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutFix {
    /// Readable as it is, by this library and by legacy nodes: nothing to do.
    Nothing,
    /// The chunks from 0 form the complete file: keep them, set the size to what they hold (if
    /// `size` is given) and move the other chunks (`remove`) to the quarantine.
    Mend { size: Option<u64>, remove: Vec<u64> },
    /// Bytes are missing: the file cannot be read whatever is done. The row and its chunks
    /// move to the quarantine, so the name is free to be uploaded or regenerated.
    SetAside,
}

/// One inconsistency found in the tables. Rows are identified by their stored `name_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The chunks of a file cannot be read as one contiguous run of `size` bytes (or are off the
    /// chunk grid). `chunks` is the layout the check saw: a repair acts only on that layout.
    Layout {
        name: String,
        stored_hash: String,
        size: u64,
        mtime: i64,
        chunks: Vec<Chunk>,
        faults: Vec<Fault>,
        fix: LayoutFix,
    },
    /// `name_hash` is not the md5 of `name`: lookups by name never find the row. When
    /// `duplicate`, a row under md5(name) exists, and this one is an unreachable copy.
    HashMismatch {
        name: String,
        stored_hash: String,
        duplicate: bool,
    },
    /// Chunks whose metadata row is gone (only possible without the foreign key).
    OrphanChunks { stored_hash: String, offsets: Vec<u64> },
    /// `expired` disagrees with the sign of `mtime`.
    ExpiredFlag {
        name: String,
        stored_hash: String,
        mtime: i64,
        expired: bool,
    },
    /// `name_trunk` is not what the name and scope give.
    WrongTrunk {
        name: String,
        stored_hash: String,
        scope: String,
        trunk: String,
        expected: String,
    },
    /// A `.generating` lock older than the generation timeout: its process is gone.
    StaleLock {
        name: String,
        stored_hash: String,
        mtime: i64,
        age_secs: i64,
    },
    /// A name the API cannot reach (not clean, empty, NUL, too long): needs a person.
    UncleanName {
        name: String,
        stored_hash: String,
        reason: String,
    },
    /// A scope or datatype a store would refuse: needs a person.
    RefusedLabel {
        name: String,
        stored_hash: String,
        what: &'static str,
        value: String,
        reason: String,
    },
}

/// What [`Cluster::repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Repaired; what was removed is in the quarantine under this id (if anything was).
    Repaired { quarantine: Option<u64> },
    /// The row or chunks changed since the check (an upload, another repair): nothing done.
    Changed,
    /// Only a person can decide (see [`Problem::plan`]): nothing done.
    NeedsDecision,
    /// A writer held the row through every attempt (a long upload): nothing done, check again.
    Busy,
}

impl Problem {
    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            Problem::Layout { name, faults, .. } => {
                let faults: Vec<String> = faults.iter().map(Fault::describe).collect();
                format!("{name}: {}", faults.join("; "))
            }
            Problem::HashMismatch {
                name,
                stored_hash,
                duplicate,
            } => {
                let dup = if *duplicate {
                    " (a row under md5(name) exists)"
                } else {
                    ""
                };
                format!("{name}: name_hash {stored_hash} is not md5(name){dup}")
            }
            Problem::OrphanChunks { stored_hash, offsets } => {
                format!("{} chunk(s) of {stored_hash} have no metadata row", offsets.len())
            }
            Problem::ExpiredFlag {
                name, mtime, expired, ..
            } => format!("{name}: expired = {expired} but mtime = {mtime}"),
            Problem::WrongTrunk {
                name, trunk, expected, ..
            } => format!("{name}: name_trunk {trunk:?}, expected {expected:?}"),
            Problem::StaleLock { name, age_secs, .. } => format!("{name}: generation lock abandoned {age_secs} s ago"),
            Problem::UncleanName { name, reason, .. } => format!("{name:?}: {reason}"),
            Problem::RefusedLabel {
                name,
                what,
                value,
                reason,
                ..
            } => format!("{name}: {what} {value:?} {reason}"),
        }
    }

    /// The kind, for counting and machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Layout { .. } => "layout",
            Problem::HashMismatch { .. } => "hash-mismatch",
            Problem::OrphanChunks { .. } => "orphan-chunks",
            Problem::ExpiredFlag { .. } => "expired-flag",
            Problem::WrongTrunk { .. } => "wrong-trunk",
            Problem::StaleLock { .. } => "stale-lock",
            Problem::UncleanName { .. } => "unclean-name",
            Problem::RefusedLabel { .. } => "refused-label",
        }
    }

    /// The stored key of the row (or chunks) concerned.
    pub fn stored_hash(&self) -> &str {
        match self {
            Problem::Layout { stored_hash, .. }
            | Problem::HashMismatch { stored_hash, .. }
            | Problem::OrphanChunks { stored_hash, .. }
            | Problem::ExpiredFlag { stored_hash, .. }
            | Problem::WrongTrunk { stored_hash, .. }
            | Problem::StaleLock { stored_hash, .. }
            | Problem::UncleanName { stored_hash, .. }
            | Problem::RefusedLabel { stored_hash, .. } => stored_hash,
        }
    }

    /// True when nothing needs doing: the file reads fine everywhere (an off-grid but
    /// contiguous layout, as a legacy node with another chunk size writes).
    pub fn is_note(&self) -> bool {
        matches!(
            self,
            Problem::Layout {
                fix: LayoutFix::Nothing,
                ..
            }
        )
    }

    /// Exactly what a repair of this problem does, as the report says it (`--dry-run`).
    pub fn plan(&self) -> String {
        match self {
            Problem::Layout { fix, .. } => match fix {
                LayoutFix::Nothing => "nothing: the file is readable as stored".into(),
                LayoutFix::Mend { size, remove } => {
                    let mut steps = Vec::new();
                    if let Some(size) = size {
                        steps.push(format!("set size to {size}, the bytes of its complete chunks"));
                    }
                    if !remove.is_empty() {
                        let offsets: Vec<String> = remove.iter().map(u64::to_string).collect();
                        steps.push(format!("move the chunk(s) at {} to the quarantine", offsets.join(", ")));
                    }
                    format!("{}; the file then reads its complete bytes", steps.join(" and "))
                }
                LayoutFix::SetAside => {
                    "move the row and its chunks to the quarantine (bytes are missing; re-upload or regenerate it)"
                        .into()
                }
            },
            Problem::HashMismatch { duplicate: false, .. } => "re-key the row and its chunks to md5(name)".into(),
            Problem::HashMismatch { duplicate: true, .. } => {
                "move this unreachable copy (row and chunks) to the quarantine; the row under md5(name) stays".into()
            }
            Problem::OrphanChunks { .. } => "move the chunks to the quarantine".into(),
            Problem::ExpiredFlag { .. } => "set expired from the sign of mtime".into(),
            Problem::WrongTrunk { .. } => "set name_trunk".into(),
            Problem::StaleLock { .. } => "move the lock row (and any staged chunks) to the quarantine".into(),
            Problem::UncleanName { .. } => {
                "nothing: the name cannot be reached through the API; rename or remove it by hand".into()
            }
            Problem::RefusedLabel { .. } => "nothing: correct the label by hand (or re-store the file)".into(),
        }
    }
}

/// Reads a file's layout and returns its faults and the lossless fix. `grid` is the chunk size
/// of the configuration; a file written with another chunk size is judged by its first chunk.
pub fn analyze_layout(size: u64, chunks: &[Chunk], grid: u64) -> (Vec<Fault>, LayoutFix) {
    let grid = match chunks.first() {
        Some(first) if first.offset == 0 && chunks.len() > 1 && first.len > 0 => first.len,
        _ => grid,
    };
    let mut faults = Vec::new();
    let mut expected = 0;
    let mut total = 0;
    for (i, c) in chunks.iter().enumerate() {
        if c.offset > expected {
            faults.push(Fault::Gap {
                at: expected,
                next: c.offset,
            });
        } else if c.offset < expected {
            faults.push(Fault::Overlap {
                at: expected,
                offset: c.offset,
            });
        }
        let trailing_empty = c.len == 0 && c.offset == size && i + 1 == chunks.len();
        if c.offset >= size && !trailing_empty {
            faults.push(Fault::BeyondEnd {
                offset: c.offset,
                len: c.len,
            });
        }
        if c.offset % grid != 0 {
            faults.push(Fault::OffGrid { offset: c.offset });
        }
        if c.len < grid && c.offset + c.len < size {
            faults.push(Fault::ShortChunk {
                offset: c.offset,
                len: c.len,
            });
        }
        expected = expected.max(c.offset + c.len);
        total += c.len;
    }
    if total != size {
        faults.push(Fault::Total {
            size,
            chunk_bytes: total,
        });
    }
    let fix = fix_for(size, chunks, grid);
    (faults, fix)
}

/// Follows the chunks from offset 0, each starting where the previous ends: the only bytes a
/// reader can use. Whatever else is there is kept in the quarantine, never dropped.
fn fix_for(size: u64, chunks: &[Chunk], grid: u64) -> LayoutFix {
    let by_offset: BTreeMap<u64, u64> = chunks.iter().map(|c| (c.offset, c.len)).collect();
    let mut chain = Vec::new();
    let mut end = 0;
    while let Some(&len) = by_offset.get(&end) {
        chain.push(Chunk { offset: end, len });
        if len == 0 {
            break;
        }
        end += len;
    }
    let in_chain: BTreeSet<u64> = chain.iter().map(|c| c.offset).collect();
    let remove: Vec<u64> = chunks
        .iter()
        .map(|c| c.offset)
        .filter(|o| !in_chain.contains(o))
        .collect();
    if remove.is_empty() && end == size {
        return LayoutFix::Nothing;
    }
    if end == size {
        return LayoutFix::Mend { size: None, remove };
    }
    if end > size {
        // Legacy stores delete old chunks with `offset > size`, so a shorter new version whose
        // size is on the grid keeps the old version's chunk at exactly `size`, and nothing
        // beyond: that chunk is the stale tail. Any other run past the size is the file.
        let beyond: Vec<&Chunk> = chunks.iter().filter(|c| c.offset >= size).collect();
        let stale_tail = size > 0 && size % grid == 0 && beyond.len() == 1 && beyond[0].offset == size;
        if stale_tail {
            let mut remove = remove;
            remove.push(size);
            remove.sort_unstable();
            return LayoutFix::Mend { size: None, remove };
        }
        return LayoutFix::Mend {
            size: Some(end),
            remove,
        };
    }
    // end < size: complete only when the run ends with a short chunk (the end of a file) and no
    // chunk lies beyond it (bytes after a gap are a sign of lost ones).
    let last_is_short = chain.last().is_some_and(|c| c.len < grid);
    let bytes_after_gap = chunks.iter().any(|c| c.offset > end);
    if last_is_short && !bytes_after_gap {
        return LayoutFix::Mend {
            size: Some(end),
            remove,
        };
    }
    LayoutFix::SetAside
}

/// One metadata row as the check reads it.
#[derive(Debug, Clone)]
struct Row {
    stored_hash: String,
    name: String,
    trunk: String,
    scope: String,
    datatype: String,
    size: u64,
    mtime: i64,
    expired: bool,
}

/// The row and chunk columns every scan and re-check selects.
const ROW_COLUMNS: &str = "CAST(f.name_hash AS CHAR), CAST(f.name AS CHAR), CAST(f.name_trunk AS CHAR),
    CAST(f.scope AS CHAR), CAST(f.datatype AS CHAR), CAST(f.size AS UNSIGNED), CAST(f.mtime AS SIGNED),
    CAST(f.expired AS SIGNED)";

type RowTuple = (String, String, String, String, String, u64, i64, i64);

fn row_from(t: RowTuple) -> Row {
    Row {
        stored_hash: t.0,
        name: t.1,
        trunk: t.2,
        scope: t.3,
        datatype: t.4,
        size: t.5,
        mtime: t.6,
        expired: t.7 != 0,
    }
}

/// What the check needs to judge rows: the clock and the settings.
#[derive(Clone, Copy)]
struct Judge {
    now: i64,
    stale_before: i64,
    grid: u64,
}

impl Judge {
    /// Every problem of one row with its chunks, layout first (row-level repairs come after).
    fn problems(&self, row: &Row, chunks: Vec<Chunk>) -> Vec<Problem> {
        let mut found = Vec::new();
        let (faults, fix) = analyze_layout(row.size, &chunks, self.grid);
        if !faults.is_empty() {
            found.push(Problem::Layout {
                name: row.name.clone(),
                stored_hash: row.stored_hash.clone(),
                size: row.size,
                mtime: row.mtime,
                chunks,
                faults,
                fix,
            });
        }
        let name = || row.name.clone();
        let hash = || row.stored_hash.clone();
        if let Some(reason) = unreachable_name(&row.name) {
            found.push(Problem::UncleanName {
                name: name(),
                stored_hash: hash(),
                reason,
            });
        } else if name_hash(&row.name) != row.stored_hash {
            found.push(Problem::HashMismatch {
                name: name(),
                stored_hash: hash(),
                duplicate: false, // settled by the scan, which sees every key
            });
        }
        for (what, value) in [("scope", &row.scope), ("datatype", &row.datatype)] {
            if let Some(reason) = refused_label(what, value) {
                found.push(Problem::RefusedLabel {
                    name: name(),
                    stored_hash: hash(),
                    what,
                    value: value.clone(),
                    reason,
                });
            }
        }
        if row.expired != (row.mtime < 0) {
            found.push(Problem::ExpiredFlag {
                name: name(),
                stored_hash: hash(),
                mtime: row.mtime,
                expired: row.expired,
            });
        }
        let is_lock = row.name.ends_with(GENERATING_SUFFIX);
        let expected = name_trunk(&row.name, &row.scope);
        if !is_lock && row.trunk != expected {
            found.push(Problem::WrongTrunk {
                name: name(),
                stored_hash: hash(),
                scope: row.scope.clone(),
                trunk: row.trunk.clone(),
                expected,
            });
        }
        if is_lock && row.mtime.abs() < self.stale_before {
            found.push(Problem::StaleLock {
                name: name(),
                stored_hash: hash(),
                mtime: row.mtime,
                age_secs: self.now - row.mtime.abs(),
            });
        }
        found
    }
}

/// Why the API cannot reach a stored name, if it cannot.
fn unreachable_name(name: &str) -> Option<String> {
    if let Err(e) = FileName::new(name) {
        return Some(e.to_string());
    }
    let clean = clean_path(name);
    (clean != name).then(|| format!("not a clean path (the API reaches {clean:?} instead)"))
}

impl Cluster {
    fn judge(&self) -> Judge {
        let now = self.now();
        Judge {
            now,
            stale_before: now - self.config().generation_timeout.as_secs() as i64,
            grid: self.config().chunk_size as u64,
        }
    }

    /// The chunk check reads `ezdbfile_data`, which an eZDFS site does not have.
    fn refuse_dfs(&self, what: &str) -> Result<()> {
        if self.mount_point().is_some() {
            return Err(Error::Config(format!(
                "the chunk {what} is for the eZDB layout; on eZDFS use the mount check (`ezdb check` with the DFS \
                 layout settings, Cluster::check_mount)"
            )));
        }
        Ok(())
    }

    /// Scans the tables for every kind of [`Problem`]. Reads every chunk's offset and length,
    /// not its bytes; on a large cluster it still reads every row once.
    pub async fn check(&self) -> Result<Vec<Problem>> {
        self.refuse_dfs("check")?;
        let judge = self.judge();
        self.inner
            .db
            .retrying(Op::List, "consistency check", |mut conn| async move {
                let found = find_all(&mut conn, judge).await;
                done(conn, found.map_err(Into::into))
            })
            .await
    }

    /// Repairs one problem as [`Problem::plan`] says, after re-reading it under lock: if the
    /// row or its chunks are not exactly as the check saw them, nothing is done
    /// ([`Outcome::Changed`]).
    pub async fn repair(&self, problem: &Problem) -> Result<Outcome> {
        self.refuse_dfs("repair")?;
        if matches!(problem, Problem::UncleanName { .. } | Problem::RefusedLabel { .. }) {
            return Ok(Outcome::NeedsDecision);
        }
        if problem.is_note() {
            return Ok(Outcome::Repaired { quarantine: None });
        }
        let moves_bytes = matches!(
            problem,
            Problem::Layout { .. }
                | Problem::HashMismatch { duplicate: true, .. }
                | Problem::OrphanChunks { .. }
                | Problem::StaleLock { .. }
        );
        if moves_bytes {
            self.inner
                .db
                .retrying(Op::Delete, "repair", |conn| async move {
                    quarantine::ensure_tables(conn).await
                })
                .await?;
        }
        let judge = self.judge();
        let repaired = self
            .inner
            .db
            .retrying(Op::Delete, "repair", |mut conn| async move {
                let repaired = repair_one(&mut conn, judge, problem).await;
                done(conn, repaired.map_err(Into::into))
            })
            .await;
        match repaired {
            Err(Error::Database { source, .. }) if classify(&source) == Some(Transient::LockConflict) => {
                Ok(Outcome::Busy)
            }
            other => other,
        }
    }
}

/// Rows judged per round trip of the scan.
const SCAN_BATCH: u32 = 1000;

/// Reads every row and its chunk layout in primary-key order, `SCAN_BATCH` rows at a time (no
/// sort, no temporary table), all in one REPEATABLE READ snapshot, so a write during the scan
/// never shows as a half-changed file.
async fn find_all(conn: &mut Conn, judge: Judge) -> Result<Vec<Problem>, sqlx::Error> {
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    conn.begin().await?;
    let mut problems = Vec::new();
    let first_sql = format!("SELECT {ROW_COLUMNS} FROM ezdbfile f ORDER BY f.name_hash LIMIT {SCAN_BATCH}");
    let next_sql =
        format!("SELECT {ROW_COLUMNS} FROM ezdbfile f WHERE f.name_hash > ? ORDER BY f.name_hash LIMIT {SCAN_BATCH}");
    let mut after: Option<String> = None;
    loop {
        let rows: Vec<RowTuple> = match &after {
            None => sqlx::query_as(&first_sql).fetch_all(&mut **conn).await?,
            Some(after) => sqlx::query_as(&next_sql).bind(after).fetch_all(&mut **conn).await?,
        };
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            break;
        };
        let chunks: Vec<(String, u64, u64)> = sqlx::query_as(
            "SELECT CAST(name_hash AS CHAR), CAST(`offset` AS UNSIGNED), CAST(LENGTH(filedata) AS UNSIGNED)
             FROM ezdbfile_data WHERE name_hash >= ? AND name_hash <= ? ORDER BY name_hash, `offset`",
        )
        .bind(&first.0)
        .bind(&last.0)
        .fetch_all(&mut **conn)
        .await?;
        let mut by_hash: BTreeMap<String, Vec<Chunk>> = BTreeMap::new();
        for (hash, offset, len) in chunks {
            by_hash
                .entry(hash.to_ascii_lowercase())
                .or_default()
                .push(Chunk { offset, len });
        }
        after = Some(last.0.clone());
        for row in rows.into_iter().map(row_from) {
            let chunks = by_hash
                .remove(&row.stored_hash.to_ascii_lowercase())
                .unwrap_or_default();
            problems.extend(judge.problems(&row, chunks));
        }
    }
    for p in &mut problems {
        if let Problem::HashMismatch { name, duplicate, .. } = p {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ezdbfile WHERE name_hash = ?")
                .bind(name_hash(name))
                .fetch_one(&mut **conn)
                .await?;
            *duplicate = n > 0;
        }
    }
    problems.extend(orphans(conn, None).await?);
    conn.commit().await?;
    Ok(problems)
}

/// Chunks without a metadata row, all of them or those of one key (then locked).
async fn orphans(conn: &mut MySqlConnection, only: Option<&str>) -> Result<Vec<Problem>, sqlx::Error> {
    let rows: Vec<(String, u64)> = match only {
        None => {
            sqlx::query_as(
                "SELECT CAST(d.name_hash AS CHAR), CAST(d.`offset` AS UNSIGNED) FROM ezdbfile_data d
                 LEFT JOIN ezdbfile f ON f.name_hash = d.name_hash WHERE f.name_hash IS NULL
                 ORDER BY d.name_hash, d.`offset`",
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Some(hash) => {
            sqlx::query_as(
                "SELECT CAST(name_hash AS CHAR), CAST(`offset` AS UNSIGNED) FROM ezdbfile_data
                 WHERE name_hash = ? ORDER BY `offset` FOR UPDATE",
            )
            .bind(hash)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let mut grouped: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (hash, offset) in rows {
        grouped.entry(hash).or_default().push(offset);
    }
    Ok(grouped
        .into_iter()
        .map(|(stored_hash, offsets)| Problem::OrphanChunks { stored_hash, offsets })
        .collect())
}

/// Locks and reads one row and its chunks: the state a repair judges again.
async fn lock_row(conn: &mut MySqlConnection, stored_hash: &str) -> Result<Option<(Row, Vec<Chunk>)>, sqlx::Error> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM ezdbfile f WHERE f.name_hash = ? FOR UPDATE");
    let Some(row) = sqlx::query_as::<_, RowTuple>(&sql)
        .bind(stored_hash)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let chunks: Vec<(u64, u64)> = sqlx::query_as(
        "SELECT CAST(`offset` AS UNSIGNED), CAST(LENGTH(filedata) AS UNSIGNED) FROM ezdbfile_data
         WHERE name_hash = ? ORDER BY `offset` FOR UPDATE",
    )
    .bind(stored_hash)
    .fetch_all(&mut *conn)
    .await?;
    let chunks = chunks.into_iter().map(|(offset, len)| Chunk { offset, len }).collect();
    Ok(Some((row_from(row), chunks)))
}

/// Whether md5(name) is taken by a row (locked, so the answer holds until commit).
async fn key_taken(conn: &mut MySqlConnection, name: &str) -> Result<bool, sqlx::Error> {
    let taken: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM ezdbfile WHERE name_hash = ? FOR UPDATE")
        .bind(name_hash(name))
        .fetch_optional(&mut *conn)
        .await?;
    Ok(taken.is_some())
}

async fn repair_one(conn: &mut Conn, judge: Judge, problem: &Problem) -> Result<Outcome, sqlx::Error> {
    conn.begin().await?;
    let outcome = repair_locked(conn, judge, problem).await?;
    conn.commit().await?;
    Ok(outcome)
}

/// Inside the repair's transaction: re-read, compare with what the check saw, act.
async fn repair_locked(conn: &mut MySqlConnection, judge: Judge, problem: &Problem) -> Result<Outcome, sqlx::Error> {
    let hash = problem.stored_hash();
    if let Problem::OrphanChunks { .. } = problem {
        let has_row = lock_row(conn, hash).await?.is_some();
        let now = orphans(conn, Some(hash)).await?;
        if has_row || now.first() != Some(problem) {
            return Ok(Outcome::Changed);
        }
        let Problem::OrphanChunks { offsets, .. } = problem else {
            unreachable!("matched above")
        };
        let removal = Removal::Chunks {
            offsets,
            size_after: None,
        };
        let id = quarantine::move_out(conn, hash, None, &removal, problem.kind(), judge.now).await?;
        return Ok(Outcome::Repaired { quarantine: Some(id) });
    }
    let Some((row, chunks)) = lock_row(conn, hash).await? else {
        return Ok(Outcome::Changed);
    };
    let mut current = judge.problems(&row, chunks);
    for p in &mut current {
        if let Problem::HashMismatch { name, duplicate, .. } = p {
            *duplicate = key_taken(conn, name).await?;
        }
    }
    // Ages move on between the check and the repair: a stale lock is the same if its mtime is.
    let same = |p: &Problem| match (p, problem) {
        (Problem::StaleLock { mtime: a, .. }, Problem::StaleLock { mtime: b, .. }) => a == b,
        _ => p == problem,
    };
    if !current.iter().any(same) {
        return Ok(Outcome::Changed);
    }
    let reason = problem.kind();
    let quarantined = match problem {
        Problem::Layout { fix, size, .. } => match fix {
            LayoutFix::Nothing => None,
            LayoutFix::Mend { size: new_size, remove } => {
                let removal = Removal::Chunks {
                    offsets: remove,
                    size_after: *new_size,
                };
                let id = quarantine::move_out(conn, hash, Some(*size), &removal, reason, judge.now).await?;
                if let Some(new_size) = new_size {
                    sqlx::query("UPDATE ezdbfile SET size = ? WHERE name_hash = ?")
                        .bind(new_size)
                        .bind(hash)
                        .execute(&mut *conn)
                        .await?;
                }
                Some(id)
            }
            LayoutFix::SetAside => {
                Some(quarantine::move_out(conn, hash, Some(*size), &Removal::Row, reason, judge.now).await?)
            }
        },
        Problem::HashMismatch { duplicate: true, .. } | Problem::StaleLock { .. } => {
            Some(quarantine::move_out(conn, hash, Some(row.size), &Removal::Row, reason, judge.now).await?)
        }
        Problem::HashMismatch { name, .. } => {
            if !rekey(conn, name, hash).await? {
                return Ok(Outcome::Changed);
            }
            None
        }
        Problem::ExpiredFlag { .. } => {
            sqlx::query("UPDATE ezdbfile SET expired = (mtime < 0) WHERE name_hash = ?")
                .bind(hash)
                .execute(&mut *conn)
                .await?;
            None
        }
        Problem::WrongTrunk { expected, .. } => {
            sqlx::query("UPDATE ezdbfile SET name_trunk = ? WHERE name_hash = ?")
                .bind(expected)
                .bind(hash)
                .execute(&mut *conn)
                .await?;
            None
        }
        Problem::OrphanChunks { .. } | Problem::UncleanName { .. } | Problem::RefusedLabel { .. } => {
            return Ok(Outcome::NeedsDecision)
        }
    };
    Ok(Outcome::Repaired {
        quarantine: quarantined,
    })
}

/// Moves a row stored under a wrong hash (and its chunks) to md5(name). The caller found
/// md5(name) free; if a store takes it meanwhile (no gap lock holds it free), nothing is done
/// and false is returned.
async fn rekey(conn: &mut MySqlConnection, name: &str, stored_hash: &str) -> Result<bool, sqlx::Error> {
    let right = name_hash(name);
    let inserted = sqlx::query(
        "INSERT IGNORE INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
         SELECT datatype, name, name_trunk, ?, scope, size, mtime, expired FROM ezdbfile WHERE name_hash = ?",
    )
    .bind(&right)
    .bind(stored_hash)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE ezdbfile_data SET name_hash = ? WHERE name_hash = ?")
        .bind(&right)
        .bind(stored_hash)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM ezdbfile WHERE name_hash = ?")
        .bind(stored_hash)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(list: &[(u64, u64)]) -> Vec<Chunk> {
        list.iter().map(|&(offset, len)| Chunk { offset, len }).collect()
    }

    #[test]
    fn sound_layouts_need_nothing() {
        for (size, list) in [
            (0, vec![]),
            (0, vec![(0, 0)]),
            (10, vec![(0, 10)]),
            (20, vec![(0, 10), (10, 10), (20, 0)]),
        ] {
            let (faults, fix) = analyze_layout(size, &chunks(&list), 10);
            assert!(faults.is_empty(), "{size} {list:?}: {faults:?}");
            assert_eq!(fix, LayoutFix::Nothing);
        }
    }

    #[test]
    fn each_damage_gets_the_lossless_fix() {
        let mend = |size: Option<u64>, remove: Vec<u64>| LayoutFix::Mend { size, remove };
        // size too big by 10, short last chunk: the chunks are the file.
        assert_eq!(
            analyze_layout(35, &chunks(&[(0, 10), (10, 10), (20, 5)]), 10).1,
            mend(Some(25), vec![])
        );
        // size too small: keep every byte.
        assert_eq!(
            analyze_layout(12, &chunks(&[(0, 10), (10, 5)]), 10).1,
            mend(Some(15), vec![])
        );
        // size 0 with chunks.
        assert_eq!(
            analyze_layout(0, &chunks(&[(0, 10), (10, 5)]), 10).1,
            mend(Some(15), vec![])
        );
        // the legacy stale tail: a new version ending on the grid, the old one's chunk at its end.
        assert_eq!(
            analyze_layout(20, &chunks(&[(0, 10), (10, 10), (20, 3)]), 10).1,
            mend(None, vec![20])
        );
        // more than that beyond a size on the grid: the size is wrong, every byte stays readable.
        assert_eq!(
            analyze_layout(10, &chunks(&[(0, 10), (10, 10), (20, 3)]), 10).1,
            mend(Some(23), vec![])
        );
        // an extra overlapping chunk: every byte is still in the run from 0.
        let (faults, fix) = analyze_layout(25, &chunks(&[(0, 10), (3, 10), (10, 10), (20, 5)]), 10);
        assert!(faults.iter().any(|f| matches!(f, Fault::Overlap { .. })));
        assert!(faults.iter().any(|f| matches!(f, Fault::OffGrid { offset: 3 })));
        assert_eq!(fix, mend(None, vec![3]));
        // a lost chunk in the middle, or a lost last chunk: set aside.
        assert_eq!(
            analyze_layout(25, &chunks(&[(0, 10), (20, 5)]), 10).1,
            LayoutFix::SetAside
        );
        assert_eq!(
            analyze_layout(25, &chunks(&[(0, 10), (10, 10)]), 10).1,
            LayoutFix::SetAside
        );
        assert_eq!(analyze_layout(25, &chunks(&[]), 10).1, LayoutFix::SetAside);
        // a gap and an overlap with an unchanged total are found.
        let (faults, _) = analyze_layout(25, &chunks(&[(0, 10), (12, 10), (20, 5)]), 10);
        assert!(faults.iter().any(|f| matches!(f, Fault::Gap { at: 10, next: 12 })));
        assert!(faults.iter().any(|f| matches!(f, Fault::Overlap { .. })));
    }

    #[test]
    fn another_writers_chunk_size_is_not_a_fault() {
        let (faults, fix) = analyze_layout(25, &chunks(&[(0, 5), (5, 5), (10, 5), (15, 5), (20, 5)]), 10);
        assert!(faults.is_empty(), "{faults:?}");
        assert_eq!(fix, LayoutFix::Nothing);
    }
}
