//! `pgdr force-unlock PLAN_FILE LOCK_ID`: removes a bucket lock that a crashed
//! run left behind (Terraform's `force-unlock`). Only the lock with that id is
//! removed, and only while it still is that lock; the local file lock needs no
//! clearing (the kernel drops it when its process ends).

use super::{archive_of, confirm, load_cluster, out, Outcome};
use crate::cli::ForceUnlockArgs;
use crate::execute::lock::bucket;
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::settings::Settings;
use anyhow::bail;

pub async fn run(args: &ForceUnlockArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_cluster(&args.path, "force-unlock")?;
    if desired.plan.archive.is_none() {
        bail!(
            "{}: the plan file has no archive bucket, so its runs hold only the local file lock, which is released when its process ends; there is nothing to unlock",
            desired.source.display()
        );
    }
    let (url, region, _) = archive_of(&desired)?;
    let store = Store::s3(Systems::new(settings).aws.s3(&region).await, &url.bucket);
    let held = bucket::list(&store, &url).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot list the locks in s3://{}/{}: {e}",
            url.bucket,
            bucket::locks_prefix(&url)
        )
    })?;
    let Some((key, info)) = held.iter().find_map(|(key, info)| match info {
        Ok(info) if info.lock_id == args.lock_id => Some((key, info)),
        _ => None,
    }) else {
        let listed: Vec<String> = held
            .iter()
            .map(|(key, info)| match info {
                Ok(info) => format!("  {}: {}", info.kind, info.describe()),
                Err(e) => format!("  {key}: {e}"),
            })
            .collect();
        bail!(
            "no lock with id `{}` in s3://{}/{}; nothing was removed\n{}",
            args.lock_id,
            url.bucket,
            bucket::locks_prefix(&url),
            if listed.is_empty() {
                "  (no locks are held)".to_string()
            } else {
                format!("locks held:\n{}", listed.join("\n"))
            }
        );
    };
    eprintln!("Lock {}: {}", info.kind, info.describe());
    if !args.auto_approve {
        confirm(
            settings,
            "Removing a lock whose run is still going lets a second run interleave with it.",
            "pass --auto-approve to remove the lock without asking",
            "force-unlock cancelled; nothing was removed",
        )?;
    }
    bucket::force_delete(&store, key, &args.lock_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    out(&format!(
        "Removed the {} lock of cluster {} (s3://{}/{key}).\n",
        info.kind, info.cluster, url.bucket
    ))?;
    Ok(Outcome::Clean)
}
