//! The plan: what would change, and the pure planner that works it out.
//!
//! `plan_cluster(desired, live)` is a pure function: no I/O, no clock, no
//! randomness, so the same inputs always give the same ordered changes and most
//! planning tests need no server. Each change carries the [`Op`] that apply
//! executes, so a saved plan can be applied without planning again.

pub mod active_active;
pub mod assess;
pub mod ec2;
pub mod guc;
pub mod logical;
pub mod op;
pub mod postgres;
pub mod rds;
pub mod readiness;
pub mod recovery;
pub mod route53;
pub mod s3;
pub mod saved;
pub mod watch;

use crate::spec::Desired;
use crate::state::Live;
pub use op::{
    Ec2Op, Ec2Write, Op, PgOp, PgWrite, RdsOp, RdsWrite, Route53Op, S3Op, S3Write, Server,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Replace,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub cluster: String,
    pub address: String,
    pub action: Action,
    pub before: Value,
    pub after: Value,
    pub requires_restart: bool,
    pub destructive: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart: bool,
    pub reason: String,
    /// What apply does; `None` for a change already made and waiting for a restart.
    #[serde(default)]
    pub op: Option<Op>,
    /// For a setting already written on a PostgreSQL server and waiting for its
    /// restart: the server and the setting, so apply can say what to restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waits_for_restart: Option<PendingRestart>,
}

/// A setting written on a server that only a restart makes active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRestart {
    pub server: Server,
    pub setting: String,
}

impl Change {
    /// A change with every flag off and no op; the builder methods below set the rest.
    pub fn new(
        cluster: &str,
        address: impl Into<String>,
        action: Action,
        (before, after): (Value, Value),
        reason: impl Into<String>,
    ) -> Self {
        Change {
            cluster: cluster.to_string(),
            address: address.into(),
            action,
            before,
            after,
            requires_restart: false,
            destructive: false,
            pending_restart: false,
            reason: reason.into(),
            op: None,
            waits_for_restart: None,
        }
    }

    /// What apply does for this change.
    pub fn op(mut self, op: Option<Op>) -> Self {
        self.op = op;
        self
    }

    /// Weakens protection or removes what pgdr owns: refused without `--allow-destructive`.
    pub fn destructive(mut self, destructive: bool) -> Self {
        self.destructive = destructive;
        self
    }

    /// Takes effect only at a restart (or an RDS reboot).
    pub fn requires_restart(mut self, requires_restart: bool) -> Self {
        self.requires_restart = requires_restart;
        self
    }

    /// Already accepted and waiting (for a restart, a reboot or a maintenance window).
    pub fn pending(mut self, pending: bool) -> Self {
        self.pending_restart = pending;
        self
    }
}

/// A condition apply cannot fix by changing a setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Problem {
    pub cluster: String,
    pub address: String,
    pub message: String,
    /// The plan file asks for something the live system rejects (an unknown
    /// setting, a value or unit the server refuses, a parameter RDS does not
    /// let anyone change): only an edit of the plan file fixes it, so `apply`
    /// refuses to run (exit 1). Conditions that are not the plan file's fault
    /// (an archiver failing, a standby lagging) leave this false and are
    /// reported without failing apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub impossible: bool,
}

impl Problem {
    pub fn new(cluster: &str, address: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            cluster: cluster.to_string(),
            address: address.into(),
            message: message.into(),
            impossible: false,
        }
    }
}

/// Something the user should know that is neither a change nor a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Note {
    pub cluster: String,
    pub address: String,
    pub message: String,
}

/// The plan for one cluster, or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterPlan {
    pub cluster: String,
    pub file: String,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Note>,
    /// Set when observing failed: nothing is planned or applied for this cluster.
    pub error: Option<String>,
    /// Digest of the live state the changes were computed from.
    pub live_sha256: String,
    /// Digest of the plan file's bytes.
    pub file_sha256: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub replace: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn summarize<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Summary {
    let mut s = Summary::default();
    for c in changes {
        match c.action {
            Action::Create => s.create += 1,
            Action::Update => s.update += 1,
            Action::Delete => s.delete += 1,
            Action::Replace => s.replace += 1,
        }
    }
    s
}

