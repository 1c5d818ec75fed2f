//! Failover drills: the playbook's "run a controlled failover drill, measure
//! promotion time, update DNS, and document the actual RTO/RPO against
//! targets". Every role change's journal carries its measured RTO and RPO;
//! with `drill.failover_every` set, a measured switchover or failover must
//! be that recent and within today's objectives (address `drill.failover`).

use super::{approximate, Finding, Kind, Objective};
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
    let objectives = &desired.plan.objectives;
    for (figure, measured, objective) in [
        (Objective::Rto, newest.rto_seconds, objectives.rto),
        (Objective::Rpo, newest.rpo_seconds, objectives.rpo),
    ] {
        if let Some(value) = measured.filter(|v| *v > objective.as_secs() as f64) {
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
        _ => return None,
    })
}
