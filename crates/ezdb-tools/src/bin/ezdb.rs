//! ezdb: administration of an ezdb cluster: schema install/check/upgrade, import a site's var/
//! tree, export to disk, consistency check and repair, statistics. Exit 0 on success, 1 with
//! one line on error (usage errors included).

use clap::{Parser, Subcommand};
use ezdb_core::{
    Cluster, FileMeta, MountCheckOptions, MountOutcome, Outcome, QuarantineItem, Restored, ScopeFilter, StoreOptions,
    Stored, Visibility, DEFAULT_MOUNT_GRACE, MOUNT_QUARANTINE_DIR, QUARANTINE_TABLE,
};
use ezdb_tools::cli::{fail, parse_or_exit};
use ezdb_tools::connect::{connect, LayoutArgs, ReplicaArgs, URL_HELP};
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
  ezdb export /srv/backup --read-replica=mysql://ez:pw@replica/cluster   # read from a replica
  ezdb check --repair --dry-run         # what a repair would do
  ezdb check --verify --repair          # removed bytes go to ezdbfile_quarantine
  ezdb check --restore=7                # put quarantined item 7 back
  ezdb stats --json
  ezdb migrate --from=ezdb --to=dfs --mount-point=/mnt/nfs --dry-run"
)]
struct Args {
    #[arg(long, global = true, help = URL_HELP)]
    url: Option<String>,
    #[command(flatten)]
    layout: LayoutArgs,
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
        /// Show what would be stored (per scope), store nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also store files the cluster has deleted or holds in a newer version (by default
        /// those are kept as the cluster has them, and reported).
        #[arg(long)]
        overwrite: bool,
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
        #[command(flatten)]
        replicas: ReplicaArgs,
    },
    /// Find inconsistencies in the tables; optionally read every file, repair, or restore what
    /// a repair set aside.
    Check {
        /// Also read every live file through the checked reader and print its sha256.
        #[arg(long)]
        verify: bool,
        /// With --verify (implied): compare with a manifest of `<sha256>  <name>` lines (the
        /// output of `ezdb check --verify`, or `sha256sum` run in the site root).
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
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
        /// eZDFS: seconds a file on the mount must be older than to be judged (younger ones may
        /// belong to a write in progress).
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MOUNT_GRACE.as_secs())]
        mount_grace: u64,
    },
    /// Files and bytes by scope, live and expired, and the generation locks.
    Stats,
    /// Copy every live file from one layout to another (eZDB <-> eZDFS <-> Ibexa DFS), verify
    /// each copy's bytes, and keep serving from the source meanwhile. Resumable: run it again
    /// to copy what is missing or changed. The DFS side takes --mount-point and the --dfs-*
    /// settings; the target's tables must exist (`ezdb schema install` with its layout).
    Migrate {
        /// Source layout: ezdb, dfs or ibexa-dfs.
        #[arg(long, value_name = "LAYOUT")]
        from: String,
        /// Target layout: ezdb, dfs or ibexa-dfs.
        #[arg(long, value_name = "LAYOUT")]
        to: String,
        /// Target database, when it is not the source's (--url).
        #[arg(long, value_name = "URL")]
        to_url: Option<String>,
        /// Count what would be copied, copy nothing.
        #[arg(long)]
        dry_run: bool,
        /// Directory where each file is staged while it is copied (default: a new directory
        /// under the system temp directory, removed afterwards). Needs room for the largest file.
        #[arg(long, value_name = "DIR")]
        spool: Option<PathBuf>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Args = parse_or_exit("ezdb");
    if let Command::Migrate {
        from,
        to,
        to_url,
        dry_run,
        spool,
    } = &args.command
    {
        let sides = Sides {
            from,
            to,
            to_url: to_url.as_deref(),
        };
        if let Err(message) = migrate_cmd(
            args.url.clone(),
            &args.layout,
            sides,
            *dry_run,
            spool.as_deref(),
            args.json,
        )
        .await
        {
            fail("ezdb", &message);
        }
        return;
    }
    // Only export reads through replicas; every other command decides or writes.
    let replicas = match &args.command {
        Command::Export { replicas, .. } => Some(replicas.clone()),
        _ => None,
    };
    // A bulk job stops at the first lost connection: one retry, not a minute per file.
    let outcome = match connect(args.url, &args.layout, |mut c| {
        c.max_attempts = 3;
        match &replicas {
            Some(replicas) => replicas.apply(c),
            None => c,
        }
    })
    .await
    {
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
        Command::Import {
            site,
            dry_run,
            overwrite,
        } => import(cluster, &site, dry_run, overwrite, json).await,
        Command::Export {
            dir,
            scope,
            max_per_dir,
            ..
        } => export(cluster, &dir, scope, max_per_dir, json).await,
        Command::Check { restore: Some(ids), .. } if cluster.mount_point().is_some() => {
            Err(dfs_quarantine_hint(cluster, &ids))
        }
        Command::Check { quarantine: true, .. } if cluster.mount_point().is_some() => {
            Err(dfs_quarantine_hint(cluster, "all"))
        }
        Command::Check {
            restore: Some(ids),
            dry_run,
            ..
        } => restore(cluster, &ids, dry_run, json).await,
        Command::Check { quarantine: true, .. } => list_quarantine(cluster, json).await,
        Command::Check {
            verify,
            against,
            repair,
            dry_run,
            mount_grace,
            ..
        } => {
            let manifest = match &against {
                Some(path) => Some(read_manifest(path)?),
                None => None,
            };
            let verify = verify || against.is_some();
            if cluster.mount_point().is_some() {
                let options = MountCheckOptions {
                    grace: std::time::Duration::from_secs(mount_grace),
                };
                check_mount(cluster, options, verify, repair && !dry_run, json, manifest).await
            } else {
                check(cluster, verify, repair && !dry_run, json, manifest).await
            }
        }
        Command::Stats => stats(cluster, json).await,
        Command::Migrate { .. } => Err("migrate connects to both layouts itself".into()),
    }
}

