//! Failover readiness: what would break the night the primary is lost, found
//! while it is still here. Problems, each saying what happens at failover and
//! how to fix it:
//! - a logical replication slot on the primary that a failover loses
//!   (PostgreSQL before 17, or a slot without `failover = true`);
//! - the plan's login role, or a standby's replication role, whose password
//!   expires within [`EXPIRY_DAYS`] (a rotation that was never finished);
//! - a standby whose max_connections, max_worker_processes, max_wal_senders,
//!   max_prepared_transactions or max_locks_per_transaction is below the
//!   primary's;
//! - a standby on another major version.

use super::ClusterPlan;
use crate::spec::Desired;
use crate::state::Live;

/// How close a password expiry must be to be a problem.
pub const EXPIRY_DAYS: f64 = 14.0;

pub fn plan_failover_readiness(desired: &Desired, live: &Live, plan: &mut ClusterPlan) {
    let Some(primary) = &live.primary else {
        return;
    };
    if primary.in_recovery {
        return;
    }
    let health = &primary.health;
    // Without a standby there is no failover to lose a slot in (an
    // active-active node's peers hold the slots its own subscriptions use).
    let standbys = !desired.plan.standbys.is_empty();
    for slot in health
        .slots
        .iter()
        .filter(|s| s.slot_type == "logical" && standbys)
    {
        if primary.version_num >= 170000 && slot.failover {
            continue;
        }
        let fix = if primary.version_num >= 170000 {
            "recreate it with failover = true (pg_create_logical_replication_slot(..., failover => true), or the subscription's failover option) and set sync_replication_slots = on on the standbys"
        } else {
            "PostgreSQL before 17 cannot copy logical slots to standbys: plan to re-create the slot and re-sync its subscribers after a failover, or upgrade to 17 and use failover slots"
        };
        plan.problem(
            format!("postgres.primary.slot.{}", slot.name),
            format!(
                "logical slot `{}` exists only on the primary: at failover it is lost and its subscribers stop; {fix}",
                slot.name
            ),
        );
    }

    let expiring = |role: &str| {
        health
            .expiring_roles
            .iter()
            .find(|(name, _)| name == role)
            .filter(|(_, left)| *left < EXPIRY_DAYS * 86_400.0)
            .map(|(_, left)| *left)
    };
    let when = |left: f64| {
        if left <= 0.0 {
            "has expired".to_string()
        } else {
            format!("expires in {:.1} days", left / 86_400.0)
        }
    };
    if let Some(user) = desired
        .plan
        .primary
        .postgres
        .as_ref()
        .and_then(|c| c.get("user"))
    {
        if let Some(left) = expiring(user) {
            plan.problem(
                "postgres.primary",
                format!(
                    "the password of `{user}`, the role pgdr connects as, {}: after that pgdr (and a failover run by it) cannot log in. Rotate it, or extend it with ALTER ROLE {user} VALID UNTIL ...",
                    when(left)
                ),
            );
        }
    }

    for standby in &desired.plan.standbys {
        let name = standby.name.as_str();
        let Some(seen) = live.standbys.get(name).and_then(|s| s.live.as_ref()) else {
            continue;
        };
        let address = format!("postgres.standby.{name}");
        if let Some(user) = &seen.health.conninfo_user {
            if let Some(left) = expiring(user) {
                plan.problem(
                    &address,
                    format!(
                        "the password of `{user}`, the role standby `{name}` replicates as, {}: its next reconnect (every restart, every failover) fails and it falls behind. Rotate it in primary_conninfo and on the primary together",
                        when(left)
                    ),
                );
            }
        }
        if seen.version_num / 10_000 != primary.version_num / 10_000 {
            plan.problem(
                &address,
                format!(
                    "standby `{name}` runs PostgreSQL {} and the primary {}: physical replication needs one major version, so it cannot be promoted to take over; rebuild it on {}",
                    seen.version_num / 10_000,
                    primary.version_num / 10_000,
                    primary.version_num / 10_000
                ),
            );
            continue;
        }
        for (setting, on_primary) in &health.limits {
            let Some(on_standby) = seen.health.limits.get(setting) else {
                continue;
            };
            if on_standby < on_primary {
                plan.problem(
                    &address,
                    format!(
                        "{setting} is {on_standby} on standby `{name}` but {on_primary} on the primary: a hot standby needs at least the primary's value, so it stops replaying when the primary uses more, and after promotion it serves fewer. Set {setting}: {on_primary} (or more) for the standbys"
                    ),
                );
            }
        }
    }
}
