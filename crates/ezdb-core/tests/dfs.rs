// The eZDFS layout on the legacy DDL and a mount directory the test creates: rows in the table
// legacy picks, bytes at <mount>/<name>, a legacy eZDFS node (its SQL and its file operations)
// writing beside ezdb, deletes, purges and the generation protocol.

mod common;

use common::SlowReader;
use ezdb_core::{
    CachePolicy, CacheSource, Cluster, ClusterConfig, DfsLayout, Error, Freshness, Generation, Layout, PurgeFilter,
    Selector, StoreOptions, Visibility,
};
use ezdb_testdb::{LegacyDfsNode, Schema, TempDir, TestDb};
use sqlx::mysql::MySqlConnection;
use sqlx::Connection;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Site {
    db: TestDb,
    mount: TempDir,
    cluster: Cluster,
}

impl Site {
    async fn new() -> Site {
        Site::with(Schema::LegacyDfs, |mount| DfsLayout::new(mount)).await
    }

    async fn with(schema: Schema, layout: impl FnOnce(&Path) -> DfsLayout) -> Site {
        let db = TestDb::create_with(schema).await;
        let mount = TempDir::new("dfs-mount");
        let config = ClusterConfig::new(&db.url).with_layout(Layout::Dfs(layout(mount.path())));
        let cluster = Cluster::connect(config)
            .await
            .expect("connect to the DFS test database");
        Site { db, mount, cluster }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.mount.path().join(name)
    }

    async fn raw(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.db.url).await.expect("raw connection")
    }

    /// (table, mtime, expired, size) of the row, looked up in both tables like an operator would.
    async fn row(&self, name: &str) -> Vec<(String, i64, i64, u64)> {
        let mut found = Vec::new();
        for table in ["ezdfsfile", "ezdfsfile_cache"] {
            let sql = format!(
                "SELECT CAST(mtime AS SIGNED), CAST(expired AS SIGNED), CAST(size AS UNSIGNED) FROM {table} WHERE name_hash = MD5(?)"
            );
            let row: Option<(i64, i64, u64)> = sqlx::query_as(&sql)
                .bind(name)
                .fetch_optional(&mut self.raw().await)
                .await
                .unwrap();
            if let Some((mtime, expired, size)) = row {
                found.push((table.to_owned(), mtime, expired, size));
            }
        }
        found
    }

    /// A legacy eZDFS node's store: its row upsert, then its file written on the mount.
    async fn legacy_store(&self, table: &str, name: &str, bytes: &[u8], scope: &str, mtime: i64) {
        LegacyDfsNode::new(&self.db.url, self.mount.path())
            .store(table, name, bytes, scope, "image/jpeg", mtime)
            .await;
    }

    /// Every file under the mount, relative, sorted (temporary files would show here).
    fn mount_files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.mount.path(), self.mount.path(), &mut out);
        out.sort();
        out
    }
}

const IMAGE: &str = "var/site/storage/images/1/2/3-1-eng-GB/a.jpg";
const VIEW_CACHE: &str = "var/site/cache/content/site/2-abc.cache";

