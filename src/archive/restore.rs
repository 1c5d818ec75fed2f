//! `pgdr restore`: which base backup serves a recovery target, and what the
//! recovery target means. The target is read the way people under pressure
//! write it (RFC 3339, or "10 minutes ago"), and a target no backup can reach
//! is refused with the window that can be reached.

use super::unpack::{self, Unpacked};
use super::{ArchiveError, ArchiveUrl};
use crate::spec::time::rfc3339;
use crate::state::archive::BackupEntry;
use crate::state::wal::Lsn;
use aws_sdk_s3::Client;
use std::io::Write;
use std::path::{Path, PathBuf};

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
) -> Result<&'a BackupEntry, String> {
    let oldest = backups.first().ok_or_else(|| {
        "the archive has no complete base backup to restore; take one with `pgdr backup`"
            .to_string()
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
        Target::Lsn(l) => Lsn::parse(&b.stop_lsn).is_some_and(|stop| stop <= *l),
    };
    if let Some(id) = named {
        let backup = backups.iter().find(|b| b.id == id).ok_or_else(|| {
            let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
            format!(
                "there is no complete backup {id}; the archive has {}",
                ids.join(", ")
            )
        })?;
        if !reaches(backup) {
            return Err(format!(
                "backup {id} ended at {} ({}), after the target: recovery cannot stop before a backup is consistent; {}",
                backup.stop_time,
                backup.stop_lsn,
                window()
            ));
        }
        return Ok(backup);
    }
    backups.iter().rev().find(|b| reaches(b)).ok_or_else(|| {
        let what = match target {
            Target::Time(t) => format!("the target time {}", rfc3339(*t)),
            Target::Lsn(l) => format!("the target LSN {l}"),
            Target::Latest => "the target".into(),
        };
        format!("{what} is before every backup ended; {}", window())
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
    damaged: &[crate::state::archive::WalDamage],
    backup: &BackupEntry,
) -> Result<Reach, String> {
    use crate::state::archive::WalDamageKind;
    use crate::state::wal::{WalKind, WalName};
    let size = backup.wal_segment_size;
    let first = WalName::parse(&backup.start_wal)
        .ok_or_else(|| format!("backup {}: start_wal is not a segment name", backup.id))?;
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
        return Err(format!(
            "backup {}: its first WAL segment {} is not in the archive{}, so it cannot be restored",
            backup.id,
            backup.start_wal,
            bad.get(backup.start_wal.as_str())
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        ));
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
        let segment = crate::state::wal::segment_name(tli, last_segno + 1, size);
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
        end_lsn: Lsn((last_segno + 1) * size),
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
) -> Result<(Target, Option<String>), String> {
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
    Err(format!(
        "{asked} cannot be reached: segment {} {}, and WAL up to {} is archived after it, so recovery would stop at {point} and promote without the rest. Recover to that point and accept the loss with --accept-loss, or stop before it with --target-lsn (below {}) or --target-time (up to {}); or first put the segment back (it may still be in the primary's pg_wal)",
        gap.segment,
        gap.why,
        gap.newest,
        reach.end_lsn,
        rfc3339(reach.last_at)
    ))
}

/// The backup a restore uses and the WAL it can replay.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub backup: BackupEntry,
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

/// Reads the catalogue and the WAL after the newest backup, and picks the
/// backup for `target`; refuses a target outside the recoverable window, or
/// past a gap in the archive unless `accept_loss`.
pub async fn choose_in_archive(
    client: &Client,
    url: &ArchiveUrl,
    target: &Target,
    named: Option<&str>,
    now: i64,
    accept_loss: bool,
) -> Result<Chosen, ArchiveError> {
    let (backups, _, _) = super::catalog::read(client, url).await?;
    let newest = backups.last().ok_or_else(|| {
        ArchiveError::Usage(format!(
            "{url} has no complete base backup to restore; take one with `pgdr backup`"
        ))
    })?;
    let prefix = url.wal_prefix();
    let mut listing = super::catalog::wal_objects_from(client, url, &newest.start_wal).await?;
    let segment = |o: &&crate::providers::s3::objects::Listed| {
        let name = super::catalog::wal_name_of(&o.key[prefix.len()..]);
        crate::state::wal::WalName::parse(name)
            .is_some_and(|w| w.kind == crate::state::wal::WalKind::Segment)
    };
    let newest_wal = listing
        .objects
        .iter()
        .filter(segment)
        .max_by(|a, b| a.key.cmp(&b.key))
        .cloned()
        .ok_or_else(|| {
            ArchiveError::Corrupt(format!(
                "no WAL is archived from the newest backup's first segment {} on",
                newest.start_wal
            ))
        })?;
    let newest_name = super::catalog::wal_name_of(&newest_wal.key[prefix.len()..]).to_string();
    let window_end = format!(
        "{newest_name} (archived {})",
        rfc3339(newest_wal.modified_unix)
    );
    if let Target::Time(t) = target {
        let oldest = &backups[0];
        let window = format!(
            "the recoverable window is {} (the end of the oldest backup, {}) to {window_end}",
            oldest.stop_time, oldest.id
        );
        if *t > now {
            return Err(ArchiveError::Usage(format!(
                "the target time {} is in the future; {window}",
                rfc3339(*t)
            )));
        }
        if *t > newest_wal.modified_unix {
            return Err(ArchiveError::Usage(format!(
                "the target time {} is after the newest archived WAL, so recovery would end before reaching it; {window}. Use --latest to recover everything archived",
                rfc3339(*t)
            )));
        }
    }
    let backup = choose(&backups, target, named, &window_end)
        .map_err(ArchiveError::Usage)?
        .clone();
    if backup.id != newest.id {
        // An older backup replays the WAL before the newest's too.
        listing = super::catalog::wal_objects_from(client, url, &backup.start_wal).await?;
    }
    let archived: Vec<(String, i64)> = listing
        .objects
        .iter()
        .map(|o| {
            (
                super::catalog::wal_name_of(&o.key[prefix.len()..]).to_string(),
                o.modified_unix,
            )
        })
        .collect();
    let reach = reach(&archived, &listing.damaged, &backup).map_err(ArchiveError::Corrupt)?;
    let (target, accepted_loss) =
        judge_reach(target, &reach, accept_loss).map_err(ArchiveError::Usage)?;
    let segments = match (
        crate::state::wal::WalName::parse(&backup.start_wal),
        crate::state::wal::WalName::parse(&reach.last),
    ) {
        (Some(first), Some(last)) => (last.segno(backup.wal_segment_size) + 1)
            .saturating_sub(first.segno(backup.wal_segment_size)),
        _ => 0,
    };
    Ok(Chosen {
        backup,
        target,
        newest_wal: newest_name,
        newest_wal_at: newest_wal.modified_unix,
        reach,
        accepted_loss,
        segments,
    })
}

/// The marker a restore in progress leaves in its folder: a folder holding it
/// is an interrupted restore, which the next restore clears and starts again.
pub const IN_PROGRESS: &str = ".pgdr-restore-in-progress";

/// What `restore` needs beyond the backup.
pub struct RestoreRequest<'a> {
    pub url: &'a ArchiveUrl,
    /// `--region` for `wal-fetch`, when not the default.
    pub region: Option<&'a str>,
    pub backup: &'a BackupEntry,
    pub target: Target,
    pub dir: &'a Path,
    /// How the restored server calls pgdr (`restore_command`).
    pub pgdr: &'a str,
    /// `wal-fetch --until`: the last segment archived without a gap when the
    /// restore was made ([`Chosen::wal_until`]).
    pub wal_until: Option<&'a str>,
    /// The loss past a gap was accepted: `wal-fetch --accept-loss`.
    pub accept_loss: bool,
    /// Extra settings for the restored server (a drill turns archiving off).
    pub extra_settings: &'a [(&'a str, String)],
    pub progress: bool,
}

