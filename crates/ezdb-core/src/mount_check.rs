//! Consistency check of an eZDFS site: metadata rows against the files on the mount, both ways
//! (what legacy `dfscleanup.php -S` and `-B` look at), without legacy's destructive mistakes
//! (eZDFS spec 7.1, 7.7).
//!
//! Rows are read per table in `name_hash` order, a batch at a time after the last key seen, until
//! a batch comes back empty; the mount is walked directory by directory in name order. Nothing
//! is acted on that may be work in progress: `.generating` rows younger than the generation
//! timeout, files younger than the grace period (temporary files of writers among them), the
//! quarantine directory, NFS `.nfs*` silly-rename files, and files whose row is in the other
//! table. Soft-deleted rows are "to purge", not missing.
//!
//! The only repair moves a file without a row (or a writer's leftover temporary file) to `<mount>/.ezdb-quarantine/<run>/<name>` after
//! re-checking, under the row lock of its table (and of the other table), that no row appeared
//! and the file is still the one the check saw. A live row without its file is only reported:
//! its bytes may still be restored from a backup.

use crate::cluster::Cluster;
use crate::db::done;
use crate::error::{Error, Op, Result};
use crate::mount::is_mount_temp_name;
use crate::name::{name_hash, FileName, GENERATING_SUFFIX};
use sqlx::Executor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Directory on the mount (directly under it) where a repair moves files without a row.
pub const MOUNT_QUARANTINE_DIR: &str = ".ezdb-quarantine";
/// Default grace period: files younger than this may belong to a write still in progress.
pub const DEFAULT_MOUNT_GRACE: Duration = Duration::from_secs(3600);

/// Rows read per statement, and files looked up per statement.
const BATCH: usize = 500;

/// Settings of [`Cluster::check_mount`].
#[derive(Debug, Clone)]
pub struct MountCheckOptions {
    /// Files modified more recently than this are never reported or moved.
    pub grace: Duration,
}

impl Default for MountCheckOptions {
    fn default() -> Self {
        MountCheckOptions {
            grace: DEFAULT_MOUNT_GRACE,
        }
    }
}

/// One disagreement between the rows and the mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountProblem {
    /// A live row whose file is not on the mount: reads report the name as not found.
    MissingFile {
        table: String,
        name: String,
        size: u64,
        mtime: i64,
    },
    /// A soft-deleted row (negative mtime or `expired = 1`): waiting for a purge, not missing.
    ToPurge {
        table: String,
        name: String,
        mtime: i64,
        file_present: bool,
    },
    /// A live row whose file holds another number of bytes: reads fail as an integrity error.
    SizeMismatch {
        table: String,
        name: String,
        row_size: u64,
        file_size: u64,
    },
    /// A row in the table the name does not belong to: legacy nodes never find it.
    WrongTable {
        table: String,
        expected: String,
        name: String,
    },
    /// A `.generating` lock older than the generation timeout: its process is gone; the next
    /// generator takes it over.
    StaleLock { table: String, name: String, age_secs: i64 },
    /// A file on the mount without a row in either table (what `dfscleanup -B` finds).
    OrphanFile {
        name: String,
        size: u64,
        modified: i64,
        inode: u64,
    },
    /// A temporary file of a write, purge or rename that was killed (`.ezdb-tmp.*`,
    /// `.ezdb-old.*`, `.ezdb-purge.*`, legacy `ezfile-tmp.*`), older than the grace period.
    /// A `.ezdb-purge.*` or `.ezdb-old.*` file may hold the only bytes of a row reported as
    /// missing-file beside it.
    LeftoverTemp {
        name: String,
        size: u64,
        modified: i64,
        inode: u64,
    },
}

/// What the check passed over on purpose, by reason: not problems.
pub type MountSkipped = BTreeMap<&'static str, u64>;

/// Result of [`Cluster::check_mount`].
#[derive(Debug, Clone, Default)]
pub struct MountReport {
    pub problems: Vec<MountProblem>,
    pub skipped: MountSkipped,
    pub rows_checked: u64,
    pub files_checked: u64,
}

