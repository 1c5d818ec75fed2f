//! `pgdr status PATH [--format human|json]`: read every cluster concurrently
//! (the same observation `plan` makes) and show where recovery stands. Read
//! only. Exit 2 when any figure is beyond the plan's objectives.

use super::{load_all, out, Outcome};
use crate::cli::{ListFormat, StatusArgs};
use crate::observe;
use crate::providers::Systems;
use crate::render::status::{self, ClusterStatus, StatusReport};
use crate::settings::Settings;

pub async fn run(args: &StatusArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_all(&args.path)?;
    let systems = Systems::new(settings);
    let now = crate::spec::time::now_unix();
    let lives = observe::observe_all(&desired, &systems).await;
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
        ListFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("status serialises")
        ),
        ListFormat::Human => status::human(&report),
    };
    out(&text)?;
    Ok(if report.clusters.iter().any(|c| !c.beyond.is_empty()) {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}
