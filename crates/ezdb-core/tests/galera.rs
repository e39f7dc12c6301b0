// ezdb on a private 3-node MariaDB Galera cluster on loopback, started once by this test binary
// and shared by its scenarios (run in order in one test: the cluster costs ~12 s to start):
// read-your-writes through every node, same-file writers on two nodes, one generation across
// nodes, and failover when the node in use is SIGKILLed under a write load.

use ezdb_core::{CachePolicy, Cluster, ClusterConfig, Error, PurgeFilter, StoreOptions};
use ezdb_testdb::{database_url, GaleraCluster};
use sqlx::{Connection, Executor};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of `len` derived from `seed`, different for every seed.
fn content(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A version written by one writer: an 8-byte header (seed, length) then `content(seed)`, so a
/// reader can tell a whole version from a mix of two.
fn version(seed: u32, len: usize) -> Vec<u8> {
    let mut bytes = seed.to_le_bytes().to_vec();
    bytes.extend_from_slice(&(len as u32).to_le_bytes());
    bytes.extend(content(seed, len));
    bytes
}

fn is_whole_version(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return false;
    }
    let seed = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    bytes.len() == len + 8 && bytes[8..] == content(seed, len)[..]
}

struct Fixture {
    galera: GaleraCluster,
    database: String,
}

impl Fixture {
    fn url(&self, node: usize) -> String {
        database_url(&self.galera.url(node), &self.database)
    }

    fn multi_host_url(&self) -> String {
        database_url(&self.galera.multi_host_url(), &self.database)
    }

