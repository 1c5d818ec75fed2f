//! The archive's health when pgdr fills it (`archive.archiver: pgdr`): is
//! there a base backup, is it recent enough, is the WAL after it unbroken and
//! as archived, and does the primary's `archive_command` feed this archive.
//! Apply cannot make a backup or bring back lost WAL: in `plan` these are
//! problems, at `archive.backups` and `archive.wal`.

use super::{approximate, Finding, Kind};
use crate::spec::{Archiver, Desired};
use crate::state::archive::{chain, ArchiveLive, BackupType, WalDamageKind};
use crate::state::postgres::PgLive;
use crate::state::wal::{missing_segments, segment_name, WalKind, WalName};
use crate::state::Live;

/// Ages are the ones observed when the archive was read
/// ([`ArchiveLive::newest_age_seconds`]).
pub fn findings(desired: &Desired, live: &Live) -> Vec<Finding> {
    let mut found = Vec::new();
    let Some(archive) = &desired.plan.archive else {
        return found;
    };
    if desired.archiver() != Some(Archiver::Pgdr) {
        return found;
    }
    let url = archive.url();
    if let Some(primary) = &live.primary {
        found.extend(archive_command(desired, primary, &url));
    }
    let content = match &live.archive_content {
        None => return found,
        Some(Err(why)) => {
            found.push(Finding::new(
                "archive.backups",
                Kind::ArchiveUnreadable {
                    url,
                    why: why.clone(),
                },
            ));
            return found;
        }
        Some(Ok(content)) => content,
    };
    let file = desired.source.display().to_string();
    let Some(newest) = content.backups.last() else {
        found.push(Finding::new(
            "archive.backups",
            Kind::NoBackup { url, file },
        ));
        return found;
    };
    if let (Some(every), Some(age)) = (
        archive.base_backups.as_ref().map(|b| b.every),
        content.newest_age_seconds,
    ) {
        if age > every.as_secs() {
            found.push(Finding::new(
                "archive.backups",
                Kind::BackupTooOld {
                    id: newest.id.clone(),
                    age_seconds: age,
                    every,
                    file: file.clone(),
                },
            ));
        }
    }
    found.extend(chain_findings(archive, content, &file));
    if !content.incomplete.is_empty() {
        found.push(Finding::new(
            "archive.backups",
            Kind::IncompleteBackups {
                ids: content.incomplete.clone(),
            },
        ));
    }
    let archived_by_postgres = live
        .primary
        .as_ref()
        .and_then(|p| p.health.archiver.as_ref())
        .and_then(|a| a.last_archived_wal.as_deref());
    let holes = wal_holes(content, archived_by_postgres);
    // A deleted segment is a hole: said once, as a hole.
    let damaged: Vec<_> = content
        .wal_damaged
        .iter()
        .filter(|d| !(d.what == WalDamageKind::Deleted && holes.contains(&d.name)))
        .cloned()
        .collect();
    if !damaged.is_empty() {
        found.push(Finding::new(
            "archive.wal",
            Kind::WalDamaged {
                url: url.clone(),
                newest_backup: newest.id.clone(),
                damaged,
                file: file.clone(),
            },
        ));
    }
    if !holes.is_empty() {
        let deleted = content
            .wal_damaged
            .iter()
            .filter(|d| d.what == WalDamageKind::Deleted && holes.contains(&d.name))
            .count();
        found.push(Finding::new(
            "archive.wal",
            Kind::WalHoles {
                url,
                newest_backup: newest.id.clone(),
                holes,
                deleted,
                file,
            },
        ));
    }
    found
}

/// Chains: every diff and incr restorable through its parents, and a full
/// within `base_backups.full_every` when the plan sets it.
fn chain_findings(
    archive: &crate::spec::Archive,
    content: &ArchiveLive,
    file: &str,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let broken: Vec<String> = content
        .backups
        .iter()
        .filter_map(|b| chain(&content.backups, b).err())
        .collect();
    if !broken.is_empty() {
        found.push(Finding::new(
            "archive.backups",
            Kind::BrokenChains { broken },
        ));
    }
    let full_every = archive.base_backups.as_ref().and_then(|b| b.full_every);
    if let (Some(full_every), Some(now)) = (full_every, content.observed_at_unix) {
        let newest_full = content
            .backups
            .iter()
            .rev()
            .find(|b| b.backup_type == BackupType::Full);
        let age = newest_full.map_or(u64::MAX, |b| (now - b.stop_time.secs()).max(0) as u64);
        if age > full_every.as_secs() {
            found.push(Finding::new(
                "archive.backups",
                Kind::FullTooOld {
                    id: newest_full.map(|b| b.id.clone()),
                    age_seconds: age,
                    full_every,
                    file: file.to_string(),
                },
            ));
        }
    }
    found
}

