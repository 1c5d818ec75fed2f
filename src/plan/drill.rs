//! Drills and expiry in `plan`: is there a recent drill that passed and met
//! the objectives (address `drill`), and will the WAL lifecycle rule remove
//! what restoring the newest drilled backup to the present needs (address
//! `archive.wal`, reported days ahead). Problems, not changes: apply cannot
//! run a drill. Pure: ages come from the observation's clock reading.

use super::ClusterPlan;
use crate::spec::Desired;
use crate::state::archive::ArchiveLive;

/// How many days ahead `plan` warns that the WAL lifecycle will cut into what
/// the newest drilled backup needs.
pub const EXPIRY_WARNING_DAYS: u64 = 3;

pub fn plan_drills(desired: &Desired, content: &ArchiveLive, plan: &mut ClusterPlan) {
    let file = desired.source.display();
    if let Some(drill) = &desired.plan.drill {
        let drills = &content.drills;
        match &drills.newest {
            None => plan.problem(
                "drill",
                format!("no drill yet: nothing shows that this archive restores; run `pgdr drill {file}`"),
            ),
            Some(newest) => {
                if let Some(age) = drills.newest_age_seconds {
                    if age > drill.every.as_secs() {
                        plan.problem(
                            "drill",
                            format!(
                                "the newest drill ran {} ago ({}), longer than drill.every ({}); run `pgdr drill {file}`",
                                super::archive::approximate(age),
                                newest.started_at,
                                drill.every
                            ),
                        );
                    }
                }
                if !newest.ok {
                    plan.problem(
                        "drill",
                        format!(
                            "the newest drill ({}, backup {}) failed: {}",
                            newest.started_at,
                            newest.backup_id,
                            newest.failures.join("; ")
                        ),
                    );
                }
                // Judged against today's objectives: the plan may have tightened them.
                let objectives = &desired.plan.objectives;
                for (figure, verb, measured, objective, key) in [
                    ("RTO", "measured", newest.rto_seconds, objectives.rto, "rto"),
                    ("RPO", "achieved", newest.rpo_seconds, objectives.rpo, "rpo"),
                ] {
                    if let Some(value) = measured.filter(|v| *v > objective.as_secs() as f64) {
                        plan.problem(
                            "drill",
                            format!("the newest drill {verb} an {figure} of {value:.0}s, above objectives.{key} ({objective})"),
                        );
                    }
                }
            }
        }
    }
    plan_wal_expiry(desired, content, plan);
}

/// The WAL lifecycle rule removes WAL older than `wal_retention`; restoring a
/// backup to the present needs every segment from the backup's start. The
/// backup that matters is the one the newest passed drill restored (the
/// proof), else the newest.
fn plan_wal_expiry(desired: &Desired, content: &ArchiveLive, plan: &mut ClusterPlan) {
    let (Some(retention), Some(now)) = (
        desired.plan.archive.as_ref().and_then(|a| a.wal_retention),
        content.observed_at_unix,
    ) else {
        return;
    };
    let drilled = content
        .drills
        .newest_ok
        .as_ref()
        .and_then(|d| content.backups.iter().find(|b| b.id == d.backup_id));
    let Some((backup, why)) = drilled
        .map(|b| (b, "the newest drilled backup"))
        .or_else(|| content.backups.last().map(|b| (b, "the newest backup")))
    else {
        return;
    };
    let Some(started) =
        crate::spec::time::parse_rfc3339(&backup.start_time).or_else(|| backup.stop_secs())
    else {
        return;
    };
    let age = (now - started).max(0) as u64;
    let retention_secs = retention.as_secs();
    let left = retention_secs.saturating_sub(age);
    if left > EXPIRY_WARNING_DAYS * 86_400 {
        return;
    }
    let when = if left == 0 {
        "has already removed".to_string()
    } else {
        format!("removes in {}", super::archive::approximate(left))
    };
    plan.problem(
        "archive.wal",
        format!(
            "archive.wal_retention ({retention}) {when} WAL that restoring {why}, {} (started {} ago), to the present needs: take a backup and drill it (`pgdr backup`, `pgdr drill`), or raise wal_retention",
            backup.id,
            super::archive::approximate(age)
        ),
    );
}
