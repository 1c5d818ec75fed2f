//! What a copy of the archive lacks against home, and so what `pgdr copy`
//! stores in it and how far `plan` and `status` call it behind. Pure: the
//! listings come in, the difference goes out.

use crate::spec::Desired;
use crate::state::archive::{BackupEntry, CopyLag, CopyListing};
use std::collections::BTreeSet;

/// One side's contents, as the listings show them.
pub struct Contents<'a> {
    /// WAL file names (without `.zst`) and when each was stored.
    pub wal: &'a [(String, i64)],
    /// Backup ids whose folder is complete (has its `backup.json`).
    pub backups: &'a [String],
}

/// What `copy` lacks of `home`: every WAL file and complete backup home has
/// and the copy does not, and when home stored the oldest missing WAL file.
pub fn lag(home: &Contents<'_>, copy: &Contents<'_>) -> CopyLag {
    let in_copy: BTreeSet<&str> = copy.wal.iter().map(|(n, _)| n.as_str()).collect();
    let mut missing: Vec<&(String, i64)> = home
        .wal
        .iter()
        .filter(|(n, _)| !in_copy.contains(n.as_str()))
        .collect();
    missing.sort();
    missing.dedup_by(|a, b| a.0 == b.0);
    let backups_in_copy: BTreeSet<&str> = copy.backups.iter().map(String::as_str).collect();
    let mut backups_missing: Vec<String> = home
        .backups
        .iter()
        .filter(|id| !backups_in_copy.contains(id.as_str()))
        .cloned()
        .collect();
    backups_missing.sort();
    CopyLag {
        missing_since_unix: missing.iter().map(|(_, at)| *at).min(),
        wal_missing: missing.iter().map(|(n, _)| n.clone()).collect(),
        newest_wal: newest_segment(copy.wal),
        home_newest_wal: newest_segment(home.wal),
        backups_missing,
        newest_backup: copy.backups.iter().max().cloned(),
    }
}

/// The newest WAL segment of a listing (history and backup-label files left
/// aside: a new timeline's history file sorts after the old timeline's
/// segments but is not WAL).
fn newest_segment(wal: &[(String, i64)]) -> Option<String> {
    wal.iter()
        .map(|(n, _)| n)
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .max()
        .cloned()
}

/// What a copy lacks, from its observed listing and home's complete backups.
pub fn lag_of(listing: &CopyListing, home_backups: &[String]) -> CopyLag {
    lag(
        &Contents {
            wal: &listing.home_wal,
            backups: home_backups,
        },
        &Contents {
            wal: &listing.wal,
            backups: &listing.backups,
        },
    )
}

/// The home backups a copy should hold: what home keeps (`expire`'s rule:
/// the newest `base_backups.keep`, the one the newest passed drill restored,
/// the parents they need), else every complete one. A backup home is about
/// to expire is not copied, so the copy's own expiry never fights the
/// catch-up.
pub fn wanted(desired: &Desired, backups: &[BackupEntry], drilled: Option<&str>) -> Vec<String> {
    let keep = desired
        .plan
        .archive
        .as_ref()
        .and_then(|a| a.base_backups.as_ref())
        .map(|b| b.keep as usize);
    match keep {
        Some(keep) => super::expire::decide(backups, keep, &[], drilled).kept,
        None => backups.iter().map(|b| b.id.clone()).collect(),
    }
}

/// Seconds the copy is behind home at `now`: how long home has held a WAL
/// file the copy still lacks; 0 when it lacks none.
pub fn lag_seconds(lag: &CopyLag, now: i64) -> u64 {
    lag.missing_since_unix
        .map_or(0, |since| (now - since).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal(names: &[(&str, i64)]) -> Vec<(String, i64)> {
        names.iter().map(|(n, t)| (n.to_string(), *t)).collect()
    }

    #[test]
    fn a_copy_lacks_what_home_has_and_it_does_not() {
        let home_wal = wal(&[
            ("000000010000000000000003", 100),
            ("000000010000000000000004", 160),
            ("000000010000000000000005", 220),
        ]);
        let copy_wal = wal(&[("000000010000000000000003", 101)]);
        let home_backups = vec!["20261207T100000Z".to_string(), "20261207T110000Z".into()];
        let copy_backups = vec!["20261207T100000Z".to_string()];
        let lag = lag(
            &Contents {
                wal: &home_wal,
                backups: &home_backups,
            },
            &Contents {
                wal: &copy_wal,
                backups: &copy_backups,
            },
        );
        assert_eq!(
            lag.wal_missing,
            ["000000010000000000000004", "000000010000000000000005"]
        );
        assert_eq!(lag.missing_since_unix, Some(160));
        assert_eq!(lag_seconds(&lag, 200), 40);
        assert_eq!(lag.backups_missing, ["20261207T110000Z"]);
        assert_eq!(lag.newest_backup.as_deref(), Some("20261207T100000Z"));
        assert_eq!(lag.newest_wal.as_deref(), Some("000000010000000000000003"));
        assert_eq!(
            lag.home_newest_wal.as_deref(),
            Some("000000010000000000000005")
        );
    }

    #[test]
    fn a_copy_caught_up_is_not_behind() {
        let both = wal(&[("000000010000000000000003", 100)]);
        let ids = vec!["20261207T100000Z".to_string()];
        let side = Contents {
            wal: &both,
            backups: &ids,
        };
        let lag = lag(&side, &side);
        assert!(lag.wal_missing.is_empty() && lag.backups_missing.is_empty());
        assert_eq!(lag_seconds(&lag, 10_000), 0);
    }
}
