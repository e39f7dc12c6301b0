// ezdb-bench: ops/s and MB/s of ezdb-core beside the minimal raw sqlx statements on the same
// rows, measured in the same run on the same server; plus peak memory of a 64 MiB stream.

mod galera;
mod memory;
mod raw;
mod raw_read;
mod tools;

use clap::Parser;
use ezdb_core::{CachePolicy, Cluster, ClusterConfig, StoreOptions};
use ezdb_testdb::TestDb;
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmark ezdb-core against raw sqlx on a throwaway database", long_about = None)]
struct Args {
    /// Seconds spent on each measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Instead: the core operations on a private 3-node Galera cluster beside a private single
    /// server, and the generation lock contended across the nodes (scripts/bench-galera.sh).
    #[arg(long)]
    galera: bool,
    /// Internal: run the 64 MiB streaming memory probe against this database URL.
    #[arg(long, hide = true)]
    memory_probe: Option<String>,
    /// Instead of the table: read the files listed in --paths from this database (eZDB
    /// layout) with plain SELECTs on --connections connections for --seconds, and print
    /// "files/s|MB/s" (the raw reference of scripts/bench-index-image.sh).
    #[arg(long, value_name = "URL", requires = "paths")]
    raw_read: Option<String>,
    /// File of cluster names, one a line (a leading / is dropped), for --raw-read.
    #[arg(long, value_name = "FILE")]
    paths: Option<std::path::PathBuf>,
    /// Connections reading at once, for --raw-read.
    #[arg(long, default_value_t = 1)]
    connections: usize,
}

const SIZES: [(&str, usize); 3] = [("1 KB", 1 << 10), ("100 KB", 100 << 10), ("2 MB", 2 << 20)];

struct Row {
    operation: String,
    size: &'static str,
    bytes: usize,
    ours: f64,
    reference: f64,
    reference_name: &'static str,
}

