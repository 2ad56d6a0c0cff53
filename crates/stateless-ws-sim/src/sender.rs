//! [`SimSender`]: API Gateway's management API (`POST @connections/{id}`) as a model.
//!
//! What is modelled, and where the numbers come from (FACTS.md unless said otherwise):
//!
//! - **The account throttle**: one [`TokenBucket`] per region ([`SimApi`]), shared by every
//!   sender of that region — 10,000 requests/s, burst 5,000 by default. A post that finds the
//!   bucket empty is answered 429 ([`Error::Throttled`]); the broadcaster's own retries and
//!   adaptive concurrency deal with it, as they do against AWS.
//! - **Latency**: each answer takes a log-normal time drawn from the [`ApiParams::latency_p50`]
//!   and [`ApiParams::latency_p99`]: `exp(ln p50 + σ z)` with `σ = ln(p99 / p50) / 2.326` and `z`
//!   standard normal (Box–Muller from the model's seeded `fastrand::Rng`). The defaults (12 ms,
//!   40 ms) are an assumption within the "~10–30 ms per post" the crate's docs give for API
//!   Gateway; they are parameters.
//! - **Gone connections**: a fraction of connection ids answer 410 ([`Error::Gone`]), chosen by
//!   a hash of the id and the seed, so the same connection is gone on every retry and in every
//!   worker.
//! - **CPU**: each post costs [`ApiParams::post_cpu`] on the caller's [`SimCore`] before it
//!   leaves (default 0.12 ms: a signed post through `aws-sdk-apigatewaymanagement`, 8,100–9,050
//!   per second on one core of this machine). One sender per core: give each simulated Lambda
//!   instance its own [`SimSender::on_core`].
//!
//! Every delivery's latency from the message's publish instant ([`SimApi::set_published`]) goes
//! into a [`Histogram`].
//!
//! Not modelled: payload size limits (413), 403s, per-connection 429s (a client not reading),
//! network failures with unknown outcome, and the HTTP connection pool.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use stateless_ws::broadcast::{ConnectionInfo, ConnectionSender, Payload, Target};
use stateless_ws::{ConnectionId, Error, Result};
use tokio::time::Instant;

use crate::bucket::TokenBucket;
use crate::core::SimCore;
use crate::histogram::Histogram;

/// Parameters of the management API model. Defaults are AWS's default quotas and this
/// machine's measured cost of a signed post.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiParams {
    /// The account's request rate per second in the region (default 10,000).
    pub rate: u64,
    /// The bucket's burst (default 5,000).
    pub burst: u64,
    /// Median answer time (default 12 ms).
    pub latency_p50: Duration,
    /// 99th percentile answer time (default 40 ms; used as at least `latency_p50`).
    pub latency_p99: Duration,
    /// The share of connections that are gone, 0.0–1.0 (default 0.01).
    pub gone_fraction: f64,
    /// CPU per post on the caller's core (default 120 µs).
    pub post_cpu: Duration,
    /// Seeds the latency draws and the choice of gone connections (default 1).
    pub seed: u64,
}

impl Default for ApiParams {
    fn default() -> Self {
        Self {
            rate: 10_000,
            burst: 5_000,
            latency_p50: Duration::from_millis(12),
            latency_p99: Duration::from_millis(40),
            gone_fraction: 0.01,
            post_cpu: Duration::from_micros(120),
            seed: 1,
        }
    }
}

/// What the API saw, for the scenario's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiStats {
    /// Posts received (every attempt, retries included).
    pub posts: u64,
    /// Posts delivered.
    pub delivered: u64,
    /// Posts answered 410.
    pub gone: u64,
    /// Posts answered 429 (over the account throttle).
    pub throttled: u64,
    /// Connections delivered to at least once (`delivered` less duplicates).
    pub distinct_delivered: u64,
    /// Connections answered 410 at least once.
    pub distinct_gone: u64,
    /// Delivery latency from the publish instant.
    pub latency: Histogram,
}

#[derive(Debug)]
struct ApiState {
    bucket: TokenBucket,
    rng: fastrand::Rng,
    stats: ApiStats,
    published: Instant,
    /// Hashes of the connections delivered to and found gone, to count each once.
    seen_delivered: HashSet<u64>,
    seen_gone: HashSet<u64>,
}

/// One region's management API: the account throttle, the latency model and the statistics,
/// shared by every [`SimSender`] of the region.
#[derive(Debug)]
pub struct SimApi {
    params: ApiParams,
    sigma: f64,
    gone_below: u64,
    state: Mutex<ApiState>,
}

/// z of the 99th percentile of the standard normal.
const Z99: f64 = 2.326_347_874;

