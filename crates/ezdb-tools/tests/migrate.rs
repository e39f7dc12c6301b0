// `ezdb migrate` between the eZDB tables and an eZDFS site (legacy DDL, a mount the test
// creates), both ways: what is copied, verified byte for byte, resumed, and never overwritten.

mod common;

use common::ok;
use ezdb_core::{Cluster, ClusterConfig, DfsLayout, Layout, StoreOptions};
use ezdb_testdb::{Schema, TempDir, TestDb};
use std::process::{Command, Output};

fn ezdb(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .env("EZDB_URL", url)
        .env_remove("EZDB_LAYOUT")
        .env_remove("EZDB_MOUNT_POINT")
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(ok(output).trim()).unwrap()
}

async fn dfs_cluster(url: &str, mount: &std::path::Path) -> Cluster {
    Cluster::connect(ClusterConfig::new(url).with_layout(Layout::Dfs(DfsLayout::new(mount))))
        .await
        .unwrap()
}

const IMAGE: &str = "var/site/storage/images/1/2/big.jpg";
const EMPTY: &str = "var/site/storage/original/application/empty.pdf";
const VIEW: &str = "var/site/cache/content/site/2-abc.cache";
const DELETED: &str = "var/site/storage/images/9/deleted.jpg";

#[tokio::test]
async fn ezdb_to_dfs_copies_live_files_verifies_them_and_resumes() {
    let db = TestDb::create().await;
    let ezdb_site = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    ezdb_site.install_schema().await.unwrap();
    let mount = TempDir::new("migrate-mount");
    let dfs = dfs_cluster(&db.url, mount.path()).await;
    dfs.install_schema().await.unwrap();

    let big: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let at = |mtime: i64, scope: &str, datatype: &str| StoreOptions {
        mtime: Some(mtime),
        ..StoreOptions::new(scope, datatype)
    };
    let now = ezdb_site.now();
    ezdb_site
        .store(IMAGE, &big, &at(now - 100, "image", "image/jpeg"))
        .await
        .unwrap();
    ezdb_site
        .store(EMPTY, b"", &at(now - 50, "binaryfile", "application/pdf"))
        .await
        .unwrap();
    ezdb_site
        .store(VIEW, b"<?php 1;", &at(now - 10, "viewcache", "text/php"))
        .await
        .unwrap();
    ezdb_site
        .store(DELETED, b"old", &at(now - 10, "image", "image/jpeg"))
        .await
        .unwrap();
    ezdb_site.delete(DELETED).await.unwrap();
    let lock = format!("{VIEW}.generating");
    let _generation = ezdb_site.start_generation(VIEW, None).await.unwrap();
    let mount_arg = format!("--mount-point={}", mount.path().display());
    let migrate = |extra: &[&str]| {
        let mut args = vec!["migrate", "--from=ezdb", "--to=dfs", mount_arg.as_str(), "--json"];
        args.extend_from_slice(extra);
        ezdb(&db.url, &args)
    };

    let plan = json(&migrate(&["--dry-run"]));
    assert_eq!(
        (plan["would_copy"].as_u64(), plan["copied"].as_u64()),
        (Some(3), Some(0)),
        "{plan}"
    );
    assert!(dfs.stat(IMAGE).await.unwrap().is_none(), "a dry run copies nothing");

    let run = json(&migrate(&[]));
    assert_eq!(
        (run["copied"].as_u64(), run["copied_bytes"].as_u64()),
        (Some(3), Some(300_008)),
        "{run}"
    );
    assert_eq!(run["skipped"]["deleted-or-expired-in-source"], 1, "{run}");
    assert_eq!(run["skipped"]["generation-lock"], 1, "{run}");
    for (name, bytes) in [(IMAGE, &big[..]), (EMPTY, b""), (VIEW, b"<?php 1;")] {
        assert_eq!(
            std::fs::read(mount.join(name)).unwrap(),
            bytes,
            "{name} at <mount>/name"
        );
        let (source, target) = (
            ezdb_site.stat(name).await.unwrap().unwrap(),
            dfs.stat(name).await.unwrap().unwrap(),
        );
        assert_eq!(
            (target.mtime, &target.scope, &target.datatype, target.size),
            (source.mtime, &source.scope, &source.datatype, source.size),
            "{name} keeps its metadata"
        );
    }
    assert!(dfs.stat(DELETED).await.unwrap().is_none());
    assert!(dfs.stat(&lock).await.unwrap().is_none());

    // Resumed: nothing to copy; a changed source file is copied again; a target file with the
    // right row but other bytes (a damaged copy) is found by the verification and replaced.
    let again = json(&migrate(&[]));
    assert_eq!(
        (again["copied"].as_u64(), again["already"].as_u64()),
        (Some(0), Some(3)),
        "{again}"
    );
    ezdb_site
        .store(EMPTY, b"now with bytes", &at(now - 5, "binaryfile", "application/pdf"))
        .await
        .unwrap();
    let mut damaged = big.clone();
    damaged[1000] ^= 0xff;
    std::fs::write(mount.join(IMAGE), &damaged).unwrap();
    let repaired = json(&migrate(&[]));
    assert_eq!(
        (repaired["copied"].as_u64(), repaired["already"].as_u64()),
        (Some(2), Some(1)),
        "{repaired}"
    );
    assert_eq!(std::fs::read(mount.join(IMAGE)).unwrap(), big);
    assert_eq!(dfs.fetch(EMPTY).await.unwrap(), b"now with bytes");

    // A node already writing to the new layout wins over the copy.
    dfs.store(VIEW, b"newer", &at(now + 100, "viewcache", "text/php"))
        .await
        .unwrap();
    let kept = json(&migrate(&[]));
    assert_eq!(kept["skipped"]["newer-in-target"], 1, "{kept}");
    assert_eq!(dfs.fetch(VIEW).await.unwrap(), b"newer");
}

