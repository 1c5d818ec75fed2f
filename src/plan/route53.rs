//! Planning for the DNS endpoint: the record must point at the current primary
//! (A for an address, CNAME for a name) with the plan's TTL. Changed only when
//! the plan file's primary is the one writable server.

use super::{Action, Change, ClusterPlan, Op, Route53Op};
use crate::spec::{Desired, Routing};
use crate::state::route53::{normalize, EndpointLive, Latency, Record};
use crate::state::{roles, Live, Roles};
use serde_json::json;

/// The record the endpoint should hold, or why there is none.
pub fn wanted_record(desired: &Desired, live: &Live) -> Result<Record, String> {
    let endpoint = desired
        .plan
        .endpoint
        .as_ref()
        .ok_or("no endpoint section")?;
    let ttl = endpoint.ttl.as_secs() as i64;
    // An RDS primary is reached through its endpoint address.
    if desired.plan.primary.rds.is_some() {
        let address = live
            .rds
            .as_ref()
            .and_then(|r| r.primary.as_ref())
            .and_then(|i| i.endpoint.clone())
            .ok_or("the RDS primary has no endpoint address yet")?;
        return Ok(Record {
            rtype: "CNAME".into(),
            ttl,
            values: vec![normalize(&address)],
            latency: None,
        });
    }
    let info = desired.plan.primary.postgres.as_ref().ok_or(
        "the primary has no conninfo, so pgdr cannot tell where the endpoint should point",
    )?;
    record_for(info, ttl, "the primary")
}

/// The record that points at the server `info` reaches (A for an address,
/// CNAME for a name); `who` names the server in the reason there is none.
fn record_for(info: &crate::spec::Conninfo, ttl: i64, who: &str) -> Result<Record, String> {
    let host = info
        .get("host")
        .or(info.get("hostaddr"))
        .ok_or(format!("{who}'s conninfo names no host"))?;
    if host.starts_with('/') {
        return Err(format!(
            "{who}'s host is a Unix socket ({host}); a DNS record cannot point at it"
        ));
    }
    Ok(match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => Record {
            rtype: "A".into(),
            ttl,
            values: vec![ip.to_string()],
            latency: None,
        },
        Ok(std::net::IpAddr::V6(_)) => {
            return Err(format!(
                "{who}'s host is an IPv6 address ({host}); pgdr manages A and CNAME records"
            ))
        }
        Err(_) => Record {
            rtype: "CNAME".into(),
            ttl,
            values: vec![normalize(host)],
            latency: None,
        },
    })
}

/// Whether two records hold the same type, TTL and values (in any order;
/// CNAME targets compared without case or trailing dot).
pub fn same(a: &Record, b: &Record) -> bool {
    let norm = |r: &Record| -> Vec<String> {
        let mut v: Vec<String> = r
            .values
            .iter()
            .map(|v| {
                if r.rtype == "CNAME" {
                    normalize(v)
                } else {
                    v.clone()
                }
            })
            .collect();
        v.sort();
        v
    };
    a.rtype == b.rtype && a.ttl == b.ttl && norm(a) == norm(b) && a.latency == b.latency
}

fn record_json(r: &Record) -> serde_json::Value {
    match &r.latency {
        Some(l) => {
            json!({ "type": r.rtype, "ttl": r.ttl, "value": r.values.join(", "), "set_identifier": l.set_identifier, "region": l.region })
        }
        None => json!({ "type": r.rtype, "ttl": r.ttl, "value": r.values.join(", ") }),
    }
}

pub fn plan_endpoint(
    desired: &Desired,
    observed: &Live,
    live: &EndpointLive,
    plan: &mut ClusterPlan,
) {
    // With SQL access, the writable server decides. Without it, the RDS primary is
    // the writer unless RDS says it is itself a replica.
    let as_planned = match &observed.primary {
        Some(_) => roles(observed) == Roles::AsPlanned,
        None => observed
            .rds
            .as_ref()
            .and_then(|r| r.primary.as_ref())
            .is_some_and(|i| i.replica_source.is_none()),
    };
    let Some(endpoint) = &desired.plan.endpoint else {
        return;
    };
    let address = format!("route53.{}", endpoint.record);
    if let Some(why) = &live.unmanageable {
        plan.problem(&address, why.clone());
        return;
    }
    if endpoint.routing == Routing::Latency {
        plan_latency(desired, observed, live, plan);
        return;
    }
    if !live.latency.is_empty() {
        plan.problem(
            &address,
            format!("{} holds latency records; pgdr manages them with `endpoint.routing: latency` (active-active), and leaves them alone otherwise", endpoint.record),
        );
        return;
    }
    if !as_planned {
        // The reason (failover, split brain) is already a problem of its own.
        return;
    }
    let want = match wanted_record(desired, observed) {
        Ok(want) => want,
        Err(why) => {
            plan.problem(&address, why);
            return;
        }
    };
    if live.record.as_ref().is_some_and(|have| same(have, &want)) {
        return;
    }
    let action = match &live.record {
        None => Action::Create,
        Some(have) if have.rtype != want.rtype => Action::Replace,
        Some(_) => Action::Update,
    };
    let change = Change::new(
        &plan.cluster,
        address,
        action,
        (
            live.record.as_ref().map_or(json!(null), record_json),
            record_json(&want),
        ),
        "clients must resolve the endpoint to the current primary, with the planned TTL",
    )
    .op(Some(Op::Route53(Route53Op {
        zone_id: live.zone_id.clone(),
        record: endpoint.record.clone(),
        old: live.record.clone(),
        want,
        delete: false,
    })));
    plan.changes.push(change);
}

