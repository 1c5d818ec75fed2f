//! `pgdr lint PATH`: every plan file against its tier's policy and its own
//! RPO/RTO arithmetic. Offline: reads files, never a live system.

use super::{load_all, out, style, Outcome};
use crate::cli::{LintArgs, LintFormat};
use crate::lint::{self, policy::PolicyFile, Finding};
use crate::render;
use crate::settings::Settings;
use crate::spec::Desired;
use std::path::Path;

pub fn load_policy(path: Option<&Path>) -> anyhow::Result<PolicyFile> {
    match path {
        Some(p) => PolicyFile::load(p)
            .map_err(|e| anyhow::anyhow!("{e}\nthe policy file has errors; nothing was checked")),
        None => Ok(PolicyFile::built_in()),
    }
}

pub fn lint_all(desired: &[Desired], policy: &PolicyFile) -> Vec<Finding> {
    desired.iter().flat_map(|d| lint::lint(d, policy)).collect()
}

/// The directory SARIF names plan files relative to (its `%SRCROOT%`).
fn srcroot() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    std::env::current_dir()
        .context("cannot read the working directory, which SARIF names plan files relative to")
}

pub fn run(args: &LintArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let policy = load_policy(args.policy.as_deref())?;
    let desired = load_all(&args.path)?;
    let findings = lint_all(&desired, &policy);
    let clusters: Vec<String> = desired.iter().map(|d| d.cluster().to_string()).collect();
    let text = match args.format {
        LintFormat::Human => render::lint::human(&findings, &clusters, style(settings)),
        LintFormat::Json => render::lint::json(&findings),
        LintFormat::Sarif => render::lint::sarif(&findings, &srcroot()?),
        LintFormat::Github => render::lint::github(&findings),
    };
    out(&text)?;
    Ok(if findings.iter().any(Finding::is_blocking) {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}
