//! What `pgdr run-due` owes one cluster by its plan file: a base backup
//! (`archive.base_backups.every`, its type by `full_every`) and a drill
//! (`drill.every`), decided from the archive's content and a clock. Pure;
//! expiry is decided by `plan::recovery::expire` on the bucket's listing.
//!
//! A task falls due slightly before its period ends (a twentieth of it, at
//! most an hour): a timer firing on the hour then keeps a daily backup on
//! its hour, where waiting for the full period would push it one tick later
//! every day. `plan` calls it overdue only once the whole period has passed.

use super::backup::due_type;
use crate::plan::assess::approximate;
use crate::spec::Desired;
use crate::state::archive::{ArchiveLive, BackupType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Backup(BackupType),
    /// `pgdr copy`: a copy of the archive lacks what home holds.
    Copy,
    Drill,
    /// A region-loss drill from a copy (`drill.region_every`).
    RegionDrill,
}

impl Task {
    pub fn name(&self) -> &'static str {
        match self {
            Task::Backup(_) => "backup",
            Task::Copy => "copy",
            Task::Drill => "drill",
            Task::RegionDrill => "region drill",
        }
    }
}

/// One task's verdict: whether it is due, why (or when it will be), and
/// whether it is overdue (its whole period has passed: `plan` reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub task: Task,
    pub due: bool,
    pub overdue: bool,
    pub why: String,
}

/// How early a task of period `every` (seconds) falls due.
fn early(every: u64) -> u64 {
    (every / 20).min(3_600)
}

/// Due, and overdue, for something last done `age` seconds ago with period `every`.
fn timing(age: u64, every: u64) -> (bool, bool) {
    (age + early(every) >= every, age > every)
}

/// The base backup, when pgdr takes this cluster's backups (a
/// `base_backups` section and a self-managed primary; RDS takes its own).
pub fn backup(desired: &Desired, content: &ArchiveLive, now: i64) -> Option<Decision> {
    let plan = &desired.plan;
    let schedule = plan.archive.as_ref()?.base_backups.as_ref()?;
    plan.primary.postgres.as_ref()?;
    let every = schedule.every;
    let full_every = schedule.full_every.map(|d| d.as_secs());
    let backup_type = due_type(&content.backups, full_every, now);
    let Some(newest) = content.backups.last() else {
        return Some(Decision {
            task: Task::Backup(BackupType::Full),
            due: true,
            overdue: true,
            why: "the archive has no backup yet".into(),
        });
    };
    let age = (now - newest.stop_time.secs()).max(0) as u64;
    let (due, overdue) = timing(age, every.as_secs());
    let why = if due {
        let kind = match (backup_type, schedule.full_every) {
            (BackupType::Full, Some(full_every)) => {
                format!(", and a full: no file-level full to build on is newer than full_every ({full_every})")
            }
            _ => String::new(),
        };
        format!(
            "the newest backup ({}) finished {} ago; base_backups.every is {every}{kind}",
            newest.id,
            approximate(age)
        )
    } else {
        format!(
            "the newest backup ({}) finished {} ago; the next is due in {} (base_backups.every {every})",
            newest.id,
            approximate(age),
            approximate(every.as_secs() - early(every.as_secs()) - age)
        )
    };
    Some(Decision {
        task: Task::Backup(backup_type),
        due,
        overdue,
        why,
    })
}

