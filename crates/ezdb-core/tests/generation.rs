// The cache-generation lock and process_cache on a real MariaDB: legacy-compatible lock rows,
// ownership checks, takeover, stale serving, waiting, clears during generation.

mod common;
use common::*;
use ezdb_core::{CachePolicy, CacheSource, Error, Freshness, Generation, GenerationLock, StoreOptions, Visibility};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const P: &str = "var/site/cache/content/site/2-abc.cache";

fn view() -> StoreOptions {
    StoreOptions::new("viewcache", "php")
}

fn acquired(g: Generation) -> GenerationLock {
    match g {
        Generation::Acquired(lock) => lock,
        busy => panic!("expected the lock, got {busy:?}"),
    }
}

#[tokio::test]
async fn lock_row_is_legacy_compatible_and_excludes_others() {
    let (db, cluster) = cluster().await;
    let lock = acquired(cluster.start_generation(P, None).await.unwrap());
    assert_eq!(lock.lock_name(), format!("{P}.generating"));
    let (mtime, expired, scope, datatype, size, trunk) = row(&db, &format!("{P}.generating")).await.unwrap();
    assert_eq!((expired, scope.as_str(), datatype.as_str(), size), (0, "", "", 0));
    assert!(mtime > 0);
    assert_eq!(
        trunk, "var/site/cache/content/site/2-",
        "shares the view-cache trunk, so node clears reach it"
    );
    let other = other_node(&db).await;
    match other.start_generation(P, None).await.unwrap() {
        Generation::Busy { remaining_secs } => assert!((58..=60).contains(&remaining_secs), "{remaining_secs}"),
        g => panic!("second caller got {g:?}"),
    }
    let err = cluster
        .start_generation(&format!("{P}.generating"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidName { .. }),
        "never P.generating.generating"
    );
    // A legacy node's lock (plain INSERT with its own clock) excludes us as well.
    exec(&db, "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES ('legacy.generating', 'legacy.generating', MD5('legacy.generating'), '', '', UNIX_TIMESTAMP(), 0)").await;
    assert!(matches!(
        cluster.start_generation("legacy", None).await.unwrap(),
        Generation::Busy { .. }
    ));
}

#[tokio::test]
async fn stage_then_end_publishes_and_abort_discards() {
    let (db, cluster) = cluster().await;
    cluster
        .store(P, &bytes(200_000, 1), &StoreOptions::new("old", "old/type"))
        .await
        .unwrap();
    let mut lock = acquired(cluster.start_generation(P, None).await.unwrap());
    assert!(cluster.check_generation(&mut lock).await.unwrap());
    cluster.stage(&mut lock, b"contents", &view()).await.unwrap();
    let meta = cluster.end_generation(lock).await.unwrap();
    assert_eq!(
        (meta.size, meta.scope.as_str(), meta.datatype.as_str()),
        (8, "viewcache", "php"),
        "datatype and scope updated too"
    );
    assert_eq!(cluster.fetch(P).await.unwrap(), b"contents");
    assert_eq!(chunks(&db, P).await, vec![(0, 8)], "old chunks gone");
    assert!(row(&db, &format!("{P}.generating")).await.is_none());

    let mut lock = acquired(cluster.start_generation("new/file", None).await.unwrap());
    cluster.stage(&mut lock, b"never published", &view()).await.unwrap();
    cluster.abort_generation(lock).await.unwrap();
    assert!(!cluster.exists("new/file").await.unwrap());
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM ezdbfile WHERE name LIKE '%.generating'").await,
        0
    );

    let lock = acquired(cluster.start_generation("new/file", None).await.unwrap());
    assert!(
        cluster.end_generation(lock).await.is_err(),
        "nothing staged: no empty file is published"
    );
    assert!(row(&db, "new/file").await.is_none() && row(&db, "new/file.generating").await.is_none());
}

