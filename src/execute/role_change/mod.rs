//! Role changes (`switchover`, `failover`): the pure decisions here — which
//! standby takes over, whether its lag allows it, the plan file with the new
//! roles — and the ordered steps around them in [`steps`] (fence, wait for
//! replay, promote, repoint, rejoin, move the endpoint); [`local`] restarts an
//! old primary this machine runs as a standby.
//!
//! The rules (plan-format.md, "Role changes"): the standby named, else the
//! streaming one with the least replay lag, synchronous first, same region
//! first; refused when its lag exceeds its `max_lag` (default 30 s, as in the
//! seed's orchestrator), with the measured lag and an estimate of the data
//! that would be lost, unless forced with a reason.

pub mod local;
pub mod run;
pub mod steps;

use super::steps::Decision;
use crate::spec::{Desired, Standby};
use crate::state::Live;

pub use crate::state::journal::{Journal, Kind, Trigger};

/// The plan with the new roles: the primary and the standby `to` exchange
/// their servers (conninfo, RDS instance). The standby entry keeps its name,
/// slot and limits, and now describes the old primary.
pub fn swapped(desired: &Desired, to: &Standby) -> Desired {
    let mut after = desired.clone();
    let plan = &mut after.plan;
    if let Some(entry) = plan.standbys.iter_mut().find(|s| s.name == to.name) {
        std::mem::swap(&mut plan.primary.postgres, &mut entry.postgres);
        if let (Some(primary), Some(standby)) = (plan.primary.rds.as_mut(), entry.rds.as_mut()) {
            std::mem::swap(&mut primary.instance, &mut standby.instance);
        }
    }
    after
}

/// The plan file's text with the new roles, made by exchanging the values as
/// written (comments and everything else kept), or why it cannot be.
pub fn swapped_text(desired: &Desired, to: &Standby) -> Result<String, String> {
    let index = desired
        .plan
        .standbys
        .iter()
        .position(|s| s.name == to.name)
        .ok_or_else(|| format!("no standby `{}`", to.name))?;
    let mut text = desired.text.clone();
    if desired.plan.primary.postgres.is_some() || to.postgres.is_some() {
        if desired.plan.primary.postgres.is_none() || to.postgres.is_none() {
            return Err("only one of the primary and the standby has a `postgres` conninfo; make the change by hand".into());
        }
        text = crate::spec::edit::swap_values(
            &text,
            "primary.postgres",
            &format!("standbys[{index}].postgres"),
        )?;
    }
    if desired.plan.primary.rds.is_some() && to.rds.is_some() {
        text = crate::spec::edit::swap_values(
            &text,
            "primary.rds.instance",
            &format!("standbys[{index}].rds.instance"),
        )?;
    }
    Ok(text)
}

/// `max_lag` when a standby does not set one.
pub const DEFAULT_MAX_LAG_SECONDS: f64 = 30.0;

/// A standby as a role change sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    /// Streaming from the primary now (its `pg_stat_replication` row).
    pub streaming: bool,
    pub synchronous: bool,
    pub same_region: bool,
    /// Replay lag as the primary measures it (seconds), when the primary answers.
    pub lag_seconds: Option<f64>,
    /// Bytes not yet replayed, when the primary answers.
    pub lag_bytes: Option<i64>,
    /// The standby answered (it can be promoted).
    pub reachable: bool,
    /// With the primary lost: seconds since the standby's last replayed
    /// transaction committed (its lag is then only the WAL it received and has
    /// not replayed; what the primary never sent cannot be measured).
    pub primary_lost: Option<Option<f64>>,
    /// How far it has replayed, by its own account: with the primary lost,
    /// the one that replayed furthest loses least.
    pub replayed: Option<u64>,
    pub max_lag_seconds: f64,
}

/// The candidates of a cluster, from what `observe` read. Pure.
pub fn candidates(desired: &Desired, live: &Live) -> Vec<Candidate> {
    let replication = live
        .primary
        .as_ref()
        .map(|p| p.health.replication.as_slice())
        .unwrap_or_default();
    desired
        .plan
        .standbys
        .iter()
        .map(|s| {
            let name = s.name.as_str().to_string();
            let row = replication.iter().find(|r| r.application_name == name);
            Candidate {
                streaming: row.is_some_and(|r| r.state == "streaming"),
                synchronous: s.synchronous,
                same_region: s
                    .region
                    .as_ref()
                    .is_none_or(|r| r.as_str() == desired.region()),
                lag_seconds: row.map(|r| r.replay_lag_seconds),
                lag_bytes: row.and_then(|r| r.replay_lag_bytes),
                reachable: live.standbys.get(&name).is_some_and(|l| l.live.is_some()),
                primary_lost: None,
                replayed: live
                    .standbys
                    .get(&name)
                    .and_then(|l| l.live.as_ref())
                    .and_then(|l| l.health.replay.as_ref())
                    .and_then(|r| r.lsn)
                    .map(|l| l.0),
                max_lag_seconds: s
                    .max_lag
                    .map_or(DEFAULT_MAX_LAG_SECONDS, |d| d.as_secs() as f64),
                name,
            }
        })
        .collect()
}

