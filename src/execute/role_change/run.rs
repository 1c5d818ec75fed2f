//! Running a role change: pick the standby (the one named, one an earlier
//! run already promoted, else the best), run the steps ([`super::steps`]),
//! make or print the plan-file change once the new primary took over, and
//! keep the journal — in the archive (`failovers/<ts>.json`) or beside the
//! plan file. `switchover`, `failover` and the watcher run it alike.

use super::steps::{self, RoleChange};
use super::{choose, Journal, Kind, Trigger};
use crate::execute::steps::{required_succeeded, run_steps, DynStep, StepOutcome, StepRecord};
use crate::format::ArchiveUrl;
use crate::providers::postgres::role as pg_role;
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::spec::{Desired, Standby};
use anyhow::{anyhow, Context};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a role change is asked to do.
pub struct Request<'a> {
    pub desired: &'a Desired,
    pub systems: &'a Systems,
    pub kind: Kind,
    pub standby: &'a Standby,
    /// `--force`'s reason: the lag guard is overridden.
    pub force: Option<String>,
    /// How long a switchover waits for the standby to replay the primary's last WAL.
    pub replay_timeout: std::time::Duration,
    /// Write the new roles into the plan file (`--write-plan`).
    pub write_plan: bool,
    /// A person, or the watcher (which also says how the old primary was
    /// fenced, what it saw, and when it lost the primary: the RTO's start).
    pub trigger: Trigger,
    pub fenced_by: Option<String>,
    pub evidence: Option<serde_json::Value>,
    pub lost_at: Option<i64>,
}

/// The old primary's and the new one's addresses, as the journal names them.
pub fn servers(desired: &Desired, standby: &Standby) -> (String, String) {
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
    let to = standby
        .postgres
        .as_ref()
        .map(|i| i.to_string())
        .or_else(|| standby.rds.as_ref().map(|r| format!("rds {}", r.instance)))
        .unwrap_or_default();
    (from, to)
}

/// Runs the steps; `on_step` sees each record as it ends. Returns the
/// journal and where it was stored (or why it could not be).
pub async fn run(
    request: &Request<'_>,
    mut on_step: impl FnMut(&StepRecord),
) -> anyhow::Result<(Journal, String)> {
    let Request {
        desired,
        systems,
        kind,
        standby,
        ..
    } = *request;
    let force = request.force.clone();
    let (from, to_server) = servers(desired, standby);
    let mut ctx = RoleChange::new(desired, systems, kind, standby, force.clone());
    ctx.replay_timeout = request.replay_timeout;
    ctx.trigger = request.trigger;
    ctx.fenced_by = request.fenced_by.clone();
    let now = crate::spec::time::now_unix();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let started_at = crate::spec::time::Timestamp(now);
    let ts = crate::spec::time::compact(now);
    let sequence = steps::sequence(force.clone());
    let dyns: Vec<&dyn DynStep<RoleChange>> = sequence.iter().map(|s| s.as_ref()).collect();
    let records = run_steps(&ctx, &dyns, |record| {
        on_step(record);
        // A test's crash between two steps (`after:promote`), whoever runs them.
        crate::execute::failpoint::crash_point(&record.step);
    })
    .await;
    let outcome = if required_succeeded(&dyns, &records) {
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
        plan_change(desired, standby, request.write_plan)?
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
        finished_at: crate::spec::time::Timestamp(crate::spec::time::now_unix()),
        outcome: outcome.to_string(),
        forced: force,
        steps: records,
        notes: ctx.notes(),
        plan_file_change: change,
        plan_file_written: written,
        trigger: request.trigger,
        evidence: request.evidence.clone(),
        rto_seconds: None,
        rpo_seconds: None,
    };
    let journal = Journal {
        rto_seconds: measured_rto(
            &journal.steps,
            request.lost_at.map_or(started, |lost| lost as f64),
        ),
        rpo_seconds: match (kind, outcome) {
            (_, "done") if kind == Kind::Switchover => Some(0.0),
            (_, "done") => ctx.measured_lag(),
            _ => None,
        },
        ..journal
    };
    let stored_at = store_journal(desired, systems, &ts, &journal).await;
    Ok((journal, stored_at))
}

/// Seconds from `from` (seconds since the epoch) until the new primary took
/// writes and clients were sent to it: the end of `move-endpoint` (in sync),
/// or of `promote` without an endpoint. `None` when neither succeeded.
pub fn measured_rto(steps: &[StepRecord], from: f64) -> Option<f64> {
    let end_of = |name: &str| {
        steps
            .iter()
            .find(|r| r.step == name && r.outcome.succeeded())
            .map(|r| r.started_unix_ms + r.duration_ms)
    };
    let promoted = end_of("promote")?;
    let end = end_of("move-endpoint").unwrap_or(promoted).max(promoted);
    Some((end as f64 / 1000.0 - from).max(0.0))
}

/// The standby that takes over: the one named, else (failover) one already
/// promoted by an earlier run, else the best streaming one.
pub async fn pick<'a>(
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
    let candidates = super::candidates(desired, &live);
    let chosen = choose(&candidates, None).map_err(|e| anyhow!("{e}"))?;
    Ok(standbys
        .iter()
        .find(|s| s.name.as_str() == chosen.name)
        .expect("candidates come from the plan's standbys"))
}

/// The unified diff to the new roles, and whether it was written.
fn plan_change(
    desired: &Desired,
    standby: &Standby,
    write: bool,
) -> anyhow::Result<(Option<String>, bool)> {
    let after = match super::swapped_text(desired, standby) {
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
    let url = desired
        .plan
        .archive
        .as_ref()
        .map(|a| ArchiveUrl::parse(&a.url()));
    match url {
        Some(Ok(url)) => {
            let store = Store::s3(systems.aws.s3(desired.region()).await, &url.bucket);
            let key = url.failover_key(ts);
            match store.put_new(&key, json, &HashMap::new()).await {
                Ok(_) => format!("s3://{}/{key}", url.bucket),
                Err(e) => format!("not stored ({e})"),
            }
        }
        _ => {
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
