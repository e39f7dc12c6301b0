// The eZDFS layout through the C ABI: ezdb_options names the layout and the mount, the bytes
// land as plain files at <mount>/<name>, the rows in ezdfsfile / ezdfsfile_cache as legacy
// eZDFS has them, and bad layout settings are EZDB_CONFIG with a message naming the setting.

mod common;
use common::*;
use ezdb::*;
use ezdb_testdb::{Schema, TestDb};
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};

/// A temporary mount directory, removed on drop (also after a failed assertion).
struct Mount(PathBuf);

impl Mount {
    fn new(tag: &str) -> Mount {
        let dir = std::env::temp_dir().join(format!("ezdb-ffi-dfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Mount(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ezdb_options` with the given layout fields (pointers into the caller's strings).
fn options(layout: Option<&str>, mount: Option<&str>) -> ezdb_options {
    let mut o = ezdb_options::default();
    unsafe { ezdb_options_init(&mut o) };
    if let Some(layout) = layout {
        (o.layout, o.layout_len) = ptr_len(layout.as_bytes());
    }
    if let Some(mount) = mount {
        (o.mount_point, o.mount_point_len) = ptr_len(mount.as_bytes());
    }
    o
}

/// The rows of `table` named `name`: (size, scope, mtime > 0).
fn rows(db: &TestDb, table: &str, name: &str) -> Vec<(u64, String, bool)> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::mysql::MySqlConnection::connect(&db.url).await.unwrap();
        sqlx::query(&format!(
            "SELECT size, scope, mtime FROM {table} WHERE name_hash = MD5(?) AND name = ?"
        ))
        .bind(name)
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get::<u64, _>(0), row.get::<String, _>(1), row.get::<i32, _>(2) > 0))
        .collect()
    })
}

fn on_mount(mount: &Mount, name: &str) -> Option<Vec<u8>> {
    std::fs::read(Path::new(&mount.0).join(name)).ok()
}

#[test]
fn a_dfs_handle_puts_bytes_on_the_mount_and_rows_in_the_ezdfs_tables() {
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestDb::create_with(Schema::LegacyDfs));
    let mount = Mount::new("store");
    let cluster = open_with(&db.url, &options(Some("dfs"), Some(mount.path()))).unwrap_or_else(|e| panic!("{e:?}"));

    let image = "var/site/storage/images/a/b/1-1-eng-GB/logo.png";
    let png: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        store(cluster, image, &png, "image"),
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        fetch(cluster, image.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).unwrap(),
        png
    );
    assert_eq!(
        on_mount(&mount, image).as_deref(),
        Some(&png[..]),
        "the bytes are at <mount>/<name>"
    );
    assert_eq!(
        rows(&db, "ezdfsfile", image),
        [(png.len() as u64, "image".to_owned(), true)]
    );
    assert_eq!(
        rows(&db, "ezdfsfile_cache", image),
        [],
        "a storage file has no cache row"
    );
    assert!(exists(cluster, image));
    assert_eq!(stat(cluster, image).unwrap().size, png.len() as u64);

    let cache = "var/site/cache/content/site/2-abc.cache";
    assert_eq!(
        store(cluster, cache, b"<?php return 1;", "viewcache"),
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    assert_eq!(on_mount(&mount, cache).as_deref(), Some(&b"<?php return 1;"[..]));
    assert_eq!(
        rows(&db, "ezdfsfile_cache", cache),
        [(15, "viewcache".to_owned(), true)]
    );
    assert_eq!(
        rows(&db, "ezdfsfile", cache),
        [],
        "a cache file goes to the cache table only"
    );

    // Soft delete keeps the bytes (the stale copy); purge removes row and file.
    let mut count = 0u64;
    assert_eq!(
        unsafe { ezdb_delete(cluster, image.as_ptr().cast(), image.len(), &mut count) },
        ezdb_status::EZDB_OK
    );
    assert!(!exists(cluster, image));
    assert!(
        on_mount(&mount, image).is_some(),
        "a deleted file's bytes stay until purged"
    );
    let mut purged = 0;
    assert_eq!(
        unsafe { ezdb_purge(cluster, image.as_ptr().cast(), image.len(), -1, &mut purged) },
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    assert_eq!(purged, 1);
    assert_eq!(rows(&db, "ezdfsfile", image), []);
    assert!(on_mount(&mount, image).is_none(), "purge unlinks the file on the mount");
    close(cluster);
}

#[test]
fn handles_with_other_layout_settings_do_not_share_a_connection_state() {
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestDb::create_with(Schema::LegacyDfs));
    let (first, second) = (Mount::new("first"), Mount::new("second"));
    let a = open_with(&db.url, &options(Some("dfs"), Some(first.path()))).unwrap();
    let b = open_with(&db.url, &options(Some("dfs"), Some(second.path()))).unwrap();
    assert_eq!(
        store(a, "var/site/storage/a.txt", b"a", "binaryfile"),
        ezdb_status::EZDB_OK
    );
    assert_eq!(
        store(b, "var/site/storage/b.txt", b"b", "binaryfile"),
        ezdb_status::EZDB_OK
    );
    assert!(on_mount(&first, "var/site/storage/a.txt").is_some());
    assert!(on_mount(&second, "var/site/storage/b.txt").is_some());
    assert!(
        on_mount(&first, "var/site/storage/b.txt").is_none() && on_mount(&second, "var/site/storage/a.txt").is_none(),
        "each handle writes to its own mount"
    );

    // The same URL without a layout is the eZDB layout: its tables do not exist here.
    let plain = open(&db.url);
    let mut out = -1;
    let name = "var/site/storage/a.txt";
    assert_ne!(
        unsafe { ezdb_exists(plain, name.as_ptr().cast(), name.len(), &mut out) },
        ezdb_status::EZDB_OK,
        "an eZDB handle on the same URL does not reuse the DFS one"
    );
    for cluster in [a, b, plain] {
        close(cluster);
    }
}

