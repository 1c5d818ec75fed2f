//! What a drill checks on the restored server: the source's databases are
//! all there, their extensions are available at their versions on the
//! binaries the drill runs, `pg_amcheck` finds no corruption, and each of
//! the plan's SQL checks returns true in time. Each is a [`CheckResult`] in
//! the report, failed or not: a failed check fails the drill, it does not
//! stop it. Also here: what keeps the restored server away from production
//! (its subscriptions detached).

use super::scratch::Scratch;
use crate::execute::restore::server::Restored;
use crate::plan::recovery::drill::Timing;
use crate::providers::postgres::{self, restored};
use crate::settings::PgEnv;
use crate::spec::{Conninfo, DrillCheck};
use crate::state::drill::CheckResult;
use std::time::Instant;

pub async fn databases_check(pg: &tokio_postgres::Client, source: &[String]) -> CheckResult {
    match postgres::databases(pg).await {
        Err(e) => CheckResult::new("databases", false, postgres::error_text(&e)),
        Ok(restored) => {
            let missing: Vec<&str> = source
                .iter()
                .filter(|d| !restored.contains(d))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                CheckResult::new(
                    "databases",
                    true,
                    format!("all {} databases of the source are there", source.len()),
                )
            } else {
                CheckResult::new(
                    "databases",
                    false,
                    format!("missing from the restore: {}", missing.join(", ")),
                )
            }
        }
    }
}

/// A connection to database `db` of a restored server.
async fn connect_to(
    server: &Restored,
    user: &str,
    db: &str,
) -> Result<tokio_postgres::Client, String> {
    let info = Conninfo::parse(&server.conninfo(user, db)).map_err(|e| e.to_string())?;
    postgres::connect("restored", &info, &PgEnv::default())
        .await
        .map_err(|e| e.to_string())
}

/// Every extension installed in every database of the restored copy (the
/// source's catalogue as of the target) is available at its installed
/// version on the binaries the drill runs, and is their default version, so
/// no `ALTER EXTENSION … UPDATE` would be needed after a failover to them.
/// A drill's check, and what `restore --start` reports.
pub async fn extensions_check(
    pg: &tokio_postgres::Client,
    server: &Restored,
    user: &str,
) -> CheckResult {
    let name = "extensions";
    let databases = match postgres::databases(pg).await {
        Ok(d) => d,
        Err(e) => return CheckResult::new(name, false, postgres::error_text(&e)),
    };
    let bin = server.local.bin("postgres");
    let binaries = bin.parent().unwrap_or(&bin).display().to_string();
    let (mut problems, mut seen) = (Vec::new(), std::collections::BTreeSet::new());
    for db in &databases {
        let listed = match connect_to(server, user, db).await {
            Ok(client) => restored::extensions(&client)
                .await
                .map_err(|e| postgres::error_text(&e)),
            Err(e) => Err(e),
        };
        let listed = match listed {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("database {db}: {e}"));
                continue;
            }
        };
        for ext in listed {
            let (n, v) = (&ext.name, &ext.installed);
            match &ext.default_version {
                None => problems.push(format!(
                    "extension {n} {v} (database {db}) is not installed with the binaries in {binaries}"
                )),
                Some(_) if !ext.version_available => problems.push(format!(
                    "extension {n} {v} (database {db}) is not available at version {v} in {binaries}"
                )),
                Some(default) if default != v => problems.push(format!(
                    "extension {n} (database {db}) is {v} but the binaries in {binaries} install {default}: ALTER EXTENSION {n} UPDATE would be needed"
                )),
                Some(_) => {}
            }
            seen.insert(format!("{n} {v}"));
        }
    }
    if problems.is_empty() {
        let list: Vec<String> = seen.into_iter().collect();
        CheckResult::new(
            name,
            true,
            format!(
                "every extension of {} database(s) is available at its version: {}",
                databases.len(),
                list.join(", ")
            ),
        )
    } else {
        CheckResult::new(name, false, problems.join("; "))
    }
}

/// Detaches every subscription of the restored copy (the server starts with
/// no logical replication workers, so none ran before this). Returns what
/// was done, one line each, for the report's `isolation`.
pub async fn detach_subscriptions(
    pg: &tokio_postgres::Client,
    scratch: &Scratch,
    user: &str,
) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    let databases = postgres::databases(pg)
        .await
        .map_err(|e| postgres::error_text(&e))?;
    for db in &databases {
        let client = connect_to(&scratch.server, user, db).await?;
        let subscriptions = restored::subscriptions(&client).await.map_err(|e| {
            format!(
                "listing the subscriptions of database {db}: {}",
                postgres::error_text(&e)
            )
        })?;
        for (sub, enabled) in subscriptions {
            restored::detach_subscription(&client, &sub)
                .await
                .map_err(|e| {
                    format!(
                        "disabling subscription {sub} in database {db}: {}",
                        postgres::error_text(&e)
                    )
                })?;
            done.push(format!(
                "subscription {sub} (database {db}, {} in the source) disabled and its slot name cleared: it never connected to its publisher",
                if enabled { "enabled" } else { "disabled" }
            ));
        }
    }
    Ok(done)
}

/// pg_amcheck over every database: heap and B-tree index corruption.
pub async fn amcheck(scratch: &Scratch, user: &str) -> CheckResult {
    let program = scratch.server.local.bin("pg_amcheck");
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
    let name = "pg_amcheck";
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    match output {
        Err(e) => CheckResult::new(name, false, format!("{}: {e}", program.display())),
        Ok(out) if out.status.success() => CheckResult::new(
            name,
            true,
            "no corruption found in any database (heap and B-tree indexes)",
        ),
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let first: Vec<&str> = text.lines().take(5).collect();
            CheckResult::new(
                name,
                false,
                format!("{} ({})", first.join(" | "), out.status),
            )
        }
    }
}

/// One of the plan's checks: its SQL must return true, within its
/// `max_duration` and not much slower than in the last passed drill.
pub async fn sql_check(
    pg: &tokio_postgres::Client,
    check: &DrillCheck,
    timing: &Timing,
) -> CheckResult {
    let started = Instant::now();
    let ran = pg.simple_query(&check.sql).await;
    let took = started.elapsed().as_secs_f64();
    let (ok, detail) = match ran {
        Err(e) => (false, postgres::error_text(&e)),
        Ok(messages) => {
            let first = messages.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).map(str::to_string))
                }
                _ => None,
            });
            match first {
                Some(Some(v)) if v == "t" => {
                    match timing.verdict(&check.name, check.max_duration, took) {
                        Some(slow) => (false, slow),
                        None => (true, String::new()),
                    }
                }
                Some(Some(v)) => (false, format!("returned `{v}`, not true")),
                Some(None) => (false, "returned NULL, not true".into()),
                None => (false, "returned no row".into()),
            }
        }
    };
    let mut result = CheckResult::new(&check.name, ok, detail);
    result.duration_seconds = Some(took);
    result
}
