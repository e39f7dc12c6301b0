// Connection reuse: handles opened with the same settings share one connection per process
// that outlives them, so a PHP request reopening the cluster pays no new handshake.

mod common;
use common::*;
use ezdb::*;
use sqlx::{Connection, Row};

fn sessions_on(database: &str) -> i64 {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::mysql::MySqlConnection::connect(&ezdb_testdb::server_url())
            .await
            .unwrap();
        sqlx::query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?")
            .bind(database)
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0)
    })
}

#[test]
fn reopening_with_the_same_settings_reuses_the_connection() {
    let f = Fixture::new();
    let before = sessions_on(&f.db.name);
    for _ in 0..5 {
        let cluster = open(&f.db.url); // one "request"
        assert!(!exists(cluster, "x"));
        unsafe { ezdb_close(cluster) };
    }
    assert_eq!(
        sessions_on(&f.db.name),
        before,
        "five opens and closes used the fixture's connection"
    );

    let other_settings = ezdb_options {
        chunk_size: 1000,
        ..Default::default()
    };
    let mut cluster = std::ptr::null_mut();
    unsafe { ezdb_open(f.db.url.as_ptr().cast(), f.db.url.len(), &other_settings, &mut cluster) };
    assert!(!exists(cluster, "x"));
    assert_eq!(
        sessions_on(&f.db.name),
        before + 1,
        "other settings get their own connection"
    );
    assert_eq!(unsafe { ezdb_disconnect(cluster) }, ezdb_status::EZDB_OK);
    unsafe { ezdb_close(cluster) };
    // The server ends a session a moment after its COM_QUIT: wait (bounded) for it to go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sessions_on(&f.db.name) != before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sessions_on(&f.db.name), before, "ezdb_disconnect closes it");
}
