//! The archive's copies (`archive.copies`): is each one readable and within
//! the RPO of home (address `archive.copies.<name>`), and has a region-loss
//! drill restored from one within `drill.region_every` (address
//! `drill.region`). Apply cannot copy or drill: in `plan` these are
//! problems; `pgdr copy` (or `run-due`) and `pgdr drill --from-copy` fix them.

use super::{approximate, Finding, Kind};

/// `40s` under a minute, else as [`approximate`] says it.
pub(crate) fn behind(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        approximate(seconds)
    }
}
use crate::plan::recovery::copy::{lag_of, lag_seconds, wanted};
use crate::spec::Desired;
use crate::state::archive::{ArchiveLive, CopyLag};

/// One copy as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct CopyFigure {
    /// Its name in `archive.copies`.
    pub name: String,
    pub region: String,
    /// `s3://<bucket>/<prefix>`.
    pub url: String,
    /// Why it could not be read; then the figures below are absent.
    pub error: Option<String>,
    /// WAL files home has (from its newest backup on) that the copy lacks.
    pub wal_behind: Option<usize>,
    /// How long home has held the oldest WAL file the copy lacks (0: none lacking).
    pub seconds_behind: Option<u64>,
    /// The newest WAL segment in the copy, and at home (from home's newest
    /// backup on).
    pub newest_wal: Option<String>,
    pub home_newest_wal: Option<String>,
    /// The newest complete backup in the copy, and at home.
    pub newest_backup: Option<String>,
    pub home_newest_backup: Option<String>,
    /// Complete backups at home the copy lacks.
    pub backups_behind: Option<usize>,
}

/// The home backups a copy should hold ([`wanted`]).
fn home_wanted(desired: &Desired, content: &ArchiveLive) -> Vec<String> {
    let drilled = content
        .drills
        .newest_ok
        .as_ref()
        .map(|d| d.backup_id.as_str());
    wanted(desired, &content.backups, drilled)
}

/// The copies as `status` shows them.
pub fn figures(desired: &Desired, content: &ArchiveLive) -> Vec<CopyFigure> {
    let now = content.observed_at_unix.unwrap_or(0);
    let home = home_wanted(desired, content);
    content
        .copies
        .iter()
        .map(|copy| {
            let lag = copy.content.as_ref().map(|l| lag_of(l, &home));
            CopyFigure {
                name: copy.name.clone(),
                region: copy.region.clone(),
                url: copy.url.clone(),
                error: lag.as_ref().err().map(|e| e.to_string()),
                wal_behind: lag.as_ref().ok().map(|l| l.wal_missing.len()),
                seconds_behind: lag.as_ref().ok().map(|l| lag_seconds(l, now)),
                newest_wal: lag.as_ref().ok().and_then(|l| l.newest_wal.clone()),
                home_newest_wal: lag.as_ref().ok().and_then(|l| l.home_newest_wal.clone()),
                newest_backup: lag.as_ref().ok().and_then(|l| l.newest_backup.clone()),
                home_newest_backup: home.last().cloned(),
                backups_behind: lag.as_ref().ok().map(|l| l.backups_missing.len()),
            }
        })
        .collect()
}

