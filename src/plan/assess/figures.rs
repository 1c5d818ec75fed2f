//! The on-call figures: who accepts writes, each standby's state and replay
//! lag, what losing the primary now could cost (RPO exposure), the
//! recoverable window, the last backup and drill and the next WAL expiry;
//! and the findings they make when beyond the plan (roles, `max_lag`,
//! `objectives.rpo`).

use super::{Finding, Kind};
use crate::spec::time::{parse_rfc3339, rfc3339};
use crate::spec::Desired;
use crate::state::postgres::Replication;
use crate::state::{roles, Live, Roles};

/// What `status` shows of a cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    /// Who accepts writes: `primary`, `standby NAME`; `None` when nothing
    /// (or more than one) does.
    pub writable: Option<String>,
    pub standbys: Vec<StandbyFigure>,
    /// Seconds since the newest WAL file reached the archive.
    pub archive_exposure_seconds: Option<f64>,
    /// The smaller of the archive's exposure and the best streaming
    /// standby's replay lag.
    pub rpo_exposure_seconds: Option<f64>,
    /// From the end of the oldest backup to the newest archived WAL (RFC 3339).
    pub window: Option<(String, String)>,
    /// The newest backup: id, end, size, type (`full`, `diff`, `incr`).
    pub last_backup: Option<(String, String, u64, &'static str)>,
    /// Backups being taken now, as they last reported.
    pub running_backups: Vec<crate::state::archive::BackupProgress>,
    /// The newest drill: started, passed, RTO, RPO.
    pub last_drill: Option<(String, bool, Option<f64>, Option<f64>)>,
    /// When WAL retention starts removing what the proven restore needs (see
    /// [`super::drills::wal_expiry_of`]), and of which backup.
    pub next_expiry: Option<(String, String)>,
    /// The newest role change the bucket records.
    pub last_failover: Option<FailoverFigure>,
    /// Automatic failover, when the plan has a `failover` section.
    pub watch: Option<WatchFigure>,
    /// Each copy of the archive against home.
    pub copies: Vec<super::copies::CopyFigure>,
    /// An active-active plan's nodes.
    pub nodes: Vec<super::nodes::NodeFigure>,
}

/// The newest role change, as its journal says (as `status` prints it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct FailoverFigure {
    pub at: String,
    /// `switchover` or `failover`; `manual` or `automatic`; `done`, `refused`, `failed`.
    pub kind: String,
    pub trigger: String,
    pub outcome: String,
    pub to: String,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

/// Whether `pgdr watch` would act, who holds its leases, and what it last concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchFigure {
    /// `failover.automatic`: the watcher fails over by itself.
    pub armed: bool,
    pub watcher: Option<String>,
    pub guard: Option<String>,
    /// (when, verdict, why).
    pub last_evaluation: Option<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StandbyFigure {
    pub name: String,
    /// `streaming`, `catchup`, ... as the primary reports it; `writable`,
    /// `not connected` or `unreachable` otherwise.
    pub state: String,
    pub replay_lag_seconds: Option<f64>,
}

/// `2026-11-24 10:15:00 UTC` (pg_stat_archiver) or RFC 3339 → seconds.
fn secs(text: &str) -> Option<i64> {
    parse_rfc3339(&text.replace(" UTC", "Z"))
}

