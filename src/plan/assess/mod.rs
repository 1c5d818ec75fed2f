//! One assessment: the live state judged against the plan file's promises
//! (objectives, base-backup schedule, drills, WAL retention, standbys'
//! `max_lag`), as typed [`Finding`]s and the [`Figures`] they come from.
//! `plan` turns the findings into problems (the long form, with what to
//! do), `status` shows the figures and the findings as "beyond plan" lines
//! (the short form), and `check` reads plan: every judgement is made here
//! once, so the three never disagree. Pure: the clock comes in as `now`.
//!
//! - [`archive`]: base backups, the WAL after the newest (holes, damage) and
//!   whether the primary's `archive_command` feeds the archive;
//! - [`drills`]: the newest drill (age, verdict, RTO and RPO) and when WAL
//!   retention cuts into what the proven restore needs;
//! - [`copies`]: each copy of the archive within the RPO of home, and the
//!   region-loss drills;
//! - [`figures`]: who accepts writes, standbys' lag, RPO exposure, the
//!   recoverable window, the last backup and drill;
//! - [`nodes`]: an active-active plan's nodes, each direction of the mesh
//!   replicating within the allowed lag.

pub mod archive;
pub mod copies;
pub mod drills;
pub mod failovers;
pub mod figures;
pub mod nodes;

use crate::spec::time::Timestamp;
use crate::spec::{Desired, Duration};
use crate::state::archive::WalDamage;
use crate::state::Live;
pub use figures::Figures;

/// One judgement, at a plan address.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// `archive.backups`, `archive.wal`, `drill`, `objectives.rpo`,
    /// `postgres.standby.<name>`, `postgres`.
    pub address: String,
    pub kind: Kind,
}

/// What was found. Each carries what both its forms need.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The archive's contents could not be read.
    ArchiveUnreadable {
        url: String,
        why: String,
    },
    /// With `archiver: pgdr`, the primary's archive_command is not pgdr's.
    ArchiveCommandNotPgdr {
        url: String,
        empty: bool,
    },
    NoBackup {
        url: String,
        file: String,
    },
    /// The newest backup is older than `base_backups.every`.
    BackupTooOld {
        id: String,
        age_seconds: u64,
        every: Duration,
        file: String,
    },
    /// The newest full backup is older than `base_backups.full_every`.
    FullTooOld {
        id: Option<String>,
        age_seconds: u64,
        full_every: Duration,
        file: String,
    },
    /// Diff or incr backups whose chain is broken (a parent missing): they
    /// cannot be restored. Each: why.
    BrokenChains {
        broken: Vec<String>,
    },
    /// Backup folders without `backup.json` (a note, not a problem).
    IncompleteBackups {
        ids: Vec<String>,
    },
    /// WAL objects changed after they were archived.
    WalDamaged {
        url: String,
        newest_backup: String,
        damaged: Vec<WalDamage>,
        file: String,
    },
    /// WAL segments missing after the newest backup.
    WalHoles {
        url: String,
        newest_backup: String,
        holes: Vec<String>,
        /// How many of them have a delete marker (recoverable).
        deleted: usize,
        file: String,
    },
    NoDrill {
        file: String,
    },
    DrillTooOld {
        age_seconds: u64,
        started_at: Timestamp,
        every: Duration,
        file: String,
    },
    DrillFailed {
        started_at: Timestamp,
        backup_id: String,
        failures: Vec<String>,
    },
    /// The newest drill's RTO or RPO is above today's objective.
    DrillObjective {
        figure: Objective,
        value: f64,
        objective: Duration,
    },
    /// WAL retention removes (or soon removes) what the proven restore needs.
    WalExpiry {
        retention: Duration,
        left_seconds: u64,
        backup_id: String,
        drilled: bool,
        age_seconds: u64,
    },
    /// Losing the primary now would cost more than `objectives.rpo`.
    RpoExposure {
        seconds: f64,
        objective: Duration,
    },
    /// A streaming standby replays further behind than its `max_lag`.
    StandbyLag {
        name: String,
        seconds: f64,
        bytes: Option<u64>,
        max: Duration,
    },
    SplitBrain {
        servers: Vec<String>,
    },
    NoWritable,
    PrimaryUnreachable {
        why: String,
    },
    /// `drill.failover_every` is set and no role change finished yet.
    NoFailoverDrill {
        every: Duration,
        file: String,
    },
    FailoverDrillTooOld {
        age_seconds: u64,
        started_at: Timestamp,
        every: Duration,
        file: String,
    },
    /// A copy of the archive could not be read.
    CopyUnreadable {
        name: String,
        url: String,
        why: String,
    },
    /// A copy lacks WAL home has held longer than the RPO, or holds no backup.
    CopyBehind {
        name: String,
        url: String,
        segments: usize,
        seconds: u64,
        rpo: Duration,
        no_backup: bool,
        file: String,
    },
    /// `drill.region_every` is set and no copy holds a region-loss drill.
    NoRegionDrill {
        every: Duration,
        command: String,
    },
    /// The newest region-loss drill is older than `drill.region_every`, or failed.
    RegionDrillStale {
        started_at: Timestamp,
        age_seconds: u64,
        every: Duration,
        ok: bool,
        failures: Vec<String>,
        command: String,
    },
    /// An active-active node could not be read; `serving`: the nodes
    /// that still take writes.
    NodeLost {
        name: String,
        why: String,
        serving: Vec<String>,
    },
    /// A node does not receive another's writes: its subscription is not
    /// replicating.
    ReplicationStopped {
        node: String,
        from: String,
        subscription: String,
        status: String,
    },
    /// A node receives another's writes later than `active_active.max_lag`
    /// (time) or `max_lag_bytes`: `behind` and `allowed` as people read them.
    ReplicationLag {
        node: String,
        from: String,
        behind: String,
        allowed: String,
    },
    /// The last finished role change measured an RTO or RPO above today's objective.
    FailoverOverObjective {
        figure: Objective,
        value: f64,
        objective: Duration,
        kind: String,
        started_at: Timestamp,
    },
    /// `failover.automatic` is on and no watcher (`guard: false`) or no
    /// guard (`guard: true`) renews its lease: `who` is `watcher` or
    /// `guard`; `last` when it was last renewed, if ever.
    FailoverAgentMissing {
        who: &'static str,
        last: Option<Timestamp>,
        file: String,
    },
    /// The watcher's last look refused an automatic failover a person must
    /// act on (and paged through `notify_command`).
    FailoverRefused {
        at: Timestamp,
        why: String,
    },
}

