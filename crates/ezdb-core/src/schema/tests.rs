// The rules of the schema inspection on databases described by hand: no server needed.

use super::findings::{evaluate, FindingKind, Severity, COLUMNS, ONLINE_DDL};
use super::observe::{ColumnFacts, ForeignKeyFacts, IndexFacts, Observed, TableFacts};

#[test]
fn schema_file_has_three_tables_and_quotes_offset() {
    let statements: Vec<String> = super::statements().collect();
    assert_eq!(statements.len(), 3);
    assert!(statements.iter().all(|s| !s.contains(" offset ")));
    assert!(statements[1].contains("`offset`"));
}

#[test]
fn column_definitions_are_those_of_the_schema_file() {
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for spec in COLUMNS {
        let ddl = squeeze(&super::table_ddl(spec.table).unwrap());
        let name = if spec.name == "offset" { "`offset`" } else { spec.name };
        let definition = format!("{name} {} {}", spec.ty, spec.rest);
        assert!(ddl.contains(&definition), "{definition} not in {ddl}");
    }
}

/// The facts of a database as `sql/mysql/schema.sql` creates it, with `charset`/`collation`.
fn ezdb_like(charset: &str, collation: &str) -> Observed {
    let tables = ["ezdbfile", "ezdbfile_data", "ezdbfile_expiry"]
        .map(|name| TableFacts {
            name: name.to_owned(),
            engine: "InnoDB".to_owned(),
            row_format: "Dynamic".to_owned(),
        })
        .to_vec();
    let bytes_per_char = if charset == "latin1" { 1 } else { 4 };
    let columns = COLUMNS
        .iter()
        .map(|spec| {
            let ty = spec.ty.to_ascii_lowercase().replace("bool", "tinyint(1)");
            let data_type = ty.split(['(', ' ']).next().unwrap().to_owned();
            let chars = match data_type.as_str() {
                "varchar" => ty[8..ty.len() - 1].parse::<u64>().ok(),
                "text" => Some(65535 / bytes_per_char),
                _ => None,
            };
            ColumnFacts {
                table: spec.table.to_owned(),
                name: spec.name.to_owned(),
                data_type: data_type.clone(),
                column_type: ty,
                max_chars: chars,
                max_bytes: chars.map(|c| c * bytes_per_char),
                charset: chars.map(|_| charset.to_owned()),
                collation: chars.map(|_| collation.to_owned()),
            }
        })
        .collect();
    let index = |table: &str, name: &str, columns: &[&str]| IndexFacts {
        table: table.to_owned(),
        name: name.to_owned(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
    };
    Observed {
        tables,
        columns,
        indexes: vec![
            index("ezdbfile", "PRIMARY", &["name_hash"]),
            index("ezdbfile", "ezdbfile_name", &["name"]),
            index("ezdbfile", "ezdbfile_name_trunk", &["name_trunk"]),
            index("ezdbfile", "ezdbfile_mtime", &["mtime"]),
            index("ezdbfile", "ezdbfile_expired_name", &["expired", "name"]),
            index("ezdbfile_data", "PRIMARY", &["name_hash", "offset"]),
            index("ezdbfile_expiry", "PRIMARY", &["name"]),
            index("ezdbfile_expiry", "ezdbfile_expiry_scope", &["scope"]),
        ],
        foreign_keys: vec![ForeignKeyFacts {
            name: "ezdbfile_fk1".to_owned(),
            table: "ezdbfile_data".to_owned(),
            referenced_table: "ezdbfile".to_owned(),
            delete_rule: "CASCADE".to_owned(),
        }],
    }
}

fn kinds(observed: &Observed) -> Vec<(FindingKind, Severity)> {
    evaluate(observed).iter().map(|f| (f.kind, f.severity)).collect()
}

fn column<'a>(observed: &'a mut Observed, table: &str, name: &str) -> &'a mut ColumnFacts {
    observed
        .columns
        .iter_mut()
        .find(|c| c.table == table && c.name == name)
        .unwrap()
}

#[test]
fn ezdbs_own_schema_has_no_findings() {
    assert_eq!(evaluate(&ezdb_like("utf8mb4", "utf8mb4_bin")), vec![]);
}

