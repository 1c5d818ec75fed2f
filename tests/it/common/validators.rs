//! The ecosystem's own validators, run on what pgdr writes: Microsoft's SARIF
//! multitool (npm, scripts/npm-tools) and check-jsonschema (PyPI, the tools
//! venv). Both are installed project-locally by scripts/lib.sh; a test that
//! needs one fails with the install command when it is missing, never skips.

use super::{repo, run, tools_bin, COMMAND_TIMEOUT};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The multitool's native binary (scripts/lib.sh ensure_npm_tools installs it).
pub fn sarif_multitool() -> PathBuf {
    let path = std::env::var_os("PGDR_SARIF_MULTITOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            tools_bin()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("npm/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool")
        });
    assert!(
        path.is_file(),
        "the SARIF multitool is missing at {}: run scripts/test (it installs it)",
        path.display()
    );
    path
}

/// One result the multitool reported: level (`error`, `warning`, `note`), rule, text.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub level: String,
    pub rule: String,
    pub message: String,
}

/// Runs `sarif-multitool validate` with the SARIF rules and GitHub's ingestion
/// rules (`--rule-kind Sarif;Gh`, what code scanning enforces) on `file`, and
/// returns every result it reported. Its exit code is 0 even when it finds
/// errors, so the verdicts are read from the log it writes.
pub fn validate_sarif(file: &Path) -> Vec<Verdict> {
    let out = file.with_extension("validation.sarif");
    let output = run(
        Command::new(sarif_multitool())
            .args([
                "validate",
                "--rule-kind",
                "Sarif;Gh",
                "--log",
                "ForceOverwrite",
            ])
            .arg("--output")
            .arg(&out)
            .arg(file)
            // A self-contained .NET program: no libicu needed with this.
            .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1"),
        COMMAND_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "the multitool failed on {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the multitool wrote its log"))
            .expect("the multitool's log is JSON");
    let run = &log["runs"][0];
    assert_eq!(
        run["invocations"][0]["executionSuccessful"],
        serde_json::json!(true),
        "the multitool did not complete on {}: {run}",
        file.display()
    );
    run["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .map(|r| Verdict {
                    // SARIF's default level is warning.
                    level: r["level"].as_str().unwrap_or("warning").to_string(),
                    rule: r["ruleId"].as_str().unwrap_or_default().to_string(),
                    // The multitool writes a message id and its arguments, not text.
                    message: r["message"]["text"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            format!("{} {}", r["message"]["id"], r["message"]["arguments"])
                        }),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What check-jsonschema says of each file against the plan-file schema: the
/// files it rejects, each with its messages (schema errors and parse errors);
/// a file it accepts is absent.
pub fn check_jsonschema(files: &[PathBuf]) -> BTreeMap<PathBuf, Vec<String>> {
    let schema = repo().join("schema/plan-v1.schema.json");
    let output = run(
        Command::new(tools_bin().join("check-jsonschema"))
            .arg("--schemafile")
            .arg(&schema)
            .args(["--output-format", "json"])
            .args(files),
        COMMAND_TIMEOUT,
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "check-jsonschema gave no JSON report ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let mut rejected: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for key in ["errors", "parse_errors"] {
        for e in report[key].as_array().into_iter().flatten() {
            let file = PathBuf::from(e["filename"].as_str().expect("a file name"));
            let message = e["message"].as_str().unwrap_or_default().to_string();
            rejected.entry(file).or_default().push(message);
        }
    }
    // Its exit code agrees with the report: 0 only when nothing was rejected.
    assert_eq!(
        output.status.success(),
        rejected.is_empty(),
        "check-jsonschema's exit code and report disagree: {report}"
    );
    rejected
}