#[tokio::test]
async fn stores_rows_in_the_legacy_table_and_bytes_at_mount_name() {
    let site = Site::new().await;
    let bytes = vec![7u8; 200_000];
    let meta = site
        .cluster
        .store(IMAGE, &bytes, &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    assert_eq!(meta.size, 200_000);
    site.cluster
        .store(VIEW_CACHE, b"<?php return 1;", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    assert_eq!(
        site.row(IMAGE).await.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["ezdfsfile"]
    );
    assert_eq!(site.row(VIEW_CACHE).await[0].0, "ezdfsfile_cache");
    assert_eq!(std::fs::read(site.file(IMAGE)).unwrap(), bytes);
    assert_eq!(std::fs::read(site.file(VIEW_CACHE)).unwrap(), b"<?php return 1;");
    assert_eq!(site.mount_files(), [VIEW_CACHE, IMAGE], "no temporary file is left");

    assert_eq!(site.cluster.fetch(IMAGE).await.unwrap(), bytes);
    assert!(site.cluster.exists(VIEW_CACHE).await.unwrap());
    let range = site
        .cluster
        .fetch_range(IMAGE, ezdb_core::ByteRange { start: 10, end: 19 })
        .await
        .unwrap();
    assert_eq!(range.bytes, vec![7u8; 10]);
    let mut stream = site.cluster.open_stream(IMAGE, Visibility::Live, None).await.unwrap();
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(streamed, bytes);

    // A rewrite replaces the file whole and moves the mtime forward, even within a second.
    let again = site
        .cluster
        .store(IMAGE, b"new", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    assert!(again.mtime > meta.mtime);
    assert_eq!(std::fs::read(site.file(IMAGE)).unwrap(), b"new");
    assert_eq!(site.mount_files(), [VIEW_CACHE, IMAGE]);
    // Empty and "0" files are stored as they are (legacy loses both).
    site.cluster
        .store("var/site/storage/e", b"", &StoreOptions::default())
        .await
        .unwrap();
    site.cluster
        .store("var/site/storage/z", b"0", &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(site.cluster.fetch("var/site/storage/e").await.unwrap(), b"");
    assert_eq!(site.cluster.fetch("var/site/storage/z").await.unwrap(), b"0");
}

#[tokio::test]
async fn a_legacy_node_and_ezdb_read_each_others_files() {
    let site = Site::new().await;
    let now = site.cluster.now();
    site.legacy_store("ezdfsfile", IMAGE, b"legacy bytes", "image", now)
        .await;
    let data = site.cluster.fetch_with_meta(IMAGE, Visibility::Live).await.unwrap();
    assert_eq!(data.bytes, b"legacy bytes");
    assert_eq!((data.meta.size, data.meta.mtime), (12, now));

    site.cluster
        .store(
            "var/site/storage/original/application/x's.pdf",
            b"%PDF",
            &StoreOptions::new("binaryfile", "application/pdf"),
        )
        .await
        .unwrap();
    // What a legacy node reads: the row by MD5 in the storage table, the file at mount + name.
    let rows = site.row("var/site/storage/original/application/x's.pdf").await;
    assert_eq!((rows[0].0.as_str(), rows[0].2, rows[0].3), ("ezdfsfile", 0, 4));
    assert_eq!(
        std::fs::read(site.file("var/site/storage/original/application/x's.pdf")).unwrap(),
        b"%PDF"
    );
}

#[tokio::test]
async fn missing_or_mismatched_bytes_are_never_served_as_the_file() {
    let site = Site::new().await;
    let now = site.cluster.now();
    site.legacy_store("ezdfsfile", IMAGE, b"0123456789", "image", now).await;
    std::fs::remove_file(site.file(IMAGE)).unwrap();
    let missing = site.cluster.fetch(IMAGE).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    // exists() is about the row, as legacy's.
    assert!(site.cluster.exists(IMAGE).await.unwrap());

    std::fs::write(site.file(IMAGE), b"short").unwrap();
    let mismatch = site.cluster.fetch(IMAGE).await.unwrap_err();
    assert!(matches!(mismatch, Error::Integrity { .. }), "{mismatch}");
    assert!(mismatch.to_string().contains("ezdb check"), "{mismatch}");
}

#[tokio::test]
async fn names_that_would_leave_the_mount_are_refused() {
    let site = Site::new().await;
    let err = site
        .cluster
        .store("var/site/storage/../../../escape", b"x", &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("leave the DFS mount"), "{err}");
    assert!(!site.mount.path().parent().unwrap().join("escape").exists());
    assert!(site.mount_files().is_empty());
}

#[tokio::test]
async fn deletes_keep_the_bytes_and_purges_remove_them_in_both_tables() {
    let site = Site::new().await;
    let options = StoreOptions::new("viewcache", "php");
    for i in 0..3 {
        site.cluster
            .store(&format!("var/site/cache/content/site/{i}-x.cache"), b"c", &options)
            .await
            .unwrap();
        site.cluster
            .store(
                &format!("var/site/storage/images/{i}.jpg"),
                b"i",
                &StoreOptions::new("image", "image/jpeg"),
            )
            .await
            .unwrap();
    }
    // One prefix reaches both tables (legacy reaches only ezdfsfile with this pattern).
    let deleted = site
        .cluster
        .delete_matching(&Selector::Prefix("var/site/".into()))
        .await
        .unwrap();
    assert_eq!(deleted, 6);
    assert!(!site
        .cluster
        .exists("var/site/cache/content/site/0-x.cache")
        .await
        .unwrap());
    assert_eq!(
        site.mount_files().len(),
        6,
        "a soft delete keeps the bytes (the stale copy)"
    );
    let stale = site
        .cluster
        .fetch_with_meta("var/site/cache/content/site/0-x.cache", Visibility::IncludeExpired)
        .await
        .unwrap();
    assert_eq!(stale.bytes, b"c");

    // A live file under the same prefix survives the purge, rows and bytes.
    site.cluster
        .store(
            "var/site/storage/images/live.jpg",
            b"live",
            &StoreOptions::new("image", "image/jpeg"),
        )
        .await
        .unwrap();
    let batches = ezdb_core::Batches {
        size: 2,
        pause: std::time::Duration::ZERO,
        max_batches: None,
    };
    let purged = site
        .cluster
        .purge_matching(
            &Selector::Prefix("var/site/".into()),
            PurgeFilter::Expired,
            batches,
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(purged, 6);
    assert_eq!(site.mount_files(), ["var/site/storage/images/live.jpg"]);
    assert!(site.row("var/site/storage/images/0.jpg").await.is_empty());

    assert!(!site
        .cluster
        .purge("var/site/storage/images/live.jpg", PurgeFilter::Expired)
        .await
        .unwrap());
    site.cluster.delete("var/site/storage/images/live.jpg").await.unwrap();
    assert!(site
        .cluster
        .purge("var/site/storage/images/live.jpg", PurgeFilter::Expired)
        .await
        .unwrap());
    assert!(site.mount_files().is_empty());
}

#[tokio::test]
async fn a_restore_after_a_purge_keeps_its_new_bytes() {
    let site = Site::new().await;
    site.cluster
        .store(IMAGE, b"old", &StoreOptions::default())
        .await
        .unwrap();
    site.cluster.delete(IMAGE).await.unwrap();
    let purger = site.cluster.clone();
    let writer = site.cluster.clone();
    let (purged, stored) = tokio::join!(purger.purge(IMAGE, PurgeFilter::Expired), async {
        writer.store(IMAGE, b"new", &StoreOptions::default()).await
    });
    purged.unwrap();
    stored.unwrap();
    // Whatever the order, a live row has its own bytes.
    if site.cluster.exists(IMAGE).await.unwrap() {
        assert_eq!(site.cluster.fetch(IMAGE).await.unwrap(), b"new");
    }
}

#[tokio::test]
async fn generation_locks_live_beside_their_file_and_publish_on_the_mount() {
    let site = Site::new().await;
    site.cluster
        .store(VIEW_CACHE, b"old", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    let Generation::Acquired(lock) = site.cluster.start_generation(VIEW_CACHE, None).await.unwrap() else {
        panic!("the lock is free");
    };
    let lock_row = site.row(&format!("{VIEW_CACHE}.generating")).await;
    assert_eq!(lock_row[0].0, "ezdfsfile_cache", "the lock row lands beside its file");
    assert!(matches!(
        site.cluster.start_generation(VIEW_CACHE, None).await.unwrap(),
        Generation::Busy { .. }
    ));
    let meta = site
        .cluster
        .publish(lock, b"new", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    assert_eq!(meta.size, 3);
    assert_eq!(std::fs::read(site.file(VIEW_CACHE)).unwrap(), b"new");
    assert!(site.row(&format!("{VIEW_CACHE}.generating")).await.is_empty());

    // Legacy style: staged at <mount>/<name>.generating, the old bytes in place until the end.
    let Generation::Acquired(mut lock) = site.cluster.start_generation(VIEW_CACHE, None).await.unwrap() else {
        panic!("the lock is free");
    };
    site.cluster
        .stage(&mut lock, b"staged", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(site.file(&format!("{VIEW_CACHE}.generating"))).unwrap(),
        b"staged"
    );
    assert_eq!(std::fs::read(site.file(VIEW_CACHE)).unwrap(), b"new");
    let ended = site.cluster.end_generation(lock).await.unwrap();
    assert_eq!(ended.size, 6);
    assert_eq!(site.cluster.fetch(VIEW_CACHE).await.unwrap(), b"staged");
    assert_eq!(site.mount_files(), [VIEW_CACHE]);

    // An abort removes our lock and our staged file, never the file itself.
    let Generation::Acquired(mut lock) = site.cluster.start_generation(VIEW_CACHE, None).await.unwrap() else {
        panic!("the lock is free");
    };
    site.cluster
        .stage(&mut lock, b"never", &StoreOptions::default())
        .await
        .unwrap();
    site.cluster.abort_generation(lock).await.unwrap();
    assert_eq!(site.mount_files(), [VIEW_CACHE]);
    assert_eq!(site.cluster.fetch(VIEW_CACHE).await.unwrap(), b"staged");
}

#[tokio::test]
async fn a_cache_whose_bytes_are_missing_is_regenerated_under_the_lock() {
    let site = Site::new().await;
    let policy = CachePolicy {
        freshness: Freshness::default(),
        store: StoreOptions::new("viewcache", "php"),
        generate_while_busy: false,
    };
    site.cluster
        .store(VIEW_CACHE, b"first", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    std::fs::remove_file(site.file(VIEW_CACHE)).unwrap();
    let entry = site
        .cluster
        .process_cache(VIEW_CACHE, &policy, || async {
            Ok::<_, std::io::Error>(b"again".to_vec())
        })
        .await
        .unwrap();
    assert_eq!(entry.source, CacheSource::Generated);
    assert_eq!(std::fs::read(site.file(VIEW_CACHE)).unwrap(), b"again");
    let hit = site
        .cluster
        .process_cache(VIEW_CACHE, &policy, || async {
            Ok::<_, std::io::Error>(b"unused".to_vec())
        })
        .await
        .unwrap();
    assert_eq!((hit.source, hit.content.as_slice()), (CacheSource::Hit, &b"again"[..]));
}

#[tokio::test]
async fn copy_and_move_carry_row_and_bytes() {
    let site = Site::new().await;
    site.cluster
        .store(IMAGE, b"abc", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    site.cluster.copy(IMAGE, "var/site/storage/copy.png").await.unwrap();
    let copy = site.cluster.stat("var/site/storage/copy.png").await.unwrap().unwrap();
    assert_eq!(
        (copy.scope.as_str(), copy.datatype.as_str(), copy.size),
        ("image", "image/png", 3)
    );
    site.cluster
        .rename("var/site/storage/copy.png", "var/site/storage/moved.png")
        .await
        .unwrap();
    assert!(site.cluster.stat("var/site/storage/copy.png").await.unwrap().is_none());
    assert_eq!(site.cluster.fetch("var/site/storage/moved.png").await.unwrap(), b"abc");
    assert_eq!(
        site.mount_files(),
        [
            "var/site/storage/images/1/2/3-1-eng-GB/a.jpg",
            "var/site/storage/moved.png"
        ]
    );
}

#[tokio::test]
async fn an_ibexa_single_table_site_works_the_same() {
    let site = Site::with(Schema::IbexaDfs, |mount| {
        DfsLayout::new(mount).single_table("ibexa_dfs_file")
    })
    .await;
    // An Ibexa-written row: name_trunk = name, status 0, bytes written in place.
    sqlx::query(
        "INSERT INTO ibexa_dfs_file (name, name_hash, name_trunk, mtime, size, scope, datatype)
         VALUES (?, MD5(?), ?, UNIX_TIMESTAMP(), 5, 'image', 'image/png')",
    )
    .bind(IMAGE)
    .bind(IMAGE)
    .bind(IMAGE)
    .execute(&mut site.raw().await)
    .await
    .unwrap();
    std::fs::create_dir_all(site.file(IMAGE).parent().unwrap()).unwrap();
    std::fs::write(site.file(IMAGE), b"ibexa").unwrap();
    assert_eq!(site.cluster.fetch(IMAGE).await.unwrap(), b"ibexa");
    site.cluster
        .store(VIEW_CACHE, b"x", &StoreOptions::default())
        .await
        .unwrap();
    let (expired, mtime): (i64, i64) = sqlx::query_as(
        "SELECT CAST(expired AS SIGNED), CAST(mtime AS SIGNED) FROM ibexa_dfs_file WHERE name_hash = MD5(?)",
    )
    .bind(VIEW_CACHE)
    .fetch_one(&mut site.raw().await)
    .await
    .unwrap();
    assert_eq!(expired, 0);
    assert!(
        mtime > 0,
        "Ibexa counts a row present only with mtime > 0 and expired = 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_store_leaves_the_old_version_on_the_mount_and_in_the_table() {
    let site = Site::new().await;
    let old = vec![0x11u8; 3 << 20];
    site.cluster.store(IMAGE, &old, &StoreOptions::default()).await.unwrap();
    let before = site.row(IMAGE).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "dfs_child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env("EZDB_DFS_CHILD_URL", &site.db.url)
        .env("EZDB_DFS_CHILD_MOUNT", site.mount.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.by_ref().map_while(Result::ok).any(|line| line == "WRITING"),
        "the child should report it is mid-store"
    );
    assert_eq!(
        site.cluster.fetch(IMAGE).await.unwrap(),
        old,
        "the new bytes are not visible yet"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(site.cluster.fetch(IMAGE).await.unwrap(), old, "old version intact");
    assert_eq!(site.row(IMAGE).await, before, "old row intact");
    // What the killed writer leaves: at most its temporary file, recognisable by its prefix.
    let leftovers: Vec<String> = site.mount_files().into_iter().filter(|f| f != IMAGE).collect();
    assert!(leftovers.len() <= 1, "{leftovers:?}");
    for file in &leftovers {
        let base = Path::new(file).file_name().unwrap().to_string_lossy().into_owned();
        assert!(ezdb_core::is_mount_temp_name(&base), "{file}");
    }
    // The mount check reports the leftover (once past the grace period) and moves it aside.
    let options = ezdb_core::MountCheckOptions {
        grace: std::time::Duration::ZERO,
    };
    let report = site.cluster.check_mount(&options).await.unwrap();
    assert_eq!(
        kinds(&report),
        leftovers
            .iter()
            .map(|f| ("leftover-temp", f.clone()))
            .collect::<Vec<_>>()
    );
    for problem in &report.problems {
        let outcome = site.cluster.repair_mount(problem).await.unwrap();
        assert!(
            matches!(outcome, ezdb_core::MountOutcome::Quarantined(_)),
            "{outcome:?}"
        );
    }
    assert!(site.cluster.check_mount(&options).await.unwrap().problems.is_empty());
}

/// Not a test on its own: the killed writer of the test above (does nothing otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dfs_child_process_entry() {
    let (Ok(url), Ok(mount)) = (
        std::env::var("EZDB_DFS_CHILD_URL"),
        std::env::var("EZDB_DFS_CHILD_MOUNT"),
    ) else {
        return;
    };
    let config = ClusterConfig::new(&url).with_layout(Layout::Dfs(DfsLayout::new(mount)));
    let cluster = Cluster::connect(config).await.unwrap();
    cluster
        .store_reader(IMAGE, SlowReader::default(), &StoreOptions::default())
        .await
        .unwrap();
    unreachable!("the parent kills this process mid-store");
}

#[tokio::test]
async fn global_expiry_goes_through_expiry_php_on_the_mount_both_ways() {
    const EXPIRY: &str = "var/site/cache/expiry.php";
    let db = TestDb::create_with(Schema::LegacyDfs).await;
    let mount = TempDir::new("dfs-mount");
    let mut config = ClusterConfig::new(&db.url).with_layout(Layout::Dfs(DfsLayout::new(mount.path())));
    config.legacy_expiry_file = Some(EXPIRY.to_owned());
    let cluster = Cluster::connect(config).await.unwrap();
    let site = Site { db, mount, cluster };
    let cache = site
        .cluster
        .store(VIEW_CACHE, b"view", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    assert!(site.cluster.exists(VIEW_CACHE).await.unwrap());

    // ezdb's clear: a key in expiry.php, in the cache table and on the mount, as legacy keeps it.
    site.cluster
        .set_global_expiry("content-view-cache", Some(cache.mtime + 1))
        .await
        .unwrap();
    assert_eq!(site.row(EXPIRY).await[0].0, "ezdfsfile_cache");
    let php = std::fs::read_to_string(site.file(EXPIRY)).unwrap();
    assert!(
        php.contains(&format!("'content-view-cache' => {}", cache.mtime + 1)),
        "{php}"
    );
    assert!(
        !site.cluster.exists(VIEW_CACHE).await.unwrap(),
        "older than the key: expired"
    );
    let stat = site.cluster.stat(VIEW_CACHE).await.unwrap().unwrap();
    assert!(stat.is_expired());

    // A legacy node's clear: it rewrites expiry.php (file and row) with a later key.
    let newer = site
        .cluster
        .store(VIEW_CACHE, b"view 2", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    assert!(site.cluster.exists(VIEW_CACHE).await.unwrap());
    let legacy_php = format!(
        "<?php\n$Timestamps = array( 'content-view-cache' => {} );\n?>\n",
        newer.mtime + 5
    );
    site.legacy_store(
        "ezdfsfile_cache",
        EXPIRY,
        legacy_php.as_bytes(),
        "expirycache",
        newer.mtime + 5,
    )
    .await;
    assert!(
        !site.cluster.exists(VIEW_CACHE).await.unwrap(),
        "a legacy node's key is honoured at the next read"
    );
}

#[tokio::test]
async fn install_schema_creates_the_dfs_tables_on_an_empty_database() {
    let db = TestDb::create().await;
    let mount = TempDir::new("dfs-mount");
    let config = ClusterConfig::new(&db.url).with_layout(Layout::Dfs(DfsLayout::new(mount.path())));
    let cluster = Cluster::connect(config).await.unwrap();
    cluster.install_schema().await.unwrap();
    cluster.install_schema().await.expect("idempotent");
    let site = Site { db, mount, cluster };
    site.cluster.store(IMAGE, b"i", &StoreOptions::default()).await.unwrap();
    site.cluster
        .store(VIEW_CACHE, b"c", &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(site.row(IMAGE).await[0].0, "ezdfsfile");
    assert_eq!(site.row(VIEW_CACHE).await[0].0, "ezdfsfile_cache");
}

fn kinds(report: &ezdb_core::MountReport) -> Vec<(&'static str, String)> {
    let mut kinds: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind(), p.name().to_owned()))
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn the_mount_check_finds_rows_without_files_and_files_without_rows_and_only_moves_orphans() {
    let site = Site::new().await;
    let now = site.cluster.now();
    let opts = StoreOptions::new("image", "image/jpeg");
    site.cluster.store(IMAGE, b"live image", &opts).await.unwrap();
    site.cluster
        .store(VIEW_CACHE, b"view", &StoreOptions::new("viewcache", "text/plain"))
        .await
        .unwrap();
    // A live row whose file is gone, a deleted row, a stale lock, a row in the wrong table.
    let gone = "var/site/storage/images/9/gone.jpg";
    site.legacy_store("ezdfsfile", gone, b"bytes", "image", now).await;
    std::fs::remove_file(site.file(gone)).unwrap();
    let deleted = "var/site/storage/images/9/deleted.jpg";
    site.legacy_store("ezdfsfile", deleted, b"old", "image", now).await;
    site.cluster.delete(deleted).await.unwrap();
    let lock = "var/site/cache/content/site/3-x.cache.generating";
    site.legacy_store("ezdfsfile_cache", lock, b"", "viewcache", now - 1000)
        .await;
    let misplaced = "var/site/cache/content/site/4-x.cache";
    site.legacy_store("ezdfsfile", misplaced, b"m", "viewcache", now).await;
    // Files without rows: an orphan, temp files of both writers, and one in the other table's name.
    let orphan = "var/site/storage/images/7/orphan.jpg";
    std::fs::create_dir_all(site.file(orphan).parent().unwrap()).unwrap();
    std::fs::write(site.file(orphan), b"orphan bytes").unwrap();
    let legacy_temp = "var/site/storage/images/7/ezfile-tmp.abc";
    let our_temp = "var/site/storage/images/7/.ezdb-tmp.x.1.2";
    std::fs::write(site.file(legacy_temp), b"t").unwrap();
    std::fs::write(site.file(our_temp), b"t").unwrap();

    // The default grace period passes over every file just written.
    let young = site.cluster.check_mount(&Default::default()).await.unwrap();
    assert!(
        !young
            .problems
            .iter()
            .any(|p| matches!(p.kind(), "orphan-file" | "leftover-temp")),
        "a young file may be a write in progress: {:?}",
        young.problems
    );
    let options = ezdb_core::MountCheckOptions {
        grace: std::time::Duration::ZERO,
    };
    let report = site.cluster.check_mount(&options).await.unwrap();
    assert_eq!(
        kinds(&report),
        vec![
            ("leftover-temp", our_temp.to_owned()),
            ("leftover-temp", legacy_temp.to_owned()),
            ("missing-file", gone.to_owned()),
            ("orphan-file", orphan.to_owned()),
            ("stale-lock", lock.to_owned()),
            ("to-purge", deleted.to_owned()),
            ("wrong-table", misplaced.to_owned()),
        ]
    );

    // Repairs: only the orphan moves, into the quarantine on the mount; nothing is unlinked.
    for problem in &report.problems {
        let outcome = site.cluster.repair_mount(problem).await.unwrap();
        match problem.kind() {
            "orphan-file" => {
                let ezdb_core::MountOutcome::Quarantined(path) = outcome else {
                    panic!("the orphan is moved: {outcome:?}")
                };
                assert!(path.starts_with(site.mount.path().join(ezdb_core::MOUNT_QUARANTINE_DIR)));
                assert_eq!(std::fs::read(&path).unwrap(), b"orphan bytes");
                assert!(!site.file(orphan).exists());
            }
            "leftover-temp" => {
                assert!(
                    matches!(outcome, ezdb_core::MountOutcome::Quarantined(_)),
                    "{outcome:?}"
                );
                assert!(!site.file(problem.name()).exists());
            }
            _ => assert_eq!(outcome, ezdb_core::MountOutcome::ReportOnly, "{problem:?}"),
        }
    }
    assert!(site.file(deleted).exists(), "a deleted row's file waits for the purge");
    let again = site.cluster.check_mount(&options).await.unwrap();
    assert!(
        !again
            .problems
            .iter()
            .any(|p| matches!(p.kind(), "orphan-file" | "leftover-temp")),
        "the quarantine is not checked as orphans: {:?}",
        again.problems
    );
    assert_eq!(
        site.cluster.fetch(IMAGE).await.unwrap(),
        b"live image",
        "live files are untouched"
    );
}

#[tokio::test]
async fn an_orphan_that_gets_a_row_before_the_repair_is_left_alone() {
    let site = Site::new().await;
    let name = "var/site/storage/images/8/upload.jpg";
    std::fs::create_dir_all(site.file(name).parent().unwrap()).unwrap();
    std::fs::write(site.file(name), b"upload").unwrap();
    let options = ezdb_core::MountCheckOptions {
        grace: std::time::Duration::ZERO,
    };
    let report = site.cluster.check_mount(&options).await.unwrap();
    assert_eq!(kinds(&report), vec![("orphan-file", name.to_owned())]);
    // A legacy node finishes its store (file first, then the row) between check and repair.
    let now = site.cluster.now();
    site.legacy_store("ezdfsfile", name, b"upload", "image", now).await;
    let outcome = site.cluster.repair_mount(&report.problems[0]).await.unwrap();
    assert_eq!(outcome, ezdb_core::MountOutcome::Changed);
    assert_eq!(site.cluster.fetch(name).await.unwrap(), b"upload");
}

#[tokio::test]
async fn a_latin1_dfs_site_matches_texts_it_cannot_hold_as_nothing_instead_of_failing() {
    let site = Site::with(Schema::LegacyDfsLatin1, |mount| DfsLayout::new(mount)).await;
    let image = "var/site/storage/images/a/Crème.jpg";
    site.cluster
        .store(image, b"latin1 name", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    site.cluster
        .store(VIEW_CACHE, b"v", &StoreOptions::new("viewcache", "text/php"))
        .await
        .unwrap();
    for selector in [
        Selector::Prefix("var/site/storage/images/日本/".into()),
        Selector::Prefix("var/site/cache/content/日本".into()),
    ] {
        assert_eq!(
            site.cluster.delete_matching(&selector).await.unwrap(),
            0,
            "{selector:?}"
        );
    }
    assert_eq!(site.cluster.fetch(image).await.unwrap(), b"latin1 name");
    let removed = site
        .cluster
        .delete_matching(&Selector::Prefix("var/site/storage/images/a/Crè".into()))
        .await
        .unwrap();
    assert_eq!(removed, 1, "a latin1 text still matches byte-exact");
    // A name the table cannot hold is refused, and leaves nothing on the mount.
    let before = site.mount_files();
    let cjk = "var/site/storage/images/b/日本.jpg";
    let refused = site
        .cluster
        .store(cjk, b"x", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains(cjk) || refused.to_string().contains("日本"),
        "{refused}"
    );
    assert_eq!(site.mount_files(), before, "no file left behind");
    assert!(site.row(cjk).await.is_empty());
}

#[tokio::test]
async fn expired_files_are_paged_across_both_tables_each_name_once() {
    let site = Site::new().await;
    let mut expected = Vec::new();
    for i in 0..5 {
        for name in [
            format!("var/site/cache/content/site/{i}-x.cache"),
            format!("var/site/storage/images/{i}/x.jpg"),
        ] {
            site.cluster
                .store(&name, b"x", &StoreOptions::new("viewcache", "text/php"))
                .await
                .unwrap();
            site.cluster.delete(&name).await.unwrap();
            expected.push(name);
        }
    }
    expected.sort();
    let mut paged = Vec::new();
    for page in 0..4u64 {
        let names = site
            .cluster
            .list_expired(&["viewcache".into()], None, 3, page * 3)
            .await
            .unwrap();
        assert!(names.len() <= 3, "a page holds at most its limit: {names:?}");
        paged.extend(names);
    }
    paged.sort();
    assert_eq!(paged, expected);
}

#[tokio::test]
async fn a_batched_stat_reads_both_tables() {
    // The legacy DDL has no ezdbfile_expiry: the global expiry comes from expiry.php.
    let db = TestDb::create_with(Schema::LegacyDfs).await;
    let mount = TempDir::new("dfs-mount");
    let mut config = ClusterConfig::new(&db.url).with_layout(Layout::Dfs(DfsLayout::new(mount.path())));
    config.legacy_expiry_file = Some("var/site/cache/expiry.php".to_owned());
    let cluster = Cluster::connect(config).await.unwrap();
    let site = Site { db, mount, cluster };
    common::check_stat_many(&site.cluster).await;
    assert_eq!(
        site.row("var/site/cache/template-block/batch.cache").await[0].0,
        "ezdfsfile_cache"
    );
}

#[tokio::test]
async fn a_conditional_store_keeps_a_newer_live_version_on_the_mount() {
    let site = Site::new().await;
    let dir = TempDir::new("dfs-store-unless-newer");
    common::check_store_unless_newer(&site.cluster, &dir).await;
    assert_eq!(
        std::fs::read(site.file("var/site/storage/original/application/report.pdf")).unwrap(),
        b"from the old layout"
    );
}

#[tokio::test]
async fn a_move_is_one_change_across_tables_and_keeps_the_bytes_without_copying() {
    let site = Site::new().await;
    let staged = "var/site/cache/public/upload/photo.jpg";
    let target = "var/site/storage/images/7/photo.jpg";
    site.cluster
        .store(target, b"old target", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    site.cluster
        .store(staged, b"new photo", &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    let inode = |name: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(site.file(name)).unwrap());
    let staged_inode = inode(staged);
    site.cluster.rename(staged, target).await.unwrap();
    assert_eq!(site.cluster.fetch(target).await.unwrap(), b"new photo");
    assert_eq!(inode(target), staged_inode, "the file itself moved, no byte was copied");
    assert!(site.row(staged).await.is_empty());
    let moved = site.row(target).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].0.as_str(), moved[0].3),
        ("ezdfsfile", 9),
        "the row lands in its own table"
    );
    assert_eq!(site.mount_files(), [target], "no leftover, no old target");

    // A row whose file is missing is not moved: nothing changes.
    let orphan_row = "var/site/storage/images/8/gone.jpg";
    site.legacy_store("ezdfsfile", orphan_row, b"x", "image", site.cluster.now())
        .await;
    std::fs::remove_file(site.file(orphan_row)).unwrap();
    let err = site
        .cluster
        .rename(orphan_row, "var/site/storage/images/8/else.jpg")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(site.row(orphan_row).await.len(), 1);
    assert!(site.row("var/site/storage/images/8/else.jpg").await.is_empty());
}