#[test]
fn latin1_reports_charset_and_collation_fixed_by_one_offline_conversion() {
    let mut observed = ezdb_like("latin1", "latin1_swedish_ci");
    observed.tables.retain(|t| t.name != "ezdbfile_expiry");
    let findings = evaluate(&observed);
    let found: Vec<_> = findings.iter().map(|f| (f.kind, f.severity)).collect();
    assert_eq!(
        found,
        vec![
            (FindingKind::Charset, Severity::Warning),
            (FindingKind::Collation, Severity::Info),
            (FindingKind::OptionalTable, Severity::Info),
        ]
    );
    assert!(findings[0].breaks.contains("1366"));
    assert_eq!(findings[0].subject, "datatype, name, name_trunk, scope");
    let fix = findings[0].fix.clone().unwrap();
    assert_eq!(Some(&fix), findings[1].fix.as_ref());
    assert!(!fix.online);
    assert_eq!(
        fix.statements,
        vec!["ALTER TABLE `ezdbfile` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, \
              MODIFY `datatype` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT 'application/octet-stream', \
              MODIFY `name` TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
              MODIFY `name_trunk` TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
              MODIFY `scope` VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT ''"]
    );
    assert!(findings[2].fix.as_ref().unwrap().online);
}

#[test]
fn utf8mb3_cannot_hold_4_byte_characters() {
    let findings = evaluate(&ezdb_like("utf8mb3", "utf8mb3_general_ci"));
    assert_eq!(findings[0].kind, FindingKind::Charset);
    assert!(findings[0].breaks.contains("4-byte"), "{}", findings[0].breaks);
    assert!(findings[1].breaks.contains("case- and accent-insensitively"));
}

#[test]
fn compact_row_format_is_converted_to_dynamic_with_the_character_set() {
    let mut observed = ezdb_like("utf8mb3", "utf8mb3_general_ci");
    observed.tables[0].row_format = "Compact".to_owned();
    let statement = evaluate(&observed)[0].fix.clone().unwrap().statements.remove(0);
    assert!(statement.starts_with("ALTER TABLE `ezdbfile` ROW_FORMAT=DYNAMIC, DEFAULT CHARACTER SET utf8mb4"));
}

#[test]
fn widening_datatype_is_online_only_while_the_length_prefix_stays_one_byte() {
    for (charset, online) in [("latin1", true), ("utf8mb4", false)] {
        let mut observed = ezdb_like(charset, &format!("{charset}_bin"));
        let datatype = column(&mut observed, "ezdbfile", "datatype");
        datatype.column_type = "varchar(60)".to_owned();
        datatype.max_chars = Some(60);
        datatype.max_bytes = Some(if charset == "latin1" { 60 } else { 240 });
        let findings = evaluate(&observed);
        let widen = findings.iter().find(|f| f.kind == FindingKind::DatatypeLength).unwrap();
        assert_eq!(widen.severity, Severity::Warning);
        assert!(widen.breaks.contains("1406"));
        let fix = widen.fix.as_ref().unwrap();
        assert_eq!(fix.online, online, "{charset}");
        assert_eq!(fix.statements[0].ends_with(ONLINE_DDL), online);
        assert!(fix.statements[0].contains(&format!(
            "MODIFY `datatype` VARCHAR(255) CHARACTER SET {charset} COLLATE {charset}_bin NOT NULL"
        )));
    }
}

#[test]
fn a_mediumint_offset_caps_files() {
    for (ty, cap) in [
        ("mediumint(8) unsigned", "16 MiB"),
        ("mediumint(9)", "8 MiB"),
        ("int(11)", "2 GiB"),
    ] {
        let mut observed = ezdb_like("utf8mb4", "utf8mb4_bin");
        let offset = column(&mut observed, "ezdbfile_data", "offset");
        offset.data_type = ty.split('(').next().unwrap().to_owned();
        offset.column_type = ty.to_owned();
        let findings = evaluate(&observed);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, FindingKind::OffsetType);
        assert!(findings[0].breaks.contains(cap), "{ty}: {}", findings[0].breaks);
        assert_eq!(
            findings[0].fix.as_ref().unwrap().statements,
            vec!["ALTER TABLE `ezdbfile_data` MODIFY `offset` INT(11) UNSIGNED NOT NULL"]
        );
    }
}

