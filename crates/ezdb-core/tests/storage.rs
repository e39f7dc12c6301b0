// Storing and fetching against a real MariaDB: byte-exact round trips, the legacy chunk layout
// both ways, binary safety, large files, ranges, streams, local files and bad input.

mod common;
use common::*;
use ezdb_core::{ByteRange, Error, StoreOptions, Visibility, MAX_CHUNK_SIZE};

const C: usize = MAX_CHUNK_SIZE;

#[tokio::test]
async fn stored_row_has_the_legacy_layout() {
    let (db, cluster) = cluster().await;
    let name = "var/site/storage/images/a/b/x.jpg";
    let data = bytes(3 * C + 17, 1);
    cluster
        .store(name, &data, &StoreOptions::new("image", "image/jpeg"))
        .await
        .unwrap();
    let (mtime, expired, scope, datatype, size, trunk) = row(&db, name).await.expect("row found by SQL MD5(name)");
    assert!(mtime > 0);
    assert_eq!(
        (expired, scope.as_str(), datatype.as_str(), size, trunk.as_str()),
        (0, "image", "image/jpeg", data.len() as u64, name)
    );
    let c = C as u64;
    assert_eq!(chunks(&db, name).await, vec![(0, C), (c, C), (2 * c, C), (3 * c, 17)]);
    assert_eq!(cluster.fetch(name).await.unwrap(), data);
}

#[tokio::test]
async fn rows_written_like_legacy_php_are_read_byte_exact() {
    let (db, cluster) = cluster().await;
    // Legacy layout with a 1000-byte chunk setting, plus the empty trailing chunk a local file
    // whose size is a multiple of the chunk size gets.
    let data = bytes(3000, 2);
    let name = "var/site/storage/original/application/doc.pdf";
    let mut conn = raw(&db).await;
    sqlx::query("INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired) VALUES ('application/pdf', ?, ?, MD5(?), 'binaryfile', 3000, 1300000000, 0)")
        .bind(name).bind(name).bind(name).execute(&mut conn).await.unwrap();
    for (i, part) in data.chunks(1000).enumerate() {
        sqlx::query("INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) VALUES (MD5(?), ?, ?)")
            .bind(name)
            .bind(i as u32 * 1000)
            .bind(part)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) VALUES (MD5(?), 3000, '')")
        .bind(name)
        .execute(&mut conn)
        .await
        .unwrap();
    let file = cluster.fetch_with_meta(name, Visibility::Live).await.unwrap();
    assert_eq!(file.bytes, data);
    assert_eq!(
        (file.meta.mtime, file.meta.scope.as_str(), file.meta.datatype.as_str()),
        (1300000000, "binaryfile", "application/pdf")
    );
    assert!(cluster.exists(name).await.unwrap());
    // Legacy empty-string store wrote no chunk at all: still readable as empty.
    sqlx::query("INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired) VALUES ('misc', 'e', 'e', MD5('e'), 'x', 0, 1300000000, 0)")
        .execute(&mut conn).await.unwrap();
    assert_eq!(cluster.fetch("e").await.unwrap(), b"");
}

#[tokio::test]
async fn all_byte_values_nul_bytes_and_empty_files_round_trip() {
    let (db, cluster) = cluster().await;
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 300).collect();
    cluster.store("bin/all", &all, &StoreOptions::default()).await.unwrap();
    assert_eq!(cluster.fetch("bin/all").await.unwrap(), all);
    let nul = b"\0\0a\0'\"\\%_\0".to_vec();
    cluster.store("bin/nul", &nul, &StoreOptions::default()).await.unwrap();
    assert_eq!(cluster.fetch("bin/nul").await.unwrap(), nul);
    cluster.store("bin/empty", b"", &StoreOptions::default()).await.unwrap();
    assert_eq!(cluster.fetch("bin/empty").await.unwrap(), b"");
    assert_eq!(
        chunks(&db, "bin/empty").await,
        vec![(0, 0)],
        "one empty chunk, readable by legacy nodes"
    );
    let (_, _, scope, datatype, ..) = row(&db, "bin/empty").await.unwrap();
    assert_eq!((scope.as_str(), datatype.as_str()), ("UNKNOWN_SCOPE", "misc"));
}

#[tokio::test]
async fn twenty_and_sixty_four_mib_files_round_trip() {
    let (_db, cluster) = cluster().await;
    for (name, mib) in [("big/20", 20), ("big/64", 64)] {
        let data = bytes(mib << 20, mib as u64);
        cluster.store(name, &data, &StoreOptions::default()).await.unwrap();
        let back = cluster.fetch(name).await.unwrap();
        assert!(back == data, "{name}: {} bytes back, content differs", back.len());
    }
}

