// The consistency check finds each kind of inconsistency it claims to, and repairs each safely;
// statistics add up.

mod common;
use common::*;
use ezdb_core::{Problem, StoreOptions};
use std::time::Duration;

#[tokio::test]
async fn check_finds_and_repairs_every_kind_of_problem() {
    let (db, cluster) = cluster_with(|c| c.with_generation_timeout(Duration::from_secs(60))).await;
    let opts = StoreOptions::new("image", "image/png");
    for name in ["ok", "rehash", "short", "stray", "flag", "trunk"] {
        cluster.store(name, &bytes(70_000, 1), &opts).await.unwrap();
    }
    assert!(
        cluster.check().await.unwrap().is_empty(),
        "a clean cluster has no problem"
    );
    exec(&db, "SET FOREIGN_KEY_CHECKS = 0").await;
    let mut raw = raw(&db).await;
    for sql in [
        "SET FOREIGN_KEY_CHECKS = 0",
        "UPDATE ezdbfile SET name_hash = 'wronghash' WHERE name = 'rehash'",
        "UPDATE ezdbfile_data SET name_hash = 'wronghash' WHERE name_hash = MD5('rehash')",
        "DELETE FROM ezdbfile_data WHERE name_hash = MD5('short') AND `offset` > 0",
        "INSERT INTO ezdbfile_data VALUES (MD5('stray'), 200000, 'xyz')",
        "INSERT INTO ezdbfile_data VALUES ('deadbeefdeadbeefdeadbeefdeadbeef', 0, 'orphan')",
        "UPDATE ezdbfile SET expired = 1 WHERE name = 'flag'",
        "UPDATE ezdbfile SET name_trunk = 'nonsense' WHERE name = 'trunk'",
        "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES ('old.generating', 'old.generating', MD5('old.generating'), '', '', UNIX_TIMESTAMP() - 3600, 0)",
    ] {
        sqlx::Executor::execute(&mut raw, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let problems = cluster.check().await.unwrap();
    let kinds: Vec<&str> = problems.iter().map(Problem::kind).collect();
    for kind in [
        "hash-mismatch",
        "size-mismatch",
        "stray-chunks",
        "orphan-chunks",
        "expired-flag",
        "wrong-trunk",
        "stale-lock",
    ] {
        assert!(kinds.contains(&kind), "{kind} not found in {kinds:?}");
    }
    assert!(problems
        .iter()
        .all(|p| !p.describe().is_empty() && !p.repair_action().is_empty()));
    assert!(
        !problems.iter().any(|p| p.describe().starts_with("ok:")),
        "the sound file is not reported"
    );
    for problem in &problems {
        assert!(
            cluster.repair(problem).await.unwrap(),
            "not repaired: {}",
            problem.describe()
        );
    }
    let left = cluster.check().await.unwrap();
    assert!(
        left.is_empty(),
        "{:?}",
        left.iter().map(Problem::describe).collect::<Vec<_>>()
    );
    assert_eq!(
        cluster.fetch("rehash").await.unwrap(),
        bytes(70_000, 1),
        "re-keyed file readable again"
    );
    assert!(
        cluster.stat("short").await.unwrap().is_none(),
        "a file with lost chunks is removed"
    );
    assert_eq!(cluster.fetch("stray").await.unwrap(), bytes(70_000, 1));
    assert_eq!(
        cluster.fetch("ok").await.unwrap(),
        bytes(70_000, 1),
        "nothing sound was touched"
    );
}

#[tokio::test]
async fn stats_count_files_bytes_and_locks() {
    let (_db, cluster) = cluster().await;
    cluster
        .store("a", &[1; 100], &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    cluster
        .store("b", &[1; 50], &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    cluster
        .store("c", &[1; 10], &StoreOptions::new("viewcache", "php"))
        .await
        .unwrap();
    cluster.delete("b").await.unwrap();
    let _lock = cluster.start_generation("c", None).await.unwrap();
    let stats = cluster.stats().await.unwrap();
    let image = stats.scopes.iter().find(|s| s.scope == "image").unwrap();
    assert_eq!(
        (image.files, image.bytes, image.expired_files, image.expired_bytes),
        (2, 150, 1, 50)
    );
    assert!(image.oldest > 0 && image.newest >= image.oldest);
    assert_eq!(stats.scopes.len(), 2, "lock rows are not a scope");
    assert_eq!(stats.locks.len(), 1);
    assert_eq!(stats.locks[0].name, "c.generating");
}
