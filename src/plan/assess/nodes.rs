//! The writable nodes of an active-active plan (`active_active`): which
//! node answers, and whether each receives every other node's writes
//! within `active_active.max_lag` (default `objectives.rpo`). A node lost
//! leaves the others taking writes: `status` says which serve and which
//! do not. Addresses `replication.node.<name>` and
//! `replication.subscription.<subscriber>_from_<provider>`.

use super::{Finding, Kind};
use crate::plan::logical::{lag_of, wanted_subscriptions};
use crate::spec::{Desired, Duration};
use crate::state::Live;

/// One node as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct NodeFigure {
    /// Its name (`active_active.node_name` for the primary, or a peer's).
    pub name: String,
    /// Its AWS region (`aws.region` for the primary, a peer's `region`).
    pub region: Option<String>,
    /// It answered and takes writes (not in recovery).
    pub serving: bool,
    /// Why it could not be read.
    pub error: Option<String>,
    /// What it receives from each other node.
    pub receives: Vec<ReceiveFigure>,
}

/// One direction of the mesh: what a node receives from another.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct ReceiveFigure {
    /// The node whose writes these are.
    pub from: String,
    /// The subscription's name, if it exists.
    pub subscription: Option<String>,
    /// pglogical's status (`replicating`, `down`, `initializing`,
    /// `disabled`), or `missing`.
    pub status: String,
    /// Seconds behind, where the sender on `from` reports them (pglogical
    /// 2.4's do not).
    pub lag_seconds: Option<f64>,
    /// The WAL on `from` this node has not confirmed, in bytes (its slot
    /// there; 0 when caught up; absent when `from` was not read).
    pub lag_bytes: Option<i64>,
}

/// The allowed lag: in time, and in bytes.
fn max_lag(desired: &Desired) -> Option<(Duration, u64)> {
    let aa = desired.plan.active_active.as_ref()?;
    Some((
        aa.max_lag.unwrap_or(desired.plan.objectives.rpo),
        aa.max_lag_bytes
            .unwrap_or(crate::spec::DEFAULT_MAX_LAG_BYTES),
    ))
}

/// The nodes as `status` shows them, in the plan's order.
pub fn figures(desired: &Desired, live: &Live) -> Vec<NodeFigure> {
    let Some(nodes) = &live.active_active else {
        return Vec::new();
    };
    let spec = desired.active_nodes();
    let names: Vec<&str> = spec.iter().map(|n| n.name).collect();
    let state = |name: &str| nodes.iter().find(|(n, _)| n == name).map(|(_, r)| r);
    let wanted = wanted_subscriptions(&names, names.first().copied().unwrap_or_default());
    spec.iter()
        .map(|node| {
            let read = state(node.name);
            let receives = wanted
                .iter()
                .filter(|w| w.subscriber == node.name)
                .map(|w| {
                    let sub = read.and_then(|r| r.as_ref().ok()).and_then(|s| {
                        let subs = &s.pglogical.subscriptions;
                        subs.iter().find(|x| x.provider_node == w.provider)
                    });
                    let provider = state(&w.provider).and_then(|r| r.as_ref().ok());
                    let (lag_seconds, lag_bytes) = sub
                        .zip(provider)
                        .map_or((None, None), |(s, p)| lag_of(p, s));
                    ReceiveFigure {
                        from: w.provider.clone(),
                        subscription: sub.map(|s| s.name.clone()),
                        status: sub.map_or("missing".into(), |s| s.status.clone()),
                        lag_seconds,
                        lag_bytes,
                    }
                })
                .collect();
            NodeFigure {
                name: node.name.to_string(),
                region: node.region.map(str::to_string),
                serving: matches!(read, Some(Ok(s)) if !s.pg.in_recovery),
                error: match read {
                    Some(Err(why)) => Some(why.clone()),
                    _ => None,
                },
                receives,
            }
        })
        .collect()
}

/// A node lost, a direction not replicating, or one behind by more than
/// the allowed lag.
pub fn findings(desired: &Desired, figures: &[NodeFigure]) -> Vec<Finding> {
    let Some((max, max_bytes)) = max_lag(desired) else {
        return Vec::new();
    };
    let serving: Vec<String> = figures
        .iter()
        .filter(|n| n.serving)
        .map(|n| n.name.clone())
        .collect();
    let mut found = Vec::new();
    for node in figures {
        if let Some(why) = &node.error {
            found.push(Finding::new(
                format!("replication.node.{}", node.name),
                Kind::NodeLost {
                    name: node.name.clone(),
                    why: why.clone(),
                    serving: serving.clone(),
                },
            ));
            continue;
        }
        for r in &node.receives {
            let address = format!(
                "replication.subscription.{}",
                format!("{}_from_{}", node.name, r.from).replace('-', "_")
            );
            let lost = figures
                .iter()
                .any(|n| n.name == r.from && n.error.is_some());
            if r.status == "missing" || r.status == "initializing" || lost {
                // apply makes a missing one; an initializing one is copying
                // (status shows it); a lost provider is reported once, above.
                continue;
            }
            if r.status != "replicating" {
                found.push(Finding::new(
                    address,
                    Kind::ReplicationStopped {
                        node: node.name.clone(),
                        from: r.from.clone(),
                        subscription: r.subscription.clone().unwrap_or_default(),
                        status: r.status.clone(),
                    },
                ));
            } else if r.lag_seconds.is_some_and(|s| s > max.as_secs_f64())
                || r.lag_bytes.is_some_and(|b| b as u64 > max_bytes)
            {
                found.push(Finding::new(
                    address,
                    Kind::ReplicationLag {
                        node: node.name.clone(),
                        from: r.from.clone(),
                        behind: behind(r.lag_seconds, r.lag_bytes),
                        allowed: format!("{max} or {}", mib(max_bytes as i64)),
                    },
                ));
            }
        }
    }
    found
}

