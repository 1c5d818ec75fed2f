//! What `pgdr expire` lets go: which base backups and WAL `base_backups.keep`
//! allows to delete, decided by a pure function from the catalogue and a
//! listing (`execute::expire` deletes them).
//!
//! The rules: keep the newest `keep` complete backups (never fewer than one);
//! delete the older ones, and only the WAL every kept backup can do without:
//! segments (and `.partial` / `.backup` files) before the oldest kept backup's
//! first segment. Timeline history files are tiny and needed to follow
//! timelines, so they stay. With no complete backup, nothing is deleted.
//!
//! Expiry never outruns the proof: the backup the newest passed drill restored
//! is kept whatever `keep` says, with the WAL from its start, so the archive
//! can always do again what a drill showed it can do (see docs/guides/drills.md,
//! "Expiry never outruns the proof").

use crate::format::layout::wal_name_of;
use crate::state::archive::BackupEntry;
use crate::state::wal::{WalKind, WalName};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpirePlan {
    /// Backup ids to delete, oldest first.
    pub backups: Vec<String>,
    /// Backup ids kept.
    pub kept: Vec<String>,
    /// WAL object names (relative to `wal/`) to delete.
    pub wal: Vec<String>,
    /// The first segment every kept backup still needs, if any backup is kept.
    pub wal_needed_from: Option<String>,
    /// A backup beyond `keep` that is kept because the newest passed drill restored it.
    pub protected: Option<String>,
    /// Backups beyond `keep` kept because a kept diff or incr needs them
    /// (its parent, its parent's parent, down to the full).
    pub parents: Vec<String>,
}

/// `backups` oldest first; `wal_objects` are object names under `wal/`;
/// `drilled` the backup the newest passed drill restored.
pub fn decide(
    backups: &[BackupEntry],
    keep: usize,
    wal_objects: &[String],
    drilled: Option<&str>,
) -> ExpirePlan {
    let split = backups.len().saturating_sub(keep.max(1));
    let newest: Vec<&str> = backups[split..].iter().map(|b| b.id.as_str()).collect();
    decide_keeping(backups, &newest, wal_objects, drilled)
}