/// The segments after the newest backup's start that are missing although
/// something later is archived, PostgreSQL reports them archived, or the
/// backup needs them (`backup` saw them archived before it recorded the
/// backup). Segments after all of those are still waiting in `pg_wal`
/// (PostgreSQL retries them), not lost.
pub fn wal_holes(content: &ArchiveLive, archived_by_postgres: Option<&str>) -> Vec<String> {
    let Some(newest) = content.backups.last() else {
        return Vec::new();
    };
    let segment_size = newest.wal_segment_size;
    let known = content
        .wal_since_newest
        .iter()
        .map(String::as_str)
        .chain(archived_by_postgres)
        .chain([newest.stop_wal.as_str()])
        .filter_map(WalName::parse)
        .filter(|w| matches!(w.kind, WalKind::Segment | WalKind::Partial));
    let Some(end) = known.max_by_key(|w| (w.segno(segment_size), w.timeline)) else {
        return Vec::new();
    };
    let stop = segment_name(end.timeline, end.segno(segment_size), segment_size);
    missing_segments(
        &content.wal_since_newest,
        &newest.start_wal,
        &stop,
        segment_size,
    )
}

/// With `archiver: pgdr`, WAL reaches the archive only through pgdr's command.
fn archive_command(desired: &Desired, primary: &PgLive, url: &str) -> Option<Finding> {
    let wanted = desired.pgdr_archive_command()?;
    let live = primary.settings.get("archive_command")?;
    if primary.in_recovery || live.setting == wanted {
        return None;
    }
    Some(Finding::new(
        "archive.wal",
        Kind::ArchiveCommandNotPgdr {
            url: url.to_string(),
            empty: live.setting.is_empty(),
        },
    ))
}

/// `plan`'s text: `(is a note, text)`.
pub(super) fn plan_entry(kind: &Kind) -> Option<(bool, String)> {
    let text = match kind {
        Kind::ArchiveUnreadable { url, why } => format!("the contents of {url} could not be read, so base backups and archived WAL were not checked: {why}"),
        // The live command is not quoted: someone else's may carry a credential.
        Kind::ArchiveCommandNotPgdr { url, empty } => format!(
            "the primary's archive_command is {}, not pgdr's wal-push, so its WAL does not reach {url}wal/ (archiver: pgdr); apply sets it (the change to postgres.primary.settings.archive_command)",
            if *empty { "empty" } else { "another tool's" }
        ),
        Kind::NoBackup { url, file } => format!("no base backup in {url}base/: the archived WAL cannot be restored without one; take one with `pgdr backup {file}`"),
        Kind::BackupTooOld { id, age_seconds, every, file } => format!(
            "the newest base backup, {id}, finished {} ago, longer than base_backups.every ({every}); take one with `pgdr backup {file}`",
            approximate(*age_seconds)
        ),
        Kind::FullTooOld { id: Some(id), age_seconds, full_every, file } => format!(
            "the newest full base backup, {id}, finished {} ago, longer than base_backups.full_every ({full_every}): every incremental since adds to the chain a restore reads; take one with `pgdr backup {file} --type full` (or let `pgdr backup` without --type choose it)",
            approximate(*age_seconds)
        ),
        Kind::FullTooOld { id: None, full_every, file, .. } => format!(
            "no full base backup in the archive although base_backups.full_every is {full_every}; take one with `pgdr backup {file} --type full`"
        ),
        Kind::BrokenChains { broken } => format!(
            "{} backup(s) cannot be restored, their chain is broken: {}. Take a new full backup; `pgdr expire` never deletes a parent a kept backup needs, so something else removed it",
            broken.len(),
            broken.join("; ")
        ),
        Kind::IncompleteBackups { ids } => return Some((true, format!(
            "{} backup folder(s) without backup.json ({}): a backup running now, or one that was killed; never used for a restore, removed by the next `pgdr backup` or `pgdr expire`",
            ids.len(),
            ids.join(", ")
        ))),
        // wal-fetch refuses a rewritten object and a deleted one is gone, so
        // a restore would stop there: said now rather than found at restore time.
        Kind::WalDamaged { url, newest_backup, damaged, file } => {
            let shown: Vec<String> = damaged.iter().take(5).map(|d| d.to_string()).collect();
            let more = damaged.len().saturating_sub(shown.len());
            format!(
                "{} WAL object(s) in {url}wal/ after the newest base backup {newest_backup} changed after they were archived: {}{}. pgdr stores each WAL file once, so something else wrote there; wal-fetch refuses bytes that fail the digest archived with them, so a restore stops before {}. Find the writer (CloudTrail, the bucket's access logs), put the archived version back (`aws s3api list-object-versions --bucket ... --prefix ...`), then take a new base backup with `pgdr backup {file}`",
                damaged.len(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() },
                damaged[0].name,
            )
        }
        Kind::WalHoles { url, newest_backup, holes, deleted, file } => {
            let first = &holes[0];
            let range = if holes.len() == 1 {
                first.clone()
            } else {
                format!("{first} to {}", holes[holes.len() - 1])
            };
            let deleted = if *deleted > 0 {
                format!(" {deleted} of them were deleted behind pgdr's back (a delete marker): the archived version is still in the bucket, and deleting the marker (`aws s3api delete-object --version-id`) brings it back.")
            } else {
                String::new()
            };
            format!(
                "{} WAL segment(s) missing from {url}wal/ after the newest base backup {newest_backup} ({range}): a restore from it stops before {first}.{deleted} Find what removed them or sent them elsewhere (a lifecycle rule, another archive_command), then take a new base backup with `pgdr backup {file}`",
                holes.len(),
            )
        }
        _ => return None,
    };
    Some((false, text))
}

