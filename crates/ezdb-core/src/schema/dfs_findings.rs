//! The rules that judge an existing eZDFS database: its metadata tables (legacy `ezdfsfile` /
//! `ezdfsfile_cache`, or Ibexa's `ibexa_dfs_file`) against what the core reads and writes, each
//! risk a [`Finding`] with the statements that fix it. Pure: no database access.

use super::dfs_table_ddl;
use super::findings::{
    encoding_findings, engine_finding, missing_index, primary_key, Finding, FindingKind, Fix, Severity, ONLINE_TABLE,
    TARGET_CHARSET, TARGET_COLLATION,
};
use super::observe::{ColumnFacts, Observed};
use crate::layout::DfsLayout;

/// The columns the core reads and writes in every DFS metadata table.
const COLUMNS: [&str; 8] = [
    "datatype",
    "name",
    "name_trunk",
    "name_hash",
    "scope",
    "size",
    "mtime",
    "expired",
];

/// The columns holding names and labels, whose character set decides what can be stored.
const TEXT_COLUMNS: [&str; 4] = ["name", "name_trunk", "scope", "datatype"];

/// Shortest `datatype` and `scope` the core's labels need (MIME types; eZDFS scopes of 25).
const LABEL_LENGTHS: [(&str, u64, &str); 2] = [
    (
        "datatype",
        255,
        "VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream'",
    ),
    ("scope", 25, "VARCHAR(25) NOT NULL DEFAULT ''"),
];

/// Secondary indexes: (name suffix after `<table>_`, columns, definition, what is slow without it).
const INDEXES: [(&str, &[&str], &str, &str); 4] = [
    (
        "name",
        &["name"],
        "`name`(191)",
        "deletes and lists by name prefix or wildcard read the whole table",
    ),
    (
        "name_trunk",
        &["name_trunk"],
        "`name_trunk`(191)",
        "view-cache clears by trunk (fileDeleteByDirList) read the whole table",
    ),
    (
        "mtime",
        &["mtime"],
        "`mtime`",
        "purges and lists by age read the whole table",
    ),
    (
        "expired_name",
        &["expired", "name"],
        "`expired`, `name`(191)",
        "purges of expired files read the whole table",
    ),
];

/// Every finding for the metadata tables of `dfs`, table by table, most fundamental first.
pub(crate) fn evaluate(observed: &Observed, dfs: &DfsLayout) -> Vec<Finding> {
    let mut findings = Vec::new();
    for table in dfs.tables() {
        let Some(facts) = observed.table(table) else {
            findings.push(Finding {
                kind: FindingKind::MissingTable,
                severity: Severity::Error,
                table: table.to_owned(),
                subject: String::new(),
                found: format!("table {table} is missing"),
                breaks: format!("ezdb cannot store or read any file that belongs to {table}"),
                fix: Some(Fix::online(
                    vec![dfs_table_ddl(table, table == dfs.storage_table)],
                    ONLINE_TABLE,
                )),
            });
            continue;
        };
        findings.extend(engine_finding(
            facts,
            "and a purge may delete a row and then fail to remove its file",
        ));
        for column in COLUMNS {
            if observed.column(table, column).is_none() {
                findings.push(Finding {
                    kind: FindingKind::MissingColumn,
                    severity: Severity::Error,
                    table: table.to_owned(),
                    subject: column.to_owned(),
                    found: format!("{table} has no column {column}"),
                    breaks: "every read and write of this table fails (unknown column); it is not an eZDFS \
                             metadata table, or the layout settings name the wrong table"
                        .to_owned(),
                    fix: None,
                });
            }
        }
        findings.extend(text_encoding(observed, table));
        for (column, wanted, definition) in LABEL_LENGTHS {
            let Some(facts) = observed.column(table, column) else {
                continue;
            };
            let Some(length) = facts.max_chars.filter(|n| *n < wanted) else {
                continue;
            };
            findings.push(Finding {
                kind: FindingKind::DatatypeLength,
                severity: Severity::Warning,
                table: table.to_owned(),
                subject: column.to_owned(),
                found: format!("{table}.{column} holds {length} characters"),
                breaks: format!("a longer {column} cannot be stored: error 1406 (data too long)"),
                fix: Some(Fix::rebuild(table, &format!("MODIFY `{column}` {definition}"))),
            });
        }
        findings.extend(primary_key(observed, table, &["name_hash"]));
        for (suffix, columns, definition, slow) in INDEXES {
            let name = format!("{table}_{suffix}");
            findings.extend(missing_index(observed, table, &name, columns, definition, slow));
        }
    }
    findings
}

