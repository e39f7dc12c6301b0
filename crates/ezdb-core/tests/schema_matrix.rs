// The schema matrix: the handler scenarios on every schema a site may already have (the legacy
// DDL on the server's default collation, latin1, utf8, `datatype VARCHAR(60)`, ezdb's own), with
// nothing installed on top; byte-exact matching on case- and accent-insensitive collations; a
// legacy node (its SQL) sharing global expiry through the clustered expiry.php and writing rows
// the batched stat must tell apart.

mod common;
use common::*;
use ezdb_core::{
    Batches, CachePolicy, CacheSource, Cluster, ClusterConfig, Error, PurgeFilter, ScopeFilter, Selector, StoreOptions,
    Visibility,
};
use ezdb_core::{DfsLayout, Layout, IBEXA_DFS_TABLE};
use ezdb_testdb::{LegacyNode, Schema, TempDir};
use sqlx::Executor;
use std::time::Duration;

thread_local! {
    /// The server `site` creates databases on, when not the one under test.
    static SERVER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

const EXPIRY_FILE: &str = "var/site/cache/expiry.php";
const VIEW: &str = "var/site/cache/content/site/2-abc.cache";

/// A database with `schema` exactly as a site has it, and a node configured as a site would
/// configure it: with the legacy expiry file, nothing installed. On the server under test, or
/// on the private one of `SERVER` when a test set it.
/// For the eZDFS schemas, the node has the DFS layout on a mount directory of the test's own
/// (returned, removed when dropped).
async fn site(schema: Schema) -> (TestDb, Cluster, Option<TempDir>) {
    let server = SERVER.with(|s| s.borrow().clone());
    let db = match server {
        Some(url) => TestDb::create_on(&url, schema).await,
        None => TestDb::create_with(schema).await,
    };
    let mut config = ClusterConfig {
        legacy_expiry_file: Some(EXPIRY_FILE.into()),
        ..ClusterConfig::new(&db.url)
    };
    let mount = match schema {
        Schema::LegacyDfs | Schema::LegacyDfsLatin1 | Schema::IbexaDfs => Some(TempDir::new("matrix-mount")),
        _ => None,
    };
    if let Some(mount) = &mount {
        let dfs = DfsLayout::new(mount.path());
        let dfs = if schema == Schema::IbexaDfs {
            dfs.single_table(IBEXA_DFS_TABLE)
        } else {
            dfs
        };
        config = config.with_layout(Layout::Dfs(dfs));
    }
    let cluster = Cluster::connect(config).await.expect("connect to the site database");
    (db, cluster, mount)
}

fn labels(scope: &str, datatype: &str) -> StoreOptions {
    StoreOptions::new(scope, datatype)
}

/// Store, fetch, stat, exists, ranges, empty and multi-chunk files, delete, purge, copy, move.
async fn files_round_trip(schema: Schema) {
    let (db, c, _mount) = site(schema).await;
    let mut names = vec![
        "var/site/storage/images/a/plain.jpg".to_owned(),
        "var/site/storage/images/a/it's \"quoted\" 100% _under_.jpg".to_owned(),
        "var/site/storage/original/application/Crème brûlée.pdf".to_owned(),
    ];
    if schema.holds_any_bmp_text() {
        names.push("var/site/storage/original/application/日本語.pdf".to_owned());
    }
    if schema.holds_4_byte_utf8() {
        names.push("var/site/storage/original/application/emoji 😀.pdf".to_owned());
    }
    for (i, name) in names.iter().enumerate() {
        let data = bytes(3 * 65_535 + 17 + i, i as u64);
        c.store(name, &data, &labels("binaryfile", "application/pdf"))
            .await
            .unwrap();
        assert_eq!(c.fetch(name).await.unwrap(), data, "{schema:?}: {name}");
        let meta = c.stat(name).await.unwrap().unwrap();
        assert_eq!((meta.name.as_str(), meta.size), (name.as_str(), data.len() as u64));
        assert!(c.exists(name).await.unwrap());
        let range = c
            .fetch_range(
                name,
                ezdb_core::ByteRange {
                    start: 65_530,
                    end: 65_540,
                },
            )
            .await
            .unwrap();
        assert_eq!(range.bytes, &data[65_530..=65_540]);
        assert_eq!(
            c.list(&ScopeFilter::Only(vec!["binaryfile".into()]))
                .await
                .unwrap()
                .len(),
            i + 1
        );
    }
    let empty = "var/site/storage/original/empty.txt";
    c.store(empty, b"", &labels("binaryfile", "text/plain")).await.unwrap();
    assert_eq!(c.fetch(empty).await.unwrap(), b"");

    assert!(c.delete(&names[0]).await.unwrap());
    assert!(!c.exists(&names[0]).await.unwrap());
    let stale = c.fetch_with_meta(&names[0], Visibility::IncludeExpired).await.unwrap();
    assert!(stale.meta.deleted);
    assert_eq!(
        c.purge_matching(
            &Selector::Prefix("var/site/storage/images/".into()),
            PurgeFilter::Expired,
            Batches {
                size: 10,
                pause: Duration::ZERO,
                max_batches: None
            },
            |_| {},
        )
        .await
        .unwrap(),
        1
    );
    assert!(c.stat(&names[0]).await.unwrap().is_none());

    let copy = "var/site/storage/original/copy.pdf";
    c.copy(&names[2], copy).await.unwrap();
    assert_eq!(c.fetch(copy).await.unwrap(), c.fetch(&names[2]).await.unwrap());
    c.rename(copy, "var/site/storage/original/moved.pdf").await.unwrap();
    assert!(!c.exists(copy).await.unwrap());
    assert_eq!(
        c.fetch("var/site/storage/original/moved.pdf").await.unwrap(),
        c.fetch(&names[2]).await.unwrap()
    );
    drop(db);
}

/// What a variant cannot hold fails with an error naming the fix, and leaves no row behind.
async fn what_does_not_fit_is_refused_cleanly(schema: Schema) {
    let (db, c, _mount) = site(schema).await;
    let emoji = "var/site/storage/original/application/emoji 😀.pdf";
    let stored = c.store(emoji, b"x", &labels("binaryfile", "application/pdf")).await;
    if schema.holds_4_byte_utf8() {
        stored.unwrap();
        assert_eq!(c.fetch(emoji).await.unwrap(), b"x");
    } else {
        let message = stored.unwrap_err().to_string();
        assert!(
            message.contains("character set") && message.contains("ezdb schema check"),
            "{message}"
        );
        for table in c.meta_tables() {
            let rows = count(&db, &format!("SELECT COUNT(*) FROM {table}")).await;
            assert_eq!(rows, 0, "no corrupt row in {table}");
        }
    }
    let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    let stored = c
        .store("var/site/storage/original/a.docx", b"doc", &labels("binaryfile", docx))
        .await;
    if schema == Schema::LegacyDatatype60 {
        let message = stored.unwrap_err().to_string();
        assert!(message.contains("ezdb schema upgrade"), "{message}");
        assert!(c.stat("var/site/storage/original/a.docx").await.unwrap().is_none());
    } else {
        stored.unwrap();
        assert_eq!(
            c.stat("var/site/storage/original/a.docx")
                .await
                .unwrap()
                .unwrap()
                .datatype,
            docx
        );
    }
}

/// process_cache: generate once, then hit; the generation lock row is the legacy one.
async fn caches_generate_and_hit(schema: Schema) {
    let (_db, c, _mount) = site(schema).await;
    let policy = CachePolicy {
        store: labels("viewcache", "php"),
        ..Default::default()
    };
    let generated = c
        .process_cache(VIEW, &policy, || async { Ok::<_, std::io::Error>(b"page".to_vec()) })
        .await
        .unwrap();
    assert_eq!(generated.source, CacheSource::Generated);
    let hit = c
        .process_cache(VIEW, &policy, || async { Ok::<_, std::io::Error>(b"again".to_vec()) })
        .await
        .unwrap();
    assert_eq!((hit.source, hit.content.as_slice()), (CacheSource::Hit, &b"page"[..]));
    let ezdb_core::Generation::Acquired(lock) = c.start_generation(VIEW, None).await.unwrap() else {
        panic!("{schema:?}: no lock on a free entry");
    };
    assert!(c.stat(&format!("{VIEW}.generating")).await.unwrap().is_some());
    c.abort_generation(lock).await.unwrap();
}

/// Global expiry goes through the clustered expiry.php (and ezdbfile_expiry where it exists):
/// a clear made by ezdb is in the file legacy nodes read, and one a legacy node writes is seen.
async fn clears_reach_legacy_nodes_and_back(schema: Schema) {
    let (db, c, _mount) = site(schema).await;
    c.store(
        VIEW,
        b"view",
        &StoreOptions {
            mtime: Some(c.now() - 100),
            ..labels("viewcache", "php")
        },
    )
    .await
    .unwrap();
    assert!(c.exists(VIEW).await.unwrap());
    let at = c
        .set_global_expiry("content-view-cache", Some(c.now() - 50))
        .await
        .unwrap();
    assert!(!c.exists(VIEW).await.unwrap(), "our own clear is honoured");
    let legacy = LegacyNode::new(&db.url);
    let php = legacy
        .fetch_contents(EXPIRY_FILE)
        .await
        .expect("expiry.php written for legacy nodes");
    let php = String::from_utf8(php).unwrap();
    assert!(php.contains(&format!("'content-view-cache' => {at}")), "{php}");

    // A legacy node clears the template-block cache: it rewrites the whole expiry.php.
    let block = "var/site/cache/template-block/subtree/1/cache/1/1.cache";
    c.store(
        block,
        b"block",
        &StoreOptions {
            mtime: Some(c.now() - 100),
            ..labels("template-block", "php")
        },
    )
    .await
    .unwrap();
    let other = Cluster::connect(ClusterConfig {
        legacy_expiry_file: Some(EXPIRY_FILE.into()),
        ..ClusterConfig::new(&db.url)
    })
    .await
    .unwrap();
    assert!(other.exists(block).await.unwrap());
    let legacy_clear = c.now() - 10;
    let rewritten = format!(
        "<?php\n$Timestamps = array( 'content-view-cache' => {at},\n'global-template-block-cache' => {legacy_clear} );\n?>\n"
    );
    legacy
        .store_contents(EXPIRY_FILE, rewritten.as_bytes(), "expirycache", c.now() + 1)
        .await;
    assert!(!c.exists(block).await.unwrap(), "a legacy clear is seen at once");
    assert!(!other.exists(block).await.unwrap());
    assert_eq!(
        c.global_expiry("global-template-block-cache").await.unwrap(),
        Some(legacy_clear)
    );
    // Our next clear keeps the legacy node's key.
    c.set_global_expiry("user-info-cache", None).await.unwrap();
    let php = String::from_utf8(legacy.fetch_contents(EXPIRY_FILE).await.unwrap()).unwrap();
    assert!(
        php.contains(&format!("'global-template-block-cache' => {legacy_clear}")),
        "{php}"
    );
}

/// Case and accent: every matching operation is byte-exact on the site's collation.
async fn matching_is_byte_exact(schema: Schema) {
    let (_db, c, _mount) = site(schema).await;
    let dir = "var/site/storage/m";
    let store = |name: String, scope: &'static str| {
        let c = c.clone();
        async move { c.store(&name, b"x", &labels(scope, "text/plain")).await.unwrap() }
    };
    for name in ["Abc-1", "abc-1", "ABC-2", "é-1", "e-3", "E-4", "Xfile", "xfile"] {
        store(format!("{dir}/{name}"), "binaryfile").await;
    }
    store(format!("{dir}/scoped"), "MyScope").await;
    // Names an index range on a `_bin` collation used to miss: a 4-byte character or a tab
    // right after the prefix.
    let mut tricky = vec![format!("{dir}/t/\tz")];
    if schema.holds_4_byte_utf8() {
        tricky.push(format!("{dir}/t/😀x"));
    }
    for name in &tricky {
        store(name.clone(), "binaryfile").await;
    }
    store("var/site/cache/content/S1/2-a.cache".into(), "viewcache").await;
    store("var/site/cache/content/s1/2-a.cache".into(), "viewcache").await;

    assert_eq!(
        c.delete_prefix(&format!("{dir}/t"), "").await.unwrap(),
        tricky.len() as u64
    );
    // No such name; on latin1 a prefix the column cannot hold matches nothing, and is no error.
    assert_eq!(c.delete_prefix(dir, "日本").await.unwrap(), 0);
    assert_eq!(c.delete_wildcard(&format!("{dir}/日本*")).await.unwrap(), 0);
    assert_eq!(
        c.delete_by_dir_list(&["日本"], "var/site/cache/content", "2-")
            .await
            .unwrap(),
        0
    );
    assert_eq!(c.delete_prefix(dir, "Abc").await.unwrap(), 1);
    assert!(c.exists(&format!("{dir}/abc-1")).await.unwrap());
    assert!(c.exists(&format!("{dir}/ABC-2")).await.unwrap());
    assert_eq!(c.delete_prefix(dir, "é").await.unwrap(), 1);
    assert!(c.exists(&format!("{dir}/e-3")).await.unwrap());
    assert!(c.exists(&format!("{dir}/E-4")).await.unwrap());
    assert_eq!(c.delete_wildcard(&format!("{dir}/X*")).await.unwrap(), 1);
    assert!(c.exists(&format!("{dir}/xfile")).await.unwrap());
    assert_eq!(c.delete_wildcard(&format!("{dir}/?-3")).await.unwrap(), 1);
    assert!(c.exists(&format!("{dir}/E-4")).await.unwrap());
    assert_eq!(
        c.delete_by_dir_list(&["S1"], "var/site/cache/content", "2-")
            .await
            .unwrap(),
        1
    );
    assert!(c.exists("var/site/cache/content/s1/2-a.cache").await.unwrap());
    assert_eq!(
        c.list(&ScopeFilter::Only(vec!["myscope".into()])).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        c.list(&ScopeFilter::Only(vec!["MyScope".into()])).await.unwrap().len(),
        1
    );
    let not_mine = c
        .list(&ScopeFilter::AllBut(vec!["myscope".into(), "binaryfile".into()]))
        .await
        .unwrap();
    assert!(not_mine.iter().any(|n| n.ends_with("/scoped")), "{not_mine:?}");
    let purged = c
        .purge_matching(
            &Selector::Prefix(format!("{dir}/")),
            PurgeFilter::Expired,
            Batches {
                size: 100,
                pause: Duration::ZERO,
                max_batches: None,
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        purged,
        4 + tricky.len() as u64,
        "the files deleted above, no case variant"
    );
}

/// The batched stat of index_image's background revalidation: one answer per name, as one stat
/// each would give, for names that differ only by case or accent (a legacy node wrote some of
/// them), and with a legacy node's clear through expiry.php.
async fn batched_stats_beside_a_legacy_node(schema: Schema) {
    let (db, c, _mount) = site(schema).await;
    check_stat_many(&c).await;
    let legacy = LegacyNode::new(&db.url);
    let dir = "var/site/storage/images/case";
    let ours = [format!("{dir}/Abc.png"), format!("{dir}/e.png")];
    let theirs = [format!("{dir}/abc.png"), format!("{dir}/\u{e9}.png")];
    for (i, name) in ours.iter().enumerate() {
        c.store(name, &vec![b'o'; 10 + i], &labels("image", "image/png"))
            .await
            .unwrap();
    }
    for (i, name) in theirs.iter().enumerate() {
        legacy.store_contents(name, &vec![b't'; 20 + i], "image", c.now()).await;
    }
    // A key check_stat_many left alone: it set the template-block key an hour ahead, and where
    // ezdb's expiry table keeps that key too, a legacy rewrite of expiry.php does not move it back.
    let view = "var/site/cache/content/site/case-1.cache";
    c.store(
        view,
        b"block",
        &StoreOptions {
            mtime: Some(c.now() - 100),
            ..labels("viewcache", "php")
        },
    )
    .await
    .unwrap();
    let cleared = c.now() - 10;
    let php = format!("<?php\n$Timestamps = array( 'content-view-cache' => {cleared} );\n?>\n");
    legacy
        .store_contents(EXPIRY_FILE, php.as_bytes(), "expirycache", c.now() + 1)
        .await;
    let missing = format!("{dir}/ABC.png");
    let names = [&ours[0], &theirs[0], &missing, &ours[1], &theirs[1]]
        .map(String::as_str)
        .to_vec();
    let names = [names, vec![view]].concat();
    let batch = c.stat_many(&names).await.unwrap();
    let sizes: Vec<Option<u64>> = batch.iter().map(|m| m.as_ref().map(|m| m.size)).collect();
    assert_eq!(
        sizes,
        [Some(10), Some(20), None, Some(11), Some(21), Some(5)],
        "{names:?}"
    );
    for (name, meta) in names.iter().zip(&batch) {
        assert_eq!(meta, &c.stat(name).await.unwrap(), "{name}");
    }
    assert_eq!(
        batch[5].as_ref().and_then(|m| m.global_expiry),
        Some(cleared),
        "the legacy node's clear"
    );
}

/// One test per scenario of the list, on `$schema`.
macro_rules! scenarios {
    ($schema:expr, [$($scenario:ident),* $(,)?]) => {
        $(#[tokio::test]
        async fn $scenario() { super::$scenario($schema).await })*
    };
}

/// A module per schema variant, each running the scenarios of the list.
macro_rules! matrix {
    ($scenarios:tt $($variant:ident => $schema:expr),* $(,)?) => {
        $(mod $variant {
            use super::*;
            scenarios!($schema, $scenarios);
        })*
    };
}

matrix! {
    [files_round_trip, what_does_not_fit_is_refused_cleanly, caches_generate_and_hit,
     clears_reach_legacy_nodes_and_back, matching_is_byte_exact, batched_stats_beside_a_legacy_node]
    ezdb_schema => Schema::Ezdb,
    legacy_ddl => Schema::Legacy,
    legacy_latin1 => Schema::LegacyLatin1,
    legacy_utf8 => Schema::LegacyUtf8,
    legacy_datatype_60 => Schema::LegacyDatatype60,
}

// The layout-independent scenarios on the eZDFS schemas sites have: the legacy eZDFS DDL on the
// server's default collation and in latin1, and Ibexa's single table (the legacy node of
// clears_reach_legacy_nodes_and_back speaks eZDB SQL).
matrix! {
    [files_round_trip, what_does_not_fit_is_refused_cleanly, caches_generate_and_hit, matching_is_byte_exact]
    legacy_dfs => Schema::LegacyDfs,
    legacy_dfs_latin1 => Schema::LegacyDfsLatin1,
    ibexa_dfs => Schema::IbexaDfs,
}

/// A prefix delete on a large legacy table reads the name index, not the table.
#[tokio::test]
async fn prefix_matching_uses_the_name_index_on_the_legacy_schema() {
    let (db, c, _mount) = site(Schema::Legacy).await;
    let mut conn = raw(&db).await;
    // A session setting of this test's own connection.
    conn.execute("SET SESSION max_recursive_iterations = 30000")
        .await
        .unwrap();
    conn.execute(
        "INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         SELECT 'misc', CONCAT('var/site/cache/d', i % 100, '/f', i), CONCAT('var/site/cache/d', i % 100, '/f', i),
                MD5(CONCAT('var/site/cache/d', i % 100, '/f', i)), 'misc', 0, 1, 0 FROM n",
    )
    .await
    .unwrap();
    conn.execute("ANALYZE TABLE ezdbfile").await.unwrap();
    for selector in [
        Selector::Prefix("var/site/cache/d7/".into()),
        Selector::Glob("var/site/cache/d7/f*7".into()),
    ] {
        let plan = c.explain_matching(&selector).await.unwrap();
        assert_eq!(plan.access, "range", "{selector:?}: {plan:?}");
        assert!(plan.key.is_some(), "{plan:?}");
        assert!(
            plan.rows > 0 && plan.rows < 2_000,
            "{selector:?} examines {} of 20000 rows",
            plan.rows
        );
    }
    let trunk = c
        .explain_matching(&Selector::Trunk("var/site/cache/d7/f7".into()))
        .await
        .unwrap();
    assert_eq!(trunk.key.as_deref(), Some("ezdbfile_name_trunk"), "{trunk:?}");
    assert_eq!(
        c.delete_matching(&Selector::Prefix("var/site/cache/d7/".into()))
            .await
            .unwrap(),
        200
    );
}

/// Without the expiry file configured and without ezdb's table, a clear is refused with the fix.
#[tokio::test]
async fn a_clear_with_nowhere_to_go_names_the_fix() {
    let db = TestDb::create_with(Schema::Legacy).await;
    let c = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    let error = c.set_global_expiry("content-view-cache", None).await.unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error}");
    assert!(error.to_string().contains("legacy_expiry_file"), "{error}");
    // Everything else works on the two legacy tables alone.
    c.store(VIEW, b"v", &labels("viewcache", "php")).await.unwrap();
    assert!(c.exists(VIEW).await.unwrap());
}

