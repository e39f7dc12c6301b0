// A short tour of ezdb-core on a real server: store files, read them back, generate a cache
// entry once, clear it with a global expiry, delete and purge. Run through `scripts/demo.sh`.

use ezdb_core::{Batches, CachePolicy, Cluster, ClusterConfig, PurgeFilter, Selector, StoreOptions, Visibility};
use sqlx::{Connection, Executor};
use std::time::{Duration, Instant};

const DATABASE: &str = "ezdb_demo";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::var("EZDB_TEST_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let mut admin = sqlx::mysql::MySqlConnection::connect(&server).await?;
    admin
        .execute(format!("CREATE DATABASE IF NOT EXISTS {DATABASE}").as_str())
        .await?;
    let url = format!("{}/{DATABASE}", server.trim_end_matches('/'));
    let cluster = Cluster::connect(ClusterConfig::new(&url)).await?;
    cluster.install_schema().await?;
    println!("connected to {} and installed the schema", ezdb_core::redact_url(&url));

    step("store three files");
    let image: Vec<u8> = (0..=255u8).cycle().take(150_000).collect();
    let files = [
        (
            "var/demo/storage/images/1/2/3/logo.png",
            image.as_slice(),
            StoreOptions::new("image", "image/png"),
        ),
        (
            "var/demo/storage/original/application/readme.txt",
            &b"hello cluster\0with a NUL byte"[..],
            StoreOptions::new("binaryfile", "text/plain"),
        ),
    ];
    for (name, bytes, options) in &files {
        let meta = cluster.store(name, bytes, options).await?;
        println!(
            "  stored {name}: {} bytes, scope {}, type {}",
            meta.size, meta.scope, meta.datatype
        );
    }
    let big = "var/demo/storage/original/video/clip.mp4";
    let started = Instant::now();
    let stream = tokio::io::AsyncReadExt::take(tokio::io::repeat(7), 20 << 20);
    cluster
        .store_reader(big, stream, &StoreOptions::new("mediafile", "video/mp4"))
        .await?;
    println!(
        "  streamed {big}: 20 MiB in {:?} (never held in memory)",
        started.elapsed()
    );

    step("read them back");
    for (name, bytes, _) in &files {
        let back = cluster.fetch(name).await?;
        println!("  {name}: {} bytes, identical: {}", back.len(), back == *bytes);
    }
    let range = cluster
        .fetch_range(
            big,
            ezdb_core::ByteRange {
                start: 65_530,
                end: 65_540,
            },
        )
        .await?;
    println!("  {big}: bytes 65530-65540 across a chunk boundary: {:?}", range.bytes);

    step("generate a view cache entry once, then hit it");
    let view = "var/demo/cache/content/demo/2-0123456789abcdef.cache";
    let policy = CachePolicy {
        store: StoreOptions::new("viewcache", "php"),
        ..Default::default()
    };
    for _ in 0..2 {
        let entry = cluster
            .process_cache(view, &policy, || async {
                Ok::<_, std::io::Error>(b"<?php return 'rendered page';".to_vec())
            })
            .await?;
        println!(
            "  process_cache({view}): {:?}, {} bytes",
            entry.source,
            entry.content.len()
        );
    }

    step("clear the view cache with a global expiry (no row is touched)");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cluster.set_global_expiry("content-view-cache", None).await?;
    println!("  exists after the clear: {}", cluster.exists(view).await?);
    let stale = cluster.fetch_with_meta(view, Visibility::IncludeExpired).await?;
    println!("  its stale copy is still readable: {} bytes", stale.bytes.len());
    let entry = cluster
        .process_cache(view, &policy, || async {
            Ok::<_, std::io::Error>(b"<?php return 'new page';".to_vec())
        })
        .await?;
    println!("  next process_cache: {:?}", entry.source);

    step("delete and purge");
    let deleted = cluster
        .delete_matching(&Selector::Prefix("var/demo/storage/".into()))
        .await?;
    println!("  soft-deleted {deleted} files under var/demo/storage/ (bytes kept until purge)");
    let batches = Batches {
        size: 100,
        pause: Duration::ZERO,
        max_batches: None,
    };
    let purged = cluster
        .purge_matching(
            &Selector::Prefix("var/demo/".into()),
            PurgeFilter::Expired,
            batches,
            |_| {},
        )
        .await?;
    println!(
        "  purged {purged} expired rows; remaining files: {:?}",
        cluster.list(&ezdb_core::ScopeFilter::All).await?
    );

    admin.execute(format!("DROP DATABASE {DATABASE}").as_str()).await?;
    println!("\ndemo finished; database {DATABASE} dropped");
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
}
