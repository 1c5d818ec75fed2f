//! AWS clients: one per service and region, created once per run and shared by
//! every cluster of a fleet, with adaptive retries and, for Route53, a
//! client-side rate limit at AWS's documented request rate.
//!
//! Credentials and endpoints come from the standard AWS chain (AWS_PROFILE,
//! AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), never from the plan file. Every
//! client logs each request with its operation and duration (`-v`).

use crate::settings::AwsEnv;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
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

/// Logs every AWS request: service, operation, region, duration and outcome.
#[derive(Debug)]
struct RequestLog;

#[derive(Debug, Clone)]
struct Started(std::time::Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "pgdr::RequestLog"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(Started(std::time::Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ms = cfg
            .load::<Started>()
            .map_or(0, |s| s.0.elapsed().as_millis() as u64);
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("?", "?"), |m| (m.service(), m.name()));
        let region = cfg
            .load::<aws_config::Region>()
            .map_or("-".to_string(), |r| r.to_string());
        let ok = context.output_or_error().is_some_and(|r| r.is_ok());
        tracing::info!(target: "pgdr::aws", service, operation, region, ms, ok, "request");
        Ok(())
    }
}

pub struct AwsClients {
    env: AwsEnv,
    config: PerRegion<aws_config::SdkConfig>,
    s3: PerRegion<aws_sdk_s3::Client>,
    ec2: PerRegion<aws_sdk_ec2::Client>,
    rds: PerRegion<aws_sdk_rds::Client>,
    route53: PerRegion<aws_sdk_route53::Client>,
    route53_limit: Arc<RateLimit>,
}

impl AwsClients {
    pub fn new(env: AwsEnv) -> Self {
        AwsClients {
            env,
            config: PerRegion::new(),
            s3: PerRegion::new(),
            ec2: PerRegion::new(),
            rds: PerRegion::new(),
            route53: PerRegion::new(),
            route53_limit: Arc::new(RateLimit::per_second(ROUTE53_REQUESTS_PER_SECOND)),
        }
    }
}

/// Route53's documented limit: 5 requests per second per AWS account, for
/// every API call together. Past it AWS answers `Throttling`, so pgdr keeps
/// under it itself instead of learning it from errors.
pub const ROUTE53_REQUESTS_PER_SECOND: u32 = 5;

