//! Which base backup serves a recovery target, how far the archive takes
//! recovery from it (the first gap or damaged object after it), and whether
//! the target can be reached: the decisions `restore` and `drill` make
//! before anything is written. A target no backup can reach is refused with
//! the window that can be reached; a target past a gap is refused with the
//! reachable point and how to ask for it. Pure: the caller lists the archive.

use crate::spec::time::rfc3339;
use crate::state::archive::{BackupEntry, WalDamage, WalDamageKind};
use crate::state::wal::{segment_name, Lsn, WalKind, WalName};

/// Where recovery should stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Replay every archived WAL file.
    Latest,
    /// Stop before the first commit after this time (seconds since the epoch, UTC).
    Time(i64),
    /// Stop at this WAL position.
    Lsn(Lsn),
}

/// The backup to restore for `target`: the one named, or the newest that was
/// complete (consistent) before the target. `backups` oldest first;
/// `newest_wal` names the end of the recoverable window in messages.
pub fn choose<'a>(
    backups: &'a [BackupEntry],
    target: &Target,
    named: Option<&str>,
    newest_wal: &str,
) -> Result<&'a BackupEntry, RestoreRefusal> {
    let oldest = backups.first().ok_or_else(|| {
        RestoreRefusal::OutsideWindow(
            "the archive has no complete base backup to restore; take one with `pgdr backup`"
                .to_string(),
        )
    })?;
    let window = || {
        format!(
            "the recoverable window is {} (the end of the oldest backup, {}) to {newest_wal}",
            oldest.stop_time, oldest.id
        )
    };
    let reaches = |b: &BackupEntry| match target {
        Target::Latest => true,
        Target::Time(t) => b.stop_secs().is_some_and(|stop| stop <= *t),
        Target::Lsn(l) => b.stop_lsn <= *l,
    };
    if let Some(id) = named {
        let backup = backups.iter().find(|b| b.id == id).ok_or_else(|| {
            let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
            RestoreRefusal::OutsideWindow(format!(
                "there is no complete backup {id}; the archive has {}",
                ids.join(", ")
            ))
        })?;
        if !reaches(backup) {
            return Err(RestoreRefusal::OutsideWindow(format!(
                "backup {id} ended at {} ({}), after the target: recovery cannot stop before a backup is consistent; {}",
                backup.stop_time,
                backup.stop_lsn,
                window()
            )));
        }
        return Ok(backup);
    }
    backups.iter().rev().find(|b| reaches(b)).ok_or_else(|| {
        let what = match target {
            Target::Time(t) => format!("the target time {}", rfc3339(*t)),
            Target::Lsn(l) => format!("the target LSN {l}"),
            Target::Latest => "the target".into(),
        };
        RestoreRefusal::OutsideWindow(format!("{what} is before every backup ended; {}", window()))
    })
}

impl Target {
    /// As the drill report and messages show it: `latest`, an RFC 3339 time, an LSN.
    pub fn describe(&self) -> String {
        match self {
            Target::Latest => "latest".into(),
            Target::Time(t) => rfc3339(*t),
            Target::Lsn(l) => l.to_string(),
        }
    }
}

/// How far recovery from a backup can get through the archive: the segments
/// from its first on, without a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach {
    /// The last segment of the run without a gap, and when it was archived
    /// (seconds since the epoch).
    pub last: String,
    pub last_at: i64,
    /// The end of `last`: recovery can never replay past this position.
    pub end_lsn: Lsn,
    /// The first segment missing, rewritten or deleted that has WAL archived
    /// after it (a gap recovery cannot cross); `None` when the run reaches
    /// the newest archived segment.
    pub gap: Option<Gap>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub segment: String,
    /// "is missing", "was rewritten (2 versions)", "was deleted".
    pub why: String,
    /// The newest segment archived after the gap: what recovery never reaches.
    pub newest: String,
}

