//! `pgdr status --format openmetrics`: the on-call view as Prometheus
//! metrics (the text exposition format, `# EOF` last), for node_exporter's
//! textfile collector or a scrape. Times are Unix-time gauges so rules
//! compute ages with `time() - x`, as pgbackrest_exporter's and
//! CloudNativePG's do; every series carries the `cluster` label. What each
//! metric means is [`FAMILIES`] (and the table in docs/guides/status-and-metrics.md).

use super::status::cluster_status;
use crate::plan::assess::assess;
use crate::spec::time::parse_rfc3339;
use crate::spec::Desired;
use crate::state::archive::BackupType;
use crate::state::wal::{SegmentSize, WalName, DEFAULT_SEGMENT_SIZE};
use crate::state::Live;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Every metric family: name, type, help. The order is the output's.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("pgdr_up", "gauge", "1 when the cluster's live state was read, 0 when it could not be."),
    ("pgdr_primary_writable", "gauge", "1 when a server of the cluster accepts writes."),
    ("pgdr_rpo_objective_seconds", "gauge", "The plan file's objectives.rpo."),
    ("pgdr_rto_objective_seconds", "gauge", "The plan file's objectives.rto."),
    ("pgdr_base_backup_every_seconds", "gauge", "The plan file's archive.base_backups.every: a backup at least this often."),
    ("pgdr_drill_every_seconds", "gauge", "The plan file's drill.every: a passed drill at least this often."),
    ("pgdr_rpo_exposure_seconds", "gauge", "What losing the primary now could cost: the smaller of the archive's exposure and the best streaming standby's replay lag."),
    ("pgdr_archive_exposure_seconds", "gauge", "Seconds since the newest WAL file reached the archive."),
    ("pgdr_standby_streaming", "gauge", "1 when the standby streams from the primary."),
    ("pgdr_standby_replay_lag_seconds", "gauge", "The standby's replay lag as the primary reports it."),
    ("pgdr_archiver_failures_total", "counter", "pg_stat_archiver.failed_count on the primary: archive_command failures since the statistics were reset."),
    ("pgdr_archiver_failing", "gauge", "1 when the primary's last archive_command failure is newer than its last success."),
    ("pgdr_wal_ready_segments", "gauge", "WAL segments the primary has finished but not yet archived (from the last archived to the one being written)."),
    ("pgdr_recoverable_from_timestamp_seconds", "gauge", "The first point a restore can reach: the end of the oldest complete backup."),
    ("pgdr_recoverable_to_timestamp_seconds", "gauge", "The last point a restore can reach: when the newest WAL file was archived."),
    ("pgdr_last_backup_timestamp_seconds", "gauge", "When the newest complete backup of each type ended."),
    ("pgdr_last_backup_size_bytes", "gauge", "The database's size at the newest complete backup of each type."),
    ("pgdr_last_backup_stored_bytes", "gauge", "What the newest complete backup of each type stored (a diff or incr: its changes)."),
    ("pgdr_backups_running", "gauge", "Backups being taken now (each reports into its folder every few seconds)."),
    ("pgdr_last_drill_timestamp_seconds", "gauge", "When the newest drill started."),
    ("pgdr_last_drill_success", "gauge", "1 when the newest drill passed its checks and the objectives."),
    ("pgdr_last_passed_drill_timestamp_seconds", "gauge", "When the newest drill that passed started."),
    ("pgdr_last_passed_drill_rto_seconds", "gauge", "The RTO the newest passed drill measured."),
    ("pgdr_last_passed_drill_rpo_seconds", "gauge", "The RPO the newest passed drill achieved."),
    ("pgdr_node_up", "gauge", "1 when the active-active node answered and takes writes."),
    ("pgdr_node_replicating", "gauge", "1 when the node receives the other node's (from) writes: its subscription is replicating."),
    ("pgdr_node_replication_lag_seconds", "gauge", "How far the node is behind the other node's (from) writes, where the sender there reports it (pglogical 2.4's do not)."),
    ("pgdr_node_replication_lag_bytes", "gauge", "The other node's (from) WAL this node has not confirmed, by its slot there."),
    ("pgdr_copy_up", "gauge", "1 when the copy of the archive (archive.copies) could be read."),
    ("pgdr_copy_wal_behind_segments", "gauge", "WAL files home holds (from its newest backup on) that the copy lacks."),
    ("pgdr_copy_behind_seconds", "gauge", "How long home has held the oldest WAL file the copy lacks (0 when it lacks none)."),
    ("pgdr_copy_backups_behind", "gauge", "Complete backups home holds that the copy lacks."),
    ("pgdr_failover_automatic", "gauge", "1 when automatic failover is armed (failover.automatic and a watcher holding its lease)."),
    ("pgdr_problem", "gauge", "One series per finding beyond the plan (as status and plan report it): its address and rule."),
];

