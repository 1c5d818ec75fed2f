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
    decide_by(store, url, |backups, wal, drilled| {
        expire::decide(backups, keep, wal, drilled)
    })
    .await
}

/// What a copy of the archive lets go: every backup but `wanted` (what home
/// keeps), the one the copy's newest passed (region-loss) drill restored and
/// the parents they need, and the WAL before the oldest kept.
pub async fn decide_for_copy(
    store: &Store,
    url: &ArchiveUrl,
    wanted: &[String],
) -> Result<Expiry, ArchiveError> {
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    decide_by(store, url, |backups, wal, drilled| {
        expire::decide_keeping(backups, &wanted, wal, drilled)
    })
    .await
}

async fn decide_by(
    store: &Store,
    url: &ArchiveUrl,
    rule: impl FnOnce(&[crate::state::archive::BackupEntry], &[String], Option<&str>) -> ExpirePlan,
) -> Result<Expiry, ArchiveError> {
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
    let plan = rule(&catalogue.backups, &wal, drilled);
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
    let (deleted, refused) = delete_decided(store, url, expiry).await?;
    Ok(Expired {
        leftovers,
        deleted,
        refused,
    })
}

/// Deletes what `expiry` decided, and nothing else: what a copy's expiry
/// does (its incomplete folders are a catch-up cut short, which the next
/// one finishes). Returns how many went, and what the store refused.
pub async fn delete_decided(
    store: &Store,
    url: &ArchiveUrl,
    expiry: &Expiry,
) -> Result<(usize, Vec<(String, String)>), ArchiveError> {
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
    Ok((keys.len() - refused.len(), refused))
}
