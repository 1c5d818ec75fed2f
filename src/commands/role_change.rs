//! `pgdr switchover PLAN_FILE --to NAME` and `pgdr failover PLAN_FILE [--to
//! NAME] [--force REASON]`: run the role-change steps under the cluster's
//! lock, print each as it ends, store the journal, and print (or with
//! `--write-plan`, make) the plan-file change to the new roles.
//!
//! Exit 0 when every step succeeded; 1 when one was refused (the lag guard, a
//! split brain) or failed — the journal says which, and running the same
//! command again resumes from there.

use super::{load_cluster, out, Outcome};
use crate::cli::{FailoverArgs, RoleChangeArgs, SwitchoverArgs};
use crate::execute::lock::RunLock;
use crate::execute::role_change::{self, Kind};
use crate::providers::Systems;
use crate::render;
use crate::settings::Settings;
use anyhow::{anyhow, bail};
use std::path::Path;

pub async fn switchover(args: &SwitchoverArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    run(
        Kind::Switchover,
        &args.path,
        Some(&args.to),
        None,
        &args.common,
        settings,
    )
    .await
}

pub async fn failover(args: &FailoverArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    if args.force.as_deref().is_some_and(|r| r.trim().is_empty()) {
        bail!("--force needs a reason (it is kept in the journal), e.g. --force \"primary's volume is gone\"");
    }
    run(
        Kind::Failover,
        &args.path,
        args.to.as_deref(),
        args.force.clone(),
        &args.common,
        settings,
    )
    .await
}

async fn run(
    kind: Kind,
    path: &Path,
    to: Option<&str>,
    force: Option<String>,
    common: &RoleChangeArgs,
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let replay_timeout = crate::spec::Duration::parse(&common.replay_timeout)
        .map_err(|e| anyhow!("--replay-timeout {}: {e}", common.replay_timeout))?;
    let desired = load_cluster(path, kind.as_str())?;
    if desired.plan.standbys.is_empty() {
        bail!(
            "{}: the plan file lists no standbys, so there is nothing to {} to",
            desired.source.display(),
            kind.as_str()
        );
    }
    // The apply lock: a role change and an apply (or a second role change)
    // never interleave on one cluster.
    let systems = Systems::new(settings);
    let _lock = RunLock::acquire(
        &desired,
        &systems,
        &settings.lock_dir,
        "apply",
        &format!("pgdr {}", kind.as_str()),
    )
    .await?;
    let standby = role_change::run::pick(&desired, &systems, to).await?;
    let (from, to_server) = role_change::run::servers(&desired, standby);

    eprintln!(
        "pgdr {}: standby `{}` ({to_server}) becomes the primary of `{}` (now {from}).\n  steps: check-standby → fence-primary → wait-replay → promote → repoint-standbys → move-endpoint → rejoin-old-primary",
        kind.as_str(),
        standby.name,
        desired.cluster()
    );
    if let Some(reason) = &force {
        eprintln!("  --force: the lag guard is overridden: {reason}");
    }
    if !common.auto_approve {
        super::confirm(
            settings,
            "This ends every session on the old primary and moves the endpoint.",
            &format!("pass --auto-approve to {} without asking", kind.as_str()),
            &format!("{} cancelled; nothing was changed", kind.as_str()),
        )?;
    }

    let request = role_change::run::Request {
        desired: &desired,
        systems: &systems,
        kind,
        standby,
        force,
        replay_timeout: std::time::Duration::from_secs(replay_timeout.as_secs().max(1)),
        write_plan: common.write_plan,
        trigger: role_change::Trigger::Manual,
        fenced_by: None,
        evidence: None,
        lost_at: None,
    };
    let (journal, stored_at) = role_change::run::run(&request, |record| {
        eprintln!("{}", render::role_change::step_line(record));
    })
    .await?;
    out(&render::role_change::report(&journal, &stored_at, path))?;
    match journal.outcome.as_str() {
        "done" => Ok(Outcome::Clean),
        outcome => Err(anyhow!(
            "{} {outcome}: see the steps above; nothing after the step that stopped was done. Running the same command again resumes from there",
            kind.as_str(),
        )),
    }
}
