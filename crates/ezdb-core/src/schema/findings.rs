//! The rules that judge an existing database: each risk becomes a [`Finding`] that says what it
//! breaks and carries the [`Fix`] (exact statements, online or not). Pure: no database access.

use super::observe::{ColumnFacts, Observed, TableFacts};
use super::table_ddl;

/// Appended to an `ALTER TABLE` the server must run without blocking reads or writes: the server
/// refuses it (error 1845/1846) rather than silently lock the table.
pub const ONLINE_DDL: &str = ", ALGORITHM=INPLACE, LOCK=NONE";
/// The character set and collation ezdb's own tables have: every name fits, comparisons are by bytes.
pub const TARGET_CHARSET: &str = "utf8mb4";
pub const TARGET_COLLATION: &str = "utf8mb4_bin";

/// Session settings wrapped around an online foreign key addition (the server adds a foreign key
/// in place only without re-checking existing rows).
const FOREIGN_KEY_CHECKS_OFF: &str = "SET SESSION foreign_key_checks = 0";
const FOREIGN_KEY_CHECKS_ON: &str = "SET SESSION foreign_key_checks = 1";

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Optional or informative: ezdb works fully without acting on it.
    Info,
    /// Some operations fail or lose a guarantee (some names or files cannot be stored, crash
    /// safety, space never freed); ezdb still works.
    Warning,
    /// ezdb cannot work: reads or writes fail.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What a finding is about; a stable identifier (`as_str`) for scripts and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    MissingTable,
    Engine,
    MissingColumn,
    ColumnType,
    NameVarchar,
    DatatypeLength,
    OffsetType,
    Charset,
    Collation,
    PrimaryKey,
    Index,
    ForeignKey,
    OptionalTable,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::MissingTable => "missing-table",
            FindingKind::Engine => "engine",
            FindingKind::MissingColumn => "missing-column",
            FindingKind::ColumnType => "column-type",
            FindingKind::NameVarchar => "name-varchar",
            FindingKind::DatatypeLength => "datatype-length",
            FindingKind::OffsetType => "offset-type",
            FindingKind::Charset => "charset",
            FindingKind::Collation => "collation",
            FindingKind::PrimaryKey => "primary-key",
            FindingKind::Index => "index",
            FindingKind::ForeignKey => "foreign-key",
            FindingKind::OptionalTable => "optional-table",
        }
    }
}

/// One risk of the database, with what it breaks and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub table: String,
    /// The column or index concerned; empty for the whole table.
    pub subject: String,
    /// What the database has, e.g. "character set latin1 (name, name_trunk, scope, datatype)".
    pub found: String,
    /// What it breaks or means, for ezdb and for legacy nodes still running.
    pub breaks: String,
    /// The statements that fix it; `None` when no statement can (the table is not a cluster table).
    pub fix: Option<Fix>,
}

impl Finding {
    /// One line: what is found and what it breaks.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.found, self.breaks)
    }

    /// True when ezdb cannot work until it is fixed.
    pub fn breaks_ezdb(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The exact statements that fix a finding, in order, and whether they are safe while legacy
/// and ezdb nodes keep using the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub statements: Vec<String>,
    /// True when reads and writes go on while it runs (online DDL, a new table).
    pub online: bool,
    /// What running it does to the site: "online: ..." or why it needs a maintenance window.
    pub impact: String,
}

impl Fix {
    pub(super) fn online(statements: Vec<String>, impact: &str) -> Fix {
        Fix {
            statements,
            online: true,
            impact: impact.to_owned(),
        }
    }

    fn offline(statements: Vec<String>, impact: &str) -> Fix {
        Fix {
            statements,
            online: false,
            impact: impact.to_owned(),
        }
    }

