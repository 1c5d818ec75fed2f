//! The archive's health when pgdr fills it (`archive.archiver: pgdr`): is
//! there a base backup, is it recent enough, is the WAL after it unbroken, and
//! does the primary's `archive_command` feed this archive. These are problems
//! (apply cannot make a backup or bring back lost WAL), at `archive.backups`
//! and `archive.wal`. Pure: the ages come from observe, which has the clock.

use super::ClusterPlan;
use crate::spec::{Archiver, Desired};
use crate::state::archive::{ArchiveLive, WalDamageKind};
use crate::state::postgres::PgLive;
use crate::state::wal::{missing_segments, segment_name, WalKind, WalName};
use crate::state::Live;

pub fn plan_archive_health(desired: &Desired, live: &Live, plan: &mut ClusterPlan) {
    let Some(archive) = &desired.plan.archive else {
        return;
    };
    if desired.archiver() != Some(Archiver::Pgdr) {
        return;
    }
    let url = archive.url();
    if let Some(primary) = &live.primary {
        check_archive_command(desired, primary, &url, plan);
    }
    let content = match &live.archive_content {
        None => return,
        Some(Err(why)) => {
            plan.problem(
                "archive.backups",
                format!("the contents of {url} could not be read, so base backups and archived WAL were not checked: {why}"),
            );
            return;
        }
        Some(Ok(content)) => content,
    };
    let file = desired.source.display();
    let Some(newest) = content.backups.last() else {
        plan.problem(
            "archive.backups",
            format!("no base backup in {url}base/: the archived WAL cannot be restored without one; take one with `pgdr backup {file}`"),
        );
        return;
    };
    if let (Some(every), Some(age)) = (
        archive.base_backups.as_ref().map(|b| b.every),
        content.newest_age_seconds,
    ) {
        if age > every.as_secs() {
            plan.problem(
                "archive.backups",
                format!(
                    "the newest base backup, {}, finished {} ago, longer than base_backups.every ({every}); take one with `pgdr backup {file}`",
                    newest.id,
                    approximate(age)
                ),
            );
        }
    }
    if !content.incomplete.is_empty() {
        plan.notes.push(super::Note {
            cluster: plan.cluster.clone(),
            address: "archive.backups".into(),
            message: format!(
                "{} backup folder(s) without backup.json ({}): a backup running now, or one that was killed; never used for a restore, removed by the next `pgdr backup` or `pgdr expire`",
                content.incomplete.len(),
                content.incomplete.join(", ")
            ),
        });
    }
    let archived_by_postgres = live
        .primary
        .as_ref()
        .and_then(|p| p.health.archiver.as_ref())
        .and_then(|a| a.last_archived_wal.as_deref());
    let holes = wal_holes(content, archived_by_postgres);
    // A deleted segment is a hole: said once, in the hole's problem.
    let deleted_holes = content
        .wal_damaged
        .iter()
        .filter(|d| d.what == WalDamageKind::Deleted && holes.contains(&d.name))
        .count();
    check_damaged(content, &holes, &url, &file.to_string(), plan);
    if let (Some(first), Some(last)) = (holes.first(), holes.last()) {
        let range = if holes.len() == 1 {
            first.clone()
        } else {
            format!("{first} to {last}")
        };
        let deleted = if deleted_holes > 0 {
            format!(" {deleted_holes} of them were deleted behind pgdr's back (a delete marker): the archived version is still in the bucket, and deleting the marker (`aws s3api delete-object --version-id`) brings it back.")
        } else {
            String::new()
        };
        plan.problem(
            "archive.wal",
            format!(
                "{} WAL segment(s) missing from {url}wal/ after the newest base backup {} ({range}): a restore from it stops before {first}.{deleted} Find what removed them or sent them elsewhere (a lifecycle rule, another archive_command), then take a new base backup with `pgdr backup {file}`",
                holes.len(),
                newest.id,
            ),
        );
    }
}

/// WAL objects changed after pgdr archived them (it writes each key once):
/// `wal-fetch` refuses a rewritten one and a deleted one is gone, so a
/// restore would stop there; said now rather than found at restore time.
fn check_damaged(
    content: &ArchiveLive,
    holes: &[String],
    url: &str,
    file: &str,
    plan: &mut ClusterPlan,
) {
    let damaged: Vec<_> = content
        .wal_damaged
        .iter()
        .filter(|d| !(d.what == WalDamageKind::Deleted && holes.contains(&d.name)))
        .collect();
    let (Some(newest), Some(first)) = (content.backups.last(), damaged.first()) else {
        return;
    };
    let shown: Vec<String> = damaged.iter().take(5).map(|d| d.to_string()).collect();
    let more = damaged.len().saturating_sub(shown.len());
    plan.problem(
        "archive.wal",
        format!(
            "{} WAL object(s) in {url}wal/ after the newest base backup {} changed after they were archived: {}{}. pgdr stores each WAL file once, so something else wrote there; wal-fetch refuses bytes that fail the digest archived with them, so a restore stops before {}. Find the writer (CloudTrail, the bucket's access logs), put the archived version back (`aws s3api list-object-versions --bucket ... --prefix ...`), then take a new base backup with `pgdr backup {file}`",
            damaged.len(),
            newest.id,
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
            first.name,
        ),
    );
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
fn check_archive_command(desired: &Desired, primary: &PgLive, url: &str, plan: &mut ClusterPlan) {
    let (Some(wanted), Some(live)) = (
        desired.pgdr_archive_command(),
        primary.settings.get("archive_command"),
    ) else {
        return;
    };
    if primary.in_recovery || live.setting == wanted {
        return;
    }
    // The live command is not quoted: someone else's may carry a credential.
    let what = if live.setting.is_empty() {
        "empty".to_string()
    } else {
        "another tool's".to_string()
    };
    plan.problem(
        "archive.wal",
        format!(
            "the primary's archive_command is {what}, not pgdr's wal-push, so its WAL does not reach {url}wal/ (archiver: pgdr); apply sets it (the change to postgres.primary.settings.archive_command)"
        ),
    );
}

/// `26h` → `1d 2h`: an age as people read it.
pub(super) fn approximate(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
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

    #[test]
    fn ages_read_as_people_read_them() {
        assert_eq!(approximate(59), "0m");
        assert_eq!(approximate(3_660), "1h 1m");
        assert_eq!(approximate(93_784), "1d 2h");
    }
}
