//! `ezdb migrate`: copies every live file of one layout into another (eZDB ↔ eZDFS ↔ Ibexa
//! DFS), keeping name, scope, datatype and mtime, and verifies each copy's bytes against the
//! version it read. The source is only read, so the site keeps serving from it during the copy.
//!
//! Resumable by construction: a file whose target row already has the source's size and mtime
//! is compared byte for byte and kept when equal, so a second run (after an interruption, or
//! to catch files written during the first one) copies only what is missing or changed. A
//! target file newer than the source's is never replaced, decided under the target row's lock
//! in the store's own transaction: a node already writing to the new layout wins.

use crate::progress::Progress;
use ezdb_core::{Cluster, Error, FileMeta, ScopeFilter, StoreOptions, Stored, Visibility, GENERATING_SUFFIX};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// What happened to one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// Copied and verified.
    Copied { size: u64 },
    /// The target already held the same bytes (a previous run); verified.
    Already,
    /// Would be copied (`--dry-run`).
    WouldCopy { size: u64 },
    /// Not copied, and why (deleted or expired in the source, a generation lock, newer in the
    /// target).
    Skipped(&'static str),
}

/// Totals of a run.
#[derive(Debug, Default, Clone)]
pub struct MigrateReport {
    pub copied: u64,
    pub copied_bytes: u64,
    pub already: u64,
    pub would_copy: u64,
    pub would_copy_bytes: u64,
    pub skipped: BTreeMap<&'static str, u64>,
    /// Names whose copy failed, with the reason; the run goes on with the next name.
    pub failed: Vec<(String, String)>,
}

impl MigrateReport {
    fn add(&mut self, outcome: &Migrated) {
        match outcome {
            Migrated::Copied { size } => {
                self.copied += 1;
                self.copied_bytes += size;
            }
            Migrated::Already => self.already += 1,
            Migrated::WouldCopy { size } => {
                self.would_copy += 1;
                self.would_copy_bytes += size;
            }
            Migrated::Skipped(why) => *self.skipped.entry(why).or_default() += 1,
        }
    }
}

/// Copies every live file of `from` into `to`. `spool` is a directory of the caller's where
/// each file is staged while it is copied (one file at a time: memory stays bounded whatever
/// the file sizes). A lost connection or another error that stops every copy ends the run;
/// an error of one file is recorded and the run goes on.
pub async fn migrate(from: &Cluster, to: &Cluster, spool: &Path, dry_run: bool) -> Result<MigrateReport, String> {
    if let Err(e) = to.stat("var/ezdb-migrate-probe").await {
        return Err(format!(
            "the target's tables cannot be read ({e}); create them with `ezdb schema install` and the target's layout settings"
        ));
    }
    let names = from
        .list(&ScopeFilter::All)
        .await
        .map_err(|e| format!("cannot list the source files: {e}"))?;
    let mut progress = Progress::new(if dry_run { "planning" } else { "migrating" }, Some(names.len() as u64));
    let mut report = MigrateReport::default();
    for name in &names {
        progress.advance(1);
        match migrate_one(from, to, name, spool, dry_run).await {
            Ok(outcome) => report.add(&outcome),
            Err(Failure { fatal: true, message }) => {
                progress.finish();
                return Err(format!(
                    "stopped at {name}: {message}; run the same command again to resume (files already copied are kept)"
                ));
            }
            Err(Failure { fatal: false, message }) => report.failed.push((name.clone(), message)),
        }
    }
    progress.finish();
    Ok(report)
}

/// Why one file was not copied, and whether every following file would fail the same way
/// (no connection, a missing table, the spool directory unusable): then the run stops.
#[derive(Debug)]
struct Failure {
    fatal: bool,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let fatal = match &e {
            Error::Connect { .. } | Error::Config(_) | Error::Schema(_) => true,
            Error::Database { .. } => e.is_connection_lost(),
            Error::InvalidName { .. }
            | Error::InvalidArgument { .. }
            | Error::NotFound { .. }
            | Error::Integrity { .. }
            | Error::OutcomeUnknown { .. }
            | Error::Io { .. }
            | Error::Source { .. }
            | Error::LockLost { .. }
            | Error::GenerationTimeout { .. }
            | Error::Generate { .. } => false,
        };
        Failure {
            fatal,
            message: e.to_string(),
        }
    }
}

