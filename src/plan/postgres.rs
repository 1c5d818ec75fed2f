//! Planning for PostgreSQL: settings on the primary, standbys' slots, and the
//! problems a setting cannot fix (a failing archiver, slots holding WAL).

use super::guc;
use super::{Action, Change, ClusterPlan, Op, Problem, Server};
use crate::providers::postgres::PgLive;
use crate::spec::Desired;
use serde_json::json;

pub fn plan_primary(desired: &Desired, pg: &PgLive, plan: &mut ClusterPlan) {
    let cluster = plan.cluster.clone();
    let problem = |plan: &mut ClusterPlan, address: String, message: String| {
        plan.problems.push(Problem {
            cluster: cluster.clone(),
            address,
            message,
        })
    };

    if pg.in_recovery {
        problem(
            plan,
            "postgres.primary".into(),
            format!("the primary ({}) is in recovery: it is a standby now, so no slot is created on it; if a failover happened, update primary.postgres in the plan file", pg.server),
        );
    }

    for (name, value) in &desired.plan.settings {
        let address = format!("postgres.primary.setting.{name}");
        let desired_value = value.0.as_str();
        let Some(live) = pg.settings.get(name) else {
            problem(
                plan,
                address,
                format!("`{name}` is not a setting this server knows (PostgreSQL {}); check the spelling in `settings`", pg.version_num),
            );
            continue;
        };
        if matches!(live.context.as_str(), "internal") {
            problem(
                plan,
                address,
                format!(
                    "`{name}` is fixed when the server is built or initialised and cannot be set"
                ),
            );
            continue;
        }
        if let Err(why) = guc::check(desired_value, live) {
            problem(plan, address, format!("settings.{name}: {why}"));
            continue;
        }
        let requires_restart = live.context == "postmaster";
        let active_ok = guc::same_value(desired_value, &live.setting, live);
        // What a restart would make active: the file value if one is pending.
        let pending_ok = live
            .file_value
            .as_deref()
            .map(|file| guc::same_value(desired_value, file, live));
        let change = |op: Option<Op>, pending: bool, reason: String| Change {
            cluster: cluster.clone(),
            address: address.clone(),
            action: Action::Update,
            before: json!(live.display),
            after: json!(desired_value),
            requires_restart,
            destructive: false,
            pending_restart: pending,
            reason,
            op,
        };
        let set = Some(Op::PgSetSetting {
            server: Server::Primary,
            name: name.clone(),
            value: desired_value.to_string(),
            reload: !requires_restart,
        });
        if live.pending_restart {
            if pending_ok == Some(true) {
                // Already written and waiting for a restart: report it, do not issue it again.
                plan.changes.push(change(
                    None,
                    true,
                    format!(
                        "{name} is set to {desired_value} and takes effect at the next restart"
                    ),
                ));
            } else {
                // Another value waits for the restart and would win; or the file values
                // cannot be read (no pg_read_all_settings), so writing again is the safe side.
                plan.changes.push(change(
                    set,
                    false,
                    format!("{name} has another value waiting for a restart"),
                ));
            }
        } else if !active_ok {
            plan.changes
                .push(change(set, false, format!("{name} differs")));
        }
    }

    if !pg.in_recovery {
        for standby in &desired.plan.standbys {
            if standby.rds.is_some() {
                // RDS replicas replicate through AWS, not through our slots.
                continue;
            }
            let slot = standby.slot_name();
            let address = format!("postgres.primary.slot.{slot}");
            match pg.slots.get(&slot).map(String::as_str) {
                Some("physical") => {}
                Some(other) => problem(
                    plan,
                    address,
                    format!("slot `{slot}` exists but is a {other} slot; standby `{}` needs a physical one (rename the slot in the plan file)", standby.name),
                ),
                None => plan.changes.push(Change {
                    cluster: cluster.clone(),
                    address,
                    action: Action::Create,
                    before: json!(null),
                    after: json!({ "type": "physical", "reserve_wal": true }),
                    requires_restart: false,
                    destructive: false,
                    pending_restart: false,
                    reason: format!("standby `{}` streams through this slot", standby.name),
                    op: Some(Op::PgCreateSlot {
                        server: Server::Primary,
                        slot,
                    }),
                }),
            }
        }
    }

    if let Some(archiver) = &pg.health.archiver {
        if archiver.failing {
            let last = match (&archiver.last_archived_wal, &archiver.last_archived_time) {
                (Some(wal), Some(at)) => format!("last WAL archived {wal} at {at}"),
                _ => "no WAL archived yet".into(),
            };
            problem(
                plan,
                "postgres.primary.archiver".into(),
                format!(
                    "archive_command has failed {} times, last at {} ({}); {last}",
                    archiver.failed_count,
                    archiver.last_failed_time.as_deref().unwrap_or("?"),
                    archiver.last_failed_wal.as_deref().unwrap_or("?"),
                ),
            );
        }
    }
    for slot in &pg.health.slots {
        if slot.active {
            continue;
        }
        if let Some(bytes) = slot.retained_bytes {
            problem(
                plan,
                format!("postgres.primary.slot.{}", slot.name),
                format!(
                    "inactive {} slot `{}` is holding back {} of WAL; a standby that never reconnects will fill the disk",
                    slot.slot_type,
                    slot.name,
                    human_bytes(bytes)
                ),
            );
        }
    }
}

pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
