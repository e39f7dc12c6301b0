//! index_image reading through a read replica: a private primary with one asynchronous replica
//! on loopback, started by this test. An image stored on the primary is served 200, byte-exact,
//! while the replica lags (never 404), and a replica that is down is skipped. Also how the
//! settings are read (flags, lists, the config file).

mod common;

use common::*;
use ezdb_core::{Cluster, StoreOptions};
use ezdb_testdb::ReplicatedPair;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_stored_on_the_primary_are_served_while_the_replica_lags_or_is_down() {
    let mut pair = ReplicatedPair::start("index-image-replica")
        .unwrap_or_else(|e| panic!("\n\ncannot start a private primary with a replica: {e}\n"));
    let database = format!("ezdbt_ii_replica_{}", std::process::id());
    let (primary_url, replica_url) = pair.create_database(&database).unwrap();
    let primary = Cluster::connect_url(&primary_url).await.unwrap();
    primary.install_schema().await.unwrap();
    pair.wait_for_table(&database, "ezdbfile").unwrap();

    // No memory tier: every request reads the database, so what is served says where it read.
    let server = start(
        &primary_url,
        &[
            &format!("--read-replica={replica_url}"),
            "--max-replica-lag=60",
            "--cache-bytes=0",
        ],
    );

    // A file only the replica has (written there directly) proves the gateway reads from it.
    let on_replica = Cluster::connect_url(&replica_url).await.unwrap();
    let only = "var/storage/images/only/on/replica.png";
    on_replica
        .store(only, b"replica", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let reply = get(&server, &format!("/{only}"));
    assert_eq!(reply.status, 200, "the gateway does not read from the replica");
    assert_eq!(reply.body, b"replica");

    // The replica applies everything 3 s late: each image is requested right after its store,
    // before the replica has it, and must come from the primary, whole.
    pair.set_delay(3).unwrap();
    let mut images = Vec::new();
    for i in 0..12usize {
        let name = format!("var/storage/images/lag/{i}/image.png");
        let data = bytes(1000 + i * 40_000);
        primary
            .store(&name, &data, &StoreOptions::new("image", "image/png"))
            .await
            .unwrap();
        let reply = get(&server, &format!("/{name}"));
        assert_eq!(reply.status, 200, "{name} right after its store on the primary");
        assert!(reply.body == data, "{name}: the bytes served differ from those stored");
        images.push((name, data));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let reply = get(&server, &format!("/{only}"));
    assert_eq!(reply.status, 200, "the lagging replica (bound 60 s) is still read from");

    // The replica dies: the gateway skips it and serves every image from the primary.
    pair.replica.kill();
    for (name, data) in &images {
        let reply = get(&server, &format!("/{name}"));
        assert_eq!(reply.status, 200, "{name} with the replica down");
        assert!(reply.body == *data, "{name}: bytes with the replica down");
    }
    let reply = get(&server, &format!("/{only}"));
    assert_eq!(
        reply.status, 404,
        "with the replica down the primary answers, and it lacks {only}"
    );
    drop(server);
    primary.close().await;
}

#[test]
fn read_replicas_come_from_repeated_flags_lists_and_config_file_lines() {
    let config = config(
        "mysql://u@primary/db",
        &[
            "--read-replica=mysql://u@r1/db",
            "--read-replica=mysql://u@r2/db,mysql://u@r3/db",
        ],
    );
    assert_eq!(
        config.read_replicas,
        ["mysql://u@r1/db", "mysql://u@r2/db", "mysql://u@r3/db"]
    );
    assert_eq!(config.max_replica_lag, ezdb_core::DEFAULT_MAX_REPLICA_LAG.as_secs());
    let cluster = config.with_read_replicas(ezdb_core::ClusterConfig::new("mysql://u@primary/db"));
    assert_eq!(cluster.read_replicas.len(), 3);
    assert_eq!(cluster.max_replica_lag, ezdb_core::DEFAULT_MAX_REPLICA_LAG);

    let dir = temp_dir("replica-config");
    let file = dir.join("index_image.conf");
    std::fs::write(
        &file,
        "INDEX_IMAGE_READ_REPLICAS = mysql://u@r1/db\n\
         INDEX_IMAGE_READ_REPLICAS = mysql://u@r2/db\n\
         INDEX_IMAGE_MAX_REPLICA_LAG = 2\n",
    )
    .unwrap();
    let from_file = common::config("mysql://u@primary/db", &[&format!("--config={}", file.display())]);
    assert_eq!(from_file.read_replicas, ["mysql://u@r1/db", "mysql://u@r2/db"]);
    assert_eq!(from_file.max_replica_lag, 2);
    let cluster = from_file.with_read_replicas(ezdb_core::ClusterConfig::new("mysql://u@primary/db"));
    assert_eq!(cluster.max_replica_lag, Duration::from_secs(2));

    // A flag on the command line replaces the file's list.
    let overridden = common::config(
        "mysql://u@primary/db",
        &[
            &format!("--config={}", file.display()),
            "--read-replica=mysql://u@r9/db",
        ],
    );
    assert_eq!(overridden.read_replicas, ["mysql://u@r9/db"]);

    // The commented example of deploy/index_image.conf, uncommented, is valid.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/index_image.conf")).unwrap();
    let example: String = shipped
        .lines()
        .filter_map(|line| line.strip_prefix("# INDEX_IMAGE_"))
        .filter(|line| line.contains("REPLICA"))
        .map(|line| format!("INDEX_IMAGE_{line}\n"))
        .collect();
    assert_eq!(
        example.lines().count(),
        3,
        "the example lines of deploy/index_image.conf:\n{example}"
    );
    std::fs::write(&file, example).unwrap();
    let example = common::config("mysql://u@primary/db", &[&format!("--config={}", file.display())]);
    assert_eq!(example.read_replicas.len(), 2);
    assert_eq!(example.max_replica_lag, 5);
    std::fs::remove_dir_all(&dir).unwrap();

    let help = index_image::Config::parse_from(["index_image", "--help"])
        .unwrap_err()
        .to_string();
    for text in [
        "--read-replica <URL>",
        "INDEX_IMAGE_READ_REPLICAS",
        "--max-replica-lag <SECONDS>",
    ] {
        assert!(help.contains(text), "--help does not mention {text}:\n{help}");
    }
}
