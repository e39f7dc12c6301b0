//! Memory bounds, alone in their own test process so that the peak RSS measured is the
//! server's (and this client's), not other tests'.

mod common;

use common::*;
use ezdb_core::StoreOptions;
use ezdb_testdb::TestDb;
use std::io::{Read, Write};
use std::time::Duration;

#[tokio::test]
async fn a_64_mib_file_is_sent_in_bounded_memory() {
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
    let before = peak_rss_kib();
    let mut stream = std::net::TcpStream::connect(&server.address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream
        .write_all(b"GET /var/site/storage/images/huge.png HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Read and check as it comes, never holding the body here.
    let (mut head, mut body_len, mut buffer) = (Vec::new(), 0usize, vec![0u8; 64 << 10]);
    loop {
        let n = stream.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        let mut data = &buffer[..n];
        if !head.ends_with(b"\r\n\r\n") {
            let end = (0..n).find(|&i| {
                head.push(data[i]);
                head.ends_with(b"\r\n\r\n")
            });
            let Some(end) = end else { continue };
            data = &data[end + 1..];
        }
        assert!(data.iter().all(|b| *b == 0x5a));
        body_len += data.len();
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    assert_eq!(body_len, 64 << 20);
    let growth = peak_rss_kib() - before;
    assert!(growth < 16 * 1024, "serving 64 MiB grew the peak RSS by {growth} KiB");
}

fn peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}
