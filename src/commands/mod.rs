//! One file per subcommand. Each takes its settled arguments and the
//! [`Settings`] resolved once by `main`, writes data to stdout (through
//! [`out`]) and logs to stderr, and returns an [`Outcome`] — or an error, which
//! `main` reports and turns into exit code 1 in one place.

pub mod apply;
pub mod backup;
pub mod backups;
pub mod check;
pub mod copy;
pub mod drill;
pub mod expire;
pub mod force_unlock;
pub mod generate_docs;
pub mod lint;
pub mod plan;
pub mod restore;
pub mod role_change;
pub mod run_due;
pub mod serve_metrics;
pub mod status;
pub mod wal;
pub mod watch;

use crate::observe;
use crate::plan::{plan_cluster, ClusterPlan};
use crate::providers::Systems;
use crate::render::human::Style;
use crate::settings::Settings;
use crate::spec::{self, Desired, SpecError, SpecErrors};
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// How a command that did its job ended. A command that could not do its job
/// returns an error instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and found nothing to do: exit 0.
    Clean,
    /// Ran and found something (changes, problems, drift, findings): exit 2.
    Found,
}

/// A failure PostgreSQL expects and needs no message for (the archive does not
/// have the WAL file `restore_command` asked for): exit 1, nothing on stderr
/// unless `-v`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QuietFailure(pub String);

/// The exit code a panic ends the process with (see `main`'s hook): 1, unless
/// a command set another (`wal-fetch` during archive recovery, where 1 would
/// tell PostgreSQL "no more WAL" and let it promote early).
static PANIC_EXIT_CODE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

pub fn panic_exit_code() -> i32 {
    PANIC_EXIT_CODE.load(std::sync::atomic::Ordering::SeqCst)
}

pub(crate) fn set_panic_exit_code(code: i32) {
    PANIC_EXIT_CODE.store(code, std::sync::atomic::Ordering::SeqCst);
}

/// Every error of every plan file that failed to load. `main` prints one
/// `error:` line per entry, then the summary.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct PlanFileErrors {
    pub errors: Vec<SpecError>,
    pub summary: String,
}

/// The checks lint adds to loading: `lint.ignore` names real rules, with reasons.
const LOAD_CHECKS: &[spec::ExtraCheck] = &[crate::lint::check_ignores];

/// Loads and validates one plan file, with every check commands apply.
pub fn load_one(path: &Path) -> Result<Desired, SpecErrors> {
    spec::load_file_with(path, LOAD_CHECKS)
}

/// Loads every plan file PATH names. Any error in any file stops the run before
/// anything live is read, so a file with errors changes nothing anywhere.
pub fn load_all(path: &Path) -> anyhow::Result<Vec<Desired>> {
    let files =
        spec::plan_files(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_one(&file) {
            Ok(d) => loaded.push(d),
            Err(SpecErrors(e)) => errors.extend(e),
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for d in &loaded {
        if let Some(other) = seen.insert(d.cluster().to_string(), d.source.display().to_string()) {
            errors.push(SpecError {
                file: d.source.clone(),
                line: spec::locate::locate(&d.text, "cluster").map(|l| l.0),
                column: None,
                path: "cluster".into(),
                message: format!("cluster `{}` is also defined in {other}; every plan file in a fleet needs its own cluster name", d.cluster()),
            });
        }
    }
    if !errors.is_empty() {
        let files: std::collections::BTreeSet<_> = errors.iter().map(|e| &e.file).collect();
        let summary = format!(
            "{} error{} in {} plan file{}; nothing was read or changed",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
        return Err(PlanFileErrors { errors, summary }.into());
    }
    Ok(loaded)
}

/// Loads the one plan file a recovery command works on (a folder is refused).
pub fn load_cluster(path: &Path, command: &str) -> anyhow::Result<Desired> {
    if path.is_dir() {
        anyhow::bail!(
            "{command} works on one cluster: give its plan file, not the folder {}",
            path.display()
        );
    }
    let mut loaded = load_all(path)?;
    Ok(loaded.remove(0))
}

/// The plan file's archive as the archive commands address it, with the
/// bucket's region and the plan's compression.
pub fn archive_of(
    desired: &Desired,
) -> anyhow::Result<(crate::format::ArchiveUrl, String, spec::Compression)> {
    let at = archive_at(desired, None)?;
    Ok((at.url, at.region, at.compression))
}

/// Where a recovery command reads the archive: home, or the copy named by
/// `--from-copy`.
pub struct ArchiveAt {
    pub url: crate::format::ArchiveUrl,
    pub region: String,
    pub compression: spec::Compression,
    /// The copy's name; `None` at home.
    pub copy: Option<String>,
}

/// The home archive, or (`from_copy`) the copy of that name in
/// `archive.copies`; an unknown name is an error listing the names there are.
pub fn archive_at(desired: &Desired, from_copy: Option<&str>) -> anyhow::Result<ArchiveAt> {
    let archive = desired.plan.archive.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: the plan file has no `archive` section, so there is no bucket to keep backups in",
            desired.source.display()
        )
    })?;
    let (text, region) = match from_copy {
        None => (archive.url(), desired.region().to_string()),
        Some(name) => {
            let copy = archive.copy(name).ok_or_else(|| {
                let names: Vec<&str> = archive.copies.iter().map(|c| c.name()).collect();
                anyhow::anyhow!(
                    "--from-copy {name}: {} has no such copy in archive.copies; {}",
                    desired.source.display(),
                    if names.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("expected one of: {}", names.join(", "))
                    }
                )
            })?;
            (archive.copy_url(copy), copy.region.clone())
        }
    };
    Ok(ArchiveAt {
        url: crate::format::ArchiveUrl::parse(&text).map_err(anyhow::Error::msg)?,
        region,
        compression: archive.compression,
        copy: from_copy.map(str::to_string),
    })
}