#[test]
fn bad_layout_settings_are_config_errors_naming_the_setting() {
    let url = format!("{}/unused", ezdb_testdb::server_url());
    let (status, message) = open_with(&url, &options(Some("dfs"), None)).unwrap_err();
    assert_eq!(status, ezdb_status::EZDB_CONFIG, "{message}");
    assert!(message.contains("MountPointPath"), "{message}");

    let (status, message) = open_with(&url, &options(Some("s3"), None)).unwrap_err();
    assert_eq!(status, ezdb_status::EZDB_CONFIG, "{message}");
    assert!(message.contains("ezdb, dfs, ibexa-dfs"), "{message}");

    let (status, message) = open_with(&url, &options(None, Some("/mnt/share"))).unwrap_err();
    assert_eq!(status, ezdb_status::EZDB_CONFIG, "{message}");
    assert!(message.contains("layout is ezdb"), "{message}");

    let mut o = options(Some("dfs"), Some("/mnt/share"));
    let table = "ezdfsfile; DROP TABLE x";
    (o.dfs_cache_table, o.dfs_cache_table_len) = ptr_len(table.as_bytes());
    let (status, message) = open_with(&url, &o).unwrap_err();
    assert_eq!(status, ezdb_status::EZDB_CONFIG, "{message}");
    assert!(message.contains("plain table name"), "{message}");

    let bad = [0xffu8, 0xfe];
    let mut o = options(Some("dfs"), None);
    (o.mount_point, o.mount_point_len) = ptr_len(&bad);
    let (status, message) = open_with(&url, &o).unwrap_err();
    assert_eq!(status, ezdb_status::EZDB_INVALID_ARGUMENT, "{message}");
    assert!(message.contains("options.mount_point"), "{message}");
}

#[test]
fn a_missing_mount_directory_fails_at_connect_with_a_clear_message() {
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestDb::create_with(Schema::LegacyDfs));
    let gone = Mount::new("gone");
    let missing = gone.0.join("not-mounted");
    let cluster = open_with(&db.url, &options(Some("dfs"), missing.to_str())).unwrap();
    let status = unsafe { ezdb_connect(cluster) };
    let message = last_error();
    assert_eq!(status, ezdb_status::EZDB_CONFIG, "{message}");
    assert!(
        message.contains("mount point") && message.contains("MountPointPath") && message.contains("not-mounted"),
        "{message}"
    );
    assert_eq!(
        store(cluster, "var/site/storage/x", b"x", ""),
        ezdb_status::EZDB_CONFIG,
        "every call fails the same way, nothing is written elsewhere"
    );
    unsafe { ezdb_close(cluster) };
}
