//! Terraform-style text for a terminal: `+` create, `~` update, `-` delete,
//! colour when stdout is a terminal and NO_COLOR is unset, and a word diff
//! (via `similar`) for long values such as `archive_command`.

use super::{value_text, LONG_VALUE};
use crate::plan::{summarize, Action, Change, ClusterPlan};
use similar::{ChangeTag, TextDiff};
use std::fmt::Write;

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    fn action(&self, action: Action, text: &str) -> String {
        match action {
            Action::Create => self.green(text),
            Action::Update => self.yellow(text),
            Action::Delete | Action::Replace => self.red(text),
        }
    }
}

/// Two lines, `- before` and `+ after`, with the words that differ highlighted
/// when colour is on; easier to read than `a → b` for long commands.
fn word_diff(before: &str, after: &str, style: Style, out: &mut String) {
    let diff = TextDiff::from_words(before, after);
    let (mut old, mut new) = (String::new(), String::new());
    for change in diff.iter_all_changes() {
        let text = change.value();
        match change.tag() {
            ChangeTag::Equal => {
                old.push_str(text);
                new.push_str(text);
            }
            ChangeTag::Delete => old.push_str(&style.paint("31;1", text)),
            ChangeTag::Insert => new.push_str(&style.paint("32;1", text)),
        }
    }
    writeln!(out, "      {} {old}", style.red("-")).unwrap();
    writeln!(out, "      {} {new}", style.green("+")).unwrap();
}

fn change_lines(change: &Change, style: Style, out: &mut String) {
    let mut tags = Vec::new();
    if change.destructive {
        tags.push(style.red("destructive"));
    }
    if change.pending_restart {
        tags.push(style.yellow("pending restart"));
    } else if change.requires_restart {
        tags.push(style.yellow("requires restart"));
    }
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!("  ({})", tags.join(", "))
    };
    let symbol = style.action(change.action, change.action.symbol());
    writeln!(out, "  {symbol} {}{tags}", style.bold(&change.address)).unwrap();
    let (before, after) = (value_text(&change.before), value_text(&change.after));
    match change.action {
        Action::Create => writeln!(out, "      {}", style.green(&after)).unwrap(),
        Action::Delete => writeln!(out, "      {}", style.red(&before)).unwrap(),
        _ if before.len() > LONG_VALUE || after.len() > LONG_VALUE => {
            word_diff(&before, &after, style, out)
        }
        _ => writeln!(out, "      {before} → {after}").unwrap(),
    }
    writeln!(out, "      {}", style.dim(&change.reason)).unwrap();
}

/// The plan for every cluster, then one summary line.
pub fn render_plan(plans: &[ClusterPlan], style: Style) -> String {
    let mut out = String::new();
    for plan in plans {
        writeln!(
            out,
            "{} {} ({})",
            style.bold("cluster"),
            style.bold(&plan.cluster),
            plan.file
        )
        .unwrap();
        if let Some(error) = &plan.error {
            writeln!(
                out,
                "  {} {}",
                style.red("error:"),
                error.replace('\n', "\n  ")
            )
            .unwrap();
            writeln!(out, "  nothing was planned for this cluster").unwrap();
        } else if plan.changes.is_empty() && plan.roles_not_as_planned() {
            // Changes are held back, not absent.
            writeln!(
                out,
                "  no changes planned until the primary is as the plan file says"
            )
            .unwrap();
        } else if plan.changes.is_empty() {
            writeln!(
                out,
                "  {}",
                style.green("no changes: live state matches the plan file")
            )
            .unwrap();
        }
        for change in &plan.changes {
            change_lines(change, style, &mut out);
        }
        for problem in &plan.problems {
            writeln!(
                out,
                "  {} {}: {}{}",
                style.red("!"),
                style.bold(&problem.address),
                problem.message,
                if problem.impossible {
                    style.red(" [fix the plan file]")
                } else {
                    String::new()
                }
            )
            .unwrap();
        }
        for note in &plan.notes {
            writeln!(
                out,
                "  {} {}: {}",
                style.dim("note"),
                note.address,
                style.dim(&note.message)
            )
            .unwrap();
        }
        writeln!(out).unwrap();
    }
    out.push_str(&summary_line(plans));
    out.push('\n');
    out
}

pub fn summary_line(plans: &[ClusterPlan]) -> String {
    let s = summarize(plans.iter().flat_map(|p| &p.changes));
    let problems: usize = plans.iter().map(|p| p.problems.len()).sum();
    let errors = plans.iter().filter(|p| p.error.is_some()).count();
    let pending = plans
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| c.pending_restart)
        .count();
    let destructive = plans
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| c.destructive)
        .count();
    let mut line = format!(
        "Plan: {} to create, {} to update, {} to delete",
        s.create, s.update, s.delete
    );
    if s.replace > 0 {
        write!(line, ", {} to replace", s.replace).unwrap();
    }
    if pending > 0 {
        write!(line, " ({pending} waiting for a restart)").unwrap();
    }
    if destructive > 0 {
        write!(line, "; {destructive} destructive").unwrap();
    }
    write!(
        line,
        "; {problems} problem{}",
        if problems == 1 { "" } else { "s" }
    )
    .unwrap();
    if errors > 0 {
        write!(
            line,
            "; {errors} cluster{} could not be read",
            if errors == 1 { "" } else { "s" }
        )
        .unwrap();
    }
    if plans.len() > 1 {
        write!(line, " across {} clusters", plans.len()).unwrap();
    }
    line.push('.');
    line
}

/// A byte count for people: `512 B`, `1.5 MB`, `2.0 GB` (powers of 1000).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
