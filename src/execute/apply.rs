//! `apply`: the reconciler's changes, as independent ops. One attempt per
//! op; a failed op does not stop the others and every failure is returned.
//! Ops are repeat-safe, so re-running after a partial failure is fine.

use super::failpoint;
use crate::plan::{
    ClusterPlan, Ec2Op, Ec2Write, Op, PgOp, PgWrite, RdsOp, RdsWrite, S3Op, S3Write, Server,
};
use crate::providers::postgres::Session;
use crate::providers::{ec2, rds, route53, s3, ProviderError, Systems};
use crate::spec::{Conninfo, Desired};
use std::collections::BTreeMap;

/// What happened to one change.
#[derive(Debug)]
pub struct ChangeOutcome {
    pub address: String,
    pub result: Result<(), ProviderError>,
}

/// The result of applying one cluster.
#[derive(Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<ChangeOutcome>,
    /// Settings written that only a restart makes active, by server.
    pub restart_needed: Vec<(String, Vec<String>)>,
}

pub async fn apply_cluster(desired: &Desired, plan: &ClusterPlan, systems: &Systems) -> Applied {
    let mut applied = Applied::default();

    // PostgreSQL ops grouped by server: one session each, servers in parallel.
    let mut by_server: BTreeMap<&Server, Vec<(&str, &PgWrite)>> = BTreeMap::new();
    // AWS ops in plan order: a bucket is created before it is configured.
    let mut aws_ops: Vec<(&str, &Op)> = Vec::new();
    // Writes that need writes on other servers first, in plan order, after the rest.
    let mut ordered: Vec<(&str, &Server, &PgWrite)> = Vec::new();
    for change in &plan.changes {
        match &change.op {
            Some(Op::Pg(PgOp { server, write })) if write.in_order() => {
                ordered.push((change.address.as_str(), server, write))
            }
            Some(Op::Pg(PgOp { server, write })) => by_server
                .entry(server)
                .or_default()
                .push((change.address.as_str(), write)),
            Some(op) => aws_ops.push((change.address.as_str(), op)),
            None => {}
        }
    }

    let pg = futures_util::future::join_all(
        by_server
            .into_iter()
            .map(|(server, ops)| apply_server(desired, server, ops, systems)),
    );
    let aws = async {
        let mut outcomes = Vec::new();
        // Endpoints that stopped answering: every retry of a change there
        // failed to connect, so the changes after it are not sent (each would
        // only wait out its own retries) and are reported as not attempted.
        let mut gone: BTreeMap<String, String> = BTreeMap::new();
        for (address, op) in aws_ops {
            let endpoint = endpoint_of(op);
            let result = match gone.get(&endpoint) {
                Some(first) => Err(ProviderError::new(
                    endpoint.clone(),
                    format!(
                        "not attempted: it did not answer for {first}, so nothing more was sent there"
                    ),
                )
                .unreachable()),
                None => {
                    tracing::info!(target: "pgdr::apply", cluster = desired.cluster(), address, "applying");
                    let result = apply_aws_op(desired, systems, op).await;
                    if result.as_ref().is_err_and(|e| e.unreachable) {
                        gone.insert(endpoint, address.to_string());
                    }
                    result
                }
            };
            if result.is_ok() {
                failpoint::reached(&format!("apply:{address}")).await;
            }
            outcomes.push(ChangeOutcome {
                address: address.to_string(),
                result,
            });
        }
        outcomes
    };

    let (pg_results, aws_outcomes) = tokio::join!(pg, aws);
    let mut restart: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (outcomes, server, names) in pg_results {
        applied.outcomes.extend(outcomes);
        if !names.is_empty() {
            restart.entry(server).or_default().extend(names);
        }
    }
    applied.outcomes.extend(aws_outcomes);
    applied
        .outcomes
        .extend(apply_in_order(desired, ordered, systems).await);
    // Settings already pending a restart still need one.
    for pending in plan
        .changes
        .iter()
        .filter_map(|c| c.waits_for_restart.as_ref())
    {
        restart
            .entry(server_label(desired, &pending.server))
            .or_default()
            .push(pending.setting.clone());
    }
    applied.restart_needed = restart.into_iter().collect();
    for outcome in &applied.outcomes {
        match &outcome.result {
            Ok(()) => {
                tracing::info!(target: "pgdr::apply", cluster = desired.cluster(), address = %outcome.address, "done")
            }
            Err(e) => {
                tracing::warn!(target: "pgdr::apply", cluster = desired.cluster(), address = %outcome.address, error = %e, "failed")
            }
        }
    }
    applied
}

/// The service and region an AWS op is sent to (`s3 us-east-1`).
fn endpoint_of(op: &Op) -> String {
    match op {
        Op::S3(o) => format!("s3 {}", o.region),
        Op::Rds(o) => format!("rds {}", o.region),
        Op::Ec2(o) => format!("ec2 {}", o.region),
        Op::Route53(_) => "route53".to_string(),
        Op::Pg(_) => unreachable!("PostgreSQL ops are applied per server"),
    }
}