    /// `online` when the table's engine allows online DDL, else the same statement as a rebuild.
    pub(super) fn alter(observed: &Observed, table: &str, clauses: &str, online_impact: &str) -> Fix {
        if observed.is_innodb(table) {
            Fix::online(
                vec![format!("ALTER TABLE `{table}` {clauses}{ONLINE_DDL}")],
                online_impact,
            )
        } else {
            Fix::offline(vec![format!("ALTER TABLE `{table}` {clauses}")], NOT_INNODB)
        }
    }

    pub(super) fn rebuild(table: &str, clauses: &str) -> Fix {
        Fix::offline(vec![format!("ALTER TABLE `{table}` {clauses}")], REBUILD)
    }
}

const REBUILD: &str = "needs a maintenance window: the server rebuilds the table (ALGORITHM=COPY) and \
                       writes wait until it ends (minutes per million rows); reads go on";
const NOT_INNODB: &str = "needs a maintenance window: the table is not InnoDB, so the server locks it \
                          while it changes; convert it to InnoDB first (see the engine finding)";
pub(super) const ONLINE_INDEX: &str = "online: the index is built while reads and writes go on";
pub(super) const ONLINE_TABLE: &str = "online: creates a new table, nothing existing changes";

/// A column the core reads or writes, with the definition ezdb's schema gives it.
pub(crate) struct ColumnSpec {
    pub table: &'static str,
    pub name: &'static str,
    /// The type as `sql/mysql/schema.sql` writes it.
    pub ty: &'static str,
    /// The rest of the definition (nullability, default).
    pub rest: &'static str,
    /// Holds names or labels: converted to utf8mb4_bin with the table.
    pub text: bool,
    /// Can be added to an existing table (it has a default every existing row may take).
    pub addable: bool,
}

const fn col(
    table: &'static str,
    name: &'static str,
    ty: &'static str,
    rest: &'static str,
    text: bool,
    addable: bool,
) -> ColumnSpec {
    ColumnSpec {
        table,
        name,
        ty,
        rest,
        text,
        addable,
    }
}

/// Every column of the schema, in table order.
pub(crate) const COLUMNS: &[ColumnSpec] = &[
    col(
        "ezdbfile",
        "datatype",
        "VARCHAR(255)",
        "NOT NULL DEFAULT 'application/octet-stream'",
        true,
        true,
    ),
    col("ezdbfile", "name", "TEXT", "NOT NULL", true, false),
    col("ezdbfile", "name_trunk", "TEXT", "NOT NULL", true, true),
    col(
        "ezdbfile",
        "name_hash",
        "VARCHAR(34)",
        "NOT NULL DEFAULT ''",
        false,
        false,
    ),
    col("ezdbfile", "scope", "VARCHAR(20)", "NOT NULL DEFAULT ''", true, true),
    col(
        "ezdbfile",
        "size",
        "BIGINT(20) UNSIGNED",
        "NOT NULL DEFAULT '0'",
        false,
        true,
    ),
    col("ezdbfile", "mtime", "INT(11)", "NOT NULL DEFAULT '0'", false, true),
    col("ezdbfile", "expired", "BOOL", "NOT NULL DEFAULT '0'", false, true),
    col(
        "ezdbfile_data",
        "name_hash",
        "VARCHAR(34)",
        "NOT NULL DEFAULT ''",
        false,
        false,
    ),
    col("ezdbfile_data", "offset", "INT(11) UNSIGNED", "NOT NULL", false, false),
    col("ezdbfile_data", "filedata", "BLOB", "NOT NULL", false, false),
    col("ezdbfile_expiry", "name", "VARCHAR(100)", "NOT NULL", false, false),
    col(
        "ezdbfile_expiry",
        "scope",
        "VARCHAR(20)",
        "NOT NULL DEFAULT ''",
        false,
        true,
    ),
    col("ezdbfile_expiry", "expiry", "INT(11)", "NOT NULL", false, false),
];

/// Tables ezdb cannot work without.
pub const REQUIRED_TABLES: [&str; 2] = ["ezdbfile", "ezdbfile_data"];

