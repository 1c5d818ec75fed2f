//! `pgdr copy PLAN_FILE [--dry-run]`: fill each copy of the archive
//! (`archive.copies`) with what home holds and it lacks
//! ([`crate::execute::copy`]): the backups home keeps (expire's rule) and
//! their WAL; then expire in each copy what home no longer keeps, under the
//! cluster's `copy` lock. `run-due`
//! runs it when a copy lacks something; `wal-push` keeps copies current
//! between runs.

use super::{archive_at, load_cluster, out, Outcome};
use crate::cli::CopyArgs;
use crate::execute::copy::{catch_up, Copied, Home};
use crate::execute::expire;
use crate::execute::lock::RunLock;
use crate::observe::archive as catalog;
use crate::plan::recovery::copy::{lag_of, wanted};
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::settings::Settings;
use crate::spec::Desired;
use crate::state::archive::BackupEntry;
use anyhow::{anyhow, Context};

pub async fn run(args: &CopyArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_cluster(&args.path, "copy")?;
    let systems = Systems::new(settings);
    let copies = copy_all(
        &desired,
        &systems,
        settings,
        args.dry_run,
        args.parallel.into(),
    )
    .await?;
    let mut text = String::new();
    let (mut outcome, mut failed) = (Outcome::Clean, Vec::new());
    for (name, result) in &copies {
        match result {
            Ok(line) => {
                text.push_str(&line.text);
                if line.found {
                    outcome = Outcome::Found;
                }
            }
            Err(e) => {
                text.push_str(&format!("copy {name}: FAILED: {e:#}\n"));
                failed.push(name.as_str());
            }
        }
    }
    out(&text)?;
    if !failed.is_empty() {
        anyhow::bail!(
            "{}: could not catch up the copies {}",
            args.path.display(),
            failed.join(", ")
        );
    }
    Ok(outcome)
}

/// What one copy's catch-up said: its lines, and whether it found
/// something (refused objects, or with a dry run anything lacking).
pub struct CopyReport {
    pub text: String,
    pub found: bool,
    /// What was copied (nothing for a dry run).
    pub copied: Copied,
}

/// Catches up every copy of `desired`'s archive, all at once, under
/// the `copy` lock (a dry run writes none): `(name, report or why not)`.
/// `Err` when home could not be read (or the lock not taken).
pub async fn copy_all(
    desired: &Desired,
    systems: &Systems,
    settings: &Settings,
    dry_run: bool,
    parallel: usize,
) -> anyhow::Result<Vec<(String, anyhow::Result<CopyReport>)>> {
    let archive = desired
        .plan
        .archive
        .as_ref()
        .filter(|a| !a.copies.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "{}: archive.copies names no copy of the archive; add one (a bucket in another region) to copy to",
                desired.source.display()
            )
        })?;
    // A dry run reads only: no lock (the watcher looks every minute, and
    // must not turn away a run-due's catch-up on the same host).
    let _lock = if dry_run {
        None
    } else {
        Some(RunLock::acquire(desired, systems, &settings.lock_dir, "copy", "pgdr copy").await?)
    };
    let home = archive_at(desired, None)?;
    let home_store = Store::s3(systems.aws.s3(&home.region).await, &home.url.bucket);
    let (catalogue, drills) = tokio::join!(
        catalog::read(&home_store, &home.url),
        catalog::drills(&home_store, &home.url)
    );
    let catalogue = catalogue.with_context(|| format!("reading the home archive {}", home.url))?;
    let drills =
        drills.with_context(|| format!("reading the home archive's drills {}", home.url))?;
    // What home keeps is what the copies hold: a backup home is about to
    // expire is not copied (expire's rule, the proven backup included).
    let drilled = drills.newest_ok.as_ref().map(|d| d.backup_id.as_str());
    let ids = wanted(desired, &catalogue.backups, drilled);
    let backups: Vec<BackupEntry> = catalogue
        .backups
        .iter()
        .filter(|b| ids.contains(&b.id))
        .cloned()
        .collect();
    // Home is listed once for every copy; the copies are caught up at once.
    let home_read = Home::read((&home_store, &home.url), backups, catalogue.folders)
        .await
        .with_context(|| format!("listing the home archive's WAL {}", home.url))?;
    let home_read = &home_read;
    let reports = archive.copies.iter().map(|copy| async move {
        let name = copy.name().to_string();
        let report = async {
            let at = archive_at(desired, Some(&name))?;
            let store = Store::s3(systems.aws.s3(&at.region).await, &at.url.bucket);
            if dry_run {
                return lacking(home_read, (&store, &at), &name).await;
            }
            caught_up(
                home_read,
                (&store, &at),
                &name,
                parallel,
                archive.base_backups.is_some(),
            )
            .await
        }
        .await;
        (name, report)
    });
    Ok(futures_util::future::join_all(reports).await)
}

