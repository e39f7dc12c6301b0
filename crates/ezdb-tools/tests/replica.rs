//! `ezdb export` through a read replica (--read-replica, EZDB_READ_REPLICAS), on a private primary
//! with one asynchronous replica on loopback started by this test: files are read from the
//! replica, what a lagging replica lacks comes from the primary, a replica that is down is skipped.

mod common;

use common::ok;
use ezdb_core::{Cluster, StoreOptions};
use ezdb_testdb::ReplicatedPair;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn export(primary_url: &str, dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let _ = std::fs::remove_dir_all(dir);
    Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .env("EZDB_URL", primary_url)
        .env_remove("EZDB_READ_REPLICAS")
        .env_remove("EZDB_MAX_REPLICA_LAG")
        .envs(env.iter().copied())
        .arg("export")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn exported(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name} was not exported: {e}"))
}

#[tokio::test]
async fn export_reads_through_the_replica_and_never_misses_what_the_primary_has() {
    let mut pair = ReplicatedPair::start("tools-replica")
        .unwrap_or_else(|e| panic!("\n\ncannot start a private primary with a replica: {e}\n"));
    let database = format!("ezdbt_tools_replica_{}", std::process::id());
    let (primary_url, replica_url) = pair.create_database(&database).unwrap();
    let primary = Cluster::connect_url(&primary_url).await.unwrap();
    primary.install_schema().await.unwrap();
    let name = "var/storage/images/a/logo.png";
    primary
        .store(name, b"primary version", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    // Once the replica has the file, it gets a version of its own (written there directly):
    // which version is exported says where export read.
    let deadline = Instant::now() + Duration::from_secs(30);
    let on_replica = loop {
        if let Ok(cluster) = Cluster::connect_url(&replica_url).await {
            if cluster.exists(name).await.unwrap_or(false) {
                break cluster;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the file did not reach the replica within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    on_replica
        .store(name, b"replica version", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    on_replica.close().await;

    let dir = std::env::temp_dir().join(format!("ezdb-tools-replica-{}", std::process::id()));
    ok(&export(&primary_url, &dir, &[], &[]));
    assert_eq!(
        exported(&dir, name),
        b"primary version",
        "without replicas export reads the primary"
    );
    let flag = format!("--read-replica={replica_url}");
    ok(&export(&primary_url, &dir, &[&flag, "--max-replica-lag=60"], &[]));
    assert_eq!(
        exported(&dir, name),
        b"replica version",
        "--read-replica: export reads the replica"
    );

    // The replica applies everything 3 s late: a file just stored is exported from the primary.
    pair.set_delay(3).unwrap();
    let fresh = "var/storage/images/b/fresh.png";
    primary
        .store(fresh, &[7u8; 200_000], &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let lagging = [
        ("EZDB_READ_REPLICAS", replica_url.as_str()),
        ("EZDB_MAX_REPLICA_LAG", "60"),
    ];
    ok(&export(&primary_url, &dir, &[], &lagging));
    assert_eq!(
        exported(&dir, name),
        b"replica version",
        "EZDB_READ_REPLICAS: export reads the replica"
    );
    assert!(
        exported(&dir, fresh) == [7u8; 200_000],
        "what the lagging replica lacks comes from the primary"
    );

    // The replica is down: export reads the primary.
    pair.replica.kill();
    ok(&export(&primary_url, &dir, &[&flag], &[]));
    assert_eq!(
        exported(&dir, name),
        b"primary version",
        "a replica that is down is skipped"
    );
    assert!(exported(&dir, fresh) == [7u8; 200_000]);
    std::fs::remove_dir_all(&dir).unwrap();
    primary.close().await;
}