/// Tables of ezdb's that only add something, each with what it adds.
pub const OPTIONAL_TABLES: [(&str, &str); 1] = [(
    "ezdbfile_expiry",
    "optional, ezdb works fully without it: global expiry keys live in the site's clustered \
     expiry.php, as legacy nodes keep them. The table adds keys for callers with no expiry.php \
     configured (the Rust API or the C ABI outside an eZ Publish site), and one row per key, so \
     concurrent clears on two servers never lose each other's key (expiry.php is last-writer-wins \
     between legacy nodes). Where it exists, ezdb writes each key to both and reads the later; \
     legacy nodes never read it",
)];

/// Primary keys, as (table, columns).
const PRIMARY_KEYS: &[(&str, &[&str])] = &[
    ("ezdbfile", &["name_hash"]),
    ("ezdbfile_data", &["name_hash", "offset"]),
    ("ezdbfile_expiry", &["name"]),
];

/// Secondary indexes: (table, name, columns, definition, what is slow without it).
const INDEXES: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "ezdbfile",
        "ezdbfile_name",
        &["name"],
        "`name`(250)",
        "deletes and lists by name prefix or wildcard read the whole table",
    ),
    (
        "ezdbfile",
        "ezdbfile_name_trunk",
        &["name_trunk"],
        "`name_trunk`(250)",
        "view-cache clears by trunk (fileDeleteByDirList) read the whole table",
    ),
    (
        "ezdbfile",
        "ezdbfile_mtime",
        &["mtime"],
        "`mtime`",
        "purges and lists by age read the whole table",
    ),
    (
        "ezdbfile",
        "ezdbfile_expired_name",
        &["expired", "name"],
        "`expired`, `name`(250)",
        "purges of expired files read the whole table",
    ),
    (
        "ezdbfile_expiry",
        "ezdbfile_expiry_scope",
        &["scope"],
        "`scope`",
        "clears by scope read the whole table",
    ),
];

const INTEGERS: &[&str] = &["tinyint", "smallint", "mediumint", "int", "bigint"];
const STRINGS: &[&str] = &["varchar", "char"];
const TEXTS: &[&str] = &["text", "mediumtext", "longtext"];
const BLOBS: &[&str] = &["blob", "mediumblob", "longblob"];

/// Every finding for the observed database, most fundamental first (the order fixes apply in).
pub(crate) fn evaluate(observed: &Observed) -> Vec<Finding> {
    let mut findings = Vec::new();
    let present = |table: &str| observed.table(table).is_some();
    for table in REQUIRED_TABLES {
        if !present(table) {
            findings.push(Finding {
                kind: FindingKind::MissingTable,
                severity: Severity::Error,
                table: table.to_owned(),
                subject: String::new(),
                found: format!("table {table} is missing"),
                breaks: "ezdb cannot store or read any file".to_owned(),
                fix: Some(Fix::online(vec![create_table(observed, table)], ONLINE_TABLE)),
            });
        }
    }
    findings.extend(
        observed
            .tables
            .iter()
            .filter_map(|table| engine_finding(table, "and no foreign keys, so purges leave chunks behind")),
    );
    for spec in COLUMNS.iter().filter(|s| present(s.table)) {
        match observed.column(spec.table, spec.name) {
            None => findings.push(missing_column(observed, spec)),
            Some(facts) => findings.extend(judge_column(observed, spec, facts)),
        }
    }
    if present("ezdbfile") {
        findings.extend(text_encoding(observed));
    }
    for (table, columns) in PRIMARY_KEYS.iter().filter(|(t, _)| present(t)) {
        findings.extend(primary_key(observed, table, columns));
    }
    for (table, name, columns, definition, slow) in INDEXES.iter().filter(|i| present(i.0)) {
        findings.extend(missing_index(observed, table, name, columns, definition, slow));
    }
    if present("ezdbfile") && present("ezdbfile_data") {
        findings.extend(foreign_key(observed));
    }
    for (table, adds) in OPTIONAL_TABLES {
        if !present(table) {
            findings.push(Finding {
                kind: FindingKind::OptionalTable,
                severity: Severity::Info,
                table: table.to_owned(),
                subject: String::new(),
                found: format!("table {table} is missing (optional)"),
                breaks: adds.to_owned(),
                fix: Some(Fix::online(vec![create_table(observed, table)], ONLINE_TABLE)),
            });
        }
    }
    findings
}