#[tokio::test]
async fn overwriting_with_shorter_content_leaves_no_stale_chunk() {
    let (db, cluster) = cluster().await;
    // Legacy off-by-one: 2C+5 bytes overwritten by exactly C bytes kept the chunk at offset C.
    cluster
        .store("f", &bytes(2 * C + 5, 3), &StoreOptions::default())
        .await
        .unwrap();
    let short = bytes(C, 4);
    cluster.store("f", &short, &StoreOptions::default()).await.unwrap();
    assert_eq!(cluster.fetch("f").await.unwrap(), short);
    assert_eq!(chunks(&db, "f").await, vec![(0, C)]);
    // Written with another chunk size, then overwritten: nothing off the new grid remains.
    let (db2, small) = cluster_with(|c| c.with_chunk_size(1000)).await;
    small
        .store("g", &bytes(5500, 5), &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(chunks(&db2, "g").await.len(), 6);
    let big = ezdb_core::Cluster::connect(ezdb_core::ClusterConfig::new(&db2.url))
        .await
        .unwrap();
    big.store("g", &bytes(2 * C, 6), &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(chunks(&db2, "g").await, vec![(0, C), (C as u64, C)]);
    assert_eq!(big.fetch("g").await.unwrap(), bytes(2 * C, 6));
}

#[tokio::test]
async fn a_missing_chunk_is_an_integrity_error_not_short_data() {
    let (db, cluster) = cluster().await;
    cluster
        .store("gap", &bytes(3 * C, 7), &StoreOptions::default())
        .await
        .unwrap();
    exec(
        &db,
        &format!("DELETE FROM ezdbfile_data WHERE name_hash = MD5('gap') AND `offset` = {C}"),
    )
    .await;
    let err = cluster.fetch("gap").await.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(err.to_string().contains("gap"), "{err}");
    let dir = tempdir();
    let local = dir.join("gap.bin");
    std::fs::write(&local, b"previous good copy").unwrap();
    assert!(cluster.fetch_to_file("gap", &local, Visibility::Live).await.is_err());
    assert_eq!(
        std::fs::read(&local).unwrap(),
        b"previous good copy",
        "the local copy stays intact"
    );
    assert_eq!(
        std::fs::read_dir(&*dir).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

#[tokio::test]
async fn ranges_are_exact_across_chunk_boundaries() {
    let (_db, cluster) = cluster().await;
    let data = bytes(3 * C + 100, 8);
    cluster.store("r", &data, &StoreOptions::default()).await.unwrap();
    let c = C as u64;
    for (start, end) in [
        (0, 99),
        (c - 10, c + 10),
        (5, 5),
        (c, 2 * c - 1),
        (3 * c + 50, 3 * c + 99),
        (10, 10 * c),
    ] {
        let got = cluster.fetch_range("r", ByteRange { start, end }).await.unwrap();
        let end = end.min(data.len() as u64 - 1);
        assert_eq!(got.bytes, &data[start as usize..=end as usize], "range {start}-{end}");
    }
    let beyond = cluster
        .fetch_range(
            "r",
            ByteRange {
                start: data.len() as u64,
                end: data.len() as u64 + 5,
            },
        )
        .await;
    assert!(matches!(beyond, Err(Error::InvalidArgument { .. })));
}

#[tokio::test]
async fn streams_and_local_files_deliver_the_same_bytes() {
    let (_db, cluster) = cluster().await;
    let data = bytes(5 * C + 3, 9);
    let dir = tempdir();
    let source = dir.join("source.bin");
    std::fs::write(&source, &data).unwrap();
    cluster
        .store_file(
            "s",
            &source,
            &StoreOptions::new("binaryfile", "application/octet-stream"),
        )
        .await
        .unwrap();
    let mut stream = cluster.open_stream("s", Visibility::Live, None).await.unwrap();
    assert_eq!(stream.meta.size, data.len() as u64);
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(streamed, data);
    let target = dir.join("deep/er/target.bin");
    cluster.fetch_to_file("s", &target, Visibility::Live).await.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), data);
    cluster
        .store_reader("from-reader", &data[..], &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(cluster.fetch("from-reader").await.unwrap(), data);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_stores_nothing() {
    let (db, cluster) = cluster().await;
    for bad in ["", "///", "a\0b"] {
        let err = cluster.store(bad, b"x", &StoreOptions::default()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
    }
    let err = cluster
        .store(&"n".repeat(5000), b"x", &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("4096"), "{err}");
    let long_scope = StoreOptions::new("a-scope-of-more-than-20", "misc");
    let err = cluster.store("x", b"x", &long_scope).await.unwrap_err();
    assert!(err.to_string().contains("20 characters"), "{err}");
    let missing = std::path::Path::new("/nonexistent/dir/file.bin");
    let err = cluster
        .store_file("y", missing, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("/nonexistent/dir/file.bin"),
        "{err}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ezdbfile").await, 0);
    let err = cluster.fetch("never/stored").await.unwrap_err();
    assert!(err.is_not_found() && err.to_string().contains("never/stored"), "{err}");
}

#[tokio::test]
async fn a_failed_streamed_write_keeps_the_old_version() {
    let (db, cluster) = cluster().await;
    let old = bytes(2 * C, 10);
    cluster.store("keep", &old, &StoreOptions::default()).await.unwrap();
    let failing = FailingReader { left: 3 * C };
    let err = cluster
        .store_reader("keep", failing, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Source { .. }), "{err}");
    assert_eq!(cluster.fetch("keep").await.unwrap(), old);
    assert_eq!(chunks(&db, "keep").await.len(), 2);
}

#[tokio::test]
async fn names_are_cleaned_and_special_characters_are_safe() {
    let (db, cluster) = cluster().await;
    let name = "var/site/storage/it's \"quoted\" 100% a_b ünïcødé.txt";
    cluster
        .store(
            "var\\site//storage/it's \"quoted\" 100% a_b ünïcødé.txt",
            b"q",
            &StoreOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        row(&db, name).await.is_some(),
        "stored under the cleaned name, hash = SQL MD5"
    );
    assert_eq!(cluster.fetch(name).await.unwrap(), b"q");
    let long = format!("var/{}", "x".repeat(1000));
    cluster.store(&long, b"long", &StoreOptions::default()).await.unwrap();
    assert!(cluster.exists(&long).await.unwrap());
    assert!(cluster.delete(name).await.unwrap());
    assert!(!cluster.exists(name).await.unwrap());
}

#[tokio::test]
async fn dedicated_connection_mode_works_and_reconnects() {
    let (db, _pool) = cluster().await;
    let cluster = ezdb_core::Cluster::connect(ezdb_core::ClusterConfig::new(&db.url).dedicated())
        .await
        .unwrap();
    cluster.store("d", b"one", &StoreOptions::default()).await.unwrap();
    // Kill our own server-side session: the next call must reconnect by itself.
    let mut conn = raw(&db).await;
    let ids: Vec<(i64,)> =
        sqlx::query_as("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (id,) in ids {
        let _ = sqlx::query(&format!("KILL {id}")).execute(&mut conn).await;
    }
    assert_eq!(cluster.fetch("d").await.unwrap(), b"one");
}

struct FailingReader {
    left: usize,
}

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("disk unplugged")));
        }
        let n = buf.remaining().min(self.left).min(4096);
        buf.put_slice(&vec![7u8; n]);
        self.left -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

