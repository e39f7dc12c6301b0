// The real ezcache and ezdb binaries on an eZDFS site (legacy DDL, a mount directory the test
// creates): the layout flags, clear and purge across both tables and the mount, import/export,
// stats, the mount check and its quarantine-only repair, and bad layout settings.

mod common;

use common::{failed_output, ok};
use ezdb_core::{Cluster, ClusterConfig, DfsLayout, Layout, StoreOptions};
use ezdb_testdb::{Schema, TempDir, TestDb};
use std::process::{Command, Output};

struct Site {
    db: TestDb,
    mount: TempDir,
    cluster: Cluster,
}

async fn site() -> Site {
    let db = TestDb::create_with(Schema::LegacyDfs).await;
    let mount = TempDir::new("tools-dfs-mount");
    let config = ClusterConfig::new(&db.url).with_layout(Layout::Dfs(DfsLayout::new(mount.path())));
    let cluster = Cluster::connect(config)
        .await
        .expect("connect to the DFS test database");
    Site { db, mount, cluster }
}

impl Site {
    /// A tool run with the DFS layout given the way cron jobs give it: environment variables.
    fn tool(&self, bin: &str, args: &[&str]) -> Output {
        let path = match bin {
            "ezcache" => env!("CARGO_BIN_EXE_ezcache"),
            _ => env!("CARGO_BIN_EXE_ezdb"),
        };
        Command::new(path)
            .env("EZDB_URL", &self.db.url)
            .env("EZDB_LAYOUT", "dfs")
            .env("EZDB_MOUNT_POINT", self.mount.path())
            .args(args)
            .output()
            .unwrap()
    }

    async fn rows(&self, table: &str) -> i64 {
        use sqlx::Connection;
        let mut conn = sqlx::mysql::MySqlConnection::connect(&self.db.url).await.unwrap();
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n
    }
}

const IMAGE: &str = "var/site/storage/images/1/2/a.jpg";
const VIEW: &str = "var/site/cache/content/site/2-old.cache";

#[tokio::test]
async fn ezcache_clears_and_purges_caches_in_the_cache_table_and_on_the_mount() {
    let s = site().await;
    let now = s.cluster.now();
    let old = StoreOptions {
        mtime: Some(now - 10 * 86_400),
        ..StoreOptions::new("viewcache", "text/plain")
    };
    s.cluster.store(VIEW, b"view", &old).await.unwrap();
    s.cluster
        .store(IMAGE, b"image", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    assert_eq!((s.rows("ezdfsfile").await, s.rows("ezdfsfile_cache").await), (1, 1));

    ok(&s.tool("ezcache", &["--cache-dir=var/site/cache", "--clear-id=content"]));
    assert!(
        s.mount.join("var/site/cache/expiry.php").exists(),
        "the clear is in the clustered expiry.php legacy nodes read, on the mount"
    );
    assert_eq!((s.rows("ezdfsfile").await, s.rows("ezdfsfile_cache").await), (1, 2));
    assert!(s.mount.join(VIEW).exists(), "a clear marks, it does not remove");

    let out = ok(&s.tool(
        "ezcache",
        &["--cache-dir=var/site/cache", "--clear-id=content", "--purge"],
    ));
    assert!(out.contains("removed 1 file"), "{out}");
    assert!(
        !s.mount.join(VIEW).exists(),
        "the purged cache's bytes are gone from the mount"
    );
    assert_eq!((s.rows("ezdfsfile").await, s.rows("ezdfsfile_cache").await), (1, 1));
    assert_eq!(s.cluster.fetch(IMAGE).await.unwrap(), b"image");

    let stats = ok(&s.tool("ezdb", &["stats", "--json"]));
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    let scopes: Vec<&str> = stats["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scope"].as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"image") && scopes.contains(&"expirycache"), "{stats}");
}