/// An index `name` on `columns` of `table` that is missing (and could be built: its columns
/// exist), with what is slow without it and the online statement that adds it.
pub(super) fn missing_index(
    observed: &Observed,
    table: &str,
    name: &str,
    columns: &[&str],
    definition: &str,
    slow: &str,
) -> Option<Finding> {
    let all_columns_exist = columns.iter().all(|c| observed.column(table, c).is_some());
    if !all_columns_exist || observed.has_index_on(table, columns) {
        return None;
    }
    Some(Finding {
        kind: FindingKind::Index,
        severity: Severity::Warning,
        table: table.to_owned(),
        subject: name.to_owned(),
        found: format!("no index on {table} ({})", columns.join(", ")),
        breaks: format!("{slow}: slow on a large table"),
        fix: Some(Fix::alter(
            observed,
            table,
            &format!("ADD INDEX `{name}` ({definition})"),
            ONLINE_INDEX,
        )),
    })
}

/// A table that is not InnoDB: no transactions, so no crash safety; `also` says what else the
/// layout loses.
pub(super) fn engine_finding(table: &TableFacts, also: &str) -> Option<Finding> {
    if table.engine.eq_ignore_ascii_case("innodb") {
        return None;
    }
    Some(Finding {
        kind: FindingKind::Engine,
        severity: Severity::Warning,
        table: table.name.clone(),
        subject: String::new(),
        found: format!("table {} uses the {} engine", table.name, table.engine),
        breaks: format!(
            "{} has no transactions: a store, rename or delete interrupted half-way (crash, killed \
             process) leaves a half-written file instead of the old version (crash safety lost), {also}",
            table.engine
        ),
        fix: Some(Fix::rebuild(&table.name, "ENGINE=InnoDB")),
    })
}

/// The schema file's `CREATE TABLE`; a chunk table created beside an existing metadata table
/// takes the character set of its `name_hash`, which the foreign key needs (error 150 otherwise).
fn create_table(observed: &Observed, table: &str) -> String {
    let ddl = table_ddl(table).unwrap_or_else(|| panic!("sql/mysql/schema.sql creates {table}"));
    let parent_hash = observed.column("ezdbfile", "name_hash");
    match parent_hash.and_then(|c| c.charset.as_deref().zip(c.collation.as_deref())) {
        Some((charset, collation)) if table == "ezdbfile_data" && collation != TARGET_COLLATION => ddl.replacen(
            "name_hash VARCHAR(34)",
            &format!("name_hash VARCHAR(34) CHARACTER SET {charset} COLLATE {collation}"),
            1,
        ),
        _ => ddl,
    }
}

fn missing_column(observed: &Observed, spec: &ColumnSpec) -> Finding {
    let fix = spec.addable.then(|| {
        Fix::alter(
            observed,
            spec.table,
            &format!("ADD COLUMN `{}` {} {}", spec.name, spec.ty, spec.rest),
            "online: the server adds the column in place while reads and writes go on",
        )
    });
    let breaks = if spec.addable {
        "ezdb's statements name it: every store or read fails (error 1054)".to_owned()
    } else {
        "every store or read fails (error 1054); without it this is not an eZDB cluster table: \
         restore it from a backup or recreate the table"
            .to_owned()
    };
    Finding {
        kind: FindingKind::MissingColumn,
        severity: Severity::Error,
        table: spec.table.to_owned(),
        subject: spec.name.to_owned(),
        found: format!("column {}.{} is missing", spec.table, spec.name),
        breaks,
        fix,
    }
}

