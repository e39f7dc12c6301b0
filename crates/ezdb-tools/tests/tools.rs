// The real ezcache and ezdb binaries against a real MariaDB: clear and purge by id, age and
// scope, interrupted purges, a large purge beside live readers, import/export round trips,
// check and repair, stats, and bad arguments.

mod common;

use common::{failed, ok};
use ezdb_core::{Cluster, ClusterConfig, StoreOptions};
use ezdb_testdb::TestDb;
use sqlx::{Connection, Executor};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

async fn setup() -> (TestDb, Cluster) {
    let db = TestDb::create().await;
    let cluster = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    cluster.install_schema().await.unwrap();
    (db, cluster)
}

fn tool(bin: &str, db: &TestDb, args: &[&str]) -> Output {
    let path = match bin {
        "ezcache" => env!("CARGO_BIN_EXE_ezcache"),
        _ => env!("CARGO_BIN_EXE_ezdb"),
    };
    Command::new(path).env("EZDB_URL", &db.url).args(args).output().unwrap()
}

fn at(mtime: i64, scope: &str) -> StoreOptions {
    StoreOptions {
        mtime: Some(mtime),
        ..StoreOptions::new(scope, "misc")
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
    n
}

#[tokio::test]
async fn clear_moves_the_key_and_purge_removes_only_older_entries() {
    let (db, c) = setup().await;
    let now = c.now();
    let view = |n: &str| format!("var/site/cache/content/site/{n}.cache");
    c.store(&view("2-old"), b"v", &at(now - 10 * 86_400, "viewcache"))
        .await
        .unwrap();
    c.store(&view("3-recent"), b"v", &at(now - 3_600, "viewcache"))
        .await
        .unwrap();
    c.store("var/site/storage/images/a.png", b"i", &at(now - 10 * 86_400, "image"))
        .await
        .unwrap();
    let out = ok(&tool(
        "ezcache",
        &db,
        &["--cache-dir=var/site/cache", "--clear-id=content", "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let action = &report["actions"][0];
    assert_eq!(
        (&action["item"], &action["action"]),
        (&"content".into(), &"clear".into()),
        "{report}"
    );
    assert_eq!(action["expiry_key"], "content-view-cache", "{report}");
    assert!(action["expiry"].as_i64().unwrap() >= now, "{report}");
    assert!(
        !c.exists(&view("3-recent")).await.unwrap(),
        "cleared on every server at once"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile WHERE expired = 1").await,
        0,
        "no row changed"
    );
    let stats: serde_json::Value = serde_json::from_str(ok(&tool("ezdb", &db, &["stats", "--json"])).trim()).unwrap();
    let views = stats["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "viewcache")
        .unwrap();
    assert_eq!(views["expired_files"], 2, "stats count what the key expired: {stats}");
    assert_eq!(views["expired_by_global_key"], 2, "{stats}");
    c.store(&view("4-after"), b"v", &at(now + 100, "viewcache"))
        .await
        .unwrap();
    ok(&tool(
        "ezcache",
        &db,
        &[
            "--cache-dir=var/site/cache",
            "--clear-id=content",
            "--purge",
            "--expiry=-2 days",
        ],
    ));
    assert!(c.stat(&view("2-old")).await.unwrap().is_none());
    assert!(c.stat(&view("3-recent")).await.unwrap().is_none(), "older than the key");
    assert!(c.exists(&view("4-after")).await.unwrap(), "newer than the key stays");
    assert!(
        c.exists("var/site/storage/images/a.png").await.unwrap(),
        "other items untouched"
    );

    // An item without a key: purge by age alone.
    c.store(
        "var/site/cache/classidentifiers_old.php",
        b"c",
        &at(now - 10 * 86_400, "classidentifiers"),
    )
    .await
    .unwrap();
    c.store(
        "var/site/cache/classidentifiers_new.php",
        b"c",
        &at(now - 3_600, "classidentifiers"),
    )
    .await
    .unwrap();
    ok(&tool(
        "ezcache",
        &db,
        &[
            "--cache-dir=var/site/cache",
            "--clear-id=classid",
            "--purge",
            "--expiry=2 days ago",
        ],
    ));
    assert!(c
        .stat("var/site/cache/classidentifiers_old.php")
        .await
        .unwrap()
        .is_none());
    assert!(c.exists("var/site/cache/classidentifiers_new.php").await.unwrap());
    ok(&tool(
        "ezcache",
        &db,
        &["--cache-dir=var/site/cache", "--clear-id=classid"],
    ));
    assert!(
        !c.exists("var/site/cache/classidentifiers_new.php").await.unwrap(),
        "clear marks it expired"
    );
    assert!(
        c.stat("var/site/cache/classidentifiers_new.php")
            .await
            .unwrap()
            .is_some(),
        "but keeps the row"
    );
}

#[tokio::test]
async fn scope_purge_removes_only_expired_rows_and_dry_run_changes_nothing() {
    let (db, c) = setup().await;
    let now = c.now();
    c.store("img/old-deleted", b"x", &at(now - 10 * 86_400, "image"))
        .await
        .unwrap();
    c.store("img/new-deleted", b"x", &at(now - 3_600, "image"))
        .await
        .unwrap();
    c.store("img/old-live", b"x", &at(now - 10 * 86_400, "image"))
        .await
        .unwrap();
    c.store("bin/old-deleted", b"x", &at(now - 10 * 86_400, "binaryfile"))
        .await
        .unwrap();
    for name in ["img/old-deleted", "img/new-deleted", "bin/old-deleted"] {
        c.delete(name).await.unwrap();
    }
    let dry = ok(&tool(
        "ezcache",
        &db,
        &["--purge", "--scope=image", "--expiry=-2 days", "--dry-run"],
    ));
    assert!(
        dry.contains("- img/old-deleted") && dry.contains("would remove 1"),
        "{dry}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ezdbfile").await, 4);
    let purged = ok(&tool(
        "ezcache",
        &db,
        &["--purge", "--scope=image", "--expiry=-2 days", "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(purged.trim()).unwrap();
    assert_eq!(report["dry_run"], false, "{report}");
    assert_eq!(report["actions"][0]["files"], 1, "{report}");
    assert_eq!(report["actions"][0]["scopes"][0], "image", "{report}");
    assert!(c.stat("img/old-deleted").await.unwrap().is_none());
    assert!(
        c.stat("img/new-deleted").await.unwrap().is_some(),
        "expired too recently"
    );
    assert!(c.exists("img/old-live").await.unwrap(), "live rows never go");
    assert!(
        c.stat("bin/old-deleted").await.unwrap().is_some(),
        "other scopes untouched"
    );
}

#[tokio::test]
async fn an_interrupted_purge_loses_nothing_and_a_rerun_finishes() {
    let (db, c) = setup().await;
    seed_expired(&db, 3_000).await;
    c.store("keep/live", b"live", &StoreOptions::new("bulk", "misc"))
        .await
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezcache"))
        .env("EZDB_URL", &db.url)
        .args([
            "--purge",
            "--scope=bulk",
            "--iteration-limit=100",
            "--iteration-sleep=0.05",
        ])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let left = count(&db, "SELECT COUNT(*) FROM ezdbfile WHERE expired = 1").await;
    assert!(left > 0 && left < 3_000, "killed midway: {left} expired rows left");
    assert_eq!(c.fetch("keep/live").await.unwrap(), b"live");
    ok(&tool("ezcache", &db, &["--purge", "--scope=bulk"]));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ezdbfile WHERE expired = 1").await, 0);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile_data").await,
        1,
        "only the live file's chunk"
    );
    assert_eq!(c.fetch("keep/live").await.unwrap(), b"live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_200000_rows_never_blocks_readers_for_a_second() {
    let (db, c) = setup().await;
    seed_expired(&db, 200_000).await;
    c.store("keep/hot", &vec![7u8; 100_000], &StoreOptions::new("bulk", "misc"))
        .await
        .unwrap();
    let reader = c.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    let reads = tokio::spawn(async move {
        let (mut slowest, mut n) = (Duration::ZERO, 0u32);
        while !stop_reader.load(std::sync::atomic::Ordering::SeqCst) {
            let started = Instant::now();
            assert_eq!(reader.fetch("keep/hot").await.unwrap().len(), 100_000);
            slowest = slowest.max(started.elapsed());
            n += 1;
        }
        (slowest, n)
    });
    let purge = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_ezcache"))
                .env("EZDB_URL", url)
                .args(["--purge", "--scope=bulk"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (slowest, n) = reads.await.unwrap();
    let out = ok(&purge);
    assert!(out.contains("removed 200000"), "{out}");
    assert!(
        n > 10 && slowest < Duration::from_secs(1),
        "{n} reads, slowest {slowest:?}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ezdbfile").await, 1);
}

/// `n` soft-deleted one-chunk rows of scope `bulk`, written by SQL for speed.
async fn seed_expired(db: &TestDb, n: u32) {
    let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
    conn.execute(
        format!(
            "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
             SELECT 'misc', CONCAT('bulk/', seq), CONCAT('bulk/', seq), MD5(CONCAT('bulk/', seq)), 'bulk', 3, -1000, 1 FROM seq_1_to_{n}"
        )
        .as_str(),
    )
    .await
    .unwrap();
    conn.execute(
        format!("INSERT INTO ezdbfile_data SELECT MD5(CONCAT('bulk/', seq)), 0, 'abc' FROM seq_1_to_{n}").as_str(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn import_then_export_round_trips_byte_for_byte() {
    let (db, c) = setup().await;
    let site = scratch("site");
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "var/site/storage/images/a/1-1-eng-GB/ünïcødé name.jpg",
            (0..=255u8).cycle().take(100_000).collect(),
        ),
        ("var/site/storage/original/application/empty.pdf", Vec::new()),
        ("var/site/storage/original/video/clip.mp4", vec![1; 70_000]),
        ("var/site/cache/content/site/2-abc.cache", b"<?php return 1;".to_vec()),
    ];
    for (name, bytes) in &files {
        let path = site.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    std::fs::create_dir_all(site.join("var/site/log")).unwrap();
    std::fs::write(site.join("var/site/log/error.log"), b"not clustered").unwrap();
    let site_arg = site.to_str().unwrap();
    let dry = ok(&tool("ezdb", &db, &["import", site_arg, "--dry-run"]));
    assert!(
        dry.contains("would store 4") && dry.contains("1 not clustered"),
        "{dry}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ezdbfile").await, 0);
    let out = ok(&tool("ezdb", &db, &["import", site_arg, "--json"]));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (summary["stored_files"].as_u64(), summary["errors"].as_u64()),
        (Some(4), Some(0)),
        "{out}"
    );
    let again = ok(&tool("ezdb", &db, &["import", site_arg]));
    assert!(
        again.contains("stored 0 file(s)") && again.contains("4 already"),
        "resumable: {again}"
    );
    let image = c.stat(files[0].0).await.unwrap().unwrap();
    assert_eq!((image.scope.as_str(), image.datatype.as_str()), ("image", "image/jpeg"));
    assert_eq!(c.stat(files[2].0).await.unwrap().unwrap().scope, "mediafile");

    let out_dir = scratch("export");
    ok(&tool("ezdb", &db, &["export", out_dir.to_str().unwrap()]));
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(out_dir.join(name)).unwrap(), bytes, "{name}");
    }
    std::fs::remove_dir_all(&site).unwrap();
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[tokio::test]
async fn check_repairs_and_stats_report_as_json() {
    let (db, c) = setup().await;
    c.store("a", &vec![1; 70_000], &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let clean = ok(&tool("ezdb", &db, &["check", "--verify"]));
    assert!(
        clean.contains("0 problem(s)") && clean.contains("1 file(s) verified"),
        "{clean}"
    );
    let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
    conn.execute("INSERT INTO ezdbfile_data VALUES (MD5('a'), 140000, 'stray')")
        .await
        .unwrap();
    let found = failed(&tool("ezdb", &db, &["check"]));
    assert!(found.contains("1 problem(s) left"), "{found}");
    let repaired = ok(&tool("ezdb", &db, &["check", "--repair", "--json"]));
    let report: serde_json::Value = serde_json::from_str(repaired.trim()).unwrap();
    assert_eq!(report["problems"][0]["kind"], "layout");
    assert_eq!(report["problems"][0]["repaired"], true);
    let stats: serde_json::Value = serde_json::from_str(ok(&tool("ezdb", &db, &["stats", "--json"])).trim()).unwrap();
    assert_eq!(stats["scopes"][0]["files"], 1);
    assert_eq!(stats["scopes"][0]["bytes"], 70_000);
    let schema = ok(&tool("ezdb", &db, &["schema", "check"]));
    assert!(schema.contains("compatible"));
}

/// Every chunk as (name_hash, offset, md5 of the bytes) and every row, sorted: the whole state.
async fn snapshot(db: &TestDb) -> (Vec<(String, u64, String)>, Vec<(String, String, u64)>) {
    let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
    let chunks = sqlx::query_as(
        "SELECT CAST(name_hash AS CHAR), CAST(`offset` AS UNSIGNED), MD5(filedata) FROM ezdbfile_data ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let rows = sqlx::query_as("SELECT CAST(name_hash AS CHAR), CAST(name AS CHAR), size FROM ezdbfile ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    (chunks, rows)
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn repair_keeps_every_byte_and_restore_brings_back_what_it_set_aside() {
    let (db, c) = setup().await;
    let opts = StoreOptions::new("image", "image/png");
    let files: [(&str, usize); 6] = [
        ("ok", 70_000),
        ("big", 70_000),
        ("zero", 70_000),
        ("overlap", 140_000),
        ("lost", 140_000),
        ("real", 200_000),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        c.store(name, &content(*len, i as u8), &opts).await.unwrap();
    }
    let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
    for sql in [
        "UPDATE ezdbfile SET size = size + 10 WHERE name = 'big'",
        "UPDATE ezdbfile SET size = 0 WHERE name = 'zero'",
        "INSERT INTO ezdbfile_data VALUES (MD5('overlap'), 1000, 'extra')",
        "DELETE FROM ezdbfile_data WHERE name_hash = MD5('lost') AND `offset` = 65535",
        "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, size, mtime, expired)
         SELECT name, name_trunk, 'copyhash', scope, datatype, size, mtime, expired FROM ezdbfile WHERE name = 'real'",
    ] {
        conn.execute(sql).await.unwrap();
    }
    let damaged = snapshot(&db).await;
    let plan: serde_json::Value =
        serde_json::from_slice(&tool("ezdb", &db, &["check", "--repair", "--dry-run", "--json"]).stdout).unwrap();
    assert_eq!(snapshot(&db).await, damaged, "a dry run changes nothing");
    let planned: Vec<_> = plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plan"].clone())
        .collect();
    let report: serde_json::Value =
        serde_json::from_str(ok(&tool("ezdb", &db, &["check", "--repair", "--json"])).trim()).unwrap();
    let done: Vec<_> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plan"].clone())
        .collect();
    assert_eq!(planned, done, "the dry run shows exactly what the repair does");
    assert!(report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] != "found"));
    for (i, (name, len)) in files.iter().enumerate() {
        if *name == "lost" {
            assert!(c.stat(name).await.unwrap().is_none());
        } else {
            assert_eq!(c.fetch(name).await.unwrap(), content(*len, i as u8), "{name}");
        }
    }
    let listed: serde_json::Value =
        serde_json::from_str(ok(&tool("ezdb", &db, &["check", "--quarantine", "--json"])).trim()).unwrap();
    let items = listed["quarantine"].as_array().unwrap();
    assert!(
        items.iter().any(|i| i["name"] == "lost" && i["removed"] == "row"),
        "{listed}"
    );
    let lost_id = items.iter().find(|i| i["name"] == "lost").unwrap()["id"].to_string();
    let text = ok(&tool("ezdb", &db, &["check", "--repair"]));
    assert!(text.contains("0 problem(s)"), "{text}");
    let would = ok(&tool(
        "ezdb",
        &db,
        &["check", &format!("--restore={lost_id}"), "--dry-run"],
    ));
    assert!(would.contains("would restore") && would.contains("lost"), "{would}");
    ok(&tool("ezdb", &db, &["check", "--restore"]));
    let restored = snapshot(&db).await;
    assert_eq!(restored.0, damaged.0, "every chunk is back, byte for byte");
    assert_eq!(restored.1, damaged.1, "every row is back as it was");
    assert!(failed(&tool("ezdb", &db, &["check", "--restore=999"])).contains("not restored"));
}

#[tokio::test]
async fn a_repair_racing_uploads_of_the_rows_it_examines_never_removes_an_upload() {
    let (db, c) = setup().await;
    let opts = StoreOptions::new("image", "image/png");
    let names: Vec<String> = (0..3000).map(|i| format!("var/site/storage/f{i}.png")).collect();
    for name in &names {
        c.store(name, b"first version", &opts).await.unwrap();
    }
    let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
    // Half lose their only chunk (a repair sets the row aside), half say 10 bytes too many.
    conn.execute("SET FOREIGN_KEY_CHECKS = 0").await.unwrap();
    conn.execute("DELETE d FROM ezdbfile_data d JOIN ezdbfile f ON f.name_hash = d.name_hash WHERE MID(f.name, LENGTH(f.name) - 4, 1) IN ('1', '3', '5', '7', '9')")
        .await
        .unwrap();
    conn.execute(
        "UPDATE ezdbfile SET size = size + 10 WHERE MID(name, LENGTH(name) - 4, 1) IN ('0', '2', '4', '6', '8')",
    )
    .await
    .unwrap();
    let repair = Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .env("EZDB_URL", &db.url)
        .args(["check", "--repair"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Meanwhile every file is uploaded again, in the order of the keys the repair walks, from
    // the far end, so some uploads land before the repair reaches them and some after.
    let mut order = names.clone();
    order.sort_by_key(|n| ezdb_core::name_hash(n));
    order.reverse();
    let uploads: Vec<_> = order
        .chunks(750)
        .map(|part| {
            let (c, part, opts) = (c.clone(), part.to_vec(), opts.clone());
            tokio::spawn(async move {
                for name in part {
                    c.store(&name, format!("uploaded {name}").as_bytes(), &opts)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for upload in uploads {
        upload.await.unwrap();
    }
    let repair = tokio::task::spawn_blocking(move || repair.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&repair.stdout);
    assert!(
        stdout.contains("problem(s)"),
        "the repair ran: {stdout}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    for name in &names {
        assert_eq!(
            c.fetch(name).await.unwrap_or_else(|e| panic!("{name}: {e}\n{stdout}")),
            format!("uploaded {name}").as_bytes(),
            "{name}: the upload survives the repair"
        );
    }
    let changed = stdout.matches("changed since the check").count();
    let repaired = stdout.matches("(repaired").count();
    println!("repairs: {repaired} done before the upload, {changed} found the upload and left it alone");
    assert_eq!(
        repaired + changed,
        3000,
        "the check (in batches of 1000 rows) saw every damaged row: {stdout}"
    );
}

#[tokio::test]
async fn expiry_means_what_the_legacy_scripts_mean_and_never_the_future() {
    let (db, c) = setup().await;
    let now = c.now();
    for (name, age_days) in [("img/40-days", 40), ("img/10-days", 10)] {
        c.store(name, b"x", &at(now - age_days * 86_400, "image"))
            .await
            .unwrap();
        c.delete(name).await.unwrap();
    }
    let view = "var/site/cache/content/site/2-a.cache";
    c.store(view, b"v", &at(now - 3_600, "viewcache")).await.unwrap();
    // clusterpurge.php: --expiry=30 is 30 days (and its --scopes spelling works).
    let purged = ok(&tool("ezcache", &db, &["--purge", "--scopes=image", "--expiry=30"]));
    assert!(purged.contains("removed 1 file(s)"), "{purged}");
    assert!(c.stat("img/40-days").await.unwrap().is_none());
    assert!(c.stat("img/10-days").await.unwrap().is_some(), "10 days < 30 days");
    // Nothing an operator types means "the future" for a purge.
    for args in [
        &["--purge", "--scope=image", "--expiry=-3600"][..],
        &["--purge", "--scope=image", "--expiry=+1 day"],
        &[
            "--cache-dir=var/site/cache",
            "--clear-id=content",
            "--purge",
            "--expiry=+1 hour",
        ],
        &[
            "--cache-dir=var/site/cache",
            "--clear-id=content",
            "--purge",
            "--expiry=@9999999999",
        ],
    ] {
        let line = failed(&tool("ezcache", &db, args));
        assert!(line.contains("future"), "{args:?}: {line}");
    }
    // ezcache.php hands --expiry to strtotime: a bare number is refused, not guessed.
    let line = failed(&tool(
        "ezcache",
        &db,
        &[
            "--cache-dir=var/site/cache",
            "--clear-id=content",
            "--purge",
            "--expiry=-3600",
        ],
    ));
    assert!(line.contains("-3600 days") || line.contains("seconds ago"), "{line}");
    assert!(c.exists(view).await.unwrap(), "no refused purge removed anything");
    assert!(c.stat("img/10-days").await.unwrap().is_some());
    // A purge or clear that matches nothing says so.
    let nothing = ok(&tool("ezcache", &db, &["--purge", "--scope=binaryfile", "--expiry=30"]));
    assert!(nothing.contains("nothing matched"), "{nothing}");
    let nothing = ok(&tool(
        "ezcache",
        &db,
        &["--cache-dir=var/site/cache", "--clear-id=rss_cache"],
    ));
    assert!(nothing.contains("nothing matched"), "{nothing}");
    // A real purge lists no names and no "... and N more".
    c.store(
        "var/site/cache/content/site/3-b.cache",
        b"v",
        &at(now - 10 * 86_400, "viewcache"),
    )
    .await
    .unwrap();
    let purged = ok(&tool(
        "ezcache",
        &db,
        &[
            "--cache-dir=var/site/cache",
            "--clear-id=content",
            "--purge",
            "--expiry=-2 days",
        ],
    ));
    assert!(purged.contains("removed 1") && !purged.contains("more"), "{purged}");
}

#[tokio::test]
async fn cache_dir_is_found_or_a_wrong_one_is_named() {
    let (db, c) = setup().await;
    c.store("var/site/cache/rss/a.xml", b"x", &at(c.now() - 60, "rss"))
        .await
        .unwrap();
    // Not given: the only cache directory of the cluster is used.
    let out = tool("ezcache", &db, &["--clear-id=rss_cache"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cache-dir=var/site/cache"),
        "{out:?}"
    );
    assert!(ok(&out).contains("marked 1 file(s)"));
    // A wrong one warns, naming the directories the cluster holds.
    let out = tool("ezcache", &db, &["--cache-dir=var/other/cache", "--clear-id=rss_cache"]);
    let warning = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        warning.contains("warning") && warning.contains("var/site/cache"),
        "{warning}"
    );
    assert!(ok(&out).contains("nothing matched"));
    // Several sites: the choice is the operator's.
    c.store("var/two/cache/rss/b.xml", b"x", &at(c.now() - 60, "rss"))
        .await
        .unwrap();
    let line = failed(&tool("ezcache", &db, &["--clear-id=rss_cache"]));
    assert!(
        line.contains("var/site/cache") && line.contains("var/two/cache"),
        "{line}"
    );
}

#[tokio::test]
async fn usage_errors_are_one_line_and_exit_1_and_every_report_has_json() {
    let (db, _c) = setup().await;
    for (bin, args) in [
        ("ezcache", &["--no-such-flag"][..]),
        ("ezcache", &["--iteration-limit=abc", "--purge", "--scope=x"]),
        ("ezdb", &[]),
        ("ezdb", &["frobnicate"]),
        ("ezdb", &["check", "--bogus"]),
    ] {
        let out = tool(bin, &db, args);
        assert_eq!(out.status.code(), Some(1), "{bin} {args:?}: {out:?}");
        let line = failed(&out);
        assert!(line.contains("see --help"), "{line}");
    }
    let help = tool("ezdb", &db, &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples"));
    let list: serde_json::Value =
        serde_json::from_str(ok(&tool("ezcache", &db, &["--list", "--json"])).trim()).unwrap();
    assert!(
        list["clustered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == "content"),
        "{list}"
    );
    assert!(list["local_only"].as_array().is_some());
}

#[tokio::test]
async fn bad_arguments_get_one_clear_line_and_exit_non_zero() {
    let (db, _c) = setup().await;
    assert!(failed(&tool("ezcache", &db, &["--clear-id=nosuch"])).contains("nosuch"));
    assert!(failed(&tool(
        "ezcache",
        &db,
        &["--clear-id=content", "--purge", "--expiry=garbage"]
    ))
    .contains("garbage"));
    assert!(failed(&tool("ezcache", &db, &[])).contains("--clear-id"));
    assert!(failed(&tool("ezcache", &db, &["--purge"])).contains("--scope"));
    let no_db = Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .env_remove("EZDB_URL")
        .arg("stats")
        .output()
        .unwrap();
    assert!(failed(&no_db).contains("EZDB_URL"));
    let wrong = Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .args(["--url=mysql://root:secret@127.0.0.1:1/x", "stats"])
        .output()
        .unwrap();
    let line = failed(&wrong);
    assert!(line.contains("cannot connect") && !line.contains("secret"), "{line}");
    let local = ok(&tool("ezcache", &db, &["--clear-id=ini"]));
    assert!(local.contains("each web server"), "{local}");
}

fn scratch(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ezdb-tools-{what}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn export_spreads_crowded_directories_and_import_restores_the_names() {
    let (db, c) = setup().await;
    for i in 0..600 {
        c.store(
            &format!("var/s/storage/images/many/{i}.png"),
            format!("{i}").as_bytes(),
            &StoreOptions::new("image", "image/png"),
        )
        .await
        .unwrap();
    }
    c.store(
        "var/s/storage/images/few/a.png",
        b"a",
        &StoreOptions::new("image", "image/png"),
    )
    .await
    .unwrap();
    let out = scratch("spread");
    let too_small = failed(&tool(
        "ezdb",
        &db,
        &["export", out.to_str().unwrap(), "--max-per-dir=10"],
    ));
    assert!(too_small.contains("256"), "{too_small}");
    ok(&tool(
        "ezdb",
        &db,
        &["export", out.to_str().unwrap(), "--max-per-dir=256"],
    ));
    let mut crowded = Vec::new();
    let mut pending = vec![out.clone()];
    while let Some(dir) = pending.pop() {
        let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        if entries.len() > 256 {
            crowded.push(dir.clone());
        }
        pending.extend(entries.into_iter().filter(|p| p.is_dir()));
    }
    assert!(crowded.is_empty(), "{crowded:?}");
    assert_eq!(
        std::fs::read(out.join("var/s/storage/images/few/a.png")).unwrap(),
        b"a",
        "uncrowded dirs mirror names"
    );
    let manifest = std::fs::read_to_string(out.join(".ezdb-spread.tsv")).unwrap();
    assert_eq!(manifest.lines().count(), 600);

    let (db2, c2) = setup().await;
    let imported = ok(&tool("ezdb", &db2, &["import", out.to_str().unwrap()]));
    assert!(imported.contains("stored 601 file(s)"), "{imported}");
    assert_eq!(c2.fetch("var/s/storage/images/many/599.png").await.unwrap(), b"599");
    std::fs::remove_dir_all(&out).unwrap();
}

/// A TCP link to the database that forwards `budget` bytes (both directions together), then
/// cuts every connection and refuses new ones: a database lost in the middle of a bulk job,
/// seen by the tool exactly as the network would show it.
fn cutting_link(db: &TestDb, budget: u64) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let rest = db.url.split_once("://").unwrap().1;
    let (authority, database) = rest.split_once('/').unwrap();
    let (user, target) = authority.rsplit_once('@').unwrap();
    let target = target.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("mysql://{user}@{}/{database}", listener.local_addr().unwrap());
    let used = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            if cut.load(Ordering::SeqCst) {
                continue; // dropped: refused
            }
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            streams
                .lock()
                .unwrap()
                .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let (used, cut, streams) = (used.clone(), cut.clone(), streams.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        if used.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > budget {
                            cut.store(true, Ordering::SeqCst);
                            for s in streams.lock().unwrap().iter() {
                                let _ = s.shutdown(Shutdown::Both);
                            }
                            return;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    url
}

/// The one error line of a failed run; progress lines (stderr without a terminal) may precede it.
fn error_line(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(stderr.trim_end().ends_with(errors[0]), "the error comes last: {stderr}");
    errors[0].to_owned()
}

/// Runs a tool against `url`, failing the test if it has not ended within 60 s (a hang).
fn tool_at(url: &str, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .env("EZDB_URL", url)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("ezdb {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn import_and_export_stop_at_a_lost_connection_with_one_line_and_resume() {
    let (db, c) = setup().await;
    let site = scratch("lost-link-site");
    let files: Vec<(String, Vec<u8>)> = (0..600)
        .map(|i| {
            (
                format!("var/site/storage/images/l/{i}.png"),
                content(1000 + i % 7, i as u8),
            )
        })
        .collect();
    for (name, bytes) in &files {
        let path = site.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let site_arg = site.to_str().unwrap();
    let cut = tool_at(&cutting_link(&db, 400_000), &["import", site_arg]);
    let line = error_line(&cut);
    assert!(
        line.contains("stopped after") && line.contains("run the same command again"),
        "{line}"
    );
    let stored_before = count(&db, "SELECT COUNT(*) FROM ezdbfile").await;
    assert!(
        stored_before > 0 && stored_before < 600,
        "cut in the middle: {stored_before}"
    );
    let resumed = ok(&tool("ezdb", &db, &["import", site_arg]));
    assert!(
        resumed.contains(&format!("{stored_before} already in the cluster")),
        "{resumed}"
    );
    for (name, bytes) in files.iter().step_by(97) {
        assert_eq!(&c.fetch(name).await.unwrap(), bytes, "{name}");
    }

    let out = scratch("lost-link-export");
    let out_arg = out.to_str().unwrap();
    let cut = tool_at(&cutting_link(&db, 300_000), &["export", out_arg]);
    let line = error_line(&cut);
    assert!(line.contains("stopped after"), "{line}");
    let resumed = ok(&tool("ezdb", &db, &["export", out_arg]));
    assert!(resumed.contains("already there"), "{resumed}");
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
    // An unusable target: one line, not one per file.
    let blocked = scratch("blocked-export");
    std::fs::write(blocked.join("var"), b"a file where a directory must go").unwrap();
    let line = error_line(&tool("ezdb", &db, &["export", blocked.to_str().unwrap()]));
    assert!(line.contains("stopped after 0 file(s)"), "{line}");
    for dir in [site, out, blocked] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn import_keeps_the_clusters_deleted_and_newer_files_and_names_what_it_cannot_store() {
    use std::os::unix::ffi::OsStrExt;
    let (db, c) = setup().await;
    let site = scratch("careful-import");
    let write = |name: &str, bytes: &[u8], mtime: i64| {
        let path = site.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let when = std::time::UNIX_EPOCH + Duration::from_secs(mtime as u64);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    let now = c.now();
    write("var/site/storage/images/deleted.png", b"old local", now - 7200);
    write("var/site/storage/images/newer.png", b"old local", now - 7200);
    write("var/site/storage/images/new.png", b"fresh", now - 60);
    write("var/site/cache/sortkey_1a2b.php", b"<?php return 1;", now - 60);
    c.store("var/site/storage/images/deleted.png", b"gone", &at(now - 3600, "image"))
        .await
        .unwrap();
    c.delete("var/site/storage/images/deleted.png").await.unwrap();
    c.store(
        "var/site/storage/images/newer.png",
        b"the cluster's newer version",
        &at(now - 3600, "image"),
    )
    .await
    .unwrap();
    let images = site.join("var/site/storage/images");
    std::os::unix::fs::symlink(images.join("new.png"), images.join("link.png")).unwrap();
    let odd = images.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    std::fs::write(&odd, b"latin-1 name").unwrap();
    let site_arg = site.to_str().unwrap();

    let dry = tool("ezdb", &db, &["import", site_arg, "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        dry_out.contains("would store image: 1 file(s)") && dry_out.contains("would store sortkey: 1 file(s)"),
        "{dry_out}"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile").await,
        2,
        "a dry run stores nothing"
    );

    let out = tool("ezdb", &db, &["import", site_arg, "--json"]);
    assert_eq!(out.status.code(), Some(1), "files not stored mean failure");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let not_stored: Vec<String> = report["not_stored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {}", f["name"], f["reason"]))
        .collect();
    assert!(
        not_stored
            .iter()
            .any(|f| f.contains("link.png") && f.contains("symbolic link")),
        "{not_stored:?}"
    );
    assert!(
        not_stored.iter().any(|f| f.contains("caf") && f.contains("UTF-8")),
        "{not_stored:?}"
    );
    assert_eq!(report["kept_cluster_version"]["deleted in the cluster"], 1, "{report}");
    assert_eq!(report["kept_cluster_version"]["newer in the cluster"], 1, "{report}");
    assert!(
        c.stat("var/site/storage/images/deleted.png")
            .await
            .unwrap()
            .unwrap()
            .deleted,
        "not resurrected"
    );
    assert_eq!(
        c.fetch("var/site/storage/images/newer.png").await.unwrap(),
        b"the cluster's newer version"
    );
    assert_eq!(
        c.fetch("var/site/cache/sortkey_1a2b.php").await.unwrap(),
        b"<?php return 1;"
    );
    assert_eq!(c.fetch("var/site/storage/images/new.png").await.unwrap(), b"fresh");

    std::fs::remove_file(images.join("link.png")).unwrap();
    std::fs::remove_file(&odd).unwrap();
    ok(&tool("ezdb", &db, &["import", site_arg, "--overwrite"]));
    assert_eq!(
        c.fetch("var/site/storage/images/newer.png").await.unwrap(),
        b"old local"
    );
    assert_eq!(
        c.fetch("var/site/storage/images/deleted.png").await.unwrap(),
        b"old local"
    );
    std::fs::remove_dir_all(site).unwrap();
}

#[tokio::test]
async fn verify_against_a_manifest_names_every_difference() {
    use sha2::Digest;
    let (db, c) = setup().await;
    let opts = StoreOptions::new("image", "image/png");
    for name in ["var/s/storage/a.png", "var/s/storage/b.png", "var/s/storage/c.png"] {
        c.store(name, name.as_bytes(), &opts).await.unwrap();
    }
    let dir = scratch("manifest");
    let manifest = dir.join("manifest.txt");
    // The output of --verify is a manifest; so is sha256sum's (binary mode, ./ paths).
    let verified = ok(&tool("ezdb", &db, &["check", "--verify"]));
    let sha_c = format!("{:x}", sha2::Sha256::digest(b"var/s/storage/c.png"));
    let verified: String = verified
        .lines()
        .filter(|l| !l.contains("c.png"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, format!("{verified}{sha_c} *./var/s/storage/c.png\n")).unwrap();
    let path = manifest.to_str().unwrap();
    let same = ok(&tool("ezdb", &db, &["check", &format!("--against={path}")]));
    assert!(same.contains("3 file(s) verified"), "{same}");
    c.store("var/s/storage/b.png", b"changed", &opts).await.unwrap();
    c.delete("var/s/storage/c.png").await.unwrap();
    let out = tool("ezdb", &db, &["check", &format!("--against={path}")]);
    let line = failed(&out);
    assert!(line.contains("2 manifest mismatch(es)"), "{line}");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("MISMATCH var/s/storage/b.png: differs"), "{report}");
    assert!(
        report.contains("MISMATCH var/s/storage/c.png: in the manifest, not a live file"),
        "{report}"
    );
    std::fs::write(&manifest, "not a manifest\n").unwrap();
    assert!(failed(&tool("ezdb", &db, &["check", &format!("--against={path}")])).contains("no '<sha256>"));
    std::fs::remove_dir_all(dir).unwrap();
}
