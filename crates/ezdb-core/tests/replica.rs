// Reads through an asynchronous read replica: a private primary and replica on loopback,
// started by this test. Reads use the replica, never answer "not found" for what the primary
// has (even when the replica lags), and skip a replica that lags too far or is down.

use ezdb_core::{Cluster, ClusterConfig, StoreOptions, Visibility};
use ezdb_testdb::ReplicatedPair;
use std::time::Duration;

async fn streamed(cluster: &Cluster, name: &str) -> Vec<u8> {
    let mut stream = cluster
        .open_stream(name, Visibility::Live, None)
        .await
        .unwrap_or_else(|e| panic!("stream of {name}: {e}"));
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

#[test]
fn reads_use_the_replica_and_never_miss_what_the_primary_has() {
    let pair = ReplicatedPair::start("replica")
        .unwrap_or_else(|e| panic!("\n\ncannot start a private primary with a replica: {e}\n"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = format!("ezdbt_replica_{}", std::process::id());
    let (primary_url, replica_url) = pair.create_database(&database).unwrap();
    let reader_config = |max_lag: u64| ClusterConfig {
        max_replica_lag: Duration::from_secs(max_lag),
        ..ClusterConfig::new(&primary_url).with_read_replicas([replica_url.clone()])
    };
    let mut pair = pair;
    runtime.block_on(async {
        let primary = Cluster::connect_url(&primary_url).await.unwrap();
        primary.install_schema().await.unwrap();
        pair.wait_for_table(&database, "ezdbfile").unwrap();

        // A row only the replica has (written there directly) proves reads go to it.
        let on_replica = Cluster::connect_url(&replica_url).await.unwrap();
        on_replica
            .store("only/on/replica", b"replica", &StoreOptions::default())
            .await
            .unwrap();
        let reader = Cluster::connect(reader_config(60)).await.unwrap();
        assert_eq!(reader.fetch("only/on/replica").await.unwrap(), b"replica");
        assert_eq!(streamed(&reader, "only/on/replica").await, b"replica");

        // The replica applies everything 3 s late: what it lacks comes from the primary.
        pair.set_delay(3).unwrap();
        for i in 0..20u32 {
            let name = format!("var/storage/images/lag/{i}.png");
            let bytes = vec![i as u8; 1000 + i as usize * 5000];
            primary
                .store(&name, &bytes, &StoreOptions::new("image", "image/png"))
                .await
                .unwrap();
            assert!(
                reader.stat(&name).await.unwrap().is_some(),
                "{name}: stat found nothing"
            );
            assert!(reader.exists(&name).await.unwrap(), "{name}: exists said no");
            assert!(reader.fetch(&name).await.unwrap() == bytes, "{name}: fetch");
            assert!(streamed(&reader, &name).await == bytes, "{name}: stream");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // Writes kept coming for 5 s with a 3 s delay: the replica is about 3 s behind, beyond a
        // 1 s bound, so a reader with that bound skips it and reads the primary only.
        let strict = Cluster::connect(reader_config(1)).await.unwrap();
        assert!(
            strict.fetch("only/on/replica").await.unwrap_err().is_not_found(),
            "a replica 3 s behind must be skipped with a 1 s bound"
        );

        // The replica dies: reads carry on from the primary.
        pair.replica.kill();
        for i in 0..20u32 {
            let name = format!("var/storage/images/lag/{i}.png");
            assert!(reader.fetch(&name).await.is_ok(), "{name} after the replica died");
            assert!(streamed(&reader, &name).await.len() == 1000 + i as usize * 5000);
        }
    });
}