/// One sample: family, labels (besides `cluster`), value.
type Sample = (&'static str, Vec<(&'static str, String)>, f64);

/// The samples of one cluster read at `now`; `live` is `None` when it could
/// not be read.
pub fn cluster_samples(desired: &Desired, live: Option<&Live>, now: i64) -> Vec<Sample> {
    let objectives = &desired.plan.objectives;
    let mut out: Vec<Sample> = Vec::new();
    gauge(&mut out, "pgdr_up", vec![], Some(flag(live.is_some())));
    gauge(
        &mut out,
        "pgdr_rpo_objective_seconds",
        vec![],
        Some(objectives.rpo.as_secs_f64()),
    );
    gauge(
        &mut out,
        "pgdr_rto_objective_seconds",
        vec![],
        Some(objectives.rto.as_secs_f64()),
    );
    let plan = &desired.plan;
    let every = plan.archive.as_ref().and_then(|a| a.base_backups.as_ref());
    gauge(
        &mut out,
        "pgdr_base_backup_every_seconds",
        vec![],
        every.map(|b| b.every.as_secs_f64()),
    );
    gauge(
        &mut out,
        "pgdr_drill_every_seconds",
        vec![],
        plan.drill.as_ref().map(|d| d.every.as_secs_f64()),
    );
    let Some(live) = live else {
        return out;
    };
    let status = cluster_status(desired, live, now);
    gauge(
        &mut out,
        "pgdr_primary_writable",
        vec![],
        Some(flag(status.primary.is_some())),
    );
    gauge(
        &mut out,
        "pgdr_rpo_exposure_seconds",
        vec![],
        status.rpo_exposure_seconds,
    );
    gauge(
        &mut out,
        "pgdr_archive_exposure_seconds",
        vec![],
        status.archive_exposure_seconds,
    );
    for s in &status.standbys {
        let label = vec![("standby", s.name.clone())];
        gauge(
            &mut out,
            "pgdr_standby_streaming",
            label.clone(),
            Some(flag(s.state == "streaming")),
        );
        gauge(
            &mut out,
            "pgdr_standby_replay_lag_seconds",
            label,
            s.replay_lag_seconds,
        );
    }
    archiver_samples(&mut out, live);
    copy_samples(&mut out, &status.copies);
    node_samples(&mut out, &status.nodes);
    if let Some(window) = &status.recoverable_window {
        let time = |text: &str| parse_rfc3339(text).map(|t| t as f64);
        gauge(
            &mut out,
            "pgdr_recoverable_from_timestamp_seconds",
            vec![],
            time(&window.from),
        );
        gauge(
            &mut out,
            "pgdr_recoverable_to_timestamp_seconds",
            vec![],
            time(&window.to),
        );
    }
    if let Some(Ok(archive)) = &live.archive_content {
        archive_samples(&mut out, archive);
        gauge(
            &mut out,
            "pgdr_backups_running",
            vec![],
            Some(status.running_backups.len() as f64),
        );
    }
    let armed = status.failover.as_ref().is_some_and(|f| f.automatic);
    gauge(
        &mut out,
        "pgdr_failover_automatic",
        vec![],
        Some(flag(armed)),
    );
    for finding in assess(desired, live, Some(now)).findings {
        if finding.beyond().is_some() {
            let labels = vec![
                ("address", finding.address.clone()),
                ("rule", finding.rule()),
            ];
            gauge(&mut out, "pgdr_problem", labels, Some(1.0));
        }
    }
    out
}