/// A server with `max_allowed_packet = 1M`, still common on managed databases: every scenario of
/// the matrix on the legacy DDL, a 20 MB file stored and read back, and a chunk size that cannot
/// fit refused at connect with the fix.
#[tokio::test(flavor = "current_thread")]
async fn a_one_megabyte_packet_server_runs_every_scenario() {
    let server = ezdb_testdb::PrivateServer::start("packet-1m", &["--max-allowed-packet=1M"])
        .unwrap_or_else(|e| panic!("the 1 MB max_allowed_packet scenarios need a private MariaDB: {e}"));
    SERVER.with(|s| *s.borrow_mut() = Some(server.url()));
    // A server with no configuration defaults to latin1, as the servers eZDB was written for.
    let schema = Schema::LegacyLatin1;
    files_round_trip(schema).await;
    what_does_not_fit_is_refused_cleanly(schema).await;
    caches_generate_and_hit(schema).await;
    clears_reach_legacy_nodes_and_back(schema).await;
    matching_is_byte_exact(schema).await;

    let (db, c, _mount) = site(schema).await;
    let big = bytes(20 << 20, 20);
    let name = "var/site/storage/original/video/twenty.mp4";
    c.store(name, &big, &labels("mediafile", "video/mp4")).await.unwrap();
    assert!(
        c.fetch(name).await.unwrap() == big,
        "20 MB read back byte-exact through 1 MB packets"
    );
    let mut stream = c.open_stream(name, Visibility::Live, None).await.unwrap();
    let mut streamed = 0;
    while let Some(chunk) = stream.next_chunk().await {
        streamed += chunk.unwrap().len();
    }
    assert_eq!(streamed, big.len());

    // The server is this test's own: shrinking its packet limit touches no one else.
    raw(&db)
        .await
        .execute("SET GLOBAL max_allowed_packet = 32768")
        .await
        .unwrap();
    let Err(refused) = Cluster::connect(ClusterConfig::new(&db.url)).await else {
        panic!("a 64 KiB chunk cannot fit a 32 KiB packet: connect must refuse it");
    };
    let message = refused.to_string();
    assert!(
        matches!(refused, Error::Config(_)) && message.contains("max_allowed_packet"),
        "{message}"
    );
    let small_chunks = Cluster::connect(ClusterConfig::new(&db.url).with_chunk_size(8192))
        .await
        .unwrap();
    small_chunks
        .store(name, &big[..100_000], &labels("mediafile", "video/mp4"))
        .await
        .unwrap();
    assert!(small_chunks.fetch(name).await.unwrap() == big[..100_000]);
    SERVER.with(|s| *s.borrow_mut() = None);
    drop((c, small_chunks, db));
    server.stop();
}
