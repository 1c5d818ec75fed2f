//! `--format json`, format_version 1, as the README's "Addresses and JSON" section specifies. Fields may
//! be added; the ones the contract names are never renamed or dropped.

use crate::plan::{summarize, Change, ClusterPlan, Note, Problem, Summary};
use serde::Serialize;

#[derive(Serialize)]
struct ChangeView<'a> {
    cluster: &'a str,
    address: &'a str,
    action: crate::plan::Action,
    before: &'a serde_json::Value,
    after: &'a serde_json::Value,
    requires_restart: bool,
    destructive: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pending_restart: bool,
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

#[derive(Serialize)]
struct ErrorView<'a> {
    cluster: &'a str,
    file: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct PlanView<'a> {
    format_version: u32,
    changes: Vec<ChangeView<'a>>,
    problems: Vec<&'a Problem>,
    notes: Vec<&'a Note>,
    errors: Vec<ErrorView<'a>>,
    summary: Summary,
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