#[tokio::test]
async fn dfs_to_ezdb_in_another_database_round_trips_and_bad_sides_are_refused() {
    let source_db = TestDb::create_with(Schema::LegacyDfs).await;
    let mount = TempDir::new("migrate-back-mount");
    let dfs = dfs_cluster(&source_db.url, mount.path()).await;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    dfs.store(IMAGE, &big, &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    dfs.store(VIEW, b"view", &StoreOptions::new("viewcache", "text/php"))
        .await
        .unwrap();
    let target_db = TestDb::create().await;
    let target = Cluster::connect(ClusterConfig::new(&target_db.url)).await.unwrap();
    target.install_schema().await.unwrap();
    let mount_arg = format!("--mount-point={}", mount.path().display());
    let to_url = format!("--to-url={}", target_db.url);
    let run = json(&ezdb(
        &source_db.url,
        &["migrate", "--from=dfs", "--to=ezdb", &mount_arg, &to_url, "--json"],
    ));
    assert_eq!(run["copied"], 2, "{run}");
    assert_eq!(target.fetch(IMAGE).await.unwrap(), big);
    assert_eq!(target.fetch(VIEW).await.unwrap(), b"view");

    let same = ezdb(&source_db.url, &["migrate", "--from=dfs", "--to=dfs", &mount_arg]);
    assert!(!same.status.success());
    assert!(String::from_utf8_lossy(&same.stderr).contains("same tables"));
    let no_tables = ezdb(&source_db.url, &["migrate", "--from=dfs", "--to=ezdb", &mount_arg]);
    assert!(!no_tables.status.success());
    let err = String::from_utf8_lossy(&no_tables.stderr).into_owned();
    assert!(
        err.contains("schema install") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_killed_midway_and_run_again_loses_nothing_and_verifies_every_byte() {
    use sqlx::Connection;
    let db = TestDb::create().await;
    let source = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    source.install_schema().await.unwrap();
    let mount = TempDir::new("migrate-kill-mount");
    let target = dfs_cluster(&db.url, mount.path()).await;
    target.install_schema().await.unwrap();
    let names: Vec<String> = (0..200)
        .map(|i| format!("var/site/storage/images/{}/{i}.jpg", i % 7))
        .collect();
    let content = |i: usize| -> Vec<u8> { (0..40_000 + i * 97).map(|b| (b * 31 + i) as u8).collect() };
    for (i, name) in names.iter().enumerate() {
        source
            .store(name, &content(i), &StoreOptions::new("image", "image/jpeg"))
            .await
            .unwrap();
    }
    let mount_arg = format!("--mount-point={}", mount.path().display());
    // A spool of the test's own: the killed run cannot remove the one it would make itself.
    let spool = TempDir::new("migrate-kill-spool");
    let spool_arg = format!("--spool={}", spool.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .env("EZDB_URL", &db.url)
        .env_remove("EZDB_LAYOUT")
        .env_remove("EZDB_MOUNT_POINT")
        .args(["migrate", "--from=ezdb", "--to=dfs", &mount_arg, &spool_arg])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed (SIGKILL) once it has copied some of the files, not all.
    let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
    let started = std::time::Instant::now();
    let copied_before_kill = loop {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ezdfsfile")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if n >= 20 {
            child.kill().unwrap();
            child.wait().unwrap();
            break n;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "the migration copied nothing for two minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the migration ended before it could be killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ezdfsfile")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(n < names.len() as i64, "killed midway: {n} of {} copied", names.len());
    // Every row the killed run committed reads whole.
    for name in &names {
        if let Some(meta) = target.stat(name).await.unwrap() {
            assert_eq!(target.fetch(name).await.unwrap().len() as u64, meta.size, "{name}");
        }
    }
    let rerun = json(&ezdb(
        &db.url,
        &["migrate", "--from=ezdb", "--to=dfs", &mount_arg, "--json"],
    ));
    let (copied, already) = (rerun["copied"].as_i64().unwrap(), rerun["already"].as_i64().unwrap());
    assert_eq!(copied + already, names.len() as i64, "{rerun}");
    assert!(
        already >= copied_before_kill - 1,
        "the killed run's copies are kept: {rerun}"
    );
    for (i, name) in names.iter().enumerate() {
        assert_eq!(target.fetch(name).await.unwrap(), content(i), "{name}");
    }
    let leftovers: Vec<_> = walk(mount.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".ezdb-"))
        .collect();
    assert!(
        leftovers.len() <= 1,
        "at most the killed write's temporary file: {leftovers:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
