//! What the watcher does with its verdict: fail over (the old primary
//! fenced first: `fence_command` runs and must exit 0, or the guard's lease
//! lapsed), finish a failover another watcher started, or page a person
//! through `notify_command` when it refuses. The failover itself is
//! `execute::role_change::run`, the steps `pgdr failover` runs, journaled
//! with `trigger: automatic` and the evidence.

use super::{describe, lease, Watcher};
use crate::execute::role_change::{self, Kind, Trigger};
use crate::plan::watch::{FenceBy, Verdict};
use crate::providers::ProviderError;
use crate::spec::time::{now_unix, Timestamp};
use crate::state::watch::{Leases, WatchSeen};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a fence or notify command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

pub async fn act(
    w: &mut Watcher<'_>,
    verdict: &Verdict,
    seen: &WatchSeen,
    leases: &Leases,
) -> Result<Option<(String, String)>, ProviderError> {
    match verdict {
        Verdict::FailOver { to, fence } => {
            let fenced_by = match fence {
                FenceBy::GuardLeaseExpired(seconds) => format!(
                    "the guard's lease went unrenewed for {seconds:.0}s (its length is {}s): the guard fenced its server, or is gone with it",
                    w.failover.guard_lease_time().as_secs()
                ),
                FenceBy::Command => match run_fence_command(w).await {
                    Ok(how) => how,
                    Err(why) => {
                        let refusal = Verdict::Refuse {
                            why: format!("the primary is lost, but fence_command did not fence it ({why}); nothing was promoted"),
                            page: true,
                        };
                        notify(w, refusal.word(), &describe(&refusal), None).await;
                        return Ok(None);
                    }
                },
            };
            let ran = fail_over(w, to, Some(fenced_by), seen, leases).await?;
            Ok(Some(ran))
        }
        Verdict::Resume { to } => {
            // A watcher starts a failover only once the old primary is
            // fenced: finishing it needs no new proof.
            let fenced_by =
                "fenced before the failover began (a watcher started it; this one finishes it)"
                    .to_string();
            Ok(Some(fail_over(w, to, Some(fenced_by), seen, leases).await?))
        }
        Verdict::Refuse { why, page: true } => {
            if w.paged.as_deref() != Some(why.as_str()) {
                w.paged = Some(why.clone());
                notify(w, verdict.word(), &describe(verdict), None).await;
            }
            Ok(None)
        }
        _ => {
            w.paged = None;
            Ok(None)
        }
    }
}

/// Marks the failover started in the lease (a successor finishes it), runs
/// the steps, and marks it done; then tells `notify_command`.
async fn fail_over(
    w: &mut Watcher<'_>,
    to: &str,
    fenced_by: Option<String>,
    seen: &WatchSeen,
    leases: &Leases,
) -> Result<(String, String), ProviderError> {
    let me = w.me.clone();
    let cluster = w.desired.cluster().to_string();
    // Started only while this watcher holds the lease and (when the guard's
    // lapsed lease is the fence) the guard has not renewed since: the guard
    // lifts its fence only after a renewal that found no failover started,
    // so of the two writes one comes first and the other sees it.
    let guard_renewals = w.guard_seen.map(|s| s.renewals());
    let lapsed_guard = fenced_by
        .as_deref()
        .is_some_and(|f| f.starts_with("the guard's lease"));
    let mut started = false;
    let resuming = seen.unfinished.as_deref() == Some(to);
    let mark = lease::update(&w.store, &w.key, &cluster, |l| {
        // A failover another run started is resumed, never started twice.
        started = l.watcher.as_ref().is_some_and(|h| h.holder == me)
            && (l.failing_over_to.is_none() || resuming)
            && (!lapsed_guard || l.guard.as_ref().map(|g| g.renewals) == guard_renewals);
        if started {
            l.failing_over_to = Some(to.to_string());
        }
        started
    });
    lease::bounded(&w.store, super::bucket_limit(&w.failover), mark).await?;
    if !started {
        return Ok((
            "not started".to_string(),
            "the lease changed before the failover began (the guard renewed, or another watcher took over); looking again".to_string(),
        ));
    }
    let standby = w
        .desired
        .plan
        .standbys
        .iter()
        .find(|s| s.name.as_str() == to)
        .ok_or_else(|| {
            ProviderError::new("watch", format!("no standby `{to}` in the plan file"))
        })?;
    let lost_at = leases
        .primary_seen_at
        .map(|t| t.secs())
        .or_else(|| seen.primary_down_for.map(|d| now_unix() - d as i64));
    let request = role_change::run::Request {
        desired: w.desired,
        systems: w.systems,
        kind: Kind::Failover,
        standby,
        force: None,
        replay_timeout: Duration::from_secs(30),
        write_plan: w.write_plan,
        trigger: Trigger::Automatic,
        fenced_by,
        evidence: Some(evidence(seen, leases)),
        lost_at,
    };
    tracing::warn!(target: "pgdr::watch", cluster = w.desired.cluster(), to, "failing over");
    let on_step = w.on_step;
    let (journal, stored_at) = role_change::run::run(&request, on_step)
        .await
        .map_err(|e| ProviderError::new("watch", format!("{e:#}")))?;
    let done = journal.outcome == "done";
    lease::update(&w.store, &w.key, &cluster, |l| {
        if done {
            l.failing_over_to = None;
            l.failed_over_to = Some(to.to_string());
            l.failed_over_at = Some(Timestamp(now_unix()));
        }
        done
    })
    .await?;
    let detail = format!(
        "failover to standby `{to}`: {}{}",
        journal.outcome,
        journal
            .rto_seconds
            .map_or(String::new(), |s| format!(", writable again after {s:.1}s"))
    );
    notify(w, "failed over", &detail, Some((&journal, &stored_at))).await;
    Ok((journal.outcome, stored_at))
}

