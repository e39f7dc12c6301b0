// The cache protocol's step API (`CacheRun` + `Cluster::advance_cache`) as the C ABI and PHP drive
// it on a real MariaDB: metadata reads, local copies, lock + re-check, stale serving, waiting.

mod common;
use common::*;
use ezdb_core::{CacheAction, CacheEvent, CacheGenerate, CacheRead, CacheRules, Freshness, Generation, StoreOptions};
use std::time::Duration;

const P: &str = "var/site/cache/content/site/2-steps.cache";

fn view() -> StoreOptions {
    StoreOptions::new("viewcache", "php")
}

fn rules() -> CacheRules {
    CacheRules {
        poll: Duration::from_millis(50),
        ..CacheRules::default()
    }
}

#[tokio::test]
async fn a_missing_entry_is_generated_under_the_lock_then_served_locally() {
    let (_db, cluster) = cluster().await;
    let mut run = cluster.cache_run(P, rules(), CacheRead::Stat).unwrap();
    let CacheAction::Generate(lock) = cluster.advance_cache(&mut run, CacheEvent::Begin, None).await.unwrap() else {
        panic!("expected the lock")
    };
    let meta = cluster.publish(lock, b"built", &view()).await.unwrap();

    // A local copy as new as the row is served without another statement than the read.
    let mut run = cluster.cache_run(P, rules(), CacheRead::Stat).unwrap();
    let action = cluster
        .advance_cache(&mut run, CacheEvent::Begin, Some(meta.mtime + 1))
        .await
        .unwrap();
    assert!(matches!(action, CacheAction::ServeLocal { retrieve_mtime } if retrieve_mtime == meta.mtime + 1));
    // Without a local copy the row is downloaded, dated one second after it.
    let mut run = cluster.cache_run(P, rules(), CacheRead::Stat).unwrap();
    let action = cluster.advance_cache(&mut run, CacheEvent::Begin, None).await.unwrap();
    assert!(
        matches!(action, CacheAction::ServeStored { stale: false, local_mtime, .. } if local_mtime == meta.mtime + 1),
        "{action:?}"
    );
    // The retrieve said "expired" (legacy failure 1): regenerate; a re-check accepts only a
    // newer row, so the same row does not come back as "fresh".
    let action = cluster
        .advance_cache(&mut run, CacheEvent::ServeFailed, None)
        .await
        .unwrap();
    let CacheAction::Generate(lock) = action else {
        panic!("expected the lock, got {action:?}")
    };
    cluster.abort_generation(lock).await.unwrap();
}

#[tokio::test]
async fn while_another_process_generates_the_old_copy_is_served_or_the_caller_waits() {
    let (db, cluster) = cluster().await;
    cluster.store(P, b"old", &view()).await.unwrap();
    cluster.delete(P).await.unwrap();
    let other = other_node(&db).await;
    let Generation::Acquired(lock) = other.start_generation(P, None).await.unwrap() else {
        panic!("expected the lock")
    };
    let mut run = cluster.cache_run(P, rules(), CacheRead::Stat).unwrap();
    let action = cluster.advance_cache(&mut run, CacheEvent::Begin, None).await.unwrap();
    assert!(
        matches!(action, CacheAction::ServeStored { stale: true, .. }),
        "{action:?}"
    );
    assert!(run.row().is_some_and(|r| r.deleted));

    // No old copy: wait, polling, until the generator publishes; then serve its result.
    let fresh = "var/site/cache/content/site/2-new.cache";
    let Generation::Acquired(new_lock) = other.start_generation(fresh, None).await.unwrap() else {
        panic!("expected the lock")
    };
    let mut run = cluster.cache_run(fresh, rules(), CacheRead::Stat).unwrap();
    let mut action = cluster.advance_cache(&mut run, CacheEvent::Begin, None).await.unwrap();
    assert!(matches!(action, CacheAction::Wait(_)), "{action:?}");
    other.publish(new_lock, b"new", &view()).await.unwrap();
    for _ in 0..20 {
        if !matches!(action, CacheAction::Wait(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        action = cluster.advance_cache(&mut run, CacheEvent::Waited, None).await.unwrap();
    }
    assert!(
        matches!(action, CacheAction::ServeStored { stale: false, .. }),
        "{action:?}"
    );

    // Read only (legacy $generate === false) gives up instead of locking.
    let read_only = CacheRules {
        generate: CacheGenerate::Never,
        ..rules()
    };
    let mut run = cluster
        .cache_run("var/site/cache/none.cache", read_only, CacheRead::Stat)
        .unwrap();
    let action = cluster.advance_cache(&mut run, CacheEvent::Begin, None).await.unwrap();
    assert!(matches!(action, CacheAction::GiveUp), "{action:?}");
    other.abort_generation(lock).await.unwrap();
}

#[tokio::test]
async fn an_entry_older_than_the_expiry_is_regenerated_and_finished_runs_refuse_events() {
    let (_db, cluster) = cluster().await;
    cluster.store(P, b"old", &view()).await.unwrap();
    let strict = CacheRules {
        freshness: Freshness::expiry(cluster.now() + 3600),
        ..rules()
    };
    let mut run = cluster.cache_run(P, strict, CacheRead::Stat).unwrap();
    let action = cluster.advance_cache(&mut run, CacheEvent::Begin, None).await.unwrap();
    let CacheAction::Generate(lock) = action else {
        panic!("expected the lock, got {action:?}")
    };
    cluster.abort_generation(lock).await.unwrap();
    // A caller event the run does not expect is refused, the run unchanged.
    assert!(cluster.advance_cache(&mut run, CacheEvent::Waited, None).await.is_err());
}