/// What is wrong with one column's type, if anything.
fn judge_column(observed: &Observed, spec: &ColumnSpec, facts: &ColumnFacts) -> Option<Finding> {
    let ty = facts.data_type.as_str();
    let is = |family: &[&str]| family.contains(&ty);
    let finding = |kind, severity, breaks: String, fix: Fix| Finding {
        kind,
        severity,
        table: spec.table.to_owned(),
        subject: spec.name.to_owned(),
        found: format!("column {}.{} is {}", spec.table, spec.name, facts.column_type),
        breaks,
        fix: Some(fix),
    };
    let wrong_type = |breaks: &str| {
        finding(
            FindingKind::ColumnType,
            Severity::Error,
            format!("{breaks}; ezdb needs {}", spec.ty),
            Fix::rebuild(spec.table, &modify(spec, facts, None)),
        )
    };
    match (spec.table, spec.name) {
        ("ezdbfile", "name" | "name_trunk") if is(STRINGS) => Some(finding(
            FindingKind::NameVarchar,
            Severity::Warning,
            format!(
                "names longer than {} characters (long image alias and cache paths) cannot be stored \
                 (error 1406); since eZ Publish 4.x the column is TEXT",
                facts.max_chars.unwrap_or(0)
            ),
            Fix::rebuild(spec.table, &modify(spec, facts, None)),
        )),
        ("ezdbfile", "name" | "name_trunk") if !is(TEXTS) => Some(wrong_type("names cannot be stored")),
        ("ezdbfile", "datatype") if is(STRINGS) && facts.max_chars.unwrap_or(0) < 255 => Some(finding(
            FindingKind::DatatypeLength,
            Severity::Warning,
            format!(
                "MIME types longer than {} characters cannot be stored (error 1406), e.g. the .docx type \
                 application/vnd.openxmlformats-officedocument.wordprocessingml.document (71)",
                facts.max_chars.unwrap_or(0)
            ),
            widen_datatype(observed, spec, facts),
        )),
        ("ezdbfile", "datatype" | "scope") | ("ezdbfile_expiry", "name" | "scope") if !is(STRINGS) && !is(TEXTS) => {
            Some(wrong_type("labels cannot be stored"))
        }
        (_, "name_hash") if !is(STRINGS) || facts.max_chars.unwrap_or(0) < 32 => {
            Some(wrong_type("the 32-character md5 hex of each name does not fit"))
        }
        ("ezdbfile", "mtime") if is(INTEGERS) && facts.is_unsigned() => Some(wrong_type(
            "soft deletes negate the mtime (mtime=-ABS(mtime)) and fail with error 1264 on an unsigned column",
        )),
        ("ezdbfile", "size" | "mtime" | "expired") | ("ezdbfile_expiry", "expiry") if !is(INTEGERS) => {
            Some(wrong_type("it must hold an integer"))
        }
        ("ezdbfile_data", "offset") if is(INTEGERS) => {
            let cap = integer_max(ty, facts.is_unsigned());
            (cap < u64::from(u32::MAX)).then(|| {
                finding(
                    FindingKind::OffsetType,
                    Severity::Warning,
                    format!(
                        "files larger than about {} cannot be stored: the chunk offset overflows \
                         (error 1264); legacy fixed this in 4.x (bug #13627) with INT UNSIGNED (4 GiB)",
                        human_bytes(cap + 1)
                    ),
                    Fix::rebuild(spec.table, &modify(spec, facts, None)),
                )
            })
        }
        ("ezdbfile_data", "offset") => Some(wrong_type("chunk offsets are integers")),
        ("ezdbfile_data", "filedata") if !is(BLOBS) => Some(wrong_type("chunks of up to 65535 bytes do not fit")),
        _ => None,
    }
}

