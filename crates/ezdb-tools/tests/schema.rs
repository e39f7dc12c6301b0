// `ezdb schema check` and `ezdb schema upgrade`, the real binary on real MariaDB databases with
// each schema sites have (ezdb_testdb::Schema) plus MyISAM, missing-foreign-key, unsigned-mtime,
// MEDIUMINT-offset and missing-table variants: check reports exactly the right findings and exit
// code; a dry run changes nothing; upgrade fixes what it says; legacy nodes' statements (and an
// ezdb node) keep working on the upgraded tables.

mod common;

use common::{failed, ok};
use ezdb_core::{Cluster, ClusterConfig, StoreOptions};
use ezdb_testdb::{LegacyNode, Schema, TestDb, LEGACY_CHUNK_SIZE};
use serde_json::Value;
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor, Row};
use std::process::{Command, Output};

fn ezdb(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ezdb"))
        .env("EZDB_URL", &db.url)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whitespace runs as one space: statements are printed indented.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `ezdb schema check --json`: the report, and whether it exited zero.
fn check(db: &TestDb) -> (Value, bool) {
    let output = ezdb(db, &["schema", "check", "--json"]);
    (json(&stdout(&output)), output.status.success())
}

/// (kind, severity) of each finding, in order.
fn kinds(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(k, s)| (k.to_string(), s.to_string())).collect()
}

async fn connect(db: &TestDb) -> MySqlConnection {
    MySqlConnection::connect(&db.url).await.unwrap()
}

