//! Planning for PostgreSQL: settings on the primary and every standby, the
//! standbys' slots and `synchronous_standby_names` on the primary, the
//! standbys' `application_name`, and the problems no setting can fix (a failing
//! archiver, slots holding WAL, a standby down or lagging, a failover or a
//! split brain).
//!
//! Role-dependent changes (slots, synchronous_standby_names) are made only when
//! the plan file's primary is the one writable server.

use super::guc;
use super::{Action, Change, ClusterPlan, Op, PendingRestart, PgOp, PgWrite, Server};
use crate::spec::Desired;
use crate::state::postgres::PgLive;
use crate::state::{roles, Live, Roles};
use serde_json::json;

/// How the problems that say the roles are not as planned begin: the
/// renderers read them back through [`ClusterPlan::roles_not_as_planned`].
const LOST: &str = "the primary cannot be reached";
const IN_RECOVERY: &str = "the primary is in recovery";
const SPLIT_BRAIN: &str = "split brain";

impl ClusterPlan {
    /// The plan file's primary is lost or in recovery: no change is planned
    /// for the roles, and "live state matches the plan file" would be wrong.
    pub fn roles_not_as_planned(&self) -> bool {
        self.problems.iter().any(|p| {
            (p.address == "postgres.primary"
                && (p.message.starts_with(LOST) || p.message.starts_with(IN_RECOVERY)))
                || (p.address == "postgres" && p.message.starts_with(SPLIT_BRAIN))
        })
    }
}

fn problem(plan: &mut ClusterPlan, address: impl Into<String>, message: String) {
    plan.problem(address, message);
}

fn pg_op(server: &Server, write: PgWrite) -> Option<Op> {
    Some(Op::Pg(PgOp {
        server: server.clone(),
        write,
    }))
}

/// The primary cannot be reached and nothing accepts writes: what could be
/// promoted, how far each standby got, and where the endpoint points. Nothing
/// that depends on the primary is planned, and the endpoint is never moved.
fn lost_primary(desired: &Desired, live: &Live) -> String {
    let mut candidates = Vec::new();
    let mut down = Vec::new();
    for standby in &desired.plan.standbys {
        let name = standby.name.as_str();
        match live.standbys.get(name).and_then(|s| s.live.as_ref()) {
            Some(pg) => {
                let replay = pg.health.replay.clone().unwrap_or_default();
                candidates.push(format!(
                    "{name} (replayed to {}, last transaction {}{})",
                    replay.lsn.map_or("?".to_string(), |l| l.to_string()),
                    replay
                        .last_transaction
                        .as_deref()
                        .unwrap_or("none replayed"),
                    replay
                        .age_seconds
                        .map(|a| format!(", {a:.0}s ago"))
                        .unwrap_or_default()
                ));
            }
            None if standby.postgres.is_some() => down.push(name.to_string()),
            None => {}
        }
    }
    let mut text = format!(
        "{LOST} ({}) and nothing accepts writes",
        live.primary_error
            .as_deref()
            .unwrap_or("unknown")
            .replace('\n', "; ")
    );
    if candidates.is_empty() {
        text.push_str("; no standby could be read, so none can be promoted from here");
    } else {
        text.push_str(&format!(
            "; standbys that could be promoted: {}",
            candidates.join("; ")
        ));
    }
    if !down.is_empty() {
        text.push_str(&format!("; unreachable too: {}", down.join(", ")));
    }
    text.push_str(&endpoint_points(desired, live));
    text.push_str(". pgdr changes nothing while the primary is lost and never moves the endpoint by itself: bring the primary back, or run `pgdr failover PLAN_FILE [--to NAME]` (lag-guarded; it moves the endpoint and prints the plan-file change)");
    text
}

/// `; the endpoint R points at V`, when the plan has one and it was read.
fn endpoint_points(desired: &Desired, live: &Live) -> String {
    match (&desired.plan.endpoint, &live.endpoint) {
        (Some(endpoint), Some(seen)) => match &seen.record {
            Some(record) => format!(
                "; the endpoint {} points at {}",
                endpoint.record,
                record.values.join(", ")
            ),
            None => format!("; the endpoint {} has no record", endpoint.record),
        },
        _ => String::new(),
    }
}

