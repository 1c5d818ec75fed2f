//! Planning for RDS: the primary instance's backup retention, deletion
//! protection, Multi-AZ and parameter group; the plan's `settings` as parameters
//! of that group; and read replicas for `standbys[].rds`.
//!
//! Weakening protection (shorter retention, deletion protection off, Multi-AZ
//! off) is destructive. A replica whose source is not the primary is a problem;
//! pgdr never deletes or re-points one.

use super::{Action, Change, ClusterPlan, Op, RdsOp, RdsWrite};
use crate::spec::units::{numeric_in_base, numeric_setting};
use crate::spec::Desired;
use crate::spec::RdsPrimary;
use crate::state::postgres::LiveSetting;
use crate::state::rds::{InstanceChange, InstanceLive, ParameterLive, RdsLive};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The value RDS should hold for setting `name`: booleans as `1`/`0` where the
/// parameter takes those, sizes and times in the parameter's base unit, known
/// from the primary's pg_settings when pgdr can read them, else from the table
/// generated from `pg_settings` of each PostgreSQL major (`major`: the
/// instance's).
pub fn rds_value(
    name: &str,
    desired: &str,
    param: Option<&ParameterLive>,
    (pg, major): (Option<&LiveSetting>, Option<u32>),
) -> Result<String, String> {
    let text = desired.trim();
    if param.is_some_and(|p| p.allowed_values.as_deref() == Some("0,1")) {
        match text.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => return Ok("1".into()),
            "off" | "false" | "no" | "0" => return Ok("0".into()),
            _ => {}
        }
    }
    let has_unit = text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
            .trim()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
    if !has_unit {
        return Ok(text.to_string());
    }
    let known = match pg {
        Some(s) => Some((s.vartype.as_str(), s.unit.as_deref())),
        None => numeric_setting(name, major),
    };
    match known {
        Some((vartype, Some(unit))) => numeric_in_base(text, Some(unit)).map(|n| {
            if vartype == "real" {
                n.to_string()
            } else {
                (n.round() as i64).to_string()
            }
        }),
        Some((_, None)) => Err(format!(
            "`{text}` has a unit, but `{name}` is a plain number without one; write the number"
        )),
        None => Err(format!(
            "`{text}` has a unit, but `{name}` is not a numeric setting of PostgreSQL {}; check the spelling, or write the value RDS takes",
            crate::spec::units::generated_from()
        )),
    }
}

