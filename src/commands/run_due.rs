//! `pgdr run-due PATH [--dry-run] [--metrics-file FILE]`: for every cluster
//! of a plan file or fleet folder, in turn, what its plan file says is due:
//! a base backup (`base_backups.every`, its type by `full_every`), `expire`
//! (backups beyond `keep`), `copy` (a copy of the archive lacking what home
//! holds), a drill (`drill.every`) and a region-loss drill from a copy
//! (`drill.region_every`). The decisions are
//! `plan::recovery::due` and `plan::recovery::expire`; the work is the
//! `backup`, `expire` and `drill` commands, each under its own lock.
//!
//! One timer or CronJob can serve a fleet, and two runners never do the same
//! work twice: a cluster with something due is worked on under its `run-due`
//! lock (on this host and in the bucket), and what is due is decided again
//! once the lock is held, so a runner that waited behind another sees its
//! backup and does not take a second. Nothing due: nothing written, not even
//! a lock. Exit 0 all done, 2 something failed or is overdue and was not
//! done (`--dry-run`: something is due), 1 the plan files could not be read.

use super::{archive_of, load_all, out, Outcome};
use crate::cli::{
    BackupArgs, BackupTypeArg, CopyArgs, DrillArgs, ExpireArgs, ListFormat, RunDueArgs,
};
use crate::execute::expire;
use crate::execute::lock::RunLock;
use crate::observe::observe_content;
use crate::plan::recovery::due::{self, Decision, Task};
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::settings::Settings;
use crate::spec::Desired;
use crate::state::archive::BackupType;
use std::path::Path;

