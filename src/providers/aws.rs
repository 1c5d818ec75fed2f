//! AWS clients: one per service and region, created once per run and shared by
//! every cluster of a fleet.
//!
//! Credentials and endpoints come from the standard AWS chain (AWS_PROFILE,
//! AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), never from the plan file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

#[derive(Default)]
pub struct AwsClients {
    s3: Mutex<HashMap<String, Arc<OnceCell<aws_sdk_s3::Client>>>>,
}

/// S3 emulators and most S3-compatible stores only route path-style requests.
fn custom_endpoint() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
}

async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await
}

impl AwsClients {
    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let cell = self
            .s3
            .lock()
            .expect("client map lock")
            .entry(region.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            let config = sdk_config(region).await;
            let s3 = aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(custom_endpoint())
                .build();
            aws_sdk_s3::Client::from_conf(s3)
        })
        .await
        .clone()
    }
}
