//! `pgdr expire PLAN_FILE [--dry-run]`: delete base backups beyond
//! `archive.base_backups.keep` and the WAL only they needed (the decision is
//! `archive::expire::decide`), under the cluster's backup lock. Objects S3
//! refuses to delete (retention, permissions) are listed, and the rest still go.

use super::{archive_of, load_cluster, out, Outcome};
use crate::archive::{backup, catalog, expire};
use crate::cli::ExpireArgs;
use crate::execute::lock::RunLock;
use crate::providers::s3::objects;
use crate::providers::Systems;
use crate::settings::Settings;
use anyhow::{anyhow, Context};

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
    let client = systems.aws.s3(&region).await;
    // The catalogue and the WAL listing are independent: read them together.
    let wal_prefix = url.wal_prefix();
    let (catalogue, wal, drills) = tokio::join!(
        catalog::read(&client, &url),
        objects::list(&client, &url.bucket, &wal_prefix, None),
        catalog::drills(&client, &url)
    );
    let (backups, _, folders) = catalogue?;
    // Without the drill reports pgdr cannot tell what must stay: delete nothing.
    let drills = drills.context(
        "reading the drill reports (expire keeps what the newest passed drill restored)",
    )?;
    let drilled = drills.newest_ok.as_ref().map(|d| d.backup_id.as_str());
    let wal: Vec<String> = wal?
        .into_iter()
        .map(|o| o.key[wal_prefix.len()..].to_string())
        .collect();
    let plan = expire::decide(&backups, keep, &wal, drilled);

    let mut text = format!(
        "{} {} of {} backups (keeping {}: {}) and {} WAL files{}.\n",
        if args.dry_run {
            "Would delete"
        } else {
            "Deleting"
        },
        plan.backups.len(),
        backups.len(),
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
    if let (Some(id), Some(drill)) = (&plan.protected, &drills.newest_ok) {
        text.push_str(&format!(
            "Not deleting backup {id} or the WAL from its start: the newest passed drill ({}) restored it, and expiry never removes what that proof needs. It goes once a newer backup passes a drill (`pgdr drill {}`).\n",
            drill.started_at,
            args.path.display()
        ));
    }
    for id in &plan.backups {
        text.push_str(&format!("  - backup {id}\n"));
    }
    if let (Some(first), Some(last)) = (plan.wal.first(), plan.wal.last()) {
        text.push_str(&format!(
            "  - WAL {} .. {}\n",
            catalog::wal_name_of(first),
            catalog::wal_name_of(last)
        ));
    }
    if args.dry_run {
        out(&text)?;
        return Ok(Outcome::Clean);
    }
    let removed = backup::clean_leftovers(&client, &url).await?;
    if let Some(message) = backup::leftovers_message(&removed) {
        text.push_str(&format!("{message}\n"));
    }
    let mut keys: Vec<String> = plan
        .backups
        .iter()
        .flat_map(|id| folders.get(id).into_iter().flatten().map(|o| o.key.clone()))
        .collect();
    keys.extend(plan.wal.iter().map(|w| format!("{wal_prefix}{w}")));
    let refused = objects::delete(&client, &url.bucket, &keys).await?;
    text.push_str(&format!(
        "Deleted {} objects.\n",
        keys.len() - refused.len()
    ));
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
