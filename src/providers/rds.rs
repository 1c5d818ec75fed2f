//! RDS: the primary instance's protection settings, its parameter group (the
//! `settings` of an RDS primary live there, not in ALTER SYSTEM) and read
//! replicas, created through the client of the replica's region.
//!
//! Only the attributes and parameters the plan file names are changed; an
//! instance is never deleted and a replica never promoted.

use super::ProviderError;
use crate::state::rds::{InstanceChange, InstanceLive, ParameterGroupLive, ParameterLive};
use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::types::{self as rdst};
use aws_sdk_rds::Client;
use std::collections::BTreeMap;

fn to_live(db: &rdst::DbInstance) -> InstanceLive {
    let pending = db.pending_modified_values();
    InstanceLive {
        id: db.db_instance_identifier().unwrap_or_default().to_string(),
        arn: db.db_instance_arn().unwrap_or_default().to_string(),
        engine: db.engine().unwrap_or("postgres").to_string(),
        engine_version: db.engine_version().unwrap_or_default().to_string(),
        status: db.db_instance_status().unwrap_or_default().to_string(),
        backup_retention_days: db.backup_retention_period().unwrap_or(0),
        deletion_protection: db.deletion_protection().unwrap_or(false),
        multi_az: db.multi_az().unwrap_or(false),
        availability_zone: db.availability_zone().map(str::to_string),
        parameter_group: db.db_parameter_groups().first().map(|g| {
            (
                g.db_parameter_group_name().unwrap_or_default().to_string(),
                g.parameter_apply_status().unwrap_or_default().to_string(),
            )
        }),
        pending_multi_az: pending.and_then(|p| p.multi_az()),
        pending_backup_retention_days: pending.and_then(|p| p.backup_retention_period()),
        endpoint: db.endpoint().and_then(|e| e.address()).map(str::to_string),
        replica_source: db
            .read_replica_source_db_instance_identifier()
            .map(str::to_string),
    }
}

/// Instance ids per `db-instance-id` filter in one request (RDS accepts up to 100).
const FILTER_VALUES: usize = 100;

/// The instances of one region that a run's plan files name, in as few
/// `DescribeDBInstances` requests as the filter allows (the batches at once),
/// paginated; an id missing from the answer does not exist. Keyed by
/// [`instance_key`]: RDS identifiers are case-insensitive and stored lower-case.
pub async fn observe_instances(
    client: &Client,
    ids: &[String],
) -> Result<BTreeMap<String, InstanceLive>, ProviderError> {
    let mut keys: Vec<String> = ids.iter().map(|id| instance_key(id)).collect();
    keys.sort();
    keys.dedup();
    let batches = futures_util::future::join_all(
        keys.chunks(FILTER_VALUES)
            .map(|chunk| describe_batch(client, chunk)),
    )
    .await;
    let mut found = BTreeMap::new();
    for batch in batches {
        for live in batch? {
            found.insert(instance_key(&live.id), live);
        }
    }
    Ok(found)
}

/// How [`observe_instances`] keys an instance id.
pub fn instance_key(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// Every page of one `DescribeDBInstances` filtered to `ids`.
async fn describe_batch(
    client: &Client,
    ids: &[String],
) -> Result<Vec<InstanceLive>, ProviderError> {
    let system = format!("rds.{}", ids[0]);
    let mut found = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .describe_db_instances()
            .filters(
                rdst::Filter::builder()
                    .name("db-instance-id")
                    .set_values(Some(ids.to_vec()))
                    .build(),
            )
            .max_records(100)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| super::aws_error("reading the instances", &system, &e))?;
        found.extend(out.db_instances().iter().map(to_live));
        match out.marker() {
            Some(next) if !next.is_empty() => marker = Some(next.to_string()),
            _ => return Ok(found),
        }
    }
}

