// ezdb on a private 3-node MariaDB Galera cluster on loopback, started once by this test binary
// and shared by its scenarios (run in order in one test: the cluster costs ~12 s to start):
// read-your-writes through every node, same-file writers on two nodes, one generation across
// 3 nodes x 16 callers, the core scenarios of spec section 9 through a random node per
// operation, a 200,000-row purge beside readers on the other nodes, failover when the node in
// use is SIGKILLed under a write load (through a multi-host URL, then through the shipped
// HAProxy example), and a write through a lost quorum.

use ezdb_core::{
    Batches, CachePolicy, CacheSource, Cluster, ClusterConfig, Error, Freshness, Generation, PurgeFilter, ScopeFilter,
    Selector, StoreOptions, Visibility,
};
use ezdb_testdb::{database_url, GaleraCluster, Haproxy};
use sqlx::{Connection, Executor, Row};
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
    // A buffer pool and redo log that hold the 200,000-row purge in memory (the defaults of
    // the private servers are sized for small tests).
    let galera = GaleraCluster::start(
        "galera",
        3,
        &["--innodb-buffer-pool-size=256M", "--innodb-log-file-size=128M"],
    )
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
        // The login of the shipped HAProxy health check (deploy/galera-check.sh): no privilege.
        root.execute(format!("CREATE USER '{CHECK_USER}'@'127.0.0.1' IDENTIFIED BY '{CHECK_PASSWORD}'").as_str())
            .await
            .unwrap();
        fixture.node(0).await.install_schema().await.unwrap();
        a_file_stored_through_one_node_is_found_at_once_through_the_others(&fixture).await;
        writers_on_two_nodes_racing_on_one_file_all_succeed(&fixture).await;
        callers_on_three_nodes_generate_an_expired_entry_once(&fixture).await;
        the_core_scenarios_hold_through_a_random_node_per_operation(&fixture).await;
        purging_200000_rows_never_holds_readers_on_the_other_nodes_for_a_second(&fixture).await;
    });
    runtime.block_on(the_node_in_use_killed_under_writes_loses_no_acknowledged_write(
        &mut fixture,
    ));
    a_write_through_a_lost_quorum_succeeds_once_it_is_back(&runtime, &mut fixture);
    clients_behind_haproxy_move_off_a_killed_node(&runtime, &mut fixture);
}

const CHECK_USER: &str = "haproxy_check";
const CHECK_PASSWORD: &str = "check-secret";