/// What import did with one file it could store.
enum Imported {
    Stored(u64),
    /// Already in the cluster with the same size and an mtime not older.
    Already,
    /// Not stored, to protect the cluster's version (see the reason); `--overwrite` stores it.
    Kept(&'static str),
}

/// Per-scope counts of what import stored (or would store).
#[derive(Default)]
struct ScopeTotals(std::collections::BTreeMap<String, (u64, u64)>);

impl ScopeTotals {
    fn add(&mut self, scope: &str, bytes: u64) {
        let entry = self.0.entry(scope.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }

    fn json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(scope, (files, bytes))| (scope.clone(), json!({"files": files, "bytes": bytes})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

async fn import(cluster: &Cluster, site: &Path, dry_run: bool, overwrite: bool, json: bool) -> Result<(), String> {
    let var = site.join("var");
    if !var.is_dir() {
        return Err(format!(
            "{} is not a directory; give the site root (the directory that contains var/)",
            var.display()
        ));
    }
    let (files, mut not_stored) = walk(site, &var);
    let spread = read_spread_manifest(site);
    let mut progress = Progress::new("importing", Some(files.len() as u64));
    let mut scopes = ScopeTotals::default();
    let (mut stored, mut already, mut skipped) = (0u64, 0u64, 0u64);
    let mut kept: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for path in &files {
        progress.advance(1);
        let relative = path.strip_prefix(site).unwrap_or(path);
        let Some(relative) = relative.to_str() else {
            not_stored.push((
                relative.to_string_lossy().into_owned(),
                "the name is not UTF-8; rename the file".into(),
            ));
            continue;
        };
        let name = spread.get(relative).cloned().unwrap_or_else(|| relative.to_owned());
        let Some((scope, datatype)) = classify(&name) else {
            skipped += 1;
            continue;
        };
        match import_one(cluster, path, &name, scope, &datatype, dry_run, overwrite).await {
            Ok(Imported::Stored(size)) => {
                stored += 1;
                scopes.add(scope, size);
            }
            Ok(Imported::Already) => already += 1,
            Ok(Imported::Kept(reason)) => {
                *kept.entry(reason).or_default() += 1;
                if !json {
                    emit!("kept the cluster's version of {name}: {reason}");
                }
            }
            Err(e) if e.is_connection_lost() => {
                progress.finish();
                return Err(format!(
                    "stopped after {stored} file(s): {e}; run the same command again to resume (stored files are skipped)"
                ));
            }
            Err(e) => not_stored.push((name, e.to_string())),
        }
    }
    progress.finish();
    let kept_total: u64 = kept.values().sum();
    if json {
        let failures: Vec<_> = not_stored
            .iter()
            .map(|(name, reason)| json!({"name": name, "reason": reason}))
            .collect();
        let summary = json!({"dry_run": dry_run, "stored_files": stored, "stored_bytes": scopes.0.values().map(|v| v.1).sum::<u64>(),
                             "scopes": scopes.json(), "already_stored": already, "kept_cluster_version": kept,
                             "not_clustered": skipped, "not_stored": failures, "errors": not_stored.len()});
        emit!("{summary}");
    } else {
        let verb = if dry_run { "would store" } else { "stored" };
        for (scope, (files, bytes)) in &scopes.0 {
            emit!("{verb} {scope}: {files} file(s), {bytes} bytes");
        }
        for (name, reason) in &not_stored {
            emit!("NOT STORED {name}: {reason}");
        }
        let bytes: u64 = scopes.0.values().map(|v| v.1).sum();
        emit!(
            "{verb} {stored} file(s), {bytes} bytes; {already} already in the cluster; {kept_total} kept as the cluster has them \
             (deleted or newer; --overwrite stores them); {skipped} not clustered (logs, local caches); {} not stored",
            not_stored.len()
        );
    }
    if !not_stored.is_empty() {
        return Err(format!(
            "{} file(s) could not be stored (listed above); fix them and run again",
            not_stored.len()
        ));
    }
    Ok(())
}

/// Stores one file unless the cluster already has it (same size, not older): re-running an
/// interrupted import skips what is done. Never brings back a file the cluster has deleted nor
/// replaces a newer version, unless `overwrite`.
async fn import_one(
    cluster: &Cluster,
    path: &Path,
    name: &str,
    scope: &str,
    datatype: &str,
    dry_run: bool,
    overwrite: bool,
) -> Result<Imported, ezdb_core::Error> {
    let io = |source| ezdb_core::Error::Io {
        op: ezdb_core::Op::Store,
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    };
    let local = std::fs::metadata(path).map_err(io)?;
    let mtime = local
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    let existing = cluster.stat(name).await?;
    match existing {
        Some(m) if !m.deleted && m.size == local.len() && m.mtime >= mtime => return Ok(Imported::Already),
        Some(m) if m.deleted && !overwrite => return Ok(Imported::Kept("deleted in the cluster")),
        Some(m) if !m.deleted && m.mtime > mtime && !overwrite => return Ok(Imported::Kept("newer in the cluster")),
        Some(m) if !m.deleted && m.mtime == mtime && !overwrite => {
            return Ok(Imported::Kept("the cluster has another version of the same time"))
        }
        _ => {}
    }
    if dry_run {
        std::fs::File::open(path).map_err(io)?;
    } else {
        let options = StoreOptions {
            mtime: Some(mtime),
            ..StoreOptions::new(scope, datatype)
        };
        if overwrite {
            cluster.store_file(name, path, &options).await?;
        } else if let Stored::KeptNewer { .. } = cluster.store_file_unless_newer(name, path, &options).await? {
            // Stored by another node since the check above: decided again under the row lock.
            return Ok(Imported::Kept("newer in the cluster"));
        }
    }
    Ok(Imported::Stored(local.len()))
}

/// Every regular file under `dir`, and every entry that is not one (symbolic links, sockets,
/// unreadable directories), with the reason: import reports those by name, never skips them
/// silently.
fn walk(site: &Path, dir: &Path) -> (Vec<PathBuf>, Vec<(String, String)>) {
    let shown = |p: &Path| p.strip_prefix(site).unwrap_or(p).to_string_lossy().into_owned();
    let mut files = Vec::new();
    let mut refused = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                refused.push((shown(&dir), format!("cannot read the directory: {e}")));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    refused.push((shown(&dir), format!("cannot read the directory: {e}")));
                    continue;
                }
            };
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => files.push(entry.path()),
                Ok(kind) if kind.is_symlink() => refused.push((
                    shown(&entry.path()),
                    "a symbolic link; store the file it points to under this name by hand if it belongs in the cluster"
                        .into(),
                )),
                Ok(_) => refused.push((shown(&entry.path()), "not a regular file".into())),
                Err(e) => refused.push((shown(&entry.path()), e.to_string())),
            }
        }
    }
    files.sort();
    refused.sort();
    (files, refused)
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
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot use {} as the target: {e}", dir.display()))?;
    let mut names = cluster.list(&filter).await.map_err(|e| e.to_string())?;
    names.retain(|n| !n.ends_with(ezdb_core::GENERATING_SUFFIX));
    let layout = Layout::new(names.iter().map(String::as_str), max_per_dir);
    let mut progress = Progress::new("exporting", Some(names.len() as u64));
    let (mut written, mut bytes, mut already) = (0u64, 0u64, 0u64);
    let mut failures: Vec<(String, String)> = Vec::new();
    let mut manifest = String::new();
    for name in &names {
        progress.advance(1);
        let (relative, spread) = layout.place(name);
        if spread {
            manifest.push_str(&format!("{name}\t{relative}\n"));
        }
        let Some(target) = export_path(dir, &relative) else {
            failures.push((name.clone(), format!("refused, the name would leave {}", dir.display())));
            continue;
        };
        let stop = |e: &dyn std::fmt::Display, written: u64| {
            format!("stopped after {written} file(s): {e}; fix it and run the same command again to resume (exported files are skipped)")
        };
        let meta = match cluster.stat(name).await {
            Ok(Some(meta)) if !meta.deleted => meta,
            Ok(_) => continue, // deleted (or gone): not exported
            Err(e) if e.is_connection_lost() => {
                progress.finish();
                return Err(stop(&e, written));
            }
            Err(e) => {
                failures.push((name.clone(), e.to_string()));
                continue;
            }
        };
        if already_exported(&target, &meta) {
            already += 1;
            continue;
        }
        match cluster.fetch_to_file(name, &target, Visibility::Live).await {
            Ok(meta) => {
                set_mtime(&target, &meta);
                written += 1;
                bytes += meta.size;
            }
            Err(e) if e.is_not_found() => {} // deleted or expired meanwhile: not exported
            // The target cannot take files (full, read-only, no permission) or the database is
            // gone: every further file would fail the same way.
            Err(e @ ezdb_core::Error::Io { .. }) => {
                progress.finish();
                return Err(stop(&e, written));
            }
            Err(e) if e.is_connection_lost() => {
                progress.finish();
                return Err(stop(&e, written));
            }
            Err(e) => failures.push((name.clone(), e.to_string())),
        }
    }
    progress.finish();
    if !manifest.is_empty() {
        std::fs::write(dir.join(SPREAD_MANIFEST), manifest)
            .map_err(|e| format!("cannot write the spread manifest: {e}"))?;
    }
    if json {
        let failed: Vec<_> = failures
            .iter()
            .map(|(name, reason)| json!({"name": name, "reason": reason}))
            .collect();
        emit!(
            "{}",
            json!({"exported_files": written, "exported_bytes": bytes, "already_exported": already,
                   "not_exported": failed, "errors": failures.len()})
        );
    } else {
        for (name, reason) in &failures {
            emit!("NOT EXPORTED {name}: {reason}");
        }
        emit!(
            "exported {written} file(s), {bytes} bytes to {}; {already} already there; {} error(s)",
            dir.display(),
            failures.len()
        );
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} file(s) could not be exported (listed above)",
            failures.len()
        ));
    }
    Ok(())
}

