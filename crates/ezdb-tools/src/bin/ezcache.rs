//! ezcache: clear (invalidate) and purge (remove) cluster caches with the legacy
//! bin/php/ezcache.php and clusterpurge.php options. Exit 0 on success, 1 with one line on
//! error (usage errors included).

use clap::Parser;
use ezdb_core::{Batches, Cluster, ClusterConfig, PurgeFilter, Selector};
use ezdb_tools::age::{purge_threshold, ExpiryForm};
use ezdb_tools::cache_items::{self, CacheItem, Clear, Resolved};
use ezdb_tools::cli::{fail, parse_or_exit};
use ezdb_tools::connect::{connect, LayoutArgs, URL_HELP};
use ezdb_tools::emit;
use ezdb_tools::progress::Progress;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ezcache",
    about = "Clear or purge the caches of an ezdb cluster (eZ Publish legacy ezcache.php / clusterpurge.php)",
    after_help = "Examples:
  ezcache --url=mysql://ez:pw@db/cluster --cache-dir=var/site/cache --clear-id=content
  ezcache --clear-tag=content                      # every item tagged content
  ezcache --clear-id=content --purge --expiry='-2 days'
  ezcache --purge --scope=viewcache,template-block --expiry=30 --iteration-limit=500 --iteration-sleep=0.2
                                                   # clusterpurge.php: --expiry=30 is 30 days
  ezcache --purge --scope=image --dry-run          # list what would go
  ezcache --clear-all --json                       # one JSON document for scripts
  ezcache --list

Clearing never deletes rows: it moves the item's global expiry key (every server sees it at
once) or marks its files expired. Purging removes rows for good, in short batches: it can be
interrupted at any time and simply run again.

Exit status: 0 done (also when nothing matched, which the report says); 1 with one line on
stderr for any error, usage errors included."
)]
struct Args {
    #[arg(long, help = URL_HELP)]
    url: Option<String>,
    #[command(flatten)]
    layout: LayoutArgs,
    /// The site's cache directory in the cluster (legacy <var dir>/cache); its expiry.php holds
    /// the global expiry keys every node reads, legacy ones included. Default: var/cache, or the
    /// only cache directory the cluster holds; required when it holds several.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<String>,
    /// Comma-separated cache ids (see --list).
    #[arg(long, value_name = "ID[,ID]")]
    clear_id: Option<String>,
    /// Comma-separated cache tags (see --list).
    #[arg(long, value_name = "TAG[,TAG]")]
    clear_tag: Option<String>,
    /// Every clustered cache item.
    #[arg(long)]
    clear_all: bool,
    /// Remove instead of invalidate: with ids/tags, every entry of those items older than
    /// --expiry (default now) or their expiry key; with --scope, expired rows of those scopes.
    #[arg(long)]
    purge: bool,
    /// Comma-separated scopes whose expired rows --purge removes (clusterpurge.php; its
    /// spelling --scopes is accepted).
    #[arg(long, alias = "scopes", value_name = "SCOPE[,SCOPE]")]
    scope: Option<String>,
    /// Purge entries older than this. With --scope (clusterpurge.php): a bare number is DAYS
    /// ago (30 = 30 days). Otherwise (ezcache.php): strtotime text such as '-2 days',
    /// '3 hours ago', 'now', 2024-05-01, '@1700000000'. A time in the future is refused.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    expiry: Option<String>,
    /// Rows removed per batch.
    #[arg(long, alias = "iteration-max", default_value_t = 1000, value_name = "N")]
    iteration_limit: u32,
    /// Seconds to pause between batches (fractions allowed).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    iteration_sleep: f64,
    /// Show what would be cleared or purged, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// List the cache ids and tags, then exit.
    #[arg(long, aliases = ["list-ids", "list-tags"])]
    list: bool,
    /// Print one JSON document with what was done (or would be, with --dry-run).
    #[arg(long)]
    json: bool,
}

/// Where results go: a line per action for people, or one JSON document (--json) for scripts.
struct Output {
    json: bool,
    actions: RefCell<Vec<Value>>,
}

impl Output {
    fn report(&self, text: impl FnOnce() -> String, action: Value) {
        if self.json {
            self.actions.borrow_mut().push(action);
        } else {
            emit!("{}", text());
        }
    }

