//! index_image on an eZDFS site (the legacy `ezdfsfile` / `ezdfsfile_cache` DDL, or Ibexa's one
//! `ibexa_dfs_file`) with the bytes on a mount directory the test creates: images stored through
//! ezdb and files written the way a legacy eZDFS node writes them are served byte-exact, ranges
//! and conditionals work, deleted, cache and `.generating` rows are never served, a row whose
//! file is missing is 404, and a bad layout setting stops the start naming the setting.

mod common;

use common::*;
use ezdb_core::{Cluster, ClusterConfig, DfsLayout, Layout, StoreOptions};
use ezdb_testdb::{Schema, TempDir, TestDb};
use index_image::{Config, ConfigError};
use sqlx::mysql::MySqlConnection;
use sqlx::Connection;
use std::path::{Path, PathBuf};

/// A DFS site: its database, its mount and an ezdb cluster on them (what a switched PHP node is).
struct Site {
    db: TestDb,
    mount: TempDir,
    cluster: Cluster,
    /// The `--layout` index_image is given.
    layout: &'static str,
}

impl Site {
    async fn legacy() -> Site {
        Site::with(Schema::LegacyDfs, "dfs", |mount| DfsLayout::new(mount)).await
    }

    async fn ibexa() -> Site {
        Site::with(Schema::IbexaDfs, "ibexa-dfs", |mount| {
            DfsLayout::new(mount).single_table("ibexa_dfs_file")
        })
        .await
    }

    async fn with(schema: Schema, layout: &'static str, dfs: impl FnOnce(&Path) -> DfsLayout) -> Site {
        let db = TestDb::create_with(schema).await;
        let mount = TempDir::new("index-image-dfs-mount");
        let config = ClusterConfig::new(&db.url).with_layout(Layout::Dfs(dfs(mount.path())));
        let cluster = Cluster::connect(config)
            .await
            .expect("connect to the DFS test database");
        Site {
            db,
            mount,
            cluster,
            layout,
        }
    }

    /// The flags that point index_image at this site's layout and mount.
    fn flags(&self) -> Vec<String> {
        vec![
            format!("--layout={}", self.layout),
            format!("--mount-point={}", self.mount.path().display()),
        ]
    }

    /// index_image on this site, with `extra` flags.
    fn serve(&self, extra: &[&str]) -> Server {
        let mut flags = self.flags();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        start(&self.db.url, &flags)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.mount.path().join(name)
    }