/// A file a previous run exported: same size, and the mtime export gave it.
fn already_exported(target: &Path, meta: &FileMeta) -> bool {
    let Ok(local) = std::fs::metadata(target) else {
        return false;
    };
    let mtime = local
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(-1, |d| d.as_secs() as i64);
    local.is_file() && local.len() == meta.size && mtime == meta.mtime
}

fn set_mtime(path: &Path, meta: &FileMeta) {
    let when = UNIX_EPOCH + std::time::Duration::from_secs(meta.mtime.max(0) as u64);
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(when.min(SystemTime::now()));
    }
}

/// `<sha256>  <name>` lines (`sha256sum` style; `*name` and `./name` accepted) by name. Other
/// lines (the report lines of `ezdb check --verify`) are passed over; a manifest without any
/// entry is refused.
fn read_manifest(path: &Path) -> Result<std::collections::BTreeMap<String, String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the manifest {}: {e}", path.display()))?;
    let entries: std::collections::BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| {
            let (sha, name) = line.split_once(' ')?;
            let name = name.trim_start_matches(' ').trim_start_matches('*');
            let name = name.strip_prefix("./").unwrap_or(name);
            let hex = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
            (hex && !name.is_empty()).then(|| (name.to_owned(), sha.to_ascii_lowercase()))
        })
        .collect();
    if entries.is_empty() {
        return Err(format!(
            "{} holds no '<sha256>  <name>' line (as sha256sum or `ezdb check --verify` print)",
            path.display()
        ));
    }
    Ok(entries)
}

