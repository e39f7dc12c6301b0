//! index_image under hostile traffic: slow and paused clients never hold a database connection,
//! idle and stalled sockets are closed by the timeouts, a hung database meets the deadline,
//! shutdown ends by its deadline, and a start during "too many connections" retries.
//!
//! The slow-reader and idle-socket tests run at the scale (64 readers of 20 MB files,
//! 1,000 sockets): about 15 s together.

mod common;

use common::*;
use ezdb_core::StoreOptions;
use ezdb_testdb::TestDb;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LARGE: usize = 6 << 20;

async fn store_large(db: &TestDb, files: usize) -> Vec<Vec<u8>> {
    store_files(db, files, LARGE).await
}

async fn store_files(db: &TestDb, files: usize, size: usize) -> Vec<Vec<u8>> {
    let c = cluster(db).await;
    let img = StoreOptions::new("image", "image/png");
    c.store(IMG, b"small", &img).await.unwrap();
    let mut all = Vec::new();
    for i in 0..files {
        let data: Vec<u8> = (0..size).map(|n| (n * 13 + i) as u8).collect();
        c.store(&format!("var/site/storage/images/large/{i}.png"), &data, &img)
            .await
            .unwrap();
        all.push(data);
    }
    all
}

/// Sends a GET and reads only the response head and `first` body bytes.
async fn start_download(address: &str, path: &str, first: usize) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = vec![0; first];
    stream.read_exact(&mut raw).await.unwrap();
    (stream, raw)
}

/// Raises this process's descriptor limit to `needed` when the hard limit allows; fails with
/// what to do when it does not.
fn allow_descriptors(needed: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    if limit.rlim_cur >= needed {
        return;
    }
    assert!(
        limit.rlim_max >= needed,
        "this test needs {needed} descriptors but the hard limit is {}: raise it (ulimit -Hn, LimitNOFILE)",
        limit.rlim_max
    );
    limit.rlim_cur = needed;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_paused_readers_of_large_files_never_starve_other_clients() {
    let db = TestDb::create().await;
    let files = store_files(&db, 4, 20_000_000).await;
    let server = start(&db.url, &["--pool-size=2", "--send-timeout=300"]);
    // 64 clients start a large download each and then stop reading: with the body sent at the
    // database's pace they would now hold every pooled connection.
    let mut paused = Vec::new();
    for client in 0..64usize {
        let i = client % files.len();
        let path = format!("/var/site/storage/images/large/{i}.png");
        paused.push((i, start_download(&server.address, &path, 64 << 10).await));
    }
    for _ in 0..20 {
        let small = fetch_async(&server.address, &format!("/{IMG}")).await;
        assert_eq!(small, b"small");
        assert_eq!(get(&server, "/healthz").status, 200);
    }
    // A pause longer than the database's net_write_timeout would allow on a held connection
    // is harmless: the data is local already.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, (mut stream, mut raw)) in paused {
        tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut raw))
            .await
            .expect("bounded in time")
            .unwrap();
        let reply = parse_reply(&raw);
        assert_eq!(reply.status, 200);
        assert!(reply.body == files[i], "file {i}: {} bytes back", reply.body.len());
    }
    let metrics = get(&server, "/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        !text.contains("index_image_requests_total{status=\"503\"}"),
        "no request got 503:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_are_closed_by_the_timeouts_and_the_cap_holds() {
    let db = TestDb::create().await;
    store_large(&db, 0).await;
    // 1,000 sockets (2,000 descriptors in this process) and a cap of 256: most wait in the
    // listen backlog until the timeouts free a place.
    allow_descriptors(2_400);
    let server = start(
        &db.url,
        &["--header-timeout=1", "--idle-timeout=1", "--max-connections=256"],
    );
    // Idle from the start, a half-sent header, and kept alive after a response.
    let mut sockets = Vec::new();
    for n in 0..1_000 {
        let mut s = std::net::TcpStream::connect(&server.address).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        if n % 3 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost:").unwrap();
        }
        if n % 3 == 2 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        }
        sockets.push(s);
    }
    let started = Instant::now();
    for (n, mut s) in sockets.into_iter().enumerate() {
        let mut raw = Vec::new();
        let read = s.read_to_end(&mut raw);
        assert!(read.is_ok(), "socket {n}: {read:?} (not closed within 30 s)");
        if n % 3 == 2 {
            assert!(
                raw.starts_with(b"HTTP/1.1 200"),
                "socket {n} was answered, then closed when idle"
            );
        }
    }
    assert!(started.elapsed() < Duration::from_secs(90));
    assert_eq!(
        get(&server, &format!("/{IMG}")).status,
        200,
        "serving again after the idle ones left"
    );
}

