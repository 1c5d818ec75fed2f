//! `pgdr status`: the on-call view of each cluster, for people or as JSON:
//! the figures and findings of the one assessment (`plan::assess`), which
//! `plan` judges by too. `beyond` lists every finding past the plan's
//! promises; the command exits 2 when any cluster has one.

use super::human::bytes;
use crate::plan::assess::assess;
use crate::plan::assess::figures::FailoverFigure;
use crate::spec::Desired;
use crate::state::archive::BackupProgress;
use crate::state::Live;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StatusReport {
    /// `1`.
    pub format_version: u32,
    /// One per cluster of the plan file or fleet.
    pub clusters: Vec<ClusterStatus>,
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct ClusterStatus {
    /// The plan file's `cluster`.
    pub cluster: String,
    /// The plan file.
    pub file: String,
    /// Who accepts writes: `primary`, `standby NAME`, or `null` when nothing does.
    pub primary: Option<String>,
    /// Each standby of the plan file.
    pub standbys: Vec<StandbyStatus>,
    /// Seconds since the newest WAL file reached the archive.
    pub archive_exposure_seconds: Option<f64>,
    /// What losing the primary now could cost: the smaller of the archive's
    /// exposure and the best streaming standby's replay lag.
    pub rpo_exposure_seconds: Option<f64>,
    /// The first and last point a restore can reach.
    pub recoverable_window: Option<Window>,
    /// The newest complete base backup.
    pub last_backup: Option<LastBackup>,
    /// Backups being taken now, as each last reported (every few seconds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub running_backups: Vec<RunningBackup>,
    /// The newest drill.
    pub last_drill: Option<LastDrill>,
    /// When WAL retention starts removing what restoring the proven backup needs.
    pub next_expiry: Option<Expiry>,
    /// The newest switchover or failover, with its measured RTO and RPO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverFigure>,
    /// Automatic failover, with a `failover` section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<WatchStatus>,
    /// Each copy of the archive (`archive.copies`): how far it is behind home.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<crate::plan::assess::copies::CopyFigure>,
    /// An active-active plan's nodes: which serve, and what each receives
    /// from the others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::plan::assess::nodes::NodeFigure>,
    /// Figures beyond the plan's objectives, one line each.
    pub beyond: Vec<String>,
    /// Why the cluster could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StandbyStatus {
    /// Its name in the plan file.
    pub name: String,
    /// `streaming`, `catchup`, ... as the primary reports it; `writable`,
    /// `not connected` or `unreachable` otherwise.
    pub state: String,
    /// Its replay lag as the primary reports it.
    pub replay_lag_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Window {
    /// The end of the oldest complete backup (RFC 3339).
    pub from: String,
    /// When the newest WAL file was archived (RFC 3339).
    pub to: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LastBackup {
    /// Its id (`pgdr backups`).
    pub id: String,
    /// When it ended (RFC 3339).
    pub stop_time: String,
    /// The database's size.
    pub size_bytes: u64,
    /// `full`, `diff` or `incr`.
    #[serde(rename = "type")]
    pub backup_type: &'static str,
}

/// A backup being taken, as it last reported.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunningBackup {
    #[serde(flatten)]
    pub progress: BackupProgress,
    /// Seconds since that report.
    pub reported_seconds_ago: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LastDrill {
    /// When it started (RFC 3339).
    pub at: String,
    /// Whether it passed its checks and the objectives.
    pub ok: bool,
    /// The RTO it measured.
    pub rto_seconds: Option<f64>,
    /// The RPO it achieved.
    pub rpo_seconds: Option<f64>,
}

/// Automatic failover: armed or not, the leases' holders, the last verdict.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WatchStatus {
    /// Armed: `failover.automatic` and a watcher holding its lease.
    pub automatic: bool,
    /// Who holds the watcher lease (`host:pid`).
    pub watcher: Option<String>,
    /// Who holds the guard lease (`host:pid`).
    pub guard: Option<String>,
    /// The watcher's last verdict.
    pub last_evaluation: Option<Evaluation>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Evaluation {
    /// When (RFC 3339).
    pub at: String,
    /// `healthy`, `watching`, `refused` or `failing over`.
    pub verdict: String,
    /// What it saw.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Expiry {
    /// When (RFC 3339).
    pub at: String,
    /// What it starts removing.
    pub what: String,
}

/// The status of one cluster from what was observed at `now`: the
/// assessment's figures and, as "beyond plan" lines, its findings.
pub fn cluster_status(desired: &Desired, live: &Live, now: i64) -> ClusterStatus {
    let assessment = assess(desired, live, Some(now));
    let figures = assessment.figures;
    ClusterStatus {
        cluster: desired.cluster().to_string(),
        file: desired.source.display().to_string(),
        primary: figures.writable,
        standbys: figures
            .standbys
            .into_iter()
            .map(|s| StandbyStatus {
                name: s.name,
                state: s.state,
                replay_lag_seconds: s.replay_lag_seconds,
            })
            .collect(),
        archive_exposure_seconds: figures.archive_exposure_seconds,
        rpo_exposure_seconds: figures.rpo_exposure_seconds,
        recoverable_window: figures.window.map(|(from, to)| Window { from, to }),
        last_backup: figures
            .last_backup
            .map(|(id, stop_time, size_bytes, backup_type)| LastBackup {
                id,
                stop_time,
                size_bytes,
                backup_type,
            }),
        running_backups: figures
            .running_backups
            .into_iter()
            .map(|progress| RunningBackup {
                reported_seconds_ago: (now - progress.updated.secs()).max(0),
                progress,
            })
            .collect(),
        last_drill: figures
            .last_drill
            .map(|(at, ok, rto_seconds, rpo_seconds)| LastDrill {
                at,
                ok,
                rto_seconds,
                rpo_seconds,
            }),
        next_expiry: figures.next_expiry.map(|(at, what)| Expiry { at, what }),
        last_failover: figures.last_failover,
        copies: figures.copies,
        nodes: figures.nodes,
        failover: figures.watch.map(|w| WatchStatus {
            automatic: w.armed,
            watcher: w.watcher,
            guard: w.guard,
            last_evaluation: w.last_evaluation.map(|(at, verdict, detail)| Evaluation {
                at,
                verdict,
                detail,
            }),
        }),
        beyond: assessment
            .findings
            .iter()
            .filter_map(|f| f.beyond())
            .collect(),
        error: None,
    }
}

/// `  backup running   ID (primary, files) on HOST pid N: 1.2 GB of about 2.0 GB read (60%), 35 MB stored, 3s ago`;
/// a report older than a minute says so (the backup may have been killed;
/// the next backup removes what it left).
fn running_line(running: &RunningBackup) -> String {
    let b = &running.progress;
    let pct = if b.total_bytes > 0 {
        format!(
            " ({:.0}%)",
            (b.read_bytes as f64 / b.total_bytes as f64 * 100.0).min(100.0)
        )
    } else {
        String::new()
    };
    let age = running.reported_seconds_ago;
    let stale = if age > 60 {
        ", no report for over a minute: killed? the next backup removes what it left"
    } else {
        ""
    };
    format!(
        "  backup running   {} ({}, {}) on {} pid {}: {} of about {} read{pct}, {} stored, {age}s ago{stale}\n",
        b.id,
        b.source,
        b.method.as_str(),
        b.host,
        b.pid,
        bytes(b.read_bytes),
        bytes(b.total_bytes),
        bytes(b.stored_bytes),
    )
}

fn seconds(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.1}s"))
}

pub fn human(report: &StatusReport) -> String {
    let mut text = String::new();
    for c in &report.clusters {
        text.push_str(&format!("cluster {} ({})\n", c.cluster, c.file));
        if let Some(e) = &c.error {
            text.push_str(&format!("  could not be read: {e}\n\n"));
            continue;
        }
        text.push_str(&format!(
            "  writable         {}\n",
            c.primary.as_deref().unwrap_or("NONE")
        ));
        for s in &c.standbys {
            text.push_str(&format!(
                "  standby {:<8} {} (replay lag {})\n",
                s.name,
                s.state,
                seconds(s.replay_lag_seconds)
            ));
        }
        text.push_str(&format!(
            "  RPO exposure     {} (archive {}, best standby included)\n",
            seconds(c.rpo_exposure_seconds),
            seconds(c.archive_exposure_seconds)
        ));
        if let Some(w) = &c.recoverable_window {
            text.push_str(&format!("  recoverable      {} → {}\n", w.from, w.to));
        }
        match &c.last_backup {
            Some(b) => text.push_str(&format!(
                "  last backup      {} ({}, ended {}, {})\n",
                b.id,
                b.backup_type,
                b.stop_time,
                bytes(b.size_bytes)
            )),
            None => text.push_str("  last backup      none\n"),
        }
        for b in &c.running_backups {
            text.push_str(&running_line(b));
        }
        match &c.last_drill {
            Some(d) => text.push_str(&format!(
                "  last drill       {} {} (RTO {}, RPO {})\n",
                d.at,
                if d.ok { "passed" } else { "FAILED" },
                seconds(d.rto_seconds),
                seconds(d.rpo_seconds)
            )),
            None => text.push_str("  last drill       none\n"),
        }
        if let Some(f) = &c.last_failover {
            text.push_str(&format!(
                "  last failover    {} {} ({}) to {}: {} (RTO {}, RPO {})\n",
                f.at,
                f.kind,
                f.trigger,
                f.to,
                f.outcome,
                seconds(f.rto_seconds),
                seconds(f.rpo_seconds)
            ));
        }
        if let Some(w) = &c.failover {
            text.push_str(&format!(
                "  auto failover    {} (watcher {}, guard {})\n",
                if w.automatic {
                    "armed"
                } else {
                    "off: the watcher only reports"
                },
                w.watcher.as_deref().unwrap_or("none"),
                w.guard.as_deref().unwrap_or("none")
            ));
            if let Some(e) = &w.last_evaluation {
                text.push_str(&format!(
                    "  last look        {} {}: {}\n",
                    e.at, e.verdict, e.detail
                ));
            }
        }
        for copy in &c.copies {
            text.push_str(&copy_line(copy));
        }
        for node in &c.nodes {
            text.push_str(&node_line(node));
        }
        if let Some(e) = &c.next_expiry {
            text.push_str(&format!("  next expiry      {}: {}\n", e.at, e.what));
        }
        for b in &c.beyond {
            text.push_str(&format!("  BEYOND PLAN      {b}\n"));
        }
        text.push('\n');
    }
    text
}

/// `  node west        us-west-2: serving; from east replicating, 0.2s behind`
fn node_line(node: &crate::plan::assess::nodes::NodeFigure) -> String {
    let state = match (&node.error, node.serving) {
        (Some(why), _) => format!("LOST ({})", why.replace('\n', "; ")),
        (None, true) => "serving".to_string(),
        (None, false) => "not taking writes (in recovery)".to_string(),
    };
    let receives: Vec<String> = node
        .receives
        .iter()
        .map(|r| {
            let mut text = format!("from {} {}", r.from, r.status);
            if let Some(lag) = r.lag_seconds {
                text.push_str(&format!(", {lag:.1}s behind"));
            }
            if let Some(bytes) = r.lag_bytes {
                text.push_str(&format!(", {bytes} bytes unconfirmed"));
            }
            text
        })
        .collect();
    let mut line = format!(
        "  node {:<11} {}: {state}",
        node.name,
        node.region.as_deref().unwrap_or("-")
    );
    if node.error.is_none() && !receives.is_empty() {
        line.push_str(&format!("; {}", receives.join("; ")));
    }
    line.push('\n');
    line
}

/// `  copy us-west-2    s3://… (us-west-2): 2 WAL behind (40s), newest backup …`
fn copy_line(copy: &crate::plan::assess::copies::CopyFigure) -> String {
    let what = match &copy.error {
        Some(why) => format!("UNREADABLE: {why}"),
        None => format!(
            "{} WAL file(s) behind home ({}), {} backup(s) behind; newest WAL {} (home {}), newest backup {} (home {})",
            copy.wal_behind.unwrap_or(0),
            seconds(copy.seconds_behind.map(|s| s as f64)),
            copy.backups_behind.unwrap_or(0),
            copy.newest_wal.as_deref().unwrap_or("none"),
            copy.home_newest_wal.as_deref().unwrap_or("none"),
            copy.newest_backup.as_deref().unwrap_or("none"),
            copy.home_newest_backup.as_deref().unwrap_or("none")
        ),
    };
    format!(
        "  copy {:<11} {} ({}): {what}\n",
        copy.name, copy.url, copy.region
    )
}
