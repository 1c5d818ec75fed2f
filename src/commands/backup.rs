//! `pgdr backup PLAN_FILE [--standby NAME] [--method files|stream] [--jobs N]`:
//! one base backup of the primary (or a standby) into `<prefix>base/<id>/`,
//! under the cluster's backup lock.

use super::{archive_of, load_cluster, out, Outcome};
use crate::cli::{BackupArgs, BackupMethodArg, BackupTypeArg, ListFormat};
use crate::execute::backup::{self, BackupRequest, Method};
use crate::execute::lock::RunLock;
use crate::format::datadir;
use crate::observe::archive as catalog;
use crate::plan::recovery::backup as decide;
use crate::providers::postgres::BackupFacts;
use crate::providers::storage::Store;
use crate::providers::{postgres, Systems};
use crate::settings::Settings;
use crate::spec::Conninfo;
use crate::state::archive::BackupType;
use anyhow::{anyhow, Context};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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
    let method = choose_method(args, &facts)?;
    let store = Store::s3(systems.aws.s3(&region).await, &url.bucket);
    let removed = backup::clean_leftovers(&store, &url)
        .await
        .context("removing what an interrupted backup left")?;
    if let Some(message) = backup::leftovers_message(&removed) {
        eprintln!("{message}");
    }
    let (method, backup_type) = with_parent(args, plan, method, &facts, &store, &url).await?;
    let request = BackupRequest {
        url,
        cluster: desired.cluster().to_string(),
        source,
        role,
        conninfo,
        pg: settings.pg.clone(),
        facts,
        method,
        backup_type,
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
            "Backup {} of {} ({}{}, {}, {}): {}, every file matched the manifest; WAL {} to {} is archived.\n",
            entry.id,
            entry.cluster,
            entry.backup_type.as_str(),
            entry
                .parent
                .as_ref()
                .map(|p| format!(" of {p}"))
                .unwrap_or_default(),
            entry.source,
            match entry.bundles.len() {
                0 => "pg_basebackup stream".to_string(),
                n => format!("files, {} jobs", n - 1),
            },
            sizes(&entry),
            entry.start_wal,
            entry.stop_wal,
        ),
    };
    out(&text)?;
    Ok(Outcome::Clean)
}

/// The type to take (`--type`, else what the schedule says is due) and, for
/// a diff or incr, its parent. A diff or incr without a parent it can
/// compare with is taken as a full, saying why; a stream has no parent.
async fn with_parent(
    args: &BackupArgs,
    plan: &crate::spec::PlanFile,
    method: Method,
    facts: &BackupFacts,
    store: &Store,
    url: &crate::format::ArchiveUrl,
) -> anyhow::Result<(Method, BackupType)> {
    let backups = catalog::read(store, url)
        .await
        .context("reading the backups to choose a parent")?
        .backups;
    let schedule = plan
        .archive
        .as_ref()
        .and_then(|a| a.base_backups.as_ref())
        .and_then(|b| b.full_every)
        .map(|d| d.as_secs());
    let wanted = match args.backup_type {
        Some(BackupTypeArg::Full) => BackupType::Full,
        Some(BackupTypeArg::Diff) => BackupType::Diff,
        Some(BackupTypeArg::Incr) => BackupType::Incr,
        None => decide::due_type(&backups, schedule, crate::spec::time::now_unix()),
    };
    if wanted == BackupType::Full {
        return Ok((method, BackupType::Full));
    }
    let Method::Files { data_dir, jobs, .. } = method else {
        if args.backup_type.is_some() {
            anyhow::bail!(
                "--type {} needs a file-level backup (pgdr reads the data folder on the database host); pg_basebackup's stream is always a full here\nhint: run pgdr backup on the database host, or use --type full",
                wanted.as_str()
            );
        }
        eprintln!("The schedule makes this an incremental, but pg_basebackup's stream is always a full: taking a full.");
        return Ok((method, BackupType::Full));
    };
    let major = facts.version_num / 10000;
    match decide::choose_parent(&backups, wanted, &facts.system_identifier, major) {
        Ok(Some(parent)) => Ok((
            Method::Files {
                data_dir,
                jobs,
                parent: Some(std::sync::Arc::new(backup::incremental::Parent::new(
                    url,
                    parent.clone(),
                ))),
            },
            wanted,
        )),
        Ok(None) => Ok((
            Method::Files {
                data_dir,
                jobs,
                parent: None,
            },
            BackupType::Full,
        )),
        Err(why) => {
            eprintln!(
                "A {} backup was asked for, but there is {why}: taking a full.",
                wanted.as_str()
            );
            Ok((
                Method::Files {
                    data_dir,
                    jobs,
                    parent: None,
                },
                BackupType::Full,
            ))
        }
    }
}