    fn finish(&self, dry_run: bool) {
        if self.json {
            emit!("{}", json!({"dry_run": dry_run, "actions": *self.actions.borrow()}));
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Args = parse_or_exit("ezcache");
    if args.list {
        list(args.json);
        return;
    }
    let output = Output {
        json: args.json,
        actions: RefCell::default(),
    };
    let dry_run = args.dry_run;
    match run(args, &output).await {
        Ok(()) => output.finish(dry_run),
        Err(message) => fail("ezcache", &message),
    }
}

fn list(json: bool) {
    if json {
        let items: Vec<Value> = cache_items::CLUSTERED
            .iter()
            .map(|item| {
                let clear = match (item.clear, item.expiry_key) {
                    (Clear::Key, Some(_)) => "expiry-key",
                    _ => "mark-expired",
                };
                json!({"id": item.id, "name": item.name, "tags": item.tags, "expiry_key": item.expiry_key,
                       "prefixes": item.prefixes, "clear": clear})
            })
            .collect();
        emit!(
            "{}",
            json!({"clustered": items, "tags": cache_items::tags(), "local_only": cache_items::LOCAL_ONLY})
        );
        return;
    }
    emit!("Cluster cache ids (id: name [tags] -> what clearing does):");
    for item in cache_items::CLUSTERED {
        let files = format!("marks files under {} expired", item.prefixes.join(", "));
        let clear = match (item.clear, item.expiry_key) {
            (Clear::Key, Some(key)) => format!("moves global expiry key {key} (in expiry.php)"),
            (Clear::Expire, Some(key)) => format!("moves global expiry key {key} (in expiry.php) and {files}"),
            (Clear::Keep, _) => KEPT.to_owned(),
            _ => files,
        };
        emit!("  {}: {} [{}] -> {clear}", item.id, item.name, item.tags.join(","));
    }
    emit!("Tags: {}", cache_items::tags().join(", "));
    emit!(
        "Kept on each web server's disk (clear them there): {}",
        cache_items::LOCAL_ONLY.join(", ")
    );
}

async fn run(args: Args, output: &Output) -> Result<(), String> {
    if args.iteration_limit == 0 || !(0.0..=3600.0).contains(&args.iteration_sleep) {
        return Err("--iteration-limit must be at least 1 and --iteration-sleep between 0 and 3600 seconds".into());
    }
    let selection = selection(&args, output)?;
    if selection.is_some() && args.scope.is_some() {
        return Err(
            "--scope (the clusterpurge.php form) cannot be combined with --clear-id/--clear-tag/--clear-all \
             (the ezcache.php form): run them one after the other"
                .into(),
        );
    }
    if args.scope.is_some() && !args.purge {
        return Err("--scope selects what --purge removes: add --purge (or use --clear-id to clear)".into());
    }
    if selection.is_none() && !(args.purge && args.scope.is_some()) {
        return Err(
            "nothing to do: give --clear-id=ID, --clear-tag=TAG or --clear-all (with or without --purge), \
             or --purge --scope=SCOPE; --list shows the ids"
                .into(),
        );
    }
    let batch_size = args.iteration_limit;
    let tune = |expiry_file: Option<String>| {
        move |c: ClusterConfig| {
            let mut c = c.with_pool(2);
            c.batch_size = batch_size;
            c.legacy_expiry_file = expiry_file;
            c
        }
    };
    let cluster = connect(args.url.clone(), &args.layout, tune(None)).await?;
    let cache_dir = match selection {
        Some(_) => Some(cache_dir(&cluster, args.cache_dir.as_deref()).await?),
        None => None,
    };
    // Keys go where legacy nodes read them, the clustered expiry.php of the site (and ezdb's
    // table where it exists); purges honour the keys legacy nodes wrote there.
    let cluster = match &cache_dir {
        Some(dir) => connect(args.url.clone(), &args.layout, tune(Some(format!("{dir}/expiry.php")))).await?,
        None => cluster,
    };
    let form = if args.scope.is_some() {
        ExpiryForm::Clusterpurge
    } else {
        ExpiryForm::Ezcache
    };
    let expiry = match &args.expiry {
        Some(text) if args.purge => Some(purge_threshold(text, form, cluster.now())?),
        Some(_) => return Err("--expiry only applies to --purge (a clear invalidates everything)".into()),
        None => None,
    };
    let batches = Batches {
        size: args.iteration_limit,
        pause: Duration::from_secs_f64(args.iteration_sleep),
        max_batches: None,
    };
    if let Some(scopes) = args.scope.as_deref().filter(|_| args.purge) {
        let before = expiry.unwrap_or_else(|| cluster.now());
        purge_scopes(&cluster, scopes, before, batches, args.dry_run, output).await?;
    }
    if let (Some(items), Some(cache_dir)) = (selection, cache_dir) {
        for item in items {
            let target = Target {
                cluster: &cluster,
                item,
                cache_dir: &cache_dir,
                dry_run: args.dry_run,
                output,
            };
            if args.purge {
                target.purge(expiry, batches).await?;
            } else {
                target.clear().await?;
            }
        }
    }
    Ok(())
}

/// The site's cache directory: as given (with a warning when the cluster has nothing under it),
/// else var/cache if it holds files, else the only cache directory the cluster holds.
async fn cache_dir(cluster: &Cluster, given: Option<&str>) -> Result<String, String> {
    const DEFAULT: &str = "var/cache";
    let wanted = given.unwrap_or(DEFAULT).trim_end_matches('/').to_owned();
    if cluster.has_files_under(&wanted).await.map_err(|e| e.to_string())? {
        return Ok(wanted);
    }
    let found = cluster.cache_dirs().await.map_err(|e| e.to_string())?;
    match (given, found.as_slice()) {
        (None, [only]) => {
            eprintln!("ezcache: using --cache-dir={only}, the only cache directory in the cluster");
            Ok(only.clone())
        }
        (None, [_, _, ..]) => Err(format!(
            "the cluster holds several sites' caches ({}); choose one with --cache-dir",
            found.join(", ")
        )),
        (_, []) => Ok(wanted),
        (Some(_), _) => {
            eprintln!(
                "ezcache: warning: the cluster has no file under {wanted}/; cache directories it holds: {}",
                found.join(", ")
            );
            Ok(wanted)
        }
    }
}

/// The items named by --clear-id / --clear-tag / --clear-all; unknown ones are an error.
fn selection(args: &Args, output: &Output) -> Result<Option<Vec<&'static CacheItem>>, String> {
    let resolved: Resolved = match (&args.clear_id, &args.clear_tag, args.clear_all) {
        (None, None, false) => return Ok(None),
        (Some(ids), None, false) => cache_items::by_ids(ids),
        (None, Some(tags), false) => cache_items::by_tags(tags),
        (None, None, true) => cache_items::all(),
        _ => return Err("use only one of --clear-id, --clear-tag and --clear-all".into()),
    };
    if !resolved.unknown.is_empty() {
        return Err(format!(
            "unknown cache id or tag: {}; --list shows them",
            resolved.unknown.join(", ")
        ));
    }
    for id in &resolved.local_only {
        output.report(
            || {
                format!(
                    "{id}: kept on each web server's disk, not in the cluster; clear it there with bin/php/ezcache.php"
                )
            },
            json!({"item": id, "action": "skipped", "reason": "kept on each web server's disk, not in the cluster"}),
        );
    }
    Ok(Some(resolved.items))
}

/// Why the expiry file is never cleared or purged.
const KEPT: &str = "kept: it holds the clears themselves (removing it would make every cleared cache valid again)";

struct Target<'a> {
    cluster: &'a Cluster,
    item: &'a CacheItem,
    cache_dir: &'a str,
    dry_run: bool,
    output: &'a Output,
}

