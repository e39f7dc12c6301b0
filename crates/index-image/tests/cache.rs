//! The cache tiers against a real database: single-flight loading, rewrites seen within the
//! revalidation interval (a same-second same-size rewrite included), the disk tier across a
//! restart and within its size, tier files read back from the disk once the page cache let them
//! go, and the background revalidation of copies in use.

mod common;

use common::*;
use ezdb_core::StoreOptions;
use ezdb_testdb::TestDb;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_simultaneous_misses_read_the_database_once() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let data = bytes(1 << 20);
    c.store(IMG, &data, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let (host_port, _) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    let server = start(&proxy.url(&db), &["--pool-size=8", "--cache-revalidate=60"]);
    assert_eq!(get(&server, "/healthz").status, 200);
    let before = proxy.bytes_from_database();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(40));
    let mut clients = Vec::new();
    for _ in 0..40 {
        let (address, start) = (server.address.clone(), start.clone());
        clients.push(tokio::spawn(async move {
            start.wait().await;
            fetch_async(&address, &format!("/{IMG}")).await
        }));
    }
    for client in clients {
        let body = tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .expect("bounded in time")
            .unwrap();
        assert!(body == data);
    }
    let read = proxy.bytes_from_database() - before;
    assert!(
        read < 2 * data.len() as u64,
        "40 requests read {read} bytes from the database for one file of {}",
        data.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_second_same_size_rewrite_is_seen_within_the_revalidation_interval() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    let server = start(&db.url, &["--cache-revalidate=0.5"]);
    let path = format!("/{IMG}");
    for round in 0..5u8 {
        let before = vec![b'a' + round; 1000];
        let after = vec![b'A' + round; 1000];
        let first = c.store(IMG, &before, &img).await.unwrap();
        // Revalidation must see this version before it serves it.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(get(&server, &path).body, before);
        let second = c.store(IMG, &after, &img).await.unwrap();
        assert_ne!(
            (first.mtime, first.size),
            (second.mtime, second.size),
            "an ezdb rewrite never keeps both the mtime and the size"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(get(&server, &path).body, after, "round {round}: served stale");
    }
}

/// Files (not temporaries) in `dir` and their total size.
fn disk_files(dir: &std::path::Path) -> (usize, u64, usize) {
    let (mut files, mut bytes, mut temporaries) = (0, 0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with('.') {
            temporaries += 1;
        } else {
            files += 1;
            bytes += entry.metadata().unwrap().len();
        }
    }
    (files, bytes, temporaries)
}

/// Waits (at most 20 s) until `dir` holds `count` complete files.
async fn wait_for_files(dir: &std::path::Path, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while disk_files(dir).0 < count {
        assert!(
            std::time::Instant::now() < deadline,
            "the disk tier never held {count} files"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_tier_serves_across_a_restart_and_revalidates() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    let files: Vec<(String, Vec<u8>)> = [100_000, 0, 6 << 20]
        .iter()
        .enumerate()
        .map(|(i, len)| (format!("var/site/storage/images/disk/{i}.png"), bytes(*len)))
        .collect();
    for (name, data) in &files {
        c.store(name, data, &img).await.unwrap();
    }
    let dir = temp_dir("disk-tier");
    let disk = format!("--disk-cache-dir={}", dir.display());
    let settings = [disk.as_str(), "--cache-bytes=0", "--cache-revalidate=0.5"];
    let first = start(&db.url, &settings);
    for (name, data) in &files {
        assert!(get(&first, &format!("/{name}")).body == *data);
    }
    wait_for_files(&dir, files.len()).await;
    drop(first);

    let (host_port, _) = split_url(&db.url);
    let proxy = Proxy::start(&host_port).await;
    let second = start(&proxy.url(&db), &settings);
    let before = proxy.bytes_from_database();
    for (name, data) in &files {
        let reply = get(&second, &format!("/{name}"));
        assert_eq!(reply.status, 200);
        assert!(reply.body == *data, "{name} after the restart");
    }
    let (large, data) = &files[2];
    let part = request(
        &second,
        "GET",
        &format!("/{large}"),
        &[("Range", "bytes=5000000-5000099")],
    );
    assert_eq!((part.status, part.body.as_slice()), (206, &data[5_000_000..5_000_100]));
    let read = proxy.bytes_from_database() - before;
    assert!(
        read < 100_000,
        "after a restart the tier answered, the database sent {read} bytes"
    );
    assert_eq!(disk_files(&dir).2, 0, "no temporary file left");

    let (small, _) = &files[0];
    c.store(small, b"rewritten", &img).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(&second, &format!("/{small}")).body, b"rewritten", "revalidated");
    c.delete(large).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        get(&second, &format!("/{large}")).status,
        404,
        "a deleted file leaves the tier"
    );
    drop(second);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_tier_stays_within_its_size() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    for i in 0..12 {
        c.store(&format!("var/site/storage/images/bound/{i}.png"), &bytes(600_000), &img)
            .await
            .unwrap();
    }
    let dir = temp_dir("disk-bound");
    let bound = 3u64 << 20;
    let server = start(
        &db.url,
        &[
            &format!("--disk-cache-dir={}", dir.display()),
            &format!("--disk-cache-bytes={bound}"),
            "--cache-bytes=0",
        ],
    );
    for i in 0..12 {
        assert_eq!(
            get(&server, &format!("/var/site/storage/images/bound/{i}.png")).status,
            200
        );
    }
    wait_for_files(&dir, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (files, total, _) = disk_files(&dir);
    assert!(
        total <= bound,
        "{files} files, {total} bytes on disk for a bound of {bound}"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Drops `path`'s pages from the page cache (written out first), as memory pressure would, and
/// checks that they are gone.
fn evict_from_page_cache(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: plain calls on an open descriptor; the mapping is only inspected, never read.
    let resident = unsafe {
        assert_eq!(
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED),
            0
        );
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        let mut pages = vec![0u8; len.div_ceil(4096)];
        assert_eq!(libc::mincore(map, len, pages.as_mut_ptr()), 0);
        libc::munmap(map, len);
        pages.iter().filter(|p| *p & 1 == 1).count()
    };
    assert_eq!(
        resident,
        0,
        "{} kept {resident} pages in the page cache after POSIX_FADV_DONTNEED: this test needs \
         TMPDIR on a disk filesystem (not tmpfs)",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_tier_files_out_of_the_page_cache_are_read_from_the_disk_whole() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    // One read into memory, one sent from a mapping (256 KiB and more).
    let files: Vec<(String, Vec<u8>)> = [100_000, 3 << 20]
        .iter()
        .enumerate()
        .map(|(i, len)| (format!("var/site/storage/images/paged/{i}.png"), bytes(*len)))
        .collect();
    for (name, data) in &files {
        c.store(name, data, &img).await.unwrap();
    }
    let dir = temp_dir("disk-paged");
    let disk = format!("--disk-cache-dir={}", dir.display());
    let server = start(&db.url, &[disk.as_str(), "--cache-bytes=0", "--cache-revalidate=60"]);
    for (name, data) in &files {
        assert!(get(&server, &format!("/{name}")).body == *data);
    }
    wait_for_files(&dir, files.len()).await;
    let reads = |page: &str, from: &str| sample(page, &format!("index_image_disk_tier_reads_total{{from=\"{from}\"}}"));

    for entry in std::fs::read_dir(&dir).unwrap() {
        evict_from_page_cache(&entry.unwrap().path());
    }
    let before = metrics_page(&server);
    for (name, data) in &files {
        let reply = get(&server, &format!("/{name}"));
        assert_eq!(reply.status, 200);
        assert!(reply.body == *data, "{name} read back from the disk");
    }
    let after = metrics_page(&server);
    assert_eq!(reads(&after, "disk") - reads(&before, "disk"), 2.0, "{after}");

    // Read once, the pages are cached again: served on the serving thread.
    for (name, data) in &files {
        assert!(get(&server, &format!("/{name}")).body == *data);
    }
    let again = metrics_page(&server);
    assert_eq!(
        reads(&again, "page_cache") - reads(&after, "page_cache"),
        2.0,
        "{again}"
    );
    assert_eq!(reads(&again, "disk"), reads(&after, "disk"), "{again}");
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_tier_file_evicted_while_it_is_sent_still_arrives_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let name = "var/site/storage/images/disk/large.png";
    let data = bytes(12 << 20);
    c.store(name, &data, &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    let dir = temp_dir("disk-evicted");
    let disk = format!("--disk-cache-dir={}", dir.display());
    let server = start(&db.url, &[disk.as_str(), "--cache-bytes=0"]);
    assert!(
        get(&server, &format!("/{name}")).body == data,
        "read once: now in the tier"
    );
    wait_for_files(&dir, 1).await;
    // A disk-tier hit (sent from a mapping of the file), paused by its client after 64 KiB...
    let mut stream = tokio::net::TcpStream::connect(&server.address).await.unwrap();
    let request = format!("GET /{name} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = vec![0; 64 << 10];
    stream.read_exact(&mut raw).await.unwrap();
    // ...while its file leaves the tier (an eviction unlinks it), then read to the end.
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("bounded in time")
        .unwrap();
    let reply = parse_reply(&raw);
    assert_eq!(reply.status, 200);
    assert!(reply.body == data, "{} bytes of {}", reply.body.len(), data.len());
    let page = metrics_page(&server);
    assert!(
        sample(&page, "index_image_cache_hits_total{tier=\"disk\"}") >= 1.0,
        "{page}"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Copies in steady use are re-checked in the background, many names per statement, so their
/// requests do not wait on a stat of their own; a rewrite or a delete of one is still seen
/// within the interval, on both tiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_in_use_are_revalidated_in_the_background() {
    let db = TestDb::create().await;
    let c = cluster(&db).await;
    let img = StoreOptions::new("image", "image/png");
    let names: Vec<String> = (0..40)
        .map(|i| format!("var/site/storage/images/steady/{i}.png"))
        .collect();
    for name in &names {
        c.store(name, name.as_bytes(), &img).await.unwrap();
    }
    let dir = temp_dir("background-revalidation");
    let disk = format!("--disk-cache-dir={}", dir.display());
    // Some of the files in memory (the tier holds about 30 of them), the rest from the disk tier.
    let server = start(&db.url, &[disk.as_str(), "--cache-revalidate=1", "--cache-bytes=12000"]);
    let serve_all = |server: &Server| {
        for name in &names {
            assert_eq!(get(server, &format!("/{name}")).body, name.as_bytes());
        }
    };
    serve_all(&server);
    wait_for_files(&dir, names.len()).await;
    let reads = |page: &str| sample(page, "index_image_database_reads_total");
    let passes = |page: &str| sample(page, "index_image_background_revalidation_passes_total");
    let before = metrics_page(&server);
    let mut rounds = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        serve_all(&server);
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = metrics_page(&server);
    let (background, all) = (passes(&after) - passes(&before), reads(&after) - reads(&before));
    assert!(background >= 2.0, "{background} background passes in 4 s");
    // Without the background every copy is re-checked by a request about once a second:
    // about 160 stats in 4 s. Loads of files the memory tier dropped count here too.
    let by_requests = all - background;
    assert!(
        by_requests < 80.0,
        "{by_requests} database reads by {} requests besides {background} background passes",
        rounds * names.len()
    );

    c.store(&names[0], b"rewritten", &img).await.unwrap();
    c.store(&names[39], b"rewritten too", &img).await.unwrap();
    c.delete(&names[20]).await.unwrap();
    let changed = std::time::Instant::now();
    while changed.elapsed() < Duration::from_millis(1300) {
        serve_all_but(&server, &names, &[0, 20, 39]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = metrics_page(&server);
    let changed = ["memory", "disk"]
        .iter()
        .map(|tier| {
            sample(
                &page,
                &format!("index_image_revalidations_changed_total{{tier=\"{tier}\"}}"),
            )
        })
        .sum::<f64>();
    assert!(
        changed >= 3.0,
        "the background dropped {changed} changed copies, not the 3 changed"
    );
    assert_eq!(get(&server, &format!("/{}", names[0])).body, b"rewritten");
    assert_eq!(get(&server, &format!("/{}", names[39])).body, b"rewritten too");
    assert_eq!(get(&server, &format!("/{}", names[20])).status, 404, "deleted");
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn serve_all_but(server: &Server, names: &[String], except: &[usize]) {
    for (i, name) in names.iter().enumerate().filter(|(i, _)| !except.contains(i)) {
        assert_eq!(get(server, &format!("/{name}")).body, name.as_bytes(), "{i}");
    }
}