/// The instance, or `None` if it does not exist.
pub async fn observe_instance(
    client: &Client,
    id: &str,
) -> Result<Option<InstanceLive>, ProviderError> {
    let system = format!("rds.{id}");
    match client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_instances().first().map(to_live)),
        Err(e)
            if e.code() == Some("DBInstanceNotFound")
                || e.code() == Some("DBInstanceNotFoundFault") =>
        {
            Ok(None)
        }
        Err(e) => Err(super::aws_error("reading the instance", &system, &e)),
    }
}

pub async fn observe_parameter_group(
    client: &Client,
    name: &str,
    wanted: &[String],
) -> Result<ParameterGroupLive, ProviderError> {
    let system = format!("rds.parameter_group.{name}");
    let family = match client
        .describe_db_parameter_groups()
        .db_parameter_group_name(name)
        .send()
        .await
    {
        Ok(out) => out.db_parameter_groups().first().map(|g| {
            g.db_parameter_group_family()
                .unwrap_or_default()
                .to_string()
        }),
        Err(e) if e.code() == Some("DBParameterGroupNotFound") => None,
        Err(e) => return Err(super::aws_error("reading the parameter group", &system, &e)),
    };
    let mut live = ParameterGroupLive {
        name: name.to_string(),
        family,
        parameters: BTreeMap::new(),
    };
    if live.family.is_none() {
        return Ok(live);
    }
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .describe_db_parameters()
            .db_parameter_group_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| super::aws_error("reading parameters", &system, &e))?;
        for p in out.parameters() {
            let Some(pname) = p.parameter_name() else {
                continue;
            };
            if wanted.iter().any(|w| w == pname) {
                live.parameters.insert(
                    pname.to_string(),
                    ParameterLive {
                        value: p.parameter_value().map(str::to_string),
                        apply_type: p.apply_type().unwrap_or("dynamic").to_string(),
                        modifiable: p.is_modifiable().unwrap_or(true),
                        allowed_values: p.allowed_values().map(str::to_string),
                    },
                );
            }
        }
        marker = out.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    Ok(live)
}

pub async fn create_parameter_group(
    client: &Client,
    name: &str,
    family: &str,
    cluster: &str,
) -> Result<(), ProviderError> {
    let system = format!("rds.parameter_group.{name}");
    match client
        .create_db_parameter_group()
        .db_parameter_group_name(name)
        .db_parameter_group_family(family)
        .description(format!(
            "PostgreSQL settings for {cluster} (managed by pgdr)"
        ))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("DBParameterGroupAlreadyExists") => Ok(()),
        Err(e) => Err(super::aws_error(
            "creating the parameter group",
            &system,
            &e,
        )),
    }
}

pub async fn set_parameter(
    client: &Client,
    group: &str,
    name: &str,
    value: &str,
    immediate: bool,
) -> Result<(), ProviderError> {
    let system = format!("rds.parameter_group.{group}");
    let parameter = rdst::Parameter::builder()
        .parameter_name(name)
        .parameter_value(value)
        .apply_method(if immediate {
            rdst::ApplyMethod::Immediate
        } else {
            rdst::ApplyMethod::PendingReboot
        })
        .build();
    client
        .modify_db_parameter_group()
        .db_parameter_group_name(group)
        .parameters(parameter)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| super::aws_error(&format!("setting {name}"), &system, &e))
}

pub async fn modify_instance(
    client: &Client,
    id: &str,
    change: &InstanceChange,
) -> Result<(), ProviderError> {
    let system = format!("rds.{id}");
    client
        .modify_db_instance()
        .db_instance_identifier(id)
        .set_backup_retention_period(change.backup_retention_days)
        .set_deletion_protection(change.deletion_protection)
        .set_multi_az(change.multi_az)
        .set_db_parameter_group_name(change.parameter_group.clone())
        .apply_immediately(change.apply_immediately)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| super::aws_error("modifying the instance", &system, &e))
}