pub fn figures(desired: &Desired, live: &Live, now: Option<i64>) -> Figures {
    let mut figures = Figures {
        writable: match roles(live) {
            Roles::AsPlanned => Some("primary".into()),
            Roles::FailedOver(w) => Some(w[0].clone()),
            Roles::SplitBrain(_) | Roles::NoWritable => None,
        },
        ..Figures::default()
    };
    let replication = replication(live);
    for standby in &desired.plan.standbys {
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
        figures.standbys.push(StandbyFigure {
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
    figures.archive_exposure_seconds = archived_at.zip(now).map(|(t, now)| (now - t).max(0) as f64);
    let best_lag = figures
        .standbys
        .iter()
        .filter(|s| s.state == "streaming")
        .filter_map(|s| s.replay_lag_seconds)
        .min_by(f64::total_cmp);
    figures.rpo_exposure_seconds = match (figures.archive_exposure_seconds, best_lag) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    };
    figures.nodes = super::nodes::figures(desired, live);
    if let Some(Ok(content)) = &live.archive_content {
        figures.copies = super::copies::figures(desired, content);
        if let (Some(oldest), Some(newest)) = (content.backups.first(), content.backups.last()) {
            figures.window = Some((
                oldest.stop_time.to_string(),
                // The newest archived WAL, or the newest backup's end when
                // that is later (it waits for its own WAL to be archived).
                match (archived_at, newest.stop_secs()) {
                    (Some(a), Some(s)) if a > s => rfc3339(a),
                    _ => newest.stop_time.to_string(),
                },
            ));
            figures.last_backup = Some((
                newest.id.clone(),
                newest.stop_time.to_string(),
                newest.size_bytes,
                newest.backup_type.as_str(),
            ));
        }
        figures.running_backups = content.running.clone();
        let retention = desired.plan.archive.as_ref().and_then(|a| a.wal_retention);
        if let (Some((backup, _, age, _)), Some(now), Some(retention)) = (
            super::drills::wal_expiry_of(desired, content),
            content.observed_at_unix,
            retention,
        ) {
            let started = now - age as i64;
            figures.next_expiry = Some((
                rfc3339(started + retention.as_secs() as i64),
                format!(
                    "the WAL lifecycle ({retention}) starts removing WAL backup {backup} needs"
                ),
            ));
        }
        figures.last_drill = content
            .drills
            .newest
            .as_ref()
            .map(|d| (d.started_at.to_string(), d.ok, d.rto_seconds, d.rpo_seconds));
    }
    figures.last_failover = live
        .failovers
        .as_ref()
        .and_then(|f| f.newest.as_ref())
        .map(|j| FailoverFigure {
            at: j.started_at.to_string(),
            kind: j.kind.as_str().to_string(),
            trigger: match j.trigger {
                crate::state::journal::Trigger::Manual => "manual".into(),
                crate::state::journal::Trigger::Automatic => "automatic".into(),
            },
            outcome: j.outcome.clone(),
            to: j.to.clone(),
            rto_seconds: j.rto_seconds,
            rpo_seconds: j.rpo_seconds,
        });
    figures.watch = desired.plan.failover.as_ref().map(|f| {
        let leases = live.leases.as_ref();
        WatchFigure {
            armed: f.automatic,
            watcher: leases
                .and_then(|l| l.watcher.as_ref())
                .map(|l| l.holder.clone()),
            guard: leases
                .and_then(|l| l.guard.as_ref())
                .map(|l| l.holder.clone()),
            last_evaluation: leases
                .and_then(|l| l.last_evaluation.as_ref())
                .map(|e| (e.at.to_string(), e.verdict.clone(), e.detail.clone())),
        }
    });
    figures
}

fn replication(live: &Live) -> &[Replication] {
    live.primary
        .as_ref()
        .map(|p| p.health.replication.as_slice())
        .unwrap_or_default()
}

/// Split brain, nothing writable, the primary unreachable.
pub fn role_findings(live: &Live) -> Vec<Finding> {
    let mut found = Vec::new();
    match roles(live) {
        Roles::SplitBrain(servers) => {
            found.push(Finding::new("postgres", Kind::SplitBrain { servers }))
        }
        Roles::NoWritable => found.push(Finding::new("postgres", Kind::NoWritable)),
        _ => {}
    }
    if let Some(e) = &live.primary_error {
        found.push(Finding::new(
            "postgres.primary",
            Kind::PrimaryUnreachable {
                why: e.lines().next().unwrap_or_default().to_string(),
            },
        ));
    }
    found
}

/// A streaming standby's lag beyond its `max_lag`: the one rule `plan` and
/// `status` both apply.
pub fn standby_lag(standby: &crate::spec::Standby, row: &Replication) -> Option<Kind> {
    let max = standby.max_lag?;
    (row.replay_lag_seconds > max.as_secs() as f64).then(|| Kind::StandbyLag {
        name: standby.name.as_str().to_string(),
        seconds: row.replay_lag_seconds,
        bytes: row.replay_lag_bytes.map(|b| b.max(0) as u64),
        max,
    })
}

pub fn standby_findings(desired: &Desired, live: &Live) -> Vec<Finding> {
    let replication = replication(live);
    desired
        .plan
        .standbys
        .iter()
        .filter_map(|standby| {
            let name = standby.name.as_str();
            let row = replication.iter().find(|r| r.application_name == name)?;
            Some(Finding::new(
                format!("postgres.standby.{name}"),
                standby_lag(standby, row)?,
            ))
        })
        .collect()
}

pub fn exposure_findings(desired: &Desired, figures: &Figures) -> Vec<Finding> {
    let objective = desired.plan.objectives.rpo;
    figures
        .rpo_exposure_seconds
        .filter(|e| *e > objective.as_secs() as f64)
        .map(|seconds| Finding::new("objectives.rpo", Kind::RpoExposure { seconds, objective }))
        .into_iter()
        .collect()
}

/// `status`'s line.
pub(super) fn beyond(kind: &Kind) -> Option<String> {
    Some(match kind {
        Kind::SplitBrain { servers } => {
            format!("split brain: {} all accept writes", servers.join(", "))
        }
        Kind::NoWritable => "nothing accepts writes".to_string(),
        Kind::PrimaryUnreachable { why } => format!("the primary cannot be reached: {why}"),
        Kind::StandbyLag {
            name, seconds, max, ..
        } => {
            format!("standby {name} lags {seconds:.0}s, more than its max_lag ({max})")
        }
        Kind::RpoExposure { seconds, objective } => {
            format!("RPO exposure {seconds:.0}s is above objectives.rpo ({objective})")
        }
        _ => return None,
    })
}
