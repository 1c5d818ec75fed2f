//! A drill's steps, run by [`crate::execute::steps`] like a role change's,
//! each observing before it acts and checked again after:
//!
//! restore-backup → verify-pages → start-server → recover → check (the
//! scratch server detached from production first); `--rejoin` adds
//! [`super::rejoin`] (the list is in [`super::sequence`]).
//!
//! A failed step stops the drill, and its message is the drill's first
//! failure; the records are the report's journal (`steps`).

use super::checks::{amcheck, databases_check, detach_subscriptions, extensions_check, sql_check};
use super::pages;
use super::scratch::Scratch;
use super::DrillRequest;
use crate::execute::restore::{self, RestoreRequest};
use crate::execute::steps::{Decision, Step};
use crate::execute::ArchiveError;
use crate::plan::recovery::drill::recovery_limit;
use crate::plan::recovery::restore::Target;
use crate::providers::postgres;
use crate::providers::storage::Store;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use crate::state::drill::{CheckResult, DrillReport};
use std::sync::Mutex;
use std::time::Instant;

/// What the steps share: the request, the scratch server and the report
/// they fill in.
pub struct Drill<'a> {
    pub store: &'a Store,
    pub request: &'a DrillRequest<'a>,
    pub scratch: &'a Scratch,
    pub report: Mutex<DrillReport>,
    /// When the server was started (recovery time is measured from it).
    started: Mutex<Option<Instant>>,
}

impl<'a> Drill<'a> {
    pub fn new(
        store: &'a Store,
        request: &'a DrillRequest<'a>,
        scratch: &'a Scratch,
        report: DrillReport,
    ) -> Self {
        Drill {
            store,
            request,
            scratch,
            report: Mutex::new(report),
            started: Mutex::new(None),
        }
    }

    pub(super) fn info(&self) -> Result<Conninfo, ArchiveError> {
        Conninfo::parse(
            &self
                .scratch
                .server
                .conninfo(&self.request.user, &self.request.dbname),
        )
        .map_err(|e| ArchiveError::Failed(format!("the restored server's conninfo: {e}")))
    }

    /// A connection to the restored server once it accepts one and has left
    /// recovery; `None` before.
    async fn promoted(&self) -> Option<tokio_postgres::Client> {
        let info = self.info().ok()?;
        let pg = postgres::connect("restored", &info, &PgEnv::default())
            .await
            .ok()?;
        matches!(postgres::backup::in_recovery(&pg).await, Ok(false)).then_some(pg)
    }
}

/// The backup and its recovery settings are in the scratch folder.
pub struct RestoreBackup;

impl<'a> Step<Drill<'a>> for RestoreBackup {
    type Seen = bool;
    type Act = ();
    type Error = ArchiveError;
    fn name(&self) -> &str {
        "restore-backup"
    }
    async fn observe(&self, ctx: &Drill<'a>) -> Result<bool, ArchiveError> {
        let data = ctx.scratch.server.data();
        Ok(data.join("recovery.signal").is_file() && !data.join(restore::IN_PROGRESS).exists())
    }
    fn decide(&self, restored: &bool) -> Decision {
        if *restored {
            Decision::Done("the backup is restored".into())
        } else {
            Decision::Act(
                "restore the backup and write its recovery settings".into(),
                (),
            )
        }
    }
    async fn act(&self, ctx: &Drill<'a>, _: ()) -> Result<(), ArchiveError> {
        let request = ctx.request;
        let backup = &request.chosen.backup;
        let data = ctx.scratch.server.data();
        let restore_request = RestoreRequest {
            url: request.url,
            region: request.region,
            backup,
            chain: &request.chosen.chain,
            target: request.target.clone(),
            dir: data,
            pgdr: &request.pgdr,
            wal_until: Some(request.chosen.wal_until()),
            accept_loss: request.chosen.accepted_loss.is_some(),
            delta: false,
            extra_settings: &[],
            progress: request.progress,
        };
        let unpacked = restore::restore(ctx.store, &restore_request)
            .await
            .map_err(|e| {
                ArchiveError::Failed(format!("the restore of backup {} failed: {e}", backup.id))
            })?;
        {
            let mut report = ctx.report.lock().unwrap();
            report.restore_seconds = unpacked.seconds;
            report.restored_bytes = unpacked.bytes;
        }
        // A Debian-style cluster keeps postgresql.conf outside the data folder.
        let conf = data.join("postgresql.conf");
        if !conf.exists() {
            std::fs::write(
                &conf,
                "# written by pgdr drill: the source keeps its configuration elsewhere\n",
            )
            .map_err(|e| ArchiveError::io(&conf, e))?;
        }
        crate::execute::failpoint::reached("drill-restored").await;
        Ok(())
    }
}

