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
    route53_zones: Arc<ZoneIds>,
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
            route53_zones: Arc::new(ZoneIds::default()),
        }
    }
}

/// Route53's documented limit: 5 requests per second per AWS account, for
/// every API call together. Past it AWS answers `Throttling`, so pgdr keeps
/// under it itself instead of learning it from errors.
pub const ROUTE53_REQUESTS_PER_SECOND: u32 = 5;

/// At most `n` requests in any one second, each waiting for its turn when the
/// last `n` went out less than a second ago: a burst of `n` goes at once (two
/// requests of a small run never wait), a long run settles at `n` a second.
/// Shared by every task of a run (a fleet's clusters take turns).
pub struct RateLimit {
    n: usize,
    sent: tokio::sync::Mutex<std::collections::VecDeque<tokio::time::Instant>>,
}

impl RateLimit {
    pub fn per_second(n: u32) -> Self {
        RateLimit {
            n: n.max(1) as usize,
            sent: tokio::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Waits until this caller may send one request.
    pub async fn turn(&self) {
        let at = {
            let mut sent = self.sent.lock().await;
            let at = next_turn(&sent, self.n, tokio::time::Instant::now(), WINDOW);
            sent.push_back(at);
            if sent.len() > self.n {
                sent.pop_front();
            }
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The span a limit of n requests counts over.
const WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// When a request asked for at `now` may go, given the times of the requests
/// before it (oldest first, at most `n` kept): now, unless `n` of them fall
/// within the window before now, then once the oldest of those leaves it.
fn next_turn<T>(
    sent: &std::collections::VecDeque<T>,
    n: usize,
    now: T,
    window: std::time::Duration,
) -> T
where
    T: Ord + Copy + std::ops::Add<std::time::Duration, Output = T>,
{
    if sent.len() < n {
        return sent.back().map_or(now, |&last| last.max(now));
    }
    let nth_back = sent[sent.len() - n];
    (nth_back + window)
        .max(now)
        .max(*sent.back().expect("n >= 1"))
}

/// The Route53 client and the run's Route53 rate limit: call [`Route53::turn`]
/// before every request (each page of a listing is a request).
#[derive(Clone)]
pub struct Route53 {
    client: aws_sdk_route53::Client,
    limit: Arc<RateLimit>,
    zones: Arc<ZoneIds>,
}

/// Hosted zones found by name in this run: (zone id, record set count). A
/// zone's id never changes, so a run finds each zone once; a role change then
/// moves the endpoint without looking the zone up again, which keeps it
/// inside Route53's 5 requests a second (the sixth would wait a second).
#[derive(Default)]
pub struct ZoneIds(std::sync::Mutex<std::collections::HashMap<String, (String, usize)>>);

impl Route53 {
    /// The client, once it is this caller's turn to send a request.
    pub async fn turn(&self) -> &aws_sdk_route53::Client {
        self.limit.turn().await;
        &self.client
    }

    /// The zone `name` (normalised) found earlier in this run, if it was.
    pub fn known_zone(&self, name: &str) -> Option<(String, usize)> {
        self.zones.0.lock().unwrap().get(name).cloned()
    }

    pub fn remember_zone(&self, name: &str, id: &str, count: usize) {
        self.zones
            .0
            .lock()
            .unwrap()
            .insert(name.to_string(), (id.to_string(), count));
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
/// (tests/it/faults.rs measured 39 s for a request throttled at every try). `AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS` (or the profile's
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
            zones: self.route53_zones.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_turn;
    use std::collections::VecDeque;
    use std::time::{Duration, Instant};

    #[test]
    fn at_most_n_requests_go_in_any_second_and_a_small_burst_does_not_wait() {
        let second = Duration::from_secs(1);
        let t0 = Instant::now();
        let ms = |m: u64| Duration::from_millis(m);
        // Seven requests asked for at once with a limit of 5 per second: the
        // first five go at once, the 6th and 7th a second after the 1st and 2nd.
        let mut sent = VecDeque::new();
        let mut starts = Vec::new();
        for _ in 0..7 {
            let at = next_turn(&sent, 5, t0, second);
            sent.push_back(at);
            if sent.len() > 5 {
                sent.pop_front();
            }
            starts.push(at - t0);
        }
        assert_eq!(
            starts,
            [ms(0), ms(0), ms(0), ms(0), ms(0), ms(1000), ms(1000)]
        );
        // In any window of one second, at most five.
        for (i, start) in starts.iter().enumerate() {
            let within = starts[i..].iter().filter(|s| **s < *start + second).count();
            assert!(within <= 5, "{starts:?}");
        }
        // Requests spread out over time never wait.
        let mut sent = VecDeque::new();
        for k in 0..10 {
            let now = t0 + ms(300 * k);
            let at = next_turn(&sent, 5, now, second);
            assert_eq!(at, now);
            sent.push_back(at);
            if sent.len() > 5 {
                sent.pop_front();
            }
        }
        // Two requests of a small run (find a zone, read its records): no wait.
        let sent = VecDeque::from([t0]);
        assert_eq!(next_turn(&sent, 5, t0 + ms(5), second), t0 + ms(5));
    }
}
