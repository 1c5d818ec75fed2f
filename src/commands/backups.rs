//! `pgdr backups PLAN_FILE`: the complete base backups in the archive, newest
//! last, as a table or JSON (`format_version` 1).

use super::{archive_of, load_cluster, out, Outcome};
use crate::cli::{BackupsArgs, ListFormat};
use crate::observe::archive as catalog;
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::settings::Settings;

pub async fn run(args: &BackupsArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_cluster(&args.path, "backups")?;
    let (url, region, _) = archive_of(&desired)?;
    let store = Store::s3(Systems::new(settings).aws.s3(&region).await, &url.bucket);
    let catalog::Catalogue {
        backups,
        incomplete,
        ..
    } = catalog::read(&store, &url).await?;
    let text = match args.format {
        ListFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "format_version": 1,
                "backups": backups,
                "incomplete": incomplete,
            }))
            .expect("serialises")
        ),
        ListFormat::Human => {
            crate::render::archive::backups(&url.to_string(), &backups, &incomplete)
        }
    };
    out(&text)?;
    Ok(Outcome::Clean)
}
