//! A drill's own verdict: which checks failed and which objectives it
//! missed, and how long its recovery may take before it gives up. Pure: the
//! drill (`execute::drill`) measures, this judges.

use crate::state::drill::{DrillReport, Objectives};
use std::time::Duration;

/// How long recovery may take before the drill gives up: three times the RTO
/// objective, at least ten minutes.
pub fn recovery_limit(objectives: &Objectives) -> Duration {
    Duration::from_secs((objectives.rto_seconds * 3).max(600))
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
            .map(|(n, ok)| CheckResult {
                name: n.to_string(),
                ok: *ok,
                detail: "d".into(),
            })
            .collect();
        r
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
