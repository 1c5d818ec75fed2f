//! `pgdr drill`: the proof that recovery works. Restore the chosen backup into
//! a scratch folder, start it on this machine, wait until recovery reaches the
//! target and the server promotes, run the checks, measure RTO and RPO, and
//! judge both against the plan's objectives. The report is plain data
//! ([`DrillReport`]); the command layer stores and prints it.
//!
//! Why measured this way:
//! - **RTO** is drill start until the restored server passed every check: the
//!   time a real recovery takes before anyone can trust the server, download,
//!   replay and verification included.
//! - **RPO** is the target time minus the last commit the server replayed. For
//!   `latest` the target is the drill's start, so it also counts time in which
//!   nothing was written: an upper bound, never an underestimate.

pub mod checks;
pub mod pages;
pub mod rds;
pub mod rejoin;
pub mod scratch;
pub mod steps;

use super::steps::{run_steps, DynStep};
use super::ArchiveError;
use crate::format::ArchiveUrl;
use crate::plan::recovery::drill::{judge, Timing};
use crate::plan::recovery::restore::{Chosen, Target};
use crate::providers::storage::Store;
use crate::spec::DrillCheck;
use crate::state::drill::{DrillReport, Objectives};
use crate::state::journal::StepOutcome;
use scratch::Scratch;
use std::path::PathBuf;
use std::time::Instant;

pub struct DrillRequest<'a> {
    pub cluster: &'a str,
    pub url: &'a ArchiveUrl,
    pub region: Option<&'a str>,
    pub target: Target,
    pub chosen: Chosen,
    pub checks: &'a [DrillCheck],
    /// What the checks' durations are judged against.
    pub timing: Timing,
    pub objectives: Objectives,
    /// The databases the source lists (compared with the restored server's),
    /// when the source could be read and the target is `latest`.
    pub source_databases: Option<Vec<String>>,
    /// Who to connect to the restored server as, and where the plan's checks run.
    pub user: String,
    pub dbname: String,
    /// Where scratch folders live, and the drill's timestamp (its id).
    pub root: PathBuf,
    pub ts: String,
    pub keep: bool,
    /// How the restored server calls pgdr (`restore_command`).
    pub pgdr: String,
    pub progress: bool,
    /// Drill start, for RTO; and as seconds since the epoch (for `latest`, the target time).
    pub started: Instant,
    pub started_unix: i64,
    /// `--from-copy NAME`: restored from that copy of the archive.
    pub from_copy: Option<String>,
    /// `--rejoin` (active-active): the restored node re-joins the mesh
    /// after the checks; the RTO then includes it.
    pub rejoin: Option<rejoin::Rejoin>,
}

/// Runs the drill. `Err` only when it could not run at all (no scratch
/// folder, no PostgreSQL binaries); a restore that fails, a server that does
/// not recover and a failed check are a report with `ok: false`.
pub async fn run(
    store: &Store,
    request: &DrillRequest<'_>,
) -> Result<(DrillReport, Option<PathBuf>), ArchiveError> {
    let backup = &request.chosen.backup;
    let scratch = Scratch::create(
        &request.root,
        request.cluster,
        &request.ts,
        backup.pg_version / 10_000,
    )?;
    let mut report = DrillReport::started(
        request.cluster,
        backup.id.clone(),
        request.target.describe(),
        crate::spec::time::Timestamp(request.started_unix),
        request.objectives,
        backup.pg_version,
    );
    report.accepted_loss = request.chosen.accepted_loss.clone();
    report.from_copy = request.from_copy.clone();
    let drill = steps::Drill::new(store, request, &scratch, report);
    let sequence = sequence(request.rejoin.is_some());
    let refs: Vec<&dyn DynStep<steps::Drill>> = sequence.iter().map(|s| s.as_ref()).collect();
    let records = run_steps(&drill, &refs, |_| {}).await;
    let mut report = drill.report.into_inner().unwrap_or_else(|e| e.into_inner());
    // The first step that did not succeed is what stopped the drill.
    let stopped = records.iter().find_map(|r| match &r.outcome {
        StepOutcome::Failed(why) | StepOutcome::Refused(why) => Some(why.clone()),
        _ => None,
    });
    report.steps = records;
    if stopped.is_none() {
        record_ready(&mut report, request.started, request.started_unix);
    }
    conclude(&mut report, stopped.map_or(Ok(()), Err));
    let kept = if request.keep {
        scratch.keep()?;
        Some(scratch.dir.clone())
    } else {
        scratch.remove()?;
        None
    };
    Ok((report, kept))
}

/// The steps, in order; `rejoin` (`--rejoin`) adds the re-join of an
/// active-active node.
fn sequence<'a>(rejoin: bool) -> Vec<Box<dyn DynStep<steps::Drill<'a>> + 'a>> {
    let mut sequence: Vec<Box<dyn DynStep<steps::Drill<'a>> + 'a>> = vec![
        Box::new(steps::RestoreBackup),
        Box::new(steps::VerifyPages),
        Box::new(steps::StartServer),
        Box::new(steps::Recover),
        Box::new(steps::Check),
    ];
    if rejoin {
        sequence.push(Box::new(rejoin::RejoinMesh));
    }
    sequence
}

/// Once every check passed: the RTO (drill start until now) and when it was
/// ready. With a failed check there is no RTO to speak of.
pub(super) fn record_ready(report: &mut DrillReport, started: Instant, started_unix: i64) {
    if report.checks.iter().all(|c| c.ok) {
        let rto = started.elapsed().as_secs_f64();
        report.rto_seconds = Some(rto);
        report.ready_at = Some(crate::spec::time::Timestamp(
            started_unix + rto.round() as i64,
        ));
    }
}

/// Ends a report: what stopped the drill (if anything), then every failed
/// check and missed objective; `ok` when there is none.
pub(super) fn conclude(report: &mut DrillReport, ran: Result<(), String>) {
    if let Err(why) = ran {
        report.failures.push(why);
    }
    report.failures.extend(judge(report));
    report.ok = report.failures.is_empty();
}
