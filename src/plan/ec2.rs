//! Planning for the replication network: the security group exists, and one
//! ingress rule per CIDR lets standbys reach the primary's port. Rules that pgdr
//! did not make are never touched; removing one it made is destructive.

use super::{Action, Change, ClusterPlan, Ec2Op, Ec2Write, Op};
use crate::spec::ReplicationNetwork;
use crate::state::ec2::{owned_description, GroupLive, Ingress};
use serde_json::json;

fn covers(rule: &Ingress, cidr: &str, port: u16) -> bool {
    let port = port as i32;
    rule.cidr == cidr
        && (rule.protocol == "-1"
            || (rule.protocol == "tcp" && rule.from_port <= port && port <= rule.to_port))
}

pub fn plan_network(
    cluster: &str,
    region: &str,
    network: &ReplicationNetwork,
    live: &GroupLive,
    plan: &mut ClusterPlan,
) {
    let group = &network.security_group;
    let base = format!("ec2.{group}");
    let description = owned_description(cluster);
    // Ingress ops name the group by id when it exists, so apply need not look it up
    // once per rule; a group created by this apply is found by name.
    let target = live.id.clone().unwrap_or_else(|| group.clone());
    let op = |group: &str, write: Ec2Write| {
        Some(Op::Ec2(Ec2Op {
            region: region.to_string(),
            group: group.to_string(),
            vpc_id: live.vpc_id.clone(),
            write,
        }))
    };
    if live.id.is_none() {
        if group.starts_with("sg-") {
            plan.impossible(
                base,
                format!("security group {group} does not exist; pgdr can create a group by name, not by id"),
            );
            return;
        }
        plan.changes.push(
            Change::new(
                cluster,
                base.clone(),
                Action::Create,
                (json!(null), json!({ "vpc": live.vpc_id })),
                "standbys reach the primary through this group",
            )
            .op(op(group, Ec2Write::CreateGroup)),
        );
    }
    for cidr in &network.allow_cidrs {
        if live
            .ingress
            .iter()
            .any(|r| covers(r, cidr.as_str(), network.port))
        {
            continue;
        }
        plan.changes.push(
            Change::new(
                cluster,
                format!("{base}.ingress.{}:{}", cidr.as_str(), network.port),
                Action::Create,
                (json!(null), json!({ "protocol": "tcp", "port": network.port, "cidr": cidr.as_str(), "description": description })),
                format!("standbys in {} stream from the primary on port {}", cidr.as_str(), network.port),
            )
            .op(op(
                &target,
                Ec2Write::SetIngress {
                    allow: true,
                    cidr: cidr.as_str().to_string(),
                    port: network.port,
                    description: description.clone(),
                },
            )),
        );
    }
    for rule in live
        .ingress
        .iter()
        .filter(|r| r.description.as_deref() == Some(description.as_str()))
    {
        let wanted = rule.protocol == "tcp"
            && rule.from_port == network.port as i32
            && rule.to_port == network.port as i32
            && network.allow_cidrs.iter().any(|c| c.as_str() == rule.cidr);
        if wanted || rule.protocol != "tcp" || rule.from_port != rule.to_port {
            continue;
        }
        let port = rule.from_port as u16;
        plan.changes.push(
            Change::new(
                cluster,
                format!("{base}.ingress.{}:{port}", rule.cidr),
                Action::Delete,
                (json!({ "protocol": "tcp", "port": port, "cidr": rule.cidr, "description": description }), json!(null)),
                "pgdr made this rule and the plan file no longer lists it; removing it cuts replication from there",
            )
            .destructive(true)
            .op(op(
                &target,
                Ec2Write::SetIngress {
                    allow: false,
                    cidr: rule.cidr.clone(),
                    port,
                    description: description.clone(),
                },
            )),
        );
    }
}