/// [`Reach`] of `backup` through the archived WAL (`(name, archived at)`,
/// any order) minus the objects known damaged. A segment counts on any
/// timeline from the backup's on (after a promotion the same segment number
/// continues on the next). Pure.
pub fn reach(
    archived: &[(String, i64)],
    damaged: &[WalDamage],
    backup: &BackupEntry,
) -> Result<Reach, RestoreRefusal> {
    let size = backup.wal_segment_size;
    let first = WalName::parse(&backup.start_wal).ok_or_else(|| {
        RestoreRefusal::Damaged(format!(
            "backup {}: start_wal is not a segment name",
            backup.id
        ))
    })?;
    let bad: std::collections::HashMap<&str, String> = damaged
        .iter()
        .map(|d| {
            let why = match d.what {
                WalDamageKind::Rewritten { versions } => {
                    format!("was rewritten after it was archived ({versions} versions)")
                }
                WalDamageKind::Deleted => "was deleted (a delete marker)".to_string(),
            };
            (d.name.as_str(), why)
        })
        .collect();
    // segno → (name, archived at), the newest timeline's where several.
    let mut have: std::collections::BTreeMap<u64, (u32, String, i64)> = Default::default();
    for (name, at) in archived {
        let Some(w) = WalName::parse(name) else {
            continue;
        };
        if w.kind != WalKind::Segment
            || w.timeline < backup.timeline
            || bad.contains_key(name.as_str())
        {
            continue;
        }
        let segno = w.segno(size);
        if have.get(&segno).is_none_or(|(tli, _, _)| *tli < w.timeline) {
            have.insert(segno, (w.timeline, name.clone(), *at));
        }
    }
    let start = first.segno(size);
    let Some((_, first_name, first_at)) = have.get(&start).cloned() else {
        return Err(RestoreRefusal::Damaged(format!(
            "backup {}: its first WAL segment {} is not in the archive{}, so it cannot be restored",
            backup.id,
            backup.start_wal,
            bad.get(backup.start_wal.as_str())
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        )));
    };
    let (mut last_segno, mut last, mut last_at) = (start, first_name, first_at);
    while let Some((_, name, at)) = have.get(&(last_segno + 1)) {
        last_segno += 1;
        last = name.clone();
        last_at = *at;
    }
    // What lies past the run: archived segments, or damaged ones (a rewritten
    // newest segment is a gap too, though nothing follows it).
    let past_damaged = damaged
        .iter()
        .filter_map(|d| WalName::parse(&d.name))
        .filter(|w| w.kind == WalKind::Segment && w.segno(size) > last_segno)
        .max_by_key(|w| w.segno(size))
        .map(|w| w.name);
    let past = have
        .range(last_segno + 1..)
        .next_back()
        .map(|(_, (_, newest, _))| newest.clone())
        .or(past_damaged);
    let gap = past.map(|newest| {
        let tli = WalName::parse(&last).map_or(backup.timeline, |w| w.timeline);
        let segment = segment_name(tli, last_segno + 1, size);
        let why = bad
            .iter()
            .find(|(name, _)| WalName::parse(name).is_some_and(|w| w.segno(size) == last_segno + 1))
            .map(|(_, why)| why.clone())
            .unwrap_or_else(|| "is missing".to_string());
        Gap {
            segment,
            why,
            newest,
        }
    });
    Ok(Reach {
        last,
        last_at,
        end_lsn: Lsn((last_segno + 1) * size.bytes()),
        gap,
    })
}

/// Whether `target` can be recovered to through `reach`: the target to
/// recover to, and (with `accept_loss` and a gap in the way) what is given up.
/// A target the gap makes unreachable is refused with the reachable point
/// and how to ask for it, never left to end early in silence. Pure.
pub fn judge_reach(
    target: &Target,
    reach: &Reach,
    accept_loss: bool,
) -> Result<(Target, Option<String>), RestoreRefusal> {
    let Some(gap) = &reach.gap else {
        return Ok((target.clone(), None));
    };
    let blocked = match target {
        Target::Latest => true,
        Target::Lsn(l) => *l >= reach.end_lsn,
        Target::Time(t) => *t > reach.last_at,
    };
    if !blocked {
        return Ok((target.clone(), None));
    }
    let point = format!(
        "LSN {} (the end of {}, archived {})",
        reach.end_lsn,
        reach.last,
        rfc3339(reach.last_at)
    );
    let loss = format!(
        "the WAL after {point} was not replayed: segment {} {} and everything archived after it, up to {}, is out of reach",
        gap.segment, gap.why, gap.newest
    );
    if accept_loss {
        return Ok((Target::Latest, Some(loss)));
    }
    let asked = match target {
        Target::Latest => "--latest".to_string(),
        other => format!("the target {}", other.describe()),
    };
    Err(RestoreRefusal::Unreachable(format!(
        "{asked} cannot be reached: segment {} {}, and WAL up to {} is archived after it, so recovery would stop at {point} and promote without the rest. Recover to that point and accept the loss with --accept-loss, or stop before it with --target-lsn (below {}) or --target-time (up to {}); or first put the segment back (it may still be in the primary's pg_wal)",
        gap.segment,
        gap.why,
        gap.newest,
        reach.end_lsn,
        rfc3339(reach.last_at)
    )))
}

