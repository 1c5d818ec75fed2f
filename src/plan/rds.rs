//! Planning for RDS: the primary instance's backup retention, deletion
//! protection, Multi-AZ and parameter group; the plan's `settings` as parameters
//! of that group; and read replicas for `standbys[].rds`.
//!
//! Weakening protection (shorter retention, deletion protection off, Multi-AZ
//! off) is destructive. A replica whose source is not the primary is a problem;
//! pgdr never deletes or re-points one.

use super::{Action, Change, ClusterPlan, Op, RdsOp, RdsWrite};
use crate::spec::units::numeric_in_base;
use crate::spec::Desired;
use crate::state::postgres::LiveSetting;
use crate::state::rds::{InstanceChange, ParameterLive, RdsLive};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How a change is marked: weakens protection, already accepted and waiting,
/// takes effect only at a reboot.
#[derive(Clone, Copy)]
struct Flags {
    destructive: bool,
    pending: bool,
    restart: bool,
}

/// The value RDS should hold for a setting: booleans as `1`/`0` where the
/// parameter takes those, sizes and times in the parameter's base unit (known
/// from the primary's pg_settings when pgdr can read them).
pub fn rds_value(
    desired: &str,
    param: Option<&ParameterLive>,
    pg: Option<&LiveSetting>,
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
    match pg.and_then(|s| s.unit.as_deref().map(|u| (s, u))) {
        Some((setting, unit)) => numeric_in_base(text, Some(unit)).map(|n| {
            if setting.vartype == "real" {
                n.to_string()
            } else {
                (n.round() as i64).to_string()
            }
        }),
        None => Err(format!("`{text}` has a unit, but an RDS parameter takes a plain number in its base unit (see `SHOW` on the server); give primary.postgres so pgdr can convert, or write the plain number")),
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

pub fn plan_rds(
    desired: &Desired,
    live: &RdsLive,
    pg_settings: Option<&BTreeMap<String, LiveSetting>>,
    plan: &mut ClusterPlan,
) {
    let Some(spec) = &desired.plan.primary.rds else {
        return;
    };
    let region = desired.region().to_string();
    let problem =
        |plan: &mut ClusterPlan, address: String, message: String| plan.problem(address, message);
    let rds_op = |region: &str, write: RdsWrite| {
        Some(Op::Rds(RdsOp {
            region: region.to_string(),
            write,
        }))
    };
    let base = format!("rds.{}", spec.instance);
    let Some(instance) = &live.primary else {
        problem(plan, base, format!("RDS instance `{}` does not exist in {region}; pgdr reconciles an existing primary but does not create one", spec.instance));
        return;
    };
    if let Some(source) = &instance.replica_source {
        problem(plan, base.clone(), format!("`{}` is a read replica of `{source}`, not a primary; update primary.rds in the plan file", spec.instance));
    }

    // Flags are named at each call: destructive, pending (accepted, waiting), restart.
    let change = |plan: &mut ClusterPlan,
                  address: String,
                  action: Action,
                  (before, after): (Value, Value),
                  flags: Flags,
                  reason: String,
                  op: Option<Op>| {
        let change = Change::new(&plan.cluster, address, action, (before, after), reason)
            .requires_restart(flags.restart)
            .destructive(flags.destructive)
            .pending(flags.pending)
            .op(op);
        plan.changes.push(change)
    };
    let modify = |c: InstanceChange| {
        rds_op(
            &region,
            RdsWrite::ModifyInstance {
                id: spec.instance.clone(),
                change: InstanceChange {
                    apply_immediately: spec.apply_immediately,
                    ..c
                },
            },
        )
    };
    let window = "accepted by RDS and waiting for the maintenance window (set primary.rds.apply_immediately: true to apply at once)";

    if let Some(days) = spec.backup_retention_days.map(|d| d as i32) {
        let address = format!("{base}.backup_retention_days");
        if instance.pending_backup_retention_days == Some(days) {
            change(
                plan,
                address,
                Action::Update,
                (json!(instance.backup_retention_days), json!(days)),
                Flags {
                    destructive: false,
                    pending: true,
                    restart: false,
                },
                format!("{days} days is {window}"),
                None,
            );
        } else if instance.backup_retention_days != days {
            let shorter = days < instance.backup_retention_days;
            change(
                plan,
                address,
                Action::Update,
                (json!(instance.backup_retention_days), json!(days)),
                Flags {
                    destructive: shorter,
                    pending: false,
                    restart: false,
                },
                if shorter {
                    "shorter retention deletes automated backups and narrows point-in-time recovery"
                        .into()
                } else {
                    "backup retention differs".into()
                },
                modify(InstanceChange {
                    backup_retention_days: Some(days),
                    ..Default::default()
                }),
            );
        }
    }
    if let Some(on) = spec.deletion_protection {
        if instance.deletion_protection != on {
            change(
                plan,
                format!("{base}.deletion_protection"),
                Action::Update,
                (json!(instance.deletion_protection), json!(on)),
                Flags {
                    destructive: !on,
                    pending: false,
                    restart: false,
                },
                if on {
                    "the primary must not be deletable by one API call".into()
                } else {
                    "turning deletion protection off".into()
                },
                modify(InstanceChange {
                    deletion_protection: Some(on),
                    ..Default::default()
                }),
            );
        }
    }
    if let Some(on) = spec.multi_az {
        let address = format!("{base}.multi_az");
        if instance.pending_multi_az == Some(on) {
            change(
                plan,
                address,
                Action::Update,
                (json!(instance.multi_az), json!(on)),
                Flags {
                    destructive: false,
                    pending: true,
                    restart: false,
                },
                format!("Multi-AZ {on} is {window}"),
                None,
            );
        } else if instance.multi_az != on {
            change(
                plan,
                address,
                Action::Update,
                (json!(instance.multi_az), json!(on)),
                Flags {
                    destructive: !on,
                    pending: false,
                    restart: false,
                },
                if on {
                    "a synchronous standby in another zone takes over in minutes".into()
                } else {
                    "removing the Multi-AZ standby".into()
                },
                modify(InstanceChange {
                    multi_az: Some(on),
                    ..Default::default()
                }),
            );
        }
    }

    let settings = &desired.plan.settings;
    match (&spec.parameter_group, &live.parameter_group) {
        (None, _) if !settings.is_empty() => problem(
            plan,
            format!("{base}.parameter_group"),
            "with primary.rds, `settings` are reconciled in a DB parameter group: name one in primary.rds.parameter_group".into(),
        ),
        (Some(name), Some(group)) => {
            let group_base = format!("rds.parameter_group.{name}");
            if group.family.is_none() {
                change(
                    plan,
                    group_base.clone(),
                    Action::Create,
                    (json!(null), json!({ "family": instance.family() })),
                    Flags { destructive: false, pending: false, restart: false },
                    "the settings of the primary live in this group".into(),
                    rds_op(&region, RdsWrite::CreateParameterGroup { name: name.clone(), family: instance.family() }),
                );
            }
            match &instance.parameter_group {
                Some((attached, _)) if attached == name => {}
                attached => change(
                    plan,
                    format!("{base}.parameter_group"),
                    Action::Update,
                    (json!(attached.as_ref().map(|a| a.0.clone())), json!(name)),
                    Flags { destructive: false, pending: false, restart: true },
                    "the primary must use the group that holds the planned settings (takes effect at the next reboot)".into(),
                    modify(InstanceChange { parameter_group: Some(name.clone()), ..Default::default() }),
                ),
            }
            if let Some((attached, status)) = &instance.parameter_group {
                if attached == name && status == "pending-reboot" {
                    change(
                        plan,
                        format!("{base}.parameter_group"),
                        Action::Update,
                        (json!({ "name": attached, "status": status }), json!({ "name": name, "status": "in-sync" })),
                        Flags { destructive: false, pending: true, restart: true },
                        format!("parameter changes in {name} wait for a reboot of {}", spec.instance),
                        None,
                    );
                }
            }
            for (param, value) in settings {
                let address = format!("{group_base}.{param}");
                let live_param = group.parameters.get(param);
                // AWS lists every parameter of the family; a name it does not list
                // is planned anyway and RDS itself refuses it at apply if it is wrong.
                if live_param.is_some_and(|p| !p.modifiable) {
                    problem(plan, address, format!("`{param}` cannot be changed in an RDS parameter group"));
                    continue;
                }
                let want = match rds_value(&value.0, live_param, pg_settings.and_then(|s| s.get(param))) {
                    Ok(v) => v,
                    Err(why) => {
                        problem(plan, address, format!("settings.{param}: {why}"));
                        continue;
                    }
                };
                let have = live_param.and_then(|p| p.value.as_deref());
                if same(&want, have) {
                    continue;
                }
                // Unknown (new group): pending-reboot is accepted for every parameter.
                let dynamic = live_param.is_some_and(|p| p.apply_type == "dynamic");
                change(
                    plan,
                    address,
                    if have.is_none() { Action::Create } else { Action::Update },
                    (json!(have), json!(want)),
                    Flags { destructive: false, pending: false, restart: !dynamic },
                    format!("{param} differs"),
                    rds_op(&region, RdsWrite::SetParameter { group: name.clone(), name: param.clone(), value: want.clone(), immediate: dynamic }),
                );
            }
        }
        _ => {}
    }

    for standby in desired.plan.standbys.iter().filter(|s| s.rds.is_some()) {
        let replica = &standby.rds.as_ref().expect("filtered").instance;
        let replica_region = standby
            .region
            .as_ref()
            .map_or(region.clone(), |r| r.to_string());
        let address = format!("rds.{replica}");
        match live.replicas.get(standby.name.as_str()) {
            Some(Some(found)) => {
                let from_primary = found
                    .replica_source
                    .as_deref()
                    .is_some_and(|s| s == instance.id || s == instance.arn);
                if !from_primary {
                    problem(
                        plan,
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
                change(
                    plan,
                    address,
                    Action::Create,
                    (
                        json!(null),
                        json!({ "source": source, "region": replica_region, "availability_zone": standby.availability_zone }),
                    ),
                    Flags {
                        destructive: false,
                        pending: false,
                        restart: false,
                    },
                    format!(
                        "standby `{}` is a read replica of the primary",
                        standby.name
                    ),
                    rds_op(
                        &replica_region,
                        RdsWrite::CreateReplica {
                            id: replica.clone(),
                            source,
                            availability_zone: standby.availability_zone.clone(),
                        },
                    ),
                );
            }
            None => {}
        }
    }
}