pub async fn create_read_replica(
    client: &Client,
    id: &str,
    source: &str,
    availability_zone: Option<&str>,
) -> Result<(), ProviderError> {
    let system = format!("rds.{id}");
    match client
        .create_db_instance_read_replica()
        .db_instance_identifier(id)
        .source_db_instance_identifier(source)
        .set_availability_zone(availability_zone.map(str::to_string))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("DBInstanceAlreadyExists") => Ok(()),
        Err(e) => Err(super::aws_error("creating the read replica", &system, &e)),
    }
}

/// `PromoteReadReplica`: the replica becomes a standalone instance that takes
/// writes (the only promotion pgdr makes, for `switchover` and `failover`).
pub async fn promote_read_replica(client: &Client, id: &str) -> Result<(), ProviderError> {
    let system = format!("rds.{id}");
    client
        .promote_read_replica()
        .db_instance_identifier(id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| super::aws_error("promoting the read replica", &system, &e))
}

/// The tag every scratch instance a drill makes carries, with the cluster's name.
pub const DRILL_TAG: &str = "pgdr:drill";

/// `RestoreDBInstanceToPointInTime` of `source` into a new `target` instance,
/// tagged as a drill's: at `at` (seconds since the epoch) or the latest
/// restorable time. No deletion protection, not public: it is thrown away.
pub async fn restore_to_point_in_time(
    client: &Client,
    source: &str,
    target: &str,
    at: Option<i64>,
    cluster: &str,
) -> Result<(), ProviderError> {
    let system = format!("rds.{target}");
    let tag = |k: &str, v: &str| rdst::Tag::builder().key(k).value(v).build();
    client
        .restore_db_instance_to_point_in_time()
        .source_db_instance_identifier(source)
        .target_db_instance_identifier(target)
        .set_restore_time(at.map(aws_smithy_types::DateTime::from_secs))
        .use_latest_restorable_time(at.is_none())
        .deletion_protection(false)
        .publicly_accessible(false)
        .tags(tag("managed-by", "pgdr"))
        .tags(tag(DRILL_TAG, cluster))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| super::aws_error("restoring to a point in time", &system, &e))
}

/// Deletes a drill's scratch instance: no final snapshot (it is a copy), its
/// automated backups too. Gone already is fine.
pub async fn delete_drill_instance(client: &Client, id: &str) -> Result<(), ProviderError> {
    let system = format!("rds.{id}");
    match client
        .delete_db_instance()
        .db_instance_identifier(id)
        .skip_final_snapshot(true)
        .delete_automated_backups(true)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.code() == Some("DBInstanceNotFound")
                || e.code() == Some("DBInstanceNotFoundFault") =>
        {
            Ok(())
        }
        Err(e) => Err(super::aws_error("deleting the drill instance", &system, &e)),
    }
}

/// Instances whose id starts with `prefix` (all pages), with their tags.
pub async fn instances_with_prefix(
    client: &Client,
    prefix: &str,
) -> Result<Vec<(InstanceLive, Vec<(String, String)>)>, ProviderError> {
    let system = format!("rds.{prefix}*");
    let mut found = Vec::new();
    let mut pages = client.describe_db_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| super::aws_error("listing instances", &system, &e))?;
        for db in page.db_instances() {
            if db
                .db_instance_identifier()
                .is_some_and(|id| id.starts_with(prefix))
            {
                let tags = db
                    .tag_list()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                found.push((to_live(db), tags));
            }
        }
    }
    Ok(found)
}

/// The instance's latest restorable time (seconds since the epoch), if RDS reports one.
pub async fn latest_restorable_time(
    client: &Client,
    id: &str,
) -> Result<Option<i64>, ProviderError> {
    let system = format!("rds.{id}");
    let out = client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(|e| super::aws_error("reading the instance", &system, &e))?;
    Ok(out
        .db_instances()
        .first()
        .and_then(|db| db.latest_restorable_time())
        .map(|t| t.secs()))
}