/// A sample, when there is a value.
fn gauge(
    out: &mut Vec<Sample>,
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    value: Option<f64>,
) {
    if let Some(v) = value {
        out.push((name, labels, v));
    }
}

fn flag(on: bool) -> f64 {
    f64::from(u8::from(on))
}

/// The primary's archiver: failures, failing now, the ready backlog.
fn archiver_samples(out: &mut Vec<Sample>, live: &Live) {
    let Some(archiver) = live
        .primary
        .as_ref()
        .and_then(|p| p.health.archiver.as_ref())
    else {
        return;
    };
    gauge(
        out,
        "pgdr_archiver_failures_total",
        vec![],
        Some(archiver.failed_count as f64),
    );
    gauge(
        out,
        "pgdr_archiver_failing",
        vec![],
        Some(flag(archiver.failing)),
    );
    // The segment size the backups recorded (16 MiB when there is none).
    let size = match &live.archive_content {
        Some(Ok(a)) => a.backups.last().map(|b| b.wal_segment_size),
        _ => None,
    };
    let ready = ready_segments(archiver, size.unwrap_or(DEFAULT_SEGMENT_SIZE));
    gauge(out, "pgdr_wal_ready_segments", vec![], ready);
}

/// Each active-active node: serving, and each direction it receives.
fn node_samples(out: &mut Vec<Sample>, nodes: &[crate::plan::assess::nodes::NodeFigure]) {
    for node in nodes {
        let label = vec![("node", node.name.clone())];
        gauge(out, "pgdr_node_up", label, Some(flag(node.serving)));
        for r in node.receives.iter().filter(|_| node.error.is_none()) {
            let label = vec![("node", node.name.clone()), ("from", r.from.clone())];
            let replicating = r.status == "replicating";
            gauge(
                out,
                "pgdr_node_replicating",
                label.clone(),
                Some(flag(replicating)),
            );
            gauge(
                out,
                "pgdr_node_replication_lag_seconds",
                label.clone(),
                r.lag_seconds,
            );
            let bytes = r.lag_bytes.map(|b| b as f64);
            gauge(out, "pgdr_node_replication_lag_bytes", label, bytes);
        }
    }
}

/// Each copy of the archive: readable, and how far behind home.
fn copy_samples(out: &mut Vec<Sample>, copies: &[crate::plan::assess::copies::CopyFigure]) {
    for copy in copies {
        let label = vec![("copy", copy.name.clone())];
        let up = copy.error.is_none();
        gauge(out, "pgdr_copy_up", label.clone(), Some(flag(up)));
        let value = |v: Option<f64>| v.filter(|_| up);
        gauge(
            out,
            "pgdr_copy_wal_behind_segments",
            label.clone(),
            value(copy.wal_behind.map(|n| n as f64)),
        );
        gauge(
            out,
            "pgdr_copy_behind_seconds",
            label.clone(),
            value(copy.seconds_behind.map(|n| n as f64)),
        );
        gauge(
            out,
            "pgdr_copy_backups_behind",
            label,
            value(copy.backups_behind.map(|n| n as f64)),
        );
    }
}

/// The newest backup of each type, and the newest drill and passed drill.
fn archive_samples(out: &mut Vec<Sample>, archive: &crate::state::archive::ArchiveLive) {
    for kind in [BackupType::Full, BackupType::Diff, BackupType::Incr] {
        let Some(b) = archive.backups.iter().rev().find(|b| b.backup_type == kind) else {
            continue;
        };
        let label = vec![("type", kind.as_str().to_string())];
        gauge(
            out,
            "pgdr_last_backup_timestamp_seconds",
            label.clone(),
            Some(b.stop_time.secs() as f64),
        );
        gauge(
            out,
            "pgdr_last_backup_size_bytes",
            label.clone(),
            Some(b.size_bytes as f64),
        );
        gauge(
            out,
            "pgdr_last_backup_stored_bytes",
            label,
            Some(b.stored_bytes as f64),
        );
    }
    if let Some(drill) = &archive.drills.newest {
        gauge(
            out,
            "pgdr_last_drill_timestamp_seconds",
            vec![],
            Some(drill.started_at.secs() as f64),
        );
        gauge(out, "pgdr_last_drill_success", vec![], Some(flag(drill.ok)));
    }
    if let Some(drill) = &archive.drills.newest_ok {
        gauge(
            out,
            "pgdr_last_passed_drill_timestamp_seconds",
            vec![],
            Some(drill.started_at.secs() as f64),
        );
        gauge(
            out,
            "pgdr_last_passed_drill_rto_seconds",
            vec![],
            drill.rto_seconds,
        );
        gauge(
            out,
            "pgdr_last_passed_drill_rpo_seconds",
            vec![],
            drill.rpo_seconds,
        );
    }
}