/// With node 1 already dead, node 2 is killed too: node 3 alone is not a primary component and
/// refuses queries (1047 "WSREP has not yet prepared node"). A store issued then waits through
/// it (node-not-ready is retried) and succeeds once node 2 has rejoined (by IST from the gcache).
fn a_write_through_a_lost_quorum_succeeds_once_it_is_back(runtime: &tokio::runtime::Runtime, fixture: &mut Fixture) {
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

/// Stores new 30 KB files under `prefix` (seeds after `first_seed`) until `stop`: each name maps
/// to Some(seed) when acknowledged, None when the outcome is unknown; plus the times of the
/// acknowledgements. Any other error fails the test, named by `who`.
async fn store_until_stopped(
    cluster: &Cluster,
    prefix: &str,
    first_seed: u32,
    stop: &AtomicBool,
    who: &str,
) -> (BTreeMap<String, Option<u32>>, Vec<Instant>) {
    let mut outcomes = BTreeMap::new();
    let mut acknowledged_at = Vec::new();
    let mut seed = first_seed;
    while !stop.load(Ordering::Relaxed) {
        seed += 1;
        let name = format!("{prefix}/{seed}.bin");
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
            Err(e) => panic!("{who}: store {seed} failed: {e}"),
        }
    }
    (outcomes, acknowledged_at)
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
    // A delete and a purge sent to another node right after the store was acknowledged act on
    // it (autocommit writes wait for the node to catch up, as reads do): none is a silent no-op.
    for round in 0..45usize {
        let name = format!("var/storage/images/ryw/deleted-{round}.jpg");
        let [writer, deleter, purger] = [round % 3, (round + 1) % 3, (round + 2) % 3];
        nodes[writer]
            .store(
                &name,
                &content(round as u32, 100),
                &StoreOptions::new("image", "image/jpeg"),
            )
            .await
            .unwrap();
        assert!(
            nodes[deleter].delete(&name).await.unwrap(),
            "round {round}: stored through node {writer}, the delete through node {deleter} found no row"
        );
        assert!(
            nodes[purger].purge(&name, PurgeFilter::Expired).await.unwrap(),
            "round {round}: deleted through node {deleter}, the purge through node {purger} found no row"
        );
        assert!(nodes[writer].stat(&name).await.unwrap().is_none());
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
    const PER_NODE: usize = 16;
    // Each caller has its own handle (its own connections), as one PHP process of a web server.
    let mut callers = Vec::new();
    for caller in 0..3 * PER_NODE {
        let config = ClusterConfig::new(fixture.url(caller % 3)).dedicated();
        callers.push(Cluster::connect(config).await.unwrap());
    }
    for round in 0..3u8 {
        callers[0]
            .store(NAME, &[round; 1000], &StoreOptions::new("viewcache", "php"))
            .await
            .unwrap();
        callers[1].delete(NAME).await.unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for (caller, node) in callers.iter().enumerate() {
            let (node, calls) = (node.clone(), calls.clone());
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
                .unwrap_or_else(|e| panic!("round {round}, caller {caller} on node {}: {e}", caller % 3 + 1))
            }));
        }
        let mut sources = BTreeMap::new();
        for task in tasks {
            let entry = task.await.unwrap();
            let valid = entry.content == vec![round; 1000] || entry.content == vec![round + 100; 2000];
            assert!(
                valid,
                "round {round}: a caller got {} bytes ({:?})",
                entry.content.len(),
                entry.source
            );
            *sources.entry(format!("{:?}", entry.source)).or_insert(0) += 1;
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "round {round}: one generation across 3 nodes x {PER_NODE} callers ({sources:?})"
        );
        for node in &callers[..3] {
            assert_eq!(node.fetch(NAME).await.unwrap(), vec![round + 100; 2000]);
        }
        eprintln!("galera: round {round}: 3 nodes x {PER_NODE} callers, one generation; served {sources:?}");
    }
    for caller in callers {
        caller.close().await;
    }
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
            store_until_stopped(
                &cluster,
                "var/storage/failover",
                writer * 1_000_000,
                &stop,
                &format!("writer {writer}"),
            )
            .await
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

/// The three nodes, one picked at random for each operation (a web server's request may land on
/// any node); counts how many operations each node served.
struct AnyNode {
    nodes: [Cluster; 3],
    state: std::cell::Cell<u64>,
    used: std::cell::Cell<[u32; 3]>,
}

impl AnyNode {
    fn any(&self) -> &Cluster {
        let mut x = self.state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.set(x);
        let i = (x % 3) as usize;
        let mut used = self.used.get();
        used[i] += 1;
        self.used.set(used);
        &self.nodes[i]
    }
}

