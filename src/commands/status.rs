//! `pgdr status PATH [--format human|json|openmetrics]`: read every cluster
//! concurrently (the same observation `plan` makes) and show where recovery
//! stands. Read only. Exit 2 when any figure is beyond the plan's objectives.

use super::{load_all, out, Outcome};
use crate::cli::{StatusArgs, StatusFormat};
use crate::observe;
use crate::providers::Systems;
use crate::render::metrics;
use crate::render::status::{self, ClusterStatus, StatusReport};
use crate::settings::Settings;
use crate::spec::Desired;
use crate::state::Live;

pub async fn run(args: &StatusArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_all(&args.path)?;
    let systems = Systems::new(settings);
    let now = crate::spec::time::now_unix();
    let lives = observe::observe_all(&desired, &systems).await;
    if args.format == StatusFormat::Openmetrics {
        let (text, found) = openmetrics(&desired, &lives, now);
        out(&text)?;
        return Ok(if found {
            Outcome::Found
        } else {
            Outcome::Clean
        });
    }
    let clusters = desired
        .iter()
        .zip(lives)
        .map(|(d, live)| match live {
            Ok(live) => status::cluster_status(d, &live, now),
            Err(e) => ClusterStatus {
                cluster: d.cluster().to_string(),
                file: d.source.display().to_string(),
                error: Some(e.to_string()),
                beyond: vec!["could not be read".into()],
                ..ClusterStatus::default()
            },
        })
        .collect();
    let report = StatusReport {
        format_version: 1,
        clusters,
    };
    let text = match args.format {
        StatusFormat::Json | StatusFormat::Openmetrics => format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("status serialises")
        ),
        StatusFormat::Human => status::human(&report),
    };
    out(&text)?;
    Ok(if report.clusters.iter().any(|c| !c.beyond.is_empty()) {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Every cluster's metrics in Prometheus's text format (`status --format
/// openmetrics`, `run-due --metrics-file`, `watch --metrics-address`), and
/// whether they show something wrong: a problem, or a cluster not read.
pub fn openmetrics(
    desired: &[Desired],
    lives: &[Result<Live, crate::providers::ProviderError>],
    now: i64,
) -> (String, bool) {
    let samples: Vec<_> = desired
        .iter()
        .zip(lives)
        .map(|(d, live)| {
            (
                d.cluster().to_string(),
                metrics::cluster_samples(d, live.as_ref().ok(), now),
            )
        })
        .collect();
    let found = samples.iter().any(|(_, s)| {
        s.iter()
            .any(|(name, _, v)| *name == "pgdr_problem" || (*name == "pgdr_up" && *v == 0.0))
    });
    (metrics::render(&samples), found)
}

/// Reads every cluster now and renders its metrics ([`openmetrics`]).
pub async fn read_metrics(desired: &[Desired], systems: &Systems) -> (String, bool) {
    let lives = observe::observe_all(desired, systems).await;
    openmetrics(desired, &lives, crate::spec::time::now_unix())
}
