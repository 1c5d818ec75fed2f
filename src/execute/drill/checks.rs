//! What a drill checks on the restored server: the source's databases are
//! all there, `pg_amcheck` finds no corruption, and each of the plan's SQL
//! checks returns true. Each is a [`CheckResult`] in the report, failed or
//! not: a failed check fails the drill, it does not stop it.

use super::scratch::Scratch;
use crate::providers::postgres;
use crate::spec::DrillCheck;
use crate::state::drill::CheckResult;

pub async fn databases_check(pg: &tokio_postgres::Client, source: &[String]) -> CheckResult {
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
pub async fn sql_check(pg: &tokio_postgres::Client, check: &DrillCheck) -> CheckResult {
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