    /// A handle on `node`; a node that just rejoined may take a moment to accept clients on a
    /// loaded machine, so connecting is retried for up to 30 s.
    async fn node(&self, node: usize) -> Cluster {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Cluster::connect(ClusterConfig::new(self.url(node)).with_pool(4)).await {
                Ok(cluster) => return cluster,
                Err(e) if Instant::now() >= deadline => panic!("connect to Galera node {}: {e}", node + 1),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }
}

#[test]
fn ezdb_on_a_three_node_galera_cluster() {
    let started = Instant::now();
    let galera = GaleraCluster::start("galera", 3, &[])
        .unwrap_or_else(|e| panic!("\n\ncannot start a private 3-node Galera cluster: {e}\n"));
    eprintln!("galera: 3 nodes Synced in {:.1} s", started.elapsed().as_secs_f64());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut fixture = Fixture {
        galera,
        database: format!("ezdbt_galera_{}", std::process::id()),
    };
    runtime.block_on(async {
        let mut root = sqlx::mysql::MySqlConnection::connect(&fixture.galera.url(0))
            .await
            .unwrap();
        root.execute(
            format!(
                "CREATE DATABASE `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                fixture.database
            )
            .as_str(),
        )
        .await
        .unwrap();
        fixture.node(0).await.install_schema().await.unwrap();
        a_file_stored_through_one_node_is_found_at_once_through_the_others(&fixture).await;
        writers_on_two_nodes_racing_on_one_file_all_succeed(&fixture).await;
        callers_on_three_nodes_generate_an_expired_entry_once(&fixture).await;
    });
    runtime.block_on(the_node_in_use_killed_under_writes_loses_no_acknowledged_write(
        &mut fixture,
    ));
    a_write_through_a_lost_quorum_succeeds_once_it_is_back(&runtime, fixture);
}

/// With node 1 already dead, node 2 is killed too: node 3 alone is not a primary component and
/// refuses queries (1047 "WSREP has not yet prepared node"). A store issued then waits through
/// it (node-not-ready is retried) and succeeds once node 2 has rejoined (by IST from the gcache).
fn a_write_through_a_lost_quorum_succeeds_once_it_is_back(runtime: &tokio::runtime::Runtime, mut fixture: Fixture) {
    fixture.galera.kill(1);
    let alone = fixture.url(2);
    let refused = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Cluster::connect(ClusterConfig::new(&alone)).await {
                Err(e) if e.to_string().contains("wsrep_ready") => return e,
                _ if Instant::now() > deadline => panic!("node 3 alone still served queries after 30 s"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    eprintln!("galera: node 3 alone refuses: {refused}");
    let url = fixture.multi_host_url();
    let write = runtime.spawn(async move {
        let config = ClusterConfig {
            retry_budget: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(2),
            ..ClusterConfig::new(&url).dedicated()
        };
        let started = Instant::now();
        // The handle's first connect may itself be refused: try again like a caller would.
        let cluster = loop {
            match Cluster::connect(config.clone()).await {
                Ok(cluster) => break cluster,
                Err(e) if started.elapsed() > Duration::from_secs(90) => panic!("no connect within 90 s: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        cluster
            .store(
                "var/storage/quorum.txt",
                b"after the quorum came back",
                &StoreOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("store through the lost quorum: {e}"));
        started.elapsed()
    });
    let restart = Instant::now();
    fixture
        .galera
        .restart(1)
        .unwrap_or_else(|e| panic!("node 2 did not rejoin: {e}"));
    eprintln!("galera: node 2 rejoined in {:.1} s", restart.elapsed().as_secs_f64());
    let waited = runtime.block_on(write).unwrap();
    runtime.block_on(async {
        for node in [1, 2] {
            assert_eq!(
                fixture.node(node).await.fetch("var/storage/quorum.txt").await.unwrap(),
                b"after the quorum came back"
            );
        }
    });
    eprintln!(
        "galera: a store issued without quorum succeeded after {:.1} s",
        waited.as_secs_f64()
    );
}

async fn a_file_stored_through_one_node_is_found_at_once_through_the_others(fixture: &Fixture) {
    let nodes = [fixture.node(0).await, fixture.node(1).await, fixture.node(2).await];
    let mut seed = 0;
    for round in 0..60usize {
        seed += 1;
        let len = [10, 70_000, 300_000][round % 3];
        let bytes = content(seed, len);
        let name = format!("var/storage/images/ryw/{round}.jpg");
        let writer = round % 3;
        nodes[writer]
            .store(&name, &bytes, &StoreOptions::new("image", "image/jpeg"))
            .await
            .unwrap();
        for (reader, node) in nodes.iter().enumerate().filter(|(i, _)| *i != writer) {
            let read = node
                .fetch(&name)
                .await
                .unwrap_or_else(|e| panic!("round {round}: stored through node {writer}, read through {reader}: {e}"));
            assert!(read == bytes, "round {round}: node {reader} returned other bytes");
        }
    }
    // Files twice the cluster's 8 MiB wsrep_max_ws_size: stored, replaced, deleted and purged
    // (each one transaction, replicated in fragments), read whole from the other nodes.
    for seed in [999, 1000] {
        let big = content(seed, 16 << 20);
        nodes[0]
            .store("var/storage/big.bin", &big, &StoreOptions::default())
            .await
            .unwrap();
        for node in &nodes[1..] {
            assert!(
                node.fetch("var/storage/big.bin").await.unwrap() == big,
                "16 MiB file read back whole"
            );
        }
    }
    nodes[1].delete("var/storage/big.bin").await.unwrap();
    assert!(nodes[2]
        .purge("var/storage/big.bin", PurgeFilter::Expired)
        .await
        .unwrap());
    assert!(nodes[0].stat("var/storage/big.bin").await.unwrap().is_none());
    // The limit is real: the same amount in one unfragmented write-set is refused.
    let mut raw = sqlx::mysql::MySqlConnection::connect(&fixture.url(0)).await.unwrap();
    raw.execute("CREATE TABLE ws_probe (id INT PRIMARY KEY, b LONGBLOB)")
        .await
        .unwrap();
    raw.execute("SET SESSION wsrep_trx_fragment_size = 0").await.unwrap();
    raw.execute("BEGIN").await.unwrap();
    let mut refused = false;
    for id in 0..3 {
        let insert = sqlx::query("INSERT INTO ws_probe VALUES (?, ?)")
            .bind(id)
            .bind(content(id as u32, 5 << 20));
        refused |= insert.execute(&mut raw).await.is_err();
    }
    refused |= raw.execute("COMMIT").await.is_err();
    assert!(
        refused,
        "a 15 MiB write-set must exceed the cluster's 8 MiB wsrep_max_ws_size"
    );
    eprintln!("galera: read-your-writes on every node: 120 reads; 16 MiB files over an 8 MiB write-set limit stored twice, purged");
}

async fn writers_on_two_nodes_racing_on_one_file_all_succeed(fixture: &Fixture) {
    const RACE: Duration = Duration::from_secs(4);
    let (mut stores, mut reads) = (0u32, 0u32);
    // Several rounds, each on a new name: the first creation of a file is raced too.
    for round in 0..3u32 {
        let name = Arc::new(format!("var/site/cache/race/{round}.cache"));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for writer in 0..2u32 {
            let (node, name, stop) = (fixture.node(writer as usize).await, name.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut done = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let seed = round * 1_000_000 + writer * 100_000 + done;
                    let len = 20_000 + (seed as usize * 7919) % 180_000;
                    node.store(&name, &version(seed, len), &StoreOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("store {done} of writer {writer} on node {writer}: {e}"));
                    done += 1;
                }
                done
            }));
        }
        let reader = {
            let (node, name, stop) = (fixture.node(2).await, name.clone(), stop.clone());
            tokio::spawn(async move {
                let mut done = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    match node.fetch(&name).await {
                        Ok(bytes) => assert!(is_whole_version(&bytes), "read {done}: a mix of two versions"),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => panic!("read {done} on node 3: {e}"),
                    }
                    done += 1;
                }
                done
            })
        };
        tokio::time::sleep(RACE).await;
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            stores += writer.await.unwrap();
        }
        reads += reader.await.unwrap();
    }
    eprintln!("galera: same file on two nodes: {stores} stores, {reads} reads on a third node, 0 errors");
}

async fn callers_on_three_nodes_generate_an_expired_entry_once(fixture: &Fixture) {
    const NAME: &str = "var/site/cache/content/site/2-galera.cache";
    let nodes = [fixture.node(0).await, fixture.node(1).await, fixture.node(2).await];
    for round in 0..3u8 {
        nodes[0]
            .store(NAME, &[round; 1000], &StoreOptions::new("viewcache", "php"))
            .await
            .unwrap();
        nodes[1].delete(NAME).await.unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for caller in 0..12usize {
            let (node, calls) = (nodes[caller % 3].clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let policy = CachePolicy {
                    store: StoreOptions::new("viewcache", "php"),
                    ..Default::default()
                };
                node.process_cache(NAME, &policy, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(vec![round + 100; 2000])
                })
                .await
                .unwrap_or_else(|e| panic!("round {round}, caller {caller}: {e}"))
            }));
        }
        for task in tasks {
            let entry = task.await.unwrap();
            let valid = entry.content == vec![round; 1000] || entry.content == vec![round + 100; 2000];
            assert!(
                valid,
                "round {round}: a caller got {} bytes ({:?})",
                entry.content.len(),
                entry.source
            );
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "round {round}: one generation across 3 nodes"
        );
        for node in &nodes {
            assert_eq!(node.fetch(NAME).await.unwrap(), vec![round + 100; 2000]);
        }
    }
    eprintln!("galera: 3 rounds x 12 callers on 3 nodes: one generation each");
}