/// The restored folder's page checksums, before the server starts.
pub struct VerifyPages;

/// The check `verify-pages` records.
const PAGE_CHECK: &str = "page-checksums";

impl<'a> Step<Drill<'a>> for VerifyPages {
    type Seen = bool;
    type Act = ();
    type Error = ArchiveError;
    fn name(&self) -> &str {
        "verify-pages"
    }
    async fn observe(&self, ctx: &Drill<'a>) -> Result<bool, ArchiveError> {
        Ok(ctx
            .report
            .lock()
            .unwrap()
            .checks
            .iter()
            .any(|c| c.name == PAGE_CHECK))
    }
    fn decide(&self, verified: &bool) -> Decision {
        if *verified {
            Decision::Done("the pages are verified".into())
        } else {
            Decision::Act(
                "verify the page checksums of the restored folder".into(),
                (),
            )
        }
    }
    async fn act(&self, ctx: &Drill<'a>, _: ()) -> Result<(), ArchiveError> {
        let data = ctx.scratch.server.data().to_path_buf();
        let controldata = ctx.scratch.server.local.bin("pg_controldata");
        let start_lsn = ctx.request.chosen.backup.start_lsn.0;
        let result = tokio::task::spawn_blocking(move || {
            let control = pages::control(&controldata, &data)?;
            if !control.checksums {
                return Ok(CheckResult::new(
                    PAGE_CHECK,
                    true,
                    "the cluster has no data checksums (initdb --data-checksums turns them on): nothing to verify",
                ));
            }
            if !control.scannable() {
                return Ok(CheckResult::new(
                    PAGE_CHECK,
                    true,
                    format!(
                        "pages of {} bytes, {} to a segment: not verified (pgdr reads 8 KiB pages in 1 GiB segments, as its backups check them)",
                        control.block_size, control.blocks_per_segment
                    ),
                ));
            }
            let scan = pages::scan(&data, start_lsn)?;
            Ok::<_, ArchiveError>(match scan.bad.split_first() {
                None => CheckResult::new(
                    PAGE_CHECK,
                    true,
                    format!("{} pages in {} files verified", scan.pages, scan.files),
                ),
                Some(((file, block), more)) => CheckResult::new(
                    PAGE_CHECK,
                    false,
                    format!(
                        "checksum verification failed in file \"{file}\", block {block}{}",
                        if more.is_empty() {
                            String::new()
                        } else {
                            format!(" and {} more page(s)", more.len())
                        }
                    ),
                ),
            })
        })
        .await
        .map_err(|e| ArchiveError::Failed(format!("verifying the pages: {e}")))??;
        ctx.report.lock().unwrap().checks.push(result);
        Ok(())
    }
}

/// The restored server is started (it recovers first).
pub struct StartServer;

impl<'a> Step<Drill<'a>> for StartServer {
    type Seen = bool;
    type Act = ();
    type Error = ArchiveError;
    fn name(&self) -> &str {
        "start-server"
    }
    async fn observe(&self, ctx: &Drill<'a>) -> Result<bool, ArchiveError> {
        Ok(ctx.started.lock().unwrap().is_some())
    }
    fn decide(&self, started: &bool) -> Decision {
        if *started {
            Decision::Done("started".into())
        } else {
            Decision::Act("start the restored server on loopback".into(), ())
        }
    }
    async fn act(&self, ctx: &Drill<'a>, _: ()) -> Result<(), ArchiveError> {
        let now = Instant::now();
        let isolation = ctx.scratch.start()?;
        *ctx.started.lock().unwrap() = Some(now);
        ctx.report.lock().unwrap().isolation.extend(isolation);
        Ok(())
    }
}

/// Recovery reached the target and the server promoted.
pub struct Recover;