/// What a backup read and stored, for its one-line summary: a full reads
/// the database; a diff or incr stores what changed since its parent.
fn sizes(entry: &crate::state::archive::BackupEntry) -> String {
    use crate::render::human::bytes;
    let seconds = entry.duration_seconds.max(0.001);
    match &entry.parent {
        None => format!(
            "{} read in {:.1}s ({:.1} MB/s), {} stored ({:.1}x)",
            bytes(entry.size_bytes),
            entry.duration_seconds,
            entry.size_bytes as f64 / 1e6 / seconds,
            bytes(entry.stored_bytes),
            entry.size_bytes as f64 / entry.stored_bytes.max(1) as f64,
        ),
        Some(parent) => format!(
            "a {} database in {:.1}s, {} stored (what changed since {parent})",
            bytes(entry.size_bytes),
            entry.duration_seconds,
            bytes(entry.stored_bytes),
        ),
    }
}

/// The most jobs a backup starts without `--jobs`.
const DEFAULT_JOBS_MAX: usize = 8;

/// Files when the server's data folder is on this host and readable (its
/// `pg_control` names the same system), else pg_basebackup's stream;
/// `--method` insists on one.
fn choose_method(args: &BackupArgs, facts: &BackupFacts) -> anyhow::Result<Method> {
    let data_dir = PathBuf::from(&facts.data_directory);
    let local = local_data_dir(&data_dir, &facts.system_identifier);
    let jobs = args.jobs.map_or_else(
        // Each job holds about 100 MiB of parts: the cores, but not so many
        // that a large host's backup takes gigabytes by default.
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(DEFAULT_JOBS_MAX)
        },
        usize::from,
    );
    match (args.method, local) {
        (Some(BackupMethodArg::Files) | None, Ok(())) => Ok(Method::Files {
            data_dir,
            jobs,
            parent: None,
        }),
        (Some(BackupMethodArg::Files), Err(why)) => Err(anyhow!(
            "--method files reads the server's data folder on this host, and {why}\nhint: run pgdr backup on the database host (where archive_command runs pgdr), or use --method stream"
        )),
        (None, Err(why)) => {
            tracing::info!(target: "pgdr::archive", "pg_basebackup's stream, not a file-level backup: {why}");
            stream_method(facts)
        }
        (Some(BackupMethodArg::Stream), _) => stream_method(facts),
    }
}

/// pg_basebackup of the server's major version.
fn stream_method(facts: &BackupFacts) -> anyhow::Result<Method> {
    let pg_basebackup = backup::pg_basebackup_for(facts.version_num).ok_or_else(|| {
        let major = facts.version_num / 10000;
        anyhow!(
            "pg_basebackup for PostgreSQL {major} is not installed (looked in /usr/lib/postgresql/{major}/bin)\nhint: install it with `apt-get install postgresql-client-{major}`"
        )
    })?;
    Ok(Method::Stream { pg_basebackup })
}

/// Whether `data_dir` on this host is the data folder of the server with
/// `system_identifier`; why not, if it is not.
fn local_data_dir(data_dir: &Path, system_identifier: &str) -> Result<(), String> {
    let control = data_dir.join("global/pg_control");
    let bytes = std::fs::read(&control)
        .map_err(|e| format!("{} cannot be read here ({e})", control.display()))?;
    let here = datadir::control_system_identifier(&bytes).map(|id| id.to_string());
    if here.as_deref() != Some(system_identifier) {
        return Err(format!(
            "{} on this host belongs to another server (system identifier {}, the server's is {system_identifier})",
            data_dir.display(),
            here.unwrap_or_default()
        ));
    }
    Ok(())
}
