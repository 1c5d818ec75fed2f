//! Apply: performs a cluster's planned ops against the live systems.
//!
//! One attempt per op, in plan order (a bucket is created before it is
//! configured). A failed op does not stop the others; every failure is
//! returned. Ops are repeat-safe, so re-running after a partial failure is fine.

use crate::plan::{ClusterPlan, Op, Server};
use crate::providers::aws::AwsClients;
use crate::providers::postgres::Session;
use crate::providers::{ec2, rds, route53, s3, ProviderError};
use crate::spec::{Conninfo, Desired};
use std::collections::BTreeMap;

/// What happened to one change.
#[derive(Debug)]
pub struct Outcome {
    pub address: String,
    pub result: Result<(), ProviderError>,
}

/// The result of applying one cluster.
#[derive(Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    /// Settings written that only a restart makes active, by server.
    pub restart_needed: Vec<(String, Vec<String>)>,
}

impl Applied {
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.result.is_err())
    }
}

pub async fn apply_cluster(desired: &Desired, plan: &ClusterPlan, aws: &AwsClients) -> Applied {
    let mut applied = Applied::default();
    let ops: Vec<(&str, &Op)> = plan
        .changes
        .iter()
        .filter_map(|c| c.op.as_ref().map(|op| (c.address.as_str(), op)))
        .collect();

    // PostgreSQL ops grouped by server: one session each, servers in parallel.
    let mut by_server: BTreeMap<Server, Vec<(&str, &Op)>> = BTreeMap::new();
    for (address, op) in &ops {
        if let Some(server) = postgres_server(op) {
            by_server
                .entry(server.clone())
                .or_default()
                .push((address, op));
        }
    }
    let aws_ops_list: Vec<_> = ops
        .iter()
        .filter(|(_, op)| postgres_server(op).is_none())
        .collect();

    let pg = futures_util::future::join_all(
        by_server
            .into_iter()
            .map(|(server, ops)| apply_server(desired, server, ops)),
    );
    // AWS ops in plan order: a bucket is created before it is configured.
    let aws_ops = async {
        let mut outcomes = Vec::new();
        for (address, op) in &aws_ops_list {
            outcomes.push(Outcome {
                address: address.to_string(),
                result: apply_aws_op(desired, aws, op).await,
            });
        }
        outcomes
    };

    let (pg_results, aws_outcomes) = tokio::join!(pg, aws_ops);
    let mut restart: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (outcomes, server, names) in pg_results {
        applied.outcomes.extend(outcomes);
        if !names.is_empty() {
            restart.entry(server).or_default().extend(names);
        }
    }
    applied.outcomes.extend(aws_outcomes);
    // Settings already pending a restart still need one.
    for change in plan.changes.iter().filter(|c| c.pending_restart) {
        if let Some((server, name)) = change.address.split_once(".setting.") {
            restart
                .entry(server_label(desired, server))
                .or_default()
                .push(name.to_string());
        }
    }
    applied.restart_needed = restart.into_iter().collect();
    applied
}