/// Segments between the last archived and the one being written: finished
/// by PostgreSQL, waiting for `archive_command`. `None` across timelines or
/// without both names.
fn ready_segments(archiver: &crate::state::postgres::Archiver, size: SegmentSize) -> Option<f64> {
    let last = WalName::parse(archiver.last_archived_wal.as_deref()?)?;
    let current = WalName::parse(archiver.current_wal.as_deref()?)?;
    if last.timeline != current.timeline {
        return None;
    }
    let waiting = current.segno(size).saturating_sub(last.segno(size) + 1);
    Some(waiting as f64)
}

/// The samples of every cluster, in the text exposition format: each
/// family's HELP and TYPE once, then its series. Pure.
pub fn render(clusters: &[(String, Vec<Sample>)]) -> String {
    let mut by_family: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (cluster, samples) in clusters {
        for (name, labels, value) in samples {
            let mut all = vec![format!("cluster=\"{}\"", escape(cluster))];
            all.extend(labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))));
            by_family
                .entry(name)
                .or_default()
                .push(format!("{name}{{{}}} {value}", all.join(",")));
        }
    }
    let mut text = String::new();
    for (name, kind, help) in FAMILIES {
        let Some(series) = by_family.get(name) else {
            continue;
        };
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for line in series {
            let _ = writeln!(text, "{line}");
        }
    }
    text.push_str("# EOF\n");
    text
}

/// A label value as the format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_once_with_their_series_and_labels_escaped() {
        let clusters = vec![
            (
                "a".to_string(),
                vec![
                    ("pgdr_up", vec![], 1.0),
                    (
                        "pgdr_problem",
                        vec![
                            ("address", "drill".to_string()),
                            ("rule", "no_drill".to_string()),
                        ],
                        1.0,
                    ),
                ],
            ),
            ("b\"x".to_string(), vec![("pgdr_up", vec![], 0.0)]),
        ];
        let text = render(&clusters);
        assert_eq!(text.matches("# TYPE pgdr_up gauge").count(), 1);
        assert!(text.contains("pgdr_up{cluster=\"a\"} 1\n"));
        assert!(text.contains("pgdr_up{cluster=\"b\\\"x\"} 0\n"));
        assert!(
            text.contains("pgdr_problem{cluster=\"a\",address=\"drill\",rule=\"no_drill\"} 1\n")
        );
        assert!(text.ends_with("# EOF\n"));
        // Every family a sample names is documented.
        for (_, samples) in &clusters {
            for (name, _, _) in samples {
                assert!(FAMILIES.iter().any(|(n, _, _)| n == name));
            }
        }
    }

    #[test]
    fn ready_segments_count_the_finished_unarchived_ones() {
        let archiver = crate::state::postgres::Archiver {
            last_archived_wal: Some("000000010000000000000005".into()),
            current_wal: Some("000000010000000000000009".into()),
            ..Default::default()
        };
        assert_eq!(ready_segments(&archiver, DEFAULT_SEGMENT_SIZE), Some(3.0));
        let caught_up = crate::state::postgres::Archiver {
            last_archived_wal: Some("000000010000000000000008".into()),
            ..archiver.clone()
        };
        assert_eq!(ready_segments(&caught_up, DEFAULT_SEGMENT_SIZE), Some(0.0));
    }
}