/// How a server this machine restores calls pgdr in its `restore_command`:
/// the plan's `archive.pgdr_path` (how database hosts call pgdr, e.g. a copy
/// the `postgres` user may run), else this pgdr.
pub fn pgdr_for_restore(desired: &Desired) -> anyhow::Result<String> {
    if let Some(path) = desired
        .plan
        .archive
        .as_ref()
        .and_then(|a| a.pgdr_path.clone())
    {
        return Ok(path);
    }
    Ok(std::env::current_exe()
        .context("finding this pgdr for restore_command")?
        .display()
        .to_string())
}

/// Observes ([`observe::observe_all`]) and plans every cluster. A cluster
/// whose state cannot be read gets an `error` and no changes; the others are
/// unaffected.
pub async fn plan_all(desired: &[Desired], systems: &Systems) -> Vec<ClusterPlan> {
    let lives = observe::observe_all(desired, systems).await;
    desired
        .iter()
        .zip(lives)
        .map(|(d, live)| {
            let plan = match live {
                Ok(live) => plan_cluster(d, &live),
                Err(e) => ClusterPlan {
                    cluster: d.cluster().to_string(),
                    file: d.source.display().to_string(),
                    changes: Vec::new(),
                    problems: Vec::new(),
                    notes: Vec::new(),
                    error: Some(e.to_string()),
                    live_sha256: String::new(),
                    file_sha256: d.text_sha256.clone(),
                },
            };
            tracing::info!(
                target: "pgdr::plan",
                cluster = d.cluster(),
                changes = plan.changes.len(),
                problems = plan.problems.len(),
                read = plan.error.is_none(),
                "planned"
            );
            plan
        })
        .collect()
}

pub fn style(settings: &Settings) -> Style {
    Style {
        color: settings.color,
    }
}

/// Writes data to stdout. A closed pipe (`pgdr plan x | head`) comes back as an
/// error of kind `BrokenPipe`, which `main` ends on quietly.
pub fn out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Asks on the terminal for `yes` before a change; refuses without a
/// terminal. `question` says what will happen, `hint` how to go on without
/// a terminal, `cancelled` what the refusal says (`apply cancelled; nothing
/// was applied`).
pub fn confirm(
    settings: &Settings,
    question: &str,
    hint: &str,
    cancelled: &str,
) -> anyhow::Result<()> {
    let nothing = cancelled
        .split("; ")
        .nth(1)
        .unwrap_or("nothing was changed");
    if !settings.interactive {
        anyhow::bail!("stdin is not a terminal, so pgdr cannot ask for confirmation; {nothing}\n  hint: {hint}");
    }
    eprint!("\n{question} Only 'yes' will be accepted to approve.\n  Enter a value: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        anyhow::bail!("{cancelled}");
    }
    Ok(())
}

/// Ctrl-C or SIGTERM, whichever comes first: its name.
pub async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}
