//! `pgdr status`: the on-call view of each cluster, computed purely from what
//! `observe` read (roles, replication, the archiver, the archive's backups and
//! drills), and rendered for people or as JSON. `beyond` lists every figure
//! past the plan's objectives; the command exits 2 when any cluster has one.

use super::human::bytes;
use crate::spec::time::{parse_rfc3339, rfc3339};
use crate::spec::Desired;
use crate::state::{roles, Live, Roles};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub format_version: u32,
    pub clusters: Vec<ClusterStatus>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub file: String,
    /// Who accepts writes: `primary`, `standby NAME`, or `null` when nothing does.
    pub primary: Option<String>,
    pub standbys: Vec<StandbyStatus>,
    /// Seconds since the newest WAL file reached the archive.
    pub archive_exposure_seconds: Option<f64>,
    /// What losing the primary now could cost: the smaller of the archive's
    /// exposure and the best streaming standby's replay lag.
    pub rpo_exposure_seconds: Option<f64>,
    pub recoverable_window: Option<Window>,
    pub last_backup: Option<LastBackup>,
    pub last_drill: Option<LastDrill>,
    pub next_expiry: Option<Expiry>,
    /// Figures beyond the plan's objectives, one line each.
    pub beyond: Vec<String>,
    /// Why the cluster could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StandbyStatus {
    pub name: String,
    /// `streaming`, `catchup`, ... as the primary reports it; `writable`,
    /// `not connected` or `unreachable` otherwise.
    pub state: String,
    pub replay_lag_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastBackup {
    pub id: String,
    pub stop_time: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastDrill {
    pub at: String,
    pub ok: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    pub at: String,
    pub what: String,
}

/// `2026-11-24 10:15:00 UTC` (pg_stat_archiver) or RFC 3339 → seconds.
fn secs(text: &str) -> Option<i64> {
    parse_rfc3339(&text.replace(" UTC", "Z"))
}

/// The status of one cluster from what was observed at `now`.
pub fn cluster_status(desired: &Desired, live: &Live, now: i64) -> ClusterStatus {
    let plan = &desired.plan;
    let objectives = &plan.objectives;
    let mut status = ClusterStatus {
        cluster: desired.cluster().to_string(),
        file: desired.source.display().to_string(),
        ..ClusterStatus::default()
    };
    status.primary = match roles(live) {
        Roles::AsPlanned => Some("primary".into()),
        Roles::FailedOver(w) => Some(w[0].clone()),
        Roles::SplitBrain(w) => {
            status
                .beyond
                .push(format!("split brain: {} all accept writes", w.join(", ")));
            None
        }
        Roles::NoWritable => {
            status.beyond.push("nothing accepts writes".to_string());
            None
        }
    };
    if let Some(e) = &live.primary_error {
        status.beyond.push(format!(
            "the primary cannot be reached: {}",
            e.lines().next().unwrap_or_default()
        ));
    }
    let replication = live
        .primary
        .as_ref()
        .map(|p| p.health.replication.as_slice())
        .unwrap_or_default();
    for standby in &plan.standbys {
        let name = standby.name.as_str();
        let streaming = replication.iter().find(|r| r.application_name == name);
        let seen = live.standbys.get(name);
        let (state, lag) = match (streaming, seen) {
            (Some(r), _) => (r.state.clone(), Some(r.replay_lag_seconds)),
            (None, Some(s)) if s.live.as_ref().is_some_and(|l| !l.in_recovery) => {
                ("writable".into(), None)
            }
            (None, Some(s)) if s.live.is_some() => ("not connected".into(), None),
            _ => ("unreachable".into(), None),
        };
        if let (Some(lag), Some(max)) = (lag, standby.max_lag) {
            if lag > max.as_secs() as f64 {
                status.beyond.push(format!(
                    "standby {name} lags {lag:.0}s, more than its max_lag ({max})"
                ));
            }
        }
        status.standbys.push(StandbyStatus {
            name: name.to_string(),
            state,
            replay_lag_seconds: lag,
        });
    }

    let archived_at = live
        .primary
        .as_ref()
        .and_then(|p| p.health.archiver.as_ref())
        .and_then(|a| a.last_archived_time.as_deref())
        .and_then(secs);
    status.archive_exposure_seconds = archived_at.map(|t| (now - t).max(0) as f64);
    let best_lag = status
        .standbys
        .iter()
        .filter(|s| s.state == "streaming")
        .filter_map(|s| s.replay_lag_seconds)
        .min_by(f64::total_cmp);
    status.rpo_exposure_seconds = match (status.archive_exposure_seconds, best_lag) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    };
    if let Some(exposure) = status.rpo_exposure_seconds {
        if exposure > objectives.rpo.as_secs() as f64 {
            status.beyond.push(format!(
                "RPO exposure {exposure:.0}s is above objectives.rpo ({})",
                objectives.rpo
            ));
        }
    }

    if let Some(Err(why)) = &live.archive_content {
        status.beyond.push(format!(
            "the archive's contents could not be read, so no backup or WAL in it is counted: {}",
            why.lines().next().unwrap_or_default()
        ));
    }
    if let Some(Ok(content)) = &live.archive_content {
        if let (Some(oldest), Some(newest)) = (content.backups.first(), content.backups.last()) {
            status.recoverable_window = Some(Window {
                from: oldest.stop_time.clone(),
                // The newest archived WAL, or the newest backup's end when
                // that is later (it waits for its own WAL to be archived).
                to: match (archived_at, newest.stop_secs()) {
                    (Some(a), Some(s)) if a > s => rfc3339(a),
                    _ => newest.stop_time.clone(),
                },
            });
            status.last_backup = Some(LastBackup {
                id: newest.id.clone(),
                stop_time: newest.stop_time.clone(),
                size_bytes: newest.size_bytes,
            });
            if let Some(every) = plan.archive.as_ref().and_then(|a| a.base_backups.as_ref()) {
                if let Some(stop) = newest.stop_secs() {
                    if now - stop > every.every.as_secs() as i64 {
                        status.beyond.push(format!(
                            "the newest backup is older than base_backups.every ({})",
                            every.every
                        ));
                    }
                }
            }
            if let (Some(retention), Some(start)) = (
                plan.archive.as_ref().and_then(|a| a.wal_retention),
                secs(&oldest.start_time),
            ) {
                status.next_expiry = Some(Expiry {
                    at: rfc3339(start + retention.as_secs() as i64),
                    what: format!(
                        "the WAL lifecycle ({retention}) starts removing WAL backup {} needs",
                        oldest.id
                    ),
                });
            }
        }
        // A gap or a rewritten object ends every restore there: the window's
        // end is not reachable, whatever the figures above say.
        let archived_wal = live
            .primary
            .as_ref()
            .and_then(|p| p.health.archiver.as_ref())
            .and_then(|a| a.last_archived_wal.as_deref());
        if let Some(first) = crate::plan::archive::wal_holes(content, archived_wal).first() {
            status.beyond.push(format!(
                "WAL segment {first} is missing from the archive: a restore from the newest backup stops before it"
            ));
        }
        if let Some(first) = content.wal_damaged.first() {
            status.beyond.push(format!(
                "{} WAL object(s) changed after they were archived ({first}{}): a restore stops before {}",
                content.wal_damaged.len(),
                if content.wal_damaged.len() > 1 { ", ..." } else { "" },
                first.name
            ));
        }
        if let Some(drill) = &content.drills.newest {
            status.last_drill = Some(LastDrill {
                at: drill.started_at.clone(),
                ok: drill.ok,
                rto_seconds: drill.rto_seconds,
                rpo_seconds: drill.rpo_seconds,
            });
            if !drill.ok {
                status
                    .beyond
                    .push(format!("the last drill ({}) failed", drill.started_at));
            }
            if drill
                .rto_seconds
                .is_some_and(|r| r > objectives.rto.as_secs() as f64)
            {
                status.beyond.push(format!(
                    "the last drill's RTO is above objectives.rto ({})",
                    objectives.rto
                ));
            }
            if drill
                .rpo_seconds
                .is_some_and(|r| r > objectives.rpo.as_secs() as f64)
            {
                status.beyond.push(format!(
                    "the last drill's RPO is above objectives.rpo ({})",
                    objectives.rpo
                ));
            }
            if let (Some(every), Some(at)) = (
                plan.drill.as_ref().map(|d| d.every),
                secs(&drill.started_at),
            ) {
                if now - at > every.as_secs() as i64 {
                    status.beyond.push(format!(
                        "the last drill is older than drill.every ({every})"
                    ));
                }
            }
        } else if plan.drill.is_some() {
            status.beyond.push("no drill yet".into());
        }
    }
    status
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
                "  last backup      {} (ended {}, {})\n",
                b.id,
                b.stop_time,
                bytes(b.size_bytes)
            )),
            None => text.push_str("  last backup      none\n"),
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