/// Differences between the verified files and a manifest: (name, what) for each.
fn compare_manifest(
    digests: &[serde_json::Value],
    manifest: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, &'static str)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut differences = Vec::new();
    for d in digests {
        let Some(name) = d["name"].as_str() else { continue };
        seen.insert(name);
        match (manifest.get(name), d["sha256"].as_str()) {
            (Some(expected), Some(sha)) if expected == sha => {}
            (Some(_), Some(_)) => differences.push((name.to_owned(), "differs from the manifest")),
            (Some(_), None) => differences.push((name.to_owned(), "unreadable in the cluster")),
            (None, _) => {}
        }
    }
    for name in manifest.keys().filter(|n| !seen.contains(n.as_str())) {
        differences.push((name.clone(), "in the manifest, not a live file of the cluster"));
    }
    differences
}

async fn check(
    cluster: &Cluster,
    verify: bool,
    repair: bool,
    json: bool,
    manifest: Option<std::collections::BTreeMap<String, String>>,
) -> Result<(), String> {
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
            Some(Outcome::Busy) => (
                "busy",
                "left alone: a writer held the row through every attempt (a long upload?); run the check again".to_owned(),
            ),
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
    let tally = Tally {
        problems: problems.len() - notes,
        left,
        repaired,
        notes,
        set_aside: quarantined,
        set_aside_in: QUARANTINE_TABLE.to_owned(),
    };
    finish(cluster, verify, repair, json, manifest, report, tally).await
}

