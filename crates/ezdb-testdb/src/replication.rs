//! A private primary with one asynchronous replica on loopback (MariaDB binlog replication,
//! GTID), both `PrivateServer`s; the replica's apply can be delayed to make it lag on purpose.

use crate::private_server::PrivateServer;
use sqlx::{Connection, Executor, Row};
use std::time::{Duration, Instant};

/// A running primary and replica; dropping it stops both and removes their directories.
pub struct ReplicatedPair {
    pub primary: PrivateServer,
    pub replica: PrivateServer,
}

impl ReplicatedPair {
    /// Starts both servers and the replication, and waits until the replica's threads run.
    pub fn start(label: &str) -> Result<ReplicatedPair, String> {
        let primary = PrivateServer::start(
            &format!("{label}-primary"),
            &["--log-bin=primary-bin", "--server-id=1", "--binlog-format=ROW"],
        )?;
        let replica = PrivateServer::start(
            &format!("{label}-replica"),
            &["--server-id=2", "--relay-log=replica-relay", "--read-only=ON"],
        )?;
        let pair = ReplicatedPair { primary, replica };
        let change = format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
             MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
            pair.primary.port()
        );
        let url = pair.replica.url();
        crate::block_on(async move {
            let mut conn = sqlx::mysql::MySqlConnection::connect(&url)
                .await
                .map_err(|e| e.to_string())?;
            conn.execute(change.as_str()).await.map_err(|e| e.to_string())?;
            conn.execute("START SLAVE").await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        })
        .map_err(|e| pair.replica.failure(&format!("refused to replicate: {e}")))?;
        pair.wait_replicating(Duration::from_secs(30))?;
        Ok(pair)
    }

    /// Makes the replica apply each event `seconds` after it was committed on the primary.
    pub fn set_delay(&self, seconds: u32) -> Result<(), String> {
        let url = self.replica.url();
        crate::block_on(async move {
            let mut conn = sqlx::mysql::MySqlConnection::connect(&url)
                .await
                .map_err(|e| e.to_string())?;
            for sql in [
                "STOP SLAVE".to_owned(),
                format!("CHANGE MASTER TO MASTER_DELAY = {seconds}"),
                "START SLAVE".to_owned(),
            ] {
                conn.execute(sql.as_str()).await.map_err(|e| format!("{sql}: {e}"))?;
            }
            Ok(())
        })
    }

    /// Creates `database` (utf8mb4, binary collation) on the primary, from where it replicates;
    /// returns its URLs on the primary and on the replica.
    pub fn create_database(&self, database: &str) -> Result<(String, String), String> {
        let (url, sql) = (
            self.primary.url(),
            format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        );
        crate::block_on(async move {
            let mut conn = sqlx::mysql::MySqlConnection::connect(&url)
                .await
                .map_err(|e| e.to_string())?;
            conn.execute(sql.as_str()).await.map_err(|e| format!("{sql}: {e}"))?;
            Ok::<_, String>(())
        })?;
        Ok((
            crate::database_url(&self.primary.url(), database),
            crate::database_url(&self.replica.url(), database),
        ))
    }

    /// Waits up to 30 s until `table` of `database`, created on the primary, can be read on
    /// the replica (it replicates asynchronously).
    pub fn wait_for_table(&self, database: &str, table: &str) -> Result<(), String> {
        let until = Instant::now() + Duration::from_secs(30);
        let (url, probe) = (
            crate::database_url(&self.replica.url(), database),
            format!("SELECT 1 FROM `{table}` LIMIT 1"),
        );
        loop {
            let (url, probe) = (url.clone(), probe.clone());
            let found = crate::block_on(async move {
                match sqlx::mysql::MySqlConnection::connect(&url).await {
                    Ok(mut conn) => conn.execute(probe.as_str()).await.is_ok(),
                    Err(_) => false,
                }
            });
            if found {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(format!("{database}.{table} did not reach the replica within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_replicating(&self, deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        loop {
            let url = self.replica.url();
            let status = crate::block_on(async move {
                let mut conn = sqlx::mysql::MySqlConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                let row = sqlx::query("SHOW SLAVE STATUS")
                    .fetch_optional(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no replication configured")?;
                let io: String = row.try_get("Slave_IO_Running").map_err(|e| e.to_string())?;
                let sql: String = row.try_get("Slave_SQL_Running").map_err(|e| e.to_string())?;
                let error: String = row.try_get("Last_Error").unwrap_or_default();
                Ok::<_, String>((io, sql, error))
            });
            if matches!(&status, Ok((io, sql, _)) if io == "Yes" && sql == "Yes") {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(self.replica.failure(&format!(
                    "did not replicate within {} s (last: {status:?})",
                    deadline.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
