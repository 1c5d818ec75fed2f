//! `pgdr drill` of an RDS primary: `RestoreDBInstanceToPointInTime` into a
//! scratch instance `<instance>-drill-<ts>` (tagged as pgdr's), wait until it
//! is available, run the same checks over SQL where it can be reached, measure,
//! and delete it. A drill killed outright leaves its instance; the next drill
//! of the cluster deletes it (one kept with `--keep` is tagged and left).
//!
//! What is measured differs from a local drill: RTO is drill start until the
//! instance was available and passed the checks; RPO for `latest` is drill
//! start minus the source's latest restorable time (RDS's own figure), and is
//! not measured for a time target. `pg_amcheck` is not run (it needs
//! superuser-level access RDS does not give).

use super::checks::{databases_check, sql_check};
use super::{conclude, record_ready};
use crate::execute::ArchiveError;
use crate::plan::recovery::drill::recovery_limit;
use crate::plan::recovery::restore::Target;
use crate::providers::{postgres, rds};
use crate::settings::PgEnv;
use crate::spec::{Conninfo, DrillCheck};
use crate::state::drill::{CheckResult, DrillReport, Objectives};
use aws_sdk_rds::Client;
use std::time::{Duration, Instant};

/// The tag that keeps a scratch instance from the next drill's clean-up.
const KEPT_TAG: &str = "pgdr:drill-kept";

pub struct RdsDrillRequest<'a> {
    pub cluster: &'a str,
    pub instance: &'a str,
    pub target: Target,
    pub checks: &'a [DrillCheck],
    pub timing: crate::plan::recovery::drill::Timing,
    pub objectives: Objectives,
    pub source_databases: Option<Vec<String>>,
    /// The primary's conninfo (user, database, TLS); its host is replaced by the scratch instance's.
    pub conninfo: Option<Conninfo>,
    pub pg_env: &'a PgEnv,
    pub ts: String,
    pub keep: bool,
    pub started: Instant,
    pub started_unix: i64,
}

/// The scratch instance's id: `<instance>-drill-<ts>`, as RDS spells ids.
pub fn scratch_id(instance: &str, ts: &str) -> String {
    let mut id = format!("{instance}-drill-{}", ts.to_lowercase());
    id.truncate(63);
    id
}

/// Deletes the scratch instances earlier drills of `cluster` left.
pub async fn clean_leftovers(
    client: &Client,
    instance: &str,
    cluster: &str,
) -> Result<Vec<String>, ArchiveError> {
    let mut removed = Vec::new();
    for (live, tags) in rds::instances_with_prefix(client, &format!("{instance}-drill-")).await? {
        let ours = tags
            .iter()
            .any(|(k, v)| k == rds::DRILL_TAG && v == cluster);
        let kept = tags.iter().any(|(k, _)| k == KEPT_TAG);
        if ours && !kept {
            rds::delete_drill_instance(client, &live.id).await?;
            removed.push(live.id);
        }
    }
    Ok(removed)
}

/// Runs the drill; `Err` only when it could not start one.
pub async fn run(
    client: &Client,
    request: &RdsDrillRequest<'_>,
) -> Result<(DrillReport, Option<String>), ArchiveError> {
    let id = scratch_id(request.instance, &request.ts);
    let latest = rds::latest_restorable_time(client, request.instance).await?;
    let at = match request.target {
        Target::Latest => None,
        Target::Time(t) => Some(t),
        Target::Lsn(_) => {
            return Err(ArchiveError::Usage(
                "an RDS drill restores to a time, not to an LSN".into(),
            ))
        }
    };
    rds::restore_to_point_in_time(client, request.instance, &id, at, request.cluster).await?;
    if request.keep {
        tag_kept(client, &id).await;
    }
    let mut report = DrillReport::started(
        request.cluster,
        format!("rds:{}", request.instance),
        request.target.describe(),
        crate::spec::time::Timestamp(request.started_unix),
        request.objectives,
        0,
    );
    // RDS's own figure: what the latest restorable time leaves out.
    if let (Target::Latest, Some(l)) = (&request.target, latest) {
        report.rpo_seconds = Some((request.started_unix - l).max(0) as f64);
    }
    let ran = checks(client, request, &id, &mut report).await;
    conclude(&mut report, ran);
    if request.keep {
        return Ok((report, Some(id)));
    }
    rds::delete_drill_instance(client, &id).await?;
    Ok((report, None))
}

async fn tag_kept(client: &Client, id: &str) {
    if let Ok(Some(live)) = rds::observe_instance(client, id).await {
        let tag = aws_sdk_rds::types::Tag::builder()
            .key(KEPT_TAG)
            .value("true")
            .build();
        let _ = client
            .add_tags_to_resource()
            .resource_name(live.arn)
            .tags(tag)
            .send()
            .await;
    }
}

async fn checks(
    client: &Client,
    request: &RdsDrillRequest<'_>,
    id: &str,
    report: &mut DrillReport,
) -> Result<(), String> {
    let waiting = Instant::now();
    let limit = recovery_limit(&request.objectives);
    let live = loop {
        let live = rds::observe_instance(client, id)
            .await
            .map_err(|e| e.to_string())?;
        match live {
            Some(l) if l.status == "available" => break l,
            Some(l) if l.status.contains("fail") || l.status.starts_with("incompatible") => {
                return Err(format!("the scratch instance {id} is `{}`", l.status));
            }
            _ if waiting.elapsed() > limit => {
                return Err(format!(
                    "the scratch instance {id} was not available after {}s",
                    limit.as_secs()
                ))
            }
            _ => tokio::time::sleep(Duration::from_secs(5)).await,
        }
    };
    report.recovery_seconds = waiting.elapsed().as_secs_f64();
    report.checks.push(CheckResult::new(
        "available",
        true,
        format!(
            "{id} ({} {}) available after {:.1}s",
            live.engine, live.engine_version, report.recovery_seconds
        ),
    ));
    let reachable = match (&request.conninfo, &live.endpoint) {
        (None, _) => Err("no primary.postgres conninfo to connect with".to_string()),
        (_, None) => Err("the instance reports no endpoint".to_string()),
        (Some(info), Some(host)) => {
            let info = info.with_host(host, None);
            postgres::connect("drill", &info, request.pg_env)
                .await
                .map_err(|e| format!("not reachable from here: {e}"))
        }
    };
    match reachable {
        Err(why) => {
            report.checks.push(CheckResult::new(
                "connects",
                false,
                format!("{why}; the SQL checks were not run"),
            ));
        }
        Ok(pg) => {
            report.checks.push(CheckResult::new("connects", true, ""));
            if let Some(source) = &request.source_databases {
                report.checks.push(databases_check(&pg, source).await);
            }
            for check in request.checks {
                report
                    .checks
                    .push(sql_check(&pg, check, &request.timing).await);
            }
        }
    }
    record_ready(report, request.started, request.started_unix);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn scratch_ids_are_rds_ids() {
        assert_eq!(
            super::scratch_id("ledger-db", "20261124T101500Z"),
            "ledger-db-drill-20261124t101500z"
        );
        assert_eq!(
            super::scratch_id(&"x".repeat(60), "20261124T101500Z").len(),
            63
        );
    }
}
