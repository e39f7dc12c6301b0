// The real index_image binary on an ephemeral port against a real MariaDB, checked byte for
// byte: statuses, headers, conditionals, ranges, hostile paths, large files, database outages.

use ezdb_core::{Cluster, ClusterConfig, StoreOptions, MAX_CHUNK_SIZE};
use ezdb_testdb::TestDb;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const IMG: &str = "var/site/storage/images/a/1-1-eng-GB/logo.png";

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(database_url: &str, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_index_image"))
        .args([
            "--listen=127.0.0.1:0",
            "--served-by=test-node",
            &format!("--database-url={database_url}"),
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().rsplit("http://").next().unwrap().to_owned();
    assert!(address.starts_with("127.0.0.1:"), "unexpected start line {line:?}");
    Server { child, address }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request written as is (no client-side normalisation of the path).
fn request(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
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

fn get(server: &Server, path: &str) -> Reply {
    request(server, "GET", path, &[])
}

async fn cluster(db: &TestDb) -> Cluster {
    let cluster = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    cluster.install_schema().await.unwrap();
    cluster
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn serves_a_live_image_with_every_header() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let data = bytes(3 * MAX_CHUNK_SIZE + 10);
    let meta = c
        .store(IMG, &data, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let server = start(&db.url, &["--max-age=600"]);
    let reply = get(&server, &format!("/{IMG}?v=2"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, data, "byte for byte");
    assert_eq!(reply.header("content-type"), Some("image/png"));
    assert_eq!(reply.header("content-length"), Some(data.len().to_string().as_str()));
    let etag = format!("\"{}-{}\"", meta.mtime, meta.size);
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=600"));
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    assert_eq!(reply.header("served-by"), Some("test-node"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert!(reply.header("expires").is_some());
    let last_modified = reply.header("last-modified").unwrap().to_owned();

    let head = request(&server, "HEAD", &format!("/{IMG}"), &[]);
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), reply.header("content-length"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let path = format!("/{IMG}");
    for (headers, status) in [
        (vec![("If-None-Match", etag.as_str())], 304),
        (vec![("If-None-Match", "\"other\"")], 200),
        (vec![("If-None-Match", "*")], 304),
        (vec![("If-None-Match", &*format!("\"x\", W/{etag}"))], 304),
        (vec![("If-Modified-Since", last_modified.as_str())], 304),
        (vec![("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")], 200),
        (vec![("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")], 304),
        (
            vec![
                ("If-None-Match", "\"other\""),
                ("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT"),
            ],
            200,
        ),
        (vec![("If-Modified-Since", "garbage")], 200),
    ] {
        let reply = request(&server, "GET", &path, &headers);
        assert_eq!(reply.status, status, "{headers:?}");
        if status == 304 {
            assert!(reply.body.is_empty() && reply.header("etag") == Some(etag.as_str()));
        }
    }
}

#[tokio::test]
async fn ranges_are_exact_at_chunk_boundaries() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let data = bytes(3 * MAX_CHUNK_SIZE + 10);
    c.store(IMG, &data, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let server = start(&db.url, &[]);
    let path = format!("/{IMG}");
    let size = data.len();
    let c1 = MAX_CHUNK_SIZE;
    for (spec, start, end) in [
        ("bytes=0-99", 0, 99),
        (&*format!("bytes={}-{}", c1 - 10, c1 + 10), c1 - 10, c1 + 10),
        (&*format!("bytes={}-{}", c1, 2 * c1 - 1), c1, 2 * c1 - 1),
        ("bytes=5-5", 5, 5),
        ("bytes=-100", size - 100, size - 1),
        (&*format!("bytes={}-", size - 3), size - 3, size - 1),
        (&*format!("bytes=10-{}", size + 1000), 10, size - 1),
    ] {
        let reply = request(&server, "GET", &path, &[("Range", spec)]);
        assert_eq!(reply.status, 206, "{spec}");
        assert_eq!(reply.body, &data[start..=end], "{spec}");
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {start}-{end}/{size}").as_str()),
            "{spec}"
        );
        assert_eq!(
            reply.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
    }
    let beyond = request(&server, "GET", &path, &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some(format!("bytes */{size}").as_str()));
    for ignored in ["bytes=0-9,20-29", "bytes=abc", "lines=1-2"] {
        let reply = request(&server, "GET", &path, &[("Range", ignored)]);
        assert_eq!((reply.status, reply.body.len()), (200, size), "{ignored}");
    }
}

#[tokio::test]
async fn only_live_images_under_the_prefixes_are_served() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    c.store(IMG, b"img", &img).await.unwrap();
    c.store("var/site/storage/images/deleted.png", b"gone", &img)
        .await
        .unwrap();
    c.delete("var/site/storage/images/deleted.png").await.unwrap();
    c.store(
        "var/site/storage/images/cache-ish.png",
        b"x",
        &StoreOptions::new("viewcache", "php"),
    )
    .await
    .unwrap();
    c.store(
        "var/site/cache/content/site/2-a.cache",
        b"private",
        &StoreOptions::new("image", "php"),
    )
    .await
    .unwrap();
    c.store(
        "var/site/storage/images/misc.bin",
        b"m",
        &StoreOptions::new("image", "misc"),
    )
    .await
    .unwrap();
    c.store("var/site/storage/images/it's.png", b"quote", &img)
        .await
        .unwrap();
    let _lock = c
        .start_generation("var/site/storage/images/new.png", None)
        .await
        .unwrap();
    let server = start(&db.url, &[]);
    assert_eq!(get(&server, "/var/site/storage/images/missing.png").status, 404);
    assert_eq!(get(&server, "/var/site/storage/images/deleted.png").status, 404);
    assert_eq!(
        get(&server, "/var/site/storage/images/cache-ish.png").status,
        404,
        "scope not allowed"
    );
    assert_eq!(
        get(&server, "/var/site/cache/content/site/2-a.cache").status,
        404,
        "outside the prefixes"
    );
    assert_eq!(
        get(&server, "/var/site/storage/images/new.png").status,
        404,
        "still generating"
    );
    assert_eq!(get(&server, "/var/site/storage/images/new.png.generating").status, 404);
    let misc = get(&server, "/var/site/storage/images/misc.bin");
    assert_eq!(misc.header("content-type"), Some("application/octet-stream"));
    let quote = get(&server, "/var/site/storage/images/it%27s.png");
    assert_eq!((quote.status, quote.body.as_slice()), (200, &b"quote"[..]));
    assert_eq!(request(&server, "POST", &format!("/{IMG}"), &[]).status, 405);
    assert_eq!(get(&server, "/healthz").status, 200);

    let hostile = [
        "/var/site/storage/images/../../../etc/passwd",
        "/var/site/storage/images/%2e%2e/%2e%2e/cache/content/site/2-a.cache",
        "/var/site/storage/images/%2E%2E/%2E%2E/cache/content/site/2-a.cache",
        "/var/site/storage/images/..%2f..%2fcache/content/site/2-a.cache",
        "/var/site/storage/images/a/..",
        "/var/site/storage/images/./a.png",
        "/var/site/storage/images/a%00.png",
        "/var/site/storage/images/x.png%00",
        "/var/site/storage/images/%5c..%5c..%5cetc%5cpasswd",
        "/var/site/storage/images//a.png",
        "/var/site/storage/images/%ff.png",
        "/var/site/storage/images/",
        "/var/site/cache/content/site/2-a.cache",
        "/var/site/cache/expiry.php",
        "/var/site/storage/original/application/x.pdf",
        "/etc/passwd",
        "/",
        "/var",
        "/var/storage/images",
        "/var/a/b/storage/images/x.png",
        "/var//storage/images/x.png",
        "/settings/site.ini",
        "/var/site/storage/imagesX/x.png",
        "/VAR/site/storage/images/x.png",
        "/var/%2e%2e/storage/images/x.png",
        "/var/site/storage/images/a.png.generating",
        "/var/site/storage/images/%2e",
        "/var/site/storage/images/%2e%2e",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/var/site/storage/images/...",
        "/index.php",
        "/var/site/storage/images/a\\..\\..\\x",
    ];
    for path in hostile {
        let reply = get(&server, path);
        assert!(matches!(reply.status, 400 | 404), "{path} -> {}", reply.status);
        assert!(
            !reply.body.windows(7).any(|w| w == b"private"),
            "{path} leaked a cache file"
        );
    }
    let long = format!("/var/site/storage/images/{}", "a".repeat(5000));
    assert!(matches!(get(&server, &long).status, 400 | 404 | 414));
}

#[tokio::test]
async fn a_twenty_mib_image_streams_whole() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let data = bytes(20 << 20);
    c.store(IMG, &data, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let server = start(&db.url, &[]);
    let reply = get(&server, &format!("/{IMG}"));
    assert_eq!(reply.status, 200);
    assert!(reply.body == data, "{} bytes back", reply.body.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_503_and_the_server_recovers_by_itself() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    c.store(IMG, b"survives", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let (host_port, database) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    let via_proxy = format!("mysql://root@{}/{database}", proxy.address);
    let server = start(&via_proxy, &["--cache-bytes=0"]);
    assert_eq!(get(&server, &format!("/{IMG}")).body, b"survives");
    proxy.set_up(false).await;
    let down = get(&server, &format!("/{IMG}"));
    assert_eq!(down.status, 503);
    assert_eq!(down.header("retry-after"), Some("5"));
    assert!(
        !String::from_utf8_lossy(&down.body).contains("mysql"),
        "no internal details"
    );
    proxy.set_up(true).await;
    assert_eq!(
        eventually_ok(&server, &format!("/{IMG}")).await,
        b"survives",
        "recovered by itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_while_the_database_is_down_serves_503_then_recovers() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    c.store(IMG, b"later", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let (host_port, database) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    proxy.set_up(false).await;
    let server = start(&format!("mysql://root@{}/{database}", proxy.address), &[]);
    assert_eq!(get(&server, "/healthz").status, 503);
    assert_eq!(get(&server, &format!("/{IMG}")).status, 503);
    proxy.set_up(true).await;
    assert_eq!(eventually_ok(&server, &format!("/{IMG}")).await, b"later");
}

/// The body of the first 200 within 20 seconds.
async fn eventually_ok(server: &Server, path: &str) -> Vec<u8> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = get(server, path);
        if reply.status == 200 || std::time::Instant::now() > deadline {
            assert_eq!(reply.status, 200, "no recovery within 20 s");
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn hot_files_come_from_memory_and_changes_show_within_the_revalidation_interval() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    c.store(IMG, b"version 1", &img).await.unwrap();
    c.store("var/site/storage/images/big.png", &bytes(3 << 20), &img)
        .await
        .unwrap();
    let server = start(&db.url, &["--cache-revalidate=0.5"]);
    let path = format!("/{IMG}");
    assert_eq!(get(&server, &path).body, b"version 1");
    let cached = request(&server, "GET", &path, &[("Range", "bytes=2-6")]);
    assert_eq!((cached.status, cached.body.as_slice()), (206, &b"rsion"[..]));
    let etag = get(&server, &path).header("etag").unwrap().to_owned();
    assert_eq!(request(&server, "GET", &path, &[("If-None-Match", &etag)]).status, 304);
    tokio::time::sleep(Duration::from_millis(1100)).await; // a new mtime second
    c.store(IMG, b"version 2, longer", &img).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(&server, &path).body,
        b"version 2, longer",
        "revalidated against the database"
    );
    c.delete(IMG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&server, &path).status, 404, "a deleted file leaves the cache");
    let big = get(&server, "/var/site/storage/images/big.png");
    assert_eq!(big.body, bytes(3 << 20), "files over the cache limit stream");
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    let (host_port, database) = rest.split_once('/').unwrap();
    (host_port.to_owned(), database.to_owned())
}

/// A TCP forwarder to the database that the test can cut and restore: a database outage and
/// restart, seen from the server exactly as the network would show it.
struct Proxy {
    address: String,
    up: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (up, _) = tokio::sync::watch::channel(true);
        let up = std::sync::Arc::new(up);
        let target = target.to_owned();
        let up_task = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !*up_task.borrow() {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut down = up_task.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { address, up }
    }

    async fn set_up(&self, up: bool) {
        self.up.send_replace(up);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_connections_never_mix_files() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let files: Vec<Vec<u8>> = (0..20u8)
        .map(|i| (0..(2_000 + i as usize * 3_000)).map(|n| i ^ (n % 251) as u8).collect())
        .collect();
    for (i, data) in files.iter().enumerate() {
        c.store(
            &format!("var/site/storage/images/load/{i}.png"),
            data,
            &StoreOptions::new("image", "image/png"),
        )
        .await
        .unwrap();
    }
    let server = start(&db.url, &["--pool-size=8", "--cache-bytes=0"]);
    let files = std::sync::Arc::new(files);
    let mut tasks = Vec::new();
    for client in 0..300usize {
        let (address, files) = (server.address.clone(), files.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..4 {
                let i = (client * 7 + round) % files.len();
                let body = fetch_async(&address, &format!("/var/site/storage/images/load/{i}.png")).await;
                assert!(
                    body == files[i],
                    "client {client} got {} bytes that are not file {i}",
                    body.len()
                );
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("bounded in time")
            .unwrap();
    }
}

/// GET over a fresh connection with tokio; returns the body of a 200.
async fn fetch_async(address: &str, path: &str) -> Vec<u8> {
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

#[tokio::test]
async fn a_64_mib_file_streams_in_bounded_memory() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let source = tokio::io::AsyncReadExt::take(tokio::io::repeat(0x5a), 64 << 20);
    c.store_reader(
        "var/site/storage/images/huge.png",
        source,
        &StoreOptions::new("image", "image/png"),
    )
    .await
    .unwrap();
    let server = start(&db.url, &[]);
    assert_eq!(get(&server, "/healthz").status, 200);
    let before = peak_rss_kib(server.child.id());
    let reply = get(&server, "/var/site/storage/images/huge.png");
    assert_eq!(reply.body.len(), 64 << 20);
    assert!(reply.body.iter().all(|b| *b == 0x5a));
    let growth = peak_rss_kib(server.child.id()) - before;
    assert!(
        growth < 16 * 1024,
        "serving 64 MiB grew the server's peak RSS by {growth} KiB"
    );
}

fn peak_rss_kib(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn settings_come_from_a_config_file_and_flags_win() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    c.store(IMG, b"x", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let file = std::env::temp_dir().join(format!("index_image-{}.conf", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "# test\nEZDB_URL = {}\nINDEX_IMAGE_SERVED_BY = from-file\nINDEX_IMAGE_MAX_AGE = 42\n",
            db.url
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_index_image"))
        .args([
            "--listen=127.0.0.1:0",
            "--config",
            file.to_str().unwrap(),
            "--max-age=7",
        ])
        .env_remove("EZDB_URL")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server {
        child,
        address: line.trim().rsplit("http://").next().unwrap().to_owned(),
    };
    let reply = get(&server, &format!("/{IMG}"));
    assert_eq!(reply.header("served-by"), Some("from-file"));
    assert_eq!(
        reply.header("cache-control"),
        Some("public, max-age=7"),
        "the flag wins over the file"
    );
    std::fs::write(&file, "NOT_A_SETTING = 1\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_index_image"))
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown setting NOT_A_SETTING"));
    let _ = std::fs::remove_file(&file);
}