fn spool_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure {
        fatal: true,
        message: format!(
            "the spool file {} failed: {e}; give a writable directory with room for the largest file (--spool)",
            path.display()
        ),
    }
}

fn copy_failure(name: &str, what: &str) -> Failure {
    Failure {
        fatal: false,
        message: format!("{name}: {what}"),
    }
}

async fn migrate_one(
    from: &Cluster,
    to: &Cluster,
    name: &str,
    spool: &Path,
    dry_run: bool,
) -> Result<Migrated, Failure> {
    if name.ends_with(GENERATING_SUFFIX) {
        return Ok(Migrated::Skipped("generation-lock"));
    }
    let Some(source) = from.stat(name).await? else {
        return Ok(Migrated::Skipped("gone-from-source"));
    };
    if source.deleted || source.global_expiry.is_some() {
        return Ok(Migrated::Skipped("deleted-or-expired-in-source"));
    }
    let target = to.stat(name).await?;
    if let Some(target) = target.as_ref().filter(|t| !t.deleted) {
        if target.mtime > source.mtime {
            return Ok(Migrated::Skipped("newer-in-target"));
        }
    }
    if dry_run {
        return Ok(match target {
            Some(t) if !t.deleted && t.size == source.size && t.mtime == source.mtime => Migrated::Already,
            _ => Migrated::WouldCopy { size: source.size },
        });
    }
    // The version actually read is the one copied and verified, whatever changed since stat.
    let staged = spool.join("file");
    let read = match from.fetch_to_file(name, &staged, Visibility::Live).await {
        Ok(meta) => meta,
        Err(e) if e.is_not_found() => return Ok(Migrated::Skipped("gone-from-source")),
        Err(e) => return Err(e.into()),
    };
    let expected = sha256_of_file(&staged).map_err(|e| spool_failure(&staged, e))?;
    if let Some(t) = target.filter(|t| !t.deleted && t.size == read.size && t.mtime == read.mtime) {
        if digest_of(to, name, &t).await?.as_deref() == Some(expected.as_slice()) {
            let _ = std::fs::remove_file(&staged);
            return Ok(Migrated::Already);
        }
    }
    let options = StoreOptions {
        scope: Some(read.scope.clone()),
        datatype: Some(read.datatype.clone()),
        mtime: Some(read.mtime),
    };
    // Decided again under the row lock: a node that wrote a newer version since the stat wins.
    let stored = to.store_file_unless_newer(name, &staged, &options).await;
    let _ = std::fs::remove_file(&staged);
    let stored = match stored? {
        Stored::Written(meta) => meta,
        Stored::KeptNewer { .. } => return Ok(Migrated::Skipped("newer-in-target")),
    };
    match digest_of(to, name, &stored).await? {
        Some(actual) if actual == expected => Ok(Migrated::Copied { size: read.size }),
        Some(_) => Err(copy_failure(
            name,
            "the copy reads back with other bytes than the source gave; run `ezdb check` on the target",
        )),
        None => Err(copy_failure(
            name,
            "the copy was gone or replaced right after it was stored (another node wrote it?); run again",
        )),
    }
}

/// The sha256 of the target's live version of `name`, if that is still the version `meta`
/// describes (None when it is gone or was replaced meanwhile).
async fn digest_of(cluster: &Cluster, name: &str, meta: &FileMeta) -> ezdb_core::Result<Option<Vec<u8>>> {
    let mut stream = match cluster.open_stream(name, Visibility::Live, None).await {
        Ok(stream) => stream,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    if stream.meta.size != meta.size || stream.meta.mtime != meta.mtime {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next_chunk().await {
        hasher.update(&chunk?);
    }
    Ok(Some(hasher.finalize().to_vec()))
}

fn sha256_of_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().to_vec())
}
