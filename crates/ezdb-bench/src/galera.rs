//! `ezdb-bench --galera`: the core operations on a private 3-node Galera cluster, through one
//! node and spread over the three, beside a private single server with the same settings,
//! measured in the same run in alternating slices; and the `.generating` lock under contention
//! (callers on the three nodes at once, one expired entry) beside the same callers on the single
//! server.

use crate::Tally;
use ezdb_core::{CachePolicy, Cluster, ClusterConfig, Generation, StoreOptions};
use ezdb_testdb::{database_url, GaleraCluster, PrivateServer};
use sqlx::{Connection, Executor};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The same server settings for the cluster's nodes and the single server.
const SERVER_OPTIONS: [&str; 2] = ["--innodb-buffer-pool-size=256M", "--innodb-log-file-size=128M"];
const DATABASE: &str = "ezdb_bench_galera";

type Op<'a> = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>> + 'a>;

struct Row {
    operation: String,
    bytes: usize,
    /// ops/s: single server, Galera through node 1, Galera spread over the 3 nodes.
    rates: [f64; 3],
}

/// Runs the benchmark and prints its tables (Markdown).
pub async fn run(budget: Duration) {
    let started = Instant::now();
    let single = PrivateServer::start("bench-single", &SERVER_OPTIONS)
        .unwrap_or_else(|e| panic!("cannot start the private single server: {e}"));
    let galera = GaleraCluster::start("bench-galera", 3, &SERVER_OPTIONS)
        .unwrap_or_else(|e| panic!("cannot start a private 3-node Galera cluster: {e}"));
    eprintln!(
        "bench: single server and 3 Galera nodes up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let single_url = create_database(&single.url()).await;
    let galera_urls = {
        let first = create_database(&galera.url(0)).await;
        let mut urls = vec![first];
        urls.extend((1..3).map(|i| database_url(&galera.url(i), DATABASE)));
        urls
    };
    let connect = |url: String| async move {
        Cluster::connect(ClusterConfig::new(url).dedicated())
            .await
            .expect("connect")
    };
    let one = connect(single_url.clone()).await;
    one.install_schema().await.expect("schema");
    let nodes = [
        connect(galera_urls[0].clone()).await,
        connect(galera_urls[1].clone()).await,
        connect(galera_urls[2].clone()).await,
    ];
    nodes[0].install_schema().await.expect("schema");

    let mut rows = Vec::new();
    for (label, size) in [("1 KB", 1usize << 10), ("100 KB", 100 << 10)] {
        let data = vec![0x5a; size];
        let name = format!("bench/{size}.bin");
        let opts = StoreOptions::new("binaryfile", "application/octet-stream");
        let (data, name, opts) = (&data, &name, &opts);
        rows.push(
            measure(
                budget,
                format!("store {label}"),
                size,
                three(&one, &nodes, |c, _| async move {
                    c.store(name, data, opts).await.map(|_| ())
                }),
            )
            .await,
        );
        rows.push(
            measure(
                budget,
                format!("fetch {label}"),
                size,
                three(&one, &nodes, |c, _| async move { c.fetch(name).await.map(|_| ()) }),
            )
            .await,
        );
    }
    let page = vec![0x33; 10 << 10];
    let policy = CachePolicy {
        store: StoreOptions::new("viewcache", "php"),
        ..Default::default()
    };
    let (page, policy) = (&page, &policy);
    let generate = || async { Ok::<_, std::io::Error>(page.clone()) };
    rows.push(
        measure(
            budget,
            "process_cache hit 10 KB".into(),
            page.len(),
            three(&one, &nodes, |c, _| async move {
                let name = "var/bench/cache/content/bench/2-hit.cache";
                c.process_cache(name, policy, generate).await.map(|_| ())
            }),
        )
        .await,
    );
    rows.push(
        measure(
            budget,
            "process_cache miss 10 KB".into(),
            page.len(),
            three(&one, &nodes, |c, n| async move {
                let name = format!("var/bench/cache/content/bench/{n}-miss.cache");
                c.process_cache(&name, policy, generate).await.map(|_| ())
            }),
        )
        .await,
    );
    rows.push(
        measure(
            budget,
            "take + release the .generating lock".into(),
            0,
            three(&one, &nodes, |c, _| async move {
                match c
                    .start_generation("var/bench/cache/content/bench/2-lock.cache", None)
                    .await?
                {
                    Generation::Acquired(lock) => c.abort_generation(lock).await,
                    Generation::Busy { remaining_secs } => panic!("a lock nobody holds is busy for {remaining_secs} s"),
                }
            }),
        )
        .await,
    );
    print_table(&rows);

    println!();
    let single_urls = vec![single_url.clone(); 3];
    let reference = contention(&single_urls).await;
    let across = contention(&galera_urls).await;
    println!(
        "| {CALLERS} callers in process_cache on one expired entry, {ROUNDS} rounds | generations | mean wait of a caller (ms) | slowest caller (ms) |"
    );
    println!("|---|---:|---:|---:|");
    for (label, c) in [
        ("single server (reference)", reference),
        ("Galera, a third of the callers on each node", across),
    ] {
        println!(
            "| {label} | {} | {:.1} | {:.1} |",
            c.generations,
            c.mean.as_secs_f64() * 1000.0,
            c.slowest.as_secs_f64() * 1000.0
        );
    }
    drop(galera);
    single.stop();
}

async fn create_database(server: &str) -> String {
    let mut conn = sqlx::mysql::MySqlConnection::connect(server).await.expect("connect");
    conn.execute(format!("CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str())
        .await
        .expect("create database");
    database_url(server, DATABASE)
}

/// The operation `f` (given the handle and a counter unique across the three) on the single
/// server, on node 1, and on the three nodes in turn.
fn three<'a, F, Fut>(one: &'a Cluster, nodes: &'a [Cluster; 3], f: F) -> [Op<'a>; 3]
where
    F: Fn(&'a Cluster, u64) -> Fut + Copy + 'a,
    Fut: Future<Output = ezdb_core::Result<()>> + 'a,
{
    let counter = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let targets: [Vec<&'a Cluster>; 3] = [vec![one], vec![&nodes[0]], nodes.iter().collect()];
    targets.map(|targets| {
        let counter = counter.clone();
        Box::new(move || {
            counter.set(counter.get() + 1);
            let n = counter.get();
            let c = targets[n as usize % targets.len()];
            Box::pin(async move { f(c, n).await.map_err(|e| e.to_string()) }) as Pin<Box<dyn Future<Output = _> + 'a>>
        }) as Op<'a>
    })
}

/// The three rates of one operation, measured in alternating 100 ms slices.
async fn measure(budget: Duration, operation: String, bytes: usize, mut ops: [Op<'_>; 3]) -> Row {
    const SLICE: Duration = Duration::from_millis(100);
    let mut tallies = [Tally::default(), Tally::default(), Tally::default()];
    while tallies[0].time < budget || tallies.iter().any(|t| t.count < 5) {
        for (tally, op) in tallies.iter_mut().zip(ops.iter_mut()) {
            tally.run(SLICE, op).await;
        }
    }
    eprintln!("bench: {operation} done");
    Row {
        operation,
        bytes,
        rates: [tallies[0].rate(), tallies[1].rate(), tallies[2].rate()],
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| operation | single server ops/s (reference) | Galera via node 1 ops/s | Galera spread over 3 nodes ops/s | node 1 / single | spread / single |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let mb = |ops: f64| {
            if r.bytes == 0 {
                String::new()
            } else {
                format!(" ({:.1} MB/s)", ops * r.bytes as f64 / 1e6)
            }
        };
        println!(
            "| {} | {:.0}{} | {:.0}{} | {:.0}{} | {:.2} | {:.2} |",
            r.operation,
            r.rates[0],
            mb(r.rates[0]),
            r.rates[1],
            mb(r.rates[1]),
            r.rates[2],
            mb(r.rates[2]),
            r.rates[1] / r.rates[0],
            r.rates[2] / r.rates[0]
        );
    }
}

const CALLERS: usize = 24;
const ROUNDS: u32 = 10;

struct Contention {
    generations: u32,
    mean: Duration,
    slowest: Duration,
}

/// `CALLERS` handles (a third on each of `urls`) call process_cache on one expired entry at
/// once, `ROUNDS` times; the generation takes 50 ms (a page that takes that long to build).
async fn contention(urls: &[String]) -> Contention {
    const NAME: &str = "var/bench/cache/content/bench/2-contended.cache";
    let mut callers = Vec::new();
    for i in 0..CALLERS {
        let config = ClusterConfig::new(urls[i % urls.len()].clone()).dedicated();
        callers.push(Cluster::connect(config).await.expect("connect"));
    }
    let policy = CachePolicy {
        store: StoreOptions::new("viewcache", "php"),
        ..Default::default()
    };
    let generations = Arc::new(AtomicU32::new(0));
    let (mut total, mut slowest) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let opts = StoreOptions::new("viewcache", "php");
        callers[0]
            .store(NAME, &[round as u8; 10_000], &opts)
            .await
            .expect("store");
        callers[1].delete(NAME).await.expect("delete");
        let waits = futures_util::future::join_all(callers.iter().map(|caller| {
            let (policy, generations) = (&policy, generations.clone());
            async move {
                let asked = Instant::now();
                caller
                    .process_cache(NAME, policy, || async move {
                        generations.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, std::io::Error>(vec![round as u8 + 1; 10_000])
                    })
                    .await
                    .expect("process_cache");
                asked.elapsed()
            }
        }))
        .await;
        for wait in waits {
            total += wait;
            slowest = slowest.max(wait);
        }
    }
    for caller in callers {
        caller.close().await;
    }
    Contention {
        generations: generations.load(Ordering::SeqCst),
        mean: total / (CALLERS as u32 * ROUNDS),
        slowest,
    }
}
