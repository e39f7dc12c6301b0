//! ezdb: administration of an ezdb cluster: schema install/check/upgrade, import a site's var/
//! tree, export to disk, consistency check and repair, statistics. Exit 0 on success, 1 with
//! one line on error (usage errors included).

use clap::{Parser, Subcommand};
use ezdb_core::{
    Cluster, FileMeta, Outcome, QuarantineItem, Restored, ScopeFilter, StoreOptions, Visibility, QUARANTINE_TABLE,
};
use ezdb_tools::cli::{fail, parse_or_exit};
use ezdb_tools::connect::{connect, URL_HELP};
use ezdb_tools::emit;
use ezdb_tools::files::{classify, export_path, read_spread_manifest, Layout, SPREAD_MANIFEST};
use ezdb_tools::progress::Progress;
use ezdb_tools::schema_cmd::{self, SchemaAction};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "ezdb",
    about = "Administer an ezdb cluster database",
    after_help = "Examples:
  ezdb --url=mysql://ez:pw@db/cluster schema install
  ezdb schema check                     # every risk of this (legacy) database, and its fix
  ezdb schema upgrade --dry-run         # the statements upgrade would run
  ezdb import /var/www/site --dry-run   # what clusterize would store from /var/www/site/var
  ezdb export /srv/backup               # every live file back to disk
  ezdb check --repair --dry-run         # what a repair would do
  ezdb check --verify --repair          # removed bytes go to ezdbfile_quarantine
  ezdb check --restore=7                # put quarantined item 7 back
  ezdb stats --json"
)]
struct Args {
    #[arg(long, global = true, help = URL_HELP)]
    url: Option<String>,
    /// Machine-readable output (one JSON document) for the commands that report figures.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the cluster tables (idempotent), check an existing database, or upgrade it.
    Schema {
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Store every clustered file of a site's var/ tree (the legacy clusterize step).
    Import {
        /// The site root: the directory that contains var/.
        site: PathBuf,
        /// Show what would be stored, store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write every live file of the cluster to DIR/<name> (each file atomically).
    Export {
        dir: PathBuf,
        /// Only these scopes (comma-separated).
        #[arg(long)]
        scope: Option<String>,
        /// At most N files per directory: the files of a more crowded directory go into
        /// hash-named subdirectories, listed in DIR/.ezdb-spread.tsv so `ezdb import` restores
        /// their names.
        #[arg(long, value_name = "N")]
        max_per_dir: Option<usize>,
    },
    /// Find inconsistencies in the tables; optionally read every file, repair, or restore what
    /// a repair set aside.
    Check {
        /// Also read every live file through the checked reader and print its sha256.
        #[arg(long)]
        verify: bool,
        /// Repair what can be repaired without loss; whatever a repair removes is moved to the
        /// quarantine (table ezdbfile_quarantine) first.
        #[arg(long)]
        repair: bool,
        /// With --repair or --restore: show exactly what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Put quarantined items back (all, or the ids given: --restore=3,7).
        #[arg(long, value_name = "IDS", num_args = 0..=1, default_missing_value = "all")]
        restore: Option<String>,
        /// List what is in the quarantine.
        #[arg(long)]
        quarantine: bool,
    },
    /// Files and bytes by scope, live and expired, and the generation locks.
    Stats,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Args = parse_or_exit("ezdb");
    let outcome = match connect(args.url, |c| c).await {
        Ok(cluster) => run(&cluster, args.command, args.json).await,
        Err(e) => Err(e),
    };
    if let Err(message) = outcome {
        fail("ezdb", &message);
    }
}

async fn run(cluster: &Cluster, command: Command, json: bool) -> Result<(), String> {
    match command {
        Command::Schema { action } => schema_cmd::run(cluster, action, json).await,
        Command::Import { site, dry_run } => import(cluster, &site, dry_run, json).await,
        Command::Export {
            dir,
            scope,
            max_per_dir,
        } => export(cluster, &dir, scope, max_per_dir, json).await,
        Command::Check {
            restore: Some(ids),
            dry_run,
            ..
        } => restore(cluster, &ids, dry_run, json).await,
        Command::Check { quarantine: true, .. } => list_quarantine(cluster, json).await,
        Command::Check {
            verify,
            repair,
            dry_run,
            ..
        } => check(cluster, verify, repair && !dry_run, json).await,
        Command::Stats => stats(cluster, json).await,
    }
}

async fn import(cluster: &Cluster, site: &Path, dry_run: bool, json: bool) -> Result<(), String> {
    let var = site.join("var");
    let files = walk(&var).map_err(|e| format!("cannot read {}: {e}", var.display()))?;
    let spread = read_spread_manifest(site);
    let mut progress = Progress::new("importing", Some(files.len() as u64));
    let (mut stored, mut kept, mut skipped, mut bytes, mut errors) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for path in &files {
        progress.advance(1);
        let relative = path.strip_prefix(site).ok().and_then(|p| p.to_str());
        let Some(name) = relative.map(|r| spread.get(r).cloned().unwrap_or_else(|| r.to_owned())) else {
            skipped += 1;
            continue;
        };
        let Some((scope, datatype)) = classify(&name) else {
            skipped += 1;
            continue;
        };
        let outcome = import_one(cluster, path, &name, scope, &datatype, dry_run).await;
        match outcome {
            Ok(Some(size)) => {
                stored += 1;
                bytes += size;
            }
            Ok(None) => kept += 1,
            Err(e) => {
                errors += 1;
                eprintln!("{name}: {e}");
            }
        }
    }
    progress.finish();
    if json {
        let summary = json!({"dry_run": dry_run, "stored_files": stored, "stored_bytes": bytes,
                             "already_stored": kept, "not_clustered": skipped, "errors": errors});
        emit!("{summary}");
    } else {
        let verb = if dry_run { "would store" } else { "stored" };
        emit!("{verb} {stored} file(s), {bytes} bytes; {kept} already in the cluster; {skipped} not clustered (logs, local caches); {errors} error(s)");
    }
    if errors > 0 {
        return Err(format!(
            "{errors} file(s) could not be imported; run again to retry them"
        ));
    }
    Ok(())
}

/// Stores one file unless the cluster already has it (same size, not older): re-running an
/// interrupted import skips what is done. Returns the bytes stored, or `None` when skipped.
async fn import_one(
    cluster: &Cluster,
    path: &Path,
    name: &str,
    scope: &str,
    datatype: &str,
    dry_run: bool,
) -> Result<Option<u64>, String> {
    let local = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mtime = local
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    let existing = cluster.stat(name).await.map_err(|e| e.to_string())?;
    if existing.is_some_and(|m| !m.deleted && m.size == local.len() && m.mtime >= mtime) {
        return Ok(None);
    }
    if !dry_run {
        let options = StoreOptions {
            mtime: Some(mtime),
            ..StoreOptions::new(scope, datatype)
        };
        cluster
            .store_file(name, path, &options)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Some(local.len()))
}

fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

async fn export(
    cluster: &Cluster,
    dir: &Path,
    scope: Option<String>,
    max_per_dir: Option<usize>,
    json: bool,
) -> Result<(), String> {
    let filter = match scope {
        Some(s) => ScopeFilter::Only(s.split(',').map(str::trim).map(str::to_owned).collect()),
        None => ScopeFilter::All,
    };
    if max_per_dir.is_some_and(|n| n < 256) {
        return Err("--max-per-dir must be at least 256: a spread directory holds up to 256 subdirectories".into());
    }
    let mut names = cluster.list(&filter).await.map_err(|e| e.to_string())?;
    names.retain(|n| !n.ends_with(ezdb_core::GENERATING_SUFFIX));
    let layout = Layout::new(names.iter().map(String::as_str), max_per_dir);
    let mut progress = Progress::new("exporting", Some(names.len() as u64));
    let (mut written, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut manifest = String::new();
    for name in &names {
        progress.advance(1);
        let (relative, spread) = layout.place(name);
        let Some(target) = export_path(dir, &relative) else {
            errors += 1;
            eprintln!("{name}: refused, the name would leave {}", dir.display());
            continue;
        };
        match cluster.fetch_to_file(name, &target, Visibility::Live).await {
            Ok(meta) => {
                set_mtime(&target, &meta);
                written += 1;
                bytes += meta.size;
                if spread {
                    manifest.push_str(&format!("{name}\t{relative}\n"));
                }
            }
            Err(e) if e.is_not_found() => {} // deleted or expired: not exported
            Err(e) => {
                errors += 1;
                eprintln!("{e}");
            }
        }
    }
    progress.finish();
    if !manifest.is_empty() {
        std::fs::write(dir.join(SPREAD_MANIFEST), manifest)
            .map_err(|e| format!("cannot write the spread manifest: {e}"))?;
    }
    if json {
        emit!(
            "{}",
            json!({"exported_files": written, "exported_bytes": bytes, "errors": errors})
        );
    } else {
        emit!(
            "exported {written} file(s), {bytes} bytes to {}; {errors} error(s)",
            dir.display()
        );
    }
    if errors > 0 {
        return Err(format!("{errors} file(s) could not be exported"));
    }
    Ok(())
}

fn set_mtime(path: &Path, meta: &FileMeta) {
    let when = UNIX_EPOCH + std::time::Duration::from_secs(meta.mtime.max(0) as u64);
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(when.min(SystemTime::now()));
    }
}

async fn check(cluster: &Cluster, verify: bool, repair: bool, json: bool) -> Result<(), String> {
    let problems = cluster.check().await.map_err(|e| e.to_string())?;
    let mut report = Vec::new();
    let (mut left, mut repaired, mut notes, mut quarantined) = (0usize, 0usize, 0usize, 0usize);
    for (i, problem) in problems.iter().enumerate() {
        let outcome = if repair {
            Some(cluster.repair(problem).await.map_err(|e| e.to_string())?)
        } else {
            None
        };
        let settled_above = problems[..i].iter().any(|p| p.stored_hash() == problem.stored_hash());
        let quarantine = match &outcome {
            Some(Outcome::Repaired { quarantine }) => *quarantine,
            _ => None,
        };
        let (status, text) = match &outcome {
            _ if problem.is_note() => ("note", format!("note: {}", problem.plan())),
            None => ("found", format!("repair would {}", problem.plan())),
            Some(Outcome::Repaired { quarantine: None }) => ("repaired", format!("repaired: {}", problem.plan())),
            Some(Outcome::Repaired { quarantine: Some(id) }) => (
                "repaired",
                format!(
                    "repaired: {}; removed bytes are in {QUARANTINE_TABLE} #{id} (`ezdb check --restore={id}` puts them back)",
                    problem.plan()
                ),
            ),
            Some(Outcome::Changed) if settled_above => ("settled", "settled by the repair above".to_owned()),
            Some(Outcome::Changed) => (
                "changed",
                "left alone: the row changed since the check (an upload?); run the check again".to_owned(),
            ),
            Some(Outcome::NeedsDecision) => ("needs-decision", format!("left alone, {}", problem.plan())),
        };
        match status {
            "note" => notes += 1,
            "repaired" | "settled" => repaired += 1,
            _ => left += 1,
        }
        quarantined += usize::from(quarantine.is_some());
        if !json {
            emit!("{}: {} ({text})", problem.kind(), problem.describe());
        }
        report.push(
            json!({"kind": problem.kind(), "stored_hash": problem.stored_hash(), "detail": problem.describe(),
                           "plan": problem.plan(), "status": status, "repaired": status == "repaired",
                           "quarantine_id": quarantine}),
        );
    }
    let digests = if verify {
        verify_all(cluster, json).await?
    } else {
        Vec::new()
    };
    let unreadable = digests.iter().filter(|d| d["sha256"].is_null()).count();
    if json {
        emit!(
            "{}",
            json!({"problems": report, "files": digests, "left": left, "repaired": repaired,
                   "quarantined": quarantined, "quarantine_table": QUARANTINE_TABLE})
        );
    } else {
        emit!(
            "{} problem(s), {repaired} repaired, {quarantined} set aside in {QUARANTINE_TABLE}, {notes} note(s); {} file(s) verified, {unreadable} unreadable",
            problems.len() - notes,
            digests.len()
        );
    }
    if left > 0 || unreadable > 0 {
        let hint = if repair {
            ""
        } else {
            "; `ezdb check --repair --dry-run` shows the repairs"
        };
        return Err(format!("{left} problem(s) left, {unreadable} unreadable file(s){hint}"));
    }
    Ok(())
}

async fn list_quarantine(cluster: &Cluster, json: bool) -> Result<(), String> {
    let items = cluster.quarantined().await.map_err(|e| e.to_string())?;
    if json {
        let items: Vec<_> = items.iter().map(quarantine_json).collect();
        emit!("{}", json!({"quarantine": items}));
        return Ok(());
    }
    for item in &items {
        emit!("{}", quarantine_line(item));
    }
    emit!("{} item(s) in {QUARANTINE_TABLE}", items.len());
    Ok(())
}

fn quarantine_json(item: &QuarantineItem) -> serde_json::Value {
    json!({"id": item.id, "quarantined_at": item.quarantined_at, "reason": item.reason, "removed": item.removed,
           "stored_hash": item.name_hash, "name": item.name, "chunks": item.chunks, "bytes": item.bytes})
}

fn quarantine_line(item: &QuarantineItem) -> String {
    let name = item.name.as_deref().unwrap_or(&item.name_hash);
    format!(
        "#{} {name}: {} ({} chunk(s), {} bytes) set aside for {}",
        item.id, item.removed, item.chunks, item.bytes, item.reason
    )
}

async fn restore(cluster: &Cluster, ids: &str, dry_run: bool, json: bool) -> Result<(), String> {
    let items = cluster.quarantined().await.map_err(|e| e.to_string())?;
    let wanted: Vec<u64> = if ids == "all" {
        items.iter().map(|i| i.id).collect()
    } else {
        ids.split(',')
            .map(|id| {
                id.trim().parse().map_err(|_| {
                    format!("--restore={ids}: give quarantine ids (see `ezdb check --quarantine`) or no value for all")
                })
            })
            .collect::<Result<_, _>>()?
    };
    let mut report = Vec::new();
    let mut failed = 0;
    for id in wanted {
        let item = items.iter().find(|i| i.id == id);
        let (status, text) = match (item, dry_run) {
            (None, _) => ("no-such-item", format!("#{id}: no such item in {QUARANTINE_TABLE}")),
            (Some(item), true) => ("would-restore", format!("would restore {}", quarantine_line(item))),
            (Some(item), false) => match cluster.restore(id).await.map_err(|e| e.to_string())? {
                Restored::Restored { .. } => ("restored", format!("restored {}", quarantine_line(item))),
                Restored::Conflict(why) => ("conflict", format!("#{id} kept in the quarantine: {why}")),
                Restored::NoSuchItem => ("no-such-item", format!("#{id}: restored by another run meanwhile")),
            },
        };
        failed += usize::from(matches!(status, "conflict" | "no-such-item"));
        if !json {
            emit!("{text}");
        }
        report.push(json!({"id": id, "status": status, "detail": text}));
    }
    if json {
        emit!("{}", json!({"dry_run": dry_run, "restores": report}));
    } else if report.is_empty() {
        emit!("nothing in {QUARANTINE_TABLE} to restore");
    }
    if failed > 0 {
        return Err(format!("{failed} item(s) not restored"));
    }
    Ok(())
}

/// Reads every live file through the checked reader; its sha256, or null and the reason.
async fn verify_all(cluster: &Cluster, json: bool) -> Result<Vec<serde_json::Value>, String> {
    let names = cluster.list(&ScopeFilter::All).await.map_err(|e| e.to_string())?;
    let mut digests = Vec::new();
    for name in names.iter().filter(|n| !n.ends_with(ezdb_core::GENERATING_SUFFIX)) {
        let mut stream = match cluster.open_stream(name, Visibility::Live, None).await {
            Ok(stream) => stream,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.to_string()),
        };
        let mut hasher = Sha256::new();
        let mut failure = None;
        while let Some(chunk) = stream.next_chunk().await {
            match chunk {
                Ok(bytes) => hasher.update(&bytes),
                Err(e) => failure = Some(e.to_string()),
            }
        }
        let entry = match failure {
            None => json!({"name": name, "size": stream.meta.size, "sha256": format!("{:x}", hasher.finalize())}),
            Some(error) => json!({"name": name, "sha256": null, "error": error}),
        };
        if !json {
            match entry["sha256"].as_str() {
                Some(sha) => emit!("{sha}  {name}"),
                None => emit!("UNREADABLE  {name}: {}", entry["error"]),
            }
        }
        digests.push(entry);
    }
    Ok(digests)
}

async fn stats(cluster: &Cluster, json: bool) -> Result<(), String> {
    let stats = cluster.stats().await.map_err(|e| e.to_string())?;
    if json {
        let scopes: Vec<_> = stats
            .scopes
            .iter()
            .map(|s| {
                json!({"scope": s.scope, "files": s.files, "bytes": s.bytes, "expired_files": s.expired_files,
                             "expired_bytes": s.expired_bytes, "oldest_mtime": s.oldest, "newest_mtime": s.newest})
            })
            .collect();
        let locks: Vec<_> = stats
            .locks
            .iter()
            .map(|l| json!({"name": l.name, "age_secs": l.age_secs}))
            .collect();
        emit!("{}", json!({"scopes": scopes, "generating": locks}));
        return Ok(());
    }
    emit!(
        "{:<24} {:>10} {:>14} {:>10} {:>14}",
        "scope",
        "files",
        "bytes",
        "expired",
        "expired bytes"
    );
    for s in &stats.scopes {
        emit!(
            "{:<24} {:>10} {:>14} {:>10} {:>14}",
            s.scope,
            s.files,
            s.bytes,
            s.expired_files,
            s.expired_bytes
        );
    }
    emit!(
        "{} generation lock(s){}",
        stats.locks.len(),
        stats
            .locks
            .iter()
            .map(|l| format!("\n  {} ({} s)", l.name, l.age_secs))
            .collect::<String>()
    );
    Ok(())
}