async fn exec(db: &TestDb, sql: &str) {
    connect(db)
        .await
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The database's default character set and collation: what the legacy DDL's tables get.
async fn database_default(db: &TestDb) -> (String, String) {
    sqlx::query_as(
        "SELECT CAST(DEFAULT_CHARACTER_SET_NAME AS CHAR), CAST(DEFAULT_COLLATION_NAME AS CHAR)
         FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(&db.name)
    .fetch_one(&mut connect(db).await)
    .await
    .unwrap()
}

/// Every table's `SHOW CREATE TABLE`: equal before and after means nothing changed.
async fn snapshot(db: &TestDb) -> Vec<String> {
    let mut conn = connect(db).await;
    let tables: Vec<(String,)> = sqlx::query_as("SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut ddl = Vec::new();
    for (table,) in tables {
        let row = conn
            .fetch_one(format!("SHOW CREATE TABLE `{table}`").as_str())
            .await
            .unwrap();
        ddl.push(row.get::<String, _>(1));
    }
    ddl
}

/// The findings a legacy DDL variant must report, given the database default it was created with.
fn expected_findings(schema: Schema, charset: &str, collation: &str) -> Vec<(String, String)> {
    let mut expected: Vec<(&str, &str)> = Vec::new();
    if schema == Schema::Ezdb {
        return Vec::new();
    }
    if schema == Schema::LegacyDatatype60 {
        expected.push(("datatype-length", "warning"));
    }
    if charset != "utf8mb4" {
        expected.push(("charset", "warning"));
    }
    if !collation.ends_with("_bin") {
        expected.push(("collation", "info"));
    }
    expected.push(("optional-table", "info"));
    pairs(&expected)
}

/// The statements a legacy node runs (ezdb_testdb::LegacyNode: the store upsert and chunk upserts,
/// reads by `name_hash = MD5(...)`, the `.generating` insert, the soft delete by LIKE, the purge),
/// over a utf8mb4 connection, each doing what legacy expects. With `exact`, the tables are
/// byte-exact: an upper-case LIKE no longer deletes lower-case names.
async fn legacy_node_works(db: &TestDb, dir: &str, name: &str, datatype: &str, exact: bool) {
    legacy_node_works_as(LegacyNode::new(&db.url), db, dir, name, datatype, exact).await
}

async fn legacy_node_works_as(node: LegacyNode, db: &TestDb, dir: &str, name: &str, datatype: &str, exact: bool) {
    let path = format!("{dir}/{name}");
    let now = 1_900_000_000i64;
    let big: Vec<u8> = (0..LEGACY_CHUNK_SIZE * 2 + 10).map(|i| (i % 251) as u8).collect();
    node.store_contents_as(&path, b"first version", "binaryfile", datatype, now)
        .await;
    node.store_contents_as(&path, &big, "binaryfile", datatype, now + 1)
        .await;
    assert_eq!(
        node.fetch_contents(&path).await.as_deref(),
        Some(&big[..]),
        "upserted in place"
    );
    let (stored_type, stored_name, size): (String, String, u64) = sqlx::query_as(
        "SELECT CAST(datatype AS CHAR), CAST(name AS CHAR), size FROM ezdbfile WHERE name_hash = MD5(?)",
    )
    .bind(&path)
    .fetch_one(&mut connect(db).await)
    .await
    .unwrap();
    assert_eq!(
        (stored_type.as_str(), stored_name.as_str(), size),
        (datatype, path.as_str(), big.len() as u64)
    );

    assert!(node.start_cache_generation(&path, now).await, "the lock is free");
    assert!(
        !node.start_cache_generation(&path, now).await,
        "the lock is held (1062)"
    );
    if exact {
        let upper = format!("{}%", dir.to_uppercase());
        assert_eq!(
            node.delete_like(&upper).await,
            0,
            "a byte-exact table: {upper} matches no lower-case name"
        );
    }
    assert_eq!(
        node.delete_like(&format!("{dir}/%")).await,
        2,
        "the soft delete by prefix takes the file and its lock"
    );
    assert_eq!(
        node.fetch_contents(&path).await,
        None,
        "deleted: mtime = -ABS(mtime), expired = 1"
    );
    node.purge(&path).await;
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ezdbfile_data WHERE name_hash = MD5(?)")
        .bind(&path)
        .fetch_one(&mut connect(db).await)
        .await
        .unwrap();
    assert_eq!(left, 0, "the purge of the row took its chunks (ON DELETE CASCADE)");
}

/// An ezdb node stores and reads back a name with a 4-byte character on the upgraded tables.
async fn ezdb_node_works(db: &TestDb) {
    let cluster = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    let name = "var/site/storage/original/application/😀-Ünïcode-漢字.docx";
    let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    cluster
        .store(name, b"ezdb bytes", &StoreOptions::new("binaryfile", docx))
        .await
        .unwrap();
    assert_eq!(cluster.fetch(name).await.unwrap(), b"ezdb bytes");
    assert_eq!(cluster.stat(name).await.unwrap().unwrap().datatype, docx);
}

/// A name and MIME type that need every fix: a 4-byte character, non-Latin-1 letters, the long
/// .docx type. (Not a 4-byte character first: MariaDB 10.11's indexed `LIKE 'dir/%'` on a
/// utf8mb4_bin column misses names whose first character after the prefix is one; the collation
/// finding says so.)
const HARD_NAME: &str = "Ünïcode-漢字-😀.docx";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// Check, dry run, online upgrade, offline upgrade, with the legacy statements after each.
async fn check_and_upgrade(db: &TestDb, expected: &[(String, String)]) {
    let (report, success) = check(db);
    assert_eq!(&kinds(&report), expected, "{report:#}");
    assert!(success, "these findings do not break ezdb: exit 0");
    assert_eq!(report["compatible"], true);
    let findings = report["findings"].as_array().unwrap().clone();
    let human = squeeze(&ok(&ezdb(db, &["schema", "check"])));
    for finding in &findings {
        assert!(human.contains(finding["found"].as_str().unwrap()), "{human}");
        assert!(human.contains(finding["breaks"].as_str().unwrap()), "{human}");
        for statement in finding["fix"]["statements"].as_array().unwrap() {
            assert!(human.contains(&squeeze(statement.as_str().unwrap())), "{human}");
        }
    }

    let before = snapshot(db).await;
    let dry = squeeze(&ok(&ezdb(db, &["schema", "upgrade", "--dry-run"])));
    for statement in findings.iter().flat_map(|f| f["fix"]["statements"].as_array().unwrap()) {
        assert!(
            dry.contains(&squeeze(statement.as_str().unwrap())),
            "dry run prints {statement}: {dry}"
        );
    }
    let dry_json = json(&ok(&ezdb(
        db,
        &["schema", "upgrade", "--dry-run", "--allow-offline", "--json"],
    )));
    assert!(dry_json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["outcome"] == "would-apply"));
    assert_eq!(snapshot(db).await, before, "a dry run changes nothing");

    let online = json(&ok(&ezdb(db, &["schema", "upgrade", "--json"])));
    for step in online["steps"].as_array().unwrap() {
        let expected = if step["online"] == true {
            "applied"
        } else {
            "needs-maintenance-window"
        };
        assert_eq!(step["outcome"], expected, "{step:#}");
    }
    let offline: Vec<(String, String)> = findings
        .iter()
        .filter(|f| f["fix"]["online"] == false)
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (after_online, success) = check(db);
    assert!(success);
    assert_eq!(kinds(&after_online), offline, "what remains is what needs a window");
    legacy_node_works(db, "var/site/storage/online", "plain.txt", "text/plain", false).await;

    let full = ok(&ezdb(db, &["schema", "upgrade", "--allow-offline"]));
    assert!(full.contains("every table is now as ezdb creates it"), "{full}");
    let (after, success) = check(db);
    assert!(success);
    assert_eq!(kinds(&after), vec![], "{after:#}");
    assert!(ok(&ezdb(db, &["schema", "check"])).contains("compatible"));
    legacy_node_works(db, "var/site/storage/upgraded", HARD_NAME, DOCX, true).await;
    let utf8 = LegacyNode::new(&db.url).with_names("utf8");
    legacy_node_works_as(utf8, db, "var/site/storage/utf8", "Ünïcode-漢字.docx", DOCX, true).await;
    ezdb_node_works(db).await;
}

#[tokio::test]
async fn every_schema_sites_have_is_checked_and_upgraded_without_breaking_legacy_nodes() {
    for schema in Schema::ALL {
        let db = TestDb::create_with(schema).await;
        let (charset, collation) = database_default(&db).await;
        let expected = expected_findings(schema, &charset, &collation);
        if schema == Schema::Ezdb {
            let (report, success) = check(&db);
            assert!(success && kinds(&report).is_empty(), "{report:#}");
            let before = snapshot(&db).await;
            let upgrade = ok(&ezdb(&db, &["schema", "upgrade", "--allow-offline"]));
            assert!(upgrade.contains("0 fix(es) applied"), "{upgrade}");
            assert_eq!(snapshot(&db).await, before);
            legacy_node_works(&db, "var/site/storage/ezdb", HARD_NAME, DOCX, true).await;
            continue;
        }
        match schema {
            Schema::LegacyLatin1 => assert_eq!(charset, "latin1"),
            Schema::LegacyUtf8 => assert_eq!(charset, "utf8mb3"),
            _ => {}
        }
        let (report, _) = check(&db);
        if let Some(charset_finding) = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "charset")
        {
            assert!(charset_finding["breaks"].as_str().unwrap().contains("error 1366"));
            assert_eq!(
                charset_finding["fix"]["online"], false,
                "a conversion rebuilds the table"
            );
        }
        check_and_upgrade(&db, &expected).await;
    }
}

#[tokio::test]
async fn a_latin1_table_refuses_what_it_cannot_hold_until_upgraded() {
    let db = TestDb::create_with(Schema::LegacyLatin1).await;
    let mut conn = connect(&db).await;
    let refused = sqlx::query("INSERT INTO ezdbfile (name, name_trunk, name_hash) VALUES (?, ?, MD5(?))")
        .bind("漢字")
        .bind("漢字")
        .bind("漢字")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("1366"), "{refused}");
    ok(&ezdb(&db, &["schema", "upgrade", "--allow-offline"]));
    legacy_node_works(&db, "var/site/storage/cjk", "漢字.txt", "text/plain", true).await;
}