/// The character set and collation of the text columns of `table`, fixed by one conversion of
/// the table to utf8mb4_bin.
fn text_encoding(observed: &Observed, table: &str) -> Vec<Finding> {
    let text: Vec<&ColumnFacts> = TEXT_COLUMNS
        .iter()
        .filter_map(|c| observed.column(table, c))
        .filter(|f| f.charset.is_some())
        .collect();
    let conversion = Fix::rebuild(
        table,
        &format!("ROW_FORMAT=DYNAMIC, CONVERT TO CHARACTER SET {TARGET_CHARSET} COLLATE {TARGET_COLLATION}"),
    );
    encoding_findings(table, &text, &conversion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::observe::{IndexFacts, TableFacts};

    fn legacy(table: &str, charset: &str, collation: &str) -> Observed {
        let text = |name: &str, ty: &str, chars: u64| ColumnFacts {
            table: table.to_owned(),
            name: name.to_owned(),
            data_type: ty.to_owned(),
            column_type: ty.to_owned(),
            max_chars: Some(chars),
            max_bytes: Some(chars * 4),
            charset: Some(charset.to_owned()),
            collation: Some(collation.to_owned()),
        };
        let number = |name: &str| ColumnFacts {
            table: table.to_owned(),
            name: name.to_owned(),
            data_type: "int".to_owned(),
            column_type: "int(11)".to_owned(),
            ..Default::default()
        };
        let index = |name: &str, columns: &[&str]| IndexFacts {
            table: table.to_owned(),
            name: name.to_owned(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        };
        Observed {
            tables: vec![TableFacts {
                name: table.to_owned(),
                engine: "InnoDB".to_owned(),
                row_format: "Dynamic".to_owned(),
            }],
            columns: vec![
                text("datatype", "varchar", 255),
                text("name", "text", 65535),
                text("name_trunk", "text", 65535),
                ColumnFacts {
                    charset: Some("latin1".to_owned()),
                    ..text("name_hash", "varchar", 34)
                },
                text("scope", "varchar", 25),
                number("size"),
                number("mtime"),
                number("expired"),
            ],
            indexes: vec![
                index("PRIMARY", &["name_hash"]),
                index(&format!("{table}_name"), &["name"]),
                index(&format!("{table}_name_trunk"), &["name_trunk"]),
                index(&format!("{table}_mtime"), &["mtime"]),
                index(&format!("{table}_expired_name"), &["expired", "name"]),
            ],
            foreign_keys: Vec::new(),
        }
    }

    #[test]
    fn a_sound_table_needs_nothing_and_a_missing_one_is_created() {
        let dfs = DfsLayout::new("/m").single_table("ibexa_dfs_file");
        let sound = legacy("ibexa_dfs_file", TARGET_CHARSET, TARGET_COLLATION);
        assert_eq!(evaluate(&sound, &dfs), Vec::new());
        let two = DfsLayout::new("/m");
        let missing = evaluate(&Observed::default(), &two);
        let tables: Vec<&str> = missing.iter().map(|f| f.table.as_str()).collect();
        assert_eq!(tables, ["ezdfsfile", "ezdfsfile_cache"]);
        assert!(missing
            .iter()
            .all(|f| f.kind == FindingKind::MissingTable && f.breaks_ezdb()));
        let storage = &missing[0].fix.as_ref().unwrap().statements[0];
        assert!(storage.contains("CREATE TABLE IF NOT EXISTS ezdfsfile (") && storage.contains("status"));
        assert!(!missing[1].fix.as_ref().unwrap().statements[0].contains("status"));
    }

    #[test]
    fn latin1_and_short_labels_are_warnings_with_their_statements() {
        let dfs = DfsLayout::new("/m").single_table("ezdfsfile");
        let mut observed = legacy("ezdfsfile", "latin1", "latin1_swedish_ci");
        observed.columns[0].max_chars = Some(60);
        observed.indexes.retain(|i| !i.name.ends_with("_mtime"));
        let findings = evaluate(&observed, &dfs);
        let kinds: Vec<(FindingKind, Severity)> = findings.iter().map(|f| (f.kind, f.severity)).collect();
        assert_eq!(
            kinds,
            [
                (FindingKind::Charset, Severity::Warning),
                (FindingKind::Collation, Severity::Info),
                (FindingKind::DatatypeLength, Severity::Warning),
                (FindingKind::Index, Severity::Warning),
            ]
        );
        assert!(findings[0].fix.as_ref().unwrap().statements[0].contains("CONVERT TO CHARACTER SET utf8mb4"));
        assert!(!findings[0].fix.as_ref().unwrap().online);
        assert!(findings[3].fix.as_ref().unwrap().statements[0].contains("ADD INDEX `ezdfsfile_mtime`"));
        assert!(findings.iter().all(|f| !f.breaks_ezdb()));
    }
}
