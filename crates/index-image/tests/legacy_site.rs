//! index_image on a site's database as legacy created it (the two legacy tables on the server's
//! default collation, nothing installed): images a legacy node stores are served, /healthz is
//! up, deletes made by either side are honoured, and names differing only in case or accent
//! are different files.

mod common;
use common::*;
use ezdb_core::{Cluster, ClusterConfig, StoreOptions};
use ezdb_testdb::{LegacyNode, Schema, TestDb};

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_only_database_is_served() {
    let db = TestDb::create_with(Schema::Legacy).await;
    let legacy = LegacyNode::new(&db.url);
    let image = bytes(200_000);
    let now = chrono_now();
    legacy.store_contents(IMG, &image, "image", now).await;
    let upper = "var/site/storage/images/a/1-1-eng-GB/Logo.png";
    let accented = "var/site/storage/images/a/1-1-eng-GB/lögo.png";
    let ours = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    ours.store(upper, b"upper", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();
    ours.store(accented, b"accent", &StoreOptions::new("image", "image/png"))
        .await
        .unwrap();

    let server = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || start(&url, &[])
    })
    .await
    .unwrap();
    let (health, served, upper_reply, accented_reply) = tokio::task::spawn_blocking({
        let address = server.address.clone();
        move || {
            (
                request_at(&address, "GET", "/healthz", &[]),
                request_at(&address, "GET", &format!("/{IMG}"), &[]),
                request_at(&address, "GET", "/var/site/storage/images/a/1-1-eng-GB/Logo.png", &[]),
                request_at(
                    &address,
                    "GET",
                    "/var/site/storage/images/a/1-1-eng-GB/l%C3%B6go.png",
                    &[],
                ),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(health.status, 200, "healthz on a legacy-only database");
    assert_eq!(served.status, 200);
    assert!(served.body == image, "the legacy node's image, byte-exact");
    assert_eq!((upper_reply.status, upper_reply.body.as_slice()), (200, &b"upper"[..]));
    assert_eq!(
        (accented_reply.status, accented_reply.body.as_slice()),
        (200, &b"accent"[..])
    );

    ours.delete(IMG).await.unwrap();
    let gone = eventually_status(&server, &format!("/{IMG}"), 404).await;
    assert_eq!(gone, 404, "a delete is honoured");
    assert_eq!(
        tokio::task::spawn_blocking({
            let address = server.address.clone();
            move || request_at(&address, "GET", "/var/site/storage/images/a/1-1-eng-GB/Logo.png", &[]).status
        })
        .await
        .unwrap(),
        200,
        "deleting logo.png leaves Logo.png"
    );
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
}

/// The status of `path` once the caches have revalidated (within a few seconds), or the last seen.
async fn eventually_status(server: &Server, path: &str, wanted: u16) -> u16 {
    let mut last = 0;
    for _ in 0..50 {
        let address = server.address.clone();
        let path = path.to_owned();
        last = tokio::task::spawn_blocking(move || request_at(&address, "GET", &path, &[]).status)
            .await
            .unwrap();
        if last == wanted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