/// `MODIFY` clause giving the column ezdb's type, keeping its character set unless `charset`
/// names the (charset, collation) to convert to.
fn modify(spec: &ColumnSpec, facts: &ColumnFacts, charset: Option<(&str, &str)>) -> String {
    modify_to(spec, spec.ty, facts, charset)
}

fn modify_to(spec: &ColumnSpec, ty: &str, facts: &ColumnFacts, charset: Option<(&str, &str)>) -> String {
    let current = facts.charset.as_deref().zip(facts.collation.as_deref());
    let encoding = match charset.or(current) {
        Some((cs, collation)) => format!(" CHARACTER SET {cs} COLLATE {collation}"),
        None => String::new(),
    };
    format!("MODIFY `{}` {ty}{encoding} {}", spec.name, spec.rest)
}

/// Widening a VARCHAR is done in place when the length prefix stays one byte (at most 255 bytes
/// before and after) or was already two; otherwise the table is rebuilt.
fn widen_datatype(observed: &Observed, spec: &ColumnSpec, facts: &ColumnFacts) -> Fix {
    let clause = modify(spec, facts, None);
    let bytes_per_char = match (facts.max_bytes, facts.max_chars) {
        (Some(bytes), Some(chars)) if chars > 0 => bytes / chars,
        _ => 4,
    };
    let (before, after) = (facts.max_bytes.unwrap_or(0), 255 * bytes_per_char);
    if (before <= 255) == (after <= 255) {
        Fix::alter(
            observed,
            spec.table,
            &clause,
            "online: the server widens the column in place while reads and writes go on",
        )
    } else {
        Fix::rebuild(spec.table, &clause)
    }
}

/// The type a column keeps when the table is converted: ezdb's where its own is unfit, else its own.
fn kept_type(observed: &Observed, spec: &ColumnSpec, facts: &ColumnFacts) -> String {
    if judge_column(observed, spec, facts).is_some() {
        spec.ty.to_owned()
    } else {
        facts.column_type.to_ascii_uppercase()
    }
}

/// Character set and collation of the text columns of `ezdbfile`: one finding per character set
/// that cannot hold every name, one per collation that does not compare bytes; both fixed by the
/// same conversion.
fn text_encoding(observed: &Observed) -> Vec<Finding> {
    let text_columns: Vec<(&ColumnSpec, &ColumnFacts)> = COLUMNS
        .iter()
        .filter(|s| s.table == "ezdbfile" && s.text)
        .filter_map(|s| observed.column(s.table, s.name).map(|f| (s, f)))
        .filter(|(_, f)| f.charset.is_some())
        .collect();
    let fix = conversion(observed, &text_columns);
    let facts: Vec<&ColumnFacts> = text_columns.iter().map(|(_, f)| *f).collect();
    encoding_findings("ezdbfile", &facts, &fix)
}

/// One rule of [`encoding_findings`]: the kind, what it is called, the value it reads, and how
/// that value is judged.
type EncodingRule = (
    FindingKind,
    &'static str,
    fn(&ColumnFacts) -> Option<String>,
    fn(&str) -> Option<(Severity, String)>,
);

/// The character set and collation of the text columns `text` of `table`: one finding per
/// distinct value that carries a risk, each fixed by `fix` (one conversion of the table).
pub(super) fn encoding_findings(table: &str, text: &[&ColumnFacts], fix: &Fix) -> Vec<Finding> {
    let rules: [EncodingRule; 2] = [
        (
            FindingKind::Charset,
            "character set",
            |f| f.charset.clone(),
            charset_risk,
        ),
        (
            FindingKind::Collation,
            "collation",
            |f| f.collation.clone(),
            collation_risk,
        ),
    ];
    let mut findings = Vec::new();
    for (kind, what, value, judge) in rules {
        let mut seen: Vec<String> = Vec::new();
        for facts in text {
            let Some(v) = value(facts) else { continue };
            if seen.contains(&v) {
                continue;
            }
            seen.push(v.clone());
            let Some((severity, breaks)) = judge(&v) else { continue };
            let columns: Vec<&str> = text
                .iter()
                .filter(|f| value(f).as_deref() == Some(v.as_str()))
                .map(|f| f.name.as_str())
                .collect();
            findings.push(Finding {
                kind,
                severity,
                table: table.to_owned(),
                subject: columns.join(", "),
                found: format!("{what} {v} ({table}: {})", columns.join(", ")),
                breaks,
                fix: Some(fix.clone()),
            });
        }
    }
    findings
}