/// Counts of a check, for its summary line and exit status.
struct Tally {
    problems: usize,
    left: usize,
    repaired: usize,
    notes: usize,
    set_aside: usize,
    /// Where a repair put what it removed (a table, or a directory on the mount).
    set_aside_in: String,
}

/// The part of `ezdb check` both layouts share: --verify, --against, the summary, the exit status.
async fn finish(
    cluster: &Cluster,
    verify: bool,
    repair: bool,
    json: bool,
    manifest: Option<std::collections::BTreeMap<String, String>>,
    report: Vec<serde_json::Value>,
    tally: Tally,
) -> Result<(), String> {
    let Tally {
        problems,
        left,
        repaired,
        notes,
        set_aside,
        set_aside_in,
    } = tally;
    let digests = if verify {
        verify_all(cluster, json).await?
    } else {
        Vec::new()
    };
    let unreadable = digests.iter().filter(|d| d["sha256"].is_null()).count();
    let differences = manifest
        .as_ref()
        .map(|m| compare_manifest(&digests, m))
        .unwrap_or_default();
    if !json {
        for (name, what) in &differences {
            emit!("MISMATCH {name}: {what}");
        }
    }
    if json {
        let mismatches: Vec<_> = differences
            .iter()
            .map(|(name, what)| json!({"name": name, "detail": what}))
            .collect();
        emit!(
            "{}",
            json!({"problems": report, "files": digests, "left": left, "repaired": repaired,
                   "quarantined": set_aside, "quarantine_table": set_aside_in, "manifest_mismatches": mismatches})
        );
    } else {
        emit!(
            "{problems} problem(s), {repaired} repaired, {set_aside} set aside in {set_aside_in}, {notes} note(s); {} file(s) verified, {unreadable} unreadable",
            digests.len()
        );
    }
    if left > 0 || unreadable > 0 || !differences.is_empty() {
        let hint = if repair || left == 0 {
            ""
        } else {
            "; `ezdb check --repair --dry-run` shows the repairs"
        };
        let against = match &manifest {
            Some(_) => format!(", {} manifest mismatch(es)", differences.len()),
            None => String::new(),
        };
        return Err(format!(
            "{left} problem(s) left, {unreadable} unreadable file(s){against}{hint}"
        ));
    }
    Ok(())
}

