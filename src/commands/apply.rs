//! `pgdr apply PATH` and `pgdr apply FILE.plan.json`: make the changes.
//!
//! Order of safety checks, each before any write: every plan file valid; the
//! cluster locks held; every cluster read; nothing the live system rejects
//! (an impossible setting); no destructive change unless
//! `--allow-destructive`; a saved plan still matching live state; confirmation.

use super::{confirm, load_all, load_one, out, plan_all, style, Outcome};
use crate::cli::ApplyArgs;
use crate::execute::apply_cluster;
use crate::execute::lock::RunLock;
use crate::plan::saved::{SavedPlan, SAVED_PLAN_VERSION};
use crate::plan::ClusterPlan;
use crate::providers::Systems;
use crate::render;
use crate::settings::Settings;
use crate::spec::Desired;
use anyhow::{bail, Context};

use std::path::Path;

fn is_saved_plan(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "json")
}

pub async fn run(args: &ApplyArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let style = style(settings);
    let systems = Systems::new(settings);
    let (desired, plans, _locks) = if is_saved_plan(&args.path) {
        saved(&args.path, settings, &systems).await?
    } else {
        let desired = load_all(&args.path)?;
        let locks = lock_all(&desired, settings, &systems).await?;
        let plans = plan_all(&desired, &systems).await;
        (desired, plans, locks)
    };

    out(&render::human::render_plan(&plans, style))?;
    let failed: Vec<&ClusterPlan> = plans.iter().filter(|p| p.error.is_some()).collect();
    if !failed.is_empty() {
        bail!(
            "{} cluster{} could not be read; nothing was applied (fix the error above and run again)",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" }
        );
    }

    let impossible: Vec<&str> = plans
        .iter()
        .flat_map(|p| p.impossible_problems())
        .map(|p| p.address.as_str())
        .collect();
    if !impossible.is_empty() {
        bail!(
            "the plan file asks for {} thing{} the live system rejects ({}); nothing was applied\n  hint: fix the plan file where the problems above point, then run again",
            impossible.len(),
            if impossible.len() == 1 { "" } else { "s" },
            impossible.join(", ")
        );
    }

    let destructive: Vec<&str> = plans
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| c.destructive && c.op.is_some())
        .map(|c| c.address.as_str())
        .collect();
    if !destructive.is_empty() && !args.allow_destructive {
        bail!(
            "refusing {} destructive change{} ({}); nothing was applied\n  hint: check the plan above; if this is intended, run again with --allow-destructive",
            destructive.len(),
            if destructive.len() == 1 { "" } else { "s" },
            destructive.join(", ")
        );
    }

    let writes = plans
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| c.op.is_some())
        .count();
    if writes == 0 {
        out("Nothing to apply.\n")?;
        return not_applied(&plans);
    }
    // A saved plan was reviewed when it was made, as with `terraform apply PLANFILE`.
    if !args.auto_approve && !is_saved_plan(&args.path) {
        confirm(
            settings,
            &format!(
                "pgdr will make {writes} change{}.",
                if writes == 1 { "" } else { "s" }
            ),
            "review `pgdr plan` and pass --auto-approve, or apply a saved plan",
            "apply cancelled; nothing was applied",
        )?;
    }

    // At most `--parallelism` clusters write at once.
    let results = crate::providers::bounded(
        desired
            .iter()
            .zip(&plans)
            .map(|(d, p)| apply_cluster(d, p, &systems)),
        systems.parallelism,
    )
    .await;
    let (report, failures) = render::apply::report(&plans, &results, style);
    out(&report)?;
    if failures > 0 {
        bail!(
            "{failures} change{} failed; see above. Running apply again retries them.",
            if failures == 1 { "" } else { "s" }
        );
    }
    not_applied(&plans)
}

/// A cluster whose roles are not as planned (the primary unreachable, in
/// recovery after a failover, or a split brain) had nothing planned that
/// depends on its roles (and, unreachable or split, nothing for its servers at
/// all), so apply did not do its job there: exit 1, as for an unreachable
/// system anywhere, even when everything else was applied. (`plan` reports it
/// as a problem and keeps its 0/2.)
fn not_applied(plans: &[ClusterPlan]) -> anyhow::Result<Outcome> {
    let clusters: Vec<&str> = plans
        .iter()
        .filter(|p| p.roles_not_as_planned())
        .map(|p| p.cluster.as_str())
        .collect();
    if clusters.is_empty() {
        return Ok(Outcome::Clean);
    }
    bail!(
        "cluster{} {} could not be applied: {} primary is not as the plan file says (see the problem above), so nothing that depends on {} roles was planned; everything else was applied",
        if clusters.len() == 1 { "" } else { "s" },
        clusters.join(", "),
        if clusters.len() == 1 { "its" } else { "their" },
        if clusters.len() == 1 { "its" } else { "their" },
    )
}

/// Every cluster's apply lock (local, and in its bucket when it has one),
/// taken one by one so a refusal releases what was taken.
async fn lock_all(
    desired: &[Desired],
    settings: &Settings,
    systems: &Systems,
) -> anyhow::Result<Vec<RunLock>> {
    let mut locks = Vec::new();
    for d in desired {
        locks.push(RunLock::acquire(d, systems, &settings.lock_dir, "apply", "pgdr apply").await?);
    }
    Ok(locks)
}

/// Reads a saved plan and checks it still holds: the same plan files and the
/// same live state as when it was made.
async fn saved(
    path: &Path,
    settings: &Settings,
    systems: &Systems,
) -> anyhow::Result<(Vec<Desired>, Vec<ClusterPlan>, Vec<RunLock>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let saved: SavedPlan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a pgdr saved plan (make one with `pgdr plan PATH --out FILE`)",
            path.display()
        )
    })?;
    if saved.pgdr_saved_plan != SAVED_PLAN_VERSION {
        bail!(
            "{} is a saved plan of layout {}, this pgdr reads layout {SAVED_PLAN_VERSION}",
            path.display(),
            saved.pgdr_saved_plan
        );
    }
    let mut desired = Vec::new();
    for plan in &saved.clusters {
        let d = load_one(Path::new(&plan.file)).map_err(|e| anyhow::anyhow!("{e}"))?;
        if d.text_sha256 != plan.file_sha256 {
            bail!("{} changed since the plan was saved; nothing was applied\n  hint: run `pgdr plan --out` again", plan.file);
        }
        desired.push(d);
    }
    let locks = lock_all(&desired, settings, systems).await?;
    let now = plan_all(&desired, systems).await;
    let mut stale = Vec::new();
    for (then, now) in saved.clusters.iter().zip(&now) {
        if let Some(error) = &now.error {
            bail!(
                "cluster `{}` could not be read; nothing was applied\n{error}",
                now.cluster
            );
        }
        if then.live_sha256 != now.live_sha256 {
            stale.push(then.cluster.as_str());
        }
    }
    if !stale.is_empty() {
        bail!(
            "the saved plan is stale: live state of cluster{} {} changed since it was made; nothing was applied\n  hint: run `pgdr plan --out` again and review the new plan",
            if stale.len() == 1 { "" } else { "s" },
            stale.join(", ")
        );
    }
    Ok((desired, saved.clusters, locks))
}
