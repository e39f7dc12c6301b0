//! index_image in-process on an ephemeral port against a real MariaDB, checked byte for byte:
//! statuses, headers, conditionals, ranges, hostile paths, large files, database outages.

mod common;

use common::*;
use ezdb_core::{StoreOptions, MAX_CHUNK_SIZE};
use ezdb_testdb::TestDb;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

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
    let (host_port, _) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    let server = start(&proxy.url(&db), &["--cache-bytes=0"]);
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
    let (host_port, _) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    proxy.set_up(false).await;
    let server = start(&proxy.url(&db), &[]);
    assert_eq!(get(&server, "/healthz").status, 503);
    assert_eq!(get(&server, &format!("/{IMG}")).status, 503);
    proxy.set_up(true).await;
    assert_eq!(eventually_ok(&server, &format!("/{IMG}")).await, b"later");
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
    // A memory budget of two files: the rest go through the spool under this load.
    let server = start(&db.url, &["--pool-size=8", "--cache-bytes=0", "--memory-bytes=100000"]);
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

#[test]
fn settings_come_from_a_config_file_through_the_flag_parser_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("index_image-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("index_image.conf");
    std::fs::write(
        &file,
        "# test\nINDEX_IMAGE_SERVED_BY = from-file\nINDEX_IMAGE_MAX_AGE = 42\nINDEX_IMAGE_PREFIXES = \"a/,b/\"\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let parsed = index_image::Config::parse_from([
        "index_image",
        "--database-url=mysql://u@h/d",
        "--config",
        config,
        "--max-age=7",
    ])
    .unwrap();
    assert_eq!(parsed.served_by.as_deref(), Some("from-file"));
    assert_eq!(parsed.max_age, 7, "the flag wins over the file");
    assert_eq!(parsed.prefixes, ["a/", "b/"]);
    let overridden = index_image::Config::parse_from([
        "index_image",
        "--database-url=mysql://u@h/d",
        &format!("--config={config}"),
        "--prefix=c/",
    ])
    .unwrap();
    assert_eq!(overridden.prefixes, ["c/"], "a list flag replaces the file's list");
    std::fs::write(&file, "NOT_A_SETTING = 1\n").unwrap();
    let bad = index_image::Config::parse_from(["index_image", "--config", config]).unwrap_err();
    assert!(bad.to_string().contains("unknown setting NOT_A_SETTING"), "{bad}");
    let zero = index_image::Config::parse_from(["index_image", "--database-url=mysql://u@h/d", "--send-timeout=0"]);
    assert!(zero.unwrap_err().to_string().contains("--send-timeout must be"));
    std::fs::write(&file, "just words\n").unwrap();
    let bad = index_image::Config::parse_from(["index_image", "--config", config]).unwrap_err();
    assert!(bad.to_string().contains(":1: expected KEY = value"), "{bad}");
    std::fs::remove_dir_all(&dir).unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/index_image.conf");
    let shipped = index_image::Config::parse_from(["index_image", "--database-url=mysql://u@h/d", "--config", shipped])
        .unwrap_or_else(|e| panic!("deploy/index_image.conf: {e}"));
    assert!(shipped.shutdown_timeout < 30.0, "below the unit's TimeoutStopSec");
}

