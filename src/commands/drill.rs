//! `pgdr drill PLAN_FILE [--target-time T] [--keep]`: restore into a scratch
//! server on this machine, check it, measure RTO and RPO against the plan's
//! objectives, store the report in `<prefix>drills/` and print it. Exit 0
//! passed, 2 ran but failed, 1 could not run. Ctrl-C stops the scratch server
//! and removes its folder; a drill killed outright is cleaned up by the next.

use super::{archive_at, load_cluster, out, ArchiveAt, Outcome};
use crate::cli::{DrillArgs, ListFormat};
use crate::execute::drill::rds::{self as drill_rds, RdsDrillRequest};
use crate::execute::drill::{self, scratch, DrillRequest};
use crate::execute::lock::RunLock;
use crate::execute::{backup, restore};
use crate::plan::recovery::drill::Timing;
use crate::plan::recovery::restore::Target;
use crate::providers::postgres;
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::settings::Settings;
use crate::spec::{Desired, DrillTarget, DEFAULT_S3_REGION};
use crate::state::drill::{DrillReport, Objectives};
use anyhow::{anyhow, Context};
use std::collections::HashMap;
use std::io::IsTerminal;

pub async fn run(args: &DrillArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_cluster(&args.path, "drill")?;
    let plan = &desired.plan;
    let started = std::time::Instant::now();
    let now = crate::spec::time::now_unix();
    let target = match (&args.target_time, plan.drill.as_ref()) {
        (Some(t), _) => Target::Time(
            crate::spec::time::parse_target(t, now).map_err(|e| anyhow!("--target-time: {e}"))?,
        ),
        (None, Some(d)) => match d.target().map_err(|e| anyhow!("drill.target: {e}"))? {
            DrillTarget::Latest => Target::Latest,
            DrillTarget::Ago(span) => Target::Time(now - span.as_secs() as i64),
        },
        (None, None) => Target::Latest,
    };
    let checks = plan
        .drill
        .as_ref()
        .map(|d| d.checks.as_slice())
        .unwrap_or_default();
    let objectives = Objectives {
        rpo_seconds: plan.objectives.rpo.as_secs(),
        rto_seconds: plan.objectives.rto.as_secs(),
    };
    let systems = Systems::new(settings);
    // Refused before anything is locked or read.
    rejoin_of(args, &desired)?;
    if args.from_copy.is_some() && plan.primary.rds.is_some() {
        anyhow::bail!(
            "--from-copy: {} has an RDS primary, whose drill restores RDS's own backups; a copy of the archive holds none of its WAL",
            desired.source.display()
        );
    }
    // Where the drill reads backups and stores its report: home, or for a
    // region-loss drill the copy (the home bucket is never touched).
    let at = plan
        .archive
        .as_ref()
        .map(|_| archive_at(&desired, args.from_copy.as_deref()))
        .transpose()?;
    let _lock = RunLock::acquire_in(
        &desired,
        &systems,
        &settings.lock_dir,
        ("drill", "pgdr drill"),
        at.as_ref().map(|a| (a.url.clone(), a.region.clone())),
    )
    .await?;
    let previous = match &at {
        Some(at) => {
            let store = Store::s3(systems.aws.s3(&at.region).await, &at.url.bucket);
            crate::observe::archive::drills(&store, &at.url)
                .await
                .map_err(|e| eprintln!("warning: the last passed drill could not be read, so no check is compared with it: {e}"))
                .ok()
                .and_then(|d| d.newest_ok)
        }
        None => None,
    };
    let timing = Timing::after(
        previous.as_ref(),
        plan.drill.as_ref().and_then(|d| d.max_slowdown),
    );
    // A region-loss drill assumes the primary's region is gone: it is not read.
    let primary = plan
        .primary
        .postgres
        .as_ref()
        .filter(|_| args.from_copy.is_none());
    // Read while the backup is chosen: only a `latest` drill compares them.
    let latest = target == Target::Latest;
    let source_databases = async move {
        match (latest, primary) {
            (true, Some(info)) => source_databases(info, settings).await,
            _ => None,
        }
    };
    let drill = Drill {
        args,
        settings,
        desired: &desired,
        systems: &systems,
        target,
        checks,
        timing,
        objectives,
        ts: backup::backup_id(std::time::SystemTime::now()),
        started,
        now,
        at,
    };
    match &plan.primary.rds {
        Some(rds_primary) => drill.on_rds(&rds_primary.instance, source_databases).await,
        None => drill.restoring_the_archive(source_databases).await,
    }
}

/// What both kinds of drill share: the request, settled.
struct Drill<'a> {
    args: &'a DrillArgs,
    settings: &'a Settings,
    desired: &'a crate::spec::Desired,
    systems: &'a Systems,
    target: Target,
    checks: &'a [crate::spec::DrillCheck],
    timing: Timing,
    objectives: Objectives,
    ts: String,
    started: std::time::Instant,
    now: i64,
    /// The archive the drill restores from and reports to (none: RDS
    /// without an archive).
    at: Option<ArchiveAt>,
}

