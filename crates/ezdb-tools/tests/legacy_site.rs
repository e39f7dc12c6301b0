// The real ezcache binary on a site's database as legacy created it (two tables, the server's
// default collation, nothing installed): clears land in the clustered expiry.php that legacy
// nodes read, imagealias included, and purges honour the keys legacy nodes wrote there.

use ezdb_core::{Cluster, ClusterConfig, StoreOptions};
use ezdb_testdb::{LegacyNode, Schema, TestDb};
use std::process::Command;

const EXPIRY_FILE: &str = "var/site/cache/expiry.php";

fn ezcache(db: &TestDb, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ezcache"))
        .env("EZDB_URL", &db.url)
        .arg("--cache-dir=var/site/cache")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ezcache {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// expiry.php as a legacy node reads it.
async fn legacy_expiry_php(db: &TestDb) -> String {
    String::from_utf8(
        LegacyNode::new(&db.url)
            .fetch_contents(EXPIRY_FILE)
            .await
            .unwrap_or_default(),
    )
    .unwrap()
}

#[tokio::test]
async fn clears_and_purges_on_a_legacy_database_meet_legacy_nodes_in_expiry_php() {
    let db = TestDb::create_with(Schema::Legacy).await;
    let c = Cluster::connect(ClusterConfig {
        legacy_expiry_file: Some(EXPIRY_FILE.into()),
        ..ClusterConfig::new(&db.url)
    })
    .await
    .unwrap();
    let now = c.now();
    let old = StoreOptions {
        mtime: Some(now - 3_600),
        ..StoreOptions::new("viewcache", "php")
    };
    c.store("var/site/cache/content/site/2-a.cache", b"v", &old)
        .await
        .unwrap();

    // ezcache's clear is in the file legacy nodes read.
    ezcache(&db, &["--clear-id=content"]);
    let php = legacy_expiry_php(&db).await;
    assert!(
        php.starts_with("<?php") && php.contains("'content-view-cache' => "),
        "{php}"
    );
    assert!(!c.exists("var/site/cache/content/site/2-a.cache").await.unwrap());
    ezcache(&db, &["--clear-id=imagealias"]);
    let php = legacy_expiry_php(&db).await;
    assert!(
        php.contains("'image-manager-alias' => "),
        "imagealias moves the key legacy reads: {php}"
    );
    assert!(php.contains("'content-view-cache' => "), "earlier keys kept: {php}");
    ezcache(&db, &["--clear-all"]);
    ezcache(&db, &["--clear-all", "--purge"]);
    let php = legacy_expiry_php(&db).await;
    assert!(
        php.contains("'user-info-cache' => "),
        "--clear-all keeps the file of clears: {php}"
    );
    assert!(
        c.exists(EXPIRY_FILE).await.unwrap(),
        "expiry.php is neither expired nor purged"
    );

    // A legacy node clears the template-block cache; a purge made with ezcache honours it.
    let block = |n: &str| format!("var/site/cache/template-block/subtree/1/cache/{n}.cache");
    for (name, age) in [("old", 3_600), ("new", 10)] {
        let options = StoreOptions {
            mtime: Some(now - age),
            ..StoreOptions::new("template-block", "php")
        };
        c.store(&block(name), b"b", &options).await.unwrap();
    }
    let legacy_clear = now - 100;
    let php = format!("<?php\n$Timestamps = array( 'global-template-block-cache' => {legacy_clear} );\n?>\n");
    LegacyNode::new(&db.url)
        .store_contents(EXPIRY_FILE, php.as_bytes(), "expirycache", now + 5)
        .await;
    ezcache(&db, &["--clear-id=template-block", "--purge", "--expiry=-2 days"]);
    assert!(
        c.stat(&block("old")).await.unwrap().is_none(),
        "older than the legacy node's key"
    );
    assert!(c.exists(&block("new")).await.unwrap(), "newer than the key stays");
}