/// What [`Cluster::repair_mount`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The file was moved here (nothing was unlinked).
    Quarantined(PathBuf),
    /// A row appeared or the file changed since the check: left alone.
    Changed,
    /// Reported only: a person decides (restore the bytes, purge, re-store).
    ReportOnly,
}

impl MountProblem {
    pub fn kind(&self) -> &'static str {
        match self {
            MountProblem::MissingFile { .. } => "missing-file",
            MountProblem::ToPurge { .. } => "to-purge",
            MountProblem::SizeMismatch { .. } => "size-mismatch",
            MountProblem::WrongTable { .. } => "wrong-table",
            MountProblem::StaleLock { .. } => "stale-lock",
            MountProblem::OrphanFile { .. } => "orphan-file",
            MountProblem::LeftoverTemp { .. } => "leftover-temp",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            MountProblem::MissingFile { name, .. }
            | MountProblem::ToPurge { name, .. }
            | MountProblem::SizeMismatch { name, .. }
            | MountProblem::WrongTable { name, .. }
            | MountProblem::StaleLock { name, .. }
            | MountProblem::OrphanFile { name, .. }
            | MountProblem::LeftoverTemp { name, .. } => name,
        }
    }

    /// True for states that need no repair by the check: soft-deleted rows (a purge removes
    /// them) and abandoned locks (the next generator takes them over).
    pub fn is_note(&self) -> bool {
        matches!(self, MountProblem::ToPurge { .. } | MountProblem::StaleLock { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            MountProblem::MissingFile { table, name, size, .. } => {
                format!("{name}: live row in {table} ({size} bytes) but no file on the mount")
            }
            MountProblem::ToPurge {
                table,
                name,
                file_present,
                ..
            } => {
                let file = if *file_present { "file present" } else { "no file" };
                format!("{name}: deleted row in {table} ({file}), waiting for a purge")
            }
            MountProblem::SizeMismatch {
                table,
                name,
                row_size,
                file_size,
            } => format!("{name}: row in {table} says {row_size} bytes, the file holds {file_size}"),
            MountProblem::WrongTable { table, expected, name } => {
                format!("{name}: row in {table}, but the name belongs to {expected}")
            }
            MountProblem::StaleLock { table, name, age_secs } => {
                format!("{name}: generation lock in {table} abandoned {age_secs} s ago")
            }
            MountProblem::OrphanFile { name, size, .. } => {
                format!("{name}: file on the mount ({size} bytes) has no row")
            }
            MountProblem::LeftoverTemp { name, size, .. } => {
                format!("{name}: temporary file ({size} bytes) left by a write that did not finish")
            }
        }
    }

    /// What a repair does (`--repair`), or why it does nothing.
    pub fn plan(&self) -> String {
        match self {
            MountProblem::OrphanFile { .. } | MountProblem::LeftoverTemp { .. } => {
                format!("move the file to <mount>/{MOUNT_QUARANTINE_DIR}/ (nothing is unlinked)")
            }
            MountProblem::MissingFile { .. } => {
                "nothing: restore the file from a backup (or from a leftover-temp file \
                 beside it), or delete the name (`ezcache`/the API) if it is gone"
                    .into()
            }
            MountProblem::ToPurge { .. } => "nothing: `ezcache --purge` removes it".into(),
            MountProblem::SizeMismatch { .. } => {
                "nothing: re-store the file, or restore the bytes the row describes".into()
            }
            MountProblem::WrongTable { .. } => "nothing: check the CacheDir/StorageDir settings of every node".into(),
            MountProblem::StaleLock { .. } => "nothing: the next generation takes the lock over".into(),
        }
    }
}