#[tokio::test]
async fn myisam_tables_lose_crash_safety_and_convert_only_in_a_maintenance_window() {
    // latin1, as the sites that still have MyISAM tables: utf8mb4 name indexes exceed MyISAM's keys.
    let db = TestDb::create_with(Schema::LegacyLatin1).await;
    let (charset, collation) = database_default(&db).await;
    exec(&db, "ALTER TABLE ezdbfile_data DROP FOREIGN KEY ezdbfile_fk1").await;
    exec(&db, "ALTER TABLE ezdbfile_data ENGINE=MyISAM").await;
    exec(&db, "ALTER TABLE ezdbfile ENGINE=MyISAM").await;
    let mut expected = vec![("engine", "warning"), ("engine", "warning")];
    if charset != "utf8mb4" {
        expected.push(("charset", "warning"));
    }
    if !collation.ends_with("_bin") {
        expected.push(("collation", "info"));
    }
    expected.extend([("foreign-key", "warning"), ("optional-table", "info")]);
    let (report, success) = check(&db);
    assert_eq!(kinds(&report), pairs(&expected), "{report:#}");
    assert!(success);
    assert!(report["findings"][0]["breaks"]
        .as_str()
        .unwrap()
        .contains("crash safety lost"));
    assert_eq!(
        report["findings"][0]["fix"]["statements"][0],
        "ALTER TABLE `ezdbfile` ENGINE=InnoDB"
    );

    let online = json(&ok(&ezdb(&db, &["schema", "upgrade", "--json"])));
    let outcomes: Vec<&str> = online["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.last(),
        Some(&"applied"),
        "the optional table is created online: {online:#}"
    );
    assert!(
        outcomes[..outcomes.len() - 1]
            .iter()
            .all(|o| *o == "needs-maintenance-window"),
        "{online:#}"
    );
    let engines: Vec<(String,)> =
        sqlx::query_as("SELECT CAST(ENGINE AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('ezdbfile', 'ezdbfile_data')")
            .fetch_all(&mut connect(&db).await)
            .await
            .unwrap();
    assert!(
        engines.iter().all(|(e,)| e == "MyISAM"),
        "nothing offline ran: {engines:?}"
    );

    ok(&ezdb(&db, &["schema", "upgrade", "--allow-offline"]));
    let (after, _) = check(&db);
    assert_eq!(
        kinds(&after),
        vec![],
        "InnoDB, then the foreign key in a later round: {after:#}"
    );
    legacy_node_works(&db, "var/site/storage/myisam", HARD_NAME, DOCX, true).await;
}