impl<'a> Step<Drill<'a>> for Recover {
    type Seen = bool;
    type Act = ();
    type Error = ArchiveError;
    fn name(&self) -> &str {
        "recover"
    }
    async fn observe(&self, ctx: &Drill<'a>) -> Result<bool, ArchiveError> {
        Ok(ctx.promoted().await.is_some())
    }
    fn decide(&self, promoted: &bool) -> Decision {
        if *promoted {
            Decision::Done("recovered and promoted".into())
        } else {
            Decision::Act(
                "wait until recovery reaches the target and the server promotes".into(),
                (),
            )
        }
    }
    async fn act(&self, ctx: &Drill<'a>, _: ()) -> Result<(), ArchiveError> {
        let info = ctx.info()?;
        ctx.scratch
            .server
            .wait_promoted(
                &info,
                &PgEnv::default(),
                recovery_limit(&ctx.request.objectives),
            )
            .await
            .map_err(ArchiveError::Failed)?;
        let recovering = ctx.started.lock().unwrap().unwrap_or_else(Instant::now);
        let mut report = ctx.report.lock().unwrap();
        report.recovery_seconds = recovering.elapsed().as_secs_f64();
        let detail = format!(
            "accepts connections and promoted after {:.1}s of recovery",
            report.recovery_seconds
        );
        report
            .checks
            .push(CheckResult::new("recovered", true, detail));
        Ok(())
    }
}

/// What recovery replayed (the RPO), then the checks: the source's
/// databases, `pg_amcheck`, the plan's SQL.
pub struct Check;

impl<'a> Step<Drill<'a>> for Check {
    type Seen = bool;
    type Act = ();
    type Error = ArchiveError;
    fn name(&self) -> &str {
        "check"
    }
    async fn observe(&self, ctx: &Drill<'a>) -> Result<bool, ArchiveError> {
        let report = ctx.report.lock().unwrap();
        Ok(report.checks.iter().any(|c| c.name == "pg_amcheck"))
    }
    fn decide(&self, checked: &bool) -> Decision {
        if *checked {
            Decision::Done("checked".into())
        } else {
            Decision::Act("measure what was replayed and run the checks".into(), ())
        }
    }
    async fn act(&self, ctx: &Drill<'a>, _: ()) -> Result<(), ArchiveError> {
        let request = ctx.request;
        let backup = &request.chosen.backup;
        let pg = postgres::connect("restored", &ctx.info()?, &PgEnv::default()).await?;
        let replayed = postgres::backup::replayed(&pg).await?;
        let (last_commit, replay_lsn) = (replayed.commit_epoch, replayed.lsn);
        // Detached before anything else runs on it; the server started with
        // no replication workers and no archiving (`Scratch::start`).
        let detached = detach_subscriptions(&pg, ctx.scratch, &request.user)
            .await
            .map_err(|e| {
                ArchiveError::Failed(format!("detaching the restored copy's subscriptions: {e}"))
            })?;
        let mut checks = Vec::new();
        if let Some(source) = &request.source_databases {
            checks.push(databases_check(&pg, source).await);
        }
        checks.push(extensions_check(&pg, &ctx.scratch.server, &request.user).await);
        checks.push(amcheck(ctx.scratch, &request.user).await);
        for check in request.checks {
            checks.push(sql_check(&pg, check, &request.timing).await);
        }
        let mut report = ctx.report.lock().unwrap();
        report
            .isolation
            .extend(super::scratch::ISOLATION.iter().map(|s| s.to_string()));
        if detached.is_empty() {
            report
                .isolation
                .push("the restored copy has no logical replication subscriptions".into());
        }
        report.isolation.extend(detached);
        if let (Some(end), start) = (replay_lsn, backup.start_lsn) {
            report.replayed_wal_bytes = end.0.saturating_sub(start.0);
        }
        // With no commit replayed, the data is as of the backup's end.
        let restored_until = last_commit.or_else(|| backup.stop_secs().map(|s| s as f64));
        report.last_replayed_commit = last_commit.map(|t| crate::spec::time::Timestamp(t as i64));
        let target_time = match request.target {
            Target::Time(t) => Some(t as f64),
            Target::Latest => Some(request.started_unix as f64),
            Target::Lsn(_) => None,
        };
        if let (Some(target), Some(until)) = (target_time, restored_until) {
            report.rpo_seconds = Some((target - until).max(0.0));
        }
        report.checks.extend(checks);
        Ok(())
    }
}
