//! What `pgdr apply` prints after making changes: a line per change (✓ made,
//! ✗ failed with why), the servers that need a restart, and the tally.

use super::human::Style;
use crate::execute::Applied;
use crate::plan::ClusterPlan;
use std::fmt::Write;

/// The report text, and how many changes failed.
pub fn report(plans: &[ClusterPlan], results: &[Applied], style: Style) -> (String, usize) {
    let mut out = String::new();
    let mut done = 0;
    let mut failures = 0;
    out.push('\n');
    for (plan, applied) in plans.iter().zip(results) {
        for outcome in &applied.outcomes {
            match &outcome.result {
                Ok(()) => {
                    done += 1;
                    writeln!(
                        out,
                        "{} {} {}",
                        style.green("✓"),
                        plan.cluster,
                        outcome.address
                    )
                    .unwrap();
                }
                Err(e) => {
                    failures += 1;
                    writeln!(
                        out,
                        "{} {} {}: {}",
                        style.red("✗"),
                        plan.cluster,
                        outcome.address,
                        e.to_string().replace('\n', "\n    ")
                    )
                    .unwrap();
                }
            }
        }
        for (server, settings) in &applied.restart_needed {
            writeln!(
                out,
                "{} {server} needs a restart for: {}",
                style.yellow("restart:"),
                settings.join(", ")
            )
            .unwrap();
        }
    }
    writeln!(
        out,
        "\nApply complete: {done} change{} made, {failures} failed.",
        if done == 1 { "" } else { "s" }
    )
    .unwrap();
    (out, failures)
}