/// The binary: settings from its config file, SIGTERM stops it cleanly.
#[tokio::test]
async fn the_binary_serves_from_its_config_file_and_stops_on_sigterm() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    c.store(IMG, b"x", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("index_image-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("index_image.conf");
    std::fs::write(
        &file,
        format!(
            "INDEX_IMAGE_SERVED_BY = from-file\nINDEX_IMAGE_LISTEN = 127.0.0.1:0\nINDEX_IMAGE_SPOOL_DIR = {}\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_index_image"))
        .args([
            "--config",
            file.to_str().unwrap(),
            &format!("--database-url={}", db.url),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().rsplit("http://").next().unwrap().to_owned();
    let reply = request_at(&address, "GET", &format!("/{IMG}"), &[]);
    assert_eq!((reply.status, reply.header("served-by")), (200, Some("from-file")));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let bad = Command::new(env!("CARGO_BIN_EXE_index_image"))
        .args(["--database-url=mysql://u@h/d", "--prefix"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "a bad flag is a usage error");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A request (method, headers) and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_9110_preconditions_head_and_active_content_from_memory_and_from_the_database() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let data = bytes(3 * MAX_CHUNK_SIZE + 10);
    let meta = c
        .store(IMG, &data, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    c.store(
        "var/site/storage/images/x.svg",
        b"<svg><script>alert(1)</script></svg>",
        &StoreOptions::new("image", "image/svg+xml"),
    )
    .await
    .unwrap();
    c.store(
        "var/site/storage/images/x.html",
        b"<script>alert(1)</script>",
        &StoreOptions::new("image", "text/html; charset=utf-8"),
    )
    .await
    .unwrap();
    let etag = format!("\"{}-{}\"", meta.mtime, meta.size);
    let size = data.len().to_string();
    let old = "Sun, 06 Nov 1994 08:49:37 GMT";
    let past_the_end = format!("bytes={}-", data.len());
    for settings in [&[][..], &["--cache-bytes=0"][..]] {
        let server = start(&db.url, settings);
        let path = format!("/{IMG}");
        let last_modified = get(&server, &path).header("last-modified").unwrap().to_owned();
        let ask = |method: &str, headers: &[(&str, &str)]| request(&server, method, &path, headers);
        let cases: Vec<Case> = vec![
            ("GET", vec![("If-Match", "\"other\"")], 412),
            ("GET", vec![("If-Match", &etag)], 200),
            ("GET", vec![("If-Match", "*")], 200),
            ("GET", vec![("If-Unmodified-Since", old)], 412),
            ("GET", vec![("If-Unmodified-Since", &last_modified)], 200),
            ("GET", vec![("If-Match", "\"other\""), ("If-None-Match", &etag)], 412),
            ("GET", vec![("If-None-Match", "\"a\""), ("If-None-Match", &etag)], 304),
            ("HEAD", vec![("If-None-Match", &etag)], 304),
            ("HEAD", vec![("Range", "bytes=0-9")], 200),
            ("HEAD", vec![("Range", &past_the_end)], 200),
            ("GET", vec![("Range", "Bytes=0-9")], 206),
            ("GET", vec![("Range", "bytes=0-9"), ("If-Range", &etag)], 206),
            ("GET", vec![("Range", "bytes=0-9"), ("If-Range", &last_modified)], 206),
            ("GET", vec![("Range", "bytes=0-9"), ("If-Range", "\"other\"")], 200),
            ("GET", vec![("Range", "bytes=0-9"), ("If-Range", old)], 200),
        ];
        for (method, headers, status) in cases {
            let reply = ask(method, &headers);
            assert_eq!(reply.status, status, "{settings:?} {method} {headers:?}");
            match status {
                304 | 200 if method == "HEAD" || status == 304 => {
                    assert!(reply.body.is_empty());
                    // A 304 may leave Content-Length out (hyper does for GET); if sent, it is the 200's.
                    let length = reply.header("content-length");
                    let expected = (status == 304 && length.is_none()) || length == Some(size.as_str());
                    assert!(expected, "{method} {headers:?}: Content-Length {length:?}");
                    assert_eq!(reply.header("etag"), Some(etag.as_str()));
                    assert_eq!(reply.header("content-type"), Some("image/png"));
                    assert!(reply.header("cache-control").is_some() && reply.header("last-modified").is_some());
                }
                200 => assert!(reply.body == data),
                206 => assert_eq!(reply.body, &data[..10]),
                _ => {}
            }
        }
        let head = ask("HEAD", &[]);
        let whole = get(&server, &path);
        for name in [
            "content-type",
            "content-length",
            "etag",
            "last-modified",
            "cache-control",
            "accept-ranges",
        ] {
            assert_eq!(head.header(name), whole.header(name), "HEAD and GET agree on {name}");
        }
        assert_eq!(request(&server, "POST", "/healthz", &[]).status, 405);
        assert_eq!(request(&server, "HEAD", "/healthz", &[]).status, 200);
        let svg = get(&server, "/var/site/storage/images/x.svg");
        assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
        assert!(svg
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("sandbox")));
        assert_eq!(svg.header("x-content-type-options"), Some("nosniff"));
        let html = get(&server, "/var/site/storage/images/x.html");
        assert_eq!(html.header("content-disposition"), Some("attachment"));
        assert!(html
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("sandbox")));
        for malformed in [
            "/var/site/storage/images/100%.jpg",
            "//var/site/storage/images/a/1-1-eng-GB/logo.png",
            "/var/site/storage/images/a//1-1-eng-GB/logo.png",
        ] {
            assert_eq!(get(&server, malformed).status, 400, "{malformed}");
        }
    }
}

#[tokio::test]
async fn metrics_move_as_requests_are_made() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    c.store(IMG, &bytes(1000), &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let dir = temp_dir("metrics-disk");
    let server = start(&db.url, &[&format!("--disk-cache-dir={}", dir.display())]);
    let page = |server: &Server| {
        let reply = get(server, "/metrics");
        assert_eq!(reply.status, 200);
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        String::from_utf8(reply.body).unwrap()
    };
    let before = page(&server);
    for _ in 0..3 {
        assert_eq!(get(&server, &format!("/{IMG}")).status, 200);
    }
    assert_eq!(get(&server, "/var/site/storage/images/missing.png").status, 404);
    let after = page(&server);
    let grew = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        grew("index_image_requests_total{status=\"200\"}"),
        4.0,
        "3 files and the first /metrics"
    );
    assert_eq!(grew("index_image_requests_total{status=\"404\"}"), 1.0);
    assert_eq!(grew("index_image_content_bytes_total"), 3000.0, "the files' bytes");
    assert_eq!(grew("index_image_cache_hits_total{tier=\"memory\"}"), 2.0);
    assert_eq!(
        grew("index_image_cache_misses_total{tier=\"memory\"}"),
        2.0,
        "the file's first read and the missing one"
    );
    assert_eq!(grew("index_image_cache_misses_total{tier=\"disk\"}"), 2.0);
    assert!(grew("index_image_database_reads_total") >= 2.0);
    assert!(grew("index_image_database_seconds_total") > 0.0);
    assert!(
        sample(&after, "index_image_connections") >= 1.0,
        "this request's own connection"
    );
    assert!(after.contains("# TYPE index_image_requests_total counter"));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
