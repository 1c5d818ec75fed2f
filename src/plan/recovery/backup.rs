//! What `pgdr backup` takes, decided from the catalogue: the type the
//! schedule says is due (`base_backups.full_every`), and the parent an
//! incremental or differential stores its changes against. Pure.
//!
//! A parent must be a file-level backup with maps (what the next one compares
//! with) of the same system and major version, with its own chain intact. A
//! diff's parent is the newest such full; an incr's the newest such backup of
//! any type. Without one, the backup is a full (and says why), as
//! pgBackRest turns an incremental without a prior full into a full.

use crate::state::archive::{chain, BackupEntry, BackupMethod, BackupType};

/// The type to take when none is asked: with `full_every` (seconds), a full
/// when the newest full is that old or there is none, an incremental
/// otherwise; without it, always a full (each backup stands alone).
pub fn due_type(backups: &[BackupEntry], full_every: Option<u64>, now: i64) -> BackupType {
    let Some(full_every) = full_every else {
        return BackupType::Full;
    };
    let newest_full = backups
        .iter()
        .rev()
        .find(|b| b.backup_type == BackupType::Full && can_be_parent(b));
    match newest_full {
        Some(full) if now - full.stop_time.secs() < full_every as i64 => BackupType::Incr,
        _ => BackupType::Full,
    }
}

/// What a backup of `system` (pg major `major`) of type `wanted` stores its
/// changes against; `Err` says why it has to be a full instead.
pub fn choose_parent<'a>(
    backups: &'a [BackupEntry],
    wanted: BackupType,
    system: &str,
    major: u32,
) -> Result<Option<&'a BackupEntry>, String> {
    if wanted == BackupType::Full {
        return Ok(None);
    }
    let usable = |b: &&BackupEntry| {
        can_be_parent(b)
            && b.system_identifier == system
            && b.pg_version / 10000 == major
            && chain(backups, b).is_ok()
            && (wanted == BackupType::Incr || b.backup_type == BackupType::Full)
    };
    backups.iter().rev().find(usable).map(Some).ok_or_else(|| {
        format!(
            "no {} backup of this system (file-level, with maps, chain intact) to store the changes against",
            if wanted == BackupType::Diff { "full" } else { "earlier" }
        )
    })
}

/// A backup the next one can compare with.
fn can_be_parent(backup: &BackupEntry) -> bool {
    backup.method == BackupMethod::Files && !backup.maps.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::time::Timestamp;

    fn backup(id: &str, kind: BackupType, parent: Option<&str>, stop: i64) -> BackupEntry {
        let mut b = BackupEntry::sample(id, "000000010000000000000002");
        b.method = BackupMethod::Files;
        b.bundles = vec!["data-0.tar.zst".into(), "data-1.tar.zst".into()];
        b.data_object = "data-0.tar.zst".into();
        b.maps = vec!["map-0.zst".into(), "map-1.zst".into()];
        b.backup_type = kind;
        b.parent = parent.map(str::to_string);
        b.stop_time = Timestamp(stop);
        b.system_identifier = "7".into();
        b
    }

    #[test]
    fn the_schedule_takes_a_full_when_the_newest_is_old_enough() {
        let day = 86_400;
        let backups = vec![
            backup("20261201T000000Z", BackupType::Full, None, 0),
            backup(
                "20261202T000000Z",
                BackupType::Incr,
                Some("20261201T000000Z"),
                day,
            ),
        ];
        assert_eq!(due_type(&backups, None, 2 * day), BackupType::Full);
        assert_eq!(
            due_type(&backups, Some(7 * day as u64), 2 * day),
            BackupType::Incr
        );
        assert_eq!(
            due_type(&backups, Some(7 * day as u64), 7 * day),
            BackupType::Full
        );
        assert_eq!(due_type(&[], Some(7 * day as u64), 0), BackupType::Full);
        // A stream full cannot be a parent: the next is a full.
        let mut stream = backups[..1].to_vec();
        stream[0].method = BackupMethod::Stream;
        stream[0].maps.clear();
        assert_eq!(
            due_type(&stream, Some(7 * day as u64), day),
            BackupType::Full
        );
    }

    #[test]
    fn parents_are_the_newest_full_for_a_diff_and_the_newest_for_an_incr() {
        let backups = vec![
            backup("20261201T000000Z", BackupType::Full, None, 0),
            backup(
                "20261202T000000Z",
                BackupType::Incr,
                Some("20261201T000000Z"),
                1,
            ),
        ];
        let parent = |kind| choose_parent(&backups, kind, "7", 15).map(|p| p.map(|b| b.id.clone()));
        assert_eq!(parent(BackupType::Full), Ok(None));
        assert_eq!(
            parent(BackupType::Diff),
            Ok(Some("20261201T000000Z".into()))
        );
        assert_eq!(
            parent(BackupType::Incr),
            Ok(Some("20261202T000000Z".into()))
        );
        // Another system, or a broken chain, is no parent.
        assert!(choose_parent(&backups, BackupType::Incr, "8", 15).is_err());
        let broken = vec![backups[1].clone()];
        assert!(choose_parent(&broken, BackupType::Incr, "7", 15).is_err());
    }
}
