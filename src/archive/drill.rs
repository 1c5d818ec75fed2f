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

use super::restore::{self, Chosen, RestoreRequest, Target};
use super::scratch::Scratch;
use super::{ArchiveError, ArchiveUrl};
use crate::providers::postgres;
use crate::settings::PgEnv;
use crate::spec::{Conninfo, DrillCheck};
use crate::state::drill::{CheckResult, DrillReport, Objectives};
use crate::state::wal::Lsn;
use aws_sdk_s3::Client;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct DrillRequest<'a> {
    pub cluster: &'a str,
    pub url: &'a ArchiveUrl,
    pub region: Option<&'a str>,
    pub target: Target,
    pub chosen: Chosen,
    pub checks: &'a [DrillCheck],
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
}

/// What a failed drill step says (the drill ran: the report records it).
type StepResult<T> = Result<T, String>;

/// Runs the drill. `Err` only when it could not run at all (no scratch
/// folder, no PostgreSQL binaries); a restore that fails, a server that does
/// not recover and a failed check are a report with `ok: false`.
pub async fn run(
    client: &Client,
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
        crate::spec::time::rfc3339(request.started_unix),
        request.objectives,
        backup.pg_version,
    );
    report.accepted_loss = request.chosen.accepted_loss.clone();
    let ran = stages(client, request, &scratch, &mut report).await;
    conclude(&mut report, ran);
    let kept = if request.keep {
        scratch.keep()?;
        Some(scratch.dir.clone())
    } else {
        scratch.remove()?;
        None
    };
    Ok((report, kept))
}