/// Spec section 9, the core scenarios (numbers in brackets), each operation through a node
/// picked at random: what one node wrote, deleted, locked or expired, the next one sees at once.
async fn the_core_scenarios_hold_through_a_random_node_per_operation(fixture: &Fixture) {
    const C: usize = 65_535;
    let seed = u64::from(std::process::id()) << 20 | 0x9e37;
    eprintln!("galera: scenarios with node seed {seed:#x}");
    let n = AnyNode {
        nodes: [fixture.node(0).await, fixture.node(1).await, fixture.node(2).await],
        state: std::cell::Cell::new(seed),
        used: std::cell::Cell::new([0; 3]),
    };
    let file = |scope: &str| StoreOptions::new(scope, "application/octet-stream");
    let dir = "var/site/storage/scenarios";

    // [6] quotes, %, _, spaces and UTF-8 in a name: stored, fetched, deleted.
    let odd = format!("{dir}/it's \"quoted\" 100% _under_ Crème 日本 😀.txt");
    n.any().store(&odd, b"odd", &file("binaryfile")).await.unwrap();
    assert_eq!(n.any().fetch(&odd).await.unwrap(), b"odd");
    assert!(n.any().delete(&odd).await.unwrap());
    assert!(!n.any().exists(&odd).await.unwrap());
    // [17] [19] [20] [21] [22] multi-chunk files, overwrites by shorter ones, empty, 20 MiB.
    let name = format!("{dir}/chunks.bin");
    for len in [3 * C + 17, 2 * C + 5, C, 0, 20 << 20, 2 * C] {
        let bytes = content(len as u32, len);
        n.any().store(&name, &bytes, &file("binaryfile")).await.unwrap();
        assert!(
            n.any().fetch(&name).await.unwrap() == bytes,
            "{len} bytes read back whole"
        );
        assert_eq!(n.any().stat(&name).await.unwrap().unwrap().size, len as u64);
    }
    // [33] [34] [40] [41] [43] exists, delete (the row stays, expired, with its bytes), a
    // missing path, re-store.
    let soft = format!("{dir}/soft.txt");
    assert!(!n.any().exists(&soft).await.unwrap());
    n.any().store(&soft, b"v1", &file("binaryfile")).await.unwrap();
    assert!(n.any().exists(&soft).await.unwrap());
    assert!(n.any().delete(&soft).await.unwrap());
    assert!(!n.any().exists(&soft).await.unwrap());
    let stale = n
        .any()
        .fetch_with_meta(&soft, Visibility::IncludeExpired)
        .await
        .unwrap();
    assert!(stale.meta.deleted && stale.meta.mtime < 0 && stale.bytes == b"v1");
    assert!(!n.any().delete(&format!("{dir}/never-stored")).await.unwrap());
    assert!(n.any().stat(&format!("{dir}/never-stored")).await.unwrap().is_none());
    n.any().store(&soft, b"v2", &file("binaryfile")).await.unwrap();
    let live = n.any().stat(&soft).await.unwrap().unwrap();
    assert!(!live.deleted && live.mtime > 0);
    // [35] [36] prefix deletes: the whole directory; `file` but not `otherfile`; `_` literal.
    let pre = format!("{dir}/prefix");
    for i in 1..=10 {
        for stem in ["file", "otherfile"] {
            n.any()
                .store(&format!("{pre}/{stem}-{i}.txt"), b"x", &file("binaryfile"))
                .await
                .unwrap();
        }
    }
    n.any()
        .store(&format!("{pre}/aXb.txt"), b"x", &file("binaryfile"))
        .await
        .unwrap();
    assert_eq!(n.any().delete_prefix(&pre, "file").await.unwrap(), 10);
    assert_eq!(n.any().delete_prefix(&pre, "a_b").await.unwrap(), 0);
    assert!(n.any().exists(&format!("{pre}/otherfile-3.txt")).await.unwrap());
    assert!(!n.any().exists(&format!("{pre}/file-3.txt")).await.unwrap());
    assert_eq!(n.any().delete_prefix(&pre, "").await.unwrap(), 11);
    // [37] [38] dir lists by trunk: node 2's view caches, not node 21's.
    let views = "var/site/cache/content/scenarios";
    for (sub, node) in [("a", 2), ("a", 21), ("b", 2)] {
        for i in 0..3 {
            let name = format!("{views}/{sub}/{node}-{i:032x}.cache");
            n.any()
                .store(&name, b"view", &StoreOptions::new("viewcache", "php"))
                .await
                .unwrap();
        }
    }
    let dirs = ["scenarios/a", "scenarios/b"];
    assert_eq!(
        n.any()
            .delete_by_dir_list(&dirs, "var/site/cache/content", "2-")
            .await
            .unwrap(),
        6
    );
    assert!(n.any().exists(&format!("{views}/a/21-{:032x}.cache", 1)).await.unwrap());
    // [39] wildcards: `*.txt` takes a.txt, not a.php nor aXtxt.
    let wild = format!("{dir}/wild");
    for leaf in ["a.txt", "a.php", "aXtxt"] {
        n.any()
            .store(&format!("{wild}/{leaf}"), b"w", &file("binaryfile"))
            .await
            .unwrap();
    }
    assert_eq!(n.any().delete_wildcard(&format!("{wild}/*.txt")).await.unwrap(), 1);
    assert!(n.any().exists(&format!("{wild}/a.php")).await.unwrap());
    assert!(n.any().exists(&format!("{wild}/aXtxt")).await.unwrap());
    // [44] [45] [46] [48] [49] copy (onto a larger file), move (onto a deleted one), move to itself.
    let (src, dst, moved) = (
        format!("{dir}/src.bin"),
        format!("{dir}/dst.bin"),
        format!("{dir}/moved.bin"),
    );
    let src_bytes = content(44, C + 3);
    n.any().store(&src, &src_bytes, &file("mediafile")).await.unwrap();
    n.any()
        .store(&dst, &content(45, 3 * C), &file("binaryfile"))
        .await
        .unwrap();
    n.any().copy(&src, &dst).await.unwrap();
    assert!(n.any().fetch(&dst).await.unwrap() == src_bytes);
    let copied = n.any().stat(&dst).await.unwrap().unwrap();
    let original = n.any().stat(&src).await.unwrap().unwrap();
    assert_eq!(
        (copied.scope, copied.datatype, copied.size, copied.mtime),
        (original.scope, original.datatype, original.size, original.mtime)
    );
    assert!(n.any().copy(&format!("{dir}/no-such"), &dst).await.is_err());
    n.any().store(&moved, b"old", &file("binaryfile")).await.unwrap();
    n.any().delete(&moved).await.unwrap();
    n.any().rename(&dst, &moved).await.unwrap();
    assert!(!n.any().exists(&dst).await.unwrap());
    assert!(n.any().fetch(&moved).await.unwrap() == src_bytes);
    n.any().rename(&moved, &moved).await.unwrap();
    assert!(n.any().fetch(&moved).await.unwrap() == src_bytes);
    // [51] listing by scope.
    let media = n
        .any()
        .list(&ScopeFilter::Only(vec!["mediafile".into()]))
        .await
        .unwrap();
    assert!(
        media.contains(&src) && media.contains(&moved) && media.len() == 2,
        "{media:?}"
    );

    // [60] [61] [63] [72] process_cache: generated once, then a hit on any node; ttl 0 always
    // regenerates; an expiry after the entry's mtime regenerates, one before it serves.
    let view = "var/site/cache/content/scenarios/c/2-cached.cache";
    let policy = |freshness: Freshness| CachePolicy {
        freshness,
        store: StoreOptions::new("viewcache", "php"),
        generate_while_busy: false,
    };
    let gen = |bytes: &'static [u8]| move || async move { Ok::<_, std::io::Error>(bytes.to_vec()) };
    let first = n
        .any()
        .process_cache(view, &policy(Freshness::default()), gen(b"one"))
        .await
        .unwrap();
    assert_eq!(
        (first.source, first.content.as_slice()),
        (CacheSource::Generated, &b"one"[..])
    );
    let hit = n
        .any()
        .process_cache(view, &policy(Freshness::default()), gen(b"two"))
        .await
        .unwrap();
    assert_eq!((hit.source, hit.content.as_slice()), (CacheSource::Hit, &b"one"[..]));
    let always = n
        .any()
        .process_cache(view, &policy(Freshness::ttl(0)), gen(b"three"))
        .await
        .unwrap();
    assert_eq!(always.content, b"three");
    let mtime = n.any().stat(view).await.unwrap().unwrap().mtime;
    let served = n
        .any()
        .process_cache(view, &policy(Freshness::expiry(mtime)), gen(b"four"))
        .await
        .unwrap();
    assert_eq!(
        (served.source, served.content.as_slice()),
        (CacheSource::Hit, &b"three"[..])
    );
    let renewed = n
        .any()
        .process_cache(view, &policy(Freshness::expiry(mtime + 1)), gen(b"five"))
        .await;
    assert_eq!(renewed.unwrap().content, b"five");
    // [74] [77] [89] the `.generating` lock is cluster-wide: taken on one node, busy on another;
    // meanwhile an expired entry is served stale from any node; aborting a first generation
    // leaves no file.
    let fresh = "var/site/cache/content/scenarios/c/2-new.cache";
    let Generation::Acquired(lock) = n.any().start_generation(fresh, None).await.unwrap() else {
        panic!("no lock on a free entry");
    };
    match n.any().start_generation(fresh, None).await.unwrap() {
        Generation::Busy { remaining_secs } => assert!(remaining_secs > 0),
        Generation::Acquired(_) => panic!("a second node took a held lock"),
    }
    n.any().abort_generation(lock).await.unwrap();
    assert!(!n.any().exists(fresh).await.unwrap());
    n.any().delete(view).await.unwrap();
    let Generation::Acquired(lock) = n.any().start_generation(view, None).await.unwrap() else {
        panic!("no lock on an expired entry");
    };
    let stale = n
        .any()
        .process_cache(view, &policy(Freshness::default()), gen(b"six"))
        .await
        .unwrap();
    assert_eq!(
        (stale.source, stale.content.as_slice()),
        (CacheSource::Stale, &b"five"[..])
    );
    n.any().abort_generation(lock).await.unwrap();
    // [5.2] a global clear made through one node expires the entries on every node.
    let cleared = "var/site/cache/content/scenarios/d/2-clear.cache";
    let old = StoreOptions {
        mtime: Some(n.any().now() - 100),
        ..StoreOptions::new("viewcache", "php")
    };
    n.any().store(cleared, b"before", &old).await.unwrap();
    assert!(n.any().exists(cleared).await.unwrap());
    n.any()
        .set_global_expiry("content-view-cache", Some(n.any().now() - 50))
        .await
        .unwrap();
    for node in &n.nodes {
        assert!(!node.exists(cleared).await.unwrap(), "the clear holds on every node");
    }
    let after = n
        .any()
        .process_cache(cleared, &policy(Freshness::default()), gen(b"after"))
        .await
        .unwrap();
    assert_eq!(after.source, CacheSource::Generated);
    eprintln!(
        "galera: core scenarios of spec section 9 held with each operation on a random node ({:?} per node)",
        n.used.get()
    );
}

