//! The archive for people: the `pgdr backups` table, and what `restore` is
//! about to do and did.

use super::human::bytes;
use crate::execute::restore::unpack::Unpacked;
use crate::format::ArchiveUrl;
use crate::plan::recovery::restore::{Chosen, Target};
use crate::state::archive::BackupEntry;

pub fn backups(url: &str, backups: &[BackupEntry], incomplete: &[String]) -> String {
    if backups.is_empty() {
        let mut text = format!("No complete base backup in {url}.\n");
        if !incomplete.is_empty() {
            text.push_str(&format!(
                "{} incomplete (interrupted or running): {}\n",
                incomplete.len(),
                incomplete.join(", ")
            ));
        }
        return text;
    }
    let mut rows = vec![[
        "ID".to_string(),
        "SOURCE".into(),
        "METHOD".into(),
        "TYPE".into(),
        "PARENT".into(),
        "STOP TIME".into(),
        "START LSN".into(),
        "STOP LSN".into(),
        "TL".into(),
        "SIZE".into(),
        "STORED".into(),
        "DURATION".into(),
        "VERIFIED".into(),
    ]];
    for b in backups {
        rows.push([
            b.id.clone(),
            b.source.clone(),
            b.method.as_str().into(),
            b.backup_type.as_str().into(),
            b.parent.clone().unwrap_or_else(|| "-".into()),
            b.stop_time.to_string(),
            b.start_lsn.to_string(),
            b.stop_lsn.to_string(),
            b.timeline.to_string(),
            bytes(b.size_bytes),
            bytes(b.stored_bytes),
            format!("{:.1}s", b.duration_seconds),
            if b.verified { "yes" } else { "no" }.into(),
        ]);
    }
    let widths: Vec<usize> = (0..13)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = format!("Base backups in {url} (oldest first):\n");
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    if !incomplete.is_empty() {
        text.push_str(&format!(
            "{} incomplete (interrupted or running, never restored from): {}\n",
            incomplete.len(),
            incomplete.join(", ")
        ));
    }
    text
}

/// What `restore` is about to do: the backup, the WAL it replays, and the
/// time it should take (`estimate`).
pub fn restoring(cluster: &str, to: &std::path::Path, chosen: &Chosen, estimate: &str) -> String {
    let b = &chosen.backup;
    let replays = match &chosen.target {
        Target::Latest if chosen.reach.gap.is_some() => format!(
            "{} to {}, where a gap stops it (the newest archived is {})",
            b.start_wal, chosen.reach.last, chosen.newest_wal
        ),
        Target::Latest => format!(
            "{} to {}, the newest archived",
            b.start_wal, chosen.newest_wal
        ),
        _ => format!(
            "{} until the target (at most to {}, the newest archived)",
            b.start_wal, chosen.newest_wal
        ),
    };
    format!(
        "Restoring {cluster} to {} into {}:\n  backup  {} (ended {}, {} as stored {})\n  WAL     {replays}\n  time    {estimate}\n",
        chosen.target.describe(),
        to.display(),
        b.id,
        b.stop_time,
        bytes(b.size_bytes),
        bytes(b.stored_bytes),
    )
}

/// What `restore` did, the recovery settings it wrote, and how to start it.
pub fn restored(
    b: &BackupEntry,
    to: &std::path::Path,
    unpacked: &Unpacked,
    settings: &[(String, String)],
    starting: bool,
    url: &ArchiveUrl,
) -> String {
    let mut text = format!(
        "Restored backup {} into {}: {} in {:.1}s ({:.0} MB/s), {} files matched the backup manifest.\n",
        b.id,
        to.display(),
        bytes(unpacked.bytes),
        unpacked.seconds,
        unpacked.bytes as f64 / 1e6 / unpacked.seconds.max(0.001),
        unpacked.files
    );
    if let Some(delta) = &unpacked.delta {
        text.push_str(&format!(
            "Delta: {} files ({}) were already as backed up and kept, {} fetched, {} removed (not in the backup).\n",
            delta.kept,
            bytes(delta.kept_bytes),
            delta.fetched,
            delta.removed
        ));
    }
    text.push_str("Recovery settings (appended to postgresql.auto.conf, with recovery.signal):\n");
    for (name, value) in settings {
        text.push_str(&format!("  {name} = '{value}'\n"));
    }
    if !starting {
        text.push_str(&format!(
            "Start it with: pg_ctl -D {} start   (PostgreSQL {} binaries), or restore with --start.\nIt replays the WAL, then promotes; `SELECT pg_last_xact_replay_timestamp()` shows the last transaction it replayed.\n",
            to.display(),
            b.pg_version / 10000
        ));
    }
    text.push_str(&format!(
        "Its archive_command is the backup's: once promoted it archives its new timeline into {url}; add `-o \"-c archive_mode=off\"` to keep it out of the archive.\n"
    ));
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_naturally() {
        use super::bytes;
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(bytes(2_000_000_000), "2.0 GB");
    }
}