/// `status`'s line. An `archive_command` that is not pgdr's is drift apply
/// corrects (a change in `plan`), not a figure of the on-call view.
pub(super) fn beyond(kind: &Kind) -> Option<String> {
    Some(match kind {
        Kind::ArchiveUnreadable { why, .. } => format!(
            "the archive's contents could not be read, so no backup or WAL in it is counted: {}",
            why.lines().next().unwrap_or_default()
        ),
        Kind::NoBackup { .. } => "no base backup in the archive".to_string(),
        Kind::BackupTooOld { every, .. } => {
            format!("the newest backup is older than base_backups.every ({every})")
        }
        Kind::FullTooOld { full_every, .. } => {
            format!("the newest full backup is older than base_backups.full_every ({full_every})")
        }
        Kind::BrokenChains { broken } => format!("{} backup(s) with a broken chain: {}", broken.len(), broken[0]),
        Kind::WalDamaged { damaged, .. } => format!(
            "{} WAL object(s) changed after they were archived ({}{}): a restore stops before {}",
            damaged.len(),
            damaged[0],
            if damaged.len() > 1 { ", ..." } else { "" },
            damaged[0].name
        ),
        Kind::WalHoles { holes, .. } => format!(
            "WAL segment {} is missing from the archive: a restore from the newest backup stops before it",
            holes[0]
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::archive::BackupEntry;

    fn content(wal: &[&str]) -> ArchiveLive {
        ArchiveLive {
            backups: vec![BackupEntry::sample(
                "20261124T101500Z",
                "000000010000000000000004",
            )],
            incomplete: vec![],
            wal_since_newest: wal.iter().map(|s| s.to_string()).collect(),
            newest_age_seconds: Some(60),
            ..ArchiveLive::default()
        }
    }

    #[test]
    fn a_hole_is_missing_wal_with_later_wal_archived() {
        let c = content(&[
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000008",
        ]);
        assert_eq!(
            wal_holes(&c, None),
            ["000000010000000000000006", "000000010000000000000007"]
        );
    }

    #[test]
    fn wal_not_yet_archived_is_not_a_hole_unless_postgres_says_it_was() {
        let c = content(&["000000010000000000000004", "000000010000000000000005"]);
        assert!(wal_holes(&c, None).is_empty());
        assert!(wal_holes(&c, Some("000000010000000000000005")).is_empty());
        // PostgreSQL archived 6 and 7 (elsewhere, or since removed): they are lost to this archive.
        assert_eq!(
            wal_holes(&c, Some("000000010000000000000007")),
            ["000000010000000000000006", "000000010000000000000007"]
        );
        // A .backup or .history file name says nothing about segments.
        assert!(wal_holes(&c, Some("00000002.history")).is_empty());
        // The backup's own WAL is a hole as soon as it is gone.
        let c = content(&["000000010000000000000005"]);
        assert_eq!(wal_holes(&c, None), ["000000010000000000000004"]);
        assert_eq!(wal_holes(&content(&[]), None), ["000000010000000000000004"]);
    }

    #[test]
    fn wal_continuing_on_a_new_timeline_is_not_a_hole() {
        let c = content(&[
            "000000010000000000000004",
            "000000010000000000000005.partial",
            "00000002.history",
            "000000020000000000000005",
            "000000020000000000000006",
        ]);
        assert!(wal_holes(&c, None).is_empty());
    }
}