#[tokio::test]
async fn import_and_export_round_trip_through_the_mount() {
    let s = site().await;
    let tree = TempDir::new("tools-dfs-site");
    let files: Vec<(&str, Vec<u8>)> = vec![
        (IMAGE, (0..=255u8).cycle().take(70_000).collect()),
        ("var/site/storage/original/application/empty.pdf", Vec::new()),
        ("var/site/cache/content/site/2-abc.cache", b"<?php return 1;".to_vec()),
    ];
    for (name, bytes) in &files {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    ok(&s.tool("ezdb", &["import", tree.to_str().unwrap()]));
    assert_eq!((s.rows("ezdfsfile").await, s.rows("ezdfsfile_cache").await), (2, 1));
    for (name, bytes) in &files {
        assert_eq!(
            &std::fs::read(s.mount.join(name)).unwrap(),
            bytes,
            "bytes at <mount>/{name}"
        );
    }
    let out = TempDir::new("tools-dfs-export");
    ok(&s.tool("ezdb", &["export", out.to_str().unwrap()]));
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
}

#[tokio::test]
async fn ezdb_check_compares_rows_and_mount_and_repair_only_quarantines_orphans() {
    let s = site().await;
    s.cluster
        .store(IMAGE, b"image", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    let gone = "var/site/storage/images/9/gone.jpg";
    s.cluster
        .store(gone, b"gone", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    std::fs::remove_file(s.mount.join(gone)).unwrap();
    let orphan = "var/site/storage/images/7/orphan.jpg";
    std::fs::create_dir_all(s.mount.join(orphan).parent().unwrap()).unwrap();
    std::fs::write(s.mount.join(orphan), b"orphan").unwrap();

    let (young, _) = failed_output(&s.tool("ezdb", &["check"]));
    assert!(
        young.contains("missing-file") && !young.contains("orphan-file"),
        "the default grace passes over a file that may be a write in progress: {young}"
    );
    let (out, err) = failed_output(&s.tool("ezdb", &["check", "--mount-grace=0"]));
    assert!(
        out.contains("missing-file: var/site/storage/images/9/gone.jpg"),
        "{out}"
    );
    assert!(
        out.contains("orphan-file: var/site/storage/images/7/orphan.jpg"),
        "{out}"
    );
    assert!(
        err.contains("problem(s) left") && err.contains("--repair --dry-run"),
        "{err}"
    );

    let (dry, _) = failed_output(&s.tool("ezdb", &["check", "--mount-grace=0", "--repair", "--dry-run"]));
    assert!(dry.contains("repair would move the file"), "{dry}");
    assert!(s.mount.join(orphan).exists(), "a dry run changes nothing");

    let (repaired, _) = failed_output(&s.tool("ezdb", &["check", "--mount-grace=0", "--repair", "--json"]));
    let report: serde_json::Value = serde_json::from_str(repaired.trim()).unwrap();
    assert_eq!(report["repaired"], 1, "{report}");
    assert_eq!(
        report["left"], 1,
        "the row without its file is for a person to decide: {report}"
    );
    assert!(!s.mount.join(orphan).exists());
    let quarantine = s.mount.join(ezdb_core::MOUNT_QUARANTINE_DIR);
    let moved: Vec<_> = std::fs::read_dir(&quarantine)
        .unwrap()
        .map(|e| e.unwrap().path().join(orphan))
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(std::fs::read(&moved[0]).unwrap(), b"orphan", "moved, never unlinked");

    let (_, err) = failed_output(&s.tool("ezdb", &["check", "--quarantine"]));
    assert!(
        err.contains(ezdb_core::MOUNT_QUARANTINE_DIR) && err.contains("move the file back"),
        "{err}"
    );
    let (_, err) = failed_output(&s.tool("ezdb", &["check", "--mount-grace=0", "--verify"]));
    assert!(err.contains("1 problem(s) left"), "{err}");
}

#[tokio::test]
async fn bad_layout_settings_fail_with_one_line_naming_the_setting() {
    let db = TestDb::create_with(Schema::LegacyDfs).await;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ezdb"))
            .env("EZDB_URL", &db.url)
            .env_remove("EZDB_LAYOUT")
            .env_remove("EZDB_MOUNT_POINT")
            .args(args)
            .output()
            .unwrap()
    };
    let (_, err) = failed_output(&run(&["--layout=dfs", "stats"]));
    assert!(err.contains("mount point"), "{err}");
    let (_, err) = failed_output(&run(&["--layout=s3", "stats"]));
    assert!(err.contains("ezdb, dfs, ibexa-dfs"), "{err}");
    let (_, err) = failed_output(&run(&["--mount-point=/tmp", "stats"]));
    assert!(err.contains("layout is ezdb"), "{err}");
    let missing = TempDir::new("tools-dfs-gone");
    let gone = missing.join("not-there");
    let (_, err) = failed_output(&run(&[
        "--layout=dfs",
        &format!("--mount-point={}", gone.display()),
        "stats",
    ]));
    assert!(err.contains("not-there"), "{err}");
}

#[tokio::test]
async fn schema_check_and_upgrade_judge_the_dfs_tables_not_ezdbfile() {
    let latin1 = TestDb::create_with(Schema::LegacyDfsLatin1).await;
    let mount = TempDir::new("tools-dfs-schema");
    let run = |db: &TestDb, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ezdb"))
            .env("EZDB_URL", &db.url)
            .env("EZDB_LAYOUT", "dfs")
            .env("EZDB_MOUNT_POINT", mount.path())
            .args(args)
            .output()
            .unwrap()
    };
    let check = ok(&run(&latin1, &["schema", "check"]));
    assert!(!check.contains("ezdbfile "), "nothing about eZDB tables: {check}");
    assert!(
        check.contains("[warning] character set latin1 (ezdfsfile:") && check.contains("ezdfsfile_cache:"),
        "{check}"
    );
    let online_only = ok(&run(&latin1, &["schema", "upgrade"]));
    assert!(online_only.contains("needs a maintenance window"), "{online_only}");
    ok(&run(&latin1, &["schema", "upgrade", "--allow-offline"]));
    let after = ok(&run(&latin1, &["schema", "check"]));
    assert!(after.contains("every table is as ezdb creates it"), "{after}");
    // The legacy eZDFS statements work on the upgraded table, and a CJK name now fits.
    use sqlx::Connection;
    let mut conn = sqlx::mysql::MySqlConnection::connect(&latin1.url).await.unwrap();
    sqlx::query(
        "INSERT INTO ezdfsfile (name, name_hash, name_trunk, scope, datatype, size, mtime, expired)
         VALUES (?, MD5(?), ?, 'image', 'image/jpeg', 1, UNIX_TIMESTAMP(), 0)",
    )
    .bind("var/site/storage/images/日本.jpg")
    .bind("var/site/storage/images/日本.jpg")
    .bind("var/site/storage/images/日本.jpg")
    .execute(&mut conn)
    .await
    .unwrap();

    let empty = TestDb::create().await;
    let (_, err) = failed_output(&run(&empty, &["schema", "check"]));
    assert!(err.contains("table ezdfsfile is missing"), "{err}");
    ok(&run(&empty, &["schema", "install"]));
    let installed = ok(&run(&empty, &["schema", "check"]));
    assert!(installed.contains("every table is as ezdb creates it"), "{installed}");
}