impl Drill<'_> {
    /// An RDS primary: a point-in-time restore into a scratch instance.
    async fn on_rds(
        self,
        instance: &str,
        source_databases: impl std::future::Future<Output = Option<Vec<String>>>,
    ) -> anyhow::Result<Outcome> {
        let Drill {
            args,
            settings,
            desired,
            systems,
            target,
            checks,
            timing,
            objectives,
            ts,
            started,
            now,
            at,
        } = self;
        let primary = desired.plan.primary.postgres.as_ref();
        let client = systems.aws.rds(desired.region()).await;
        for left in drill_rds::clean_leftovers(&client, instance, desired.cluster()).await? {
            eprintln!("Deleted the scratch instance an interrupted drill left: {left}.");
        }
        let source_databases = source_databases.await;
        let request = RdsDrillRequest {
            cluster: desired.cluster(),
            instance,
            target,
            checks,
            timing,
            objectives,
            source_databases,
            conninfo: primary.cloned(),
            pg_env: &settings.pg,
            ts: ts.clone(),
            keep: args.keep,
            started,
            started_unix: now,
        };
        eprintln!(
            "Drilling {}: RDS point-in-time restore of {} to {} into {}",
            desired.cluster(),
            instance,
            request.target.describe(),
            drill_rds::scratch_id(instance, &ts)
        );
        let (report, kept) = tokio::select! {
            ran = drill_rds::run(&client, &request) => ran.with_context(|| format!("drill of {}", desired.cluster()))?,
            signal = super::interrupted() => {
                let removed = drill_rds::clean_leftovers(&client, instance, desired.cluster()).await.unwrap_or_default();
                anyhow::bail!("drill interrupted by {signal}; scratch instance(s) deleted: {}", removed.join(", "));
            }
        };
        let kept = kept.map(|id| format!("the scratch instance {id}"));
        finish(args, settings, at.as_ref(), &ts, &report, kept).await
    }

    /// A restore from the archive into a scratch server on this machine.
    async fn restoring_the_archive(
        self,
        source_databases: impl std::future::Future<Output = Option<Vec<String>>>,
    ) -> anyhow::Result<Outcome> {
        let Drill {
            args,
            settings,
            desired,
            systems,
            target,
            checks,
            timing,
            objectives,
            ts,
            started,
            now,
            at,
        } = self;
        // The conninfo's user and database (for the restored server): the
        // plan file's, even for a region-loss drill, which never connects
        // to the primary itself.
        let primary = desired.plan.primary.postgres.as_ref();
        let at = at.expect("a drill of a self-managed primary has an archive (validated)");
        let (url, region) = (at.url.clone(), at.region.clone());
        let root = settings.scratch_dir.clone();
        for left in scratch::clean_leftovers(&root, desired.cluster())? {
            eprintln!(
                "Removed what an interrupted drill left: {} (its server stopped).",
                left.display()
            );
        }

        let store = Store::s3(systems.aws.s3(&region).await, &url.bucket);
        let (chosen, source_databases) = tokio::join!(
            restore::choose_in_archive(&store, &url, &target, None, now, args.accept_loss),
            source_databases
        );
        let chosen = chosen.with_context(|| format!("drill of {}", desired.cluster()))?;
        let request = DrillRequest {
            cluster: desired.cluster(),
            url: &url,
            region: (region != DEFAULT_S3_REGION).then_some(region.as_str()),
            target: chosen.target.clone(),
            chosen,
            checks,
            timing,
            objectives,
            source_databases,
            user: primary
                .and_then(|i| i.get("user"))
                .unwrap_or("postgres")
                .to_string(),
            dbname: primary
                .and_then(|i| i.get("dbname"))
                .unwrap_or("postgres")
                .to_string(),
            root: root.clone(),
            ts: ts.clone(),
            keep: args.keep,
            pgdr: super::pgdr_for_restore(desired)?,
            progress: std::io::stderr().is_terminal(),
            started,
            started_unix: now,
            from_copy: at.copy.clone(),
            rejoin: rejoin_of(self.args, self.desired)?,
        };
        eprintln!(
            "Drilling {}: backup {} to {} in {}{}",
            desired.cluster(),
            request.chosen.backup.id,
            request.target.describe(),
            root.display(),
            at.copy.as_ref().map_or(String::new(), |c| format!(
                " (a region-loss drill from the copy {c}, {url}; the home bucket and the primary are not read)"
            ))
        );
        let (report, kept) = tokio::select! {
            ran = drill::run(&store, &request) => ran.with_context(|| format!("drill of {}", desired.cluster()))?,
            signal = super::interrupted() => {
                let removed = scratch::clean_leftovers(&root, desired.cluster()).unwrap_or_default();
                anyhow::bail!("drill interrupted by {signal}; the scratch server was stopped and {} folder(s) removed", removed.len());
            }
        };
        let kept = kept.map(|dir| {
        format!(
            "the server, still running from {} (stop it with pg_ctl -D {}/data stop; the next drill leaves it alone, remove it yourself)",
            dir.display(),
            dir.display()
        )
    });
        finish(args, settings, Some(&at), &ts, &report, kept).await
    }
}

