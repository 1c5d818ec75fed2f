//! Reads the live state a plan file names, all parts of a cluster concurrently.
//!
//! If any part cannot be read, the whole cluster fails: planning (and so
//! applying) against half a picture could undo what the unread half holds.

use crate::providers::aws::AwsClients;
use crate::providers::postgres::{self, PgLive};
use crate::providers::s3::{self, S3Live};
use crate::providers::ProviderError;
use crate::spec::{sha256_hex, Desired};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Live {
    pub primary: Option<PgLive>,
    pub archive: Option<S3Live>,
}

impl Live {
    /// Digest of the state the planner compares (not of counters that move on
    /// their own), so a saved plan can tell whether live state moved since.
    pub fn digest(&self) -> String {
        sha256_hex(&serde_json::to_vec(self).expect("live state serialises"))
    }
}

/// The GUC names to read from a server: every setting the plan names.
fn setting_names(desired: &Desired) -> Vec<String> {
    desired.plan.settings.keys().cloned().collect()
}

pub async fn observe(desired: &Desired, aws: &AwsClients) -> Result<Live, ProviderError> {
    let plan = &desired.plan;
    let names = setting_names(desired);
    let primary = async {
        match &plan.primary.postgres {
            Some(info) => postgres::observe("primary", info, &names).await.map(Some),
            None => Ok(None),
        }
    };
    let archive = async {
        match (&plan.archive, &plan.aws) {
            (Some(archive), Some(aws_section)) => {
                let client = aws.s3(aws_section.region.as_str()).await;
                s3::observe(&client, archive.bucket.as_str(), desired.cluster())
                    .await
                    .map(Some)
            }
            _ => Ok(None),
        }
    };
    let (primary, archive) = tokio::join!(primary, archive);
    Ok(Live {
        primary: primary?,
        archive: archive?,
    })
}