/// The pure planner for one cluster.
pub fn plan_cluster(desired: &Desired, live: &Live) -> ClusterPlan {
    let cluster = desired.cluster().to_string();
    let region = desired.region();
    let mut plan = ClusterPlan {
        cluster: cluster.clone(),
        file: desired.source.display().to_string(),
        changes: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        error: None,
        live_sha256: live.digest(),
        file_sha256: desired.text_sha256.clone(),
    };
    postgres::plan_postgres(desired, live, &mut plan);
    readiness::plan_failover_readiness(desired, live, &mut plan);
    if matches!(
        crate::state::roles(live),
        crate::state::Roles::SplitBrain(_)
    ) {
        // Two writers: which one the bucket, the endpoint or RDS should serve is
        // unknown, so nothing at all is planned until all but one are fenced.
        what_is_not_checked(desired, &mut plan);
        return plan;
    }
    if let Some(rds) = &live.rds {
        rds::plan_rds(
            desired,
            rds,
            live.primary.as_ref().map(|p| &p.settings),
            &mut plan,
        );
    }
    if let (Some(network), Some(group)) = (&desired.plan.replication_network, &live.network) {
        ec2::plan_network(&cluster, region, network, group, &mut plan);
    }
    if let Some(endpoint) = &live.endpoint {
        route53::plan_endpoint(desired, live, endpoint, &mut plan);
    }
    if let (Some(archive), Some(s3)) = (&desired.plan.archive, &live.archive) {
        s3::plan_archive(&cluster, region, archive, s3, &mut plan);
    }
    // Each copy's bucket keeps the home bucket's protections and retention.
    for copy in desired.plan.archive.iter().flat_map(|a| &a.copies) {
        let copied = desired.plan.archive.as_ref().map(|a| a.as_copy(copy));
        let bucket = live
            .archive_copies
            .iter()
            .find(|b| b.bucket == copy.bucket.as_str());
        if let (Some(copied), Some(s3)) = (copied, bucket) {
            s3::plan_archive(&cluster, &copy.region, &copied, s3, &mut plan);
        }
    }
    if let (Some(nodes), Some(aa)) = (&live.active_active, &desired.plan.active_active) {
        active_active::plan_active_active(desired, nodes, &mut plan);
        let collisions = aa.sequences == crate::spec::Sequences::Unmanaged;
        for (address, message) in logical::problems(nodes, collisions) {
            plan.problem(address, message);
        }
    }
    // The objective checks (backups, WAL, drills, expiry): judged once, in
    // `assess`, which `status` reads too. Ages come from the observation.
    for finding in assess::assess(desired, live, None).findings {
        match finding.plan_entry() {
            Some(assess::PlanEntry::Problem(text)) => plan.problem(finding.address, text),
            Some(assess::PlanEntry::Note(text)) => plan.notes.push(Note {
                cluster: plan.cluster.clone(),
                address: finding.address,
                message: text,
            }),
            None => {}
        }
    }
    if live.primary_error.is_some() && !plan.changes.is_empty() {
        // The primary is lost: what is read is reported, but nothing is
        // changed until it answers again or a failover makes another primary.
        plan.notes.push(Note {
            cluster: plan.cluster.clone(),
            address: "postgres.primary".into(),
            message: format!(
                "{} change(s) held back while the primary cannot be reached; they are planned again once it answers",
                plan.changes.len()
            ),
        });
        plan.changes.clear();
    }
    what_is_not_checked(desired, &mut plan);
    plan
}

/// What this version does not look at, said plainly in every plan.
fn what_is_not_checked(desired: &Desired, plan: &mut ClusterPlan) {
    let p = &desired.plan;
    let mut note = |address: &str, message: &str| {
        plan.notes.push(Note {
            cluster: plan.cluster.clone(),
            address: address.to_string(),
            message: message.to_string(),
        })
    };
    if p.standbys.iter().any(|s| s.rds.is_some()) {
        note("standbys", "replica lag of RDS read replicas is a CloudWatch metric that this version does not read; max_lag is checked for self-managed standbys only");
    }
    if p.primary.postgres.is_none() {
        note(
            "primary.postgres",
            "not given, so the SQL-only checks are skipped: pg_settings, pending restarts, replication slots, the archiver, standbys streaming and lag, and which server is writable",
        );
    }
}

impl ClusterPlan {
    /// Records a condition apply cannot fix.
    pub fn problem(&mut self, address: impl Into<String>, message: impl Into<String>) {
        let problem = Problem::new(&self.cluster, address, message);
        self.problems.push(problem);
    }

    /// Records something the plan file asks for that the live system rejects
    /// (see [`Problem::impossible`]).
    pub fn impossible(&mut self, address: impl Into<String>, message: impl Into<String>) {
        let mut problem = Problem::new(&self.cluster, address, message);
        problem.impossible = true;
        self.problems.push(problem);
    }

    /// The problems only an edit of the plan file can fix.
    pub fn impossible_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.impossible)
    }

    pub fn needs_attention(&self) -> bool {
        !self.changes.is_empty() || !self.problems.is_empty() || self.error.is_some()
    }
}