#[tokio::test]
async fn a_lock_taken_over_is_noticed_and_never_publishes() {
    let (db, cluster) = cluster().await;
    cluster.store(P, b"newer result", &view()).await.unwrap();
    let mut lock = acquired(cluster.start_generation(P, None).await.unwrap());
    // Another process takes the lock over (legacy CAS on mtime).
    exec(
        &db,
        &format!("UPDATE ezdbfile SET mtime = mtime + 7 WHERE name_hash = MD5('{P}.generating')"),
    )
    .await;
    assert!(
        !cluster.check_generation(&mut lock).await.unwrap(),
        "legacy always said true here"
    );
    let err = cluster.publish(lock, b"outdated", &view()).await.unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err}");
    assert_eq!(cluster.fetch(P).await.unwrap(), b"newer result");
    assert!(
        row(&db, &format!("{P}.generating")).await.is_some(),
        "the other process's lock is left alone"
    );
}

#[tokio::test]
async fn a_lock_deleted_by_someone_else_leaves_the_file_untouched() {
    let (db, cluster) = cluster().await;
    cluster.store(P, b"keep me", &view()).await.unwrap();
    let mut lock = acquired(cluster.start_generation(P, None).await.unwrap());
    cluster.stage(&mut lock, b"staged", &view()).await.unwrap();
    exec(
        &db,
        &format!("DELETE FROM ezdbfile WHERE name_hash = MD5('{P}.generating')"),
    )
    .await;
    assert!(matches!(
        cluster.end_generation(lock).await.unwrap_err(),
        Error::LockLost { .. }
    ));
    assert_eq!(cluster.fetch(P).await.unwrap(), b"keep me", "legacy emptied P here");
    // And the failed transaction released its row locks: a plain write goes through at once.
    let started = Instant::now();
    cluster.store(P, b"after", &view()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn abort_only_removes_our_own_lock() {
    let (db, cluster) = cluster().await;
    cluster.store(P, b"real file", &view()).await.unwrap();
    let lock = acquired(cluster.start_generation(P, None).await.unwrap());
    exec(
        &db,
        &format!("UPDATE ezdbfile SET mtime = mtime + 3 WHERE name_hash = MD5('{P}.generating')"),
    )
    .await;
    cluster.abort_generation(lock).await.unwrap();
    assert!(
        row(&db, &format!("{P}.generating")).await.is_some(),
        "someone else's lock stays"
    );
    assert_eq!(
        cluster.fetch(P).await.unwrap(),
        b"real file",
        "legacy deleted the real row here"
    );
}

#[tokio::test]
async fn an_abandoned_lock_is_taken_over_by_exactly_one_process() {
    let (db, _cluster) = cluster().await;
    exec(&db, &format!("INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES ('{P}.generating', '{P}.generating', MD5('{P}.generating'), '', '', UNIX_TIMESTAMP() - 120, 0)")).await;
    let mut nodes = Vec::new();
    for _ in 0..8 {
        nodes.push(other_node(&db).await);
    }
    let attempts = nodes.iter().map(|n| n.start_generation(P, None));
    let results = futures_util::future::join_all(attempts).await;
    let winners = results
        .iter()
        .filter(|r| matches!(r, Ok(Generation::Acquired(_))))
        .count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()));
}

#[tokio::test]
async fn a_long_generation_keeps_its_lock_with_heartbeats() {
    let (db, cluster) = cluster_with(|c| c.with_generation_timeout(Duration::from_secs(2))).await;
    let mut lock = acquired(cluster.start_generation(P, None).await.unwrap());
    let other = ezdb_core::Cluster::connect(
        ezdb_core::ClusterConfig::new(&db.url).with_generation_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        cluster.heartbeat(&mut lock).await.unwrap();
        assert!(matches!(
            other.start_generation(P, None).await.unwrap(),
            Generation::Busy { .. }
        ));
    }
    cluster.publish(lock, b"done", &view()).await.unwrap();
    assert_eq!(cluster.fetch(P).await.unwrap(), b"done");
}

