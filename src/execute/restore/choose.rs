//! Reads what the restore decision needs: the catalogue, and the WAL
//! archived from the newest backup's first segment (and from the chosen
//! backup's, when an older one serves the target), then asks the planner
//! ([`crate::plan::recovery::restore`]) which backup and how far.

use crate::execute::ArchiveError;
use crate::format::ArchiveUrl;
use crate::observe::archive::{self as catalog, WalListing};
use crate::plan::recovery::restore::{self, Chosen, RestoreRefusal, Target};
use crate::providers::storage::Store;
use crate::state::archive::chain;

/// Picks the backup for `target`; refuses a target outside the recoverable
/// window, or past a gap in the archive unless `accept_loss`.
pub async fn choose_in_archive(
    store: &Store,
    url: &ArchiveUrl,
    target: &Target,
    named: Option<&str>,
    now: i64,
    accept_loss: bool,
) -> Result<Chosen, ArchiveError> {
    let all = catalog::read(store, url).await?.backups;
    // A backup whose chain is broken (a parent missing) cannot be restored.
    let backups: Vec<_> = all
        .iter()
        .filter(|b| {
            let intact = chain(&all, b);
            if let Err(why) = &intact {
                tracing::warn!(target: "pgdr::archive", "{why}: not used");
            }
            intact.is_ok()
        })
        .cloned()
        .collect();
    let newest = backups.last().ok_or_else(|| {
        ArchiveError::Usage(format!(
            "{url} has no complete base backup to restore; take one with `pgdr backup`"
        ))
    })?;
    let mut listing = catalog::wal_objects_from(store, url, &newest.start_wal).await?;
    let newest_wal = restore::newest_segment(&listing.archived(url)).ok_or_else(|| {
        ArchiveError::Corrupt(format!(
            "no WAL is archived from the newest backup's first segment {} on",
            newest.start_wal
        ))
    })?;
    let backup =
        restore::choose_backup(&backups, &newest_wal, target, named, now).map_err(refused)?;
    if backup.id != newest.id {
        // An older backup replays the WAL before the newest's too.
        listing = catalog::wal_objects_from(store, url, &backup.start_wal).await?;
    }
    let WalListing { damaged, .. } = &listing;
    let members = chain(&backups, backup)
        .map_err(ArchiveError::Corrupt)?
        .into_iter()
        .cloned()
        .collect();
    restore::plan_restore(
        backup,
        members,
        newest_wal,
        &listing.archived(url),
        damaged,
        target,
        accept_loss,
    )
    .map_err(refused)
}

/// A refusal as the command reports it: damage is the archive's, the rest
/// is the request's (a target that cannot be served).
fn refused(refusal: RestoreRefusal) -> ArchiveError {
    match refusal {
        RestoreRefusal::Damaged(why) => ArchiveError::Corrupt(why),
        RestoreRefusal::OutsideWindow(why) | RestoreRefusal::Unreachable(why) => {
            ArchiveError::Usage(why)
        }
    }
}