/// One AWS op, with the client for its service and region.
async fn apply_aws_op(desired: &Desired, systems: &Systems, op: &Op) -> Result<(), ProviderError> {
    let aws = &systems.aws;
    match op {
        Op::S3(S3Op {
            region,
            bucket,
            write,
        }) => {
            let client = aws.s3(region).await;
            match write {
                S3Write::CreateBucket { object_lock } => {
                    s3::create_bucket(&client, bucket, region, *object_lock).await
                }
                S3Write::PutVersioning { enabled } => {
                    s3::put_versioning(&client, bucket, *enabled).await
                }
                S3Write::PutObjectLock { mode, days } => {
                    s3::put_object_lock(&client, bucket, *mode, *days).await
                }
                S3Write::PutEncryption { encryption } => {
                    s3::put_encryption(&client, bucket, encryption).await
                }
                S3Write::PutPublicAccessBlock { block } => {
                    s3::put_public_access_block(&client, bucket, *block).await
                }
                S3Write::PutLifecycleRule { rule } => {
                    s3::write_lifecycle_rule(&client, bucket, &rule.id, Some(rule)).await
                }
                S3Write::DeleteLifecycleRule { id } => {
                    s3::write_lifecycle_rule(&client, bucket, id, None).await
                }
            }
        }
        Op::Rds(RdsOp { region, write }) => {
            let client = aws.rds(region).await;
            match write {
                RdsWrite::ModifyInstance { id, change } => {
                    rds::modify_instance(&client, id, change).await
                }
                RdsWrite::CreateParameterGroup { name, family } => {
                    rds::create_parameter_group(&client, name, family, desired.cluster()).await
                }
                RdsWrite::SetParameter {
                    group,
                    name,
                    value,
                    immediate,
                } => rds::set_parameter(&client, group, name, value, *immediate).await,
                RdsWrite::CreateReplica {
                    id,
                    source,
                    availability_zone,
                } => {
                    rds::create_read_replica(&client, id, source, availability_zone.as_deref())
                        .await
                }
            }
        }
        Op::Ec2(Ec2Op {
            region,
            group,
            vpc_id,
            write,
        }) => {
            let client = aws.ec2(region).await;
            match write {
                Ec2Write::CreateGroup => {
                    ec2::create_group(&client, group, vpc_id, desired.cluster()).await
                }
                Ec2Write::SetIngress {
                    cidr,
                    port,
                    description,
                    allow,
                } => {
                    ec2::set_ingress(&client, group, vpc_id, (cidr, *port, description), *allow)
                        .await
                }
            }
        }
        Op::Route53(op) if op.delete => {
            route53::delete(&aws.route53().await, &op.zone_id, &op.record, &op.want)
                .await
                .map(|_| ())
        }
        Op::Route53(op) => route53::write(
            &aws.route53().await,
            &op.zone_id,
            &op.record,
            op.old.as_ref(),
            &op.want,
        )
        .await
        .map(|_| ()),
        Op::Pg(_) => unreachable!("PostgreSQL ops are applied per server"),
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
        Server::Node(name) => desired
            .plan
            .active_active
            .iter()
            .flat_map(|aa| &aa.peers)
            .find(|p| p.name.as_str() == name)
            .map(|p| &p.postgres),
    }
}

/// `postgres.primary (host:port)` for the restart notice.
fn server_label(desired: &Desired, server: &Server) -> String {
    match conninfo(desired, server) {
        Some(info) => format!("{} ({info})", server.address()),
        None => server.address(),
    }
}

/// Writes that depend on other servers' (pglogical: a node before the
/// subscriptions to it), one by one in plan order, a session per server.
async fn apply_in_order(
    desired: &Desired,
    ordered: Vec<(&str, &Server, &PgWrite)>,
    systems: &Systems,
) -> Vec<ChangeOutcome> {
    use crate::providers::postgres::pglogical;
    let mut sessions: BTreeMap<&Server, Result<Session, ProviderError>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for (address, server, write) in ordered {
        if !sessions.contains_key(server) {
            let session = match conninfo(desired, server) {
                Some(info) => Session::open(&server.role(), info, &systems.pg).await,
                None => Err(ProviderError::new(
                    server.address(),
                    "no conninfo in the plan file",
                )),
            };
            sessions.insert(server, session);
        }
        tracing::info!(target: "pgdr::apply", cluster = desired.cluster(), address, "applying");
        let result = match &sessions[server] {
            Err(e) => Err(e.clone()),
            Ok(session) => match write {
                PgWrite::CreatePglogical => pglogical::create_extension(session).await,
                PgWrite::CreateNode { node, dsn } => {
                    pglogical::create_node(session, node, dsn).await
                }
                PgWrite::ReplicateTables { tables } => pglogical::add_tables(session, tables).await,
                PgWrite::DisjointSequence {
                    sequence,
                    increment,
                    residue,
                    floor,
                } => match highest_now(desired, sequence, systems).await {
                    Ok(highest) => {
                        let floor = highest.map_or(*floor, |h| {
                            (*floor)
                                .max(h.saturating_add(crate::plan::active_active::SEQUENCE_MARGIN))
                        });
                        pglogical::disjoint_sequence(
                            session,
                            sequence,
                            (*increment, *residue, floor),
                        )
                        .await
                    }
                    Err(e) => Err(e),
                },
                PgWrite::RestartApply {
                    conflict_resolution,
                } => restart_apply(desired, server, session, conflict_resolution, systems).await,
                PgWrite::CreateSubscription {
                    subscription,
                    provider_dsn,
                    copy_data,
                } => {
                    pglogical::create_subscription(session, subscription, provider_dsn, *copy_data)
                        .await
                }
                PgWrite::SetSetting { .. }
                | PgWrite::CreateSlot { .. }
                | PgWrite::SetApplicationName { .. } => {
                    unreachable!("applied per server, not in order")
                }
            },
        };
        if result.is_ok() {
            failpoint::reached(&format!("apply:{address}")).await;
        }
        outcomes.push(ChangeOutcome {
            address: address.to_string(),
            result,
        });
    }
    outcomes
}