/// Restore, recover, check; fills `report` as it goes.
async fn stages(
    client: &Client,
    request: &DrillRequest<'_>,
    scratch: &Scratch,
    report: &mut DrillReport,
) -> StepResult<()> {
    let backup = &request.chosen.backup;
    let restore_request = RestoreRequest {
        url: request.url,
        region: request.region,
        backup,
        target: request.target.clone(),
        dir: &scratch.server.data,
        pgdr: &request.pgdr,
        wal_until: Some(request.chosen.wal_until()),
        accept_loss: request.chosen.accepted_loss.is_some(),
        extra_settings: &[],
        progress: request.progress,
    };
    let unpacked = restore::restore(client, &restore_request)
        .await
        .map_err(|e| format!("the restore of backup {} failed: {e}", backup.id))?;
    report.restore_seconds = unpacked.seconds;
    report.restored_bytes = unpacked.bytes;
    // A Debian-style cluster keeps postgresql.conf outside the data folder.
    let conf = scratch.server.data.join("postgresql.conf");
    if !conf.exists() {
        std::fs::write(
            &conf,
            "# written by pgdr drill: the source keeps its configuration elsewhere\n",
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    }

    let recovering = Instant::now();
    scratch.start().map_err(|e| e.to_string())?;
    let info = Conninfo::parse(&scratch.server.conninfo(&request.user, &request.dbname))
        .map_err(|e| format!("the restored server's conninfo: {e}"))?;
    let env = PgEnv::default();
    let pg = scratch
        .server
        .wait_promoted(&info, &env, recovery_limit(&request.objectives))
        .await?;
    report.recovery_seconds = recovering.elapsed().as_secs_f64();
    report.checks.push(CheckResult {
        name: "recovered".into(),
        ok: true,
        detail: format!(
            "accepts connections and promoted after {:.1}s of recovery",
            report.recovery_seconds
        ),
    });

    let row = pg
        .query_one(
            "SELECT extract(epoch FROM pg_last_xact_replay_timestamp())::float8, pg_last_wal_replay_lsn()::text",
            &[],
        )
        .await
        .map_err(|e| format!("reading what recovery replayed: {}", postgres::error_text(&e)))?;
    let last_commit: Option<f64> = row.get(0);
    let replay_lsn = row
        .get::<_, Option<String>>(1)
        .as_deref()
        .and_then(Lsn::parse);
    if let (Some(end), Some(start)) = (replay_lsn, Lsn::parse(&backup.start_lsn)) {
        report.replayed_wal_bytes = end.0.saturating_sub(start.0);
    }
    // With no commit replayed, the data is as of the backup's end.
    let restored_until = last_commit.or_else(|| backup.stop_secs().map(|s| s as f64));
    report.last_replayed_commit = last_commit.map(|t| crate::spec::time::rfc3339(t as i64));
    let target_time = match request.target {
        Target::Time(t) => Some(t as f64),
        Target::Latest => Some(request.started_unix as f64),
        Target::Lsn(_) => None,
    };
    if let (Some(target), Some(until)) = (target_time, restored_until) {
        report.rpo_seconds = Some((target - until).max(0.0));
    }

    if let Some(source) = &request.source_databases {
        report.checks.push(databases_check(&pg, source).await);
    }
    report.checks.push(amcheck(scratch, &request.user).await);
    for check in request.checks {
        report.checks.push(sql_check(&pg, check).await);
    }
    record_ready(report, request.started, request.started_unix);
    Ok(())
}

/// Once every check passed: the RTO (drill start until now) and when it was
/// ready. With a failed check there is no RTO to speak of.
pub(super) fn record_ready(report: &mut DrillReport, started: Instant, started_unix: i64) {
    if report.checks.iter().all(|c| c.ok) {
        let rto = started.elapsed().as_secs_f64();
        report.rto_seconds = Some(rto);
        report.ready_at = Some(crate::spec::time::rfc3339(
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

/// How long recovery may take before the drill gives up: three times the RTO
/// objective, at least ten minutes.
pub fn recovery_limit(objectives: &Objectives) -> Duration {
    Duration::from_secs((objectives.rto_seconds * 3).max(600))
}

pub(super) async fn databases_check(pg: &tokio_postgres::Client, source: &[String]) -> CheckResult {
    let name = "databases".to_string();
    match postgres::databases(pg).await {
        Err(e) => CheckResult {
            name,
            ok: false,
            detail: postgres::error_text(&e),
        },
        Ok(restored) => {
            let missing: Vec<&String> = source.iter().filter(|d| !restored.contains(d)).collect();
            CheckResult {
                name,
                ok: missing.is_empty(),
                detail: if missing.is_empty() {
                    format!("all {} databases of the source are there", source.len())
                } else {
                    format!(
                        "missing from the restore: {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            }
        }
    }
}

/// pg_amcheck over every database: heap and B-tree index corruption.
async fn amcheck(scratch: &Scratch, user: &str) -> CheckResult {
    let program = scratch.server.bin("pg_amcheck");
    let mut command = std::process::Command::new(&program);
    command
        .args(["--all", "--install-missing", "--jobs", "2"])
        .arg("--host")
        .arg(&scratch.dir)
        .args([
            "--port",
            &scratch.server.port.to_string(),
            "--username",
            user,
        ])
        .stdin(std::process::Stdio::null());
    let name = "pg_amcheck".to_string();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    match output {
        Err(e) => CheckResult {
            name,
            ok: false,
            detail: format!("{}: {e}", program.display()),
        },
        Ok(out) if out.status.success() => CheckResult {
            name,
            ok: true,
            detail: "no corruption found in any database (heap and B-tree indexes)".into(),
        },
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let first: Vec<&str> = text.lines().take(5).collect();
            CheckResult {
                name,
                ok: false,
                detail: format!("{} ({})", first.join(" | "), out.status),
            }
        }
    }
}

/// One of the plan's checks: its SQL must return true.
pub(super) async fn sql_check(pg: &tokio_postgres::Client, check: &DrillCheck) -> CheckResult {
    let (ok, detail) = match pg.simple_query(&check.sql).await {
        Err(e) => (false, postgres::error_text(&e)),
        Ok(messages) => {
            let first = messages.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).map(str::to_string))
                }
                _ => None,
            });
            match first {
                Some(Some(v)) if v == "t" => (true, String::new()),
                Some(Some(v)) => (false, format!("returned `{v}`, not true")),
                Some(None) => (false, "returned NULL, not true".into()),
                None => (false, "returned no row".into()),
            }
        }
    };
    CheckResult {
        name: check.name.clone(),
        ok,
        detail,
    }
}

/// Failed checks and missed objectives, one line each. Pure.
pub fn judge(report: &DrillReport) -> Vec<String> {
    let mut failures: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("check `{}` failed: {}", c.name, c.detail))
        .collect();
    if let Some(rto) = report.rto_seconds {
        if rto > report.objectives.rto_seconds as f64 {
            failures.push(format!(
                "measured RTO {rto:.0}s is above the objective {}s",
                report.objectives.rto_seconds
            ));
        }
    }
    if let Some(rpo) = report.rpo_seconds {
        if rpo > report.objectives.rpo_seconds as f64 {
            failures.push(format!(
                "achieved RPO {rpo:.0}s is above the objective {}s (last replayed commit {})",
                report.objectives.rpo_seconds,
                report.last_replayed_commit.as_deref().unwrap_or("none")
            ));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rto: Option<f64>, rpo: Option<f64>, checks: &[(&str, bool)]) -> DrillReport {
        let objectives = Objectives {
            rpo_seconds: 300,
            rto_seconds: 1800,
        };
        let mut r = DrillReport::started(
            "c",
            "b".into(),
            "latest".into(),
            String::new(),
            objectives,
            150000,
        );
        r.rto_seconds = rto;
        r.rpo_seconds = rpo;
        r.checks = checks
            .iter()
            .map(|(n, ok)| CheckResult {
                name: n.to_string(),
                ok: *ok,
                detail: "d".into(),
            })
            .collect();
        r
    }

    #[test]
    fn a_drill_passes_only_with_every_check_and_both_objectives() {
        assert!(judge(&report(Some(60.0), Some(10.0), &[("a", true)])).is_empty());
        let failed = judge(&report(
            Some(60.0),
            Some(10.0),
            &[("a", true), ("orders", false)],
        ));
        assert_eq!(failed, ["check `orders` failed: d"]);
        let slow = judge(&report(Some(1801.0), Some(301.0), &[]));
        assert!(
            slow[0].contains("RTO 1801s is above the objective 1800s"),
            "{slow:?}"
        );
        assert!(
            slow[1].contains("RPO 301s is above the objective 300s"),
            "{slow:?}"
        );
    }
}