impl Target<'_> {
    fn selectors(&self) -> Vec<Selector> {
        self.item
            .prefixes
            .iter()
            .map(|p| Selector::Prefix(format!("{}/{p}", self.cache_dir)))
            .collect()
    }

    /// Where the item's files are, for reports: `under var/site/cache/rss/`.
    fn places(&self) -> String {
        let dirs: Vec<String> = self
            .item
            .prefixes
            .iter()
            .map(|p| format!("{}/{p}", self.cache_dir))
            .collect();
        format!("no file under {}", dirs.join(", "))
    }

    async fn clear(&self) -> Result<(), String> {
        let item = self.item;
        // As legacy, an item with a key moves it (written to expiry.php, so legacy nodes see it
        // too), and an item with files also marks them expired.
        if let Some(key) = item.expiry_key {
            if self.dry_run {
                self.output.report(
                    || format!("Clearing {}: would move expiry key {key} to now", item.name),
                    json!({"item": item.id, "action": "clear", "expiry_key": key}),
                );
            } else {
                let at = self
                    .cluster
                    .set_global_expiry(key, None)
                    .await
                    .map_err(|e| e.to_string())?;
                self.output.report(
                    || format!("Clearing {}: expiry key {key} set to {at}", item.name),
                    json!({"item": item.id, "action": "clear", "expiry_key": key, "expiry": at}),
                );
            }
        }
        match item.clear {
            Clear::Key => {}
            Clear::Keep => self.output.report(
                || format!("Clearing {}: {KEPT}", item.name),
                json!({"item": item.id, "action": "kept", "reason": KEPT}),
            ),
            Clear::Expire => {
                let mut total = 0;
                for selector in self.selectors() {
                    if self.dry_run {
                        let (count, _) = self
                            .cluster
                            .preview_purge(&selector, PurgeFilter::OlderThan(i64::MAX), 0)
                            .await
                            .map_err(|e| e.to_string())?;
                        total += count;
                    } else {
                        total += self
                            .cluster
                            .delete_matching(&selector)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                let verb = if self.dry_run { "would mark at most" } else { "marked" };
                let under = self.places();
                self.output.report(
                    || match total {
                        0 => format!("Clearing {}: nothing matched ({under})", item.name),
                        _ => format!("Clearing {}: {verb} {total} file(s) expired", item.name),
                    },
                    json!({"item": item.id, "action": "clear", "files": total}),
                );
            }
        }
        Ok(())
    }

    /// Legacy purge: entries older than max(expiry, the item's key), default now.
    async fn purge(&self, expiry: Option<i64>, batches: Batches) -> Result<(), String> {
        let key = match self.item.expiry_key {
            Some(key) => self.cluster.global_expiry(key).await.map_err(|e| e.to_string())?,
            None => None,
        };
        let before = match (expiry, key) {
            (Some(e), Some(k)) => e.max(k),
            (Some(e), None) => e,
            (None, _) => self.cluster.now(),
        };
        let item = self.item;
        if item.clear == Clear::Keep {
            self.output.report(
                || format!("Purging {}: {KEPT}", item.name),
                json!({"item": item.id, "action": "kept", "reason": KEPT}),
            );
            return Ok(());
        }
        if item.prefixes.is_empty() {
            self.output.report(
                || {
                    format!(
                        "Purging {}: nothing to purge in the cluster (its files are regenerated on use)",
                        item.name
                    )
                },
                json!({"item": item.id, "action": "purge", "files": 0, "before": before}),
            );
            return Ok(());
        }
        let (mut total, mut names) = (0, Vec::new());
        for selector in self.selectors() {
            let filter = PurgeFilter::OlderThan(before);
            let (count, listed) = purge(self.cluster, &selector, filter, batches, self.dry_run).await?;
            total += count;
            names.extend(listed);
        }
        let verb = if self.dry_run { "would remove" } else { "removed" };
        let under = self.places();
        self.output.report(
            || match total {
                0 => format!("Purging {}: nothing matched ({under}, older than {before})", item.name),
                _ => format!(
                    "Purging {}: {verb} {total} file(s) older than {before}{}",
                    item.name,
                    listing(&names, total)
                ),
            },
            json!({"item": item.id, "action": "purge", "files": total, "before": before, "names": names}),
        );
        Ok(())
    }
}

async fn purge_scopes(
    cluster: &Cluster,
    scopes: &str,
    before: i64,
    batches: Batches,
    dry_run: bool,
    output: &Output,
) -> Result<(), String> {
    let scopes: Vec<String> = scopes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let selector = Selector::Scopes(scopes.clone());
    let (total, names) = purge(cluster, &selector, PurgeFilter::ExpiredBefore(before), batches, dry_run).await?;
    let verb = if dry_run { "would remove" } else { "removed" };
    output.report(
        || {
            let scopes = scopes.join(",");
            let names = listing(&names, total);
            match total {
                0 => format!("Purging expired files of {scopes}: nothing matched (no expired file last modified before {before})"),
                _ => format!("Purging expired files of {scopes}: {verb} {total} file(s) last modified before {before}{names}"),
            }
        },
        json!({"scopes": scopes, "action": "purge", "files": total, "before": before, "names": names}),
    );
    Ok(())
}

/// Purges with a progress bar (or log lines); in a dry run, counts and names (up to 1000) what
/// would go instead.
async fn purge(
    cluster: &Cluster,
    selector: &Selector,
    filter: PurgeFilter,
    batches: Batches,
    dry_run: bool,
) -> Result<(u64, Vec<String>), String> {
    let (count, names) = cluster
        .preview_purge(selector, filter, if dry_run { 1000 } else { 0 })
        .await
        .map_err(|e| e.to_string())?;
    if dry_run || count == 0 {
        return Ok((count, names));
    }
    let mut progress = Progress::new("purging", Some(count));
    let removed = cluster
        .purge_matching(selector, filter, batches, |n| progress.advance(n))
        .await
        .map_err(|e| e.to_string());
    progress.finish();
    Ok((removed?, Vec::new()))
}

/// The names a dry run listed, one per line after the summary, and how many more there are
/// (a real purge lists none, and says nothing more).
fn listing(names: &[String], total: u64) -> String {
    let mut text: String = names.iter().map(|n| format!("\n- {n}")).collect();
    if !names.is_empty() && total > names.len() as u64 {
        text += &format!("\n  ... and {} more", total - names.len() as u64);
    }
    text
}
