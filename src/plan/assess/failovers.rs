//! Failover drills: the playbook's "run a controlled failover drill, measure
//! promotion time, update DNS, and document the actual RTO/RPO against
//! targets". Every role change's journal carries its measured RTO and RPO;
//! with `drill.failover_every` set, a measured switchover or failover must
//! be that recent and within today's objectives (address `drill.failover`).
//! And automatic failover as armed: a watcher and (with `guard: true`) a
//! guard renewing their leases, and no refusal waiting for a person
//! (address `failover`).

use super::{approximate, over_objectives, Finding, Kind};
use crate::spec::Desired;
use crate::state::Live;

pub fn findings(desired: &Desired, live: &Live) -> Vec<Finding> {
    let mut found = Vec::new();
    let Some(every) = desired.plan.drill.as_ref().and_then(|d| d.failover_every) else {
        return found;
    };
    let file = desired.source.display().to_string();
    let Some(failovers) = &live.failovers else {
        return found;
    };
    let Some(newest) = &failovers.newest_done else {
        found.push(Finding::new(
            "drill.failover",
            Kind::NoFailoverDrill { every, file },
        ));
        return found;
    };
    if let Some(age) = failovers
        .newest_done_age_seconds
        .filter(|age| *age > every.as_secs())
    {
        found.push(Finding::new(
            "drill.failover",
            Kind::FailoverDrillTooOld {
                age_seconds: age,
                started_at: newest.started_at,
                every,
                file,
            },
        ));
    }
    for (figure, value, objective) in
        over_objectives(desired, newest.rto_seconds, newest.rpo_seconds)
    {
        found.push(Finding::new(
            "drill.failover",
            Kind::FailoverOverObjective {
                figure,
                value,
                objective,
                kind: newest.kind.as_str().to_string(),
                started_at: newest.started_at,
            },
        ));
    }
    found
}

/// How long a lease may stand still, as this reader sees its holder's
/// `renewed_at` (another machine's clock: generous), before the holder counts
/// as not running.
fn stale_after(seconds: u64) -> i64 {
    (3 * seconds).max(60) as i64
}

/// With `failover.automatic`: the watcher's lease (and the guard's, when the
/// plan has one) renewed lately, and the last evaluation not a refusal.
/// `now` dates the renewals (none: only a lease never taken is reported).
pub fn watch_findings(desired: &Desired, live: &Live, now: Option<i64>) -> Vec<Finding> {
    let mut found = Vec::new();
    let Some(failover) = desired.plan.failover.as_ref().filter(|f| f.automatic) else {
        return found;
    };
    // Not read (no archive, the bucket did not answer): nothing to judge.
    let Some(leases) = &live.leases else {
        return found;
    };
    let file = desired.source.display().to_string();
    let agents = [
        ("watcher", leases.watcher.as_ref(), true),
        ("guard", leases.guard.as_ref(), failover.guard),
    ];
    for (who, lease, wanted) in agents {
        if !wanted {
            continue;
        }
        let running = lease.is_some_and(|l| {
            now.is_none_or(|now| now - l.renewed_at.secs() <= stale_after(l.seconds))
        });
        if !running {
            found.push(Finding::new(
                "failover",
                Kind::FailoverAgentMissing {
                    who,
                    last: lease.map(|l| l.renewed_at),
                    file: file.clone(),
                },
            ));
        }
    }
    if let Some(evaluation) = leases
        .last_evaluation
        .as_ref()
        .filter(|e| e.verdict == "refused")
    {
        found.push(Finding::new(
            "failover",
            Kind::FailoverRefused {
                at: evaluation.at,
                why: evaluation.detail.clone(),
            },
        ));
    }
    found
}

/// `plan`'s text.
pub(super) fn plan_entry(kind: &Kind) -> Option<(bool, String)> {
    let text = match kind {
        Kind::NoFailoverDrill { every, file } => format!(
            "no measured switchover or failover yet, and drill.failover_every is {every}: nothing shows the failover meets the objectives; run `pgdr switchover {file} --to NAME` (and back)"
        ),
        Kind::FailoverDrillTooOld {
            age_seconds,
            started_at,
            every,
            file,
        } => format!(
            "the last measured role change ran {} ago ({started_at}), longer than drill.failover_every ({every}); run `pgdr switchover {file} --to NAME`",
            approximate(*age_seconds)
        ),
        Kind::FailoverOverObjective {
            figure,
            value,
            objective,
            kind,
            started_at,
        } => {
            let (name, verb, key) = figure.words();
            format!("the last {kind} ({started_at}) {verb} an {name} of {value:.1}s, above objectives.{key} ({objective})")
        }
        Kind::FailoverAgentMissing { who, last, file } => {
            let (command, consequence) = agent_words(who);
            format!(
                "failover.automatic is on, but no `{command} {file}` renews its lease ({}): {consequence}",
                last.map_or("never taken".to_string(), |t| format!("last renewed {t}"))
            )
        }
        Kind::FailoverRefused { at, why } => {
            format!("the watcher refused an automatic failover ({at}): {why}")
        }
        _ => return None,
    };
    Some((false, text))
}

/// `status`'s line.
pub(super) fn beyond(kind: &Kind) -> Option<String> {
    Some(match kind {
        Kind::NoFailoverDrill { every, .. } => {
            format!("no measured failover (drill.failover_every {every})")
        }
        Kind::FailoverDrillTooOld { every, .. } => {
            format!("the last measured failover is older than drill.failover_every ({every})")
        }
        Kind::FailoverOverObjective {
            figure,
            objective,
            kind,
            ..
        } => {
            let (name, _, key) = figure.words();
            format!("the last {kind}'s {name} is above objectives.{key} ({objective})")
        }
        Kind::FailoverAgentMissing { who, .. } => {
            format!("automatic failover is armed but no {who} is running")
        }
        Kind::FailoverRefused { why, .. } => format!("automatic failover refused: {why}"),
        _ => return None,
    })
}

/// The command an agent runs as, and what its absence means.
fn agent_words(who: &str) -> (&'static str, &'static str) {
    if who == "guard" {
        (
            "pgdr watch --guard",
            "nothing fences a lost primary, so the watcher will refuse to fail over; run it beside the primary (examples/systemd/pgdr-guard@.service)",
        )
    } else {
        (
            "pgdr watch",
            "nothing watches the primary, and nothing will fail over; run it (examples/systemd/pgdr-watch@.service)",
        )
    }
}