/// Reads one response to `/healthz` ("ok\n") off a kept-alive connection.
fn read_health_reply(s: &mut std::net::TcpStream) {
    let mut raw = Vec::new();
    let mut buffer = [0; 4096];
    while !raw.ends_with(b"\r\n\r\nok\n") {
        let n = s.read(&mut buffer).expect("a response");
        assert!(n > 0, "closed before the response: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buffer[..n]);
    }
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));
}

/// Whether the server closed `s` within `wait` (end of stream or reset), not only went quiet.
fn closed_within(s: &mut std::net::TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_gets_the_idle_timeout_and_a_slow_header_the_header_timeout() {
    let db = TestDb::create().await;
    store_large(&db, 0).await;
    let server = start(&db.url, &["--header-timeout=1", "--idle-timeout=8"]);
    let connect = || {
        let s = std::net::TcpStream::connect(&server.address).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    // Kept alive after a response, then idle: longer than the header timeout is fine.
    let mut idle = connect();
    idle.write_all(request).unwrap();
    read_health_reply(&mut idle);
    let idle_since = Instant::now();
    // After a response, a client that trickles its next header a byte at a time: the header
    // timeout counts from the first byte, not from the last one.
    let mut trickling = connect();
    trickling.write_all(request).unwrap();
    read_health_reply(&mut trickling);
    let mut writer = trickling.try_clone().unwrap();
    let trickle_started = Instant::now();
    let trickle = std::thread::spawn(move || {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: a-long-host-name.example\r\n"
            .iter()
            .cycle()
            .take(200)
        {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // A new connection with half a header gets the header timeout too.
    let mut half = connect();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let half_started = Instant::now();

    assert!(
        closed_within(&mut trickling, Duration::from_secs(30)),
        "the trickling client was cut"
    );
    let trickled = trickle_started.elapsed();
    assert!(
        closed_within(&mut half, Duration::from_secs(30)),
        "the half header was cut"
    );
    let halved = half_started.elapsed();
    // Well before the idle timeout (8 s) would have ended them.
    assert!(
        trickled < Duration::from_secs(6),
        "trickling client cut after {trickled:?}"
    );
    assert!(halved < Duration::from_secs(6), "half header cut after {halved:?}");
    trickle.join().unwrap();

    let remaining = Duration::from_secs(3).saturating_sub(idle_since.elapsed());
    assert!(
        !closed_within(&mut idle, remaining.max(Duration::from_millis(100))),
        "the idle connection is open 3 s after its response (header timeout 1 s, idle 8 s)"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(30)),
        "the idle connection was closed by the idle timeout"
    );
    let waited = idle_since.elapsed();
    assert!(
        waited < Duration::from_secs(30),
        "idle connection closed after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queue_for_a_busy_pool_until_the_pool_wait_timeout_and_the_waits_are_counted() {
    let db = TestDb::create().await;
    let files = store_files(&db, 2, 1 << 20).await;
    let (host_port, _) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    let server = start(
        &proxy.url(&db),
        &[
            "--pool-size=1",
            "--pool-wait-timeout=3",
            "--database-timeout=20",
            "--cache-bytes=0",
        ],
    );
    let before = metrics_page(&server);
    // 32 requests at once on one connection: they wait their turn (the last ones longer than
    // the 1 s connect timeout, which used to bound this wait too), none gets 503.
    let address = server.address.clone();
    let clients: Vec<_> = (0..32)
        .map(|n| {
            let address = address.clone();
            tokio::spawn(async move {
                fetch_async(&address, &format!("/var/site/storage/images/large/{}.png", n % 2)).await
            })
        })
        .collect();
    for (n, client) in clients.into_iter().enumerate() {
        assert!(client.await.unwrap() == files[n % 2], "client {n} got its file");
    }
    let queued = metrics_page(&server);
    let grew = |series: &str| sample(&queued, series) - sample(&before, series);
    assert!(
        grew("index_image_pool_wait_seconds_count") >= 32.0,
        "every read waited for the pool:\n{queued}"
    );
    assert!(grew("index_image_pool_wait_seconds_sum") > 0.0, "{queued}");
    assert!(grew("index_image_pool_wait_seconds_bucket{le=\"+Inf\"}") >= 32.0);
    assert_eq!(grew("index_image_pool_wait_timeouts_total"), 0.0);

    // The one connection is busy with a long read that then hangs (held by the request, the
    // database otherwise fine): the next request waits for the pool-wait timeout (3 s, twice:
    // the core retries once), before the database deadline (20 s), and is counted.
    let c = cluster(&db).await;
    let long = bytes(16 << 20);
    c.store(
        "var/site/storage/images/long.png",
        &long,
        &StoreOptions::new("image", "image/png"),
    )
    .await
    .unwrap();
    let read_before = proxy.bytes_from_database();
    let long_address = address.clone();
    let reading =
        std::thread::spawn(move || request_at(&long_address, "GET", "/var/site/storage/images/long.png", &[]).status);
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.bytes_from_database() < read_before + (1 << 20) {
        assert!(Instant::now() < deadline, "the long read never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    proxy.set(Link::Hung).await;
    let started = Instant::now();
    let waited = get(&server, &format!("/{IMG}"));
    let took = started.elapsed();
    assert_eq!(waited.status, 503, "no connection free");
    assert!(
        took < Duration::from_secs(7),
        "ended by the pool-wait timeout, not the deadline: {took:?}"
    );
    let timed_out = metrics_page(&server);
    assert!(
        sample(&timed_out, "index_image_pool_wait_timeouts_total") >= 1.0,
        "{timed_out}"
    );
    proxy.set(Link::Up).await;
    assert!([200, 503].contains(&reading.join().unwrap()));
    assert_eq!(eventually_ok(&server, &format!("/{IMG}")).await, b"small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_by_the_send_timeout() {
    let db = TestDb::create().await;
    store_large(&db, 1).await;
    let server = start(&db.url, &["--send-timeout=1"]);
    let (mut stream, mut raw) = start_download(&server.address, "/var/site/storage/images/large/0.png", 1024).await;
    // Stop reading long enough for the socket buffers to fill and the timeout to pass.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the server closed the connection");
    let received = raw.len();
    assert!(
        read.is_err() || received < LARGE,
        "a stalled client was cut short ({received} bytes), not served forever"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_gives_503_within_the_deadline() {
    let db = TestDb::create().await;
    store_large(&db, 0).await;
    let (host_port, _) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    let server = start(&proxy.url(&db), &["--database-timeout=1", "--cache-bytes=0"]);
    assert_eq!(get(&server, &format!("/{IMG}")).status, 200);
    proxy.set(Link::Hung).await;
    let started = Instant::now();
    let hung = get(&server, &format!("/{IMG}"));
    assert_eq!(hung.status, 503);
    assert_eq!(get(&server, "/healthz").status, 503);
    assert!(started.elapsed() < Duration::from_secs(20), "bounded by the deadline");
    proxy.set(Link::Up).await;
    assert_eq!(eventually_ok(&server, &format!("/{IMG}")).await, b"small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_download_and_ends_by_its_deadline_despite_a_half_sent_request() {
    let db = TestDb::create().await;
    let files = store_large(&db, 1).await;
    let server = start(&db.url, &["--shutdown-timeout=2", "--header-timeout=60"]);
    let address = server.address.clone();
    let (mut download, mut raw) = start_download(&address, "/var/site/storage/images/large/0.png", 1024).await;
    let mut half = std::net::TcpStream::connect(&address).unwrap();
    half.write_all(b"GET /var/site/storage/images/x.png HTTP/1.1\r\nHo")
        .unwrap();
    let stopping = std::thread::spawn(move || server.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(30), download.read_to_end(&mut raw))
        .await
        .expect("bounded in time")
        .unwrap();
    assert!(parse_reply(&raw).body == files[0], "the response in flight finished");
    let (took, result) = stopping.join().unwrap();
    result.unwrap();
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}, deadline 2 s");
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_during_too_many_connections_retries_instead_of_exiting() {
    let db = TestDb::create().await;
    store_large(&db, 0).await;
    let (host_port, database) = split_url(&db.url);
    let refusing = TooManyConnections::start(&host_port, 3).await;
    let server = start(&format!("mysql://root@{}/{database}", refusing.address), &[]);
    assert_eq!(get(&server, "/healthz").status, 503, "started, answering 503 meanwhile");
    assert_eq!(eventually_ok(&server, &format!("/{IMG}")).await, b"small");
    let refused = try_start(config("mysql://nobody:wrong@127.0.0.1:3306/none", &[]));
    assert!(refused.is_err(), "a wrong password stops the start");
}

/// A database front that answers its first `refusals` connections as a MariaDB with
/// max_connections reached does (error 1040 in place of the greeting), then forwards.
struct TooManyConnections {
    address: String,
}

impl TooManyConnections {
    async fn start(target: &str, refusals: usize) -> TooManyConnections {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let target = target.to_owned();
        tokio::spawn(async move {
            let mut refused = 0;
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if refused < refusals {
                    refused += 1;
                    let message = b"Too many connections";
                    let mut payload = vec![0xff, 0x10, 0x04];
                    payload.extend_from_slice(message);
                    let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
                    packet.push(0);
                    packet.extend_from_slice(&payload);
                    let _ = client.write_all(&packet).await;
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        TooManyConnections { address }
    }
}
