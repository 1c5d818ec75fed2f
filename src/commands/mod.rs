//! One file per subcommand. Each takes settled arguments, does its job, writes
//! data to stdout and logs to stderr, and returns an [`Exit`]; `main` maps
//! errors to exit code 1 in one place.

pub mod apply;
pub mod check;
pub mod lint;
pub mod plan;

use crate::cli::Color;
use crate::observe;
use crate::plan::{plan_cluster, ClusterPlan};
use crate::providers::aws::AwsClients;
use crate::render::human::Style;
use crate::spec::{self, Desired, SpecErrors};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

/// The exit codes of plan-format.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Ran and found nothing to do.
    Clean = 0,
    /// Could not do its job.
    Failed = 1,
    /// Ran and found something (changes, problems, drift).
    Found = 2,
}

/// Loads every plan file PATH names. Any error in any file stops the run before
/// anything live is read, so a file with errors changes nothing anywhere.
pub fn load_all(path: &Path) -> anyhow::Result<Vec<Desired>> {
    let files =
        spec::plan_files(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match spec::load_file(&file) {
            Ok(d) => loaded.push(d),
            Err(SpecErrors(e)) => errors.extend(e),
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for d in &loaded {
        if let Some(other) = seen.insert(d.cluster().to_string(), d.source.display().to_string()) {
            errors.push(spec::SpecError {
                file: d.source.clone(),
                line: spec::locate::locate(&d.text, "cluster").map(|l| l.0),
                column: None,
                path: "cluster".into(),
                message: format!("cluster `{}` is also defined in {other}; every plan file in a fleet needs its own cluster name", d.cluster()),
            });
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        let files: std::collections::BTreeSet<_> = errors.iter().map(|e| &e.file).collect();
        bail!(
            "{} error{} in {} plan file{}; nothing was read or changed",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
    }
    Ok(loaded)
}

/// Observes and plans every cluster concurrently. A cluster whose state cannot be
/// read gets an `error` and no changes; the others are unaffected.
pub async fn plan_all(desired: &[Desired], aws: &AwsClients) -> Vec<ClusterPlan> {
    let plans = desired.iter().map(|d| async move {
        match observe::observe(d, aws).await {
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
        }
    });
    futures_util::future::join_all(plans).await
}

pub fn style(color: Color) -> Style {
    let color = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    Style { color }
}