#[tokio::test]
async fn a_missing_foreign_key_is_added_online_and_purges_take_the_chunks_again() {
    let db = TestDb::create_with(Schema::Ezdb).await;
    exec(&db, "ALTER TABLE ezdbfile_data DROP FOREIGN KEY ezdbfile_fk1").await;
    exec(&db, "INSERT INTO ezdbfile_data VALUES (MD5('gone'), 0, 'stray')").await;
    let (report, success) = check(&db);
    assert_eq!(kinds(&report), pairs(&[("foreign-key", "warning")]));
    assert!(success);
    assert!(report["findings"][0]["breaks"]
        .as_str()
        .unwrap()
        .contains("chunks stay behind"));
    assert_eq!(report["findings"][0]["fix"]["online"], true);
    let upgrade = json(&ok(&ezdb(&db, &["schema", "upgrade", "--json"])));
    assert_eq!(upgrade["steps"][0]["outcome"], "applied", "{upgrade:#}");
    assert_eq!(upgrade["steps"][0]["detail"]["ran_online"], true);
    assert_eq!(kinds(&check(&db).0), vec![]);
    let (stray,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ezdbfile_data")
        .fetch_one(&mut connect(&db).await)
        .await
        .unwrap();
    assert_eq!(stray, 1, "existing stray chunks are kept for `ezdb check --repair`");
    legacy_node_works(&db, "var/site/storage/fk", "f.txt", "text/plain", true).await;
}

#[tokio::test]
async fn a_mediumint_offset_caps_files_at_16_mib_until_rebuilt() {
    let db = TestDb::create_with(Schema::Ezdb).await;
    exec(
        &db,
        "ALTER TABLE ezdbfile_data MODIFY `offset` MEDIUMINT(8) UNSIGNED NOT NULL",
    )
    .await;
    let (report, success) = check(&db);
    assert_eq!(kinds(&report), pairs(&[("offset-type", "warning")]));
    assert!(success);
    let finding = &report["findings"][0];
    assert!(finding["breaks"].as_str().unwrap().contains("16 MiB"), "{finding:#}");
    assert_eq!(finding["fix"]["online"], false);
    assert_eq!(
        finding["fix"]["statements"][0],
        "ALTER TABLE `ezdbfile_data` MODIFY `offset` INT(11) UNSIGNED NOT NULL"
    );
    let skipped = ok(&ezdb(&db, &["schema", "upgrade"]));
    assert!(skipped.contains("--allow-offline"), "{skipped}");
    ok(&ezdb(&db, &["schema", "upgrade", "--allow-offline"]));
    assert_eq!(kinds(&check(&db).0), vec![]);
}

#[tokio::test]
async fn what_breaks_ezdb_exits_non_zero_and_install_points_to_upgrade() {
    let db = TestDb::create_with(Schema::Ezdb).await;
    exec(
        &db,
        "ALTER TABLE ezdbfile MODIFY mtime INT(11) UNSIGNED NOT NULL DEFAULT '0'",
    )
    .await;
    let (report, success) = check(&db);
    assert!(!success);
    assert_eq!(report["compatible"], false);
    assert_eq!(kinds(&report), pairs(&[("column-type", "error")]));
    assert!(report["findings"][0]["breaks"].as_str().unwrap().contains("1264"));
    let line = failed(&ezdb(&db, &["schema", "check"]));
    assert!(
        line.contains("break ezdb") && line.contains("ezdb schema upgrade"),
        "{line}"
    );
    let install = failed(&ezdb(&db, &["schema", "install"]));
    assert!(
        install.contains("ezdb schema upgrade"),
        "install never changes a table: {install}"
    );
    let online = failed(&ezdb(&db, &["schema", "upgrade"]));
    assert!(online.contains("--allow-offline"), "{online}");
    ok(&ezdb(&db, &["schema", "upgrade", "--allow-offline"]));
    assert!(ok(&ezdb(&db, &["schema", "check"])).contains("compatible"));
}

#[tokio::test]
async fn a_missing_table_breaks_ezdb_and_upgrade_or_install_create_it() {
    for command in ["install", "upgrade"] {
        let db = TestDb::create_with(Schema::Legacy).await;
        exec(&db, "DROP TABLE ezdbfile_data").await;
        let (report, success) = check(&db);
        assert!(!success);
        assert_eq!(kinds(&report)[0], ("missing-table".to_owned(), "error".to_owned()));
        assert!(failed(&ezdb(&db, &["schema", "check"])).contains("table ezdbfile_data is missing"));
        let done = ok(&ezdb(&db, &["schema", command]));
        assert!(done.contains("ezdb schema") || done.contains("applied"), "{done}");
        let (after, success) = check(&db);
        assert!(success, "{after:#}");
        assert!(!kinds(&after).iter().any(|(k, _)| k == "missing-table"));
    }
}

#[tokio::test]
async fn an_upgrade_behind_an_open_transaction_gives_up_at_its_deadline_instead_of_queueing_the_site() {
    let db = TestDb::create_with(Schema::Ezdb).await;
    exec(&db, "ALTER TABLE ezdbfile_data DROP FOREIGN KEY ezdbfile_fk1").await;
    let mut legacy = connect(&db).await;
    legacy.execute("BEGIN").await.unwrap();
    legacy.execute("SELECT COUNT(*) FROM ezdbfile_data").await.unwrap();
    let started = std::time::Instant::now();
    let line = failed(&ezdb(&db, &["schema", "upgrade", "--lock-wait-timeout=1"]));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "gave up at its deadline"
    );
    assert!(
        line.contains("--lock-wait-timeout") && line.contains("as it was"),
        "{line}"
    );
    assert_eq!(
        kinds(&check(&db).0),
        pairs(&[("foreign-key", "warning")]),
        "nothing changed"
    );
    legacy.execute("COMMIT").await.unwrap();
    ok(&ezdb(&db, &["schema", "upgrade", "--lock-wait-timeout=1"]));
    assert_eq!(kinds(&check(&db).0), vec![]);
}

