//! The markdown report of `pgdr check`: lint findings and, unless offline, the
//! drift of each cluster folded under `<details>`, fit for a pull-request
//! comment or `$GITHUB_STEP_SUMMARY`.

use crate::lint::{Finding, Severity};
use crate::plan::ClusterPlan;
use std::fmt::Write;

/// `clusters` in plan-file order; `plans` empty when `offline`.
pub fn markdown(
    clusters: &[String],
    findings: &[Finding],
    plans: &[ClusterPlan],
    offline: bool,
) -> String {
    let mut out = String::from("## pgdr check\n\n");
    let blocking = findings.iter().filter(|f| f.is_blocking()).count();
    let drift = plans
        .iter()
        .filter(|p| !p.changes.is_empty() || !p.problems.is_empty())
        .count();
    let unreadable = plans.iter().filter(|p| p.error.is_some()).count();
    let verdict = if blocking == 0 && drift == 0 && unreadable == 0 {
        ":white_check_mark:"
    } else {
        ":x:"
    };
    writeln!(out, "{verdict} {}", super::lint::summary(findings)).unwrap();
    if offline {
        out.push_str("Live state was not read (`--offline`).\n");
    } else {
        writeln!(out, "{}", super::human::summary_line(plans)).unwrap();
    }
    out.push('\n');
    for cluster in clusters {
        writeln!(out, "### Cluster `{cluster}`\n").unwrap();
        let mine: Vec<&Finding> = findings.iter().filter(|f| &f.cluster == cluster).collect();
        if mine.is_empty() {
            out.push_str("Lint: no findings.\n\n");
        } else {
            out.push_str("| | Rule | Key | Line | Finding |\n|---|---|---|---|---|\n");
            for f in mine {
                let mark = match (f.severity, &f.ignored) {
                    (_, Some(_)) => ":zzz: ignored",
                    (Severity::Error, None) => ":x: error",
                    (Severity::Warning, None) => ":warning: warning",
                };
                let mut message = f.message.replace('|', "\\|");
                if let Some(reason) = &f.ignored {
                    write!(message, " _(ignored: {})_", reason.replace('|', "\\|")).unwrap();
                }
                writeln!(
                    out,
                    "| {mark} | `{}` | `{}` | {} | {message} |",
                    f.rule,
                    f.path,
                    f.line.map_or("".into(), |l| l.to_string())
                )
                .unwrap();
            }
            out.push('\n');
        }
        if let Some(plan) = plans.iter().find(|p| &p.cluster == cluster) {
            // The plan's own markdown, folded: long in a PR comment.
            let detail = super::markdown::render_plan(std::slice::from_ref(plan));
            let headline = if plan.error.is_some() {
                "Live state could not be read".to_string()
            } else if plan.needs_attention() {
                format!(
                    "Drift: {} change(s), {} problem(s)",
                    plan.changes.len(),
                    plan.problems.len()
                )
            } else {
                "No drift".to_string()
            };
            writeln!(
                out,
                "<details><summary>{headline}</summary>\n\n{}\n</details>\n",
                detail.trim_start_matches("## pgdr plan\n\n")
            )
            .unwrap();
        }
    }
    out
}
