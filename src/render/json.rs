//! `--format json`, format_version 1, as docs/reference/json.md (generated
//! from these types) lists. Fields may be added; the ones the contract names
//! are never renamed or dropped.

use crate::plan::{summarize, Change, ClusterPlan, Note, Problem, Summary};
use serde::Serialize;

#[derive(Serialize, schemars::JsonSchema)]
struct ChangeView<'a> {
    /// The plan file's `cluster`.
    cluster: &'a str,
    /// What the change concerns (see addresses.md).
    address: &'a str,
    action: crate::plan::Action,
    /// The live value (`null` when it does not exist).
    before: &'a serde_json::Value,
    /// The value the plan file asks for (`null` for a delete).
    after: &'a serde_json::Value,
    /// The server needs a restart for it to take effect.
    requires_restart: bool,
    /// Deletes or replaces something; apply asks for it by name.
    destructive: bool,
    /// Written already, waiting for a restart: apply does not issue it again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pending_restart: bool,
    /// Why the change is needed.
    reason: &'a str,
}

impl<'a> From<&'a Change> for ChangeView<'a> {
    fn from(c: &'a Change) -> Self {
        ChangeView {
            cluster: &c.cluster,
            address: &c.address,
            action: c.action,
            before: &c.before,
            after: &c.after,
            requires_restart: c.requires_restart,
            destructive: c.destructive,
            pending_restart: c.pending_restart,
            reason: &c.reason,
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct ErrorView<'a> {
    cluster: &'a str,
    /// The plan file.
    file: &'a str,
    /// Why the cluster's live state could not be read.
    message: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
struct PlanView<'a> {
    /// `1`.
    format_version: u32,
    /// What apply would change, every cluster's.
    changes: Vec<ChangeView<'a>>,
    /// What apply cannot fix by changing a setting.
    problems: Vec<&'a Problem>,
    /// What to know that is neither.
    notes: Vec<&'a Note>,
    /// One per cluster that could not be read.
    errors: Vec<ErrorView<'a>>,
    /// The changes counted by action.
    summary: Summary,
}

/// The JSON Schema of `plan --format json` (for the generated reference).
pub fn plan_schema() -> schemars::Schema {
    super::reference::output_schema::<PlanView<'static>>()
}

pub fn render_plan(plans: &[ClusterPlan]) -> String {
    let view = PlanView {
        format_version: 1,
        changes: plans
            .iter()
            .flat_map(|p| &p.changes)
            .map(ChangeView::from)
            .collect(),
        problems: plans.iter().flat_map(|p| &p.problems).collect(),
        notes: plans.iter().flat_map(|p| &p.notes).collect(),
        errors: plans
            .iter()
            .filter_map(|p| {
                p.error.as_deref().map(|message| ErrorView {
                    cluster: &p.cluster,
                    file: &p.file,
                    message,
                })
            })
            .collect(),
        summary: summarize(plans.iter().flat_map(|p| &p.changes)),
    };
    let mut text = serde_json::to_string_pretty(&view).expect("plan serialises");
    text.push('\n');
    text
}