#[tokio::test]
async fn a_legacy_node_keeps_writing_while_the_online_upgrade_runs() {
    let db = TestDb::create_with(Schema::Ezdb).await;
    exec(&db, "ALTER TABLE ezdbfile_data DROP FOREIGN KEY ezdbfile_fk1").await;
    exec(&db, "ALTER TABLE ezdbfile DROP INDEX ezdbfile_mtime").await;
    exec(
        &db,
        "INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, size, mtime)
         SELECT CONCAT('var/site/cache/bulk/', seq), CONCAT('var/site/cache/bulk/', seq),
                MD5(CONCAT('var/site/cache/bulk/', seq)), 'viewcache', 3, seq FROM seq_1_to_100000",
    )
    .await;
    exec(
        &db,
        "INSERT INTO ezdbfile_data SELECT name_hash, 0, 'abc' FROM ezdbfile",
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, stop) = (db.url.clone(), stop.clone());
        tokio::spawn(async move {
            let node = LegacyNode::new(&url);
            let mut written = 0u32;
            while written < 5 || !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("var/site/storage/during/{written}.txt");
                node.store_contents(&name, b"abc", "binaryfile", 1_900_000_000).await;
                written += 1;
            }
            written
        })
    };
    let url = db.url.clone();
    let upgrade = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ezdb"))
            .env("EZDB_URL", url)
            .args(["schema", "upgrade", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = tokio::time::timeout(std::time::Duration::from_secs(30), writer)
        .await
        .expect("the legacy writer was never blocked for long")
        .unwrap();
    let report = json(&ok(&upgrade));
    let outcomes: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["applied", "applied"],
        "index and foreign key, online: {report:#}"
    );
    assert_eq!(kinds(&check(&db).0), vec![]);
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ezdbfile WHERE name LIKE 'var/site/storage/during/%'")
        .fetch_one(&mut connect(&db).await)
        .await
        .unwrap();
    assert_eq!(
        rows,
        i64::from(written),
        "every legacy write during the upgrade is there"
    );
}

