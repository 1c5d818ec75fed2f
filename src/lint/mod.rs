//! `pgdr lint`: judges a plan file against its tier's policy and its own RPO/RTO
//! arithmetic. Pure and offline: reads the plan file and the policy, nothing else.
//!
//! Each rule is a small function in `rules.rs` with a stable id and severity; a
//! finding names the key path and line it concerns and says why it matters and
//! what would satisfy it.

pub mod policy;
pub mod rules;

use crate::spec::{locate::locate, Desired, PlanFile};
use policy::PolicyFile;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A rule's identity, for SARIF metadata and the generated documentation
/// (`docs/reference/rules/<id>.md`, each rule's SARIF `helpUri`).
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    /// When the severity depends on the finding (`error for financial, warning otherwise`).
    pub severity_text: &'static str,
    /// What it checks, and why that number: the rule's page.
    pub explain: &'static str,
}

pub const RULES: &[Rule] = &[
    Rule {
        id: "wal-retention-covers-backups",
        severity: Severity::Error,
        summary: "WAL retention must cover the recovery window of the kept base backups",
        severity_text: "error",
        explain: "`wal_retention` ≥ `base_backups.every × keep`. Restoring the oldest kept base backup needs every WAL segment since it was taken; expire WAL sooner and the oldest backups (and every point in time before the newest) cannot be restored. Premature WAL expiry is the leading cause of failed PITR.",
    },
    Rule {
        id: "rpo-archive-timeout",
        severity: Severity::Error,
        summary: "Without a streaming standby, archive_timeout must not exceed the RPO",
        severity_text: "error",
        explain: "with no streaming standby, `archive_timeout` ≤ RPO (unset means 0, *never* forced: a quiet server may keep a segment open for hours). On RDS without a replica, WAL reaches backups every 5 minutes, so an RPO under 5m needs a replica or Multi-AZ.",
    },
    Rule {
        id: "rpo-zero-needs-sync",
        severity: Severity::Error,
        summary: "An RPO of zero needs a synchronous standby",
        severity_text: "error",
        explain: "RPO 0 needs a `synchronous: true` standby (or RDS Multi-AZ): only then does a commit wait for a second copy.",
    },
    Rule {
        id: "max-lag-within-rpo",
        severity: Severity::Error,
        summary: "A standby's max_lag must not exceed the RPO",
        severity_text: "error",
        explain: "an asynchronous standby's `max_lag` ≤ RPO: failing over to a standby that is `max_lag` behind loses that much.",
    },
    Rule {
        id: "sync-cross-region",
        severity: Severity::Warning,
        summary: "A synchronous standby in another region adds its round trip to every commit",
        severity_text: "warning",
        explain: "a synchronous standby in another region puts a cross-region round trip (tens of ms) into every commit.",
    },
    Rule {
        id: "endpoint-ttl",
        severity: Severity::Warning,
        summary: "The endpoint TTL must be well under the RTO",
        severity_text: "warning above 60s, error at or above the RTO",
        explain: "resolvers keep the old primary for the TTL; at the RTO the TTL alone breaks the promise. 30-60s is usual.",
    },
    Rule {
        id: "slot-capacity",
        severity: Severity::Error,
        summary: "max_replication_slots and max_wal_senders must leave room for every standby plus a base backup",
        severity_text: "error",
        explain: "`max_wal_senders` and `max_replication_slots` (PostgreSQL default 10) ≥ self-managed standbys + 1 — each standby holds one, a streaming base backup another.",
    },
    Rule {
        id: "archive-configured",
        severity: Severity::Error,
        summary: "An archive needs wal_level replica or logical, archive_mode on and an archive_command",
        severity_text: "error",
        explain: "with an `archive` (and not RDS, which archives itself): `wal_level` replica/logical if set, `archive_mode` on (the default is off), an `archive_command` or `archive_library`.",
    },
    Rule {
        id: "immutable-archive",
        severity: Severity::Error,
        summary: "Versioning and object lock as the tier requires; a lock longer than WAL retention is flagged",
        severity_text: "error (warning for the lock length)",
        explain: "versioning and object-lock mode as the tier requires; an object lock longer than `wal_retention` is flagged: the expiry rule cannot delete locked versions, so they stay (and are billed) until the lock ends.",
    },
    Rule {
        id: "rds-backups",
        severity: Severity::Error,
        summary: "RDS automated backups enabled and covering the recovery window",
        severity_text: "error (warning past 35 days)",
        explain: "RDS automated backups on, and `backup_retention_days` ≥ the recovery window (`wal_retention` or every × keep). RDS keeps at most 35 days; beyond that the S3 archive must carry the window alone.",
    },
    Rule {
        id: "drill-cadence",
        severity: Severity::Error,
        summary: "Restore drills at least as often as the tier requires, and within WAL retention",
        severity_text: "error",
        explain: "`drill.every` at most the tier's maximum (`max_drill_interval` in the policy), and no longer than `wal_retention`. A backup is only proven by a drill; between drills the lifecycle rule must not remove the WAL the last drilled backup needs, or the proof lapses before the next drill.",
    },
    Rule {
        id: "tier-requirements",
        severity: Severity::Error,
        summary: "Everything the tier's policy demands",
        severity_text: "error",
        explain: "everything the tier's policy demands: mvp — archiving, daily base backups, ≥ 1 day of WAL; saas — also versioning, ≥ 7 days of WAL, a standby in another zone, RPO ≤ 15m; financial — also a synchronous standby, compliance-mode object lock, KMS encryption, deletion protection, ≥ 30 days of WAL, RPO ≤ 1m; multi-region — a standby or an active-active node (active_active.peers) in another region, a copy of the archive (archive.copies) in another region, RPO ≤ 15m.",
    },
    Rule {
        id: "failover-fencing",
        severity: Severity::Error,
        summary: "Automatic failover needs a way to fence the old primary: the guard or a fence_command",
        severity_text: "error for financial, warning otherwise",
        explain: "`failover.automatic` needs a way to fence the old primary before a standby is promoted: `guard: true` or a `fence_command`. Without either the watcher refuses to promote a primary it cannot reach (it pages instead) — automatic failover is then off exactly when it matters.",
    },
    Rule {
        id: "failover-within-rto",
        severity: Severity::Error,
        summary: "The watcher's wait and the endpoint TTL must leave room in the RTO",
        severity_text: "error (warning above half)",
        explain: "`failover.after` plus the endpoint's TTL must leave room in the RTO for the promotion and the endpoint move.",
    },
    Rule {
        id: "failover-drilled",
        severity: Severity::Error,
        summary: "Automatic failover needs a failover drill cadence (drill.failover_every)",
        severity_text: "error for financial, warning otherwise",
        explain: "automatic failover needs `drill.failover_every`: a failover never rehearsed is a runbook never run.",
    },
];