/// What the watcher saw, for the journal.
fn evidence(seen: &WatchSeen, leases: &Leases) -> serde_json::Value {
    serde_json::json!({
        "primary_down_for_seconds": seen.primary_down_for,
        "primary_last_seen": leases.primary_seen_at,
        "witnesses": seen.witnesses.iter().map(|w| serde_json::json!({
            "standby": w.name, "answers": w.reachable, "hears_primary": w.hears_primary, "said": w.said,
        })).collect::<Vec<_>>(),
        "lag_guard": seen.candidate.as_ref().map(|(name, verdict)| serde_json::json!({
            "standby": name,
            "passed": verdict.is_ok(),
            "measured": match verdict { Ok(m) | Err(m) => m },
        })),
        "watcher_lease": leases.watcher.as_ref().map(|l| &l.holder),
        "guard_lease": seen.guard.map(|g| serde_json::json!({
            "unrenewed_for_seconds": g.unchanged_for, "length_seconds": g.seconds,
        })),
    })
}

/// Runs `fence_command` with the old primary's identity in its environment;
/// `Ok(what it did)` on exit 0.
async fn run_fence_command(w: &Watcher<'_>) -> Result<String, String> {
    let command = w.failover.fence_command.clone().unwrap_or_default();
    let plan = &w.desired.plan;
    let mut env = vec![("PGDR_CLUSTER".to_string(), w.desired.cluster().to_string())];
    if let Some(info) = &plan.primary.postgres {
        if let Some(host) = info.get("host").or(info.get("hostaddr")) {
            env.push(("PGDR_PRIMARY_HOST".into(), host.to_string()));
        }
        env.push((
            "PGDR_PRIMARY_PORT".into(),
            info.get("port").unwrap_or("5432").to_string(),
        ));
    }
    if let Some(rds) = &plan.primary.rds {
        env.push(("PGDR_PRIMARY_RDS_INSTANCE".into(), rds.instance.clone()));
    }
    let (status, output) = run_shell(&command, &env, None).await?;
    if status == Some(0) {
        Ok(format!("fence_command exited 0 ({})", output.trim()))
    } else {
        Err(format!(
            "fence_command exited {}: {}",
            status.map_or("without a status".into(), |s| s.to_string()),
            output.trim()
        ))
    }
}

/// Runs `notify_command` (if any) with a JSON summary on its standard input.
/// A failure is logged, never fatal: the watcher goes on.
async fn notify(
    w: &Watcher<'_>,
    verdict: &str,
    detail: &str,
    journal: Option<(&role_change::Journal, &str)>,
) {
    let Some(command) = w.failover.notify_command.clone() else {
        return;
    };
    let summary = serde_json::json!({
        "cluster": w.desired.cluster(),
        "at": Timestamp(now_unix()),
        "verdict": verdict,
        "detail": detail,
        "journal": journal.map(|(_, at)| at),
        "outcome": journal.map(|(j, _)| &j.outcome),
        "rto_seconds": journal.and_then(|(j, _)| j.rto_seconds),
        "to": journal.map(|(j, _)| &j.to),
    });
    let stdin = serde_json::to_vec_pretty(&summary).expect("summary serialises");
    let env = [("PGDR_CLUSTER".to_string(), w.desired.cluster().to_string())];
    match run_shell(&command, &env, Some(stdin)).await {
        Ok((Some(0), _)) => {}
        Ok((status, output)) => tracing::warn!(
            target: "pgdr::watch",
            ?status,
            output = output.trim(),
            "notify_command failed"
        ),
        Err(e) => tracing::warn!(target: "pgdr::watch", error = e, "notify_command did not run"),
    }
}

/// `sh -c COMMAND` with `env`, `stdin`, within [`COMMAND_LIMIT`]: its exit
/// status and its output (stdout and stderr).
async fn run_shell(
    command: &str,
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
) -> Result<(Option<i32>, String), String> {
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .envs(env.iter().cloned())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = child.spawn().map_err(|e| format!("cannot run `sh`: {e}"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(&bytes);
    }
    let waited = tokio::time::timeout(
        COMMAND_LIMIT,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .map_err(|_| format!("still running after {}s", COMMAND_LIMIT.as_secs()))?
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr)
    );
    Ok((waited.status.code(), output))
}
