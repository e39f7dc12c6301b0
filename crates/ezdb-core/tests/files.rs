// Deleting, purging, listing, copying and moving against a real MariaDB, including the legacy
// scenarios around LIKE escaping, wildcards, directory lists and trunks.

mod common;
use common::*;
use ezdb_core::{Batches, PurgeFilter, ScopeFilter, Selector, StoreOptions, Visibility};
use std::time::Duration;

fn opts(scope: &str) -> StoreOptions {
    StoreOptions::new(scope, "text/plain")
}

#[tokio::test]
async fn delete_is_soft_and_keeps_the_bytes_until_purge() {
    let (db, cluster) = cluster().await;
    cluster.store("d/p", b"old bytes", &opts("test")).await.unwrap();
    let mtime = row(&db, "d/p").await.unwrap().0;
    assert!(cluster.delete("d/p").await.unwrap());
    let (deleted_mtime, expired, ..) = row(&db, "d/p").await.unwrap();
    assert_eq!((deleted_mtime, expired), (-mtime, 1));
    assert!(!cluster.exists("d/p").await.unwrap());
    assert!(cluster.fetch("d/p").await.unwrap_err().is_not_found());
    let stale = cluster
        .fetch_with_meta("d/p", Visibility::IncludeExpired)
        .await
        .unwrap();
    assert_eq!(stale.bytes, b"old bytes");
    assert!(
        !cluster.delete("missing").await.unwrap(),
        "deleting a missing path creates nothing"
    );
    assert!(row(&db, "missing").await.is_none());
    cluster.store("d/p", b"new", &opts("test")).await.unwrap();
    assert!(
        cluster.exists("d/p").await.unwrap(),
        "re-storing a deleted path makes it live"
    );
    assert!(cluster.delete("d/p").await.unwrap());
    assert!(cluster.purge("d/p", PurgeFilter::Expired).await.unwrap());
    assert!(row(&db, "d/p").await.is_none());
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile_data").await,
        0,
        "chunks follow by cascade"
    );
}

#[tokio::test]
async fn prefix_delete_escapes_like_wildcards() {
    let (_db, cluster) = cluster().await;
    for i in 1..=10 {
        cluster
            .store(&format!("dir/file-{i}.txt"), b"x", &opts("t"))
            .await
            .unwrap();
        cluster
            .store(&format!("dir/otherfile-{i}.txt"), b"x", &opts("t"))
            .await
            .unwrap();
    }
    cluster.store("dir/aXb.txt", b"x", &opts("t")).await.unwrap();
    cluster.store("dir/a_b.txt", b"x", &opts("t")).await.unwrap();
    cluster.store("dir/100%.txt", b"x", &opts("t")).await.unwrap();
    cluster.store("dir/1000.txt", b"x", &opts("t")).await.unwrap();
    assert_eq!(cluster.delete_prefix("dir", "file").await.unwrap(), 10);
    assert!(cluster.exists("dir/otherfile-3.txt").await.unwrap());
    assert_eq!(cluster.delete_prefix("dir", "a_b").await.unwrap(), 1);
    assert!(cluster.exists("dir/aXb.txt").await.unwrap(), "underscore is literal");
    assert_eq!(cluster.delete_prefix("dir", "100%").await.unwrap(), 1);
    assert!(cluster.exists("dir/1000.txt").await.unwrap(), "percent is literal");
    assert_eq!(cluster.delete_prefix("dir", "").await.unwrap(), 12);
    assert!(cluster
        .list(&ScopeFilter::All)
        .await
        .unwrap()
        .iter()
        .all(|n| n.starts_with("dir/")));
}

#[tokio::test]
async fn bulk_deletes_work_in_batches() {
    let (db, cluster) = cluster_with(|mut c| {
        c.batch_size = 7;
        c
    })
    .await;
    for i in 0..50 {
        cluster.store(&format!("many/{i:03}"), b"x", &opts("t")).await.unwrap();
    }
    let mut batches = Vec::new();
    let n = cluster
        .expire_matching(&Selector::Prefix("many/".into()), |b| batches.push(b))
        .await
        .unwrap();
    assert_eq!(n, 50);
    assert!(batches.iter().all(|b| *b <= 7) && batches.len() >= 8, "{batches:?}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile WHERE expired = 1 AND mtime < 0").await,
        50
    );
}

