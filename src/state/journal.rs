//! The journal of an ordered sequence (a role change, a drill): each step,
//! when it started, how long it took and how it ended. Written while the
//! sequence runs (`execute::steps`) and stored with its report, so a person
//! (and a later run) can see how far it got. Plain data.

use serde::{Deserialize, Serialize};

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub outcome: StepOutcome,
}
