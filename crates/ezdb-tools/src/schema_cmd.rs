//! `ezdb schema install|check|upgrade`: renders the core's schema findings and upgrade steps for
//! people (text) and scripts (`--json`); the rules themselves live in `ezdb_core::schema`.

use crate::emit;
use clap::Subcommand;
use ezdb_core::schema::{Finding, Severity, StepOutcome, UpgradeOptions, UpgradeReport, UpgradeStep};
use ezdb_core::Cluster;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Subcommand)]
pub enum SchemaAction {
    /// Create the cluster tables that are missing (idempotent; never changes an existing table).
    Install,
    /// Report every risk of the database: what it breaks and the exact statement that fixes it.
    /// Exits non-zero only when something breaks ezdb.
    Check,
    /// Apply the fixes that are safe while legacy nodes keep running (online DDL); the ones that
    /// need a maintenance window only with --allow-offline.
    Upgrade {
        /// Change nothing: print the exact statements that would run.
        #[arg(long)]
        dry_run: bool,
        /// Also run the fixes that rebuild a table and block writes while they run.
        #[arg(long)]
        allow_offline: bool,
        /// Seconds a statement waits for the table lock held by open transactions (new queries
        /// on the table queue behind a waiting ALTER).
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        lock_wait_timeout: u64,
    },
}

pub async fn run(cluster: &Cluster, action: SchemaAction, json: bool) -> Result<(), String> {
    match action {
        SchemaAction::Install => install(cluster, json).await,
        SchemaAction::Check => check(cluster, json).await,
        SchemaAction::Upgrade {
            dry_run,
            allow_offline,
            lock_wait_timeout,
        } => {
            let options = UpgradeOptions {
                dry_run,
                allow_offline,
                lock_wait_timeout: Duration::from_secs(lock_wait_timeout),
            };
            upgrade(cluster, &options, json).await
        }
    }
}

async fn install(cluster: &Cluster, json: bool) -> Result<(), String> {
    cluster.install_schema().await.map_err(|e| e.to_string())?;
    let findings = cluster.inspect_schema().await.map_err(|e| e.to_string())?;
    if json {
        emit!("{}", json!({"installed": true, "findings": findings_json(&findings)}));
    } else if findings.is_empty() {
        emit!("schema installed: every table is as ezdb creates it");
    } else {
        emit!(
            "schema installed; existing tables were kept as they are (install never changes an existing table). \
             {}: `ezdb schema check` explains them, `ezdb schema upgrade` fixes them",
            counts(&findings)
        );
    }
    breaking(
        &findings,
        "install creates missing tables only; `ezdb schema upgrade` fixes the rest",
    )
}

async fn check(cluster: &Cluster, json: bool) -> Result<(), String> {
    let findings = cluster.inspect_schema().await.map_err(|e| e.to_string())?;
    if json {
        let compatible = !findings.iter().any(Finding::breaks_ezdb);
        emit!(
            "{}",
            json!({"compatible": compatible, "findings": findings_json(&findings)})
        );
    } else if findings.is_empty() {
        emit!("schema is compatible: every table is as ezdb creates it");
    } else {
        findings.iter().for_each(render_finding);
        emit!("{}", counts(&findings));
        if !findings.iter().any(Finding::breaks_ezdb) {
            emit!("ezdb works on this database (schema is compatible); `ezdb schema upgrade --dry-run` shows what upgrade would change");
        }
    }
    breaking(&findings, "`ezdb schema upgrade` applies the fixes shown above")
}

async fn upgrade(cluster: &Cluster, options: &UpgradeOptions, json: bool) -> Result<(), String> {
    let report = cluster.upgrade_schema(options).await.map_err(|e| e.to_string())?;
    if json {
        let steps: Vec<Value> = report.steps.iter().map(step_json).collect();
        emit!(
            "{}",
            json!({"dry_run": options.dry_run, "allow_offline": options.allow_offline, "steps": steps,
                   "remaining": findings_json(&report.remaining)})
        );
    } else {
        render_upgrade(&report, options);
    }
    if options.dry_run {
        return Ok(());
    }
    if let Some(failed) = report.steps.iter().find_map(|s| match &s.outcome {
        StepOutcome::Failed { statement, error } => Some(format!("{}: {error}", one_line(statement))),
        _ => None,
    }) {
        return Err(format!("a fix failed, the table is as it was: {failed}"));
    }
    breaking(
        &report.remaining,
        "they need a maintenance window: run `ezdb schema upgrade --allow-offline` in one",
    )
}

