//! `pgdr plan PATH`: read live state and print the changes that would make it
//! match the plan file(s). Reads only; never writes to a live system.

use super::{load_all, plan_all, style, Exit};
use crate::cli::{Color, Format, PlanArgs};
use crate::plan::saved::SavedPlan;
use crate::providers::aws::AwsClients;
use crate::render;
use anyhow::Context;

pub async fn run(args: &PlanArgs, color: Color) -> anyhow::Result<Exit> {
    let desired = load_all(&args.path)?;
    let aws = AwsClients::default();
    let plans = plan_all(&desired, &aws).await;

    let text = match args.format {
        Format::Human => render::human::render_plan(&plans, style(color)),
        Format::Json => render::json::render_plan(&plans),
        Format::Markdown => render::markdown::render_plan(&plans),
    };
    print!("{text}");

    let failed = plans.iter().filter(|p| p.error.is_some()).count();
    if let Some(out) = args.out.as_ref().filter(|_| failed > 0) {
        eprintln!("warning: not saving the plan to {}: a plan that could not read every cluster is not fit to apply", out.display());
    } else if let Some(out) = &args.out {
        // Absolute paths, so the saved plan can be applied from any directory.
        let mut clusters = plans.clone();
        for c in &mut clusters {
            if let Ok(path) = std::fs::canonicalize(&c.file) {
                c.file = path.display().to_string();
            }
        }
        let saved = SavedPlan::new(clusters);
        let json = serde_json::to_string_pretty(&saved).expect("saved plan serialises");
        std::fs::write(out, json).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!(
            "Saved the plan to {}; apply it with: pgdr apply {}",
            out.display(),
            out.display()
        );
    }

    if failed > 0 {
        eprintln!(
            "error: {failed} of {} cluster{} could not be read; see above",
            plans.len(),
            if plans.len() == 1 { "" } else { "s" }
        );
        return Ok(Exit::Failed);
    }
    if args.detailed_exitcode && plans.iter().any(|p| p.needs_attention()) {
        return Ok(Exit::Found);
    }
    Ok(Exit::Clean)
}
