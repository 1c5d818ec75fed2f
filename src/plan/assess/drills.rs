//! Drills and WAL expiry: is there a recent drill that passed and met the
//! objectives (address `drill`), and will WAL retention remove what restoring
//! the newest drilled backup to the present needs (address `archive.wal`,
//! said [`EXPIRY_WARNING_DAYS`] ahead). Apply cannot run a drill: in `plan`
//! these are problems.

use super::{approximate, over_objectives, Finding, Kind, Objective, EXPIRY_WARNING_DAYS};
use crate::spec::Desired;
use crate::state::archive::ArchiveLive;

pub fn findings(desired: &Desired, content: &ArchiveLive) -> Vec<Finding> {
    let mut found = Vec::new();
    let file = desired.source.display().to_string();
    if let Some(drill) = &desired.plan.drill {
        let drills = &content.drills;
        match &drills.newest {
            None => found.push(Finding::new("drill", Kind::NoDrill { file })),
            Some(newest) => {
                if let Some(age) = drills.newest_age_seconds {
                    if age > drill.every.as_secs() {
                        found.push(Finding::new(
                            "drill",
                            Kind::DrillTooOld {
                                age_seconds: age,
                                started_at: newest.started_at,
                                every: drill.every,
                                file,
                            },
                        ));
                    }
                }
                if !newest.ok {
                    found.push(Finding::new(
                        "drill",
                        Kind::DrillFailed {
                            started_at: newest.started_at,
                            backup_id: newest.backup_id.clone(),
                            failures: newest.failures.clone(),
                        },
                    ));
                }
                for (figure, value, objective) in
                    over_objectives(desired, newest.rto_seconds, newest.rpo_seconds)
                {
                    found.push(Finding::new(
                        "drill",
                        Kind::DrillObjective {
                            figure,
                            value,
                            objective,
                        },
                    ));
                }
            }
        }
    }
    found.extend(wal_expiry(desired, content));
    found
}

/// When WAL retention starts removing what restoring `backup` (the one the
/// newest passed drill restored, the proof; else the newest) to the present
/// needs: `(backup id, whether it was drilled, seconds since it started,
/// seconds left)`. Also the on-call view's "next expiry".
pub fn wal_expiry_of(desired: &Desired, content: &ArchiveLive) -> Option<(String, bool, u64, u64)> {
    let retention = desired.plan.archive.as_ref()?.wal_retention?;
    let now = content.observed_at_unix?;
    let drilled = content
        .drills
        .newest_ok
        .as_ref()
        .and_then(|d| content.backups.iter().find(|b| b.id == d.backup_id));
    let (backup, was_drilled) = drilled
        .map(|b| (b, true))
        .or_else(|| content.backups.last().map(|b| (b, false)))?;
    let started = backup.start_time.secs();
    let age = (now - started).max(0) as u64;
    Some((
        backup.id.clone(),
        was_drilled,
        age,
        retention.as_secs().saturating_sub(age),
    ))
}

/// Retention removes WAL older than `wal_retention`; restoring a backup to
/// the present needs every segment from the backup's start.
fn wal_expiry(desired: &Desired, content: &ArchiveLive) -> Option<Finding> {
    let retention = desired.plan.archive.as_ref()?.wal_retention?;
    let (backup_id, drilled, age, left) = wal_expiry_of(desired, content)?;
    if left > EXPIRY_WARNING_DAYS * 86_400 {
        return None;
    }
    Some(Finding::new(
        "archive.wal",
        Kind::WalExpiry {
            retention,
            left_seconds: left,
            backup_id,
            drilled,
            age_seconds: age,
        },
    ))
}

/// `plan`'s text: `(is a note, text)`.
pub(super) fn plan_entry(kind: &Kind) -> Option<(bool, String)> {
    let text = match kind {
        Kind::NoDrill { file } => format!(
            "no drill yet: nothing shows that this archive restores; run `pgdr drill {file}`"
        ),
        Kind::DrillTooOld {
            age_seconds,
            started_at,
            every,
            file,
        } => format!(
            "the newest drill ran {} ago ({started_at}), longer than drill.every ({every}); run `pgdr drill {file}`",
            approximate(*age_seconds)
        ),
        Kind::DrillFailed {
            started_at,
            backup_id,
            failures,
        } => format!(
            "the newest drill ({started_at}, backup {backup_id}) failed: {}",
            failures.join("; ")
        ),
        Kind::DrillObjective {
            figure,
            value,
            objective,
        } => {
            let (name, verb, key) = figure.words();
            format!("the newest drill {verb} an {name} of {value:.0}s, above objectives.{key} ({objective})")
        }
        Kind::WalExpiry {
            retention,
            left_seconds,
            backup_id,
            drilled,
            age_seconds,
        } => {
            let when = if *left_seconds == 0 {
                "has already removed".to_string()
            } else {
                format!("removes in {}", approximate(*left_seconds))
            };
            let why = if *drilled {
                "the newest drilled backup"
            } else {
                "the newest backup"
            };
            format!(
                "archive.wal_retention ({retention}) {when} WAL that restoring {why}, {backup_id} (started {} ago), to the present needs: take a backup and drill it (`pgdr backup`, `pgdr drill`), or raise wal_retention",
                approximate(*age_seconds)
            )
        }
        _ => return None,
    };
    Some((false, text))
}

/// `status`'s line.
pub(super) fn beyond(kind: &Kind) -> Option<String> {
    Some(match kind {
        Kind::NoDrill { .. } => "no drill yet".to_string(),
        Kind::DrillTooOld { every, .. } => {
            format!("the last drill is older than drill.every ({every})")
        }
        Kind::DrillFailed { started_at, .. } => format!("the last drill ({started_at}) failed"),
        Kind::DrillObjective {
            figure, objective, ..
        } => {
            let (name, _, key) = figure.words();
            format!("the last drill's {name} is above objectives.{key} ({objective})")
        }
        Kind::WalExpiry {
            retention,
            left_seconds,
            backup_id,
            ..
        } => format!(
            "archive.wal_retention ({retention}) {} WAL that restoring backup {backup_id} to the present needs",
            if *left_seconds == 0 {
                "has already removed".to_string()
            } else {
                format!("removes in {}", approximate(*left_seconds))
            }
        ),
        _ => return None,
    })
}

impl Objective {
    /// `("RTO", "measured", "rto")`.
    pub(super) fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Objective::Rto => ("RTO", "measured", "rto"),
            Objective::Rpo => ("RPO", "achieved", "rpo"),
        }
    }
}