fn tempdir() -> ezdb_testdb::TempDir {
    ezdb_testdb::TempDir::new("test")
}

#[tokio::test]
async fn a_rewrite_never_keeps_both_mtime_and_size() {
    let (db, cluster) = cluster().await;
    let name = "var/site/storage/images/rewritten.png";
    let options = StoreOptions::new("image", "image/png");
    let mut previous = cluster.store(name, b"0000", &options).await.unwrap();
    for round in 1..4u8 {
        let meta = cluster.store(name, &[b'0' + round; 4], &options).await.unwrap();
        assert!(
            meta.mtime > previous.mtime,
            "round {round}: {} after {}",
            meta.mtime,
            previous.mtime
        );
        let (mtime, ..) = row(&db, name).await.unwrap();
        assert_eq!(i64::from(mtime), meta.mtime, "the returned mtime is the stored one");
        previous = meta;
    }
    cluster.delete(name).await.unwrap();
    let revived = cluster.store(name, b"9999", &options).await.unwrap();
    assert!(revived.mtime > previous.mtime, "a rewrite of a deleted row too");
    let chosen = StoreOptions {
        mtime: Some(1000),
        ..options
    };
    assert_eq!(
        cluster.store(name, b"x", &chosen).await.unwrap().mtime,
        1000,
        "a chosen mtime is kept"
    );
}

/// A stream dropped before its end, read in place (small) or by a task of its own (large),
/// never hands a connection with unread rows to the next read: on a pool of one connection,
/// every read after it gets its own file whole.
#[tokio::test]
async fn a_stream_dropped_before_its_end_leaves_the_pool_sound() {
    let (_db, cluster) = cluster_with(|c| c.with_pool(1)).await;
    let small = bytes(4 * C + 1, 21);
    let large = bytes(40 * C + 7, 22);
    for (name, data) in [("small", &small), ("large", &large)] {
        cluster.store(name, data, &StoreOptions::default()).await.unwrap();
    }
    for round in 0..3 {
        for (name, data) in [("small", &small), ("large", &large)] {
            let mut stream = cluster.open_stream(name, Visibility::Live, None).await.unwrap();
            let first = stream.next_chunk().await.unwrap().unwrap();
            assert_eq!(first[..], data[..first.len()], "round {round}: {name}");
            drop(stream);
            for (other, expected) in [("large", &large), ("small", &small)] {
                let read = tokio::time::timeout(std::time::Duration::from_secs(30), cluster.fetch(other))
                    .await
                    .expect("the pool's one connection came back")
                    .unwrap();
                assert!(
                    read == *expected,
                    "round {round}: {other} after a dropped stream of {name}"
                );
            }
        }
    }
}