impl SimApi {
    /// A region's API with `params`; the bucket starts full now and the publish instant is
    /// now.
    pub fn new(params: ApiParams) -> Arc<Self> {
        let p50 = params.latency_p50.as_secs_f64().max(1e-9);
        let p99 = params.latency_p99.as_secs_f64().max(p50);
        let sigma = (p99 / p50).ln() / Z99;
        let fraction = params.gone_fraction.clamp(0.0, 1.0);
        let gone_below = if fraction >= 1.0 {
            u64::MAX
        } else {
            (fraction * u64::MAX as f64) as u64
        };
        Arc::new(Self {
            sigma,
            gone_below,
            state: Mutex::new(ApiState {
                bucket: TokenBucket::new(params.rate, params.burst),
                rng: fastrand::Rng::with_seed(params.seed ^ 0x5eed_a919),
                stats: ApiStats::default(),
                published: Instant::now(),
                seen_delivered: HashSet::new(),
                seen_gone: HashSet::new(),
            }),
            params,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &ApiParams {
        &self.params
    }

    fn lock(&self) -> MutexGuard<'_, ApiState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the instant the message being delivered was published; latencies are measured
    /// from it.
    pub fn set_published(&self, at: Instant) {
        self.lock().published = at;
    }

    /// Takes one request from the region's account bucket for a request that is not a post —
    /// a client's message or `$connect` reaching the WebSocket API, which the account throttle
    /// counts too (FACTS.md) — and says whether it was admitted (`false`: answered 429). Not
    /// counted in [`ApiStats`]; the caller counts its own.
    pub fn admit(&self) -> bool {
        self.lock().bucket.try_take(1)
    }

    /// A copy of the statistics so far.
    pub fn stats(&self) -> ApiStats {
        self.lock().stats.clone()
    }

    /// Whether the model answers 410 for `connection`: stable for a connection and a seed.
    pub fn is_gone(&self, connection: &ConnectionId) -> bool {
        self.params.gone_fraction > 0.0
            && hash(self.params.seed, connection.as_str()) <= self.gone_below
    }

    fn draw_latency(rng: &mut fastrand::Rng, p50: Duration, sigma: f64) -> Duration {
        // Box–Muller; 1 - f64() is in (0, 1], so the log is finite.
        let u1 = 1.0 - rng.f64();
        let u2 = rng.f64();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        p50.mul_f64((sigma * z).exp())
    }
}

/// FNV-1a over the seed and the id, then SplitMix64's finaliser to spread the bits.
fn hash(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(id.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A [`ConnectionSender`] on one core, posting to a region's [`SimApi`].
#[derive(Debug, Clone)]
pub struct SimSender {
    api: Arc<SimApi>,
    core: SimCore,
}

impl SimSender {
    /// A sender on `core` (the caller's: one per simulated Lambda instance) posting to `api`.
    pub fn on_core(api: Arc<SimApi>, core: SimCore) -> Self {
        Self { api, core }
    }

    /// The region's API.
    pub fn api(&self) -> &Arc<SimApi> {
        &self.api
    }

    /// The core this sender charges.
    pub fn core(&self) -> &SimCore {
        &self.core
    }
}

impl fmt::Display for SimSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimSender")
    }
}

#[async_trait]
impl ConnectionSender for SimSender {
    async fn post(&self, target: &Target, _payload: &Payload) -> Result<()> {
        self.core.run(self.api.params.post_cpu).await;
        let (admitted, latency) = {
            let mut state = self.api.lock();
            state.stats.posts += 1;
            let admitted = state.bucket.try_take(1);
            let latency =
                SimApi::draw_latency(&mut state.rng, self.api.params.latency_p50, self.api.sigma);
            (admitted, latency)
        };
        tokio::time::sleep(latency).await;
        let mut state = self.api.lock();
        if !admitted {
            state.stats.throttled += 1;
            return Err(Error::Throttled {
                backend: "SimSender".into(),
                source: "429 LimitExceededException (account throttle)".into(),
            });
        }
        if self.api.is_gone(&target.connection_id) {
            state.stats.gone += 1;
            if state
                .seen_gone
                .insert(hash(0, target.connection_id.as_str()))
            {
                state.stats.distinct_gone += 1;
            }
            return Err(Error::Gone {
                connection_id: target.connection_id.clone(),
            });
        }
        state.stats.delivered += 1;
        if state
            .seen_delivered
            .insert(hash(0, target.connection_id.as_str()))
        {
            state.stats.distinct_delivered += 1;
        }
        let since = Instant::now().saturating_duration_since(state.published);
        state.stats.latency.record(since);
        Ok(())
    }

    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        if self.api.is_gone(&target.connection_id) {
            return Err(Error::Gone {
                connection_id: target.connection_id.clone(),
            });
        }
        Ok(ConnectionInfo::default())
    }

    async fn delete(&self, _target: &Target) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_account_bucket_is_shared_and_answers_429() {
        let params = ApiParams {
            rate: 100,
            burst: 10,
            gone_fraction: 0.0,
            post_cpu: Duration::ZERO,
            ..ApiParams::default()
        };
        let api = SimApi::new(params);
        let a = SimSender::on_core(api.clone(), SimCore::new());
        let b = SimSender::on_core(api.clone(), SimCore::new());
        let payload = Payload::text("x").unwrap();
        let mut ok = 0;
        for i in 0..20 {
            let t = Target::new(ConnectionId::new(format!("c{i}=")).unwrap());
            let s = if i % 2 == 0 { &a } else { &b };
            // Posted at the same instant: latencies do not refill the bucket between them.
            let fut = s.post(&t, &payload);
            if tokio::time::timeout(Duration::from_secs(5), fut)
                .await
                .unwrap()
                .is_ok()
            {
                ok += 1;
            }
        }
        // Sequential posts take ~12 ms each, refilling ~1 token each; at least the burst passed.
        let stats = api.stats();
        assert_eq!(stats.posts, 20);
        assert_eq!(stats.delivered, ok);
        assert_eq!(stats.delivered + stats.throttled, 20);
        assert!(stats.delivered >= 10);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_quantiles_follow_the_parameters() {
        let api = SimApi::new(ApiParams::default());
        let mut h = Histogram::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..100_000 {
            h.record(SimApi::draw_latency(
                &mut rng,
                api.params.latency_p50,
                api.sigma,
            ));
        }
        let p50 = h.quantile(0.5).as_secs_f64() * 1e3;
        let p99 = h.quantile(0.99).as_secs_f64() * 1e3;
        assert!((p50 - 12.0).abs() < 0.5, "p50 {p50}");
        assert!((p99 - 40.0).abs() < 2.0, "p99 {p99}");
    }
}
