// Shared by the integration tests: a cluster on a fresh, uniquely named database, and helpers
// to look at the raw rows the way the legacy PHP handler would.
#![allow(dead_code)]

use ezdb_core::{Cluster, ClusterConfig};
pub use ezdb_testdb::TestDb;
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor};
use std::time::Duration;

/// A fresh database with the schema installed, and a pooled cluster on it.
pub async fn cluster() -> (TestDb, Cluster) {
    cluster_with(|c| c).await
}

pub async fn cluster_with(configure: impl FnOnce(ClusterConfig) -> ClusterConfig) -> (TestDb, Cluster) {
    let db = TestDb::create().await;
    let cluster = Cluster::connect(configure(ClusterConfig::new(&db.url)))
        .await
        .expect("connect to the test database");
    cluster.install_schema().await.expect("install schema");
    (db, cluster)
}

/// A second, independent cluster handle on the same database (another "server").
pub async fn other_node(db: &TestDb) -> Cluster {
    Cluster::connect(ClusterConfig::new(&db.url))
        .await
        .expect("connect second node")
}

pub async fn raw(db: &TestDb) -> MySqlConnection {
    MySqlConnection::connect(&db.url).await.expect("raw connection")
}

pub async fn exec(db: &TestDb, sql: &str) {
    raw(db)
        .await
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// (offset, length) of every chunk row of `name`, in order.
pub async fn chunks(db: &TestDb, name: &str) -> Vec<(u64, usize)> {
    let rows: Vec<(u32, Vec<u8>)> =
        sqlx::query_as("SELECT `offset`, filedata FROM ezdbfile_data WHERE name_hash = MD5(?) ORDER BY `offset`")
            .bind(name)
            .fetch_all(&mut raw(db).await)
            .await
            .unwrap();
    rows.into_iter().map(|(o, d)| (o as u64, d.len())).collect()
}

/// (mtime, expired, scope, datatype, size, name_trunk) of the row, looked up like legacy: MD5 in SQL.
pub async fn row(db: &TestDb, name: &str) -> Option<(i32, i8, String, String, u64, String)> {
    sqlx::query_as("SELECT mtime, expired, CAST(scope AS CHAR), CAST(datatype AS CHAR), size, CAST(name_trunk AS CHAR) FROM ezdbfile WHERE name_hash = MD5(?)")
        .bind(name)
        .fetch_optional(&mut raw(db).await)
        .await
        .unwrap()
}

pub async fn count(db: &TestDb, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut raw(db).await).await.unwrap();
    n
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// Yields 2 MiB quickly, announces WRITING once the database has had them, then stalls.
#[derive(Default)]
pub struct SlowReader {
    sent: usize,
    announced: bool,
}

impl tokio::io::AsyncRead for SlowReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.sent < 2 << 20 {
            let n = buf.remaining().min((2 << 20) - self.sent);
            buf.put_slice(&vec![0xAB; n]);
            self.sent += n;
            return std::task::Poll::Ready(Ok(()));
        }
        if !self.announced {
            self.announced = true;
            println!("WRITING");
            use std::io::Write;
            std::io::stdout().flush().unwrap();
        }
        let waker = cx.waker().clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3600));
            waker.wake();
        });
        std::task::Poll::Pending
    }
}

/// The conditional store on any layout: a newer live version is kept, an older or deleted one
/// replaced, and the mtime is required.
pub async fn check_store_unless_newer(cluster: &Cluster, dir: &std::path::Path) {
    use ezdb_core::{StoreOptions, Stored};
    let name = "var/site/storage/original/application/report.pdf";
    let local = dir.join("report.pdf");
    std::fs::write(&local, b"from the old layout").unwrap();
    let at = |mtime: i64| StoreOptions {
        mtime: Some(mtime),
        ..StoreOptions::new("binaryfile", "application/pdf")
    };
    let now = cluster.now();
    cluster.store(name, b"written since", &at(now)).await.unwrap();
    let kept = cluster
        .store_file_unless_newer(name, &local, &at(now - 10))
        .await
        .unwrap();
    assert_eq!(kept, Stored::KeptNewer { mtime: now });
    assert_eq!(cluster.fetch(name).await.unwrap(), b"written since");
    let written = cluster
        .store_file_unless_newer(name, &local, &at(now + 5))
        .await
        .unwrap();
    assert!(
        matches!(written, Stored::Written(ref m) if m.mtime == now + 5),
        "{written:?}"
    );
    assert_eq!(cluster.fetch(name).await.unwrap(), b"from the old layout");
    cluster.delete(name).await.unwrap();
    let over_deleted = cluster
        .store_file_unless_newer(name, &local, &at(now - 100))
        .await
        .unwrap();
    assert!(matches!(over_deleted, Stored::Written(_)), "a deleted row is replaced");
    let fresh = "var/site/storage/original/application/new.pdf";
    assert!(matches!(
        cluster.store_file_unless_newer(fresh, &local, &at(now)).await.unwrap(),
        Stored::Written(_)
    ));
    let no_mtime = cluster
        .store_file_unless_newer(fresh, &local, &StoreOptions::new("binaryfile", "application/pdf"))
        .await
        .unwrap_err();
    assert!(no_mtime.to_string().contains("mtime"), "{no_mtime}");
}

/// `stat_many` answers as `stat` does for each name, in the order asked: across more than one
/// statement's worth of names, for the two tables of eZDFS, names without a row, a name asked
/// twice, a deleted row and a scope under a global expiry key.
pub async fn check_stat_many(cluster: &Cluster) {
    use ezdb_core::StoreOptions;
    let image = StoreOptions::new("image", "image/png");
    let mut names: Vec<String> = (0..300)
        .map(|i| format!("var/site/storage/images/batch/{i}.png"))
        .collect();
    for name in &names {
        cluster.store(name, name.as_bytes(), &image).await.unwrap();
    }
    let cache = "var/site/cache/template-block/batch.cache";
    cluster
        .store(cache, b"block", &StoreOptions::new("template-block", "misc"))
        .await
        .unwrap();
    cluster.delete(&names[7]).await.unwrap();
    cluster
        .set_global_expiry("global-template-block-cache", Some(cluster.now() + 3600))
        .await
        .unwrap();
    names.push(cache.to_owned());
    names.push("var/site/storage/images/batch/missing.png".to_owned());
    names.push(names[3].clone());
    names.reverse();
    let asked: Vec<&str> = names.iter().map(String::as_str).collect();
    let batch = cluster.stat_many(&asked).await.unwrap();
    assert_eq!(batch.len(), names.len());
    for (name, meta) in names.iter().zip(&batch) {
        assert_eq!(meta, &cluster.stat(name).await.unwrap(), "{name}");
    }
    assert!(
        batch[0].is_some() && batch[1].is_none(),
        "a name asked twice, the name without a row"
    );
    assert!(batch.iter().flatten().any(|m| m.deleted), "the deleted row");
    assert!(
        batch.iter().flatten().any(|m| m.global_expiry.is_some()),
        "the expiry key"
    );
    assert!(cluster.stat_many(&[]).await.unwrap().is_empty());
}
