// Which rows a bulk operation touches (a name prefix, a trunk, a glob, scopes) as parameterised
// SQL, and the batch loop that changes them a bounded number of rows per statement.

use crate::cluster::Cluster;
use crate::db::done;
use crate::error::{Error, Op, Result};
use crate::name::{glob_to_regexp, like_prefix, LIKE_ESCAPE};
use sqlx::mysql::{MySqlArguments, MySqlConnection};
use sqlx::query::Query;
use sqlx::{MySql, Row};
use std::time::Duration;

/// A set of files named by pattern; every value is bound, never spliced into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Names starting with this text (`%`, `_` are literal).
    Prefix(String),
    /// Names whose expiry group (`name_trunk`) equals this text.
    Trunk(String),
    /// A shell glob over the whole name: `*`, `?`, `{a,b}`; everything else literal.
    Glob(String),
    /// Files of any of these scopes.
    Scopes(Vec<String>),
}

/// A bound SQL value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

/// A WHERE fragment and its values, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) sql: String,
    pub(crate) values: Vec<Value>,
}

impl Filter {
    pub(crate) fn and(mut self, sql: &str, values: Vec<Value>) -> Filter {
        if self.sql.is_empty() {
            self.sql = format!("({sql})");
        } else {
            self.sql = format!("{} AND ({sql})", self.sql);
        }
        self.values.extend(values);
        self
    }

    pub(crate) fn bind<'q>(&'q self, mut query: Query<'q, MySql, MySqlArguments>) -> Query<'q, MySql, MySqlArguments> {
        for value in &self.values {
            query = match value {
                Value::Text(text) => query.bind(text.as_str()),
                Value::Int(int) => query.bind(*int),
            };
        }
        query
    }
}

/// A text column as the bytes of its UTF-8 form: compares byte-exact (case- and accent-sensitive,
/// no trailing-space padding) whatever the column's character set and collation. Legacy tables
/// take the server default, typically case- and accent-insensitive, where `name LIKE 'Abc%'` also
/// matches `abc-1` and `'é'` matches `e`: each match below pairs the comparison the index serves
/// with this exact one, so the index narrows and the bytes decide.
fn exact(column: &str) -> String {
    format!("CAST(CONVERT({column} USING utf8mb4) AS BINARY)")
}

/// The rows whose name may start with `prefix`, as conditions the name index serves: a
/// superset, which the exact comparison then narrows. `name LIKE 'p%'` alone is not enough: on
/// MariaDB 10.11 its index range on a `_bin` (PAD SPACE) collation misses names whose next
/// character is a 4-byte one (emoji) or sorts below a space (a tab), so a range from the prefix
/// (without its last character above a space) to the prefix with its last character incremented
/// is added; on case-insensitive collations LIKE covers what that range may not.
fn prefix_superset(prefix: &str) -> Filter {
    let like = format!("name LIKE ? ESCAPE '{LIKE_ESCAPE}'");
    let like_only = Filter::default().and(&like, vec![Value::Text(like_prefix(prefix))]);
    let Some((lower, upper)) = prefix_range(prefix) else {
        return like_only;
    };
    Filter::default().and(
        &format!("{like} OR (name >= ? AND name < ?)"),
        vec![Value::Text(like_prefix(prefix)), Value::Text(lower), Value::Text(upper)],
    )
}

/// `[lower, upper)` holding every name that starts with `prefix` in code-point order with
/// trailing-space padding: `lower` is `prefix` cut before its last character above a space (a
/// name continuing with a tab sorts below `prefix` itself), `upper` is `prefix` with its last
/// character incremented. `None` when the last character cannot be incremented.
fn prefix_range(prefix: &str) -> Option<(String, String)> {
    let last = prefix.chars().next_back()?;
    let next = match last as u32 + 1 {
        0xD800 => '\u{E000}',
        n => char::from_u32(n)?,
    };
    let upper = format!("{}{next}", &prefix[..prefix.len() - last.len_utf8()]);
    let cut = prefix
        .char_indices()
        .rev()
        .find(|(_, c)| *c > ' ')
        .map_or(0, |(i, _)| i);
    Some((prefix[..cut].to_owned(), upper))
}

