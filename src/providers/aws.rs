//! AWS clients: one per service and region, created once per run and shared by
//! every cluster of a fleet.
//!
//! Credentials and endpoints come from the standard AWS chain (AWS_PROFILE,
//! AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), never from the plan file.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Lazily built values keyed by region, each built at most once.
struct PerRegion<T>(Mutex<HashMap<String, Arc<OnceCell<T>>>>);

impl<T: Clone> PerRegion<T> {
    fn new() -> Self {
        PerRegion(Mutex::new(HashMap::new()))
    }

    async fn get<F: Future<Output = T>>(&self, region: &str, make: impl FnOnce() -> F) -> T {
        let cell = self
            .0
            .lock()
            .expect("client map lock")
            .entry(region.to_string())
            .or_default()
            .clone();
        cell.get_or_init(make).await.clone()
    }
}

pub struct AwsClients {
    config: PerRegion<aws_config::SdkConfig>,
    s3: PerRegion<aws_sdk_s3::Client>,
    ec2: PerRegion<aws_sdk_ec2::Client>,
    rds: PerRegion<aws_sdk_rds::Client>,
    route53: PerRegion<aws_sdk_route53::Client>,
}

impl Default for AwsClients {
    fn default() -> Self {
        AwsClients {
            config: PerRegion::new(),
            s3: PerRegion::new(),
            ec2: PerRegion::new(),
            rds: PerRegion::new(),
            route53: PerRegion::new(),
        }
    }
}

/// S3 emulators and most S3-compatible stores only route path-style requests.
fn custom_endpoint() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
}

/// Route53 is a global service, served from us-east-1.
const ROUTE53_REGION: &str = "us-east-1";

impl AwsClients {
    async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        self.config
            .get(region, || {
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(region.to_string()))
                    .load()
            })
            .await
    }

    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = self.sdk_config(region).await;
        self.s3
            .get(region, || async move {
                let s3 = aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(custom_endpoint())
                    .build();
                aws_sdk_s3::Client::from_conf(s3)
            })
            .await
    }

    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let config = self.sdk_config(region).await;
        self.ec2
            .get(region, || async move { aws_sdk_ec2::Client::new(&config) })
            .await
    }

    pub async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        let config = self.sdk_config(region).await;
        self.rds
            .get(region, || async move { aws_sdk_rds::Client::new(&config) })
            .await
    }

    pub async fn route53(&self) -> aws_sdk_route53::Client {
        let config = self.sdk_config(ROUTE53_REGION).await;
        self.route53
            .get(ROUTE53_REGION, || async move {
                aws_sdk_route53::Client::new(&config)
            })
            .await
    }
}
