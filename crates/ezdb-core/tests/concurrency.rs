// Real parallelism against a real MariaDB: many connections and processes on one name, readers
// racing writers, a writer killed with SIGKILL in the middle of a store.

mod common;
use common::*;
use ezdb_core::{CachePolicy, CacheSource, Cluster, ClusterConfig, StoreOptions};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHILD_ROLE: &str = "EZDB_TEST_CHILD_ROLE";
const CHILD_URL: &str = "EZDB_TEST_CHILD_URL";
const NAME: &str = "var/site/cache/content/site/2-hot.cache";

async fn nodes(db: &TestDb, n: usize) -> Vec<Cluster> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(
            Cluster::connect(ClusterConfig::new(&db.url).with_pool(2))
                .await
                .unwrap(),
        );
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_callers_on_an_expired_entry_generate_once() {
    let (db, cluster) = cluster().await;
    let nodes = Arc::new(nodes(&db, 32).await);
    for round in 0..5u8 {
        cluster
            .store(NAME, &[round; 1000], &StoreOptions::new("viewcache", "php"))
            .await
            .unwrap();
        cluster.delete(NAME).await.unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for node in nodes.iter().map(Clone::clone) {
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                let policy = CachePolicy {
                    store: StoreOptions::new("viewcache", "php"),
                    ..Default::default()
                };
                node.process_cache(NAME, &policy, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>(vec![round + 100; 2000])
                })
                .await
                .unwrap()
            }));
        }
        for task in tasks {
            let entry = task.await.unwrap();
            let valid = entry.content == vec![round; 1000] || entry.content == vec![round + 100; 2000];
            assert!(
                valid,
                "round {round}: a caller got {} bytes from {:?}",
                entry.content.len(),
                entry.source
            );
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "round {round}: generate must run exactly once"
        );
        assert_eq!(cluster.fetch(NAME).await.unwrap(), vec![round + 100; 2000]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_racing_on_a_new_entry_generate_once() {
    let (db, cluster) = cluster().await;
    exec(&db, "CREATE TABLE generate_calls (pid INT NOT NULL)").await;
    let children: Vec<_> = (0..8).map(|_| spawn_child("process_cache", &db.url)).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM generate_calls").await, 1);
    assert_eq!(cluster.fetch("proc/entry").await.unwrap(), b"made by one process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_racing_writers_always_see_one_whole_version() {
    let (db, cluster) = cluster().await;
    let versions: Arc<Vec<Vec<u8>>> = Arc::new((0..3).map(|seed| bytes(5 << 20, seed)).collect());
    cluster
        .store("race", &versions[0], &StoreOptions::default())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let nodes = nodes(&db, 6).await;
    let mut writers = Vec::new();
    for (i, node) in nodes[..2].iter().cloned().enumerate() {
        let versions = versions.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..6 {
                node.store("race", &versions[(i + n) % 3], &StoreOptions::default())
                    .await
                    .unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for node in nodes[2..].iter().map(Clone::clone) {
        let (versions, stop) = (versions.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) || reads == 0 {
                let got = node.fetch("race").await.unwrap();
                assert!(versions.contains(&got), "a read mixed versions ({} bytes)", got.len());
                reads += 1;
            }
            reads
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_publishers_of_distinct_new_names_all_succeed() {
    let (db, _cluster) = cluster().await;
    let nodes = nodes(&db, 10).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let node = nodes[i % 10].clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("var/site/cache/content/site/{i}-new.cache");
            let policy = CachePolicy {
                store: StoreOptions::new("viewcache", "php"),
                ..Default::default()
            };
            let entry = node
                .process_cache(&name, &policy, || async move {
                    Ok::<_, std::io::Error>(vec![i as u8; 70_000])
                })
                .await
                .unwrap();
            assert_eq!(entry.source, CacheSource::Generated);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile WHERE name NOT LIKE '%.generating'").await,
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_store_leaves_the_old_version_and_no_orphans() {
    let (db, cluster) = cluster().await;
    let old = bytes(3 << 20, 77);
    cluster.store("killed", &old, &StoreOptions::default()).await.unwrap();
    let mut child = spawn_child("slow_writer", &db.url);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let announced = lines.by_ref().map_while(Result::ok).any(|line| line == "WRITING");
    assert!(announced, "the child should report it is mid-store");
    // The child's transaction has written chunks; it must not be visible.
    assert_eq!(
        cluster.fetch("killed").await.unwrap(),
        old,
        "uncommitted chunks are invisible"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.fetch("killed").await.unwrap(), old, "old version intact");
    let orphans = "SELECT COUNT(*) FROM ezdbfile_data d LEFT JOIN ezdbfile f ON f.name_hash = d.name_hash WHERE f.name_hash IS NULL";
    assert_eq!(count(&db, orphans).await, 0);
    assert_eq!(chunks(&db, "killed").await.len(), old.len().div_ceil(65_535));
}

fn spawn_child(role: &str, url: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD_ROLE, role)
        .env(CHILD_URL, url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Not a test on its own: the body of the child processes above (does nothing otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_entry() {
    let (Ok(role), Ok(url)) = (std::env::var(CHILD_ROLE), std::env::var(CHILD_URL)) else {
        return;
    };
    let cluster = Cluster::connect(ClusterConfig::new(&url)).await.unwrap();
    match role.as_str() {
        "process_cache" => {
            let policy = CachePolicy {
                store: StoreOptions::new("misc", "text/plain"),
                ..Default::default()
            };
            let url = &url;
            let entry = cluster
                .process_cache("proc/entry", &policy, || async move {
                    let mut conn = raw_connection(url).await;
                    sqlx::query("INSERT INTO generate_calls VALUES (?)")
                        .bind(std::process::id())
                        .execute(&mut conn)
                        .await?;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, sqlx::Error>(b"made by one process".to_vec())
                })
                .await
                .unwrap();
            assert_eq!(entry.content, b"made by one process");
        }
        "slow_writer" => {
            let reader = SlowReader::default();
            cluster
                .store_reader("killed", reader, &StoreOptions::default())
                .await
                .unwrap();
            unreachable!("the parent kills this process mid-store");
        }
        other => panic!("unknown child role {other}"),
    }
}

async fn raw_connection(url: &str) -> sqlx::mysql::MySqlConnection {
    use sqlx::Connection;
    sqlx::mysql::MySqlConnection::connect(url).await.unwrap()
}
