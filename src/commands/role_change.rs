//! `pgdr switchover PLAN_FILE --to NAME` and `pgdr failover PLAN_FILE [--to
//! NAME] [--force REASON]`: run the role-change steps under the cluster's
//! lock, print each as it ends, store the journal, and print (or with
//! `--write-plan`, make) the plan-file change to the new roles.
//!
//! Exit 0 when every step succeeded; 1 when one was refused (the lag guard, a
//! split brain) or failed — the journal says which, and running the same
//! command again resumes from there.

use super::{archive_of, load_cluster, out, Outcome};
use crate::cli::{FailoverArgs, RoleChangeArgs, SwitchoverArgs};
use crate::execute::backup;
use crate::execute::lock::RunLock;
use crate::execute::role_change::steps::{self, RoleChange};
use crate::execute::role_change::{self, choose, Journal, Kind};
use crate::execute::steps::{required_succeeded, run_steps, DynStep, StepOutcome, StepRecord};
use crate::providers::postgres::role as pg_role;
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::settings::Settings;
use crate::spec::{Desired, Standby};
use anyhow::{anyhow, bail, Context};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
    let standby = pick(&desired, &systems, to).await?;
    let from = desired
        .plan
        .primary
        .postgres
        .as_ref()
        .map(|i| i.to_string())
        .or_else(|| {
            desired
                .plan
                .primary
                .rds
                .as_ref()
                .map(|r| format!("rds {}", r.instance))
        })
        .unwrap_or_default();
    let to_server = standby
        .postgres
        .as_ref()
        .map(|i| i.to_string())
        .or_else(|| standby.rds.as_ref().map(|r| format!("rds {}", r.instance)))
        .unwrap_or_default();

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

    let mut ctx = RoleChange::new(&desired, &systems, kind, standby, force.clone());
    ctx.replay_timeout = std::time::Duration::from_secs(replay_timeout.as_secs().max(1));
    let started_at = backup::rfc3339(SystemTime::now());
    let ts = backup::backup_id(SystemTime::now());
    let sequence = steps::sequence(force.clone());
    let dyns: Vec<&dyn DynStep<RoleChange>> = sequence.iter().map(|s| s.as_ref()).collect();
    let records = run_steps(&ctx, &dyns, |record| {
        eprintln!("{}", step_line(record));
        crate::execute::failpoint::crash_point(&record.step);
    })
    .await;
    let ok = required_succeeded(&dyns, &records);
    let outcome = if ok {
        "done"
    } else if records
        .iter()
        .any(|r| matches!(r.outcome, StepOutcome::Refused(_)))
    {
        "refused"
    } else {
        "failed"
    };

    // The plan-file change: made only once the new primary took over.
    let promoted = records
        .iter()
        .any(|r| r.step == "promote" && r.outcome.succeeded());
    let (change, written) = if promoted {
        plan_change(&desired, standby, common.write_plan)?
    } else {
        (None, false)
    };
    let journal = Journal {
        cluster: desired.cluster().to_string(),
        kind,
        to: standby.name.to_string(),
        to_server,
        from_server: from,
        started_at,
        finished_at: backup::rfc3339(SystemTime::now()),
        outcome: outcome.to_string(),
        forced: force,
        steps: records,
        notes: ctx.notes(),
        plan_file_change: change.clone(),
        plan_file_written: written,
    };
    let stored_at = store_journal(&desired, &systems, &ts, &journal).await;
    out(&report(&journal, &stored_at, path))?;
    match outcome {
        "done" => Ok(Outcome::Clean),
        _ => Err(anyhow!(
            "{} {}: see the steps above; nothing after the step that stopped was done. Running the same command again resumes from there",
            kind.as_str(),
            outcome
        )),
    }
}

/// The standby that takes over: the one named, else (failover) one already
/// promoted by an earlier run, else the best streaming one.
async fn pick<'a>(
    desired: &'a Desired,
    systems: &Systems,
    to: Option<&str>,
) -> anyhow::Result<&'a Standby> {
    let standbys = &desired.plan.standbys;
    if let Some(name) = to {
        return standbys
            .iter()
            .find(|s| s.name.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = standbys.iter().map(|s| s.name.as_str()).collect();
                anyhow!(
                    "{}: no standby `{name}`; its standbys are: {}",
                    desired.source.display(),
                    names.join(", ")
                )
            });
    }
    // A standby an earlier run promoted (every standby asked at once).
    let states = futures_util::future::join_all(standbys.iter().map(|standby| async move {
        let info = standby.postgres.as_ref()?;
        let role = format!("standby.{}", standby.name);
        pg_role::state(&role, info, &systems.pg).await.ok()
    }))
    .await;
    if let Some((standby, _)) = standbys
        .iter()
        .zip(&states)
        .find(|(_, state)| state.as_ref().is_some_and(|s| !s.in_recovery))
    {
        eprintln!(
            "Standby `{}` already accepts writes: resuming with it.",
            standby.name
        );
        return Ok(standby);
    }
    let live = crate::observe::observe(desired, systems)
        .await
        .context("reading the cluster to choose a standby")?;
    let candidates = role_change::candidates(desired, &live);
    let chosen = choose(&candidates, None).map_err(|e| anyhow!("{e}"))?;
    Ok(standbys
        .iter()
        .find(|s| s.name.as_str() == chosen.name)
        .expect("candidates come from the plan's standbys"))
}

