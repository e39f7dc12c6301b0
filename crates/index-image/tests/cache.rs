//! The memory tier against a real database: single-flight loading, and rewrites seen within
//! the revalidation interval, a same-second same-size rewrite included.

mod common;

use common::*;
use ezdb_core::StoreOptions;
use ezdb_testdb::TestDb;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_simultaneous_misses_read_the_database_once() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let data = bytes(1 << 20);
    c.store(IMG, &data, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let (host_port, _) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    let server = start(&proxy.url(&db), &["--pool-size=8", "--cache-revalidate=60"]);
    assert_eq!(get(&server, "/healthz").status, 200);
    let before = proxy.bytes_from_database();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(40));
    let mut clients = Vec::new();
    for _ in 0..40 {
        let (address, start) = (server.address.clone(), start.clone());
        clients.push(tokio::spawn(async move {
            start.wait().await;
            fetch_async(&address, &format!("/{IMG}")).await
        }));
    }
    for client in clients {
        let body = tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .expect("bounded in time")
            .unwrap();
        assert!(body == data);
    }
    let read = proxy.bytes_from_database() - before;
    assert!(
        read < 2 * data.len() as u64,
        "40 requests read {read} bytes from the database for one file of {}",
        data.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_second_same_size_rewrite_is_seen_within_the_revalidation_interval() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    let server = start(&db.url, &["--cache-revalidate=0.5"]);
    let path = format!("/{IMG}");
    for round in 0..5u8 {
        let before = vec![b'a' + round; 1000];
        let after = vec![b'A' + round; 1000];
        let first = c.store(IMG, &before, &img).await.unwrap();
        // Revalidation must see this version before it serves it.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(get(&server, &path).body, before);
        let second = c.store(IMG, &after, &img).await.unwrap();
        assert_ne!(
            (first.mtime, first.size),
            (second.mtime, second.size),
            "an ezdb rewrite never keeps both the mtime and the size"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(get(&server, &path).body, after, "round {round}: served stale");
    }
}
