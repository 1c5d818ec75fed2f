//! Apply: performs a cluster's planned ops against the live systems.
//!
//! One attempt per op, in plan order (a bucket is created before it is
//! configured). A failed op does not stop the others; every failure is
//! returned. Ops are repeat-safe, so re-running after a partial failure is fine.

use crate::plan::{ClusterPlan, Op, Server};
use crate::providers::aws::AwsClients;
use crate::providers::postgres::Session;
use crate::providers::{s3, ProviderError};
use crate::spec::Desired;

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

    let pg_ops: Vec<_> = ops.iter().filter(|(_, op)| is_postgres(op)).collect();
    let s3_ops: Vec<_> = ops.iter().filter(|(_, op)| !is_postgres(op)).collect();

    // PostgreSQL and S3 are independent systems: apply both at once.
    let pg = async {
        let mut outcomes = Vec::new();
        let mut restart = Vec::new();
        if pg_ops.is_empty() {
            return (outcomes, restart);
        }
        let Some(info) = &desired.plan.primary.postgres else {
            return (outcomes, restart);
        };
        let session = match Session::open("primary", info).await {
            Ok(s) => s,
            Err(e) => {
                for (address, _) in &pg_ops {
                    outcomes.push(Outcome {
                        address: address.to_string(),
                        result: Err(e.clone()),
                    });
                }
                return (outcomes, restart);
            }
        };
        let mut reload = false;
        for (address, op) in &pg_ops {
            let result = match op {
                Op::PgSetSetting {
                    server: Server::Primary,
                    name,
                    value,
                    reload: reloadable,
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
                Op::PgCreateSlot {
                    server: Server::Primary,
                    slot,
                } => session.create_slot(slot).await,
                _ => unreachable!("filtered to PostgreSQL ops"),
            };
            outcomes.push(Outcome {
                address: address.to_string(),
                result,
            });
        }
        if reload {
            if let Err(e) = session.reload().await {
                outcomes.push(Outcome {
                    address: "postgres.primary".into(),
                    result: Err(e),
                });
            }
        }
        (outcomes, restart)
    };

    let s3 = async {
        let mut outcomes = Vec::new();
        let Some(aws_section) = &desired.plan.aws else {
            return outcomes;
        };
        if s3_ops.is_empty() {
            return outcomes;
        }
        let client = aws.s3(aws_section.region.as_str()).await;
        for (address, op) in &s3_ops {
            let result = match op {
                Op::S3CreateBucket {
                    bucket,
                    region,
                    object_lock,
                } => s3::create_bucket(&client, bucket, region, *object_lock).await,
                Op::S3PutVersioning { bucket, enabled } => {
                    s3::put_versioning(&client, bucket, *enabled).await
                }
                Op::S3PutObjectLock { bucket, mode, days } => {
                    s3::put_object_lock(&client, bucket, *mode, *days).await
                }
                Op::S3PutEncryption { bucket, encryption } => {
                    s3::put_encryption(&client, bucket, encryption).await
                }
                Op::S3PutPublicAccessBlock { bucket, block } => {
                    s3::put_public_access_block(&client, bucket, *block).await
                }
                Op::S3PutLifecycleRule { bucket, rule } => {
                    s3::write_lifecycle_rule(&client, bucket, &rule.id, Some(rule)).await
                }
                Op::S3DeleteLifecycleRule { bucket, id } => {
                    s3::write_lifecycle_rule(&client, bucket, id, None).await
                }
                _ => unreachable!("filtered to S3 ops"),
            };
            outcomes.push(Outcome {
                address: address.to_string(),
                result,
            });
        }
        outcomes
    };

    let ((pg_outcomes, restart), s3_outcomes) = tokio::join!(pg, s3);
    applied.outcomes.extend(pg_outcomes);
    applied.outcomes.extend(s3_outcomes);
    // Settings already pending a restart still need one.
    let mut restart = restart;
    restart.extend(
        plan.changes
            .iter()
            .filter(|c| c.pending_restart)
            .filter_map(|c| c.address.rsplit('.').next().map(str::to_string)),
    );
    if !restart.is_empty() {
        let server = desired
            .plan
            .primary
            .postgres
            .as_ref()
            .map_or("primary".to_string(), |i| format!("postgres.primary ({i})"));
        applied.restart_needed.push((server, restart));
    }
    applied
}

fn is_postgres(op: &Op) -> bool {
    matches!(op, Op::PgSetSetting { .. } | Op::PgCreateSlot { .. })
}
