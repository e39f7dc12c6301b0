// Peak memory of streaming a 64 MiB file, measured in a child process of its own so nothing
// else the benchmark allocated counts: peak RSS reset, stream consumed, growth reported.

use ezdb_core::{Cluster, ClusterConfig, StoreOptions, Visibility};
use ezdb_testdb::TestDb;
use tokio::io::AsyncReadExt;

const SIZE: u64 = 64 << 20;

/// Runs `ezdb-bench --memory-probe` on a throwaway database and returns its one-line report.
pub fn measure_in_child() -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = runtime.block_on(TestDb::create());
    let output = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["--memory-probe", &db.url])
        .output()
        .expect("run the memory probe");
    drop(db);
    String::from_utf8_lossy(&output.stdout).trim().to_owned() + &String::from_utf8_lossy(&output.stderr)
}

pub async fn probe(url: &str) {
    let cluster = Cluster::connect(ClusterConfig::new(url).dedicated())
        .await
        .expect("connect");
    cluster.install_schema().await.expect("schema");
    let source = tokio::io::repeat(0x42).take(SIZE);
    cluster
        .store_reader("probe/64mib.bin", source, &StoreOptions::default())
        .await
        .expect("streamed store");
    let store_peak = peak_rss_kib();
    reset_peak();
    let before = peak_rss_kib();
    let mut stream = cluster
        .open_stream("probe/64mib.bin", Visibility::Live, None)
        .await
        .expect("open stream");
    let mut total = 0u64;
    while let Some(chunk) = stream.next_chunk().await {
        total += chunk.expect("chunk").len() as u64;
    }
    assert_eq!(total, SIZE);
    let after = peak_rss_kib();
    println!(
        "64 MiB streamed fetch: peak RSS grew by {:.1} MiB during the stream (process peak {:.1} MiB; \
         the streamed store of the same file peaked at {:.1} MiB). Goal: under 8 MiB.",
        (after.saturating_sub(before)) as f64 / 1024.0,
        after as f64 / 1024.0,
        store_peak as f64 / 1024.0
    );
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Linux: writing 5 to clear_refs resets the peak RSS to the current RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