/// The drill, when the plan file asks for drills. A failed newest drill is
/// not repeated before its time (a drill is a whole restore); `failed` says
/// it, and run-due's exit code carries it.
pub fn drill(
    desired: &Desired,
    content: &ArchiveLive,
    now: i64,
) -> Option<(Decision, Option<String>)> {
    let every = desired.plan.drill.as_ref()?.every;
    let Some(newest) = &content.drills.newest else {
        return Some((
            Decision {
                task: Task::Drill,
                due: true,
                overdue: true,
                why: "no drill yet: nothing shows that this archive restores".into(),
            },
            None,
        ));
    };
    let age = (now - newest.started_at.secs()).max(0) as u64;
    let (due, overdue) = timing(age, every.as_secs());
    let verdict = if newest.ok { "passed" } else { "failed" };
    let why = if due {
        format!(
            "the newest drill ({verdict}) ran {} ago; drill.every is {every}",
            approximate(age)
        )
    } else {
        format!(
            "the newest drill ({verdict}) ran {} ago; the next is due in {} (drill.every {every})",
            approximate(age),
            approximate(every.as_secs() - early(every.as_secs()) - age)
        )
    };
    let failed = (!newest.ok && !due).then(|| {
        format!(
            "the newest drill ({}, backup {}) failed: {}",
            newest.started_at,
            newest.backup_id,
            newest.failures.join("; ")
        )
    });
    Some((
        Decision {
            task: Task::Drill,
            due,
            overdue,
            why,
        },
        failed,
    ))
}

/// The catch-up of the archive's copies, when the plan has copies and the
/// archive's content was read with them: due when a copy lacks anything
/// home holds, overdue when one lacks WAL home has held longer than the RPO
/// (or cannot be read).
pub fn copy(desired: &Desired, content: &ArchiveLive, now: i64) -> Option<Decision> {
    let archive = desired.plan.archive.as_ref()?;
    if archive.copies.is_empty() {
        return None;
    }
    let drilled = content
        .drills
        .newest_ok
        .as_ref()
        .map(|d| d.backup_id.as_str());
    let home = super::copy::wanted(desired, &content.backups, drilled);
    let rpo = desired.plan.objectives.rpo;
    let (mut due, mut overdue, mut said) = (false, false, Vec::new());
    for copy in &content.copies {
        match &copy.content {
            Err(why) => {
                overdue = true;
                said.push(format!("{} cannot be read ({why})", copy.name));
            }
            Ok(listing) => {
                let lag = super::copy::lag_of(listing, &home);
                let seconds = super::copy::lag_seconds(&lag, now);
                if !lag.wal_missing.is_empty() || !lag.backups_missing.is_empty() {
                    due = true;
                    overdue |= seconds > rpo.as_secs();
                    let mut lacks = Vec::new();
                    if !lag.wal_missing.is_empty() {
                        lacks.push(format!(
                            "{} WAL file(s) ({} behind home)",
                            lag.wal_missing.len(),
                            crate::plan::assess::copies::behind(seconds)
                        ));
                    }
                    if !lag.backups_missing.is_empty() {
                        lacks.push(format!("{} backup(s)", lag.backups_missing.len()));
                    }
                    said.push(format!("{} lacks {}", copy.name, lacks.join(" and ")));
                } else {
                    said.push(format!("{} holds everything home holds", copy.name));
                }
            }
        }
    }
    Some(Decision {
        task: Task::Copy,
        due: due || overdue,
        overdue,
        why: said.join("; "),
    })
}

