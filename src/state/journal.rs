//! The journal of an ordered sequence (a role change, a drill): each step,
//! when it started, how long it took and how it ended. Written while the
//! sequence runs (`execute::steps`) and stored with its report, so a person
//! (and a later run) can see how far it got; and a role change's whole
//! record, `<prefix>failovers/<ts>.json`, read back by `plan` and `status`.
//! Plain data.

use serde::{Deserialize, Serialize};

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum StepOutcome {
    /// Found done; nothing was done (a resumed run).
    AlreadyDone(String),
    /// Acted, and observed done afterwards.
    Done(String),
    /// Refused by its decision; nothing was done.
    Refused(String),
    /// A check that passed.
    Passed(String),
    /// Could not observe, act, or acted without effect.
    Failed(String),
    /// Not run because an earlier step did not succeed.
    NotRun,
}

impl StepOutcome {
    /// Whether the sequence may go on after this step.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            StepOutcome::AlreadyDone(_) | StepOutcome::Done(_) | StepOutcome::Passed(_)
        )
    }
}

/// One line of a journal: a step, when it started, how long it took, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRecord {
    pub step: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub outcome: StepOutcome,
}

/// Which role change: a switchover hands over from a working primary with no
/// data lost; a failover replaces a primary that is lost or abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Switchover,
    Failover,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Switchover => "switchover",
            Kind::Failover => "failover",
        }
    }
}

/// The record of one run: `<prefix>failovers/<ts>.json` in the archive
/// bucket, or a local file when the plan has no archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub cluster: String,
    pub kind: Kind,
    /// The standby that takes over (its plan-file name) and its address.
    pub to: String,
    pub to_server: String,
    /// The old primary's address.
    pub from_server: String,
    pub started_at: crate::spec::time::Timestamp,
    pub finished_at: crate::spec::time::Timestamp,
    /// `done`, `refused` or `failed`.
    pub outcome: String,
    /// `--force`'s reason, when the lag guard was overridden.
    pub forced: Option<String>,
    pub steps: Vec<StepRecord>,
    /// What a person must know or do (could not fence, rejoin by hand).
    pub notes: Vec<String>,
    /// The plan-file change that makes the new roles the desired state (a diff).
    pub plan_file_change: Option<String>,
    pub plan_file_written: bool,
    /// Who started it: a person (`switchover`, `failover`) or the watcher.
    #[serde(default)]
    pub trigger: Trigger,
    /// For an automatic failover: what the watcher saw (probes, each
    /// witness, the lease, how the old primary was fenced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
    /// Measured: from the primary lost (automatic) or the command started
    /// (by hand) until the new primary took writes and the endpoint was in
    /// sync. `None` when it did not get that far.
    #[serde(default)]
    pub rto_seconds: Option<f64>,
    /// What the new primary lacks of the old one: 0 after a switchover (it
    /// replayed everything); for a failover the standby's measured lag at
    /// the guard (the WAL never sent cannot be measured); `None` unknown.
    #[serde(default)]
    pub rpo_seconds: Option<f64>,
}

/// Who started a role change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    #[default]
    Manual,
    Automatic,
}