/// The highest value `sequence` handed out on any active-active node, read
/// now (the plan's figure may be old: a saved plan, a busy node). Every
/// node must answer: a sequence is not made disjoint past a node unseen.
async fn highest_now(
    desired: &Desired,
    sequence: &str,
    systems: &Systems,
) -> Result<Option<i64>, ProviderError> {
    use crate::providers::postgres::{self, pglogical};
    // Every node at once.
    let reads = desired.active_nodes().into_iter().map(|node| async move {
        let role = format!("node.{}", node.name);
        let client = postgres::connect(&role, node.postgres, &systems.pg).await?;
        pglogical::sequence_last_value(&client, sequence)
            .await
            .map_err(|e| postgres::query_error(&role, &format!("reading {sequence}"), &e))
    });
    let mut highest = None;
    for last in futures_util::future::join_all(reads).await {
        highest = highest.max(last?);
    }
    Ok(highest)
}

/// Restarts a node's apply workers once a new session reads the conflict
/// rule written before (the reload is asynchronous: a worker started before
/// the server re-read its files would keep the old rule).
async fn restart_apply(
    desired: &Desired,
    server: &Server,
    session: &Session,
    rule: &str,
    systems: &Systems,
) -> Result<(), ProviderError> {
    use crate::providers::postgres::pglogical;
    let name = "pglogical.conflict_resolution";
    let Some(info) = conninfo(desired, server) else {
        return Err(ProviderError::new(
            server.address(),
            "no conninfo in the plan file",
        ));
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let fresh = Session::open(&server.role(), info, &systems.pg).await?;
        if pglogical::setting_is(&fresh, name, rule).await? {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(ProviderError::new(
                server.address(),
                format!("{name} is not {rule} in new sessions 10 s after the reload; the apply workers were left as they are"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    pglogical::restart_apply(session).await
}

/// One server's ops in one session; a reload at the end if a reloadable setting changed.
async fn apply_server(
    desired: &Desired,
    server: &Server,
    ops: Vec<(&str, &PgWrite)>,
    systems: &Systems,
) -> (Vec<ChangeOutcome>, String, Vec<String>) {
    let label = server_label(desired, server);
    let mut outcomes = Vec::new();
    let mut restart = Vec::new();
    let Some(info) = conninfo(desired, server) else {
        return (outcomes, label, restart);
    };
    let session = match Session::open(&server.role(), info, &systems.pg).await {
        Ok(s) => s,
        Err(e) => {
            for (address, _) in &ops {
                outcomes.push(ChangeOutcome {
                    address: address.to_string(),
                    result: Err(e.clone()),
                });
            }
            return (outcomes, label, restart);
        }
    };
    let mut reload = false;
    for (address, write) in ops {
        let result = match write {
            PgWrite::SetSetting {
                name,
                value,
                reload: reloadable,
            } => {
                let r = session.set_setting(name, value).await;
                if r.is_ok() {
                    // A reload also for a setting only a restart makes
                    // active: the server then reports it pending
                    // (pg_settings.pending_restart), and the next plan
                    // knows it is written, not to write again.
                    reload = true;
                    if !*reloadable {
                        restart.push(name.clone());
                    }
                }
                r
            }
            PgWrite::SetApplicationName { application_name } => {
                let r = session.set_application_name(application_name).await;
                // primary_conninfo is reloadable since PostgreSQL 13.
                reload |= r.is_ok();
                r
            }
            PgWrite::CreateSlot { slot } => session.create_slot(slot).await,
            _ => unreachable!("applied in order, after the servers' own writes"),
        };
        if result.is_ok() {
            failpoint::reached(&format!("apply:{address}")).await;
        }
        outcomes.push(ChangeOutcome {
            address: address.to_string(),
            result,
        });
    }
    if reload {
        if let Err(e) = session.reload().await {
            outcomes.push(ChangeOutcome {
                address: server.address(),
                result: Err(e),
            });
        }
    }
    (outcomes, label, restart)
}