/// The region-loss drill (`drill.region_every`), judged by the newest one
/// any copy holds.
pub fn region_drill(desired: &Desired, content: &ArchiveLive, now: i64) -> Option<Decision> {
    let every = desired.plan.drill.as_ref()?.region_every?;
    let newest = content
        .copies
        .iter()
        .filter_map(|c| c.content.as_ref().ok()?.drills.newest.as_ref())
        .max_by_key(|d| d.started_at);
    let Some(newest) = newest else {
        return Some(Decision {
            task: Task::RegionDrill,
            due: true,
            overdue: true,
            why: "no region-loss drill yet: nothing shows the archive survives its region".into(),
        });
    };
    let age = (now - newest.started_at.secs()).max(0) as u64;
    let (due, overdue) = timing(age, every.as_secs());
    let verdict = if newest.ok { "passed" } else { "failed" };
    Some(Decision {
        task: Task::RegionDrill,
        due,
        overdue,
        why: format!(
            "the newest region-loss drill ({verdict}, from {}) ran {} ago; drill.region_every is {every}",
            newest.from_copy.as_deref().unwrap_or("a copy"),
            approximate(age)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::time::Timestamp;
    use crate::state::archive::BackupEntry;
    use crate::state::drill::{DrillReport, Objectives};
    use std::path::Path;

    const DAY: i64 = 86_400;

    fn desired(extra: &str) -> Desired {
        let text = format!(
            "version: 1\ncluster: orders\ntier: saas\nobjectives: {{ rpo: 5m, rto: 1h }}\naws: {{ region: us-east-1 }}\n\
             primary: {{ postgres: 'host=127.0.0.1 user=postgres' }}\n\
             archive:\n  bucket: orders-wal\n  wal_retention: 14d\n  base_backups: {{ every: 1d, full_every: 7d, keep: 3 }}\n{extra}"
        );
        crate::spec::load_str(Path::new("orders.yaml"), &text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn content(backups: &[(BackupType, i64)]) -> ArchiveLive {
        ArchiveLive {
            backups: backups
                .iter()
                .enumerate()
                .map(|(i, (kind, stop))| {
                    let mut b = BackupEntry::sample(&format!("b{i}"), "000000010000000000000002");
                    b.backup_type = *kind;
                    b.method = crate::state::archive::BackupMethod::Files;
                    b.maps = vec!["map-0.zst".into()];
                    b.stop_time = Timestamp(*stop);
                    b
                })
                .collect(),
            ..ArchiveLive::default()
        }
    }

    #[test]
    fn a_backup_is_due_when_its_period_has_all_but_passed() {
        let d = desired("");
        let now = 100 * DAY;
        let none = backup(&d, &content(&[]), now).unwrap();
        assert!(none.due && none.overdue, "{none:?}");
        assert_eq!(none.task, Task::Backup(BackupType::Full));

        let fresh = backup(&d, &content(&[(BackupType::Full, now - 3_600)]), now).unwrap();
        assert!(!fresh.due && !fresh.overdue, "{fresh:?}");
        assert!(fresh.why.contains("due in 22h"), "{}", fresh.why);

        // 23h10m: within the hour's grace of a daily period, not yet overdue.
        let almost = backup(
            &d,
            &content(&[(BackupType::Full, now - DAY + 50 * 60)]),
            now,
        )
        .unwrap();
        assert!(almost.due && !almost.overdue, "{almost:?}");
        assert_eq!(almost.task, Task::Backup(BackupType::Incr));

        let late = backup(&d, &content(&[(BackupType::Full, now - 2 * DAY)]), now).unwrap();
        assert!(late.due && late.overdue, "{late:?}");
    }

    #[test]
    fn the_due_backup_is_a_full_once_the_newest_full_is_full_every_old() {
        let d = desired("");
        let now = 100 * DAY;
        let b = backup(&d, &content(&[(BackupType::Full, now - 8 * DAY)]), now).unwrap();
        assert_eq!(b.task, Task::Backup(BackupType::Full));
        assert!(b.why.contains("full_every (1w)"), "{}", b.why);
    }

    #[test]
    fn no_backup_task_without_a_schedule_or_for_an_rds_primary() {
        let now = 100 * DAY;
        let text = "version: 1\ncluster: orders\ntier: saas\nobjectives: { rpo: 5m, rto: 1h }\naws: { region: us-east-1 }\n\
                    primary: { postgres: 'host=127.0.0.1 user=postgres' }\narchive: { bucket: orders-wal, wal_retention: 14d }\n";
        let d = crate::spec::load_str(Path::new("o.yaml"), text).unwrap();
        assert_eq!(backup(&d, &content(&[]), now), None);
        assert_eq!(drill(&d, &content(&[]), now), None);
    }

    fn with_drill(ok: bool, started: i64) -> ArchiveLive {
        let mut c = content(&[(BackupType::Full, started)]);
        let mut report = DrillReport::started(
            "orders",
            "b0".into(),
            "latest".into(),
            Timestamp(started),
            Objectives {
                rpo_seconds: 300,
                rto_seconds: 3_600,
            },
            150_000,
        );
        report.ok = ok;
        report.failures = if ok {
            vec![]
        } else {
            vec!["check `orders` returned false".into()]
        };
        c.drills.newest = Some(report);
        c
    }

    #[test]
    fn a_drill_is_due_by_drill_every_and_a_failed_one_is_said_not_repeated() {
        let d = desired("drill: { every: 7d }\n");
        let now = 100 * DAY;
        let (first, failed) = drill(&d, &content(&[]), now).unwrap();
        assert!(first.due && first.overdue && failed.is_none());

        let (recent, failed) = drill(&d, &with_drill(true, now - DAY), now).unwrap();
        assert!(!recent.due, "{recent:?}");
        assert!(failed.is_none());

        let (recent_failed, failed) = drill(&d, &with_drill(false, now - DAY), now).unwrap();
        assert!(!recent_failed.due);
        assert!(failed.unwrap().contains("returned false"));

        let (old, failed) = drill(&d, &with_drill(false, now - 8 * DAY), now).unwrap();
        assert!(old.due && old.overdue && failed.is_none(), "{old:?}");
    }

    #[test]
    fn a_copy_is_due_when_it_lacks_anything_and_overdue_past_the_rpo() {
        use crate::state::archive::{CopyListing, CopyLive};
        let d = desired(
            "  copies: [{ name: west, bucket: orders-wal-west, region: us-west-2 }]\ndrill: { every: 7d, region_every: 30d }\n",
        );
        let now = 100 * DAY;
        let seg = |n: u32, at: i64| (format!("0000000100000000000000{n:02X}"), at);
        let copy = |wal: Vec<(String, i64)>, backups: &[&str]| CopyLive {
            name: "west".into(),
            url: "s3://orders-wal-west/".into(),
            region: "us-west-2".into(),
            content: Ok(CopyListing {
                home_wal: vec![seg(2, now - 600), seg(3, now - 400), seg(4, now - 10)],
                wal,
                backups: backups.iter().map(|b| b.to_string()).collect(),
                drills: Default::default(),
            }),
        };
        let mut c = content(&[(BackupType::Full, now - DAY)]);
        c.copies = vec![copy(vec![seg(2, now - 600)], &["b0"])];
        let behind = super::copy(&d, &c, now).unwrap();
        // Segment 3 has been home's for 400s, beyond the 5m RPO.
        assert!(behind.due && behind.overdue, "{behind:?}");
        assert!(
            behind
                .why
                .contains("west lacks 2 WAL file(s) (6m behind home)"),
            "{}",
            behind.why
        );

        c.copies = vec![copy(vec![seg(2, 0), seg(3, 0)], &[])];
        let fresh = super::copy(&d, &c, now).unwrap();
        assert!(fresh.due && !fresh.overdue, "{fresh:?}");
        assert!(
            fresh
                .why
                .contains("1 WAL file(s) (10s behind home) and 1 backup(s)"),
            "{}",
            fresh.why
        );

        c.copies = vec![copy(vec![seg(2, 0), seg(3, 0), seg(4, 0)], &["b0"])];
        let caught_up = super::copy(&d, &c, now).unwrap();
        assert!(!caught_up.due, "{caught_up:?}");

        c.copies[0].content = Err("connection refused".into());
        let unreadable = super::copy(&d, &c, now).unwrap();
        assert!(unreadable.due && unreadable.overdue, "{unreadable:?}");

        // No region-loss drill in any copy yet: due; the plan without copies owes none.
        let region = region_drill(&d, &c, now).unwrap();
        assert!(region.due && region.overdue);
        assert!(super::copy(&desired(""), &c, now).is_none());
    }
}