/// Spaces requests evenly: at most `n` per second, each waiting for its turn.
/// Shared by every task of a run (a fleet's clusters take turns).
pub struct RateLimit {
    interval: std::time::Duration,
    next: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl RateLimit {
    pub fn per_second(n: u32) -> Self {
        RateLimit {
            interval: std::time::Duration::from_secs(1) / n.max(1),
            next: tokio::sync::Mutex::new(None),
        }
    }

    /// Waits until this caller may send one request.
    pub async fn turn(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let (at, after) = next_turn(*next, tokio::time::Instant::now(), self.interval);
            *next = Some(after);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// When a request asked for `now` may go, and when the one after it may:
/// the free slot, or now if the limiter has been idle.
fn next_turn<T>(free: Option<T>, now: T, interval: std::time::Duration) -> (T, T)
where
    T: Ord + Copy + std::ops::Add<std::time::Duration, Output = T>,
{
    let at = free.map_or(now, |free| free.max(now));
    (at, at + interval)
}

/// The Route53 client and the run's Route53 rate limit: call [`Route53::turn`]
/// before every request (each page of a listing is a request).
#[derive(Clone)]
pub struct Route53 {
    client: aws_sdk_route53::Client,
    limit: Arc<RateLimit>,
}

impl Route53 {
    /// The client, once it is this caller's turn to send a request.
    pub async fn turn(&self) -> &aws_sdk_route53::Client {
        self.limit.turn().await;
        &self.client
    }
}

/// How many times one AWS request is tried in all, unless `AWS_MAX_ATTEMPTS`
/// says otherwise.
pub const MAX_ATTEMPTS: u32 = 5;

/// Throttling (`SlowDown`, `Throttling`, `RequestLimitExceeded`), 5xx answers
/// and dropped connections are retried with exponential backoff and jitter
/// (1 s doubling, at most 10 s between tries): at most [`MAX_ATTEMPTS`] tries,
/// then the error is reported. Adaptive mode also slows this client down once
/// AWS throttles it, so a fleet backs off together; that can stretch the wait
/// (tests/faults.rs measured 39 s for a request throttled at every try). `AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS` (or the profile's
/// `retry_mode` / `max_attempts`) replace this, as with every AWS tool.
fn retry_config() -> Option<aws_config::retry::RetryConfig> {
    let user_set = ["AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    (!user_set).then(|| {
        aws_config::retry::RetryConfig::adaptive()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(std::time::Duration::from_secs(1))
            .with_max_backoff(std::time::Duration::from_secs(10))
    })
}

/// Route53 is a global service, served from us-east-1.
const ROUTE53_REGION: &str = "us-east-1";

impl AwsClients {
    async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        self.config
            .get(region, || {
                let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(region.to_string()));
                match retry_config() {
                    Some(retry) => loader.retry_config(retry),
                    None => loader,
                }
                .load()
            })
            .await
    }

    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = self.sdk_config(region).await;
        // S3 emulators and most S3-compatible stores only route path-style requests.
        let path_style = self.env.custom_endpoint;
        self.s3
            .get(region, || async move {
                let s3 = aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(path_style)
                    .interceptor(RequestLog)
                    .build();
                aws_sdk_s3::Client::from_conf(s3)
            })
            .await
    }

    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let config = self.sdk_config(region).await;
        self.ec2
            .get(region, || async move {
                aws_sdk_ec2::Client::from_conf(
                    aws_sdk_ec2::config::Builder::from(&config)
                        .interceptor(RequestLog)
                        .build(),
                )
            })
            .await
    }

    pub async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        let config = self.sdk_config(region).await;
        self.rds
            .get(region, || async move {
                aws_sdk_rds::Client::from_conf(
                    aws_sdk_rds::config::Builder::from(&config)
                        .interceptor(RequestLog)
                        .build(),
                )
            })
            .await
    }

    pub async fn route53(&self) -> Route53 {
        let config = self.sdk_config(ROUTE53_REGION).await;
        let client = self
            .route53
            .get(ROUTE53_REGION, || async move {
                aws_sdk_route53::Client::from_conf(
                    aws_sdk_route53::config::Builder::from(&config)
                        .interceptor(RequestLog)
                        .build(),
                )
            })
            .await;
        Route53 {
            client,
            limit: self.route53_limit.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_turn;
    use std::time::{Duration, Instant};

    #[test]
    fn turns_are_spaced_by_the_interval_and_an_idle_limiter_does_not_wait() {
        let interval = Duration::from_millis(200);
        let t0 = Instant::now();
        // Idle: go now.
        let (at, free) = next_turn(None, t0, interval);
        assert_eq!((at, free), (t0, t0 + interval));
        // Two more at the same moment wait one and two intervals.
        let (at, free) = next_turn(Some(free), t0, interval);
        assert_eq!(at, t0 + interval);
        let (at, free) = next_turn(Some(free), t0, interval);
        assert_eq!(at, t0 + 2 * interval);
        // Long after, no debt is carried: the request goes at once.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(next_turn(Some(free), later, interval).0, later);
        // 5 per second: 5 requests asked for at once span 800 ms, the 6th goes at 1 s.
        let mut free = None;
        let mut starts = Vec::new();
        for _ in 0..6 {
            let (at, after) = next_turn(free, t0, Duration::from_secs(1) / 5);
            starts.push(at - t0);
            free = Some(after);
        }
        assert_eq!(starts[4], Duration::from_millis(800));
        assert_eq!(starts[5], Duration::from_secs(1));
    }
}