/// `ezdb check` on an eZDFS site: rows against the files on the mount, both ways; a repair
/// only moves files without a row into the mount's quarantine directory.
async fn check_mount(
    cluster: &Cluster,
    options: MountCheckOptions,
    verify: bool,
    repair: bool,
    json: bool,
    manifest: Option<std::collections::BTreeMap<String, String>>,
) -> Result<(), String> {
    let found = cluster.check_mount(&options).await.map_err(|e| e.to_string())?;
    let mut report = Vec::new();
    let (mut left, mut repaired, mut notes, mut set_aside) = (0usize, 0usize, 0usize, 0usize);
    for problem in &found.problems {
        let outcome = if repair && !problem.is_note() {
            Some(cluster.repair_mount(problem).await.map_err(|e| e.to_string())?)
        } else {
            None
        };
        let (status, text) = match &outcome {
            _ if problem.is_note() => ("note", format!("note: {}", problem.plan())),
            None => ("found", format!("repair would {}", problem.plan())),
            Some(MountOutcome::Quarantined(path)) => ("repaired", format!("moved to {}", path.display())),
            Some(MountOutcome::Changed) => (
                "changed",
                "left alone: a row appeared or the file changed since the check; run the check again".to_owned(),
            ),
            Some(MountOutcome::ReportOnly) => ("needs-decision", format!("left alone, {}", problem.plan())),
        };
        match status {
            "note" => notes += 1,
            "repaired" => {
                repaired += 1;
                set_aside += 1;
            }
            _ => left += 1,
        }
        if !json {
            emit!("{}: {} ({text})", problem.kind(), problem.describe());
        }
        report.push(
            json!({"kind": problem.kind(), "name": problem.name(), "detail": problem.describe(),
                           "plan": problem.plan(), "status": status, "repaired": status == "repaired"}),
        );
    }
    if !json {
        let skipped: Vec<String> = found.skipped.iter().map(|(why, n)| format!("{n} {why}")).collect();
        emit!(
            "checked {} row(s) and {} file(s) on the mount; passed over: {}",
            found.rows_checked,
            found.files_checked,
            if skipped.is_empty() {
                "nothing".to_owned()
            } else {
                skipped.join(", ")
            }
        );
    }
    let mount = cluster
        .mount_point()
        .map(|m| m.display().to_string())
        .unwrap_or_default();
    let tally = Tally {
        problems: found.problems.len() - notes,
        left,
        repaired,
        notes,
        set_aside,
        set_aside_in: format!("{mount}/{MOUNT_QUARANTINE_DIR}"),
    };
    finish(cluster, verify, repair, json, manifest, report, tally).await
}

/// The two layouts of `ezdb migrate`, as given.
struct Sides<'a> {
    from: &'a str,
    to: &'a str,
    to_url: Option<&'a str>,
}

/// The layout settings of one side: the DFS settings go to a DFS side only.
fn side(kind: &str, shared: &LayoutArgs) -> LayoutArgs {
    if kind.trim().eq_ignore_ascii_case("ezdb") {
        LayoutArgs {
            layout: Some(kind.to_owned()),
            ..LayoutArgs::default()
        }
    } else {
        LayoutArgs {
            layout: Some(kind.to_owned()),
            ..shared.clone()
        }
    }
}