/// The error for findings that break ezdb, naming them and what to do; Ok when there are none.
fn breaking(findings: &[Finding], advice: &str) -> Result<(), String> {
    let errors: Vec<&Finding> = findings.iter().filter(|f| f.breaks_ezdb()).collect();
    if errors.is_empty() {
        return Ok(());
    }
    let found: Vec<&str> = errors.iter().map(|f| f.found.as_str()).collect();
    Err(format!(
        "{} finding(s) break ezdb ({}); {advice}",
        errors.len(),
        found.join("; ")
    ))
}

fn counts(findings: &[Finding]) -> String {
    let n = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "{} finding(s): {} error(s), {} warning(s), {} info",
        findings.len(),
        n(Severity::Error),
        n(Severity::Warning),
        n(Severity::Info)
    )
}

fn render_finding(finding: &Finding) {
    emit!("[{}] {}", finding.severity.as_str(), finding.found);
    emit!("  what it means: {}", finding.breaks);
    match &finding.fix {
        Some(fix) => {
            emit!("  fix ({}):", fix.impact);
            fix.statements.iter().for_each(|s| emit!("{};", indent(s)));
        }
        None => emit!("  fix: no statement can fix this"),
    }
}

fn render_upgrade(report: &UpgradeReport, options: &UpgradeOptions) {
    for step in &report.steps {
        let resolves: Vec<&str> = step.findings.iter().map(|f| f.found.as_str()).collect();
        let verdict = match &step.outcome {
            StepOutcome::WouldApply if step.fix.online => "would run (online)".to_owned(),
            StepOutcome::WouldApply => "would run (offline: writes wait while it runs)".to_owned(),
            StepOutcome::Applied { online: true } => "applied (online)".to_owned(),
            StepOutcome::Applied { online: false } => "applied (offline: writes waited while it ran)".to_owned(),
            StepOutcome::NeedsMaintenanceWindow { reason } => {
                format!("not run, {reason}; run it with --allow-offline in a maintenance window")
            }
            StepOutcome::Failed { error, .. } => format!("FAILED: {error}"),
        };
        emit!("{}: {verdict}", resolves.join("; "));
        step.fix.statements.iter().for_each(|s| emit!("{};", indent(s)));
    }
    let count = |wanted: fn(&StepOutcome) -> bool| report.steps.iter().filter(|s| wanted(&s.outcome)).count();
    let windows = count(|o| matches!(o, StepOutcome::NeedsMaintenanceWindow { .. }));
    if options.dry_run {
        emit!(
            "dry run, nothing changed: {} fix(es) would run, {windows} need a maintenance window (--allow-offline)",
            count(|o| *o == StepOutcome::WouldApply)
        );
    } else {
        let remaining = if report.remaining.is_empty() {
            "every table is now as ezdb creates it".to_owned()
        } else {
            format!("{} remain (`ezdb schema check`)", counts(&report.remaining))
        };
        emit!(
            "{} fix(es) applied, {windows} need a maintenance window (--allow-offline), {} failed; {remaining}",
            count(|o| matches!(o, StepOutcome::Applied { .. })),
            count(|o| matches!(o, StepOutcome::Failed { .. })),
        );
    }
}

fn one_line(statement: &str) -> String {
    statement.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn indent(statement: &str) -> String {
    statement
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn findings_json(findings: &[Finding]) -> Vec<Value> {
    findings
        .iter()
        .map(|f| {
            let fix = f
                .fix
                .as_ref()
                .map(|fix| json!({"statements": fix.statements, "online": fix.online, "impact": fix.impact}));
            json!({"kind": f.kind.as_str(), "severity": f.severity.as_str(), "table": f.table,
                   "subject": f.subject, "found": f.found, "breaks": f.breaks, "fix": fix})
        })
        .collect()
}

fn step_json(step: &UpgradeStep) -> Value {
    let (outcome, detail) = match &step.outcome {
        StepOutcome::WouldApply => ("would-apply", Value::Null),
        StepOutcome::Applied { online } => ("applied", json!({"ran_online": online})),
        StepOutcome::NeedsMaintenanceWindow { reason } => ("needs-maintenance-window", json!(reason)),
        StepOutcome::Failed { statement, error } => ("failed", json!(format!("{statement}: {error}"))),
    };
    json!({"outcome": outcome, "detail": detail, "statements": step.fix.statements, "online": step.fix.online,
           "impact": step.fix.impact, "resolves": findings_json(&step.findings)})
}
