//! `pgdr generate-docs [--reference DIR] [--man DIR] [--completions DIR]`
//! (hidden; for packagers and the docs): writes what is generated from the
//! code. `--reference`: the pages of `docs/reference/` (render::reference),
//! which a test compares with the committed ones; `--man`: a man page per
//! command (clap_mangen); `--completions`: bash, zsh and fish completions,
//! named as Debian installs them.

use super::{out, Outcome};
use crate::cli::{Cli, GenerateDocsArgs};
use crate::render::reference;
use anyhow::Context;
use clap::CommandFactory;
use std::path::Path;

pub fn run(args: &GenerateDocsArgs) -> anyhow::Result<Outcome> {
    let mut written = 0;
    if let Some(dir) = &args.reference {
        written += write_reference(dir)?;
    }
    if let Some(dir) = &args.man {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let command = Cli::command();
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("writing man pages into {}", dir.display()))?;
        written += std::fs::read_dir(dir)?.count();
    }
    if let Some(dir) = &args.completions {
        for (shell, name) in [
            (clap_complete::Shell::Bash, "pgdr"),
            (clap_complete::Shell::Zsh, "_pgdr"),
            (clap_complete::Shell::Fish, "pgdr.fish"),
        ] {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "pgdr", &mut text);
            write(&dir.join(name), &String::from_utf8_lossy(&text))?;
            written += 1;
        }
    }
    if written == 0 {
        anyhow::bail!("say what to generate: --reference DIR, --man DIR and/or --completions DIR");
    }
    out(&format!("Wrote {written} files.\n"))?;
    Ok(Outcome::Clean)
}

fn write_reference(dir: &Path) -> anyhow::Result<usize> {
    let schema = serde_json::to_value(schemars::schema_for!(crate::spec::PlanFile))
        .expect("schema serialises");
    write(&dir.join("cli.md"), &reference::cli(&Cli::command()))?;
    write(&dir.join("plan-file.md"), &reference::plan_file(&schema))?;
    write(
        &dir.join("exit-codes.md"),
        &reference::exit_codes(crate::cli::EXIT_CODES, crate::cli::COMMAND_EXIT_CODES),
    )?;
    write(
        &dir.join("json.md"),
        &reference::json_formats(&json_formats()),
    )?;
    let rules = dir.join("rules");
    write(
        &rules.join("README.md"),
        &reference::rules_index(crate::lint::RULES),
    )?;
    for rule in crate::lint::RULES {
        write(
            &rules.join(format!("{}.md", rule.id)),
            &reference::rule_page(rule),
        )?;
    }
    Ok(5 + crate::lint::RULES.len())
}

/// Each `--format json` output and the type behind it.
fn json_formats() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    let value = |schema: schemars::Schema| serde_json::to_value(schema).expect("schema serialises");
    vec![
        (
            "plan",
            "`pgdr plan PATH --format json`, and the changes `pgdr apply` reports",
            value(crate::render::json::plan_schema()),
        ),
        (
            "lint",
            "`pgdr lint PATH --format json`",
            value(crate::render::lint::json_schema()),
        ),
        (
            "status",
            "`pgdr status PATH --format json`",
            value(reference::output_schema::<crate::render::status::StatusReport>()),
        ),
        (
            "backups",
            "`pgdr backups PLAN_FILE --format json` (`{ format_version, backups: [...] }`, each as below), `pgdr backup PLAN_FILE --format json` (one), and `base/<id>/backup.json` in the bucket",
            value(reference::output_schema::<crate::state::archive::BackupEntry>()),
        ),
        (
            "drill report",
            "`pgdr drill PLAN_FILE --format json`, and `drills/<time>.json` in the bucket",
            value(reference::output_schema::<crate::state::drill::DrillReport>()),
        ),
    ]
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
