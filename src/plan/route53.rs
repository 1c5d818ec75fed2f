//! Planning for the DNS endpoint: the record must point at the current primary
//! (A for an address, CNAME for a name) with the plan's TTL. Changed only when
//! the plan file's primary is the one writable server.

use super::{Action, Change, ClusterPlan, Op, Route53Op};
use crate::spec::Desired;
use crate::state::route53::{normalize, EndpointLive, Record};
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
        });
    }
    let info = desired.plan.primary.postgres.as_ref().ok_or(
        "the primary has no conninfo, so pgdr cannot tell where the endpoint should point",
    )?;
    let host = info
        .get("host")
        .or(info.get("hostaddr"))
        .ok_or("the primary's conninfo names no host")?;
    if host.starts_with('/') {
        return Err(format!(
            "the primary's host is a Unix socket ({host}); a DNS record cannot point at it"
        ));
    }
    Ok(match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => Record {
            rtype: "A".into(),
            ttl,
            values: vec![ip.to_string()],
        },
        Ok(std::net::IpAddr::V6(_)) => {
            return Err(format!(
                "the primary's host is an IPv6 address ({host}); pgdr manages A and CNAME records"
            ))
        }
        Err(_) => Record {
            rtype: "CNAME".into(),
            ttl,
            values: vec![normalize(host)],
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
    a.rtype == b.rtype && a.ttl == b.ttl && norm(a) == norm(b)
}

fn record_json(r: &Record) -> serde_json::Value {
    json!({ "type": r.rtype, "ttl": r.ttl, "value": r.values.join(", ") })
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
    })));
    plan.changes.push(change);
}
