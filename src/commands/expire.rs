//! `pgdr expire PLAN_FILE [--dry-run]`: delete base backups beyond
//! `archive.base_backups.keep` and the WAL only they needed (the decision is
//! `plan::recovery::expire::decide`, the deletes `execute::expire`), under
//! the cluster's backup lock. Objects S3 refuses to delete (retention,
//! permissions) are listed, and the rest still go.

use super::{archive_of, load_cluster, out, Outcome};
use crate::cli::ExpireArgs;
use crate::execute::lock::RunLock;
use crate::execute::{backup, expire};
use crate::format::layout::wal_name_of;
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::settings::Settings;
use anyhow::anyhow;

pub async fn run(args: &ExpireArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_cluster(&args.path, "expire")?;
    let (url, region, _) = archive_of(&desired)?;
    let keep = desired
        .plan
        .archive
        .as_ref()
        .and_then(|a| a.base_backups.as_ref())
        .map(|b| b.keep as usize)
        .ok_or_else(|| {
            anyhow!(
                "{}: set archive.base_backups.keep to say how many backups to keep",
                desired.source.display()
            )
        })?;
    let systems = Systems::new(settings);
    // A dry run writes nothing, not even a lock object.
    let _lock = if args.dry_run {
        RunLock::local(
            &settings.lock_dir,
            desired.cluster(),
            "backup",
            "pgdr expire --dry-run",
        )?
    } else {
        RunLock::acquire(
            &desired,
            &systems,
            &settings.lock_dir,
            "backup",
            "pgdr expire",
        )
        .await?
    };
    let store = Store::s3(systems.aws.s3(&region).await, &url.bucket);
    let expiry = expire::decide(&store, &url, keep).await?;
    let plan = &expiry.plan;

    let mut text = format!(
        "{} {} of {} backups (keeping {}: {}) and {} WAL files{}.\n",
        if args.dry_run {
            "Would delete"
        } else {
            "Deleting"
        },
        plan.backups.len(),
        expiry.backups,
        keep,
        if plan.kept.is_empty() {
            "none".to_string()
        } else {
            plan.kept.join(", ")
        },
        plan.wal.len(),
        plan.wal_needed_from
            .as_ref()
            .map(|w| format!(" from before {w}, the first segment the oldest kept backup needs"))
            .unwrap_or_default(),
    );
    if let (Some(id), Some(drill)) = (&plan.protected, &expiry.drills.newest_ok) {
        text.push_str(&format!(
            "Not deleting backup {id} or the WAL from its start: the newest passed drill ({}) restored it, and expiry never removes what that proof needs. It goes once a newer backup passes a drill (`pgdr drill {}`).\n",
            drill.started_at,
            args.path.display()
        ));
    }
    if !plan.parents.is_empty() {
        text.push_str(&format!(
            "Keeping beyond keep: {}, the parents a kept diff or incremental is restored through.\n",
            plan.parents.join(", ")
        ));
    }
    for id in &plan.backups {
        text.push_str(&format!("  - backup {id}\n"));
    }
    if let (Some(first), Some(last)) = (plan.wal.first(), plan.wal.last()) {
        text.push_str(&format!(
            "  - WAL {} .. {}\n",
            wal_name_of(first),
            wal_name_of(last)
        ));
    }
    if args.dry_run {
        out(&text)?;
        return Ok(Outcome::Clean);
    }
    let expired = expire::carry_out(&store, &url, &expiry).await?;
    if let Some(message) = backup::leftovers_message(&expired.leftovers) {
        text.push_str(&format!("{message}\n"));
    }
    text.push_str(&format!("Deleted {} objects.\n", expired.deleted));
    let refused = expired.refused;
    for (key, why) in &refused {
        text.push_str(&format!("  not deleted: {key}: {why}\n"));
    }
    out(&text)?;
    Ok(if refused.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}