/// Makes `dir` ready for a restore: created (mode 0700) when missing, cleared
/// when it holds an interrupted restore, refused when it holds anything else.
/// Returns whether an interrupted restore was cleared.
pub fn prepare_dir(dir: &Path) -> Result<bool, ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| ArchiveError::io(dir, e);
    let Some(leftovers) = check_dir(dir)? else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        return Ok(false);
    };
    for entry in &leftovers {
        let removed = if entry.is_dir() && !entry.is_symlink() {
            std::fs::remove_dir_all(entry)
        } else {
            std::fs::remove_file(entry)
        };
        removed.map_err(|e| ArchiveError::io(entry, e))?;
    }
    // PostgreSQL refuses a data directory others can read.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    Ok(!leftovers.is_empty())
}

/// Whether `dir` may be restored into, changing nothing: `None` when it does
/// not exist, else what an interrupted restore left there (empty for an empty
/// folder). A folder holding anything else is refused.
pub fn check_dir(dir: &Path) -> Result<Option<Vec<PathBuf>>, ArchiveError> {
    let io = |e| ArchiveError::io(dir, e);
    if !dir.exists() {
        return Ok(None);
    }
    if !dir.is_dir() {
        return Err(ArchiveError::Usage(format!(
            "{} is not a folder; give an empty or new folder to restore into",
            dir.display()
        )));
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    if !entries.is_empty() && !dir.join(IN_PROGRESS).is_file() {
        return Err(ArchiveError::Usage(format!(
            "{} is not empty ({} entries, e.g. {}); pgdr restores only into an empty or new folder, so nothing there is overwritten",
            dir.display(),
            entries.len(),
            entries[0].display()
        )));
    }
    Ok(Some(entries))
}

/// Who should own the restored files: the owner of `dir` if it exists, else
/// of its parent. A restore run as root into a folder the `postgres` user owns
/// leaves files that user can start; otherwise the files are the caller's.
pub fn intended_owner(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if !runs_as_root() {
        return None;
    }
    let existing = if dir.exists() {
        dir.to_path_buf()
    } else {
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    let meta = std::fs::metadata(existing).ok()?;
    (meta.uid() != 0).then(|| (meta.uid(), meta.gid()))
}

/// Whether pgdr runs as root (PostgreSQL refuses to: its files and servers go
/// to another user).
pub fn runs_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Gives everything under `dir` (and `dir`) to `owner`.
pub fn chown_tree(dir: &Path, owner: (u32, u32)) -> Result<(), ArchiveError> {
    let io = |p: &Path, e| ArchiveError::io(p, e);
    std::os::unix::fs::lchown(dir, Some(owner.0), Some(owner.1)).map_err(|e| io(dir, e))?;
    if dir.is_symlink() || !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        chown_tree(&path, owner)?;
    }
    Ok(())
}

/// A single-quoted configuration value.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The settings that make the restored folder recover to `target` from the
/// archive and then promote. Pure.
pub fn recovery_settings(request: &RestoreRequest<'_>) -> Vec<(String, String)> {
    let mut command = format!("{} wal-fetch {} %f %p", request.pgdr, request.url);
    if let Some(region) = request.region {
        command.push_str(&format!(" --region {region}"));
    }
    // What makes recovery stop (FATAL) instead of promoting when the archive
    // ends early: see `wal-fetch`'s guard (commands/wal.rs).
    if let Some(until) = request.wal_until {
        command.push_str(&format!(" --until {until}"));
    }
    if request.accept_loss {
        command.push_str(" --accept-loss");
    }
    let mut settings = vec![("restore_command".to_string(), command)];
    match &request.target {
        Target::Latest => {}
        // PostgreSQL's own timestamp form: it does not take RFC 3339's `T`/`Z`.
        Target::Time(t) => settings.push((
            "recovery_target_time".into(),
            rfc3339(*t).replace('T', " ").replace('Z', "+00"),
        )),
        Target::Lsn(l) => settings.push(("recovery_target_lsn".into(), l.to_string())),
    }
    settings.push(("recovery_target_timeline".into(), "latest".into()));
    if request.target != Target::Latest {
        settings.push(("recovery_target_action".into(), "promote".into()));
    }
    for (name, value) in request.extra_settings {
        settings.push((name.to_string(), value.clone()));
    }
    settings
}

/// Restores `request.backup` into `request.dir` and writes the recovery
/// configuration. The folder is marked in progress until the very end, and
/// PostgreSQL itself refuses to start a folder whose `global/pg_control` (the
/// stream's last file) never arrived, so an interrupted restore never looks
/// like a finished one.
pub async fn restore(
    client: &Client,
    request: &RestoreRequest<'_>,
) -> Result<Unpacked, ArchiveError> {
    if prepare_dir(request.dir)? {
        tracing::warn!(
            target: "pgdr::archive",
            dir = %request.dir.display(),
            "cleared an interrupted restore (it had {IN_PROGRESS}) and started again"
        );
    }
    let marker = request.dir.join(IN_PROGRESS);
    std::fs::write(&marker, format!("{}\n", request.backup.id))
        .map_err(|e| ArchiveError::io(&marker, e))?;
    let unpacked = unpack::unpack(
        client,
        request.url,
        request.backup,
        request.dir,
        request.progress,
    )
    .await?;
    let auto_conf = request.dir.join("postgresql.auto.conf");
    let mut text = format!(
        "\n# Recovery settings written by pgdr restore of backup {}, target {}.\n# If the archive ends early (a segment up to {} missing or failing its digest,\n# or missing while later WAL is archived, or the archive unreachable),\n# wal-fetch exits 126 and PostgreSQL stops recovery instead of promoting;\n# a time or LSN target not reached stops it too (PostgreSQL 13+).\n",
        request.backup.id,
        request.target.describe(),
        request.wal_until.unwrap_or("the newest archived")
    );
    for (name, value) in recovery_settings(request) {
        text.push_str(&format!("{name} = {}\n", quoted(&value)));
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&auto_conf)
        .map_err(|e| ArchiveError::io(&auto_conf, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| ArchiveError::io(&auto_conf, e))?;
    file.sync_all()
        .map_err(|e| ArchiveError::io(&auto_conf, e))?;
    let signal = request.dir.join("recovery.signal");
    std::fs::File::create(&signal)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io(&signal, e))?;
    std::fs::remove_file(&marker).map_err(|e| ArchiveError::io(&marker, e))?;
    // The data files are not synced one by one: a backup's control file never
    // says "shut down", so PostgreSQL syncs the whole folder when it first
    // starts, before recovery (recovery_init_sync_method).
    std::fs::File::open(request.dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::io(request.dir, e))?;
    Ok(unpacked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, stop_time: &str, stop_lsn: &str) -> BackupEntry {
        let mut b = BackupEntry::sample(id, "000000010000000000000002");
        b.stop_time = stop_time.into();
        b.stop_lsn = stop_lsn.into();
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
        let err = judge_reach(&Target::Latest, &r, false).unwrap_err();
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
        let damaged = [crate::state::archive::WalDamage {
            name: "000000010000000000000004".into(),
            what: crate::state::archive::WalDamageKind::Rewritten { versions: 2 },
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
        .unwrap_err();
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
        .unwrap_err();
        assert!(err.contains("after the target"), "{err}");
        let err = choose(&backups, &Target::Latest, Some("nope"), "x").unwrap_err();
        assert!(err.contains("20261120T000000Z, 20261122T000000Z"), "{err}");
        assert!(choose(&[], &Target::Latest, None, "x")
            .unwrap_err()
            .contains("pgdr backup"));
    }
}