#[test]
fn myisam_loses_crash_safety_and_the_foreign_key_waits_for_innodb() {
    let mut observed = ezdb_like("utf8mb4", "utf8mb4_bin");
    for table in &mut observed.tables[..2] {
        table.engine = "MyISAM".to_owned();
    }
    observed.foreign_keys.clear();
    let findings = evaluate(&observed);
    assert_eq!(
        kinds(&observed),
        vec![
            (FindingKind::Engine, Severity::Warning),
            (FindingKind::Engine, Severity::Warning),
            (FindingKind::ForeignKey, Severity::Warning),
        ]
    );
    assert!(findings[0].breaks.contains("crash safety"));
    assert_eq!(
        findings[0].fix.as_ref().unwrap().statements,
        vec!["ALTER TABLE `ezdbfile` ENGINE=InnoDB"]
    );
    assert!(!findings[2].fix.as_ref().unwrap().online);
}

#[test]
fn a_missing_foreign_key_is_added_online_without_rechecking_rows() {
    let mut observed = ezdb_like("utf8mb4", "utf8mb4_bin");
    observed.foreign_keys.clear();
    let findings = evaluate(&observed);
    assert_eq!(kinds(&observed), vec![(FindingKind::ForeignKey, Severity::Warning)]);
    assert!(findings[0].breaks.contains("chunks stay behind"));
    let fix = findings[0].fix.as_ref().unwrap();
    assert!(fix.online);
    assert_eq!(
        fix.statements,
        vec![
            "SET SESSION foreign_key_checks = 0".to_owned(),
            format!("ALTER TABLE `ezdbfile_data` ADD CONSTRAINT `ezdbfile_fk1` FOREIGN KEY (`name_hash`) REFERENCES `ezdbfile` (`name_hash`) ON DELETE CASCADE{ONLINE_DDL}"),
            "SET SESSION foreign_key_checks = 1".to_owned(),
        ]
    );
}

#[test]
fn what_breaks_ezdb_is_an_error() {
    let mut observed = ezdb_like("utf8mb4", "utf8mb4_bin");
    observed.tables.retain(|t| t.name != "ezdbfile_data");
    observed
        .columns
        .retain(|c| !(c.table == "ezdbfile" && c.name == "name_trunk") && c.table != "ezdbfile_data");
    column(&mut observed, "ezdbfile", "mtime").column_type = "int(10) unsigned".to_owned();
    observed
        .indexes
        .retain(|i| !(i.table == "ezdbfile" && i.name == "PRIMARY"));
    observed.foreign_keys.clear();
    let findings = evaluate(&observed);
    let found: Vec<_> = findings
        .iter()
        .map(|f| (f.kind, f.severity, f.subject.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (FindingKind::MissingTable, Severity::Error, ""),
            (FindingKind::MissingColumn, Severity::Error, "name_trunk"),
            (FindingKind::ColumnType, Severity::Error, "mtime"),
            (FindingKind::PrimaryKey, Severity::Error, "PRIMARY"),
        ]
    );
    assert!(findings[0].fix.as_ref().unwrap().statements[0].starts_with("CREATE TABLE IF NOT EXISTS ezdbfile_data ("));
    assert_eq!(
        findings[1].fix.as_ref().unwrap().statements,
        vec![format!(
            "ALTER TABLE `ezdbfile` ADD COLUMN `name_trunk` TEXT NOT NULL{ONLINE_DDL}"
        )]
    );
    assert!(findings[2].breaks.contains("1264"));
    assert_eq!(
        findings[3].fix.as_ref().unwrap().statements,
        vec![format!(
            "ALTER TABLE `ezdbfile` ADD PRIMARY KEY (`name_hash`){ONLINE_DDL}"
        )]
    );
}

#[test]
fn an_old_varchar_name_is_a_warning_with_a_rebuild() {
    let mut observed = ezdb_like("utf8mb4", "utf8mb4_bin");
    let name = column(&mut observed, "ezdbfile", "name");
    name.data_type = "varchar".to_owned();
    name.column_type = "varchar(255)".to_owned();
    name.max_chars = Some(255);
    let findings = evaluate(&observed);
    assert_eq!(kinds(&observed), vec![(FindingKind::NameVarchar, Severity::Warning)]);
    assert!(findings[0].breaks.contains("longer than 255"));
    let fix = findings[0].fix.as_ref().unwrap();
    assert!(!fix.online);
    assert_eq!(
        fix.statements,
        vec!["ALTER TABLE `ezdbfile` MODIFY `name` TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"]
    );
}