/// A 200,000-row purge through node 1 while readers on nodes 2 and 3 read a hot file: its
/// batches are write-sets small enough that no reader waits a second (the bound).
async fn purging_200000_rows_never_holds_readers_on_the_other_nodes_for_a_second(fixture: &Fixture) {
    const ROWS: u32 = 200_000;
    const LOAD_BATCH: u32 = 20_000;
    let started = Instant::now();
    let mut raw = sqlx::mysql::MySqlConnection::connect(&fixture.url(0)).await.unwrap();
    // Soft-deleted one-chunk rows, loaded by SQL in write-sets of 20,000 rows (~2 MB).
    for first in (1..=ROWS).step_by(LOAD_BATCH as usize) {
        let range = format!("seq_{first}_to_{}", first + LOAD_BATCH - 1);
        raw.execute(
            format!(
                "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
                 SELECT 'misc', CONCAT('bulk/', seq), CONCAT('bulk/', seq), MD5(CONCAT('bulk/', seq)),
                        'bulk', 3, -1000, 1 FROM {range}"
            )
            .as_str(),
        )
        .await
        .unwrap();
        raw.execute(
            format!("INSERT INTO ezdbfile_data SELECT MD5(CONCAT('bulk/', seq)), 0, 'abc' FROM {range}").as_str(),
        )
        .await
        .unwrap();
    }
    eprintln!(
        "galera: {ROWS} expired rows loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let purger = fixture.node(0).await;
    let hot = "var/storage/purge/hot.bin";
    purger
        .store(hot, &content(7, 100_000), &StoreOptions::default())
        .await
        .unwrap();
    // One reader per other node, a read every 10 ms (a busy page), from 2 s before the purge:
    // the slowest read then is the reference the slowest read during the purge is printed beside.
    let (stop, purge_started) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let mut readers = Vec::new();
    for node in [1, 2] {
        let (reader, stop, purge_started) = (fixture.node(node).await, stop.clone(), purge_started.clone());
        readers.push(tokio::spawn(async move {
            let (mut before, mut during, mut reads) = (Duration::ZERO, Duration::ZERO, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let purging = purge_started.load(Ordering::Relaxed);
                let asked = Instant::now();
                let bytes = reader
                    .fetch(hot)
                    .await
                    .unwrap_or_else(|e| panic!("read on node {}: {e}", node + 1));
                let waited = asked.elapsed();
                assert_eq!(bytes.len(), 100_000);
                if purging {
                    during = during.max(waited);
                    reads += 1;
                } else {
                    before = before.max(waited);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (node, before, during, reads)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    purge_started.store(true, Ordering::Relaxed);
    let purging = Instant::now();
    let batches = Batches {
        size: 1000,
        pause: Duration::ZERO,
        max_batches: None,
    };
    let removed = purger
        .purge_matching(&Selector::Prefix("bulk/".into()), PurgeFilter::Expired, batches, |_| {})
        .await
        .unwrap();
    let took = purging.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut worst, mut reference, mut reads) = (Duration::ZERO, Duration::ZERO, 0);
    for reader in readers {
        let (node, before, during, n) = reader.await.unwrap();
        assert!(
            n > 10,
            "a reader on node {} read only {n} times during the purge",
            node + 1
        );
        (worst, reference, reads) = (worst.max(during), reference.max(before), reads + n);
    }
    assert_eq!(removed, u64::from(ROWS));
    eprintln!(
        "galera: purge of {removed} rows through node 1 in {:.1} s, batches of 1000; {reads} reads on nodes 2 \
         and 3 meanwhile, the slowest {:.0} ms (before the purge: {:.0} ms)",
        took.as_secs_f64(),
        worst.as_secs_f64() * 1000.0,
        reference.as_secs_f64() * 1000.0
    );
    assert!(
        worst < Duration::from_secs(1),
        "a reader on another node waited {worst:?} during the purge"
    );
    let mut other = sqlx::mysql::MySqlConnection::connect(&fixture.url(2)).await.unwrap();
    other.execute("SET SESSION wsrep_sync_wait = 1").await.unwrap();
    for (what, sql) in [
        ("purged rows", "SELECT COUNT(*) FROM ezdbfile WHERE name LIKE 'bulk/%'"),
        (
            "chunks without a row",
            "SELECT COUNT(*) FROM ezdbfile_data d LEFT JOIN ezdbfile f USING (name_hash) WHERE f.name_hash IS NULL",
        ),
    ] {
        let left: i64 = sqlx::query(sql).fetch_one(&mut other).await.unwrap().get(0);
        assert_eq!(left, 0, "{what} left on node 3");
    }
}

/// The shipped HAProxy example (deploy/haproxy.cfg, deploy/galera-check.sh) in front of the
/// cluster, node 1 active: node 1 is SIGKILLed under a write load through the balancer. Every
/// acknowledged write is on the survivors, a write whose outcome is unknown is reported and is
/// either absent or whole, and the clients carry on through node 2 after N seconds (printed).
fn clients_behind_haproxy_move_off_a_killed_node(runtime: &tokio::runtime::Runtime, fixture: &mut Fixture) {
    const WRITERS: u32 = 4;
    // Node 1 has been down since the multi-host failover: back first, so that two nodes keep
    // the quorum when the active one dies.
    let restart = Instant::now();
    fixture
        .galera
        .restart(0)
        .unwrap_or_else(|e| panic!("node 1 did not rejoin: {e}"));
    for node in 0..3 {
        fixture
            .galera
            .wait_cluster_size(node, 3, Duration::from_secs(30))
            .unwrap();
    }
    eprintln!("galera: node 1 rejoined in {:.1} s", restart.elapsed().as_secs_f64());
    let mut haproxy = Haproxy::start(&fixture.galera, [0, 1, 2], CHECK_USER, CHECK_PASSWORD)
        .unwrap_or_else(|e| panic!("\n\ncannot run the shipped HAProxy example in front of the cluster: {e}\n"));
    let url = database_url(&haproxy.url(), &fixture.database);
    let node_in_use = |url: String| async move {
        let mut conn = sqlx::mysql::MySqlConnection::connect(&url).await.unwrap();
        let name: String = sqlx::query("SELECT @@wsrep_node_name")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        name
    };
    assert_eq!(
        runtime.block_on(node_in_use(url.clone())),
        "node1",
        "node1 is the active server"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (url, stop) = (url.clone(), stop.clone());
            runtime.spawn(async move {
                let config = ClusterConfig {
                    connect_timeout: Duration::from_secs(2),
                    ..ClusterConfig::new(&url).with_pool(2)
                };
                let cluster = Cluster::connect(config).await.unwrap();
                let label = format!("writer {writer} through haproxy");
                store_until_stopped(
                    &cluster,
                    "var/storage/balanced",
                    10_000_000 + writer * 1_000_000,
                    &stop,
                    &label,
                )
                .await
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = Instant::now();
    fixture.galera.kill(0);
    let states = haproxy
        .wait_for(Duration::from_secs(15), |states| {
            states
                .iter()
                .any(|(name, state)| name == "node1" && state.starts_with("DOWN"))
        })
        .unwrap();
    let marked_down = killed_at.elapsed();
    eprintln!(
        "galera: node 1 (haproxy's active server) SIGKILLed under {WRITERS} writers; marked down after {:.1} s: {states:?}",
        marked_down.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = BTreeMap::new();
    // N: per writer, the time from its last acknowledged write before the kill to its first
    // after it; the longest over the writers.
    let mut recovery = Duration::ZERO;
    for task in tasks {
        let (writer_outcomes, times) = runtime.block_on(task).unwrap();
        outcomes.extend(writer_outcomes);
        let before = times
            .iter()
            .rev()
            .find(|t| **t <= killed_at)
            .copied()
            .unwrap_or(killed_at);
        let after = times
            .iter()
            .find(|t| **t > killed_at)
            .copied()
            .unwrap_or_else(|| panic!("a writer never wrote again within 8 s of node 1 being marked down"));
        recovery = recovery.max(after.duration_since(before));
    }
    runtime.block_on(async {
        assert_eq!(node_in_use(url.clone()).await, "node2", "the first backup took over");
        let survivors = [fixture.node(1).await, fixture.node(2).await];
        let (mut acknowledged, mut unknown, mut unknown_present) = (0, 0, 0);
        for (name, outcome) in &outcomes {
            for (i, node) in survivors.iter().enumerate() {
                match (outcome, node.fetch(name).await) {
                    (Some(seed), Ok(bytes)) => {
                        assert!(bytes == content(*seed, 30_000), "acknowledged {name} has other bytes")
                    }
                    (Some(_), Err(e)) => panic!("acknowledged {name} lost on node {}: {e}", i + 2),
                    (None, Ok(bytes)) => {
                        let seed: u32 = name
                            .trim_start_matches("var/storage/balanced/")
                            .trim_end_matches(".bin")
                            .parse()
                            .unwrap();
                        assert!(bytes == content(seed, 30_000), "{name} (outcome unknown) is not whole");
                        unknown_present += usize::from(i == 0);
                    }
                    (None, Err(e)) if e.is_not_found() => {}
                    (None, Err(e)) => panic!("{name} (outcome unknown) unreadable on node {}: {e}", i + 2),
                }
            }
            match outcome {
                Some(_) => acknowledged += 1,
                None => unknown += 1,
            }
        }
        let mut raw = sqlx::mysql::MySqlConnection::connect(&fixture.url(2)).await.unwrap();
        let rows: i64 = sqlx::query("SELECT COUNT(*) FROM ezdbfile WHERE name LIKE 'var/storage/balanced/%'")
            .fetch_one(&mut raw)
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            rows as usize,
            acknowledged + unknown_present,
            "no file but the ones written"
        );
        eprintln!(
            "galera: through haproxy: {acknowledged} acknowledged writes all on both survivors, {unknown} unknown \
             outcomes ({unknown_present} applied, whole); clients recovered in N = {:.2} s (haproxy marked \
             node 1 down after {:.1} s)",
            recovery.as_secs_f64(),
            marked_down.as_secs_f64()
        );
    });
    // The check is Galera's own view, not a login: with node 2 killed too, node 3 still runs
    // and accepts logins but is outside the primary component, and goes down in HAProxy.
    fixture.galera.kill(1);
    let lost = Instant::now();
    let states = haproxy
        .wait_for(Duration::from_secs(40), |states| {
            states.iter().all(|(_, state)| state.starts_with("DOWN"))
        })
        .unwrap();
    assert!(
        fixture.galera.nodes[2].server.is_running(),
        "node 3 must still run: only its quorum is gone"
    );
    eprintln!(
        "galera: node 2 killed too: haproxy took node 3 (running, outside the quorum) out after {:.1} s: {states:?}",
        lost.elapsed().as_secs_f64()
    );
}