fn main() {
    let args = Args::parse();
    if let (Some(url), Some(paths)) = (&args.raw_read, &args.paths) {
        raw_read::run(url, paths, args.connections.max(1), args.seconds);
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(url) = args.memory_probe {
        runtime.block_on(memory::probe(&url));
        return;
    }
    if args.galera {
        runtime.block_on(galera::run(Duration::from_secs_f64(args.seconds)));
        return;
    }
    let (rows, tool_rows) = runtime.block_on(run(Duration::from_secs_f64(args.seconds)));
    print_table(&rows);
    println!();
    tools::print_table(&tool_rows);
    println!();
    println!("{}", memory::measure_in_child());
}

async fn run(budget: Duration) -> (Vec<Row>, Vec<tools::ToolRow>) {
    let db = TestDb::create().await;
    let cluster = Cluster::connect(ClusterConfig::new(&db.url).dedicated())
        .await
        .expect("connect");
    cluster.install_schema().await.expect("schema");
    let raw = raw::Raw::connect(&db.url).await;
    let mut rows = Vec::new();
    for (label, size) in SIZES {
        let data = vec![0x5a; size];
        let name = format!("bench/{size}.bin");
        let opts = StoreOptions::new("binaryfile", "application/octet-stream");
        let raw_name = format!("raw/{size}");
        let (ours, reference) = compare(
            budget,
            || cluster.store(&name, &data, &opts),
            || raw.store(&raw_name, &data),
        )
        .await;
        rows.push(Row {
            operation: "store".into(),
            size: label,
            bytes: size,
            ours,
            reference,
            reference_name: "raw INSERTs",
        });
        let (ours, reference) = compare(budget, || cluster.fetch(&name), || raw.fetch(&raw_name)).await;
        rows.push(Row {
            operation: "fetch".into(),
            size: label,
            bytes: size,
            ours,
            reference,
            reference_name: "raw SELECTs",
        });
        let (ours, reference) = compare(budget, || cluster.exists(&name), || raw.exists(&raw_name)).await;
        rows.push(Row {
            operation: "exists".into(),
            size: label,
            bytes: 0,
            ours,
            reference,
            reference_name: "raw SELECT",
        });
    }
    rows.extend(process_cache_rows(&cluster, &raw, budget).await);
    let tool_rows = tools::run(&cluster, &raw, &db.url).await;
    (rows, tool_rows)
}

async fn process_cache_rows(cluster: &Cluster, raw: &raw::Raw, budget: Duration) -> Vec<Row> {
    let data = vec![0x33; 10 << 10];
    let name = "var/bench/cache/content/bench/2-hit.cache";
    let policy = CachePolicy {
        store: StoreOptions::new("viewcache", "php"),
        ..Default::default()
    };
    let generate = || async { Ok::<_, std::io::Error>(data.clone()) };
    let (hit, raw_fetch) = compare(
        budget,
        || cluster.process_cache(name, &policy, generate),
        || raw.fetch("raw/10240-cache"),
    )
    .await;
    let (mut n, mut m) = (0u64, 0u64);
    let miss = || {
        n += 1;
        let name = format!("var/bench/cache/content/bench/{n}-miss.cache");
        let policy = &policy;
        async move { cluster.process_cache(&name, policy, generate).await }
    };
    let raw_miss = || {
        m += 1;
        let name = format!("raw/miss-{m}");
        let data = &data;
        async move { raw.store(&name, data).await }
    };
    let (miss, raw_store) = compare(budget, miss, raw_miss).await;
    vec![
        Row {
            operation: "process_cache hit".into(),
            size: "10 KB",
            bytes: data.len(),
            ours: hit,
            reference: raw_fetch,
            reference_name: "raw SELECTs",
        },
        Row {
            operation: "process_cache miss".into(),
            size: "10 KB",
            bytes: data.len(),
            ours: miss,
            reference: raw_store,
            reference_name: "raw INSERTs",
        },
    ]
}

/// Operations per second of `ours` and of `reference`, run in alternating 100 ms slices for
/// `budget` each, so a machine that gets busier or quieter during the run affects both alike.
async fn compare<A, FA, TA, EA, B, FB, TB, EB>(budget: Duration, mut ours: A, mut reference: B) -> (f64, f64)
where
    A: FnMut() -> FA,
    FA: Future<Output = Result<TA, EA>>,
    EA: std::fmt::Display,
    B: FnMut() -> FB,
    FB: Future<Output = Result<TB, EB>>,
    EB: std::fmt::Display,
{
    const SLICE: Duration = Duration::from_millis(100);
    let (mut ours_total, mut reference_total) = (Tally::default(), Tally::default());
    while ours_total.time < budget || ours_total.count < 5 || reference_total.count < 5 {
        ours_total.run(SLICE, &mut ours).await;
        reference_total.run(SLICE, &mut reference).await;
    }
    (ours_total.rate(), reference_total.rate())
}

#[derive(Default)]
struct Tally {
    count: u32,
    time: Duration,
}

impl Tally {
    async fn run<F, Fut, T, E>(&mut self, slice: Duration, op: &mut F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let started = Instant::now();
        loop {
            op().await.unwrap_or_else(|e| panic!("benchmark operation failed: {e}"));
            self.count += 1;
            if started.elapsed() >= slice {
                break;
            }
        }
        self.time += started.elapsed();
    }

    fn rate(&self) -> f64 {
        f64::from(self.count) / self.time.as_secs_f64()
    }
}

fn print_table(rows: &[Row]) {
    println!("| operation | size | ezdb ops/s | ezdb MB/s | reference | ref ops/s | ref MB/s | ezdb / ref |");
    println!("|---|---|---:|---:|---|---:|---:|---:|");
    for r in rows {
        let mb = |ops: f64| {
            if r.bytes == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}", ops * r.bytes as f64 / 1e6)
            }
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.0} | {} | {:.2} |",
            r.operation,
            r.size,
            r.ours,
            mb(r.ours),
            r.reference_name,
            r.reference,
            mb(r.reference),
            r.ours / r.reference
        );
    }
}