/// The databases the source lists, compared with the restored server's.
/// `--rejoin`: the drill node's name and the peers, from the plan's
/// `active_active`; refused without one.
fn rejoin_of(args: &DrillArgs, desired: &Desired) -> anyhow::Result<Option<drill::rejoin::Rejoin>> {
    let plan = &desired.plan;
    match (args.rejoin, &plan.active_active) {
        (false, _) => Ok(None),
        (true, None) => anyhow::bail!(
            "--rejoin: {} has no active_active section; a re-join drill needs writable peers to join",
            desired.source.display()
        ),
        (true, Some(aa)) => Ok(Some(drill::rejoin::Rejoin {
            node: format!("{}_drill", desired.active_nodes()[0].name.replace('-', "_")),
            peers: aa
                .peers
                .iter()
                .map(|p| (p.name.as_str().to_string(), p.postgres.clone()))
                .collect(),
        })),
    }
}

async fn source_databases(
    info: &crate::spec::Conninfo,
    settings: &Settings,
) -> Option<Vec<String>> {
    let listed = match postgres::connect("primary", info, &settings.pg).await {
        Ok(pg) => postgres::databases(&pg)
            .await
            .map_err(|e| postgres::error_text(&e)),
        Err(e) => Err(e.to_string()),
    };
    listed
        .map_err(|e| eprintln!("warning: the databases of the source are not compared: {e}"))
        .ok()
}

/// Stores the report in `<prefix>drills/` (when the plan has an archive),
/// prints it, and turns it into the exit code.
async fn finish(
    args: &DrillArgs,
    settings: &Settings,
    at: Option<&ArchiveAt>,
    ts: &str,
    report: &DrillReport,
    kept: Option<String>,
) -> anyhow::Result<Outcome> {
    let stored_at = match at {
        Some(ArchiveAt { url, region, .. }) => {
            let store = Store::s3(Systems::new(settings).aws.s3(region).await, &url.bucket);
            let key = format!("{}{ts}.json", url.drills_prefix());
            let json = serde_json::to_vec_pretty(report).expect("report serialises");
            store
                .put_new(&key, json, &HashMap::new())
                .await
                .with_context(|| {
                    format!("storing the drill report at s3://{}/{key}", url.bucket)
                })?;
            format!("s3://{}/{key}", url.bucket)
        }
        None => "not stored: the plan file has no archive bucket".to_string(),
    };
    let text = match args.format {
        ListFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(report).expect("report serialises")
        ),
        ListFormat::Human => human(report, &stored_at, kept.as_deref()),
    };
    out(&text)?;
    Ok(if report.ok {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

/// Ctrl-C or SIGTERM.
fn seconds(v: Option<f64>) -> String {
    v.map_or("not measured".into(), |s| format!("{s:.1}s"))
}

/// The report as people read it.
pub fn human(report: &DrillReport, stored_at: &str, kept: Option<&str>) -> String {
    let mut text = format!(
        "Drill of {} {}: backup {} restored to {}{}.\n",
        report.cluster,
        if report.ok { "PASSED" } else { "FAILED" },
        report.backup_id,
        report.target,
        report.from_copy.as_ref().map_or(String::new(), |c| format!(
            " from the copy {c} (a region-loss drill)"
        ))
    );
    text.push_str(&format!(
        "  RTO  {} (objective {}s): restore {:.1}s ({:.0} MB/s), recovery {:.1}s, then the checks\n",
        seconds(report.rto_seconds),
        report.objectives.rto_seconds,
        report.restore_seconds,
        report.restored_bytes as f64 / 1e6 / report.restore_seconds.max(0.001),
        report.recovery_seconds
    ));
    text.push_str(&format!(
        "  RPO  {} (objective {}s): last replayed commit {}\n",
        seconds(report.rpo_seconds),
        report.objectives.rpo_seconds,
        report.last_replayed_commit.map_or(
            "none (the data is as of the backup's end)".to_string(),
            |t| t.to_string()
        )
    ));
    for check in &report.checks {
        text.push_str(&format!(
            "  {} {}{}\n",
            if check.ok { "ok  " } else { "FAIL" },
            check.name,
            if check.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", check.detail)
            }
        ));
    }
    for failure in &report.failures {
        if !failure.starts_with("check `") {
            text.push_str(&format!("  FAIL {failure}\n"));
        }
    }
    for isolated in &report.isolation {
        text.push_str(&format!("  isolated: {isolated}\n"));
    }
    text.push_str(&format!("Report: {stored_at}\n"));
    if let Some(what) = kept {
        text.push_str(&format!("Kept: {what}\n"));
    }
    text
}