/// As [`decide`], keeping the backups `wanted` names (and what the newest
/// passed drill restored, and every parent a kept one needs) instead of the
/// newest `keep`: a copy of the archive keeps what home keeps. With none of
/// `wanted` present, nothing is deleted.
pub fn decide_keeping(
    backups: &[BackupEntry],
    wanted: &[&str],
    wal_objects: &[String],
    drilled: Option<&str>,
) -> ExpirePlan {
    let is_wanted = |b: &&BackupEntry| wanted.contains(&b.id.as_str());
    if !backups.iter().any(|b| is_wanted(&b)) {
        return ExpirePlan::default();
    }
    let expired: Vec<&BackupEntry> = backups.iter().filter(|b| !is_wanted(b)).collect();
    let protected = drilled.filter(|id| expired.iter().any(|b| b.id == *id));
    let kept: Vec<&BackupEntry> = backups
        .iter()
        .filter(|b| is_wanted(b) || Some(b.id.as_str()) == protected)
        .collect();
    let mut kept = kept;
    // A kept diff or incr is restored through its parents: they stay.
    let mut parents: Vec<String> = Vec::new();
    for b in kept.clone() {
        let mut at = b;
        while let Some(parent) = at.parent.as_deref() {
            let Some(found) = backups.iter().find(|p| p.id == parent) else {
                break;
            };
            if !kept.iter().any(|k| k.id == found.id) {
                kept.push(found);
                parents.push(found.id.clone());
            }
            at = found;
        }
    }
    parents.sort();
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    let expired: Vec<&BackupEntry> = expired
        .into_iter()
        .filter(|b| Some(b.id.as_str()) != protected && !parents.contains(&b.id))
        .collect();
    let protected = protected.map(str::to_string);
    let oldest = kept[0];
    let segment_size = oldest.wal_segment_size;
    let Some(first) = WalName::parse(&oldest.start_wal) else {
        // A catalogue entry pgdr cannot read the WAL position of: keep all WAL.
        return ExpirePlan {
            backups: expired.iter().map(|b| b.id.clone()).collect(),
            kept: kept.iter().map(|b| b.id.clone()).collect(),
            wal: Vec::new(),
            wal_needed_from: None,
            protected,
            parents,
        };
    };
    let first_needed = first.segno(segment_size);
    let wal = wal_objects
        .iter()
        .filter(|object| {
            WalName::parse(wal_name_of(object))
                .is_some_and(|w| w.kind != WalKind::History && w.segno(segment_size) < first_needed)
        })
        .cloned()
        .collect();
    ExpirePlan {
        backups: expired.iter().map(|b| b.id.clone()).collect(),
        kept: kept.iter().map(|b| b.id.clone()).collect(),
        wal,
        wal_needed_from: Some(oldest.start_wal.clone()),
        protected,
        parents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, start_wal: &str) -> BackupEntry {
        BackupEntry::sample(id, start_wal)
    }

    #[test]
    fn a_kept_incremental_keeps_its_parents_down_to_the_full() {
        use crate::state::archive::BackupType;
        let mut backups = vec![
            entry("20260101T000000Z", "000000010000000000000002"),
            entry("20260102T000000Z", "000000010000000000000005"),
            entry("20260103T000000Z", "000000010000000000000007"),
            entry("20260104T000000Z", "000000010000000000000009"),
        ];
        // full, incr of it, diff of it, incr of the diff.
        for (i, parent, kind) in [
            (1, "20260101T000000Z", BackupType::Incr),
            (2, "20260101T000000Z", BackupType::Diff),
            (3, "20260103T000000Z", BackupType::Incr),
        ] {
            backups[i].parent = Some(parent.into());
            backups[i].backup_type = kind;
        }
        let plan = decide(&backups, 1, &[], None);
        assert_eq!(plan.backups, ["20260102T000000Z"]);
        assert_eq!(
            plan.kept,
            ["20260101T000000Z", "20260103T000000Z", "20260104T000000Z"]
        );
        assert_eq!(plan.parents, ["20260101T000000Z", "20260103T000000Z"]);
        assert_eq!(
            plan.wal_needed_from.as_deref(),
            Some("000000010000000000000002")
        );
    }

    #[test]
    fn keeps_the_newest_and_only_the_wal_they_need() {
        let backups = [
            entry("20260101T000000Z", "000000010000000000000002"),
            entry("20260102T000000Z", "000000010000000000000005"),
            entry("20260103T000000Z", "000000020000000000000009"),
        ];
        let wal: Vec<String> = [
            "000000010000000000000001.zst",
            "000000010000000000000002.00000028.backup.zst",
            "000000010000000000000004.zst",
            "000000010000000000000005.zst",
            "000000010000000000000007.partial.zst",
            "00000002.history.zst",
            "000000020000000000000007.zst",
            "000000020000000000000009.zst",
            "00000001000000010000000A.zst",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let plan = decide(&backups, 2, &wal, None);
        assert_eq!(plan.backups, ["20260101T000000Z"]);
        assert_eq!(plan.kept, ["20260102T000000Z", "20260103T000000Z"]);
        assert_eq!(
            plan.wal,
            [
                "000000010000000000000001.zst",
                "000000010000000000000002.00000028.backup.zst",
                "000000010000000000000004.zst"
            ]
        );
        assert_eq!(
            plan.wal_needed_from.as_deref(),
            Some("000000010000000000000005")
        );

        // keep 1: WAL before the newest backup goes, history stays, later WAL stays.
        let plan = decide(&backups, 1, &wal, None);
        assert_eq!(plan.backups.len(), 2);
        assert!(plan
            .wal
            .contains(&"000000020000000000000007.zst".to_string()));
        assert!(plan
            .wal
            .contains(&"000000010000000000000007.partial.zst".to_string()));
        assert!(!plan.wal.iter().any(|w| w.contains("history")));
        assert!(!plan
            .wal
            .contains(&"000000020000000000000009.zst".to_string()));
        assert!(!plan
            .wal
            .contains(&"00000001000000010000000A.zst".to_string()));

        // keep 0 is treated as 1: the newest backup is never deleted.
        assert_eq!(decide(&backups, 0, &wal, None).kept, ["20260103T000000Z"]);
        // No backup: nothing is deleted, not even WAL.
        assert_eq!(decide(&[], 2, &wal, None), ExpirePlan::default());
    }

    #[test]
    fn the_backup_the_newest_passed_drill_restored_is_never_expired() {
        let backups = [
            entry("20260101T000000Z", "000000010000000000000002"),
            entry("20260102T000000Z", "000000010000000000000005"),
            entry("20260103T000000Z", "000000010000000000000009"),
        ];
        let wal: Vec<String> = [
            "000000010000000000000001.zst",
            "000000010000000000000003.zst",
            "000000010000000000000006.zst",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let plan = decide(&backups, 1, &wal, Some("20260102T000000Z"));
        assert_eq!(plan.backups, ["20260101T000000Z"]);
        assert_eq!(plan.kept, ["20260102T000000Z", "20260103T000000Z"]);
        assert_eq!(plan.protected.as_deref(), Some("20260102T000000Z"));
        assert_eq!(
            plan.wal,
            [
                "000000010000000000000001.zst",
                "000000010000000000000003.zst"
            ]
        );
        // A drilled backup that `keep` keeps anyway needs no protection.
        assert_eq!(
            decide(&backups, 2, &wal, Some("20260102T000000Z")).protected,
            None
        );
    }
}