/// Writers through a URL naming all three nodes; the node in use is SIGKILLed mid-load.
async fn the_node_in_use_killed_under_writes_loses_no_acknowledged_write(fixture: &mut Fixture) {
    const WRITERS: u32 = 4;
    let url = fixture.multi_host_url();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let config = ClusterConfig {
            connect_timeout: Duration::from_secs(2),
            ..ClusterConfig::new(&url).with_pool(2)
        };
        let cluster = Cluster::connect(config).await.unwrap();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            // name -> Some(seed) acknowledged, None unknown outcome; and the completion times.
            let mut outcomes = BTreeMap::new();
            let mut acknowledged_at = Vec::new();
            let mut seed = writer * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                seed += 1;
                let name = format!("var/storage/failover/{seed}.bin");
                match cluster
                    .store(&name, &content(seed, 30_000), &StoreOptions::default())
                    .await
                {
                    Ok(_) => {
                        outcomes.insert(name, Some(seed));
                        acknowledged_at.push(Instant::now());
                    }
                    Err(Error::OutcomeUnknown { .. }) => {
                        outcomes.insert(name, None);
                    }
                    Err(e) => panic!("writer {writer}: store {seed} failed: {e}"),
                }
            }
            (outcomes, acknowledged_at)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    fixture.galera.kill(0);
    eprintln!("galera: node 1 (the first host of the URL) SIGKILLed under {WRITERS} writers");
    tokio::time::sleep(Duration::from_secs(12)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = BTreeMap::new();
    // Per writer: the longest time without an acknowledged write around the kill.
    let mut longest_gap = Duration::ZERO;
    let mut after_kill = 0;
    for task in tasks {
        let (writer_outcomes, times) = task.await.unwrap();
        outcomes.extend(writer_outcomes);
        let last_before = times
            .iter()
            .rev()
            .find(|t| **t <= killed_at)
            .copied()
            .unwrap_or(killed_at);
        let since: Vec<Instant> = times.iter().copied().filter(|t| *t >= last_before).collect();
        assert!(since.len() > 1, "a writer never wrote again within 12 s of the kill");
        after_kill += since.len() - 1;
        for pair in since.windows(2) {
            longest_gap = longest_gap.max(pair[1].duration_since(pair[0]));
        }
    }
    let survivors = [fixture.node(1).await, fixture.node(2).await];
    let (mut acknowledged, mut unknown) = (0, 0);
    for (name, outcome) in &outcomes {
        match outcome {
            Some(seed) => {
                acknowledged += 1;
                for node in &survivors {
                    let read = node
                        .fetch(name)
                        .await
                        .unwrap_or_else(|e| panic!("acknowledged {name} lost: {e}"));
                    assert!(read == content(*seed, 30_000), "acknowledged {name} has other bytes");
                }
            }
            None => unknown += 1,
        }
    }
    eprintln!(
        "galera: {acknowledged} acknowledged writes ({after_kill} after the kill) all on both survivors, \
         {unknown} unknown outcomes; longest pause of a writer across the kill: {:.2} s",
        longest_gap.as_secs_f64()
    );
    // A handle on the dead node alone fails, and a second try at once is refused without
    // connecting (no hot loop against a node that is down or starting).
    let dead = fixture.url(0);
    let first = Cluster::connect(ClusterConfig::new(&dead).dedicated())
        .await
        .err()
        .expect("node 1 is down");
    let second = Cluster::connect(ClusterConfig::new(&dead).dedicated())
        .await
        .err()
        .expect("node 1 is down");
    assert!(
        second.to_string().contains("next attempt in"),
        "first: {first}; second: {second}"
    );
}
