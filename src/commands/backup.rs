//! `pgdr backup PLAN_FILE [--standby NAME]`: one base backup of the primary (or
//! a standby) into `<prefix>base/<id>/`, under the cluster's backup lock.

use super::{archive_of, load_cluster, out, Outcome};
use crate::cli::{BackupArgs, ListFormat};
use crate::execute::backup::{self, BackupRequest};
use crate::execute::lock::RunLock;
use crate::providers::storage::Store;
use crate::providers::{postgres, Systems};
use crate::settings::Settings;
use crate::spec::Conninfo;
use anyhow::{anyhow, Context};
use std::io::IsTerminal;

pub async fn run(args: &BackupArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_cluster(&args.path, "backup")?;
    let (url, region, compression) = archive_of(&desired)?;
    let plan = &desired.plan;
    let (role, source, conninfo): (String, String, Conninfo) = match &args.standby {
        Some(name) => {
            let standby = plan
                .standbys
                .iter()
                .find(|s| s.name.as_str() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = plan.standbys.iter().map(|s| s.name.as_str()).collect();
                    anyhow!(
                        "no standby `{name}` in {}; its standbys are: {}",
                        desired.source.display(),
                        names.join(", ")
                    )
                })?;
            let info = standby.postgres.clone().ok_or_else(|| {
                anyhow!("standby `{name}` has no `postgres` conninfo; pgdr backs up self-managed servers (RDS takes its own backups)")
            })?;
            (format!("standby.{name}"), format!("standby {name}"), info)
        }
        None => {
            let info = plan.primary.postgres.clone().ok_or_else(|| {
                anyhow!("the primary has no `postgres` conninfo; an RDS primary takes its own backups (primary.rds.backup_retention_days)")
            })?;
            ("primary".to_string(), "primary".to_string(), info)
        }
    };
    let systems = Systems::new(settings);
    let _lock = RunLock::acquire(
        &desired,
        &systems,
        &settings.lock_dir,
        "backup",
        "pgdr backup",
    )
    .await?;
    let facts = postgres::backup_facts(&role, &conninfo, &settings.pg).await?;
    if args.standby.is_none() && facts.in_recovery {
        anyhow::bail!("the primary is in recovery (a standby now?); back up the server that accepts writes, or a standby with --standby");
    }
    let pg_basebackup = backup::pg_basebackup_for(facts.version_num).ok_or_else(|| {
        anyhow!(
            "pg_basebackup for PostgreSQL {} is not installed (looked in /usr/lib/postgresql/{}/bin)\nhint: install it with `apt-get install postgresql-client-{}`",
            facts.version_num / 10000,
            facts.version_num / 10000,
            facts.version_num / 10000
        )
    })?;
    let store = Store::s3(systems.aws.s3(&region).await, &url.bucket);
    let removed = backup::clean_leftovers(&store, &url)
        .await
        .context("removing what an interrupted backup left")?;
    if let Some(message) = backup::leftovers_message(&removed) {
        eprintln!("{message}");
    }
    let request = BackupRequest {
        url,
        cluster: desired.cluster().to_string(),
        source,
        conninfo,
        facts,
        pg_basebackup,
        compression,
        wal_timeout: std::time::Duration::from_secs(args.wal_timeout),
        progress: std::io::stderr().is_terminal(),
    };
    // A standby does not archive its own WAL: the primary closes the segment.
    let primary = plan
        .primary
        .postgres
        .clone()
        .filter(|_| args.standby.is_some());
    let switch_wal = async {
        if let Some(info) = &primary {
            if let Err(e) = postgres::switch_wal("primary", info, &settings.pg).await {
                tracing::warn!(target: "pgdr::archive", error = %e, "could not ask the primary to switch WAL");
            }
        }
    };
    let entry = backup::take(&store, &request, switch_wal)
        .await
        .with_context(|| format!("backup of {} ({})", desired.cluster(), request.source))?;
    let text = match args.format {
        ListFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&entry).expect("entry serialises")
        ),
        ListFormat::Human => format!(
            "Backup {} of {} ({}): {} read in {:.1}s ({:.1} MB/s), {} stored ({:.1}x), every file matched the manifest; WAL {} to {} is archived.\n",
            entry.id,
            entry.cluster,
            entry.source,
            crate::render::human::bytes(entry.size_bytes),
            entry.duration_seconds,
            entry.size_bytes as f64 / 1e6 / entry.duration_seconds.max(0.001),
            crate::render::human::bytes(entry.stored_bytes),
            entry.size_bytes as f64 / entry.stored_bytes.max(1) as f64,
            entry.start_wal,
            entry.stop_wal,
        ),
    };
    out(&text)?;
    Ok(Outcome::Clean)
}