/// One AWS op, with the client for its service and the plan's region.
async fn apply_aws_op(desired: &Desired, aws: &AwsClients, op: &Op) -> Result<(), ProviderError> {
    let region = desired
        .plan
        .aws
        .as_ref()
        .map_or("us-east-1", |a| a.region.as_str());
    match op {
        Op::S3CreateBucket {
            bucket,
            region,
            object_lock,
        } => s3::create_bucket(&aws.s3(region).await, bucket, region, *object_lock).await,
        Op::S3PutVersioning { bucket, enabled } => {
            s3::put_versioning(&aws.s3(region).await, bucket, *enabled).await
        }
        Op::S3PutObjectLock { bucket, mode, days } => {
            s3::put_object_lock(&aws.s3(region).await, bucket, *mode, *days).await
        }
        Op::S3PutEncryption { bucket, encryption } => {
            s3::put_encryption(&aws.s3(region).await, bucket, encryption).await
        }
        Op::S3PutPublicAccessBlock { bucket, block } => {
            s3::put_public_access_block(&aws.s3(region).await, bucket, *block).await
        }
        Op::S3PutLifecycleRule { bucket, rule } => {
            s3::write_lifecycle_rule(&aws.s3(region).await, bucket, &rule.id, Some(rule)).await
        }
        Op::S3DeleteLifecycleRule { bucket, id } => {
            s3::write_lifecycle_rule(&aws.s3(region).await, bucket, id, None).await
        }
        Op::RdsModifyInstance { region, id, change } => {
            rds::modify_instance(&aws.rds(region).await, id, change).await
        }
        Op::RdsCreateParameterGroup {
            region,
            name,
            family,
        } => {
            rds::create_parameter_group(&aws.rds(region).await, name, family, desired.cluster())
                .await
        }
        Op::RdsSetParameter {
            region,
            group,
            name,
            value,
            immediate,
        } => rds::set_parameter(&aws.rds(region).await, group, name, value, *immediate).await,
        Op::RdsCreateReplica {
            region,
            id,
            source,
            availability_zone,
        } => {
            rds::create_read_replica(
                &aws.rds(region).await,
                id,
                source,
                availability_zone.as_deref(),
            )
            .await
        }
        Op::Ec2CreateGroup { group, vpc_id } => {
            ec2::create_group(
                &aws.ec2(region).await,
                group,
                vpc_id,
                &desired.plan.cluster.to_string(),
            )
            .await
        }
        Op::Ec2SetIngress {
            group,
            vpc_id,
            cidr,
            port,
            description,
            allow,
        } => {
            ec2::set_ingress(
                &aws.ec2(region).await,
                group,
                vpc_id,
                (cidr, *port, description),
                *allow,
            )
            .await
        }
        Op::Route53Write {
            zone_id,
            record,
            old,
            want,
        } => route53::write(&aws.route53().await, zone_id, record, old.as_ref(), want).await,
        Op::PgSetSetting { .. } | Op::PgCreateSlot { .. } | Op::PgSetApplicationName { .. } => {
            unreachable!("PostgreSQL ops are applied per server")
        }
    }
}

fn postgres_server(op: &Op) -> Option<&Server> {
    match op {
        Op::PgSetSetting { server, .. }
        | Op::PgCreateSlot { server, .. }
        | Op::PgSetApplicationName { server, .. } => Some(server),
        _ => None,
    }
}

fn conninfo<'a>(desired: &'a Desired, server: &Server) -> Option<&'a Conninfo> {
    match server {
        Server::Primary => desired.plan.primary.postgres.as_ref(),
        Server::Standby(name) => desired
            .plan
            .standbys
            .iter()
            .find(|s| s.name.as_str() == name)
            .and_then(|s| s.postgres.as_ref()),
    }
}

/// `postgres.primary (host:port)` for the restart notice.
fn server_label(desired: &Desired, address: &str) -> String {
    let server = match address.strip_prefix("postgres.standby.") {
        Some(name) => Server::Standby(name.to_string()),
        None => Server::Primary,
    };
    match conninfo(desired, &server) {
        Some(info) => format!("{address} ({info})"),
        None => address.to_string(),
    }
}

/// One server's ops in one session; a reload at the end if a reloadable setting changed.
async fn apply_server(
    desired: &Desired,
    server: Server,
    ops: Vec<(&str, &Op)>,
) -> (Vec<Outcome>, String, Vec<String>) {
    let address = server.address();
    let label = server_label(desired, &address);
    let mut outcomes = Vec::new();
    let mut restart = Vec::new();
    let Some(info) = conninfo(desired, &server) else {
        return (outcomes, label, restart);
    };
    let role = address.trim_start_matches("postgres.").to_string();
    let session = match Session::open(&role, info).await {
        Ok(s) => s,
        Err(e) => {
            for (address, _) in &ops {
                outcomes.push(Outcome {
                    address: address.to_string(),
                    result: Err(e.clone()),
                });
            }
            return (outcomes, label, restart);
        }
    };
    let mut reload = false;
    for (change_address, op) in &ops {
        let result = match op {
            Op::PgSetSetting {
                name,
                value,
                reload: reloadable,
                ..
            } => {
                let r = session.set_setting(name, value).await;
                if r.is_ok() {
                    if *reloadable {
                        reload = true;
                    } else {
                        restart.push(name.clone());
                    }
                }
                r
            }
            Op::PgSetApplicationName {
                application_name, ..
            } => {
                let r = session.set_application_name(application_name).await;
                // primary_conninfo is reloadable since PostgreSQL 13.
                reload |= r.is_ok();
                r
            }
            Op::PgCreateSlot { slot, .. } => session.create_slot(slot).await,
            _ => unreachable!("grouped PostgreSQL ops only"),
        };
        outcomes.push(Outcome {
            address: change_address.to_string(),
            result,
        });
    }
    if reload {
        if let Err(e) = session.reload().await {
            outcomes.push(Outcome {
                address,
                result: Err(e),
            });
        }
    }
    (outcomes, label, restart)
}