pub(super) fn plan_entry(kind: &Kind) -> Option<(bool, String)> {
    let text = match kind {
        Kind::NodeLost { name, why, serving } => format!(
            "node {name} could not be read: {why}; {}; it catches up once back (each other node keeps the WAL it lacks in its slot: watch their disks)",
            serving_text(serving)
        ),
        Kind::ReplicationStopped {
            node,
            from,
            subscription,
            status,
        } => format!(
            "{node} receives {from}'s writes through {subscription}, which is {status}: writes on {from} do not reach {node} (the server log of {node} says why)"
        ),
        Kind::ReplicationLag {
            node,
            from,
            behind,
            allowed,
        } => format!(
            "{node} is {behind} behind {from}, more than {allowed} (active_active.max_lag, or objectives.rpo; max_lag_bytes): a loss of {from} now would lose what {node} lacks"
        ),
        _ => return None,
    };
    Some((false, text))
}

/// `12.0s` and/or `20.0 MiB`.
fn behind(seconds: Option<f64>, bytes: Option<i64>) -> String {
    let parts: Vec<String> = [seconds.map(|s| format!("{s:.1}s")), bytes.map(mib)]
        .into_iter()
        .flatten()
        .collect();
    parts.join(" and ")
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

fn serving_text(serving: &[String]) -> String {
    match serving {
        [] => "no node takes writes".to_string(),
        [one] => format!("{one} keeps taking writes"),
        many => format!("{} keep taking writes", many.join(", ")),
    }
}

pub(super) fn beyond(kind: &Kind) -> Option<String> {
    Some(match kind {
        Kind::NodeLost { name, serving, .. } => {
            format!("node {name} is lost; {}", serving_text(serving))
        }
        Kind::ReplicationStopped {
            node, from, status, ..
        } => format!("{node} does not receive {from}'s writes ({status})"),
        Kind::ReplicationLag {
            node,
            from,
            behind,
            allowed,
        } => format!("{node} is {behind} behind {from}, more than {allowed}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::logical::tests::state;
    use crate::state::logical::{NodeLive, Subscription};
    use crate::state::postgres::Replication;
    use std::path::Path;

    fn desired() -> Desired {
        let text = "version: 1\ncluster: shop\ntier: saas\nobjectives: { rpo: 5s, rto: 1h }\n\
                    primary: { postgres: 'host=127.0.0.1 user=postgres' }\n\
                    active_active:\n  node_name: east\n  peers:\n\
                    \x20   - { name: west, postgres: 'host=127.0.0.2 user=postgres', region: us-west-2 }\n\
                    \x20   - { name: eu, postgres: 'host=127.0.0.3 user=postgres', region: eu-west-1 }\n";
        crate::spec::load_str(Path::new("shop.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sub(name: &str, from: &str, status: &str) -> Subscription {
        Subscription {
            name: name.into(),
            status: status.into(),
            provider_node: from.into(),
            forward_origins: vec![],
            replication_sets: vec!["default".into()],
            slot: format!("pgl_{name}"),
        }
    }

    #[test]
    fn a_lost_node_leaves_the_others_serving_and_each_direction_is_judged() {
        let node = |n: &str| NodeLive {
            name: n.into(),
            ..NodeLive::default()
        };
        let mut east = state(node("east"), vec![sub("east_from_west", "west", "down")]);
        // East's sender to west's subscription is 12 s behind, and its slot
        // holds 20 MiB west has not confirmed.
        east.pg.health.replication.push(Replication {
            application_name: "west_from_east".into(),
            state: "streaming".into(),
            sync_state: "async".into(),
            replay_lag_seconds: 12.0,
            replay_lag_bytes: None,
        });
        east.pglogical.slots_behind = vec![("pgl_west_from_east".into(), 20 * 1_048_576)];
        let west = state(
            node("west"),
            vec![sub("west_from_east", "east", "replicating")],
        );
        let live = Live {
            active_active: Some(vec![
                ("east".into(), Ok(east)),
                ("west".into(), Ok(west)),
                ("eu".into(), Err("connection refused".into())),
            ]),
            ..Live::default()
        };
        let desired = desired();
        let figures = figures(&desired, &live);
        assert_eq!(figures.len(), 3);
        assert!(figures[0].serving && figures[1].serving && !figures[2].serving);
        assert_eq!(figures[0].region, None);
        assert_eq!(figures[1].region.as_deref(), Some("us-west-2"));
        // East lacks a subscription from eu: "missing", never a finding (apply makes it).
        let from_eu = &figures[0].receives[1];
        assert_eq!(
            (from_eu.from.as_str(), from_eu.status.as_str()),
            ("eu", "missing")
        );
        let said: Vec<String> = findings(&desired, &figures)
            .iter()
            .map(|f| format!("{}: {}", f.address, f.beyond().unwrap()))
            .collect();
        assert_eq!(
            said,
            [
                "replication.subscription.east_from_west: east does not receive west's writes (down)",
                "replication.subscription.west_from_east: west is 12.0s and 20.0 MiB behind east, more than 5s or 16.0 MiB",
                "replication.node.eu: node eu is lost; east, west keep taking writes",
            ]
        );
    }
}
