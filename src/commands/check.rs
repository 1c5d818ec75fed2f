//! `pgdr check PATH`: the one command a pull-request job runs. Lints, then
//! plans against live systems (unless `--offline`), and prints one markdown
//! report (`render::check`) fit for a PR comment or `$GITHUB_STEP_SUMMARY`.

use super::lint::{lint_all, load_policy};
use super::{load_all, out, plan_all, Outcome};
use crate::cli::CheckArgs;
use crate::providers::Systems;
use crate::render;
use crate::settings::Settings;

pub async fn run(args: &CheckArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let policy = load_policy(args.policy.as_deref())?;
    let desired = load_all(&args.path)?;
    let findings = lint_all(&desired, &policy);
    let plans = if args.offline {
        Vec::new()
    } else {
        plan_all(&desired, &Systems::new(settings)).await
    };
    let clusters: Vec<String> = desired.iter().map(|d| d.cluster().to_string()).collect();
    out(&render::check::markdown(
        &clusters,
        &findings,
        &plans,
        args.offline,
    ))?;

    let unreadable = plans.iter().filter(|p| p.error.is_some()).count();
    if unreadable > 0 {
        anyhow::bail!("{unreadable} cluster(s) could not be read; see the report");
    }
    let blocking = findings.iter().any(|f| f.is_blocking());
    let drift = plans
        .iter()
        .any(|p| !p.changes.is_empty() || !p.problems.is_empty());
    Ok(if blocking || drift {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}
