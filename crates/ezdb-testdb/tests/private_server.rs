//! The private-server fixture: it starts, takes extra options, accepts root, and leaves nothing behind.

use ezdb_testdb::PrivateServer;
use sqlx::{Connection, Executor, Row};

#[tokio::test]
async fn a_private_server_starts_with_its_options_and_is_removed_after() {
    let server = PrivateServer::start("fixture", &["--max-allowed-packet=1M"])
        .unwrap_or_else(|e| panic!("cannot start a private MariaDB: {e}"));
    let url = server.url();
    assert!(url.ends_with(&format!(":{}", server.port())));
    let mut conn = sqlx::mysql::MySqlConnection::connect(&url)
        .await
        .expect("root connects");
    let row = sqlx::query("SELECT @@max_allowed_packet")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<u64, _>(0), 1 << 20);
    conn.execute("CREATE DATABASE fixture_db")
        .await
        .expect("root may create databases");
    conn.close().await.unwrap();
    let dir = server.dir().to_path_buf();
    assert!(dir.join("data").is_dir());
    server.stop();
    assert!(!dir.exists(), "the datadir is removed on stop");
    assert!(
        sqlx::mysql::MySqlConnection::connect(&url).await.is_err(),
        "the server is gone after stop"
    );
}