#[tokio::test]
async fn a_clear_during_generation_makes_the_result_expired() {
    let (db, cluster) = cluster().await;
    // Clear by trunk (legacy node clear through fileDeleteByDirList).
    let lock = acquired(cluster.start_generation(P, Some("viewcache")).await.unwrap());
    cluster
        .delete_by_dir_list(&["site"], "var/site/cache/content", "2-")
        .await
        .unwrap();
    let meta = cluster.publish(lock, b"built from old data", &view()).await.unwrap();
    assert!(
        meta.deleted && !cluster.exists(P).await.unwrap(),
        "published, but as expired"
    );
    assert_eq!(row(&db, P).await.unwrap().1, 1);
    assert!(row(&db, &format!("{P}.generating")).await.is_none());
    // Clear by global expiry key while generating.
    let lock = acquired(cluster.start_generation(P, Some("viewcache")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cluster.set_global_expiry("content-view-cache", None).await.unwrap();
    cluster.publish(lock, b"built before the clear", &view()).await.unwrap();
    assert!(!cluster.exists(P).await.unwrap());
}

#[tokio::test]
async fn process_cache_generates_once_then_hits() {
    let (_db, cluster) = cluster().await;
    let calls = AtomicU32::new(0);
    let policy = CachePolicy {
        store: view(),
        ..Default::default()
    };
    let generate = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(b"generated".to_vec())
    };
    let first = cluster.process_cache(P, &policy, generate).await.unwrap();
    assert_eq!(
        (first.content.as_slice(), first.source),
        (&b"generated"[..], CacheSource::Generated)
    );
    let second = cluster.process_cache(P, &policy, generate).await.unwrap();
    assert_eq!(second.source, CacheSource::Hit);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let zero_ttl = CachePolicy {
        freshness: Freshness::ttl(0),
        ..policy.clone()
    };
    assert_eq!(
        cluster.process_cache(P, &zero_ttl, generate).await.unwrap().source,
        CacheSource::Generated,
        "ttl 0 always regenerates"
    );
    let future = CachePolicy {
        freshness: Freshness::expiry(cluster.now() + 3600),
        ..policy.clone()
    };
    assert_eq!(
        cluster.process_cache(P, &future, generate).await.unwrap().source,
        CacheSource::Generated
    );
    let past = CachePolicy {
        freshness: Freshness::expiry(cluster.now() - 3600),
        ..policy
    };
    assert_eq!(
        cluster.process_cache(P, &past, generate).await.unwrap().source,
        CacheSource::Hit
    );
}

#[tokio::test]
async fn a_failing_generate_releases_the_lock_and_keeps_the_old_entry() {
    let (db, cluster) = cluster().await;
    cluster.store(P, b"old", &view()).await.unwrap();
    cluster.delete(P).await.unwrap();
    let policy = CachePolicy {
        store: view(),
        ..Default::default()
    };
    let err = cluster
        .process_cache(P, &policy, || async {
            Err::<Vec<u8>, _>(std::io::Error::other("template broke"))
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("template broke"), "{err}");
    assert!(row(&db, &format!("{P}.generating")).await.is_none(), "lock released");
    let stale = cluster.fetch_with_meta(P, Visibility::IncludeExpired).await.unwrap();
    assert_eq!(stale.bytes, b"old", "legacy published an empty file here");
}

#[tokio::test]
async fn while_one_generates_others_get_the_stale_copy_without_waiting() {
    let (db, a) = cluster().await;
    a.store(P, b"old content", &view()).await.unwrap();
    a.delete(P).await.unwrap();
    let lock = acquired(a.start_generation(P, None).await.unwrap());
    let b = other_node(&db).await;
    let policy = CachePolicy {
        store: view(),
        ..Default::default()
    };
    let started = Instant::now();
    let served = b
        .process_cache(P, &policy, || async {
            Ok::<_, std::io::Error>(b"B must not generate".to_vec())
        })
        .await
        .unwrap();
    assert_eq!(
        (served.content.as_slice(), served.source),
        (&b"old content"[..], CacheSource::Stale)
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    a.publish(lock, b"new content", &view()).await.unwrap();
    let fresh = b
        .process_cache(P, &policy, || async { Ok::<_, std::io::Error>(b"no".to_vec()) })
        .await
        .unwrap();
    assert_eq!(
        (fresh.content.as_slice(), fresh.source),
        (&b"new content"[..], CacheSource::Hit)
    );
}

#[tokio::test]
async fn without_a_stale_copy_callers_wait_for_the_generator_or_generate_privately() {
    let (db, a) = cluster().await;
    let lock = acquired(a.start_generation(P, None).await.unwrap());
    let b = other_node(&db).await;
    let wait = CachePolicy {
        store: view(),
        ..Default::default()
    };
    let publisher = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        a.publish(lock, b"from A", &view()).await.unwrap();
    };
    let waiter = b.process_cache(P, &wait, || async { Ok::<_, std::io::Error>(b"from B".to_vec()) });
    let (_, served) = tokio::join!(publisher, waiter);
    let served = served.unwrap();
    // Hit when B's poll reads A's result; Rechecked when A publishes between B's read and B's
    // lock attempt (B then gets the lock and its re-check finds the result): either way A's.
    assert_eq!(served.content.as_slice(), &b"from A"[..]);
    assert!(
        matches!(served.source, CacheSource::Hit | CacheSource::Rechecked),
        "{:?}",
        served.source
    );

    let lock = acquired(a.start_generation("other", None).await.unwrap());
    let private = CachePolicy {
        generate_while_busy: true,
        ..wait
    };
    let own = b
        .process_cache("other", &private, || async {
            Ok::<_, std::io::Error>(b"B's own".to_vec())
        })
        .await
        .unwrap();
    assert_eq!(
        (own.content.as_slice(), own.source),
        (&b"B's own"[..], CacheSource::Unstored)
    );
    a.publish(lock, b"A's result", &view()).await.unwrap();
    assert_eq!(
        a.fetch("other").await.unwrap(),
        b"A's result",
        "legacy deleted A's result here"
    );
}

#[tokio::test]
async fn a_dead_generator_is_replaced_after_the_timeout() {
    let (db, _) = cluster().await;
    let config = || ezdb_core::ClusterConfig::new(&db.url).with_generation_timeout(Duration::from_secs(1));
    let dead = ezdb_core::Cluster::connect(config()).await.unwrap();
    let _abandoned = acquired(dead.start_generation(P, None).await.unwrap());
    drop(dead);
    let b = ezdb_core::Cluster::connect(config()).await.unwrap();
    let policy = CachePolicy {
        store: view(),
        ..Default::default()
    };
    let started = Instant::now();
    let served = b
        .process_cache(P, &policy, || async {
            Ok::<_, std::io::Error>(b"B took over".to_vec())
        })
        .await
        .unwrap();
    assert_eq!(
        (served.content.as_slice(), served.source),
        (&b"B took over"[..], CacheSource::Generated)
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn waiting_is_bounded_by_the_generation_timeout() {
    let (db, _) = cluster().await;
    // A lock whose mtime keeps being refreshed by a (simulated) live generator that never ends.
    let config = ezdb_core::ClusterConfig::new(&db.url).with_generation_timeout(Duration::from_secs(1));
    let b = ezdb_core::Cluster::connect(config).await.unwrap();
    exec(&db, "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES ('w.generating', 'w.generating', MD5('w.generating'), '', '', UNIX_TIMESTAMP() + 3600, 0)").await;
    let started = Instant::now();
    let err = b
        .process_cache("w", &CachePolicy::default(), || async {
            Ok::<_, std::io::Error>(Vec::new())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::GenerationTimeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_broken_stored_copy_is_regenerated_not_an_error() {
    let (db, cluster) = cluster().await;
    cluster.store(P, &bytes(200_000, 5), &view()).await.unwrap();
    exec(
        &db,
        &format!("DELETE FROM ezdbfile_data WHERE name_hash = MD5('{P}') AND `offset` = 65535"),
    )
    .await;
    let policy = CachePolicy {
        store: view(),
        ..Default::default()
    };
    let entry = cluster
        .process_cache(P, &policy, || async { Ok::<_, std::io::Error>(b"rebuilt".to_vec()) })
        .await
        .unwrap();
    assert_eq!(
        (entry.content.as_slice(), entry.source),
        (&b"rebuilt"[..], CacheSource::Generated)
    );
    assert_eq!(cluster.fetch(P).await.unwrap(), b"rebuilt");
}