impl Selector {
    pub(crate) fn filter(&self) -> Result<Filter> {
        let exact_like = format!("{} LIKE CAST(? AS BINARY) ESCAPE '{LIKE_ESCAPE}'", exact("name"));
        let filter = match self {
            Selector::Prefix(prefix) if prefix.is_empty() => {
                return Err(self.refuse("an empty prefix would match every file"))
            }
            Selector::Prefix(prefix) => {
                prefix_superset(prefix).and(&exact_like, vec![Value::Text(like_prefix(prefix))])
            }
            Selector::Trunk(trunk) => Filter::default()
                .and("name_trunk = ?", vec![Value::Text(trunk.clone())])
                .and(
                    &format!("{} = CAST(? AS BINARY)", exact("name_trunk")),
                    vec![Value::Text(trunk.clone())],
                ),
            Selector::Glob(glob) if glob.is_empty() => return Err(self.refuse("an empty pattern matches nothing")),
            Selector::Glob(glob) => {
                let (regexp, literal) = glob_to_regexp(glob);
                // The literal head narrows the scan to the name index; a case-sensitive REGEXP
                // over the name's characters decides (`?` is one character, not one byte).
                let head = if literal.is_empty() {
                    Filter::default().and("1 = 1", Vec::new())
                } else {
                    prefix_superset(&literal)
                };
                head.and(
                    "CONVERT(name USING utf8mb4) COLLATE utf8mb4_bin REGEXP ?",
                    vec![Value::Text(regexp)],
                )
            }
            Selector::Scopes(scopes) if scopes.is_empty() => return Err(self.refuse("give at least one scope")),
            Selector::Scopes(scopes) => {
                // No index serves `scope`: the exact comparison alone.
                let marks = vec!["CAST(? AS BINARY)"; scopes.len()].join(", ");
                Filter::default().and(
                    &format!("{} IN ({marks})", exact("scope")),
                    scopes.iter().cloned().map(Value::Text).collect(),
                )
            }
        };
        Ok(filter)
    }

    /// The literal text every matched name must contain, if any.
    fn literal(&self) -> Option<String> {
        match self {
            Selector::Prefix(text) | Selector::Trunk(text) => Some(text.clone()),
            Selector::Glob(glob) => Some(glob_to_regexp(glob).1),
            Selector::Scopes(_) => None,
        }
    }

    /// A short description for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Selector::Prefix(p) => format!("prefix {p}"),
            Selector::Trunk(t) => format!("trunk {t}"),
            Selector::Glob(g) => format!("pattern {g}"),
            Selector::Scopes(s) => format!("scopes {}", s.join(",")),
        }
    }

    fn refuse(&self, reason: &str) -> Error {
        Error::InvalidArgument {
            name: self.describe(),
            what: "selector",
            value: format!("{self:?}"),
            reason: reason.to_owned(),
        }
    }
}

/// How a bulk change proceeds: rows per statement and a pause between statements.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    pub size: u32,
    pub pause: Duration,
    /// Stop after this many statements even if rows remain (the caller calls again later);
    /// `None`: until nothing matches.
    pub max_batches: Option<u32>,
}

/// What a batch does to the rows it picked.
pub(crate) enum BatchAction {
    /// Soft delete: negate mtime, set expired.
    Expire,
    /// Physical delete; chunks follow by the foreign-key cascade.
    Purge,
}

impl Cluster {
    /// The rows `selector` matches in this database: a name text the `name` column's character
    /// set cannot hold (CJK in a latin1 table) is in no row, and comparing with it would be an
    /// error ("illegal mix of collations"), so it matches nothing.
    pub(crate) fn selector_filter(&self, selector: &Selector) -> Result<Filter> {
        let filter = selector.filter()?;
        let charset = self.inner.db.capabilities.name_charset();
        match selector.literal() {
            Some(text) if !charset.holds(&text) => Ok(Filter::default().and("1 = 0", Vec::new())),
            _ => Ok(filter),
        }
    }

    /// Applies `action` to every row matching `filter`, `batches.size` rows per short statement
    /// (picked by primary key first, so each statement locks only its rows), calling `progress`
    /// with each batch's count. Returns the total.
    pub(crate) async fn in_batches(
        &self,
        op: Op,
        what: &str,
        filter: &Filter,
        action: BatchAction,
        batches: Batches,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let mut total = 0;
        let action = &action;
        let mut batch = 0;
        // Every metadata table: a pattern reaches eZDFS cache rows and storage rows alike.
        for table in self.meta_tables() {
            loop {
                batch += 1;
                let changed = self
                    .inner
                    .db
                    .retrying(op, what, |mut conn| async move {
                        let changed = match (&self.inner.dfs, action) {
                            (Some(dfs), BatchAction::Purge) => {
                                dfs.purge_batch(&mut conn, table, filter, batches.size).await
                            }
                            _ => one_batch(&mut conn, table, filter, action, batches.size)
                                .await
                                .map_err(Into::into),
                        };
                        done(conn, changed)
                    })
                    .await?;
                total += changed.0;
                if changed.0 > 0 {
                    progress(changed.0);
                }
                if batches.max_batches.is_some_and(|max| batch >= max) {
                    return Ok(total);
                }
                if changed.1 < batches.size as usize {
                    break;
                }
                if !batches.pause.is_zero() {
                    tokio::time::sleep(batches.pause).await;
                }
            }
        }
        Ok(total)
    }
}

