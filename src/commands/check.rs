//! `pgdr check PATH`: the one command a pull-request job runs. Lints, then
//! plans against live systems (unless `--offline`), and prints one markdown
//! report fit for a PR comment or `$GITHUB_STEP_SUMMARY`.

use super::lint::{lint_all, load_policy};
use super::{load_all, plan_all, Exit};
use crate::cli::CheckArgs;
use crate::lint::{Finding, Severity};
use crate::providers::aws::AwsClients;
use crate::render;
use std::fmt::Write;

pub async fn run(args: &CheckArgs) -> anyhow::Result<Exit> {
    let policy = load_policy(args.policy.as_deref())?;
    let desired = load_all(&args.path)?;
    let findings = lint_all(&desired, &policy);
    let plans = if args.offline {
        Vec::new()
    } else {
        plan_all(&desired, &AwsClients::default()).await
    };

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
    writeln!(out, "{verdict} {}", render::lint::summary(&findings)).unwrap();
    if args.offline {
        out.push_str("Live state was not read (`--offline`).\n");
    } else {
        writeln!(out, "{}", render::human::summary_line(&plans)).unwrap();
    }
    out.push('\n');
    for d in &desired {
        writeln!(out, "### Cluster `{}`\n", d.cluster()).unwrap();
        let mine: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.cluster == d.cluster())
            .collect();
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
        if let Some(plan) = plans.iter().find(|p| p.cluster == d.cluster()) {
            // The plan's own markdown, folded: long in a PR comment.
            let detail = render::markdown::render_plan(std::slice::from_ref(plan));
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
    print!("{out}");
    if unreadable > 0 {
        eprintln!("error: {unreadable} cluster(s) could not be read; see the report");
        return Ok(Exit::Failed);
    }
    Ok(if blocking > 0 || drift > 0 {
        Exit::Found
    } else {
        Exit::Clean
    })
}