/// The standby to promote: the one named, else the best streaming one; when
/// none streams (the primary is lost), the reachable one that replayed furthest.
pub fn choose<'a>(
    candidates: &'a [Candidate],
    named: Option<&str>,
) -> Result<&'a Candidate, String> {
    if let Some(name) = named {
        return candidates.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
            format!(
                "no standby `{name}` in the plan file; its standbys are: {}",
                names.join(", ")
            )
        });
    }
    let streaming = candidates.iter().any(|c| c.reachable && c.streaming);
    candidates
        .iter()
        .filter(|c| c.reachable && (c.streaming || !streaming))
        .min_by(|a, b| {
            // Synchronous first, same region first, then the least lag, then
            // the furthest replayed.
            (!a.synchronous, !a.same_region)
                .cmp(&(!b.synchronous, !b.same_region))
                .then(
                    a.lag_seconds
                        .unwrap_or(f64::MAX)
                        .total_cmp(&b.lag_seconds.unwrap_or(f64::MAX)),
                )
                .then(b.replayed.cmp(&a.replayed))
        })
        .ok_or_else(|| {
            "no standby can be reached; name one with --to when it is back (the lag guard still applies)".to_string()
        })
}

/// The lag guard. `force` is the operator's reason for overriding it.
pub fn lag_guard(candidate: &Candidate, force: Option<&str>) -> Decision {
    if !candidate.reachable {
        return Decision::Refuse(format!(
            "standby `{}` cannot be reached, so it cannot be promoted",
            candidate.name
        ));
    }
    let Some(lag) = candidate.lag_seconds else {
        let why = format!(
            "the lag of standby `{}` cannot be measured (it is not streaming, or the primary does not answer)",
            candidate.name
        );
        return match force {
            Some(reason) => Decision::Passed(format!("{why}; forced: {reason}")),
            None => Decision::Refuse(format!(
                "{why}; give --force with a reason to promote it anyway"
            )),
        };
    };
    let within = lag <= candidate.max_lag_seconds;
    let measured = match candidate.primary_lost {
        None => format!(
            "standby `{}` replays {lag:.1}s behind the primary{} (max_lag {:.0}s)",
            candidate.name,
            candidate
                .lag_bytes
                .map(|b| format!(", {:.1} MB of WAL not yet replayed", b.max(0) as f64 / 1e6))
                .unwrap_or_default(),
            candidate.max_lag_seconds
        ),
        Some(last_commit) => format!(
            "the primary does not answer; standby `{}` has {lag:.1}s of received WAL left to replay (max_lag {:.0}s){}. WAL the primary wrote and never sent cannot be measured",
            candidate.name,
            candidate.max_lag_seconds,
            last_commit
                .map(|age| format!("; its last replayed transaction committed {age:.0}s ago"))
                .unwrap_or_default()
        ),
    };
    match (within, force) {
        (true, _) => Decision::Passed(measured),
        (false, Some(reason)) => {
            Decision::Passed(format!("{measured}; forced past the guard: {reason}"))
        }
        (false, None) => Decision::Refuse(format!(
            "{measured}: promoting it would lose about {lag:.0}s of committed writes; wait for it to catch up, choose another with --to, or give --force with a reason"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        name: &str,
        streaming: bool,
        sync: bool,
        same_region: bool,
        lag: Option<f64>,
    ) -> Candidate {
        Candidate {
            name: name.into(),
            streaming,
            synchronous: sync,
            same_region,
            lag_seconds: lag,
            lag_bytes: lag.map(|l| (l * 1_000_000.0) as i64),
            reachable: true,
            primary_lost: None,
            replayed: None,
            max_lag_seconds: DEFAULT_MAX_LAG_SECONDS,
        }
    }

    #[test]
    fn the_best_streaming_standby_is_chosen_synchronous_then_same_region_then_least_lag() {
        let all = [
            c("far", true, false, false, Some(0.1)),
            c("near-slow", true, false, true, Some(5.0)),
            c("near-fast", true, false, true, Some(1.0)),
            c("down", false, true, true, None),
        ];
        assert_eq!(choose(&all, None).unwrap().name, "near-fast");
        let mut with_sync = all.to_vec();
        with_sync.push(c("sync", true, true, false, Some(2.0)));
        assert_eq!(choose(&with_sync, None).unwrap().name, "sync");
        assert_eq!(choose(&all, Some("down")).unwrap().name, "down");
        // The primary lost: nobody streams; the one that replayed furthest.
        let lost = [
            Candidate {
                replayed: Some(100),
                ..c("b", false, false, true, None)
            },
            Candidate {
                replayed: Some(300),
                ..c("c", false, false, true, None)
            },
            Candidate {
                reachable: false,
                replayed: Some(900),
                ..c("d", false, false, true, None)
            },
        ];
        assert_eq!(choose(&lost, None).unwrap().name, "c");
        assert!(choose(&all, Some("nope"))
            .unwrap_err()
            .contains("far, near-slow, near-fast, down"));
        let gone = Candidate {
            reachable: false,
            ..all[3].clone()
        };
        assert!(choose(&[gone], None).is_err());
    }

    #[test]
    fn the_lag_guard_refuses_past_max_lag_with_the_measured_lag_unless_forced() {
        let ok = c("b", true, false, true, Some(2.5));
        assert!(matches!(lag_guard(&ok, None), Decision::Passed(m) if m.contains("2.5s behind")));
        let behind = c("b", true, false, true, Some(45.0));
        match lag_guard(&behind, None) {
            Decision::Refuse(m) => {
                assert!(
                    m.contains("45.0s behind")
                        && m.contains("max_lag 30s")
                        && m.contains("lose about 45s"),
                    "{m}"
                );
                assert!(m.contains("45.0 MB of WAL not yet replayed"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(lag_guard(&behind, Some("primary's disk is gone")), Decision::Passed(m) if m.contains("forced past the guard: primary's disk is gone"))
        );
        let unknown = c("b", false, false, true, None);
        assert!(
            matches!(lag_guard(&unknown, None), Decision::Refuse(m) if m.contains("cannot be measured"))
        );
        let gone = Candidate {
            reachable: false,
            ..ok
        };
        assert!(matches!(lag_guard(&gone, Some("x")), Decision::Refuse(_)));
    }
}