fn step_line(record: &StepRecord) -> String {
    let (mark, detail) = match &record.outcome {
        StepOutcome::AlreadyDone(d) => ("=", format!("already done: {d}")),
        StepOutcome::Done(d) | StepOutcome::Passed(d) => ("✓", d.clone()),
        StepOutcome::Refused(d) => ("✗", format!("refused: {d}")),
        StepOutcome::Failed(d) => ("✗", format!("failed: {d}")),
        StepOutcome::NotRun => ("-", "not run".to_string()),
    };
    format!(
        "  {mark} {:<19} {:>6.2}s  {detail}",
        record.step,
        record.duration_ms as f64 / 1000.0
    )
}

/// The unified diff to the new roles, and whether it was written.
fn plan_change(
    desired: &Desired,
    standby: &Standby,
    write: bool,
) -> anyhow::Result<(Option<String>, bool)> {
    let after = match role_change::swapped_text(desired, standby) {
        Ok(after) => after,
        Err(why) => {
            return Ok((
                Some(format!(
                    "pgdr cannot edit {} ({why}): make `primary` the server of standby `{}`, and that standby entry the old primary",
                    desired.source.display(),
                    standby.name
                )),
                false,
            ))
        }
    };
    let file = desired.source.display().to_string();
    let diff = similar::TextDiff::from_lines(&desired.text, &after)
        .unified_diff()
        .context_radius(1)
        .header(&file, &file)
        .to_string();
    if write {
        write_atomically(&desired.source, &after)
            .with_context(|| format!("writing the new roles into {file}"))?;
    }
    Ok((Some(diff), write))
}

/// Replaces `path` with `text` by rename, so a crash leaves the old or the new file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("pgdr-tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions())?;
    }
    std::fs::rename(&tmp, path)
}

/// Stores the journal; says where, or why it could not.
async fn store_journal(
    desired: &Desired,
    systems: &Systems,
    ts: &str,
    journal: &Journal,
) -> String {
    let json = serde_json::to_vec_pretty(journal).expect("journal serialises");
    match archive_of(desired) {
        Ok((url, region, _)) => {
            let store = Store::s3(systems.aws.s3(&region).await, &url.bucket);
            let key = url.failover_key(ts);
            match store.put_new(&key, json, &HashMap::new()).await {
                Ok(_) => format!("s3://{}/{key}", url.bucket),
                Err(e) => format!("not stored ({e})"),
            }
        }
        Err(_) => {
            let path = local_journal(desired, ts);
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::write(&path, &json));
            match written {
                Ok(()) => path.display().to_string(),
                Err(e) => format!("not stored ({}: {e})", path.display()),
            }
        }
    }
}

/// Without an archive bucket: `failovers/<cluster>-<ts>.json` beside the plan file.
fn local_journal(desired: &Desired, ts: &str) -> PathBuf {
    desired
        .source
        .parent()
        .unwrap_or(Path::new("."))
        .join("failovers")
        .join(format!("{}-{ts}.json", desired.cluster()))
}

fn report(journal: &Journal, stored_at: &str, path: &Path) -> String {
    let total_ms: u64 = journal.steps.iter().map(|s| s.duration_ms).sum();
    let mut text = format!(
        "{} of `{}` to `{}`: {} in {:.2}s\n",
        journal.kind.as_str(),
        journal.cluster,
        journal.to,
        journal.outcome,
        total_ms as f64 / 1000.0
    );
    for record in &journal.steps {
        text.push_str(&step_line(record));
        text.push('\n');
    }
    for note in &journal.notes {
        text.push_str(&format!("\nnote: {note}\n"));
    }
    text.push_str(&format!("\njournal: {stored_at}\n"));
    if let Some(change) = &journal.plan_file_change {
        if journal.plan_file_written {
            text.push_str(&format!(
                "\n{} now names the new roles:\n{change}",
                path.display()
            ));
        } else {
            text.push_str(&format!(
                "\nThe plan file must name the new roles (run with --write-plan to make this change, comments kept):\n{change}"
            ));
        }
    }
    text
}