/// The backup a restore uses and the WAL it can replay.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub backup: BackupEntry,
    /// What restoring `backup` needs: its full first, `backup` last.
    pub chain: Vec<BackupEntry>,
    /// The target recovery goes to: the one asked for, or (with
    /// `--accept-loss` and a gap in the way) the reachable end.
    pub target: Target,
    /// The newest archived WAL file and when it was archived (seconds since
    /// the epoch): the end of the recoverable window.
    pub newest_wal: String,
    pub newest_wal_at: i64,
    /// How far the archive takes recovery from this backup.
    pub reach: Reach,
    /// What `--accept-loss` gave up, when it did.
    pub accepted_loss: Option<String>,
    /// Segments from the backup's first to the last recovery can replay (at
    /// most what it replays).
    pub segments: u64,
}

impl Chosen {
    /// `wal-fetch`'s `--until`: every segment up to this one was archived
    /// when the restore was made, so missing it later is damage, not the end.
    pub fn wal_until(&self) -> &str {
        &self.reach.last
    }
}

/// The newest archived WAL segment in `archived` (`(name, archived at)`
/// from the newest backup's first segment on): the end of the recoverable
/// window.
pub fn newest_segment(archived: &[(String, i64)]) -> Option<(String, i64)> {
    archived
        .iter()
        .filter(|(name, _)| WalName::parse(name).is_some_and(|w| w.kind == WalKind::Segment))
        .max_by(|a, b| a.0.cmp(&b.0))
        .cloned()
}

/// The backup for `target` among `backups` (oldest first, at least one),
/// with the window checks a time target needs: not in the future, not after
/// the newest archived WAL (`newest`: its name and archive time). Pure.
pub fn choose_backup<'a>(
    backups: &'a [BackupEntry],
    newest: &(String, i64),
    target: &Target,
    named: Option<&str>,
    now: i64,
) -> Result<&'a BackupEntry, RestoreRefusal> {
    let (newest_name, newest_at) = newest;
    let window_end = format!("{newest_name} (archived {})", rfc3339(*newest_at));
    if let (Target::Time(t), Some(oldest)) = (target, backups.first()) {
        let window = format!(
            "the recoverable window is {} (the end of the oldest backup, {}) to {window_end}",
            oldest.stop_time, oldest.id
        );
        if *t > now {
            return Err(RestoreRefusal::OutsideWindow(format!(
                "the target time {} is in the future; {window}",
                rfc3339(*t)
            )));
        }
        if t > newest_at {
            return Err(RestoreRefusal::OutsideWindow(format!(
                "the target time {} is after the newest archived WAL, so recovery would end before reaching it; {window}. Use --latest to recover everything archived",
                rfc3339(*t)
            )));
        }
    }
    choose(backups, target, named, &window_end)
}

/// The restore of `backup` to `target` through the WAL archived from its
/// first segment on (`archived`, minus `damaged`): how far it reaches and
/// the target it goes to. Pure.
pub fn plan_restore(
    backup: &BackupEntry,
    chain: Vec<BackupEntry>,
    newest: (String, i64),
    archived: &[(String, i64)],
    damaged: &[WalDamage],
    target: &Target,
    accept_loss: bool,
) -> Result<Chosen, RestoreRefusal> {
    let reach = reach(archived, damaged, backup)?;
    let (target, accepted_loss) = judge_reach(target, &reach, accept_loss)?;
    let segments = match (
        WalName::parse(&backup.start_wal),
        WalName::parse(&reach.last),
    ) {
        (Some(first), Some(last)) => (last.segno(backup.wal_segment_size) + 1)
            .saturating_sub(first.segno(backup.wal_segment_size)),
        _ => 0,
    };
    Ok(Chosen {
        backup: backup.clone(),
        chain,
        target,
        newest_wal: newest.0,
        newest_wal_at: newest.1,
        reach,
        accepted_loss,
        segments,
    })
}