pub fn findings(desired: &Desired, content: &ArchiveLive) -> Vec<Finding> {
    let mut found = Vec::new();
    let file = desired.source.display().to_string();
    let rpo = desired.plan.objectives.rpo;
    let now = content.observed_at_unix.unwrap_or(0);
    let home = home_wanted(desired, content);
    for copy in &content.copies {
        let address = format!("archive.copies.{}", copy.name);
        let lag: CopyLag = match &copy.content {
            Err(why) => {
                found.push(Finding::new(
                    address,
                    Kind::CopyUnreadable {
                        name: copy.name.clone(),
                        url: copy.url.clone(),
                        why: why.clone(),
                    },
                ));
                continue;
            }
            Ok(listing) => lag_of(listing, &home),
        };
        let seconds = lag_seconds(&lag, now);
        let no_backup = lag.newest_backup.is_none() && !home.is_empty();
        if seconds > rpo.as_secs() || no_backup {
            found.push(Finding::new(
                address,
                Kind::CopyBehind {
                    name: copy.name.clone(),
                    url: copy.url.clone(),
                    segments: lag.wal_missing.len(),
                    seconds,
                    rpo,
                    no_backup,
                    file: file.clone(),
                },
            ));
        }
    }
    if let Some(every) = desired.plan.drill.as_ref().and_then(|d| d.region_every) {
        // The newest region-loss drill of any copy.
        let newest = content
            .copies
            .iter()
            .filter_map(|c| c.content.as_ref().ok())
            .filter_map(|l| Some((l.drills.newest.as_ref()?, l.drills.newest_age_seconds)))
            .max_by_key(|(d, _)| d.started_at);
        let copy_name = desired
            .plan
            .archive
            .as_ref()
            .and_then(|a| a.copies.first())
            .map_or("NAME".to_string(), |c| c.name().to_string());
        match newest {
            None => found.push(Finding::new(
                "drill.region",
                Kind::NoRegionDrill {
                    every,
                    command: format!("pgdr drill {file} --from-copy {copy_name}"),
                },
            )),
            Some((drill, age)) => {
                if age.is_some_and(|a| a > every.as_secs()) || !drill.ok {
                    found.push(Finding::new(
                        "drill.region",
                        Kind::RegionDrillStale {
                            started_at: drill.started_at,
                            age_seconds: age.unwrap_or(0),
                            every,
                            ok: drill.ok,
                            failures: drill.failures.clone(),
                            command: format!(
                                "pgdr drill {file} --from-copy {}",
                                drill.from_copy.as_deref().unwrap_or(&copy_name)
                            ),
                        },
                    ));
                }
            }
        }
    }
    found
}

/// `plan`'s text: `(is a note, text)`.
pub(super) fn plan_entry(kind: &Kind) -> Option<(bool, String)> {
    let text = match kind {
        Kind::CopyUnreadable { name, url, why } => format!(
            "the copy {name} ({url}) could not be read: {why}; while it is unreachable it holds nothing new, and a loss of the home region loses what it lacks"
        ),
        Kind::CopyBehind {
            name,
            url,
            segments,
            seconds,
            rpo,
            no_backup,
            file,
        } => {
            let mut text = if *no_backup {
                format!("the copy {name} ({url}) holds no complete backup, so nothing can be restored from it")
            } else {
                format!(
                    "the copy {name} ({url}) lacks {segments} WAL file(s) home has held for {}, more than objectives.rpo ({rpo})",
                    behind(*seconds)
                )
            };
            text.push_str(&format!(
                "; run `pgdr copy {file}` (run-due and the watcher do it){}",
                if *no_backup {
                    ""
                } else {
                    ", and check why wal-push could not store in it"
                }
            ));
            text
        }
        Kind::NoRegionDrill { every, command } => format!(
            "drill.region_every is {every} and no region-loss drill is stored in any copy: nothing shows the archive survives its region; run `{command}`"
        ),
        Kind::RegionDrillStale {
            started_at,
            age_seconds,
            every,
            ok,
            failures,
            command,
        } => {
            if *ok {
                format!(
                    "the newest region-loss drill ran {} ago ({started_at}), longer than drill.region_every ({every}); run `{command}`",
                    approximate(*age_seconds)
                )
            } else {
                format!(
                    "the newest region-loss drill ({started_at}) failed: {}; run `{command}` again once fixed",
                    failures.join("; ")
                )
            }
        }
        _ => return None,
    };
    Some((false, text))
}

/// `status`'s line.
pub(super) fn beyond(kind: &Kind) -> Option<String> {
    Some(match kind {
        Kind::CopyUnreadable { name, .. } => format!("the copy {name} cannot be read"),
        Kind::CopyBehind {
            name,
            seconds,
            rpo,
            no_backup,
            ..
        } => {
            if *no_backup {
                format!("the copy {name} holds no backup")
            } else {
                format!(
                    "the copy {name} is {} behind home, more than objectives.rpo ({rpo})",
                    behind(*seconds)
                )
            }
        }
        Kind::NoRegionDrill { .. } => "no region-loss drill yet".to_string(),
        Kind::RegionDrillStale { ok: false, .. } => "the last region-loss drill failed".to_string(),
        Kind::RegionDrillStale { every, .. } => {
            format!("the last region-loss drill is older than drill.region_every ({every})")
        }
        _ => return None,
    })
}
