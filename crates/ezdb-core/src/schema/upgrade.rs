//! `schema upgrade`: applies the fixes of the findings, online ones by default, the ones that
//! need a maintenance window only when allowed; reports each step and what remains.

use super::findings::{Finding, Fix, ONLINE_DDL};
use crate::error::{mysql_error_code, Result};
use sqlx::mysql::MySqlConnection;
use sqlx::Executor;
use std::time::Duration;

/// How far an upgrade may go.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// Run nothing; report the statements that would run.
    pub dry_run: bool,
    /// Also run the fixes that block writes while they rebuild a table.
    pub allow_offline: bool,
    /// How long a statement waits for the table's metadata lock (held by open transactions)
    /// before giving up; while it waits, new queries on the table queue behind it.
    pub lock_wait_timeout: Duration,
}

impl Default for UpgradeOptions {
    fn default() -> Self {
        UpgradeOptions {
            dry_run: false,
            allow_offline: false,
            lock_wait_timeout: Duration::from_secs(10),
        }
    }
}

/// What became of one fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Dry run: would be run.
    WouldApply,
    /// Done; `online` when every statement ran online (reads and writes went on).
    Applied { online: bool },
    /// Not run: it blocks writes (or this server cannot do it online); `--allow-offline` runs it.
    NeedsMaintenanceWindow { reason: String },
    /// The server refused a statement; the table is as it was (each ALTER is atomic).
    Failed { statement: String, error: String },
}

/// One fix and the findings it resolves.
#[derive(Debug, Clone)]
pub struct UpgradeStep {
    pub findings: Vec<Finding>,
    pub fix: Fix,
    pub outcome: StepOutcome,
}

#[derive(Debug, Clone)]
pub struct UpgradeReport {
    pub steps: Vec<UpgradeStep>,
    /// The findings after the upgrade (dry run: the findings as they are).
    pub remaining: Vec<Finding>,
}

impl UpgradeReport {
    /// True when a statement failed or something that breaks ezdb remains.
    pub fn failed(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.outcome, StepOutcome::Failed { .. }))
            || self.remaining.iter().any(Finding::breaks_ezdb)
    }
}

/// At most this many inspect-and-fix rounds: a fix may make another possible (a foreign key
/// once both tables are InnoDB), and a fix never repeats.
const MAX_ROUNDS: usize = 4;

pub(crate) async fn upgrade(
    conn: &mut MySqlConnection,
    options: &UpgradeOptions,
    layout: &crate::layout::Layout,
) -> Result<UpgradeReport> {
    if !options.dry_run {
        let timeout = options.lock_wait_timeout.as_secs().max(1);
        conn.execute(format!("SET SESSION lock_wait_timeout = {timeout}").as_str())
            .await
            .map_err(|e| crate::error::Error::db(crate::error::Op::Schema, "schema upgrade", e))?;
    }
    let mut steps: Vec<UpgradeStep> = Vec::new();
    let mut findings = super::inspect(conn, layout).await?;
    for _ in 0..MAX_ROUNDS {
        let plan = plan(&findings, &steps);
        if plan.is_empty() {
            break;
        }
        for (fix, resolved) in plan {
            let outcome = if !fix.online && !options.allow_offline {
                StepOutcome::NeedsMaintenanceWindow {
                    reason: fix.impact.clone(),
                }
            } else if options.dry_run {
                StepOutcome::WouldApply
            } else {
                apply(conn, &fix, options.allow_offline).await
            };
            steps.push(UpgradeStep {
                findings: resolved,
                fix,
                outcome,
            });
        }
        if options.dry_run {
            break;
        }
        findings = super::inspect(conn, layout).await?;
    }
    Ok(UpgradeReport {
        steps,
        remaining: findings,
    })
}

/// The fixes not tried yet, each once, with the findings it resolves, in finding order.
fn plan(findings: &[Finding], done: &[UpgradeStep]) -> Vec<(Fix, Vec<Finding>)> {
    let mut plan: Vec<(Fix, Vec<Finding>)> = Vec::new();
    for finding in findings {
        let Some(fix) = &finding.fix else { continue };
        if done.iter().any(|s| s.fix.statements == fix.statements) {
            continue;
        }
        match plan.iter_mut().find(|(f, _)| f.statements == fix.statements) {
            Some((_, resolved)) => resolved.push(finding.clone()),
            None => plan.push((fix.clone(), vec![finding.clone()])),
        }
    }
    plan
}

/// Runs a fix's statements in order. An online statement the server cannot run online (errors
/// 1845/1846) is run as a rebuild only when offline fixes are allowed.
async fn apply(conn: &mut MySqlConnection, fix: &Fix, allow_offline: bool) -> StepOutcome {
    let outcome = run_statements(conn, fix, allow_offline).await;
    if !matches!(outcome, StepOutcome::Applied { .. }) {
        // A fix may have switched foreign key checks off for its session: switch them back.
        let _ = conn.execute("SET SESSION foreign_key_checks = 1").await;
    }
    outcome
}

async fn run_statements(conn: &mut MySqlConnection, fix: &Fix, allow_offline: bool) -> StepOutcome {
    // Only an ALTER without the online clause (or run without it) blocks writes.
    let mut online = !fix
        .statements
        .iter()
        .any(|s| s.starts_with("ALTER TABLE") && !s.ends_with(ONLINE_DDL));
    for statement in &fix.statements {
        let error = match conn.execute(statement.as_str()).await {
            Ok(_) => continue,
            Err(e) => e,
        };
        let refused_online = matches!(mysql_error_code(&error), Some(1845 | 1846));
        let offline = statement.strip_suffix(ONLINE_DDL);
        let error = match (refused_online, offline) {
            (true, Some(_)) if !allow_offline => {
                return StepOutcome::NeedsMaintenanceWindow {
                    reason: format!("this server cannot do it online ({error}): it would block writes"),
                }
            }
            (true, Some(offline)) => match conn.execute(offline).await {
                Ok(_) => {
                    online = false;
                    continue;
                }
                Err(e) => e,
            },
            _ => error,
        };
        let hint = match mysql_error_code(&error) {
            Some(1205) => {
                "; an open transaction holds the table: retry when it is quieter or raise --lock-wait-timeout"
            }
            _ => "",
        };
        return StepOutcome::Failed {
            statement: statement.clone(),
            error: format!("{error}{hint}"),
        };
    }
    StepOutcome::Applied { online }
}
