//! `pgdr plan PATH`: read live state and print the changes that would make it
//! match the plan file(s). Reads only; never writes to a live system.

use super::{load_all, out, plan_all, style, Outcome};
use crate::cli::{Format, PlanArgs};
use crate::plan::saved::SavedPlan;
use crate::providers::Systems;
use crate::render;
use crate::settings::Settings;
use anyhow::{bail, Context};

pub async fn run(args: &PlanArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_all(&args.path)?;
    let systems = Systems::new(settings);
    let plans = plan_all(&desired, &systems).await;

    let text = match args.format {
        Format::Human => render::human::render_plan(&plans, style(settings)),
        Format::Json => render::json::render_plan(&plans),
        Format::Markdown => render::markdown::render_plan(&plans),
    };
    out(&text)?;

    let failed = plans.iter().filter(|p| p.error.is_some()).count();
    if let Some(path) = args.out.as_ref().filter(|_| failed > 0) {
        eprintln!("warning: not saving the plan to {}: a plan that could not read every cluster is not fit to apply", path.display());
    } else if let Some(path) = &args.out {
        // Absolute paths, so the saved plan can be applied from any directory.
        let mut clusters = plans.clone();
        for c in &mut clusters {
            if let Ok(absolute) = std::fs::canonicalize(&c.file) {
                c.file = absolute.display().to_string();
            }
        }
        let saved = SavedPlan::new(clusters);
        let json = serde_json::to_string_pretty(&saved).expect("saved plan serialises");
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "Saved the plan to {}; apply it with: pgdr apply {}",
            path.display(),
            path.display()
        );
    }

    if failed > 0 {
        bail!(
            "{failed} of {} cluster{} could not be read; see above",
            plans.len(),
            if plans.len() == 1 { "" } else { "s" }
        );
    }
    if args.detailed_exitcode && plans.iter().any(|p| p.needs_attention()) {
        return Ok(Outcome::Found);
    }
    Ok(Outcome::Clean)
}