    async fn raw(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.db.url).await.expect("raw connection")
    }

    /// What a legacy eZDFS node does to store a file: its row upsert in `table`, then the bytes
    /// written at `<mount>/<name>`.
    async fn legacy_store(&self, table: &str, name: &str, bytes: &[u8], scope: &str, datatype: &str, mtime: i64) {
        self.legacy_node()
            .store(table, name, bytes, scope, datatype, mtime)
            .await;
    }

    /// A legacy node's delete: `mtime = -ABS(mtime), expired = 1`; the file stays on the mount.
    async fn legacy_delete(&self, table: &str, name: &str) {
        self.legacy_node().delete(table, name).await;
    }

    fn legacy_node(&self) -> ezdb_testdb::LegacyDfsNode {
        ezdb_testdb::LegacyDfsNode::new(&self.db.url, self.mount.path())
    }

    fn write_file(&self, name: &str, bytes: &[u8]) {
        let path = self.file(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

const PNG: &str = "var/site/storage/images/1/2/3-1-eng-GB/logo.png";
const JPG: &str = "var/site/storage/images/4/5/6-1-eng-GB/photo.jpg";
const VIEW_CACHE: &str = "var/site/cache/content/site/2-abc.cache";

#[tokio::test]
async fn an_image_stored_through_ezdb_on_dfs_is_served_byte_exact() {
    let site = Site::legacy().await;
    let png = bytes(300_000);
    let meta = site
        .cluster
        .store(PNG, &png, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    // Larger than the memory cache's largest file: streamed from the mount through the spool.
    let large = "var/site/storage/images/7/8/9-1-eng-GB/poster.webp";
    let poster = bytes(6 << 20);
    site.cluster
        .store(large, &poster, &StoreOptions::new("image", "image/webp"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(site.file(PNG)).unwrap(),
        png,
        "the bytes are on the mount"
    );

    let server = site.serve(&["--max-age=600"]);
    let reply = get(&server, &format!("/{PNG}"));
    assert_eq!(reply.status, 200);
    assert!(reply.body == png, "byte for byte ({} bytes back)", reply.body.len());
    assert_eq!(reply.header("content-type"), Some("image/png"));
    assert_eq!(reply.header("content-length"), Some("300000"));
    let etag = format!("\"{}-{}\"", meta.mtime, meta.size);
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=600"));
    let again = get(&server, &format!("/{PNG}"));
    assert!(again.status == 200 && again.body == png, "from memory, the same bytes");
    let head = request(&server, "HEAD", &format!("/{PNG}"), &[]);
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("300000"));

    let big = get(&server, &format!("/{large}"));
    assert_eq!(big.status, 200);
    assert!(big.body == poster, "{} bytes back", big.body.len());
    assert_eq!(big.header("content-type"), Some("image/webp"));
    assert_eq!(get(&server, "/healthz").status, 200);
}

#[tokio::test]
async fn a_file_a_legacy_dfs_node_wrote_is_served_with_ranges_and_conditionals() {
    let site = Site::legacy().await;
    let now = site.cluster.now();
    let small = b"\xff\xd8\xff\xe0 a legacy jpeg".to_vec();
    site.legacy_store("ezdfsfile", JPG, &small, "image", "image/jpeg", now)
        .await;
    // Large enough that a range is read from the mount alone, not the whole file.
    let large = "var/site/storage/images/1/1/1-1-eng-GB/large.jpg";
    let data = bytes(5 << 20);
    site.legacy_store("ezdfsfile", large, &data, "image", "image/jpeg", now)
        .await;

    let server = site.serve(&[]);
    let reply = get(&server, &format!("/{JPG}"));
    assert_eq!((reply.status, reply.body.as_slice()), (200, small.as_slice()));
    assert_eq!(reply.header("content-type"), Some("image/jpeg"));
    let etag = format!("\"{now}-{}\"", small.len());
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    let last_modified = reply.header("last-modified").unwrap().to_owned();

    let path = format!("/{large}");
    let size = data.len();
    for (spec, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=1048570-1048590", 1_048_570, 1_048_590),
        ("bytes=-100", size - 100, size - 1),
        (&*format!("bytes={}-", size - 3), size - 3, size - 1),
    ] {
        let reply = request(&server, "GET", &path, &[("Range", spec)]);
        assert_eq!(reply.status, 206, "{spec}");
        assert!(reply.body == data[start..=end], "{spec}");
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {start}-{end}/{size}").as_str()),
            "{spec}"
        );
    }
    let beyond = request(&server, "GET", &path, &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(beyond.status, 416);
    let whole = get(&server, &path);
    assert!(whole.status == 200 && whole.body == data, "the whole large file");
    let small_range = request(&server, "GET", &format!("/{JPG}"), &[("Range", "bytes=4-5")]);
    assert_eq!((small_range.status, small_range.body.as_slice()), (206, &b" a"[..]));

    for (headers, status) in [
        (vec![("If-None-Match", etag.as_str())], 304),
        (vec![("If-None-Match", "\"other\"")], 200),
        (vec![("If-Modified-Since", last_modified.as_str())], 304),
        (vec![("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")], 200),
    ] {
        let reply = request(&server, "GET", &format!("/{JPG}"), &headers);
        assert_eq!(reply.status, status, "{headers:?}");
        if status == 304 {
            assert!(reply.body.is_empty() && reply.header("etag") == Some(etag.as_str()));
        } else {
            assert_eq!(reply.body, small);
        }
    }
    // A conditional GET on a file not yet in memory is answered from the row alone.
    let fresh = Site::legacy().await;
    fresh
        .legacy_store("ezdfsfile", JPG, &small, "image", "image/jpeg", now)
        .await;
    let server = fresh.serve(&[]);
    let cold = request(&server, "GET", &format!("/{JPG}"), &[("If-None-Match", &etag)]);
    assert_eq!((cold.status, cold.body.len()), (304, 0));
}

#[tokio::test]
async fn deleted_cache_and_generating_rows_are_never_served() {
    let site = Site::legacy().await;
    let now = site.cluster.now();
    let img = StoreOptions::new("image", "image/png");
    // Deleted by a legacy node: negative mtime, expired = 1, the file kept on the mount.
    let legacy_deleted = "var/site/storage/images/d/legacy-deleted.png";
    site.legacy_store("ezdfsfile", legacy_deleted, b"old", "image", "image/png", now)
        .await;
    site.legacy_delete("ezdfsfile", legacy_deleted).await;
    // Deleted through ezdb (the same soft delete).
    let ours_deleted = "var/site/storage/images/d/ours-deleted.png";
    site.cluster.store(ours_deleted, b"old", &img).await.unwrap();
    site.cluster.delete(ours_deleted).await.unwrap();
    assert!(site.file(legacy_deleted).exists() && site.file(ours_deleted).exists());
    // A cache entry, in ezdfsfile_cache with its bytes on the mount.
    site.cluster
        .store(VIEW_CACHE, b"<?php private", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    site.legacy_store(
        "ezdfsfile_cache",
        "var/site/cache/images/x.png",
        b"private",
        "image",
        "image/png",
        now,
    )
    .await;
    // A row in the cache table under an image name: not where legacy looks for an image.
    let misplaced = "var/site/storage/images/m/misplaced.png";
    site.legacy_store("ezdfsfile_cache", misplaced, b"private", "image", "image/png", now)
        .await;
    // Locks: one taken through ezdb, one a legacy node staged content under (bytes on the mount).
    let new = "var/site/storage/images/g/new.png";
    let _lock = site.cluster.start_generation(new, None).await.unwrap();
    let staged = "var/site/storage/images/g/staged.png";
    site.legacy_store(
        "ezdfsfile",
        &format!("{staged}.generating"),
        b"private",
        "image",
        "image/png",
        now,
    )
    .await;
    site.cluster.store(PNG, b"live", &img).await.unwrap();

    let paths = [
        format!("/{legacy_deleted}"),
        format!("/{ours_deleted}"),
        format!("/{VIEW_CACHE}"),
        "/var/site/cache/images/x.png".to_owned(),
        format!("/{misplaced}"),
        format!("/{new}"),
        format!("/{new}.generating"),
        format!("/{staged}"),
        format!("/{staged}.generating"),
    ];
    let check = |server: &Server, why: &str| {
        for path in &paths {
            let reply = get(server, path);
            assert_eq!(reply.status, 404, "{path} ({why})");
            assert!(!reply.body.windows(7).any(|w| w == b"private"), "{path} leaked bytes");
        }
        assert_eq!(get(server, &format!("/{PNG}")).body, b"live");
    };
    let server = site.serve(&[]);
    check(&server, "default prefixes");
    drop(server);
    // Even with every name of the site allowed, only live rows of an allowed scope are served.
    let wide = site.serve(&["--prefix=var/site/"]);
    for path in [
        format!("/{legacy_deleted}"),
        format!("/{ours_deleted}"),
        format!("/{VIEW_CACHE}"),
        format!("/{new}"),
    ] {
        assert_eq!(get(&wide, &path).status, 404, "{path} (prefix var/site/)");
    }
    assert_eq!(get(&wide, &format!("/{PNG}")).body, b"live");
}

#[tokio::test]
async fn a_row_whose_file_is_missing_from_the_mount_is_404_not_500() {
    let site = Site::legacy().await;
    let now = site.cluster.now();
    site.legacy_store("ezdfsfile", JPG, b"soon gone", "image", "image/jpeg", now)
        .await;
    let large = "var/site/storage/images/1/1/1-1-eng-GB/large.jpg";
    site.legacy_store("ezdfsfile", large, &bytes(5 << 20), "image", "image/jpeg", now)
        .await;
    std::fs::remove_file(site.file(JPG)).unwrap();
    std::fs::remove_file(site.file(large)).unwrap();

    let server = site.serve(&[]);
    for path in [format!("/{JPG}"), format!("/{large}")] {
        assert_eq!(get(&server, &path).status, 404, "GET {path}");
        let range = request(&server, "GET", &path, &[("Range", "bytes=0-9")]);
        assert_eq!(range.status, 404, "a range of {path}");
        let head = request(&server, "HEAD", &path, &[]);
        assert_eq!(head.status, 404, "HEAD agrees with GET for {path}");
        let conditional = request(&server, "GET", &path, &[("If-None-Match", "\"x\"")]);
        assert_eq!(conditional.status, 404, "a conditional GET of {path}");
    }
    assert_eq!(get(&server, "/healthz").status, 200, "a missing file is not an outage");
    // The file arriving later (a slow share, a legacy node finishing its write) is served: the
    // 404 was not kept.
    site.write_file(JPG, b"back again");
    sqlx::query("UPDATE ezdfsfile SET size = 10 WHERE name_hash = MD5(?)")
        .bind(JPG)
        .execute(&mut site.raw().await)
        .await
        .unwrap();
    let reply = get(&server, &format!("/{JPG}"));
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"back again"[..]));
}

#[tokio::test]
async fn an_ibexa_single_table_site_is_served() {
    let site = Site::ibexa().await;
    // An Ibexa-written row: the legacy columns under the new table name, bytes in place.
    sqlx::query(
        "INSERT INTO ibexa_dfs_file (name, name_hash, name_trunk, mtime, size, scope, datatype)
         VALUES (?, MD5(?), ?, UNIX_TIMESTAMP(), 5, 'image', 'image/png')",
    )
    .bind(PNG)
    .bind(PNG)
    .bind(PNG)
    .execute(&mut site.raw().await)
    .await
    .unwrap();
    site.write_file(PNG, b"ibexa");
    let webp = bytes(100_000);
    site.cluster
        .store(JPG, &webp, &StoreOptions::new("image", "image/webp"))
        .await
        .unwrap();
    site.cluster
        .store(VIEW_CACHE, b"<?php private", &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    let deleted = "var/site/storage/images/d/deleted.png";
    site.cluster
        .store(deleted, b"old", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    site.cluster.delete(deleted).await.unwrap();

    // Settings from a config file this time, as deploy/index_image.conf spells them.
    let dir = TempDir::new("index-image-dfs");
    let file = dir.path().join("index_image.conf");
    std::fs::write(
        &file,
        format!(
            "INDEX_IMAGE_LAYOUT = ibexa-dfs\nINDEX_IMAGE_MOUNT_POINT = {}\n",
            site.mount.path().display()
        ),
    )
    .unwrap();
    let server = start_with(config(&site.db.url, &["--config", file.to_str().unwrap()]));
    let reply = get(&server, &format!("/{PNG}"));
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ibexa"[..]));
    assert_eq!(reply.header("content-type"), Some("image/png"));
    let ours = get(&server, &format!("/{JPG}"));
    assert!(ours.status == 200 && ours.body == webp, "stored through ezdb");
    assert_eq!(ours.header("content-type"), Some("image/webp"));
    let part = request(&server, "GET", &format!("/{JPG}"), &[("Range", "bytes=10-19")]);
    assert!(part.status == 206 && part.body == webp[10..20]);
    assert_eq!(get(&server, &format!("/{deleted}")).status, 404);
    assert_eq!(get(&server, &format!("/{VIEW_CACHE}")).status, 404);
}

/// The settings error `args` (after the program name and a database URL) get.
fn settings_error(args: &[&str]) -> String {
    let mut all = vec!["index_image", "--database-url=mysql://root@127.0.0.1:3306/unused"];
    all.extend_from_slice(args);
    match Config::parse_from(all) {
        Err(ConfigError::Settings(message)) => message,
        Err(ConfigError::Arguments(e)) => panic!("{args:?}: a usage error, not a settings one: {e}"),
        Ok(_) => panic!("{args:?} was accepted"),
    }
}

#[tokio::test]
async fn bad_layout_settings_stop_the_start_naming_the_setting() {
    let no_mount = settings_error(&["--layout=dfs"]);
    assert!(
        no_mount.contains("--mount-point") && no_mount.contains("INDEX_IMAGE_MOUNT_POINT"),
        "{no_mount}"
    );
    assert!(no_mount.contains("MountPointPath"), "the legacy name too: {no_mount}");
    let ibexa = settings_error(&["--layout=ibexa-dfs"]);
    assert!(ibexa.contains("--mount-point"), "{ibexa}");
    let stray = settings_error(&["--mount-point=/mnt/nfs"]);
    assert!(
        stray.contains("--layout") && stray.contains("layout is ezdb"),
        "{stray}"
    );
    let unknown = settings_error(&["--layout=s3"]);
    assert!(
        unknown.contains("--layout") && unknown.contains("ezdb, dfs, ibexa-dfs"),
        "{unknown}"
    );
    let table = settings_error(&["--layout=dfs", "--mount-point=/m", "--dfs-cache-table=x;drop"]);
    assert!(table.contains("--dfs-cache-table"), "{table}");
    let marker = settings_error(&["--layout=dfs", "--mount-point=/m", "--storage-dir="]);
    assert!(marker.contains("--dfs-storage-dir"), "{marker}");

    // The binary: exit code 2 and the setting on stderr, before any connection is tried.
    let dir = TempDir::new("index-image-dfs");
    let file = dir.path().join("index_image.conf");
    std::fs::write(&file, "INDEX_IMAGE_LAYOUT = dfs\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_index_image"))
        .args([
            "--database-url=mysql://root@127.0.0.1:1/unused",
            "--config",
            file.to_str().unwrap(),
        ])
        .env_remove("INDEX_IMAGE_LAYOUT")
        .env_remove("INDEX_IMAGE_MOUNT_POINT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--mount-point"), "{stderr}");

    // A mount point that is not there stops the start too (not 404 for every image).
    let db = TestDb::create_with(Schema::LegacyDfs).await;
    let missing = dir.path().join("not-mounted");
    let config = config(
        &db.url,
        &["--layout=dfs", &format!("--mount-point={}", missing.display())],
    );
    let refused = try_start(config)
        .err()
        .expect("a missing mount point is refused at start");
    let message = refused.to_string();
    assert!(
        message.contains("not-mounted") && message.contains("mount point"),
        "{message}"
    );
}