fn charset_risk(charset: &str) -> Option<(Severity, String)> {
    let breaks = match charset {
        TARGET_CHARSET | "binary" => return None,
        "latin1" => "names with any character outside Western European Latin-1 (Cyrillic, Greek, CJK, \
                     emoji, most accented letters of Central Europe) cannot be stored: error 1366"
            .to_owned(),
        "utf8" | "utf8mb3" => "names with 4-byte UTF-8 characters (emoji, some CJK) cannot be stored: \
                               error 1366"
            .to_owned(),
        other => format!("names with characters {other} cannot represent cannot be stored: error 1366"),
    };
    Some((Severity::Warning, breaks))
}

fn collation_risk(collation: &str) -> Option<(Severity, String)> {
    if collation == "binary" || collation.ends_with("_bin") {
        return None;
    }
    let how = if collation.contains("_ci") || collation.contains("_ai") {
        "compares case- and accent-insensitively"
    } else {
        "compares by language rules, not by bytes"
    };
    Some((
        Severity::Info,
        format!(
            "{how}. ezdb matches names byte-exact anyway; legacy nodes still running match with the \
             collation: their prefix, wildcard and directory-list deletes also delete names that differ \
             in case or accents ('Abc' also deletes 'abc-1', 'é' deletes 'e-3'), and their scope lists \
             include other cases. Converting to {TARGET_COLLATION} makes legacy nodes byte-exact too (one \
             server quirk remains, measured on MariaDB 10.11: an indexed LIKE 'dir/%' on {TARGET_COLLATION} \
             misses names whose first character after the prefix is a 4-byte one, e.g. an emoji)"
        ),
    ))
}

/// One `ALTER TABLE ezdbfile` giving every text column utf8mb4_bin (and ezdb's type where its own
/// is unfit). Indexed text columns cannot change in place: it rebuilds the table.
fn conversion(observed: &Observed, text_columns: &[(&ColumnSpec, &ColumnFacts)]) -> Fix {
    let mut clauses = Vec::new();
    let row_format = observed.table("ezdbfile").map_or("", |t| t.row_format.as_str());
    if row_format.eq_ignore_ascii_case("compact") || row_format.eq_ignore_ascii_case("redundant") {
        // utf8mb4 prefixes of 250 characters need more than the 767 key bytes of these formats.
        clauses.push("ROW_FORMAT=DYNAMIC".to_owned());
    }
    clauses.push(format!(
        "DEFAULT CHARACTER SET {TARGET_CHARSET} COLLATE {TARGET_COLLATION}"
    ));
    for (spec, facts) in text_columns {
        let ty = kept_type(observed, spec, facts);
        clauses.push(modify_to(spec, &ty, facts, Some((TARGET_CHARSET, TARGET_COLLATION))));
    }
    let impact = "needs a maintenance window: converting indexed text columns rebuilds the table \
                  (ALGORITHM=COPY), writes wait until it ends (minutes per million rows); reads go on. \
                  Existing names are converted, not lost";
    Fix::offline(vec![format!("ALTER TABLE `ezdbfile` {}", clauses.join(", "))], impact)
}