type RowTuple = (String, String, u64, i64, i64);

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// How the walk treats a name on the mount.
#[derive(Debug, PartialEq, Eq)]
enum Walked {
    /// An ordinary name: a file is looked up in the tables, a directory walked.
    Plain,
    /// A temporary file of a writer: reported when older than the grace period.
    Temp,
    /// Passed over, with the reason.
    Skip(&'static str),
}

fn walked(relative: &Path, file_name: &str) -> Walked {
    if relative == Path::new(MOUNT_QUARANTINE_DIR) {
        Walked::Skip("quarantine")
    } else if file_name.starts_with(".nfs") {
        Walked::Skip("nfs-file")
    } else if is_mount_temp_name(file_name) || file_name.starts_with("ezfile-tmp.") {
        Walked::Temp
    } else {
        Walked::Plain
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

fn not_dfs() -> Error {
    Error::Config("the mount check needs the eZDFS layout (--layout=dfs --mount-point=DIR)".into())
}

impl Cluster {
    /// Compares every row of the eZDFS tables with the mount and every file on the mount with
    /// the rows. Changes nothing.
    pub async fn check_mount(&self, options: &MountCheckOptions) -> Result<MountReport> {
        let dfs = self.inner.dfs.as_ref().ok_or_else(not_dfs)?;
        let mut report = MountReport::default();
        let now = self.now();
        let stale_before = now - self.config().generation_timeout.as_secs() as i64;
        let young_after = unix_secs(SystemTime::now()) - options.grace.as_secs() as i64;
        for table in dfs.layout.tables() {
            let sql = format!(
                "SELECT CAST(name_hash AS CHAR), name, CAST(size AS UNSIGNED), CAST(mtime AS SIGNED), \
                 CAST(expired AS SIGNED) FROM {table} WHERE name_hash > ? ORDER BY name_hash LIMIT {BATCH}"
            );
            let mut after = String::new();
            loop {
                let sql = &sql;
                let key = &after;
                let rows: Vec<RowTuple> = self
                    .inner
                    .db
                    .retrying(Op::List, "mount check", |mut conn| async move {
                        let rows = sqlx::query_as(sql).bind(key).fetch_all(&mut *conn).await;
                        done(conn, rows.map_err(Into::into))
                    })
                    .await?;
                let Some(last) = rows.last() else { break };
                after = last.0.clone();
                for (_, name, size, mtime, expired) in rows {
                    report.rows_checked += 1;
                    let expected = dfs.layout.table_for(&name);
                    if expected != table {
                        report.problems.push(MountProblem::WrongTable {
                            table: table.to_owned(),
                            expected: expected.to_owned(),
                            name,
                        });
                        continue;
                    }
                    if name.ends_with(GENERATING_SUFFIX) {
                        if mtime.abs() >= stale_before {
                            *report.skipped.entry("young-generating-row").or_default() += 1;
                        } else {
                            report.problems.push(MountProblem::StaleLock {
                                table: table.to_owned(),
                                name,
                                age_secs: now - mtime.abs(),
                            });
                        }
                        continue;
                    }
                    let Some(path) = FileName::new(&name).ok().and_then(|n| dfs.mount.path_of(&n).ok()) else {
                        // Absolute, `..` or otherwise refused: legacy would read outside the mount, ezdb never does.
                        *report.skipped.entry("unsafe-name").or_default() += 1;
                        continue;
                    };
                    let file = std::fs::symlink_metadata(&path).ok().filter(|m| m.is_file());
                    if mtime < 0 || expired != 0 {
                        report.problems.push(MountProblem::ToPurge {
                            table: table.to_owned(),
                            name,
                            mtime,
                            file_present: file.is_some(),
                        });
                        continue;
                    }
                    match file {
                        None => report.problems.push(MountProblem::MissingFile {
                            table: table.to_owned(),
                            name,
                            size,
                            mtime,
                        }),
                        Some(meta) if meta.len() != size => {
                            let modified = meta.modified().map(unix_secs).unwrap_or(0);
                            if modified > young_after {
                                *report.skipped.entry("young-file").or_default() += 1;
                            } else {
                                report.problems.push(MountProblem::SizeMismatch {
                                    table: table.to_owned(),
                                    name,
                                    row_size: size,
                                    file_size: meta.len(),
                                });
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        let mut pending = Vec::new();
        let mut dirs = vec![PathBuf::new()];
        while let Some(dir) = dirs.pop() {
            let full = dfs.mount.root().join(&dir);
            let entries = std::fs::read_dir(&full).map_err(|e| Error::io(Op::List, "mount check", &full, e))?;
            let mut names: Vec<(String, std::fs::FileType)> = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(Op::List, "mount check", &full, e))?;
                let Ok(kind) = entry.file_type() else { continue };
                names.push((entry.file_name().to_string_lossy().into_owned(), kind));
            }
            names.sort_by(|a, b| a.0.cmp(&b.0));
            // Reverse so that popping visits subdirectories in name order.
            for (file_name, kind) in names.into_iter().rev() {
                let relative = dir.join(&file_name);
                let treat = walked(&relative, &file_name);
                if let Walked::Skip(reason) = treat {
                    *report.skipped.entry(reason).or_default() += 1;
                    continue;
                }
                if kind.is_dir() {
                    dirs.push(relative);
                    continue;
                }
                if !kind.is_file() {
                    *report.skipped.entry("not-a-regular-file").or_default() += 1;
                    continue;
                }
                let Ok(meta) = std::fs::symlink_metadata(dfs.mount.root().join(&relative)) else {
                    continue; // gone since the listing
                };
                report.files_checked += 1;
                let modified = meta.modified().map(unix_secs).unwrap_or(0);
                if modified > young_after {
                    *report.skipped.entry("young-file").or_default() += 1;
                    continue;
                }
                let Some(name) = relative.to_str().map(|s| s.replace('\\', "/")) else {
                    *report.skipped.entry("non-utf8-name").or_default() += 1;
                    continue;
                };
                if treat == Walked::Temp {
                    report.problems.push(MountProblem::LeftoverTemp {
                        name,
                        size: meta.len(),
                        modified,
                        inode: inode(&meta),
                    });
                    continue;
                }
                pending.push((name, meta.len(), modified, inode(&meta)));
                if pending.len() >= BATCH {
                    self.judge_files(std::mem::take(&mut pending), &mut report).await?;
                }
            }
        }
        self.judge_files(pending, &mut report).await?;
        Ok(report)
    }

    /// Looks up a batch of mount files in both tables: a row in the name's table (live or
    /// deleted) settles it; a row only in the other table is passed over; no row is an orphan.
    async fn judge_files(&self, files: Vec<(String, u64, i64, u64)>, report: &mut MountReport) -> Result<()> {
        let dfs = self.inner.dfs.as_ref().ok_or_else(not_dfs)?;
        if files.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = files.iter().map(|f| name_hash(&f.0)).collect();
        let mut found: BTreeMap<&str, std::collections::BTreeSet<String>> = BTreeMap::new();
        for table in dfs.layout.tables() {
            let marks = vec!["?"; hashes.len()].join(",");
            let sql = format!("SELECT CAST(name_hash AS CHAR) FROM {table} WHERE name_hash IN ({marks})");
            let (sql, hashes) = (&sql, &hashes);
            let keys: Vec<String> = self
                .inner
                .db
                .retrying(Op::List, "mount check", |mut conn| async move {
                    let mut query = sqlx::query_scalar(sql);
                    for h in hashes {
                        query = query.bind(h);
                    }
                    let keys = query.fetch_all(&mut *conn).await;
                    done(conn, keys.map_err(Into::into))
                })
                .await?;
            found
                .entry(table)
                .or_default()
                .extend(keys.into_iter().map(|k| k.to_ascii_lowercase()));
        }
        for ((name, size, modified, inode), hash) in files.into_iter().zip(hashes) {
            let own = dfs.layout.table_for(&name);
            if found.get(own).is_some_and(|keys| keys.contains(&hash)) {
                continue;
            }
            if found.values().any(|keys| keys.contains(&hash)) {
                *report.skipped.entry("row-in-other-table").or_default() += 1;
                continue;
            }
            report.problems.push(MountProblem::OrphanFile {
                name,
                size,
                modified,
                inode,
            });
        }
        Ok(())
    }

    /// Repairs one problem of [`Cluster::check_mount`]: an orphan file is moved to the
    /// quarantine directory of the mount, after locking its key in both tables (REPEATABLE READ,
    /// so the lock also holds off an insert of that name until the move is done) and checking
    /// that no row appeared and the file is the one the check saw. Everything else is reported only.
    pub async fn repair_mount(&self, problem: &MountProblem) -> Result<MountOutcome> {
        let dfs = self.inner.dfs.as_ref().ok_or_else(not_dfs)?;
        let run = unix_secs(SystemTime::now());
        let quarantined = |name: &str| {
            dfs.mount
                .root()
                .join(MOUNT_QUARANTINE_DIR)
                .join(format!("{run}.{}", std::process::id()))
                .join(name)
        };
        let same_file = |path: &Path, size: u64, modified: i64, seen_inode: u64| {
            std::fs::symlink_metadata(path).ok().is_some_and(|m| {
                m.is_file()
                    && m.len() == size
                    && m.modified().map(unix_secs).unwrap_or(0) == modified
                    && inode(&m) == seen_inode
            })
        };
        if let MountProblem::LeftoverTemp {
            name,
            size,
            modified,
            inode: seen_inode,
        } = problem
        {
            // A temporary name never has a row: no lock to take, only the file to re-check.
            let (source, target) = (dfs.mount.root().join(name), quarantined(name));
            if !same_file(&source, *size, *modified, *seen_inode) {
                return Ok(MountOutcome::Changed);
            }
            move_to_quarantine(&source, &target).map_err(|e| Error::io(Op::Delete, name, &target, e))?;
            return Ok(MountOutcome::Quarantined(target));
        }
        let MountProblem::OrphanFile {
            name,
            size,
            modified,
            inode: seen_inode,
        } = problem
        else {
            return Ok(MountOutcome::ReportOnly);
        };
        let source = dfs.mount.root().join(name);
        let target = quarantined(name);
        let hash = name_hash(name);
        let tables = dfs.layout.tables();
        let (hash, tables, source, target, same_file) = (&hash, &tables, &source, &target, &same_file);
        self.inner
            .db
            .retrying(Op::Delete, name, |mut conn| async move {
                let result = async {
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
                    conn.begin().await?;
                    for table in tables {
                        let sql = format!("SELECT 1 FROM {table} WHERE name_hash = ? FOR UPDATE");
                        let row: Option<i32> = sqlx::query_scalar(&sql).bind(hash).fetch_optional(&mut *conn).await?;
                        if row.is_some() {
                            conn.commit().await?;
                            return Ok(MountOutcome::Changed);
                        }
                    }
                    if !same_file(source, *size, *modified, *seen_inode) {
                        conn.commit().await?;
                        return Ok(MountOutcome::Changed);
                    }
                    let moved = move_to_quarantine(source, target);
                    conn.commit().await?;
                    moved.map_err(|e| Error::io(Op::Delete, name, target, e))?;
                    Ok(MountOutcome::Quarantined(target.clone()))
                }
                .await;
                done(conn, result)
            })
            .await
    }
}

/// Renames `source` to `target` (same filesystem: the quarantine is on the mount), never over
/// an existing file.
fn move_to_quarantine(source: &Path, target: &Path) -> std::io::Result<()> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if target.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a quarantined file of this name exists already",
        ));
    }
    std::fs::rename(source, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::MOUNT_TEMP_PREFIX;

    #[test]
    fn temporary_names_are_judged_by_age_and_the_quarantine_is_passed_over() {
        let at = |p: &str| walked(Path::new(p), Path::new(p).file_name().unwrap().to_str().unwrap());
        assert_eq!(at("var/s/.ezdb-tmp.x.jpg.1.2"), Walked::Temp);
        assert_eq!(at("var/s/.ezdb-purge.x.jpg.1.2"), Walked::Temp);
        assert_eq!(at("var/s/ezfile-tmp.abc"), Walked::Temp);
        assert_eq!(at(MOUNT_QUARANTINE_DIR), Walked::Skip("quarantine"));
        assert_eq!(at("var/.nfs000123"), Walked::Skip("nfs-file"));
        assert_eq!(at("var/s/x.jpg"), Walked::Plain);
        assert!(MOUNT_QUARANTINE_DIR.starts_with(MOUNT_TEMP_PREFIX));
    }
}