pub fn plan_postgres(desired: &Desired, live: &Live, plan: &mut ClusterPlan) {
    let roles = roles(live);
    match &roles {
        Roles::SplitBrain(servers) => {
            problem(
                plan,
                "postgres",
                format!("{SPLIT_BRAIN}: {} all accept writes; pgdr changes nothing in this cluster until all but one are fenced or demoted (stop the one that lost, or rejoin it as a standby){}", servers.join(" and "), endpoint_points(desired, live)),
            );
            return;
        }
        Roles::FailedOver(servers) => problem(
            plan,
            "postgres.primary",
            format!(
                "{} and {} accepts writes: a failover happened. Update the plan file (primary.postgres and standbys) to the new roles; until then pgdr changes nothing that depends on roles (slots, synchronous_standby_names){}",
                match &live.primary_error {
                    Some(e) => format!("{LOST} ({})", e.replace('\n', "; ")),
                    None => IN_RECOVERY.to_string(),
                },
                servers.join(", "),
                endpoint_points(desired, live)
            ),
        ),
        Roles::NoWritable if live.primary_error.is_some() => problem(
            plan,
            "postgres.primary",
            lost_primary(desired, live),
        ),
        Roles::NoWritable if live.primary.is_some() => problem(
            plan,
            "postgres.primary",
            format!("{IN_RECOVERY} and no standby accepts writes; no slot or synchronous_standby_names is changed"),
        ),
        _ => {}
    }
    let as_planned = roles == Roles::AsPlanned;

    if let Some(pg) = &live.primary {
        // An RDS primary takes its settings from the parameter group (plan/rds.rs);
        // RDS refuses ALTER SYSTEM.
        let on_rds = desired.plan.primary.rds.is_some();
        let mut settings = if on_rds {
            Vec::new()
        } else {
            desired.server_settings()
        };
        if as_planned && !on_rds {
            if let Some(names) = desired.synchronous_standby_names() {
                settings.push(("synchronous_standby_names".into(), names));
            }
        }
        plan_settings(plan, &Server::Primary, &settings, pg);
        if as_planned {
            plan_slots(desired, pg, plan);
            plan_standby_health(desired, live, pg, plan);
        }
        plan_primary_health(pg, plan);
    }

    let settings = desired.server_settings();
    for standby in &desired.plan.standbys {
        let Some(observed) = live.standbys.get(standby.name.as_str()) else {
            continue;
        };
        let server = Server::Standby(standby.name.as_str().to_string());
        let Some(pg) = &observed.live else {
            problem(
                plan,
                server.address(),
                format!(
                    "standby `{}` cannot be reached, so it is not streaming and its settings are not checked: {}",
                    standby.name,
                    observed.error.as_deref().unwrap_or("unknown error")
                ),
            );
            continue;
        };
        plan_settings(plan, &server, &settings, pg);
        if pg.in_recovery
            && pg.primary_conninfo_readable
            && pg.primary_conninfo_app.as_deref() != Some(standby.name.as_str())
        {
            let change = Change::new(
                &plan.cluster,
                format!("{}.setting.primary_conninfo", server.address()),
                Action::Update,
                // Only the key pgdr changes is shown: the rest may hold a password.
                (
                    json!({ "application_name": pg.primary_conninfo_app }),
                    json!({ "application_name": standby.name.as_str() }),
                ),
                "the primary matches a standby to its plan-file entry by application_name",
            )
            .op(pg_op(
                &server,
                PgWrite::SetApplicationName {
                    application_name: standby.name.as_str().to_string(),
                },
            ));
            plan.changes.push(change);
        }
    }
}

