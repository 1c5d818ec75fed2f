//! A drill's own verdict: which checks failed and which objectives it
//! missed, and how long its recovery may take before it gives up. Pure: the
//! drill (`execute::drill`) measures, this judges.

use crate::state::drill::{DrillReport, Objectives};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long recovery may take before the drill gives up: three times the RTO
/// objective, at least ten minutes.
pub fn recovery_limit(objectives: &Objectives) -> Duration {
    Duration::from_secs((objectives.rto_seconds * 3).max(600))
}

/// Below this a check is never judged slower than before: a few
/// milliseconds either way is noise, not a slower plan.
pub const SLOWDOWN_FLOOR_SECONDS: f64 = 0.1;

/// What a check's duration is judged against: each check's duration in the
/// newest passed drill, and the plan's `drill.max_slowdown`.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub before: BTreeMap<String, f64>,
    pub max_slowdown: Option<f64>,
}

impl Timing {
    /// The durations of `previous` (the newest passed drill), judged by `max_slowdown`.
    pub fn after(previous: Option<&DrillReport>, max_slowdown: Option<f64>) -> Self {
        let before = previous
            .map(|r| {
                r.checks
                    .iter()
                    .filter_map(|c| Some((c.name.clone(), c.duration_seconds?)))
                    .collect()
            })
            .unwrap_or_default();
        Timing {
            before,
            max_slowdown,
        }
    }

    /// Why a check that took `took` seconds is too slow, if it is: above its
    /// own `max_duration`, or more than `max_slowdown` times (and more than
    /// [`SLOWDOWN_FLOOR_SECONDS`]) slower than in the newest passed drill.
    pub fn verdict(
        &self,
        name: &str,
        max: Option<crate::spec::Duration>,
        took: f64,
    ) -> Option<String> {
        if let Some(max) = max {
            if took > max.as_secs_f64() {
                return Some(format!("took {took:.2}s, above its max_duration {max}"));
            }
        }
        let (before, factor) = (*self.before.get(name)?, self.max_slowdown?);
        (took > before * factor && took - before > SLOWDOWN_FLOOR_SECONDS).then(|| {
            format!(
                "took {took:.2}s, {:.1}x its {before:.2}s in the last passed drill (drill.max_slowdown {factor})",
                took / before.max(f64::EPSILON)
            )
        })
    }
}

/// Failed checks and missed objectives, one line each. Pure.
pub fn judge(report: &DrillReport) -> Vec<String> {
    let mut failures: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("check `{}` failed: {}", c.name, c.detail))
        .collect();
    if let Some(rto) = report.rto_seconds {
        if rto > report.objectives.rto_seconds as f64 {
            failures.push(format!(
                "measured RTO {rto:.0}s is above the objective {}s",
                report.objectives.rto_seconds
            ));
        }
    }
    if let Some(rpo) = report.rpo_seconds {
        if rpo > report.objectives.rpo_seconds as f64 {
            failures.push(format!(
                "achieved RPO {rpo:.0}s is above the objective {}s (last replayed commit {})",
                report.objectives.rpo_seconds,
                report
                    .last_replayed_commit
                    .map_or("none".to_string(), |t| t.to_string())
            ));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::drill::CheckResult;

    fn report(rto: Option<f64>, rpo: Option<f64>, checks: &[(&str, bool)]) -> DrillReport {
        let objectives = Objectives {
            rpo_seconds: 300,
            rto_seconds: 1800,
        };
        let mut r = DrillReport::started(
            "c",
            "b".into(),
            "latest".into(),
            crate::spec::time::Timestamp(0),
            objectives,
            150000,
        );
        r.rto_seconds = rto;
        r.rpo_seconds = rpo;
        r.checks = checks
            .iter()
            .map(|(n, ok)| CheckResult::new(n, *ok, "d"))
            .collect();
        r
    }

    #[test]
    fn a_check_is_too_slow_above_its_max_or_its_factor_beyond_noise() {
        let d = |s: &str| crate::spec::Duration::parse(s).unwrap();
        let mut previous = report(Some(1.0), Some(1.0), &[("q", true), ("fast", true)]);
        previous.checks[0].duration_seconds = Some(0.5);
        previous.checks[1].duration_seconds = Some(0.002);
        let timing = Timing::after(Some(&previous), Some(2.0));
        assert_eq!(timing.verdict("q", None, 0.9), None);
        let slow = timing.verdict("q", None, 1.2).unwrap();
        assert!(slow.contains("2.4x its 0.50s"), "{slow}");
        // 5x slower, but 8 ms: noise.
        assert_eq!(timing.verdict("fast", None, 0.01), None);
        assert!(timing.verdict("fast", None, 0.2).is_some());
        // Its own limit, with or without a previous drill.
        let over = Timing::default()
            .verdict("new", Some(d("1s")), 1.5)
            .unwrap();
        assert!(over.contains("above its max_duration 1s"), "{over}");
        assert_eq!(Timing::default().verdict("new", Some(d("1s")), 0.5), None);
        // No factor in the plan: no comparison.
        assert_eq!(
            Timing::after(Some(&previous), None).verdict("q", None, 9.0),
            None
        );
    }

    #[test]
    fn a_drill_passes_only_with_every_check_and_both_objectives() {
        assert!(judge(&report(Some(60.0), Some(10.0), &[("a", true)])).is_empty());
        let failed = judge(&report(
            Some(60.0),
            Some(10.0),
            &[("a", true), ("orders", false)],
        ));
        assert_eq!(failed, ["check `orders` failed: d"]);
        let slow = judge(&report(Some(1801.0), Some(301.0), &[]));
        assert!(
            slow[0].contains("RTO 1801s is above the objective 1800s"),
            "{slow:?}"
        );
        assert!(
            slow[1].contains("RPO 301s is above the objective 300s"),
            "{slow:?}"
        );
    }
}