pub async fn run(args: &RunDueArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let clusters = load_all(&args.path)?;
    let systems = Systems::new(settings);
    let mut tally = Tally::default();
    for desired in &clusters {
        out(&format!(
            "{} ({})\n",
            desired.cluster(),
            desired.source.display()
        ))?;
        cluster(desired, &systems, settings, args.dry_run, &mut tally).await?;
    }
    if let Some(file) = &args.metrics_file {
        let (text, _) = super::status::read_metrics(&clusters, &systems).await;
        write_replacing(file, &text)
            .map_err(|e| anyhow::anyhow!("cannot write the metrics to {}: {e}", file.display()))?;
        eprintln!(
            "Wrote the metrics of {} cluster(s) to {}.",
            clusters.len(),
            file.display()
        );
    }
    out(&tally.summary(args.dry_run))?;
    Ok(if tally.attention(args.dry_run) {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// What the run did and found, across clusters.
#[derive(Default)]
struct Tally {
    ran: Vec<String>,
    due: Vec<String>,
    failed: Vec<String>,
    overdue: Vec<String>,
}

impl Tally {
    fn attention(&self, dry_run: bool) -> bool {
        !self.failed.is_empty() || !self.overdue.is_empty() || (dry_run && !self.due.is_empty())
    }

    fn summary(&self, dry_run: bool) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        if dry_run {
            return format!("run-due --dry-run: due: {}\n", list(&self.due));
        }
        format!(
            "run-due: ran {}; failed: {}; overdue and not run: {}\n",
            list(&self.ran),
            list(&self.failed),
            list(&self.overdue)
        )
    }
}

/// What one cluster owes: the backup and drill decisions and what expire
/// would delete (`None`: the task is not the plan file's).
struct Owed {
    backup: Option<Decision>,
    /// The copies' catch-up (`archive.copies`).
    copy: Option<Decision>,
    drill: Option<Decision>,
    /// The region-loss drill (`drill.region_every`).
    region_drill: Option<Decision>,
    /// A failed newest drill that is not yet due again.
    drill_failed: Option<String>,
    expire: Option<ExpireOwed>,
}

struct ExpireOwed {
    backups: usize,
    wal: usize,
}

impl ExpireOwed {
    fn due(&self) -> bool {
        self.backups + self.wal > 0
    }

    fn line(&self) -> String {
        if self.backups > 0 {
            format!(
                "  expire: due: {} backup(s) beyond base_backups.keep, and {} WAL file(s) no kept backup needs\n",
                self.backups, self.wal
            )
        } else if self.wal > 0 {
            format!(
                "  expire: due: {} WAL file(s) from before the oldest kept backup, which no restore can use\n",
                self.wal
            )
        } else {
            "  expire: not due: nothing beyond base_backups.keep\n".to_string()
        }
    }
}

impl Owed {
    fn decisions(&self) -> impl Iterator<Item = &Decision> {
        self.backup
            .iter()
            .chain(self.copy.iter())
            .chain(self.drill.iter())
            .chain(self.region_drill.iter())
    }

    fn anything_due(&self) -> bool {
        self.decisions().any(|d| d.due) || self.expire.as_ref().is_some_and(ExpireOwed::due)
    }

    fn overdue(&self) -> impl Iterator<Item = &Decision> {
        self.decisions().filter(|d| d.overdue)
    }
}

fn decision_line(decision: &Decision) -> String {
    let kind = match decision.task {
        Task::Backup(t) if decision.due => format!(" ({})", t.as_str()),
        _ => String::new(),
    };
    format!(
        "  {}: {}{kind}: {}\n",
        decision.task.name(),
        if decision.due { "due" } else { "not due" },
        decision.why
    )
}

/// Reads the cluster's archive and decides what it owes; the archive's
/// content and expire's decision are read at once.
async fn owed(desired: &Desired, systems: &Systems, store: &Store) -> anyhow::Result<Owed> {
    let text_url = desired
        .plan
        .archive
        .as_ref()
        .map(|a| a.url())
        .unwrap_or_default();
    let (content, expire) = tokio::join!(
        observe_content(store, &text_url),
        owed_expire(desired, store)
    );
    let mut content =
        content.map_err(|e| anyhow::anyhow!("cannot read the archive {text_url}: {e}"))?;
    if let Some(archive) = &desired.plan.archive {
        content.copies =
            crate::observe::observe_copies(archive, systems, store, &content.backups).await;
    }
    let now = content
        .observed_at_unix
        .unwrap_or_else(crate::spec::time::now_unix);
    let (drill, drill_failed) = match due::drill(desired, &content, now) {
        Some((d, failed)) => (Some(d), failed),
        None => (None, None),
    };
    Ok(Owed {
        backup: due::backup(desired, &content, now),
        copy: due::copy(desired, &content, now),
        drill,
        region_drill: due::region_drill(desired, &content, now),
        drill_failed,
        expire: expire?,
    })
}

fn keep_of(desired: &Desired) -> Option<usize> {
    let keep = desired.plan.archive.as_ref()?.base_backups.as_ref()?.keep;
    Some(keep as usize)
}

/// One cluster: says what is due and, unless a dry run, does it.
async fn cluster(
    desired: &Desired,
    systems: &Systems,
    settings: &Settings,
    dry_run: bool,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let name = desired.cluster();
    if desired.plan.archive.is_none() {
        out("  nothing to run: the plan file has no archive section (no backups, no drills)\n")?;
        return Ok(());
    }
    let (url, region, _) = archive_of(desired)?;
    let store = Store::s3(systems.aws.s3(&region).await, &url.bucket);
    let first = match owed(desired, systems, &store).await {
        Ok(owed) => owed,
        Err(e) => {
            out(&format!("  could not decide what is due: {e:#}\n"))?;
            tally.failed.push(format!("{name} (archive not read)"));
            return Ok(());
        }
    };
    if dry_run || !first.anything_due() {
        say(&first, name, tally, dry_run)?;
        return Ok(());
    }
    // Decided again under the lock: another runner may have just done it.
    let _lock = match RunLock::acquire(
        desired,
        systems,
        &settings.lock_dir,
        "run-due",
        "pgdr run-due",
    )
    .await
    {
        Ok(lock) => lock,
        Err(e) => {
            out(&format!("  skipped: {e}\n"))?;
            for decision in first.overdue() {
                tally
                    .overdue
                    .push(format!("{} of {name}", decision.task.name()));
            }
            return Ok(());
        }
    };
    let owed = match owed(desired, systems, &store).await {
        Ok(owed) => owed,
        Err(e) => {
            out(&format!("  could not decide what is due: {e:#}\n"))?;
            tally.failed.push(format!("{name} (archive not read)"));
            return Ok(());
        }
    };
    let path = desired.source.as_path();
    if let Some(decision) = &owed.backup {
        out(&decision_line(decision))?;
        if let (true, Task::Backup(kind)) = (decision.due, decision.task) {
            let result = super::backup::run(&backup_args(path, kind), settings).await;
            record(tally, name, "backup", result)?;
        }
    }
    if owed.expire.is_some() {
        // After the backup: it may have pushed one beyond keep.
        let after = owed_expire(desired, &store).await;
        match after {
            Ok(None) => {}
            Ok(Some(expire_owed)) => {
                out(&expire_owed.line())?;
                if expire_owed.due() {
                    let args = ExpireArgs {
                        path: path.to_path_buf(),
                        dry_run: false,
                    };
                    let result = super::expire::run(&args, settings).await;
                    record(tally, name, "expire", result)?;
                }
            }
            Err(e) => record(tally, name, "expire", Err(e))?,
        }
    }
    copy_and_drill(desired, &owed, settings, tally).await?;
    if let Some(failed) = &owed.drill_failed {
        out(&format!("  attention: {failed}\n"))?;
        tally.failed.push(format!("the newest drill of {name}"));
    }
    Ok(())
}

/// The copies' catch-up (after the backup and expire: the new backup goes
/// along, the expired ones do not), the drill, and the region-loss drill
/// from the first copy, each when due.
async fn copy_and_drill(
    desired: &Desired,
    owed: &Owed,
    settings: &Settings,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let (name, path) = (desired.cluster(), desired.source.as_path());
    if let Some(decision) = &owed.copy {
        out(&decision_line(decision))?;
        if decision.due {
            let args = CopyArgs {
                path: path.to_path_buf(),
                dry_run: false,
                parallel: 8,
            };
            let result = super::copy::run(&args, settings).await;
            record(tally, name, "copy", result)?;
        }
    }
    if let Some(decision) = &owed.drill {
        out(&decision_line(decision))?;
        if decision.due {
            let result = super::drill::run(&drill_args(path, None), settings).await;
            record(tally, name, "drill", result)?;
        }
    }
    if let Some(decision) = &owed.region_drill {
        out(&decision_line(decision))?;
        let copy = desired
            .plan
            .archive
            .as_ref()
            .and_then(|a| a.copies.first())
            .map(|c| c.name().to_string());
        if decision.due {
            let result = super::drill::run(&drill_args(path, copy), settings).await;
            record(tally, name, "region drill", result)?;
        }
    }
    Ok(())
}

/// What expire would delete now, when the plan file sets `base_backups.keep`.
async fn owed_expire(desired: &Desired, store: &Store) -> anyhow::Result<Option<ExpireOwed>> {
    let Some(keep) = keep_of(desired) else {
        return Ok(None);
    };
    let (url, _, _) = archive_of(desired)?;
    let expiry = expire::decide(store, &url, keep).await?;
    Ok(Some(ExpireOwed {
        backups: expiry.plan.backups.len(),
        wal: expiry.plan.wal.len(),
    }))
}

/// The lines of a run that does nothing (a dry run, or nothing due).
fn say(owed: &Owed, name: &str, tally: &mut Tally, dry_run: bool) -> anyhow::Result<()> {
    let mut text = String::new();
    for decision in owed.backup.iter() {
        text.push_str(&decision_line(decision));
        if decision.due {
            tally.due.push(format!("backup of {name}"));
        }
    }
    if let Some(expire) = &owed.expire {
        text.push_str(&expire.line());
        if expire.due() {
            tally.due.push(format!("expire of {name}"));
        }
    }
    for decision in owed
        .copy
        .iter()
        .chain(owed.drill.iter())
        .chain(owed.region_drill.iter())
    {
        text.push_str(&decision_line(decision));
        if decision.due {
            tally
                .due
                .push(format!("{} of {name}", decision.task.name()));
        }
    }
    if let Some(failed) = &owed.drill_failed {
        text.push_str(&format!("  attention: {failed}\n"));
        if !dry_run {
            tally.failed.push(format!("the newest drill of {name}"));
        }
    }
    if owed.backup.is_none() && owed.drill.is_none() && owed.expire.is_none() {
        text.push_str("  nothing to run: the plan file sets no base_backups and no drill\n");
    }
    out(&text)?;
    Ok(())
}

/// A task's result in the tally; its own output is already printed.
fn record(
    tally: &mut Tally,
    name: &str,
    task: &str,
    result: anyhow::Result<Outcome>,
) -> anyhow::Result<()> {
    let what = format!("{task} of {name}");
    match result {
        Ok(Outcome::Clean) => tally.ran.push(what),
        Ok(Outcome::Found) => {
            out(&format!("  {task} failed: see its report above\n"))?;
            tally.failed.push(what);
        }
        Err(e) => {
            out(&format!("  {task} failed: {e:#}\n"))?;
            tally.failed.push(what);
        }
    }
    Ok(())
}

fn backup_args(path: &Path, kind: BackupType) -> BackupArgs {
    BackupArgs {
        path: path.to_path_buf(),
        standby: None,
        format: ListFormat::Human,
        wal_timeout: 120,
        method: None,
        jobs: None,
        backup_type: Some(match kind {
            BackupType::Full => BackupTypeArg::Full,
            BackupType::Diff => BackupTypeArg::Diff,
            BackupType::Incr => BackupTypeArg::Incr,
        }),
    }
}

fn drill_args(path: &Path, from_copy: Option<String>) -> DrillArgs {
    DrillArgs {
        path: path.to_path_buf(),
        target_time: None,
        keep: false,
        accept_loss: false,
        from_copy,
        rejoin: false,
        format: ListFormat::Human,
    }
}

/// Writes `text` to `file` through a temporary file beside it and a rename,
/// so a reader (node_exporter) never sees half a file.
fn write_replacing(file: &Path, text: &str) -> std::io::Result<()> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty());
    let name = file
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let temp = dir.unwrap_or(Path::new(".")).join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}