/// The statement that picks one batch of rows by primary key.
fn pick_sql(table: &str, filter: &Filter, size: u32) -> String {
    format!(
        "SELECT CAST(name_hash AS CHAR) FROM {table} WHERE {} LIMIT {size}",
        filter.sql
    )
}

/// How the server runs the statement that picks a bulk operation's rows (one `EXPLAIN` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    /// The access type: `range` or `ref` use an index; `ALL` scans the table.
    pub access: String,
    /// The index used, if any.
    pub key: Option<String>,
    /// The server's estimate of rows examined.
    pub rows: u64,
}

impl Cluster {
    /// The plan of the statement that picks the rows `selector` matches, as `EXPLAIN` gives it:
    /// shows that a prefix, trunk or glob operation reads the name index instead of the table.
    pub async fn explain_matching(&self, selector: &Selector) -> Result<QueryPlan> {
        let filter = &self.selector_filter(selector)?;
        let sql = &format!(
            "EXPLAIN {}",
            pick_sql(self.meta_tables()[0], filter, self.config().batch_size)
        );
        self.inner
            .db
            .retrying(Op::List, &selector.describe(), |mut conn| async move {
                let plan = async {
                    let row = filter.bind(sqlx::query(sql)).fetch_one(&mut *conn).await?;
                    let text = |column: &str| -> std::result::Result<Option<String>, sqlx::Error> {
                        let bytes: Option<Vec<u8>> = row.try_get_unchecked(column)?;
                        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
                    };
                    // EXPLAIN's columns arrive as text whatever their declared types.
                    let rows = text("rows")?.and_then(|r| r.parse().ok());
                    Ok(QueryPlan {
                        access: text("type")?.unwrap_or_default(),
                        key: text("key")?,
                        rows: rows.unwrap_or(0),
                    })
                }
                .await;
                done(conn, plan)
            })
            .await
    }
}

/// Returns (rows changed, rows picked).
async fn one_batch(
    conn: &mut MySqlConnection,
    table: &str,
    filter: &Filter,
    action: &BatchAction,
    size: u32,
) -> Result<(u64, usize), sqlx::Error> {
    let pick = pick_sql(table, filter, size);
    let rows = filter.bind(sqlx::query(&pick)).fetch_all(&mut *conn).await?;
    let hashes: Vec<String> = rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
    if hashes.is_empty() {
        return Ok((0, 0));
    }
    let marks = vec!["?"; hashes.len()].join(", ");
    let change = match action {
        BatchAction::Expire => format!("UPDATE {table} SET mtime = -ABS(mtime), expired = 1"),
        BatchAction::Purge => format!("DELETE FROM {table}"),
    };
    let sql = format!("{change} WHERE name_hash IN ({marks}) AND {}", filter.sql);
    let mut query = sqlx::query(&sql);
    for hash in &hashes {
        query = query.bind(hash.as_str());
    }
    let result = filter.bind(query).execute(&mut *conn).await?;
    Ok((result.rows_affected(), hashes.len()))
}

#[cfg(test)]
mod tests {
    use super::prefix_range;

    #[test]
    fn the_prefix_range_holds_every_continuation() {
        assert_eq!(prefix_range("d/"), Some(("d".into(), "d0".into())));
        assert_eq!(prefix_range("a b "), Some(("a ".into(), "a b!".into())));
        assert_eq!(prefix_range("\t"), Some(("".into(), "\n".into())));
        assert_eq!(prefix_range("x\u{D7FF}"), Some(("x".into(), "x\u{E000}".into())));
        assert_eq!(prefix_range("x\u{10FFFF}"), None);
        for (prefix, name) in [("d/", "d/😀x"), ("d/", "d/\tz"), ("d/", "d/"), ("a b ", "a b \u{1}")] {
            let (lower, upper) = prefix_range(prefix).unwrap();
            // Code-point order with trailing-space padding, as a PAD SPACE `_bin` collation sorts.
            let padded = |s: &str, n: usize| s.chars().chain(std::iter::repeat(' ')).take(n).collect::<Vec<_>>();
            let n = name
                .chars()
                .count()
                .max(upper.chars().count())
                .max(lower.chars().count());
            assert!(padded(name, n) >= padded(&lower, n), "{name:?} >= {lower:?}");
            assert!(padded(name, n) < padded(&upper, n), "{name:?} < {upper:?}");
        }
    }
}
