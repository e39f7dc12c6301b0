// Global expiry keys and the schema: a clear touches no rows yet every server sees it at once;
// keys are independent; the legacy expiry.php is kept in step; schema install and check.

mod common;
use common::*;
use ezdb_core::{CachePolicy, CacheSource, Cluster, ClusterConfig, StoreOptions};

const VIEW: &str = "var/site/cache/content/site/2-x.cache";

#[tokio::test]
async fn a_clear_expires_covered_files_on_every_server_without_touching_rows() {
    let (db, a) = cluster().await;
    let b = other_node(&db).await;
    a.store(
        VIEW,
        b"view",
        &StoreOptions {
            mtime: Some(a.now() - 10),
            ..StoreOptions::new("viewcache", "php")
        },
    )
    .await
    .unwrap();
    a.store(
        "var/site/storage/images/x.jpg",
        b"img",
        &StoreOptions {
            mtime: Some(a.now() - 10),
            ..StoreOptions::new("image", "image/jpeg")
        },
    )
    .await
    .unwrap();
    let before = row(&db, VIEW).await.unwrap();
    assert!(b.exists(VIEW).await.unwrap());
    let at = a.set_global_expiry("content-view-cache", None).await.unwrap();
    assert!(at >= a.now() - 1);
    assert!(
        !b.exists(VIEW).await.unwrap(),
        "the other server sees the clear at once"
    );
    assert!(b.fetch(VIEW).await.unwrap_err().is_not_found());
    assert!(
        b.exists("var/site/storage/images/x.jpg").await.unwrap(),
        "other scopes are not covered"
    );
    assert_eq!(row(&db, VIEW).await.unwrap(), before, "no row changed");
    a.set_global_expiry("content-view-cache", Some(1)).await.unwrap();
    assert!(b.exists(VIEW).await.unwrap(), "moving a key back un-expires");
    a.set_global_expiry("content-view-cache", None).await.unwrap();
    let policy = CachePolicy {
        store: StoreOptions::new("viewcache", "php"),
        ..Default::default()
    };
    let regenerated = b
        .process_cache(VIEW, &policy, || async { Ok::<_, std::io::Error>(b"fresh".to_vec()) })
        .await
        .unwrap();
    assert_eq!(regenerated.source, CacheSource::Generated);
    assert!(a.exists(VIEW).await.unwrap());
}

#[tokio::test]
async fn keys_are_updated_independently_by_concurrent_servers() {
    let (db, _) = cluster().await;
    let mut nodes = Vec::new();
    for _ in 0..8 {
        nodes.push(other_node(&db).await);
    }
    let keys = [
        "content-view-cache",
        "user-info-cache",
        "class-identifier-cache",
        "sort-key-cache",
    ];
    let sets = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| n.set_global_expiry(keys[i % 4], Some(1_000 + i as i64)));
    futures_util::future::join_all(sets).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let all = nodes[0].global_expiries().await.unwrap();
    assert_eq!(all.len(), 4, "no clear lost: {all:?}");
    assert!(nodes[0].global_expiry("nosuch").await.unwrap().is_none());
    assert!(nodes[0].set_global_expiry("bad'key", None).await.is_err());
}

#[tokio::test]
async fn legacy_expiry_php_is_kept_in_step_both_ways() {
    let (db, _) = cluster().await;
    let mut config = ClusterConfig::new(&db.url);
    config.legacy_expiry_file = Some("var/site/cache/expiry.php".into());
    let ours = Cluster::connect(config).await.unwrap();
    ours.set_global_expiry("content-view-cache", Some(1_700_000_000))
        .await
        .unwrap();
    ours.set_global_expiry("user-info-cache", Some(1_700_000_100))
        .await
        .unwrap();
    let php = String::from_utf8(ours.fetch("var/site/cache/expiry.php").await.unwrap()).unwrap();
    assert!(
        php.contains("'content-view-cache' => 1700000000") && php.contains("'user-info-cache' => 1700000100"),
        "{php}"
    );
    assert_eq!(row(&db, "var/site/cache/expiry.php").await.unwrap().2, "expirycache");
    // A legacy node rewrites the file with a newer clear; importing takes it.
    let legacy =
        "<?php\n$Timestamps = array( 'content-view-cache' => 1800000000, 'user-info-cache' => 1700000100 );\n?>\n";
    ours.store(
        "var/site/cache/expiry.php",
        legacy.as_bytes(),
        &StoreOptions::new("expirycache", "misc"),
    )
    .await
    .unwrap();
    assert_eq!(ours.import_legacy_expiry().await.unwrap(), 2);
    assert_eq!(
        ours.global_expiry("content-view-cache").await.unwrap(),
        Some(1_800_000_000)
    );
}

#[tokio::test]
async fn schema_install_is_idempotent_and_check_names_differences() {
    let (db, cluster) = cluster().await;
    cluster.install_schema().await.unwrap();
    assert!(cluster.check_schema().await.unwrap().is_empty());
    exec(&db, "ALTER TABLE ezdbfile_data DROP FOREIGN KEY ezdbfile_fk1").await;
    exec(&db, "DROP TABLE ezdbfile_expiry").await;
    let problems = cluster.check_schema().await.unwrap();
    assert!(
        problems.iter().any(|p| p.contains("ezdbfile_expiry is missing")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("FOREIGN KEY")), "{problems:?}");
    let err = cluster.exists("anything").await.unwrap_err();
    assert!(
        err.to_string().contains("schema install"),
        "a missing table says how to fix it: {err}"
    );
}

#[tokio::test]
async fn a_wrong_password_or_server_is_reported_as_such() {
    let err = Cluster::connect_url("mysql://root:wrongpass@127.0.0.1:1/nodb")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot connect") && err.contains("127.0.0.1:1") && !err.contains("wrongpass"),
        "{err}"
    );
}
