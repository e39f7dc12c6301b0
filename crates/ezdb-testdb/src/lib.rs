//! Test support: a uniquely named database per test on the server named by EZDB_TEST_URL,
//! dropped when the guard goes out of scope, even after a panic; optionally created with one of
//! the schemas real sites have ([`Schema`]), for the schema matrix.

mod galera;
mod haproxy;
mod legacy_dfs_node;
mod legacy_node;
mod private_server;
mod replication;
mod temp_dir;

pub use galera::{GaleraCluster, GaleraNode};
pub use haproxy::Haproxy;
pub use legacy_dfs_node::LegacyDfsNode;
pub use legacy_node::{LegacyNode, LEGACY_CHUNK_SIZE};
pub use private_server::PrivateServer;
pub use replication::ReplicatedPair;
pub use temp_dir::TempDir;

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

/// The schemas a site's cluster database may have, for tests that must hold on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// ezdb's `sql/mysql/schema.sql`: utf8mb4_bin tables plus `ezdbfile_expiry`.
    Ezdb,
    /// The legacy DDL exactly (`cluster_db_schema.sql`), on the server's default character set
    /// and collation (case- and accent-insensitive); only the two legacy tables.
    Legacy,
    /// The legacy DDL in a latin1 database, the default of the servers eZDB was written for.
    LegacyLatin1,
    /// The legacy DDL in a utf8 (3-byte, `utf8mb3_general_ci`) database: no 4-byte characters.
    LegacyUtf8,
    /// The legacy `cluster_schema.sql`: `datatype VARCHAR(60)`.
    LegacyDatatype60,
    /// The legacy eZDFS DDL (`cluster_dfs_schema.sql`): `ezdfsfile` and `ezdfsfile_cache`, on the
    /// server's default character set; the bytes live on a mount the test creates.
    LegacyDfs,
    /// Ibexa DXP 5's `ibexa_dfs_file`, one table, utf8mb4.
    IbexaDfs,
    /// The legacy eZDFS DDL in a latin1 database, as older eZDFS sites have it.
    LegacyDfsLatin1,
}

impl Schema {
    /// Every variant, for matrix tests.
    pub const ALL: [Schema; 5] = [
        Schema::Ezdb,
        Schema::Legacy,
        Schema::LegacyLatin1,
        Schema::LegacyUtf8,
        Schema::LegacyDatatype60,
    ];

    /// `CREATE DATABASE` options: the tables inherit them.
    fn database_options(self) -> &'static str {
        match self {
            Schema::Ezdb => " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            Schema::Legacy | Schema::LegacyDatatype60 | Schema::LegacyDfs | Schema::IbexaDfs => "",
            Schema::LegacyLatin1 | Schema::LegacyDfsLatin1 => " CHARACTER SET latin1",
            Schema::LegacyUtf8 => " CHARACTER SET utf8mb3",
        }
    }

    fn ddl(self) -> &'static str {
        match self {
            Schema::Ezdb => include_str!("../../../sql/mysql/schema.sql"),
            Schema::Legacy | Schema::LegacyLatin1 | Schema::LegacyUtf8 => {
                include_str!("../../../sql/mysql/legacy/cluster_db_schema.sql")
            }
            Schema::LegacyDatatype60 => include_str!("../../../sql/mysql/legacy/cluster_schema_datatype60.sql"),
            Schema::LegacyDfs | Schema::LegacyDfsLatin1 => {
                include_str!("../../../sql/mysql/legacy/cluster_dfs_schema.sql")
            }
            Schema::IbexaDfs => include_str!("../../../sql/mysql/legacy/ibexa_dfs_schema.sql"),
        }
    }

    /// Whether names outside the Basic Multilingual Plane (emoji, some CJK) fit the tables.
    pub fn holds_4_byte_utf8(self) -> bool {
        matches!(
            self,
            Schema::Ezdb | Schema::Legacy | Schema::LegacyDatatype60 | Schema::LegacyDfs | Schema::IbexaDfs
        )
    }

    /// Whether the columns hold every Unicode character (latin1 holds only Western European ones).
    pub fn holds_any_bmp_text(self) -> bool {
        !matches!(self, Schema::LegacyLatin1 | Schema::LegacyDfsLatin1)
    }
}

impl TestDb {
    /// Creates a database with `schema`'s tables (and nothing else) and returns its guard.
    pub async fn create_with(schema: Schema) -> TestDb {
        TestDb::create_on(&server_url(), schema).await
    }

    /// Like [`TestDb::create_with`], on another server (e.g. a private one a test started).
    pub async fn create_on(server_url: &str, schema: Schema) -> TestDb {
        let db = TestDb::create_database(server_url, schema.database_options()).await;
        let mut conn = connect_server(&db.url).await;
        for statement in statements(schema.ddl()) {
            conn.execute(statement.as_str())
                .await
                .unwrap_or_else(|e| panic!("{schema:?} schema on {}: {statement}: {e}", db.name));
        }
        db
    }

    /// Creates `ezdbt_<time>_<pid>_<n>` (utf8mb4_bin, no tables) and returns its guard. Panics with
    /// a clear message when no server can be reached: tests never skip silently.
    pub async fn create() -> TestDb {
        TestDb::create_database(&server_url(), Schema::Ezdb.database_options()).await
    }

    async fn create_database(server_url: &str, options: &str) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!(
            "ezdbt_{millis}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = connect_server(server_url).await;
        conn.execute(format!("CREATE DATABASE `{name}`{options}").as_str())
            .await
            .unwrap_or_else(|e| {
                panic!("cannot create test database {name} on {server_url}: {e}; the user needs CREATE/DROP rights")
            });
        let url = database_url(server_url, &name);
        TestDb {
            name,
            url,
            server_url: server_url.to_owned(),
        }
    }
}

/// The statements of an SQL file, without `--` comment lines.
fn statements(sql: &str) -> Vec<String> {
    let code: Vec<&str> = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
    code.join("\n")
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
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
