// The raw database reference of scripts/bench-index-image.sh: `connections` connections, each
// reading files picked at random from a list with the legacy handler's two plain SELECTs (the
// row, then the chunks in order) and nothing else (no HTTP, no checks, no pool), for the given
// time. index_image with both cache tiers off is measured beside it in the same run.

use md5::{Digest, Md5};
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Row};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads for `seconds` and prints `files/s|MB/s`.
pub fn run(url: &str, paths: &std::path::Path, connections: usize, seconds: f64) {
    let names: Vec<String> = std::fs::read_to_string(paths)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", paths.display()))
        .lines()
        .map(|l| l.trim_start_matches('/').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(!names.is_empty(), "{} lists no file", paths.display());
    let hashes: Arc<Vec<String>> = Arc::new(names.iter().map(|n| hash(n)).collect());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let files = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let elapsed = runtime.block_on(async {
        let mut tasks = Vec::new();
        let mut opened = Vec::new();
        for _ in 0..connections {
            opened.push(MySqlConnection::connect(url).await.expect("raw connection"));
        }
        let started = Instant::now();
        let until = started + Duration::from_secs_f64(seconds);
        for (n, mut conn) in opened.into_iter().enumerate() {
            let (hashes, files, bytes) = (hashes.clone(), files.clone(), bytes.clone());
            tasks.push(tokio::spawn(async move {
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (n as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                while Instant::now() < until {
                    // xorshift64: a different sequence per connection, no dependency.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let h = &hashes[(seed % hashes.len() as u64) as usize];
                    let read = read_file(&mut conn, h).await.expect("raw read");
                    files.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(read, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await.expect("reader task");
        }
        started.elapsed().as_secs_f64()
    });
    let files = files.load(Ordering::Relaxed) as f64;
    let mb = bytes.load(Ordering::Relaxed) as f64 / 1_048_576.0;
    println!("{:.0}|{:.1}", files / elapsed, mb / elapsed);
}

fn hash(name: &str) -> String {
    Md5::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The row, then the chunks in order; the bytes read.
async fn read_file(conn: &mut MySqlConnection, h: &str) -> Result<u64, sqlx::Error> {
    let row: Option<(u64,)> = sqlx::query_as("SELECT size FROM ezdbfile WHERE name_hash = ?")
        .bind(h)
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_none() {
        return Ok(0);
    }
    let rows = sqlx::query("SELECT filedata FROM ezdbfile_data WHERE name_hash = ? ORDER BY `offset`")
        .bind(h)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::new();
    for row in rows {
        out.extend_from_slice(row.try_get::<&[u8], _>(0)?);
    }
    Ok(std::hint::black_box(out).len() as u64)
}