/// `routing: latency`: one latency record per active-active node that
/// answers (all of them when none does: an empty name helps nobody), and
/// none for a node lost, so its clients resolve the nearest node serving.
/// Latency records of other set identifiers are not pgdr's: reported, left.
fn plan_latency(desired: &Desired, observed: &Live, live: &EndpointLive, plan: &mut ClusterPlan) {
    let Some(endpoint) = &desired.plan.endpoint else {
        return;
    };
    let nodes = desired.active_nodes();
    let serving = crate::plan::assess::nodes::figures(desired, observed);
    let up = |name: &str| serving.iter().any(|n| n.name == name && n.serving);
    let any_up = nodes.iter().any(|n| up(n.name));
    let ttl = endpoint.ttl.as_secs() as i64;
    let op = |want: Record, old: Option<Record>, delete: bool| {
        Some(Op::Route53(Route53Op {
            zone_id: live.zone_id.clone(),
            record: endpoint.record.clone(),
            old,
            want,
            delete,
        }))
    };
    if let Some(simple) = &live.record {
        // Route53 keeps a name either simple or routed: the simple record goes first.
        let change = Change::new(
            &plan.cluster,
            format!("route53.{}", endpoint.record),
            Action::Delete,
            (record_json(simple), json!(null)),
            "routing: latency replaces the simple record with one latency record per node (clients cannot resolve the name between the two writes)",
        )
        .destructive(true)
        .op(op(simple.clone(), None, true));
        plan.changes.push(change);
    }
    // Route53 keeps one type at a name: a node reached by address (A) and
    // one by host name (CNAME) cannot share it.
    let types: std::collections::BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| record_for(n.postgres, ttl, n.name).ok())
        .map(|r| r.rtype)
        .collect();
    if types.len() > 1 {
        plan.problem(
            format!("route53.{}", endpoint.record),
            "the nodes' conninfo hosts mix addresses and host names, so their latency records would be A and CNAME at one name, which Route53 refuses; give every node's `host` the same kind",
        );
        return;
    }
    for node in &nodes {
        let address = format!("route53.{}.{}", endpoint.record, node.name);
        let have = live.latency.iter().find(|r| {
            r.latency
                .as_ref()
                .is_some_and(|l| l.set_identifier == node.name)
        });
        if any_up && !up(node.name) {
            if let Some(have) = have {
                let change = Change::new(
                    &plan.cluster,
                    address,
                    Action::Delete,
                    (record_json(have), json!(null)),
                    format!("node {} cannot be read: its clients resolve the nearest node that serves until it answers again", node.name),
                )
                .op(op(have.clone(), None, true));
                plan.changes.push(change);
            }
            continue;
        }
        let region = node
            .region
            .or(desired.plan.aws.as_ref().map(|a| a.region.as_str()));
        let mut want = match record_for(node.postgres, ttl, &format!("node {}", node.name)) {
            Ok(want) => want,
            Err(why) => {
                plan.problem(address, why);
                continue;
            }
        };
        want.latency = Some(Latency {
            set_identifier: node.name.to_string(),
            region: region.unwrap_or_default().to_string(),
        });
        if have.is_some_and(|h| same(h, &want)) {
            continue;
        }
        let action = match have {
            None => Action::Create,
            Some(h) if h.rtype != want.rtype => Action::Replace,
            Some(_) => Action::Update,
        };
        let change = Change::new(
            &plan.cluster,
            address,
            action,
            (have.map_or(json!(null), record_json), record_json(&want)),
            format!(
                "clients nearest {} resolve the endpoint to node {}",
                want.latency.as_ref().map_or("", |l| l.region.as_str()),
                node.name
            ),
        )
        .op(op(want, have.cloned(), false));
        plan.changes.push(change);
    }
    for other in &live.latency {
        let id = other
            .latency
            .as_ref()
            .map_or("", |l| l.set_identifier.as_str());
        if !nodes.iter().any(|n| n.name == id) {
            plan.problem(
                format!("route53.{}.{id}", endpoint.record),
                format!("{} has a latency record `{id}` that is no node of this plan: clients near its region resolve {}; pgdr leaves it alone (delete it, or name the node)", endpoint.record, other.values.join(", ")),
            );
        }
    }
}