fn same(want: &str, have: Option<&str>) -> bool {
    match have {
        None => false,
        Some(have) if have == want => true,
        Some(have) => {
            matches!((want.parse::<f64>(), have.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
        }
    }
}

fn rds_op(region: &str, write: RdsWrite) -> Option<Op> {
    Some(Op::Rds(RdsOp {
        region: region.to_string(),
        write,
    }))
}

pub fn plan_rds(
    desired: &Desired,
    live: &RdsLive,
    pg_settings: Option<&BTreeMap<String, LiveSetting>>,
    plan: &mut ClusterPlan,
) {
    let Some(spec) = &desired.plan.primary.rds else {
        return;
    };
    let region = desired.region();
    let base = format!("rds.{}", spec.instance);
    let Some(instance) = &live.primary else {
        plan.impossible(base, format!("RDS instance `{}` does not exist in {region}; pgdr reconciles an existing primary but does not create one", spec.instance));
        return;
    };
    if let Some(source) = &instance.replica_source {
        plan.problem(base.clone(), format!("`{}` is a read replica of `{source}`, not a primary; update primary.rds in the plan file", spec.instance));
    }
    plan_instance(spec, instance, region, &base, plan);
    plan_parameter_group(desired, (instance, live), pg_settings, region, &base, plan);
    plan_replicas(desired, instance, live, region, plan);
}

/// One protection attribute of the primary instance, as the planner weighs it.
struct Attribute {
    suffix: &'static str,
    before_after: (Value, Value),
    differs: bool,
    /// The wanted value is accepted by RDS and waiting: report it, do not send it again.
    waiting: Option<String>,
    /// The change weakens protection (destructive).
    weakens: bool,
    reason: String,
    change: InstanceChange,
}

/// Backup retention, deletion protection and Multi-AZ of the primary.
fn plan_instance(
    spec: &RdsPrimary,
    instance: &InstanceLive,
    region: &str,
    base: &str,
    plan: &mut ClusterPlan,
) {
    let window = "accepted by RDS and waiting for the maintenance window (set primary.rds.apply_immediately: true to apply at once)";
    let mut attributes = Vec::new();
    if let Some(days) = spec.backup_retention_days.map(|d| d as i32) {
        let shorter = days < instance.backup_retention_days;
        attributes.push(Attribute {
            suffix: "backup_retention_days",
            before_after: (json!(instance.backup_retention_days), json!(days)),
            differs: instance.backup_retention_days != days,
            waiting: (instance.pending_backup_retention_days == Some(days))
                .then(|| format!("{days} days is {window}")),
            weakens: shorter,
            reason: if shorter {
                "shorter retention deletes automated backups and narrows point-in-time recovery"
                    .into()
            } else {
                "backup retention differs".into()
            },
            change: InstanceChange {
                backup_retention_days: Some(days),
                ..Default::default()
            },
        });
    }
    if let Some(on) = spec.deletion_protection {
        attributes.push(Attribute {
            suffix: "deletion_protection",
            before_after: (json!(instance.deletion_protection), json!(on)),
            differs: instance.deletion_protection != on,
            waiting: None,
            weakens: !on,
            reason: if on {
                "the primary must not be deletable by one API call".into()
            } else {
                "turning deletion protection off".into()
            },
            change: InstanceChange {
                deletion_protection: Some(on),
                ..Default::default()
            },
        });
    }
    if let Some(on) = spec.multi_az {
        attributes.push(Attribute {
            suffix: "multi_az",
            before_after: (json!(instance.multi_az), json!(on)),
            differs: instance.multi_az != on,
            waiting: (instance.pending_multi_az == Some(on))
                .then(|| format!("Multi-AZ {on} is {window}")),
            weakens: !on,
            reason: if on {
                "a synchronous standby in another zone takes over in minutes".into()
            } else {
                "removing the Multi-AZ standby".into()
            },
            change: InstanceChange {
                multi_az: Some(on),
                ..Default::default()
            },
        });
    }
    for attribute in attributes {
        let address = format!("{base}.{}", attribute.suffix);
        let change = if let Some(waiting) = attribute.waiting {
            Change::new(
                &plan.cluster,
                address,
                Action::Update,
                attribute.before_after,
                waiting,
            )
            .pending(true)
        } else if attribute.differs {
            let op = rds_op(
                region,
                RdsWrite::ModifyInstance {
                    id: spec.instance.clone(),
                    change: InstanceChange {
                        apply_immediately: spec.apply_immediately,
                        ..attribute.change
                    },
                },
            );
            Change::new(
                &plan.cluster,
                address,
                Action::Update,
                attribute.before_after,
                attribute.reason,
            )
            .destructive(attribute.weakens)
            .op(op)
        } else {
            continue;
        };
        plan.changes.push(change);
    }
}

/// The plan's `settings` as parameters of the primary's DB parameter group.
fn plan_parameter_group(
    desired: &Desired,
    (instance, live): (&InstanceLive, &RdsLive),
    pg_settings: Option<&BTreeMap<String, LiveSetting>>,
    region: &str,
    base: &str,
    plan: &mut ClusterPlan,
) {
    let spec = desired
        .plan
        .primary
        .rds
        .as_ref()
        .expect("called for an RDS primary");
    let settings = &desired.plan.settings;
    let (name, group) = match (&spec.parameter_group, &live.parameter_group) {
        (None, _) if !settings.is_empty() => {
            plan.impossible(
                format!("{base}.parameter_group"),
                "with primary.rds, `settings` are reconciled in a DB parameter group: name one in primary.rds.parameter_group",
            );
            return;
        }
        (Some(name), Some(group)) => (name, group),
        _ => return,
    };
    let cluster = plan.cluster.clone();
    let group_base = format!("rds.parameter_group.{name}");
    if group.family.is_none() {
        plan.changes.push(
            Change::new(
                &cluster,
                group_base.clone(),
                Action::Create,
                (json!(null), json!({ "family": instance.family() })),
                "the settings of the primary live in this group",
            )
            .op(rds_op(
                region,
                RdsWrite::CreateParameterGroup {
                    name: name.clone(),
                    family: instance.family(),
                },
            )),
        );
    }
    match &instance.parameter_group {
        Some((attached, _)) if attached == name => {}
        attached => plan.changes.push(
            Change::new(
                &cluster,
                format!("{base}.parameter_group"),
                Action::Update,
                (json!(attached.as_ref().map(|a| a.0.clone())), json!(name)),
                "the primary must use the group that holds the planned settings (takes effect at the next reboot)",
            )
            .requires_restart(true)
            .op(rds_op(
                region,
                RdsWrite::ModifyInstance {
                    id: spec.instance.clone(),
                    change: InstanceChange {
                        parameter_group: Some(name.clone()),
                        apply_immediately: spec.apply_immediately,
                        ..Default::default()
                    },
                },
            )),
        ),
    }
    if let Some((attached, status)) = &instance.parameter_group {
        if attached == name && status == "pending-reboot" {
            plan.changes.push(
                Change::new(
                    &cluster,
                    format!("{base}.parameter_group"),
                    Action::Update,
                    (
                        json!({ "name": attached, "status": status }),
                        json!({ "name": name, "status": "in-sync" }),
                    ),
                    format!(
                        "parameter changes in {name} wait for a reboot of {}",
                        spec.instance
                    ),
                )
                .requires_restart(true)
                .pending(true),
            );
        }
    }
    plan_group_parameters(
        (name, group),
        (instance, pg_settings),
        (region, &cluster, settings),
        plan,
    );
}

/// Each planned setting as a parameter of the group `name`: set where it
/// differs (at once when dynamic), impossible where RDS cannot take it.
fn plan_group_parameters(
    (name, group): (&String, &crate::state::rds::ParameterGroupLive),
    (instance, pg_settings): (&InstanceLive, Option<&BTreeMap<String, LiveSetting>>),
    (region, cluster, settings): (&str, &str, &BTreeMap<String, crate::spec::SettingValue>),
    plan: &mut ClusterPlan,
) {
    let group_base = format!("rds.parameter_group.{name}");
    for (param, value) in settings {
        let address = format!("{group_base}.{param}");
        let live_param = group.parameters.get(param);
        // AWS lists every parameter of the family; a name it does not list
        // is planned anyway and RDS itself refuses it at apply if it is wrong.
        if live_param.is_some_and(|p| !p.modifiable) {
            plan.impossible(
                address,
                format!("`{param}` cannot be changed in an RDS parameter group"),
            );
            continue;
        }
        let want = match rds_value(
            param,
            &value.0,
            live_param,
            (pg_settings.and_then(|s| s.get(param)), instance.major()),
        ) {
            Ok(v) => v,
            Err(why) => {
                plan.impossible(address, format!("settings.{param}: {why}"));
                continue;
            }
        };
        let have = live_param.and_then(|p| p.value.as_deref());
        if same(&want, have) {
            continue;
        }
        // Unknown (new group): pending-reboot is accepted for every parameter.
        let dynamic = live_param.is_some_and(|p| p.apply_type == "dynamic");
        plan.changes.push(
            Change::new(
                cluster,
                address,
                if have.is_none() {
                    Action::Create
                } else {
                    Action::Update
                },
                (json!(have), json!(want)),
                format!("{param} differs"),
            )
            .requires_restart(!dynamic)
            .op(rds_op(
                region,
                RdsWrite::SetParameter {
                    group: name.clone(),
                    name: param.clone(),
                    value: want.clone(),
                    immediate: dynamic,
                },
            )),
        );
    }
}

/// A read replica of the primary for each `standbys[].rds`.
fn plan_replicas(
    desired: &Desired,
    instance: &InstanceLive,
    live: &RdsLive,
    region: &str,
    plan: &mut ClusterPlan,
) {
    for standby in desired.plan.standbys.iter().filter(|s| s.rds.is_some()) {
        let replica = &standby.rds.as_ref().expect("filtered").instance;
        let replica_region = standby.region.as_ref().map_or(region, |r| r.as_str());
        let address = format!("rds.{replica}");
        match live.replicas.get(standby.name.as_str()) {
            Some(Some(found)) => {
                let from_primary = found
                    .replica_source
                    .as_deref()
                    .is_some_and(|s| s == instance.id || s == instance.arn);
                if !from_primary {
                    plan.problem(
                        address,
                        format!(
                            "`{replica}` replicates from {}, not from the primary `{}`; pgdr does not delete or re-point it (fix it by hand or rename the standby)",
                            found.replica_source.as_deref().map_or("nothing (it is a standalone instance)".to_string(), |s| format!("`{s}`")),
                            instance.id
                        ),
                    );
                }
            }
            Some(None) => {
                // Another region needs the source's ARN; the same region takes its name.
                let source = if replica_region == region {
                    instance.id.clone()
                } else {
                    instance.arn.clone()
                };
                let change = Change::new(
                    &plan.cluster,
                    address,
                    Action::Create,
                    (
                        json!(null),
                        json!({ "source": source, "region": replica_region, "availability_zone": standby.availability_zone }),
                    ),
                    format!("standby `{}` is a read replica of the primary", standby.name),
                )
                .op(rds_op(
                    replica_region,
                    RdsWrite::CreateReplica {
                        id: replica.clone(),
                        source,
                        availability_zone: standby.availability_zone.clone(),
                    },
                ));
                plan.changes.push(change);
            }
            None => {}
        }
    }
}
