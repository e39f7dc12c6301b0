// Test support: a uniquely named database per test on the server named by EZDB_TEST_URL, with
// the cluster schema installed, dropped when the guard goes out of scope, even after a panic.

mod galera;
mod private_server;
mod replication;

pub use galera::{GaleraCluster, GaleraNode};
pub use private_server::PrivateServer;
pub use replication::ReplicatedPair;

use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Server used when EZDB_TEST_URL is not set.
pub const DEFAULT_SERVER_URL: &str = "mysql://root@127.0.0.1:3306";

/// A throwaway database: `url` points at it; it is dropped on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
    server_url: String,
}

/// The server under test: EZDB_TEST_URL or the default.
pub fn server_url() -> String {
    std::env::var("EZDB_TEST_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

impl TestDb {
    /// Creates `ezdbt_<time>_<pid>_<n>` and returns its guard. Panics with a clear message when
    /// no server can be reached: tests never skip silently.
    pub async fn create() -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let server_url = server_url();
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!(
            "ezdbt_{millis}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = connect_server(&server_url).await;
        conn.execute(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str())
            .await
            .unwrap_or_else(|e| {
                panic!("cannot create test database {name} on {server_url}: {e}; the user needs CREATE/DROP rights")
            });
        let url = database_url(&server_url, &name);
        TestDb { name, url, server_url }
    }
}

/// Inserts `/db` into a server URL, keeping any `?query` (e.g. a socket).
pub fn database_url(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    format!("{}/{database}{query}", &base[..authority_end])
}

async fn connect_server(server_url: &str) -> MySqlConnection {
    match MySqlConnection::connect(server_url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "\n\nNo MariaDB/MySQL server reachable at {server_url}: {e}\n\
             Run the tests through `scripts/test.sh`, which installs and starts one when needed,\n\
             or set EZDB_TEST_URL=mysql://user:pass@host:port to a server where the user may create databases.\n"
        ),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut conn = MySqlConnection::connect(&server_url).await?;
                conn.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Runs `future` to completion on a fresh current-thread runtime in its own thread, so sync
/// fixtures work both outside and inside a test's runtime.
pub(crate) fn block_on<T: Send + 'static>(future: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(future)
    })
    .join()
    .expect("fixture thread panicked")
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_goes_before_the_query() {
        assert_eq!(
            database_url("mysql://root@127.0.0.1:3306", "t"),
            "mysql://root@127.0.0.1:3306/t"
        );
        assert_eq!(
            database_url("mysql://root@localhost/?socket=/s", "t"),
            "mysql://root@localhost/t?socket=/s"
        );
        assert_eq!(database_url("mysql://root@h/old", "t"), "mysql://root@h/t");
    }
}
