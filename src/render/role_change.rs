//! A role change for people: each step's line as it ends, and the report
//! with the notes, where the journal is and the plan-file change.

use crate::execute::role_change::Journal;
use crate::state::journal::{StepOutcome, StepRecord};
use std::path::Path;

pub fn step_line(record: &StepRecord) -> String {
    let (mark, detail) = match &record.outcome {
        StepOutcome::AlreadyDone(d) => ("=", format!("already done: {d}")),
        StepOutcome::Done(d) | StepOutcome::Passed(d) => ("✓", d.clone()),
        StepOutcome::Refused(d) => ("✗", format!("refused: {d}")),
        StepOutcome::Failed(d) => ("✗", format!("failed: {d}")),
        StepOutcome::NotRun => ("-", "not run".to_string()),
    };
    format!(
        "  {mark} {:<19} {:>6.2}s  {detail}",
        record.step,
        record.duration_ms as f64 / 1000.0
    )
}

pub fn report(journal: &Journal, stored_at: &str, path: &Path) -> String {
    let total_ms: u64 = journal.steps.iter().map(|s| s.duration_ms).sum();
    let mut text = format!(
        "{} of `{}` to `{}`: {} in {:.2}s\n",
        journal.kind.as_str(),
        journal.cluster,
        journal.to,
        journal.outcome,
        total_ms as f64 / 1000.0
    );
    for record in &journal.steps {
        text.push_str(&step_line(record));
        text.push('\n');
    }
    for note in &journal.notes {
        text.push_str(&format!("\nnote: {note}\n"));
    }
    text.push_str(&format!("\njournal: {stored_at}\n"));
    if let Some(change) = &journal.plan_file_change {
        if journal.plan_file_written {
            text.push_str(&format!(
                "\n{} now names the new roles:\n{change}",
                path.display()
            ));
        } else {
            text.push_str(&format!(
                "\nThe plan file must name the new roles (run with --write-plan to make this change, comments kept):\n{change}"
            ));
        }
    }
    text
}
