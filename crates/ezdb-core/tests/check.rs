// The consistency check finds every broken layout and row it claims to, repairs each without
// losing a byte (what it removes is in the quarantine and comes back with restore), acts only
// on what is still there; statistics add up.

mod common;
use common::*;
use ezdb_core::{Cluster, LayoutFix, Outcome, Problem, Restored, StoreOptions};
use sqlx::Executor;
use std::collections::BTreeMap;
use std::time::Duration;

/// Every chunk in the tables as (offset, md5 of its bytes), counted: what "no byte lost" compares.
async fn all_chunk_bytes(db: &TestDb) -> BTreeMap<(u64, String), usize> {
    let mut conn = raw(db).await;
    let rows: Vec<(u64, String)> =
        sqlx::query_as("SELECT CAST(`offset` AS UNSIGNED), MD5(filedata) FROM ezdbfile_data")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut counted = BTreeMap::new();
    for row in rows {
        *counted.entry(row).or_default() += 1;
    }
    counted
}

async fn damage(db: &TestDb, statements: &[&str]) {
    let mut raw = raw(db).await;
    raw.execute("SET FOREIGN_KEY_CHECKS = 0").await.unwrap();
    for sql in statements {
        raw.execute(*sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn kinds(problems: &[Problem]) -> Vec<(String, &'static str)> {
    problems
        .iter()
        .map(|p| (p.describe().split(':').next().unwrap_or("").to_owned(), p.kind()))
        .collect()
}

async fn repair_all(cluster: &Cluster, problems: &[Problem]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for p in problems {
        outcomes.push(cluster.repair(p).await.unwrap());
    }
    outcomes
}

#[tokio::test]
async fn every_damage_is_found_and_repaired_without_losing_a_byte() {
    let (db, cluster) = cluster_with(|c| c.with_generation_timeout(Duration::from_secs(60))).await;
    let opts = StoreOptions::new("image", "image/png");
    let files = [
        ("ok", 70_000),
        ("rehash", 70_000),
        ("real", 200_000),
        ("big", 70_000),
        ("small", 70_000),
        ("zero", 70_000),
        ("overlap", 140_000),
        ("gapover", 140_000),
        ("lost", 140_000),
        ("stray", 70_000),
        ("staletail", 131_070),
        ("flag", 10),
        ("trunk", 10),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        cluster.store(name, &bytes(*len, i as u64), &opts).await.unwrap();
    }
    assert!(
        cluster.check().await.unwrap().is_empty(),
        "a clean cluster has no problem"
    );
    damage(
        &db,
        &[
            "ALTER TABLE ezdbfile MODIFY scope VARCHAR(40) NOT NULL DEFAULT ''",
            "UPDATE ezdbfile SET name_hash = 'wronghash' WHERE name = 'rehash'",
            "UPDATE ezdbfile_data SET name_hash = 'wronghash' WHERE name_hash = MD5('rehash')",
            // A copy of a real file's row under a wrong key, without chunks.
            "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, size, mtime, expired)
             SELECT name, name_trunk, 'copyhash', scope, datatype, size, mtime, expired FROM ezdbfile WHERE name = 'real'",
            "UPDATE ezdbfile SET size = size + 10 WHERE name = 'big'",
            "UPDATE ezdbfile SET size = 60000 WHERE name = 'small'",
            // A legacy store of a shorter version ending on the chunk grid keeps the old
            // version's chunk at exactly the new size (spec 2.5).
            "INSERT INTO ezdbfile_data VALUES (MD5('staletail'), 131070, 'old version tail')",
            "UPDATE ezdbfile SET size = 0 WHERE name = 'zero'",
            "INSERT INTO ezdbfile_data VALUES (MD5('overlap'), 3000, REPEAT('x', 500))",
            // A gap and an overlap with an unchanged total.
            "UPDATE ezdbfile_data SET `offset` = 65545 WHERE name_hash = MD5('gapover') AND `offset` = 65535",
            "DELETE FROM ezdbfile_data WHERE name_hash = MD5('lost') AND `offset` = 65535",
            "INSERT INTO ezdbfile_data VALUES (MD5('stray'), 200000, 'xyz')",
            "INSERT INTO ezdbfile_data VALUES ('deadbeefdeadbeefdeadbeefdeadbeef', 0, 'orphan')",
            "UPDATE ezdbfile SET expired = 1 WHERE name = 'flag'",
            "UPDATE ezdbfile SET name_trunk = 'nonsense' WHERE name = 'trunk'",
            "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired)
             VALUES ('old.generating', 'old.generating', MD5('old.generating'), '', '', UNIX_TIMESTAMP() - 3600, 0)",
            "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired)
             VALUES ('a//unclean/', 'a//unclean/', MD5('a//unclean/'), 'image', 'misc', 1, 0)",
            "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired)
             VALUES ('label', 'label', MD5('label'), 'a-scope-of-thirty-characters!', 'misc', 1, 0)",
        ],
    )
    .await;
    let before = all_chunk_bytes(&db).await;
    let problems = cluster.check().await.unwrap();
    let found = kinds(&problems);
    for expected in [
        ("rehash", "hash-mismatch"),
        ("real", "hash-mismatch"),
        ("big", "layout"),
        ("small", "layout"),
        ("zero", "layout"),
        ("overlap", "layout"),
        ("gapover", "layout"),
        ("lost", "layout"),
        ("stray", "layout"),
        ("staletail", "layout"),
        ("flag", "expired-flag"),
        ("trunk", "wrong-trunk"),
        ("old.generating", "stale-lock"),
        ("\"a//unclean/\"", "unclean-name"),
        ("label", "refused-label"),
    ] {
        assert!(
            found.iter().any(|(n, k)| n == expected.0 && *k == expected.1),
            "{expected:?} not found in {found:?}"
        );
    }
    assert!(problems.iter().any(|p| p.kind() == "orphan-chunks"));
    assert!(!found.iter().any(|(n, _)| n == "ok"), "the sound file is not reported");
    let gapover = problems.iter().find(|p| p.describe().starts_with("gapover")).unwrap();
    assert!(gapover.describe().contains("gap") && gapover.describe().contains("overlap"));
    assert!(matches!(
        gapover,
        Problem::Layout {
            fix: LayoutFix::SetAside,
            ..
        }
    ));
    let overlap = problems.iter().find(|p| p.describe().starts_with("overlap")).unwrap();
    assert!(
        overlap.describe().contains("off the chunk grid"),
        "{}",
        overlap.describe()
    );

    // A dry run (the plan) changes nothing: checking again finds the same.
    assert_eq!(cluster.check().await.unwrap(), problems);

    let outcomes = repair_all(&cluster, &problems).await;
    for (i, (p, o)) in problems.iter().zip(&outcomes).enumerate() {
        // A row with two problems can be settled by the first repair (the chunk-less copy of
        // 'real' is set aside for its layout): the second then finds it changed.
        let settled_before = problems[..i].iter().any(|q| q.stored_hash() == p.stored_hash());
        match (p.kind(), o) {
            ("unclean-name" | "refused-label", Outcome::NeedsDecision) => {}
            (_, Outcome::Repaired { .. }) => {}
            (_, Outcome::Changed) if settled_before => {}
            _ => panic!("not repaired: {} -> {o:?}", p.describe()),
        }
    }
    let left = cluster.check().await.unwrap();
    assert_eq!(
        left.iter().map(Problem::kind).collect::<Vec<_>>(),
        vec!["unclean-name", "refused-label"],
        "{:?}",
        left.iter().map(Problem::describe).collect::<Vec<_>>()
    );
    for (i, (name, len)) in files.iter().enumerate() {
        if ["gapover", "lost"].contains(name) {
            assert!(cluster.stat(name).await.unwrap().is_none(), "{name} set aside");
            continue;
        }
        assert_eq!(
            cluster.fetch(name).await.unwrap(),
            bytes(*len, i as u64),
            "{name} readable with the same bytes"
        );
    }

    // Everything removed comes back: the chunks are exactly those before the repair.
    let items = cluster.quarantined().await.unwrap();
    assert!(items
        .iter()
        .any(|i| i.name.as_deref() == Some("lost") && i.removed == "row"));
    for item in &items {
        let restored = cluster.restore(item.id).await.unwrap();
        assert!(matches!(restored, Restored::Restored { .. }), "{item:?}: {restored:?}");
    }
    assert!(cluster.quarantined().await.unwrap().is_empty());
    assert_eq!(all_chunk_bytes(&db).await, before, "not one chunk lost");
    assert_eq!(cluster.restore(1).await.unwrap(), Restored::NoSuchItem);
}

#[tokio::test]
async fn a_repair_leaves_alone_what_changed_since_the_check() {
    let (db, cluster) = cluster().await;
    let opts = StoreOptions::new("image", "image/png");
    cluster.store("lost", &bytes(140_000, 1), &opts).await.unwrap();
    cluster.store("big", &bytes(70_000, 2), &opts).await.unwrap();
    damage(
        &db,
        &[
            "DELETE FROM ezdbfile_data WHERE name_hash = MD5('lost') AND `offset` = 65535",
            "UPDATE ezdbfile SET size = size + 10 WHERE name = 'big'",
        ],
    )
    .await;
    let problems = cluster.check().await.unwrap();
    assert_eq!(problems.len(), 2);
    // Both files are uploaded again (correctly) after the check saw them.
    cluster.store("lost", &bytes(140_000, 3), &opts).await.unwrap();
    cluster.store("big", &bytes(70_010, 4), &opts).await.unwrap();
    for p in &problems {
        assert_eq!(cluster.repair(p).await.unwrap(), Outcome::Changed, "{}", p.describe());
    }
    assert_eq!(cluster.fetch("lost").await.unwrap(), bytes(140_000, 3));
    assert_eq!(cluster.fetch("big").await.unwrap(), bytes(70_010, 4));
    assert!(cluster.quarantined().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_restore_never_overwrites_a_newer_file() {
    let (db, cluster) = cluster().await;
    let opts = StoreOptions::new("image", "image/png");
    cluster.store("lost", &bytes(140_000, 1), &opts).await.unwrap();
    cluster.store("stray", &bytes(100, 2), &opts).await.unwrap();
    damage(
        &db,
        &[
            "DELETE FROM ezdbfile_data WHERE name_hash = MD5('lost') AND `offset` = 65535",
            "INSERT INTO ezdbfile_data VALUES (MD5('stray'), 5000, 'xyz')",
        ],
    )
    .await;
    for p in cluster.check().await.unwrap() {
        assert!(matches!(
            cluster.repair(&p).await.unwrap(),
            Outcome::Repaired { quarantine: Some(_) }
        ));
    }
    cluster.store("lost", &bytes(10, 3), &opts).await.unwrap();
    cluster
        .store(
            "stray",
            &bytes(200, 4),
            &StoreOptions {
                mtime: Some(12345),
                ..opts.clone()
            },
        )
        .await
        .unwrap();
    for item in cluster.quarantined().await.unwrap() {
        assert!(
            matches!(cluster.restore(item.id).await.unwrap(), Restored::Conflict(_)),
            "{item:?}"
        );
    }
    assert_eq!(cluster.fetch("lost").await.unwrap(), bytes(10, 3));
    assert_eq!(cluster.fetch("stray").await.unwrap(), bytes(200, 4));
    assert_eq!(cluster.quarantined().await.unwrap().len(), 2, "still kept");
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

#[tokio::test]
async fn stats_count_entries_a_global_expiry_key_expired() {
    let (_db, cluster) = cluster().await;
    let now = cluster.now();
    let at = |mtime| StoreOptions {
        mtime: Some(mtime),
        ..StoreOptions::new("template-block", "php")
    };
    for i in 0..4 {
        let name = format!("var/site/cache/template-block/1/{i}.cache");
        cluster.store(&name, &[1; 10], &at(now - 100)).await.unwrap();
    }
    cluster
        .store("var/site/cache/template-block/1/new.cache", &[1; 10], &at(now + 100))
        .await
        .unwrap();
    cluster
        .store(
            "var/site/cache/content/site/2-a.cache",
            &[1; 10],
            &StoreOptions::new("viewcache", "php"),
        )
        .await
        .unwrap();
    let before = cluster.stats().await.unwrap();
    let blocks = |s: &ezdb_core::Stats| s.scopes.iter().find(|s| s.scope == "template-block").unwrap().clone();
    assert_eq!((blocks(&before).expired_files, blocks(&before).expired_by_key), (0, 0));
    cluster
        .set_global_expiry("global-template-block-cache", Some(now))
        .await
        .unwrap();
    let after = cluster.stats().await.unwrap();
    let b = blocks(&after);
    assert_eq!(
        (b.files, b.expired_files, b.expired_bytes, b.expired_by_key),
        (5, 4, 40, 4),
        "{b:?}"
    );
    let view = after.scopes.iter().find(|s| s.scope == "viewcache").unwrap();
    assert_eq!(view.expired_files, 0, "a key expires only its own scope");
}

#[tokio::test]
async fn a_repair_blocked_by_a_writer_leaves_the_row_alone() {
    let (db, cluster) = cluster_with(|mut c| {
        c.max_attempts = 1;
        c
    })
    .await;
    let opts = StoreOptions::new("image", "image/png");
    cluster.store("held", &bytes(100, 1), &opts).await.unwrap();
    damage(&db, &["UPDATE ezdbfile SET size = 110 WHERE name = 'held'"]).await;
    let problems = cluster.check().await.unwrap();
    assert_eq!(problems.len(), 1);
    // A writer (an upload in progress) holds the row for longer than the lock wait.
    let mut writer = raw(&db).await;
    writer.execute("BEGIN").await.unwrap();
    writer
        .execute("SELECT * FROM ezdbfile WHERE name_hash = MD5('held') FOR UPDATE")
        .await
        .unwrap();
    assert_eq!(cluster.repair(&problems[0]).await.unwrap(), Outcome::Busy);
    writer.execute("ROLLBACK").await.unwrap();
    assert_eq!(cluster.check().await.unwrap(), problems, "nothing changed");
    assert!(matches!(
        cluster.repair(&problems[0]).await.unwrap(),
        Outcome::Repaired { .. }
    ));
    assert_eq!(cluster.fetch("held").await.unwrap(), bytes(100, 1));
}