pub(super) fn primary_key(observed: &Observed, table: &str, columns: &[&str]) -> Option<Finding> {
    let wanted = columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    let existing = observed.primary_key(table);
    let matches = existing.is_some_and(|pk| {
        pk.columns.len() == columns.len() && pk.columns.iter().zip(columns).all(|(a, b)| a.eq_ignore_ascii_case(b))
    });
    if matches || columns.iter().any(|c| observed.column(table, c).is_none()) {
        return None;
    }
    let (found, clauses) = match existing {
        None => (
            format!("{table} has no PRIMARY KEY"),
            format!("ADD PRIMARY KEY ({wanted})"),
        ),
        Some(pk) => (
            format!("{table} has PRIMARY KEY ({})", pk.columns.join(", ")),
            format!("DROP PRIMARY KEY, ADD PRIMARY KEY ({wanted})"),
        ),
    };
    Some(Finding {
        kind: FindingKind::PrimaryKey,
        severity: Severity::Error,
        table: table.to_owned(),
        subject: "PRIMARY".to_owned(),
        found,
        breaks: format!(
            "the upserts (INSERT ... ON DUPLICATE KEY UPDATE) of ezdb and legacy nodes need PRIMARY KEY \
             ({wanted}): without it a store adds rows instead of replacing them and reads see duplicates; \
             the fix fails if duplicates already exist (remove them first)"
        ),
        fix: Some(Fix::alter(
            observed,
            table,
            &clauses,
            "online: the server builds the key in place while reads and writes go on",
        )),
    })
}

fn foreign_key(observed: &Observed) -> Option<Finding> {
    let existing = observed
        .foreign_keys
        .iter()
        .find(|k| k.table == "ezdbfile_data" && k.referenced_table == "ezdbfile");
    let add =
        "ADD CONSTRAINT `ezdbfile_fk1` FOREIGN KEY (`name_hash`) REFERENCES `ezdbfile` (`name_hash`) ON DELETE CASCADE";
    let (found, breaks, alters) = match existing {
        Some(k) if k.delete_rule.eq_ignore_ascii_case("CASCADE") => return None,
        Some(k) => (
            format!(
                "FOREIGN KEY {} from ezdbfile_data to ezdbfile is ON DELETE {}",
                k.name, k.delete_rule
            ),
            "deleting a file's row fails while it has chunks (error 1451): purges and repairs fail".to_owned(),
            vec![format!("DROP FOREIGN KEY `{}`", k.name), add.to_owned()],
        ),
        None => (
            "no FOREIGN KEY from ezdbfile_data.name_hash to ezdbfile ON DELETE CASCADE".to_owned(),
            "purges (and legacy purges) delete a file's row and rely on the cascade for its chunks: \
             without it the chunks stay behind and their space is never freed (`ezdb check --repair` \
             removes such stray chunks)"
                .to_owned(),
            vec![add.to_owned()],
        ),
    };
    let online = observed.is_innodb("ezdbfile") && observed.is_innodb("ezdbfile_data");
    let mut statements = vec![FOREIGN_KEY_CHECKS_OFF.to_owned()];
    statements.extend(
        alters
            .iter()
            .map(|a| format!("ALTER TABLE `ezdbfile_data` {a}{ONLINE_DDL}")),
    );
    statements.push(FOREIGN_KEY_CHECKS_ON.to_owned());
    let fix = Fix {
        statements,
        online,
        impact: if online {
            "online: the key is added in place (existing rows are not re-checked: stray chunks stay until \
             `ezdb check --repair`) while reads and writes go on"
                .to_owned()
        } else {
            "needs both tables on InnoDB first (see the engine findings); online after that".to_owned()
        },
    };
    Some(Finding {
        kind: FindingKind::ForeignKey,
        severity: Severity::Warning,
        table: "ezdbfile_data".to_owned(),
        subject: "ezdbfile_fk1".to_owned(),
        found,
        breaks,
        fix: Some(fix),
    })
}

fn integer_max(ty: &str, unsigned: bool) -> u64 {
    let bits = match ty {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" => 32,
        _ => 64,
    };
    let bits = if unsigned { bits } else { bits - 1 };
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n => format!("{} KiB", n >> 10),
    }
}