/// One server's named settings.
pub(super) fn plan_settings(
    plan: &mut ClusterPlan,
    server: &Server,
    settings: &[(String, String)],
    pg: &PgLive,
) {
    for (name, desired_value) in settings {
        let address = format!("{}.setting.{name}", server.address());
        let desired_value = desired_value.as_str();
        let Some(live) = pg.settings.get(name) else {
            plan.impossible(
                address,
                format!("`{name}` is not a setting this server knows (PostgreSQL {}); check the spelling in `settings`", pg.version_num),
            );
            continue;
        };
        if matches!(live.context.as_str(), "internal") {
            plan.impossible(
                address,
                format!(
                    "`{name}` is fixed when the server is built or initialised and cannot be set"
                ),
            );
            continue;
        }
        if let Err(why) = guc::check(desired_value, live) {
            plan.impossible(address, format!("settings.{name}: {why}"));
            continue;
        }
        let requires_restart = live.context == "postmaster";
        let active_ok = guc::same_value(desired_value, &live.setting, live);
        // What a restart would make active: the file value if one is pending.
        let pending_ok = live
            .file_value
            .as_deref()
            .map(|file| guc::same_value(desired_value, file, live));
        let change = |op: Option<Op>, pending: bool, reason: String| {
            let mut change = Change::new(
                &plan.cluster,
                address.clone(),
                Action::Update,
                (json!(live.display), json!(desired_value)),
                reason,
            )
            .requires_restart(requires_restart)
            .pending(pending)
            .op(op);
            if pending {
                change.waits_for_restart = Some(PendingRestart {
                    server: server.clone(),
                    setting: name.clone(),
                });
            }
            change
        };
        let set = pg_op(
            server,
            PgWrite::SetSetting {
                name: name.clone(),
                value: desired_value.to_string(),
                reload: !requires_restart,
            },
        );
        let new = if live.pending_restart {
            if pending_ok == Some(true) {
                // Already written and waiting for a restart: report it, do not issue it again.
                Some(change(
                    None,
                    true,
                    format!(
                        "{name} is set to {desired_value} and takes effect at the next restart"
                    ),
                ))
            } else {
                // Another value waits for the restart and would win; or the file values
                // cannot be read (no pg_read_all_settings), so writing again is the safe side.
                Some(change(
                    set,
                    false,
                    format!("{name} has another value waiting for a restart"),
                ))
            }
        } else if !active_ok {
            Some(change(set, false, format!("{name} differs")))
        } else {
            None
        };
        plan.changes.extend(new);
    }
}

/// A physical slot on the primary for each self-managed standby. Never dropped.
fn plan_slots(desired: &Desired, pg: &PgLive, plan: &mut ClusterPlan) {
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
            None => {
                let change = Change::new(
                    &plan.cluster,
                    address,
                    Action::Create,
                    (
                        json!(null),
                        json!({ "type": "physical", "reserve_wal": true }),
                    ),
                    format!("standby `{}` streams through this slot", standby.name),
                )
                .op(pg_op(&Server::Primary, PgWrite::CreateSlot { slot }));
                plan.changes.push(change);
            }
        }
    }
}

/// Is each self-managed standby streaming from the primary, and within max_lag?
fn plan_standby_health(desired: &Desired, live: &Live, primary: &PgLive, plan: &mut ClusterPlan) {
    for standby in &desired.plan.standbys {
        if standby.postgres.is_none() {
            continue;
        }
        let name = standby.name.as_str();
        let address = format!("postgres.standby.{name}");
        if live.standbys.get(name).is_some_and(|s| s.live.is_none()) {
            continue; // already reported as unreachable
        }
        let Some(row) = primary
            .health
            .replication
            .iter()
            .find(|r| r.application_name == name)
        else {
            let named = live
                .standbys
                .get(name)
                .and_then(|s| s.live.as_ref())
                .and_then(|s| s.primary_conninfo_app.clone());
            let why = match named {
                Some(app) if app != name => format!(
                    " (it connects as application_name `{app}`; the change above corrects that)"
                ),
                _ => String::new(),
            };
            problem(
                plan,
                address,
                format!("standby `{name}` is not streaming from the primary: no replication connection with application_name `{name}`{why}"),
            );
            continue;
        };
        if row.state != "streaming" {
            problem(
                plan,
                address.clone(),
                format!(
                    "standby `{name}` is connected but {} rather than streaming",
                    row.state
                ),
            );
        }
        if let Some(super::assess::Kind::StandbyLag { seconds, max, .. }) =
            super::assess::figures::standby_lag(standby, row)
        {
            let bytes = row
                .replay_lag_bytes
                .map(|b| format!(", {} of WAL", human_bytes(b)))
                .unwrap_or_default();
            problem(
                plan,
                address,
                format!(
                    "standby `{name}` replays {seconds:.1}s behind the primary{bytes}, more than its max_lag of {max}; failover to it would lose more than planned"
                ),
            );
        }
    }
}

/// Problems visible on the primary alone: the archiver and slots holding WAL.
fn plan_primary_health(pg: &PgLive, plan: &mut ClusterPlan) {
    if let Some(archiver) = &pg.health.archiver {
        if archiver.failing {
            let last = match (&archiver.last_archived_wal, &archiver.last_archived_time) {
                (Some(wal), Some(at)) => format!("last WAL archived {wal} at {at}"),
                _ => "no WAL archived yet".into(),
            };
            problem(
                plan,
                "postgres.primary.archiver",
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
