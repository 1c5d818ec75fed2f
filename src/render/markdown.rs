//! Markdown for pull-request comments and `$GITHUB_STEP_SUMMARY`: one section
//! per cluster, a table of changes, long values folded in `<details>`.

use super::{value_text, LONG_VALUE};
use crate::plan::ClusterPlan;
use std::fmt::Write;

fn cell(text: &str) -> String {
    if text.len() > LONG_VALUE {
        format!(
            "<details><summary>{}…</summary><code>{}</code></details>",
            escape(&text[..text.char_indices().nth(30).map_or(text.len(), |(i, _)| i)]),
            escape(text)
        )
    } else {
        format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "&#124;")
}

pub fn render_plan(plans: &[ClusterPlan]) -> String {
    let mut out = String::from("## pgdr plan\n\n");
    for plan in plans {
        writeln!(out, "### Cluster `{}`\n", plan.cluster).unwrap();
        writeln!(out, "_{}_\n", plan.file).unwrap();
        if let Some(error) = &plan.error {
            writeln!(out, "> **Error:** {}\n", error.replace('\n', " ")).unwrap();
            continue;
        }
        if plan.changes.is_empty() && plan.roles_not_as_planned() {
            out.push_str("No changes planned until the primary is as the plan file says.\n\n");
        } else if plan.changes.is_empty() {
            out.push_str("No changes: live state matches the plan file.\n\n");
        } else {
            out.push_str("| | Address | Before | After | Notes |\n|---|---|---|---|---|\n");
            for c in &plan.changes {
                let mut notes = Vec::new();
                if c.destructive {
                    notes.push("**destructive**");
                }
                if c.pending_restart {
                    notes.push("pending restart");
                } else if c.requires_restart {
                    notes.push("requires restart");
                }
                writeln!(
                    out,
                    "| {} {:?} | `{}` | {} | {} | {} |",
                    c.action.symbol(),
                    c.action,
                    c.address,
                    cell(&value_text(&c.before)),
                    cell(&value_text(&c.after)),
                    notes.join(", ")
                )
                .unwrap();
            }
            out.push('\n');
        }
        if !plan.problems.is_empty() {
            out.push_str("**Problems**\n\n");
            for p in &plan.problems {
                let fix = if p.impossible {
                    " (fix the plan file)"
                } else {
                    ""
                };
                writeln!(out, "- :x: `{}`: {}{fix}", p.address, p.message).unwrap();
            }
            out.push('\n');
        }
        if !plan.notes.is_empty() {
            out.push_str("<details><summary>Notes</summary>\n\n");
            for n in &plan.notes {
                writeln!(out, "- `{}`: {}", n.address, n.message).unwrap();
            }
            out.push_str("\n</details>\n\n");
        }
    }
    writeln!(out, "**{}**", super::human::summary_line(plans)).unwrap();
    out
}
