// Throughput of the operator tools' work (purge, import) beside the same work done with plain
// SQL statements in the same run: one big DELETE, and raw INSERTs of the same files.

use crate::raw::Raw;
use ezdb_core::{Batches, Cluster, PurgeFilter, Selector, StoreOptions};
use sqlx::{Connection, Executor};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct ToolRow {
    pub work: String,
    pub ours: Duration,
    pub reference: Duration,
    pub items: u64,
    pub bytes: u64,
}

const PURGE_ROWS: u32 = 50_000;
const IMPORT_FILES: usize = 400;

pub async fn run(cluster: &Cluster, raw: &Raw, url: &str) -> Vec<ToolRow> {
    let mut conn = sqlx::mysql::MySqlConnection::connect(url).await.expect("connection");
    seed_expired(&mut conn, "bulk-a").await;
    let batches = Batches {
        size: 1000,
        pause: Duration::ZERO,
        max_batches: None,
    };
    let started = Instant::now();
    cluster
        .purge_matching(
            &Selector::Scopes(vec!["bulk-a".into()]),
            PurgeFilter::Expired,
            batches,
            |_| {},
        )
        .await
        .expect("purge");
    let ours = started.elapsed();
    seed_expired(&mut conn, "bulk-b").await;
    let started = Instant::now();
    conn.execute("DELETE FROM ezdbfile WHERE scope = 'bulk-b' AND expired = 1")
        .await
        .expect("plain delete");
    let reference = started.elapsed();
    let purge = ToolRow {
        work: format!("purge {PURGE_ROWS} expired rows (batches of 1000 / one DELETE)"),
        ours,
        reference,
        items: PURGE_ROWS as u64,
        bytes: 0,
    };

    let dir = std::env::temp_dir().join(format!("ezdb-bench-import-{}", std::process::id()));
    let files = write_corpus(&dir);
    let bytes: u64 = files.iter().map(|(_, size)| *size).sum();
    let started = Instant::now();
    for (path, _) in &files {
        let name = format!("var/bench/storage/{}", path.file_name().unwrap().to_string_lossy());
        cluster
            .store_file(
                &name,
                path,
                &StoreOptions::new("binaryfile", "application/octet-stream"),
            )
            .await
            .expect("import");
    }
    let ours = started.elapsed();
    let started = Instant::now();
    for (path, _) in &files {
        let name = format!("raw/storage/{}", path.file_name().unwrap().to_string_lossy());
        raw.store(&name, &std::fs::read(path).expect("read"))
            .await
            .expect("raw import");
    }
    let reference = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let import = ToolRow {
        work: format!("import {IMPORT_FILES} files (store_file / raw INSERTs)"),
        ours,
        reference,
        items: files.len() as u64,
        bytes,
    };
    vec![purge, import]
}

async fn seed_expired(conn: &mut sqlx::mysql::MySqlConnection, scope: &str) {
    conn.execute(
        format!(
            "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
             SELECT 'misc', CONCAT('{scope}/', seq), '', MD5(CONCAT('{scope}/', seq)), '{scope}', 3, -1000, 1 FROM seq_1_to_{PURGE_ROWS}"
        )
        .as_str(),
    )
    .await
    .expect("seed rows");
    conn.execute(
        format!("INSERT INTO ezdbfile_data SELECT MD5(CONCAT('{scope}/', seq)), 0, 'abc' FROM seq_1_to_{PURGE_ROWS}")
            .as_str(),
    )
    .await
    .expect("seed chunks");
}

/// A realistic mix: most files 2-20 KB, a quarter around 100 KB, a few of 1 MB.
fn write_corpus(dir: &Path) -> Vec<(PathBuf, u64)> {
    std::fs::create_dir_all(dir).expect("corpus dir");
    (0..IMPORT_FILES)
        .map(|i| {
            let size = match i % 20 {
                0 => 1 << 20,
                1..=5 => 100 << 10,
                n => (2 + n % 18) << 10,
            };
            let path = dir.join(format!("file-{i}.bin"));
            std::fs::write(&path, vec![(i % 251) as u8; size]).expect("write corpus");
            (path, size as u64)
        })
        .collect()
}

pub fn print_table(rows: &[ToolRow]) {
    println!("| work | ezdb time | ezdb rate | plain SQL time | plain SQL rate |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        let rate = |d: Duration| {
            let per_sec = r.items as f64 / d.as_secs_f64();
            if r.bytes > 0 {
                format!(
                    "{per_sec:.0} files/s, {:.1} MB/s",
                    r.bytes as f64 / 1e6 / d.as_secs_f64()
                )
            } else {
                format!("{per_sec:.0} rows/s")
            }
        };
        println!(
            "| {} | {:.2} s | {} | {:.2} s | {} |",
            r.work,
            r.ours.as_secs_f64(),
            rate(r.ours),
            r.reference.as_secs_f64(),
            rate(r.reference)
        );
    }
}