/// Why a restore is not planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreRefusal {
    /// No backup serves the target: none at all, the one named is missing
    /// or ends after it, or the target lies outside the recoverable window.
    #[error("{0}")]
    OutsideWindow(String),
    /// The archive cannot serve the backup at all (its first segment gone).
    #[error("{0}")]
    Damaged(String),
    /// The target lies past a gap (see [`judge_reach`]).
    #[error("{0}")]
    Unreachable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, stop_time: &str, stop_lsn: &str) -> BackupEntry {
        let mut b = BackupEntry::sample(id, "000000010000000000000002");
        b.stop_time = crate::spec::time::Timestamp::parse(stop_time).unwrap();
        b.stop_lsn = Lsn::parse(stop_lsn).unwrap();
        b
    }

    fn wal(names: &[&str]) -> Vec<(String, i64)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), 1_000 + i as i64))
            .collect()
    }

    #[test]
    fn the_reach_ends_at_the_first_gap_with_wal_after_it() {
        let b = BackupEntry::sample("20261120T000000Z", "000000010000000000000002");
        let whole = wal(&[
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000004",
        ]);
        let r = reach(&whole, &[], &b).unwrap();
        assert_eq!(r.last, "000000010000000000000004");
        assert_eq!(r.end_lsn, Lsn(5 * 16 * 1024 * 1024));
        assert!(r.gap.is_none());
        assert_eq!(
            judge_reach(&Target::Latest, &r, false),
            Ok((Target::Latest, None))
        );

        let holed = wal(&[
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000005",
            "000000010000000000000006",
        ]);
        let r = reach(&holed, &[], &b).unwrap();
        assert_eq!(r.last, "000000010000000000000003");
        assert_eq!(r.last_at, 1_001);
        let gap = r.gap.clone().unwrap();
        assert_eq!(gap.segment, "000000010000000000000004");
        assert_eq!(gap.newest, "000000010000000000000006");
        let err = judge_reach(&Target::Latest, &r, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("000000010000000000000004 is missing")
                && err.contains("LSN 0/4000000")
                && err.contains("--accept-loss")
                && err.contains("--target-lsn"),
            "{err}"
        );
        // Before the gap: allowed. At or past its start: refused.
        let before = Target::Lsn(Lsn::parse("0/3FFFF00").unwrap());
        assert_eq!(judge_reach(&before, &r, false), Ok((before.clone(), None)));
        assert!(judge_reach(&Target::Lsn(Lsn::parse("0/4000000").unwrap()), &r, false).is_err());
        assert!(judge_reach(&Target::Time(1_002), &r, false).is_err());
        assert!(judge_reach(&Target::Time(1_001), &r, false).is_ok());
        // Accepted: recovery goes to the reachable end, and the loss is said.
        let (to, loss) = judge_reach(&Target::Time(1_003), &r, true).unwrap();
        assert_eq!(to, Target::Latest);
        assert!(loss.unwrap().contains("up to 000000010000000000000006"));

        // A rewritten segment is a gap like a missing one, even the newest.
        let damaged = [WalDamage {
            name: "000000010000000000000004".into(),
            what: WalDamageKind::Rewritten { versions: 2 },
        }];
        let r = reach(&whole, &damaged, &b).unwrap();
        assert_eq!(r.last, "000000010000000000000003");
        assert!(r.gap.unwrap().why.contains("rewritten"));
        // After a promotion the numbers go on on the next timeline.
        let promoted = wal(&[
            "000000010000000000000002",
            "000000010000000000000003",
            "000000020000000000000004",
        ]);
        let r = reach(&promoted, &[], &b).unwrap();
        assert_eq!(r.last, "000000020000000000000004");
        assert!(r.gap.is_none());
        assert!(reach(&wal(&["000000010000000000000003"]), &[], &b).is_err());
    }

    #[test]
    fn the_newest_backup_complete_before_the_target_is_chosen() {
        let backups = [
            backup("20261120T000000Z", "2026-11-20T00:05:00Z", "0/5000100"),
            backup("20261122T000000Z", "2026-11-22T00:05:00Z", "0/9000100"),
        ];
        let at = |t: &str| Target::Time(crate::spec::time::parse_target(t, 0).unwrap());
        let pick = |t: &Target| choose(&backups, t, None, "x").map(|b| b.id.clone());
        assert_eq!(pick(&Target::Latest).unwrap(), "20261122T000000Z");
        assert_eq!(
            pick(&at("2026-11-21T12:00:00Z")).unwrap(),
            "20261120T000000Z"
        );
        assert_eq!(
            pick(&at("2026-11-22T00:05:00Z")).unwrap(),
            "20261122T000000Z"
        );
        assert_eq!(
            pick(&Target::Lsn(Lsn::parse("0/8000000").unwrap())).unwrap(),
            "20261120T000000Z"
        );
        let err = choose(
            &backups,
            &at("2026-11-20T00:01:00Z"),
            None,
            "000000010000000000000042 (2026-11-24T09:00:00Z)",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("2026-11-20T00:01:00Z")
                && err.contains("2026-11-20T00:05:00Z")
                && err.contains("000000010000000000000042"),
            "{err}"
        );
        // A named backup that ends after the target cannot serve it.
        let err = choose(
            &backups,
            &at("2026-11-21T12:00:00Z"),
            Some("20261122T000000Z"),
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("after the target"), "{err}");
        let err = choose(&backups, &Target::Latest, Some("nope"), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("20261120T000000Z, 20261122T000000Z"), "{err}");
        assert!(choose(&[], &Target::Latest, None, "x")
            .unwrap_err()
            .to_string()
            .contains("pgdr backup"));
    }
}
