//! `pgdr expire`: reads the catalogue, the WAL listing and the drill reports,
//! asks the planner what may go ([`crate::plan::recovery::expire::decide`]),
//! and deletes it. Objects the store refuses to delete (retention,
//! permissions) are returned, and the rest still go.

use super::backup;
use super::ArchiveError;
use crate::format::ArchiveUrl;
use crate::observe::archive::{self as catalog, Catalogue};
use crate::plan::recovery::expire::{self, ExpirePlan};
use crate::providers::storage::Store;
use crate::state::drill::DrillsLive;

/// What expiry decided, with what it read to decide it.
pub struct Expiry {
    pub plan: ExpirePlan,
    /// The complete backups there were.
    pub backups: usize,
    pub drills: DrillsLive,
    catalogue: Catalogue,
}

/// Reads the archive and decides what `keep` lets go. Without the drill
/// reports pgdr cannot tell what must stay, so an unreadable report is an
/// error (nothing is deleted).
pub async fn decide(store: &Store, url: &ArchiveUrl, keep: usize) -> Result<Expiry, ArchiveError> {
    // The catalogue and the WAL listing are independent: read them together.
    let wal_prefix = url.wal_prefix();
    let (catalogue, wal, drills) = tokio::join!(
        catalog::read(store, url),
        store.list(&wal_prefix, None),
        catalog::drills(store, url)
    );
    let catalogue = catalogue?;
    let drills = drills.map_err(|e| {
        ArchiveError::Failed(format!(
            "reading the drill reports (expire keeps what the newest passed drill restored): {}",
            ArchiveError::from(e)
        ))
    })?;
    let drilled = drills.newest_ok.as_ref().map(|d| d.backup_id.as_str());
    let wal: Vec<String> = wal?
        .into_iter()
        .map(|o| o.key.get(wal_prefix.len()..).unwrap_or(&o.key).to_string())
        .collect();
    let plan = expire::decide(&catalogue.backups, keep, &wal, drilled);
    Ok(Expiry {
        plan,
        backups: catalogue.backups.len(),
        drills,
        catalogue,
    })
}

/// What [`carry_out`] did.
pub struct Expired {
    /// What interrupted backups left, removed first.
    pub leftovers: Vec<String>,
    pub deleted: usize,
    /// Keys the store refused to delete, with its reason.
    pub refused: Vec<(String, String)>,
}

/// Deletes what `expiry` decided, after removing what interrupted backups
/// left. Run with the cluster's backup lock held.
pub async fn carry_out(
    store: &Store,
    url: &ArchiveUrl,
    expiry: &Expiry,
) -> Result<Expired, ArchiveError> {
    let leftovers = backup::clean_leftovers(store, url).await?;
    let wal_prefix = url.wal_prefix();
    let mut keys: Vec<String> = expiry
        .plan
        .backups
        .iter()
        .flat_map(|id| {
            expiry
                .catalogue
                .folders
                .get(id)
                .into_iter()
                .flatten()
                .map(|o| o.key.clone())
        })
        .collect();
    keys.extend(expiry.plan.wal.iter().map(|w| format!("{wal_prefix}{w}")));
    let refused = store.delete(&keys).await?;
    Ok(Expired {
        leftovers,
        deleted: keys.len() - refused.len(),
        refused,
    })
}