async fn migrate_cmd(
    url: Option<String>,
    layout: &LayoutArgs,
    sides: Sides<'_>,
    dry_run: bool,
    spool: Option<&Path>,
    json: bool,
) -> Result<(), String> {
    if layout.layout.is_some() {
        return Err("migrate takes --from and --to instead of --layout (unset EZDB_LAYOUT); the DFS side uses --mount-point and --dfs-*".into());
    }
    let (from_layout, to_layout) = (side(sides.from, layout), side(sides.to, layout));
    let same_database = sides.to_url.is_none() || sides.to_url == url.as_deref();
    if same_database && from_layout.settings().to_layout().ok() == to_layout.settings().to_layout().ok() {
        return Err(format!(
            "--from={} and --to={} name the same tables; give two different layouts (or --to-url for another database)",
            sides.from, sides.to
        ));
    }
    let tune = |mut c: ezdb_core::ClusterConfig| {
        c.max_attempts = 3;
        c
    };
    let from = connect(url.clone(), &from_layout, tune).await?;
    let to = connect(sides.to_url.map(str::to_owned).or(url), &to_layout, tune).await?;
    let own_spool = spool.is_none();
    let spool = match spool {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("ezdb-migrate-{}", std::process::id())),
    };
    std::fs::create_dir_all(&spool)
        .map_err(|e| format!("cannot create the spool directory {}: {e}", spool.display()))?;
    let result = ezdb_tools::migrate::migrate(&from, &to, &spool, dry_run).await;
    if own_spool {
        let _ = std::fs::remove_dir_all(&spool);
    }
    let report = result?;
    let skipped: Vec<String> = report.skipped.iter().map(|(why, n)| format!("{n} {why}")).collect();
    if json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(name, why)| json!({"name": name, "error": why}))
            .collect();
        emit!(
            "{}",
            json!({"from": sides.from, "to": sides.to, "dry_run": dry_run, "copied": report.copied,
                   "copied_bytes": report.copied_bytes, "already": report.already,
                   "would_copy": report.would_copy, "would_copy_bytes": report.would_copy_bytes,
                   "skipped": report.skipped, "failed": failed})
        );
    } else {
        for (name, why) in &report.failed {
            emit!("FAILED {name}: {why}");
        }
        let skipped = if skipped.is_empty() {
            "none".to_owned()
        } else {
            skipped.join(", ")
        };
        if dry_run {
            emit!(
                "would copy {} file(s) ({} bytes) from {} to {}; {} already there; skipped: {skipped}",
                report.would_copy,
                report.would_copy_bytes,
                sides.from,
                sides.to,
                report.already
            );
        } else {
            emit!(
                "copied and verified {} file(s) ({} bytes) from {} to {}; {} already there (verified); skipped: {skipped}",
                report.copied, report.copied_bytes, sides.from, sides.to, report.already
            );
        }
    }
    if !report.failed.is_empty() {
        return Err(format!(
            "{} file(s) not copied (listed above); run the same command again to retry them",
            report.failed.len()
        ));
    }
    Ok(())
}

/// On eZDFS a repair moves files, not rows: the quarantine is a directory to look into.
fn dfs_quarantine_hint(cluster: &Cluster, ids: &str) -> String {
    let mount = cluster
        .mount_point()
        .map(|m| m.display().to_string())
        .unwrap_or_default();
    let what = if ids == "all" { "everything" } else { "the items given" };
    format!(
        "on an eZDFS site a repair moves files without a row to {mount}/{MOUNT_QUARANTINE_DIR}/<run>/<name>; \
         to restore {what}, move the file back to {mount}/<name> (e.g. with mv) and store its row with `ezdb import`"
    )
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
                             "expired_bytes": s.expired_bytes, "expired_by_global_key": s.expired_by_key,
                       "oldest_mtime": s.oldest, "newest_mtime": s.newest})
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
        "{:<24} {:>10} {:>14} {:>10} {:>14} {:>10}",
        "scope",
        "files",
        "bytes",
        "expired",
        "expired bytes",
        "(by key)"
    );
    for s in &stats.scopes {
        emit!(
            "{:<24} {:>10} {:>14} {:>10} {:>14} {:>10}",
            s.scope,
            s.files,
            s.bytes,
            s.expired_files,
            s.expired_bytes,
            s.expired_by_key
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
