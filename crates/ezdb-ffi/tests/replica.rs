// Read replicas through the C ABI: `ezdb_options.read_replicas` (NUL-separated URLs) and
// `max_replica_lag_secs`, on a private primary with one asynchronous replica on loopback started
// by this test. Reads use the replica, what it lacks comes from the primary, a replica that is
// down is skipped, and a replica URL that is not mysql:// is refused at ezdb_open.

mod common;

use common::*;
use ezdb::*;
use ezdb_testdb::{database_url, ReplicatedPair};
use sqlx::{Connection, Executor};
use std::time::{Duration, Instant};

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The options with `replicas` joined by NUL bytes (kept alive by the caller) and a lag bound.
fn options(replicas: &str, max_lag_secs: u32) -> ezdb_options {
    let mut o = ezdb_options::default();
    unsafe { ezdb_options_init(&mut o) };
    (o.read_replicas, o.read_replicas_len) = ptr_len(replicas.as_bytes());
    o.max_replica_lag_secs = max_lag_secs;
    o
}

#[test]
fn reads_use_the_replica_and_fall_back_to_the_primary() {
    let mut pair = ReplicatedPair::start("ffi-replica")
        .unwrap_or_else(|e| panic!("\n\ncannot start a private primary with a replica: {e}\n"));
    let database = format!("ezdbt_ffi_replica_{}", std::process::id());
    let primary_url = database_url(&pair.primary.url(), &database);
    let replica_url = database_url(&pair.replica.url(), &database);
    block_on(async {
        let mut root = sqlx::mysql::MySqlConnection::connect(&pair.primary.url())
            .await
            .unwrap();
        root.execute(format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str())
            .await
            .unwrap();
    });
    let primary = open(&primary_url);
    assert_eq!(
        unsafe { ezdb_install_schema(primary) },
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    let on_replica = open(&replica_url);
    let deadline = Instant::now() + Duration::from_secs(30);
    // The schema has reached the replica once a lookup there answers "not found".
    while !matches!(stat(on_replica, "none"), Err(ezdb_status::EZDB_NOT_FOUND)) {
        assert!(
            Instant::now() < deadline,
            "the schema did not reach the replica within 30 s"
        );
        unsafe { ezdb_disconnect(on_replica) };
        std::thread::sleep(Duration::from_millis(200));
    }
    // A file only the replica has (written there directly) proves reads go to it.
    assert_eq!(
        store(on_replica, "only/on/replica", b"replica", "image"),
        ezdb_status::EZDB_OK,
        "{}",
        last_error()
    );
    close(on_replica);

    // Two URLs, one a closed port: the replica that is down is skipped.
    let replicas = format!("mysql://root@127.0.0.1:9/{database}\0{replica_url}");
    let reader = open_with(&primary_url, &options(&replicas, 60)).unwrap_or_else(|(_, e)| panic!("{e}"));
    for _ in 0..4 {
        assert_eq!(
            fetch(reader, b"only/on/replica", ezdb_fetch_flags::EZDB_FETCH_LIVE).as_deref(),
            Ok(&b"replica"[..]),
            "{}",
            last_error()
        );
    }

    // The replica applies everything 3 s late: what it lacks comes from the primary.
    pair.set_delay(3).unwrap();
    for i in 0..8usize {
        let name = format!("var/storage/images/lag/{i}.png");
        let data: Vec<u8> = (0..1000 + i * 30_000).map(|n| (n * 7 % 251) as u8).collect();
        assert_eq!(
            store(primary, &name, &data, "image"),
            ezdb_status::EZDB_OK,
            "{}",
            last_error()
        );
        assert!(exists(reader, &name), "{name}: exists said no");
        assert_eq!(
            stat(reader, &name).map(|info| info.size).ok(),
            Some(data.len() as u64),
            "{name}: stat"
        );
        assert!(
            fetch(reader, name.as_bytes(), ezdb_fetch_flags::EZDB_FETCH_LIVE).as_deref() == Ok(&data[..]),
            "{name}: fetch through the lagging replica: {}",
            last_error()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The replica dies: reads carry on from the primary (which lacks the replica-only file).
    pair.replica.kill();
    assert!(exists(reader, "var/storage/images/lag/7.png"));
    assert_eq!(
        fetch(reader, b"only/on/replica", ezdb_fetch_flags::EZDB_FETCH_LIVE),
        Err(ezdb_status::EZDB_NOT_FOUND)
    );
    close(reader);
    close(primary);
}

#[test]
fn a_replica_that_is_not_a_mysql_url_is_refused_at_open() {
    let url = ezdb_testdb::server_url();
    let replicas = "mysql://root@127.0.0.1/db\0replica.example:3306";
    let (status, message) = open_with(&url, &options(replicas, 0)).unwrap_err();
    assert_eq!(status, ezdb_status::EZDB_CONFIG);
    assert!(message.contains("read replica \"replica.example:3306\""), "{message}");
    let bad = b"mysql://\xff";
    let mut o = options("", 0);
    (o.read_replicas, o.read_replicas_len) = (bad.as_ptr().cast(), bad.len());
    let (status, message) = open_with(&url, &o).unwrap_err();
    assert_eq!(status, ezdb_status::EZDB_INVALID_ARGUMENT);
    assert!(message.contains("options.read_replicas"), "{message}");
}