#[tokio::test]
async fn wildcard_delete_treats_dots_literally() {
    let (_db, cluster) = cluster().await;
    for name in [
        "dir/a.txt",
        "dir/a.php",
        "dir/aXtxt",
        "dir/sub/b.txt",
        "dir/c.jpg",
        "dir/c.png",
    ] {
        cluster.store(name, b"x", &opts("t")).await.unwrap();
    }
    assert_eq!(
        cluster.delete_wildcard("dir/*.txt").await.unwrap(),
        2,
        "a.txt and sub/b.txt"
    );
    assert!(cluster.exists("dir/a.php").await.unwrap());
    assert!(
        cluster.exists("dir/aXtxt").await.unwrap(),
        "legacy deleted this: the dot matched any character"
    );
    assert_eq!(cluster.delete_wildcard("dir/c.{jpg,png}").await.unwrap(), 2);
}

#[tokio::test]
async fn dir_list_delete_uses_trunks_for_view_caches() {
    let (_db, cluster) = cluster().await;
    let common = "var/site/cache/content";
    for node in ["2", "21"] {
        for (sa, hash) in [("site", "aaa"), ("admin", "bbb")] {
            let name = format!("{common}/{sa}/{node}-{hash}.cache");
            cluster.store(&name, b"view", &opts("viewcache")).await.unwrap();
        }
    }
    let n = cluster
        .delete_by_dir_list(&["site", "admin"], common, "2-")
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(!cluster.exists("var/site/cache/content/site/2-aaa.cache").await.unwrap());
    assert!(
        cluster
            .exists("var/site/cache/content/site/21-aaa.cache")
            .await
            .unwrap(),
        "node 21 kept"
    );
    for folder in ["f1", "f2", "f3"] {
        for i in 0..5 {
            cluster
                .store(&format!("var/x/{folder}/fileToDelete-{i}"), b"x", &opts("t"))
                .await
                .unwrap();
            cluster
                .store(&format!("var/x/{folder}/fileToKeep-{i}"), b"x", &opts("t"))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        cluster
            .delete_by_dir_list(&["f1", "f2", "f3"], "var/x", "fileToDelete")
            .await
            .unwrap(),
        15
    );
    assert!(cluster.exists("var/x/f2/fileToKeep-4").await.unwrap());
}

#[tokio::test]
async fn purge_by_age_and_batches_leave_live_rows_alone() {
    let (db, cluster) = cluster().await;
    for i in 0..10 {
        let name = format!("set1/{i}");
        cluster.store(&name, b"x", &opts("t")).await.unwrap();
        cluster.delete(&name).await.unwrap();
    }
    for i in 0..5 {
        cluster.store(&format!("set2/{i}"), b"x", &opts("t")).await.unwrap();
    }
    let mut counts = Vec::new();
    let batches = Batches {
        size: 3,
        pause: Duration::from_millis(1),
        max_batches: None,
    };
    let n = cluster
        .purge_matching(&Selector::Prefix("set".into()), PurgeFilter::Expired, batches, |c| {
            counts.push(c)
        })
        .await
        .unwrap();
    assert_eq!((n, counts), (10, vec![3, 3, 3, 1]));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ezdbfile").await, 5);
    let future = cluster.now() + 10;
    let older = cluster
        .purge_matching(
            &Selector::Prefix("set2/".into()),
            PurgeFilter::OlderThan(future),
            batches,
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(older, 5, "with an age, live rows older than it go too");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ezdbfile_data").await, 0);
}

#[tokio::test]
async fn list_by_scope_and_expired_listing() {
    let (_db, cluster) = cluster().await;
    cluster.store("i/1.jpg", b"x", &opts("image")).await.unwrap();
    cluster.store("i/2.jpg", b"x", &opts("image")).await.unwrap();
    cluster.store("b/1.pdf", b"x", &opts("binaryfile")).await.unwrap();
    cluster.store("c/1.cache", b"x", &opts("viewcache")).await.unwrap();
    let images = cluster.list(&ScopeFilter::Only(vec!["image".into()])).await.unwrap();
    assert_eq!(images, vec!["i/1.jpg", "i/2.jpg"]);
    let others = cluster.list(&ScopeFilter::AllBut(vec!["image".into()])).await.unwrap();
    assert_eq!(others, vec!["b/1.pdf", "c/1.cache"]);
    let quote = cluster
        .list(&ScopeFilter::Only(vec!["x') OR ('1'='1".into()]))
        .await
        .unwrap();
    assert!(quote.is_empty(), "scopes are bound, never spliced");
    cluster.delete("c/1.cache").await.unwrap();
    let expired = cluster.list_expired(&["viewcache".into()], None, 100, 0).await.unwrap();
    assert_eq!(expired, vec!["c/1.cache"]);
    let old_only = cluster
        .list_expired(&["viewcache".into()], Some(1), 100, 0)
        .await
        .unwrap();
    assert!(old_only.is_empty(), "its original mtime is recent");
    assert!(cluster.list_expired(&[], None, 100, 0).await.is_err());
}

#[tokio::test]
async fn copy_keeps_labels_and_mtime_and_replaces_the_destination() {
    let (db, cluster) = cluster().await;
    let src = bytes(70_000, 1);
    cluster
        .store(
            "var/s/cache/content/s/2-src.cache",
            &src,
            &StoreOptions {
                mtime: Some(1_500_000_000),
                ..opts("viewcache")
            },
        )
        .await
        .unwrap();
    cluster
        .store("var/s/cache/content/s/3-dst.cache", &bytes(300_000, 2), &opts("other"))
        .await
        .unwrap();
    cluster
        .copy("var/s/cache/content/s/2-src.cache", "var/s/cache/content/s/3-dst.cache")
        .await
        .unwrap();
    let copied = cluster
        .fetch_with_meta("var/s/cache/content/s/3-dst.cache", Visibility::Live)
        .await
        .unwrap();
    assert_eq!(copied.bytes, src);
    assert_eq!(
        (
            copied.meta.mtime,
            copied.meta.scope.as_str(),
            copied.meta.datatype.as_str()
        ),
        (1_500_000_000, "viewcache", "text/plain")
    );
    assert_eq!(
        row(&db, "var/s/cache/content/s/3-dst.cache").await.unwrap().5,
        "var/s/cache/content/s/3-",
        "trunk recomputed"
    );
    assert_eq!(chunks(&db, "var/s/cache/content/s/3-dst.cache").await.len(), 2);
    cluster
        .link_copy("var/s/cache/content/s/2-src.cache", "l")
        .await
        .unwrap();
    assert_eq!(cluster.fetch("l").await.unwrap(), src);
    let err = cluster.copy("nope", "l").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(cluster.fetch("l").await.unwrap(), src, "a failed copy changes nothing");
}

#[tokio::test]
async fn move_replaces_even_a_deleted_destination() {
    let (db, cluster) = cluster().await;
    let data = bytes(140_000, 3);
    cluster.store("m/src", &data, &opts("t")).await.unwrap();
    cluster.store("m/dst", &bytes(500_000, 4), &opts("t")).await.unwrap();
    cluster.delete("m/dst").await.unwrap();
    cluster.rename("m/src", "m/dst").await.unwrap();
    assert!(row(&db, "m/src").await.is_none());
    assert_eq!(cluster.fetch("m/dst").await.unwrap(), data);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile_data").await,
        3,
        "old destination chunks gone"
    );
    cluster.rename("m/dst", "m/dst").await.unwrap();
    assert_eq!(
        cluster.fetch("m/dst").await.unwrap(),
        data,
        "moving onto itself is a no-op"
    );
    assert!(cluster.rename("m/none", "m/x").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_batched_stat_answers_as_one_stat_per_name() {
    let (_db, cluster) = common::cluster().await;
    common::check_stat_many(&cluster).await;
}

#[tokio::test]
async fn a_conditional_store_keeps_a_newer_live_version() {
    let (_db, cluster) = common::cluster().await;
    let dir = ezdb_testdb::TempDir::new("store-unless-newer");
    common::check_store_unless_newer(&cluster, &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_store_racing_a_newer_writer_never_overwrites_it() {
    let (db, cluster) = common::cluster().await;
    let writer = other_node(&db).await;
    let dir = ezdb_testdb::TempDir::new("store-race");
    let local = dir.join("old.bin");
    std::fs::write(&local, b"old layout").unwrap();
    let now = cluster.now();
    for i in 0..30 {
        let name = format!("var/site/storage/original/race/{i}.bin");
        let old = StoreOptions {
            mtime: Some(now),
            ..StoreOptions::new("binaryfile", "application/octet-stream")
        };
        let new = StoreOptions {
            mtime: Some(now + 100),
            ..old.clone()
        };
        let (conditional, plain) = tokio::join!(
            cluster.store_file_unless_newer(&name, &local, &old),
            writer.store(&name, b"newer writer", &new)
        );
        conditional.unwrap();
        plain.unwrap();
        assert_eq!(cluster.fetch(&name).await.unwrap(), b"newer writer", "{name}");
    }
}
