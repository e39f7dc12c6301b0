//! What the index_image tests share: the server started in-process on port 0 (its own runtime
//! on its own thread, so tests may use blocking sockets), raw HTTP/1.1 requests, the test
//! cluster, and a TCP forwarder to the database that can go down or hang.
#![allow(dead_code)]

use ezdb_core::{Cluster, ClusterConfig};
use ezdb_testdb::TestDb;
use index_image::{run, Config, RunError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub const IMG: &str = "var/site/storage/images/a/1-1-eng-GB/logo.png";

/// index_image running in this process until dropped (or stopped).
pub struct Server {
    pub address: String,
    /// The spool directory this test created for the server; removed on drop.
    spool: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), RunError>>>,
}

impl Server {
    /// Fires the shutdown and waits for `run` to return; the time it took.
    pub fn stop(mut self) -> (Duration, Result<(), RunError>) {
        let started = Instant::now();
        let result = self.shutdown();
        (started.elapsed(), result)
    }

    fn shutdown(&mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("server thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

/// A new, empty directory of this test's own.
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = temp_path(what);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A path of this test's own in the temporary directory, not created (nothing is left behind
/// by a test that only parses settings naming it).
pub fn temp_path(what: &str) -> std::path::PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("index_image-test-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

/// The settings a test server gets: a free port, a fixed Served-by, a short shutdown, a
/// spool directory of its own (created by the server, removed when it is dropped).
pub fn config(database_url: &str, extra: &[&str]) -> Config {
    let mut args = vec![
        "index_image".to_owned(),
        format!("--spool-dir={}", temp_path("spool").display()),
        "--listen=127.0.0.1:0".to_owned(),
        "--served-by=test-node".to_owned(),
        "--shutdown-timeout=5".to_owned(),
        format!("--database-url={database_url}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::parse_from(args).unwrap_or_else(|e| panic!("test settings: {e}"))
}

pub fn start(database_url: &str, extra: &[&str]) -> Server {
    start_with(config(database_url, extra))
}

pub fn start_with(config: Config) -> Server {
    try_start(config).unwrap_or_else(|e| panic!("index_image did not start: {e}"))
}

/// Starts the server; the error `run` returned at once, if it did.
pub fn try_start(config: Config) -> Result<Server, RunError> {
    let spool_dir = config.spool_dir.clone().expect("tests give a spool directory");
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
            address_tx.send(listener.local_addr().unwrap().to_string()).unwrap();
            run(listener, config, async {
                let _ = stopped.await;
            })
            .await
        })
    });
    let address = address_rx.recv().expect("the server thread reports its address");
    let mut server = Server {
        address,
        spool: spool_dir,
        stop: Some(stop),
        thread: Some(thread),
    };
    // `run` connects before serving: give a refusal the chance to show.
    std::thread::sleep(Duration::from_millis(50));
    if server.thread.as_ref().is_some_and(|t| t.is_finished()) {
        server.shutdown()?;
    }
    Ok(server)
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request written as is (no client-side normalisation of the path).
pub fn request(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request_at(&server.address, method, path, headers)
}

pub fn request_at(address: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

pub fn get(server: &Server, path: &str) -> Reply {
    request(server, "GET", path, &[])
}

pub async fn cluster(db: &TestDb) -> Cluster {
    let cluster = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    cluster.install_schema().await.unwrap();
    cluster
}

pub fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// GET over a fresh connection with tokio; returns the body of a 200.
pub async fn fetch_async(address: &str, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw[..split])
    );
    raw[split + 4..].to_vec()
}

/// The value of one sample of a Prometheus text page (0 when absent).
pub fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The server's /metrics page.
pub fn metrics_page(server: &Server) -> String {
    let reply = get(server, "/metrics");
    assert_eq!(reply.status, 200, "/metrics");
    String::from_utf8(reply.body).expect("/metrics is text")
}

/// The body of the first 200 within 20 seconds.
pub async fn eventually_ok(server: &Server, path: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = get(server, path);
        if reply.status == 200 || Instant::now() > deadline {
            assert_eq!(reply.status, 200, "no recovery within 20 s");
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn split_url(url: &str) -> (String, String) {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    let (host_port, database) = rest.split_once('/').unwrap();
    (host_port.to_owned(), database.to_owned())
}

/// What the forwarder does with traffic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Link {
    Up,
    /// Connections are cut and new ones refused: an outage or restart.
    Down,
    /// Connections stay open but no byte moves: a hung (SIGSTOPped) server.
    Hung,
}

/// A TCP forwarder to the database that the test can cut, hang and restore: seen from the
/// server exactly as the network would show it.
pub struct Proxy {
    pub address: String,
    link: std::sync::Arc<tokio::sync::watch::Sender<Link>>,
    /// Bytes the database has sent through the forwarder so far.
    from_database: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (link, _) = tokio::sync::watch::channel(Link::Up);
        let link = std::sync::Arc::new(link);
        let target = target.to_owned();
        let accepting = link.clone();
        let from_database = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = from_database.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *accepting.borrow() == Link::Down {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let link = accepting.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = forward(client_read, server_write, link.subscribe(), None) => {}
                        _ = forward(server_read, client_write, link.subscribe(), Some(counted)) => {}
                    }
                });
            }
        });
        Proxy {
            address,
            link,
            from_database,
        }
    }

    pub fn bytes_from_database(&self) -> u64 {
        self.from_database.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn set(&self, link: Link) {
        self.link.send_replace(link);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pub async fn set_up(&self, up: bool) {
        self.set(if up { Link::Up } else { Link::Down }).await;
    }

    /// The database URL through this forwarder.
    pub fn url(&self, db: &TestDb) -> String {
        let (_, database) = split_url(&db.url);
        format!("mysql://root@{}/{database}", self.address)
    }
}

/// Copies one direction while the link is up; holds the bytes while it hangs; stops when down.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: tokio::sync::watch::Receiver<Link>,
    counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 64 << 10];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = link.wait_for(|l| *l == Link::Down) => return,
        };
        if let Some(counter) = &counter {
            counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let state = link.wait_for(|l| *l != Link::Hung).await.map(|l| *l);
        if !matches!(state, Ok(Link::Up)) || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