/// The loader check for `lint: { ignore: [...] }`: every rule named exists and
/// every ignore says why. Given to `spec::load_file_with`, so a bad ignore is a
/// plan-file error placed at its key, like any other.
pub fn check_ignores(plan: &PlanFile) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(lint) = &plan.lint else {
        return out;
    };
    for (i, ignore) in lint.ignore.iter().enumerate() {
        if !RULES.iter().any(|r| r.id == ignore.rule) {
            out.push((
                format!("lint.ignore[{i}].rule"),
                format!(
                    "`{}` is not a lint rule; rules: {}",
                    ignore.rule,
                    RULES.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if ignore.reason.trim().is_empty() {
            out.push((
                format!("lint.ignore[{i}].reason"),
                "say why the rule does not apply to this cluster".into(),
            ));
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub cluster: String,
    pub rule: &'static str,
    pub severity: Severity,
    /// Key path in the plan file, e.g. `archive.wal_retention`.
    pub path: String,
    pub message: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Set when the plan file silences this rule: the reason it gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

impl Finding {
    /// Counts towards the exit code: an error that the file does not silence.
    pub fn is_blocking(&self) -> bool {
        self.severity == Severity::Error && self.ignored.is_none()
    }
}

/// A finding before it is placed in the file.
pub struct Raw {
    pub rule: &'static str,
    pub path: String,
    pub message: String,
    /// A warning from a rule whose default is error (or the other way round).
    pub severity: Option<Severity>,
}

pub fn lint(desired: &Desired, policy: &PolicyFile) -> Vec<Finding> {
    let ignores = desired
        .plan
        .lint
        .as_ref()
        .map(|l| l.ignore.clone())
        .unwrap_or_default();
    let mut findings: Vec<Finding> = rules::run(desired, policy)
        .into_iter()
        .map(|raw| {
            let rule = RULES
                .iter()
                .find(|r| r.id == raw.rule)
                .expect("rule is listed in RULES");
            let at = locate(&desired.text, &raw.path);
            Finding {
                cluster: desired.cluster().to_string(),
                rule: rule.id,
                severity: raw.severity.unwrap_or(rule.severity),
                path: raw.path,
                message: raw.message,
                file: desired.source.display().to_string(),
                line: at.map(|a| a.0),
                column: at.map(|a| a.1),
                ignored: ignores
                    .iter()
                    .find(|i| i.rule == rule.id)
                    .map(|i| i.reason.clone()),
            }
        })
        .collect();
    findings.sort_by(|a, b| (a.line, a.rule).cmp(&(b.line, b.rule)));
    findings
}