#[tokio::test]
async fn the_core_api_reports_typed_findings_and_uses_a_table_the_upgrade_created_at_once() {
    use ezdb_core::schema::{FindingKind, Severity, StepOutcome, UpgradeOptions};
    let db = TestDb::create_with(Schema::Legacy).await;
    let cluster = Cluster::connect(ClusterConfig::new(&db.url)).await.unwrap();
    let findings = cluster.inspect_schema().await.unwrap();
    let optional = findings.iter().find(|f| f.kind == FindingKind::OptionalTable).unwrap();
    assert_eq!(
        (optional.severity, optional.table.as_str()),
        (Severity::Info, "ezdbfile_expiry")
    );
    assert!(optional.fix.as_ref().unwrap().online);
    assert!(!findings.iter().any(|f| f.breaks_ezdb()));
    assert_eq!(
        cluster.check_schema().await.unwrap().len(),
        findings.len(),
        "one line per finding"
    );
    let err = cluster.set_global_expiry("content-view-cache", None).await.unwrap_err();
    assert!(err.to_string().contains("ezdbfile_expiry"), "{err}");

    let dry = cluster
        .upgrade_schema(&UpgradeOptions {
            dry_run: true,
            ..UpgradeOptions::default()
        })
        .await
        .unwrap();
    assert!(dry.steps.iter().all(|s| matches!(
        s.outcome,
        StepOutcome::WouldApply | StepOutcome::NeedsMaintenanceWindow { .. }
    )));
    let report = cluster.upgrade_schema(&UpgradeOptions::default()).await.unwrap();
    assert!(!report.failed(), "{report:?}");
    assert!(report.steps.iter().any(
        |s| s.outcome == StepOutcome::Applied { online: true } && s.findings[0].kind == FindingKind::OptionalTable
    ));
    let at = cluster.set_global_expiry("content-view-cache", None).await.unwrap();
    assert!(
        at > 0,
        "the handle uses the table the upgrade created, without reconnecting"
    );
}