/// One copy caught up (and, with `expire`, expired to what home keeps).
async fn caught_up(
    home: &Home<'_>,
    (store, at): (&Store, &super::ArchiveAt),
    name: &str,
    parallel: usize,
    expire: bool,
) -> anyhow::Result<CopyReport> {
    let copied = catch_up(home, (store, &at.url), parallel)
        .await
        .with_context(|| format!("copying into {name} ({})", at.url))?;
    let mut text = format!(
        "copy {name} ({}, {}): stored {} WAL file(s) and {} backup(s){} ({:.1} MB){}\n",
        at.url,
        at.region,
        copied.wal,
        copied.backups.len(),
        if copied.backups.is_empty() {
            String::new()
        } else {
            format!(": {}", copied.backups.join(", "))
        },
        copied.bytes as f64 / 1e6,
        if copied.refused.is_empty() {
            "; it holds everything home holds"
        } else {
            ""
        }
    );
    for refused in &copied.refused {
        text.push_str(&format!("  refused: {refused}\n"));
    }
    // The copy keeps what home keeps (its region-loss drills protect what
    // they restored), under this run's lock so no catch-up races it.
    let mut found = !copied.refused.is_empty();
    if expire {
        found |= expire_copy(store, &at.url, &home.backup_ids(), &mut text).await?;
    }
    Ok(CopyReport {
        text,
        found,
        copied,
    })
}

/// Expires in a copy what home no longer keeps (`wanted`), saying so in
/// `text`; the copy's own region-loss drill keeps the backup it restored.
/// `true` when the copy refused a delete.
async fn expire_copy(
    store: &Store,
    url: &crate::format::ArchiveUrl,
    wanted: &[String],
    text: &mut String,
) -> anyhow::Result<bool> {
    let expiry = expire::decide_for_copy(store, url, wanted).await?;
    if expiry.plan.backups.is_empty() && expiry.plan.wal.is_empty() {
        return Ok(false);
    }
    let (deleted, refused) = expire::delete_decided(store, url, &expiry).await?;
    text.push_str(&format!(
        "  expired in the copy: {} backup(s) home no longer keeps and {} WAL file(s) from before the oldest kept ({deleted} objects)\n",
        expiry.plan.backups.len(),
        expiry.plan.wal.len(),
    ));
    for (key, why) in &refused {
        text.push_str(&format!("  not deleted: {key}: {why}\n"));
    }
    Ok(!refused.is_empty())
}

/// What a copy lacks, said without writing anything (`--dry-run`, the
/// watcher's look): `found` when it lacks anything.
async fn lacking(
    home: &Home<'_>,
    (store, at): (&Store, &super::ArchiveAt),
    name: &str,
) -> anyhow::Result<CopyReport> {
    let listing = catalog::copy_listing(&home.wal_archived(), home.first(), (store, &at.url))
        .await
        .with_context(|| format!("reading the copy {name} ({})", at.url))?;
    let lag = lag_of(&listing, &home.backup_ids());
    let found = !lag.wal_missing.is_empty() || !lag.backups_missing.is_empty();
    Ok(CopyReport {
        text: format!(
            "copy {name} ({}, {}): lacks {} WAL file(s) and {} backup(s){}\n",
            at.url,
            at.region,
            lag.wal_missing.len(),
            lag.backups_missing.len(),
            if lag.backups_missing.is_empty() {
                String::new()
            } else {
                format!(": {}", lag.backups_missing.join(", "))
            }
        ),
        found,
        copied: Copied::default(),
    })
}