/// RTO or RPO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    Rto,
    Rpo,
}

/// The measured RTO and RPO (seconds) that exceed the plan's objectives —
/// today's, since the plan may have tightened them since the measurement:
/// (which, measured, objective). Drills and role changes are judged alike.
pub fn over_objectives(
    desired: &Desired,
    rto: Option<f64>,
    rpo: Option<f64>,
) -> Vec<(Objective, f64, Duration)> {
    let objectives = &desired.plan.objectives;
    [
        (Objective::Rto, rto, objectives.rto),
        (Objective::Rpo, rpo, objectives.rpo),
    ]
    .into_iter()
    .filter_map(|(figure, measured, objective)| {
        measured
            .filter(|v| *v > objective.as_secs() as f64)
            .map(|value| (figure, value, objective))
    })
    .collect()
}

/// How a finding enters a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanEntry {
    Problem(String),
    Note(String),
}

/// The assessment of one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub findings: Vec<Finding>,
    pub figures: Figures,
}

/// How many days ahead the WAL retention's cut into the proven restore is
/// reported.
pub const EXPIRY_WARNING_DAYS: u64 = 3;

/// Judges `live` against `desired`. Ages of backups and drills are the ones
/// observed when the archive was read; `now` (seconds since the epoch) dates
/// what the primary reports (when WAL was last archived): without it (the
/// planner reads no clock) there is no RPO exposure.
pub fn assess(desired: &Desired, live: &Live, now: Option<i64>) -> Assessment {
    let figures = figures::figures(desired, live, now);
    let mut findings = figures::role_findings(live);
    findings.extend(figures::standby_findings(desired, live));
    findings.extend(figures::exposure_findings(desired, &figures));
    findings.extend(archive::findings(desired, live));
    if let Some(Ok(content)) = &live.archive_content {
        findings.extend(drills::findings(desired, content));
        findings.extend(copies::findings(desired, content));
    }
    findings.extend(failovers::findings(desired, live));
    findings.extend(nodes::findings(desired, &figures.nodes));
    let now = now.or_else(|| {
        live.archive_content
            .as_ref()
            .and_then(|c| c.as_ref().ok())
            .and_then(|c| c.observed_at_unix)
    });
    findings.extend(failovers::watch_findings(desired, live, now));
    Assessment { findings, figures }
}

/// `26h` → `1d 2h`: an age as people read it.
pub fn approximate(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

impl Finding {
    pub fn new(address: impl Into<String>, kind: Kind) -> Finding {
        Finding {
            address: address.into(),
            kind,
        }
    }

    /// What `plan` says of it: a problem with what to do, a note, or nothing
    /// (roles, lag and exposure are planned elsewhere, with more detail, or
    /// are the on-call view's alone).
    pub fn plan_entry(&self) -> Option<PlanEntry> {
        archive::plan_entry(&self.kind)
            .or_else(|| drills::plan_entry(&self.kind))
            .or_else(|| copies::plan_entry(&self.kind))
            .or_else(|| failovers::plan_entry(&self.kind))
            .or_else(|| nodes::plan_entry(&self.kind))
            .map(|(note, text)| {
                if note {
                    PlanEntry::Note(text)
                } else {
                    PlanEntry::Problem(text)
                }
            })
    }

    /// The on-call view's one line, when the finding puts a figure beyond
    /// the plan (`status` exits 2 then).
    /// The finding's kind as a name (`backup_too_old`): the rule label of
    /// its metric. It is the kind's variant name, so it changes only with
    /// the code.
    pub fn rule(&self) -> String {
        let debug = format!("{:?}", self.kind);
        let mut name = String::new();
        for c in debug.chars().take_while(|c| c.is_ascii_alphanumeric()) {
            if c.is_ascii_uppercase() && !name.is_empty() {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        }
        name
    }

    pub fn beyond(&self) -> Option<String> {
        archive::beyond(&self.kind)
            .or_else(|| drills::beyond(&self.kind))
            .or_else(|| copies::beyond(&self.kind))
            .or_else(|| failovers::beyond(&self.kind))
            .or_else(|| nodes::beyond(&self.kind))
            .or_else(|| figures::beyond(&self.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_read_them() {
        assert_eq!(approximate(59), "0m");
        assert_eq!(approximate(3_660), "1h 1m");
        assert_eq!(approximate(93_784), "1d 2h");
    }
}
