//! The simulation of [`CentrifugoScenario`]: the arrival streams, the three Lambda functions
//! and the accounting.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use stateless_ws::broadcast::{BroadcastConfig, Broadcaster, Payload};
use stateless_ws::store::ConnectionStore;
use stateless_ws::{ConnectionId, Membership, Result, RoomId, UserId};
use tokio::time::Instant;

use super::report::{bottleneck, hourly_cost};
use super::tap::{TapSender, TapState};
use super::{CentrifugoResult, CentrifugoScenario, RegionResult};
use crate::bucket::TokenBucket;
use crate::clock::unix_now;
use crate::core::SimCore;
use crate::histogram::Histogram;
use crate::regions::{RoutingSender, endpoint};
use crate::sender::{ApiParams, SimApi};
use crate::store::SimStore;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A message-route instance: its core and its broadcaster, whose sender knows the publish
/// instant of the invocation it runs.
struct MsgInstance {
    core: SimCore,
    broadcaster: Broadcaster,
    tap: Arc<TapState>,
}

#[derive(Default)]
struct LambdaRegion {
    running: usize,
    idle_msg: Vec<MsgInstance>,
    idle_connect: Vec<SimCore>,
    idle_disconnect: Vec<SimCore>,
}

impl LambdaRegion {
    fn idle(&mut self, function: Function) -> &mut Vec<SimCore> {
        match function {
            Function::Connect => &mut self.idle_connect,
            Function::Disconnect => &mut self.idle_disconnect,
        }
    }
}

struct Region {
    api: Arc<SimApi>,
    connects: Mutex<TokenBucket>,
    lambda: Mutex<LambdaRegion>,
}

/// Counters and histograms of a run, per region.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) regions: Vec<RegionResult>,
    pub(super) latency: Vec<Histogram>,
    pub(super) all_latency: Histogram,
    /// Connections disconnected (a post to one answers 410).
    pub(super) dead: HashSet<ConnectionId>,
    /// Each user's connection generation, `None` while offline.
    online: Vec<Option<u32>>,
    in_flight: u64,
    /// When a DynamoDB partition first throttled.
    dynamodb_first: Option<Duration>,
}

pub(super) struct Ctx {
    pub(super) s: CentrifugoScenario,
    pub(super) start: Instant,
    regions: Vec<Region>,
    apis: Vec<Arc<SimApi>>,
    store: SimStore,
    shared: Arc<dyn ConnectionStore>,
    payload: Payload,
    pub(super) counters: Mutex<Counters>,
}

/// The store functions (each has its own instances; the message route's are [`MsgInstance`]s).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Function {
    Connect,
    Disconnect,
}

fn connection_id(user: usize, generation: u32) -> Result<ConnectionId> {
    ConnectionId::new(format!("U{user:07x}G{generation}="))
}

impl Ctx {
    fn elapsed(&self) -> Duration {
        Instant::now() - self.start
    }

    fn region_of_user(&self, user: usize) -> usize {
        user % self.s.regions.max(1)
    }

    fn group_of(&self, user: usize) -> usize {
        user / self.s.group_size.max(1)
    }

    fn records(&self, user: usize, generation: u32, at: u64) -> Result<[Membership; 2]> {
        let id = connection_id(user, generation)?;
        let ep = endpoint(self.region_of_user(user));
        let user_id = UserId::new(format!("user-{user}"))?;
        let personal = RoomId::new(format!("user-{user}"))?;
        let group = RoomId::new(format!("g{}", self.group_of(user)))?;
        let make = |room: RoomId| {
            Membership::new(id.clone(), room)
                .with_user(user_id.clone())
                .with_endpoint(ep.clone())
                .with_connected_at(at)
        };
        Ok([make(personal), make(group)])
    }

    /// Takes a concurrency slot in `region`, or counts a throttle.
    fn try_start(&self, region: usize) -> bool {
        let started = {
            let mut l = lock(&self.regions[region].lambda);
            if l.running < self.s.lambda_limit {
                l.running += 1;
                Some(l.running)
            } else {
                None
            }
        };
        let mut c = lock(&self.counters);
        let r = &mut c.regions[region];
        match started {
            Some(running) => {
                r.invocations += 1;
                r.peak_concurrency = r.peak_concurrency.max(running);
                c.in_flight += 1;
                true
            }
            None => {
                r.lambda_throttles += 1;
                r.saturation.lambda.get_or_insert(self.elapsed());
                false
            }
        }
    }

    fn finish(&self, region: usize, began: Instant) {
        lock(&self.regions[region].lambda).running -= 1;
        let mut c = lock(&self.counters);
        c.regions[region].lambda_time += began.elapsed();
        c.in_flight -= 1;
    }

    /// An idle instance's core of `function` in `region`, or a new one (a cold start, counted).
    async fn other_instance(&self, region: usize, function: Function) -> SimCore {
        let idle = lock(&self.regions[region].lambda).idle(function).pop();
        match idle {
            Some(core) => core,
            None => {
                lock(&self.counters).regions[region].cold_starts += 1;
                tokio::time::sleep(self.s.cold_start).await;
                SimCore::new()
            }
        }
    }

    fn note_dynamodb(&self) {
        let stats = self.store.stats();
        if stats.read_throttles + stats.write_throttles > 0 {
            let at = self.elapsed();
            lock(&self.counters).dynamodb_first.get_or_insert(at);
        }
    }

    fn admit(&self, region: usize) -> bool {
        let ok = self.regions[region].api.admit();
        if !ok {
            lock(&self.counters).regions[region]
                .saturation
                .api
                .get_or_insert(self.elapsed());
        }
        ok
    }
}

/// One publish: the client's message reaches `region`'s API, then the message Lambda.
fn publish(ctx: &Arc<Ctx>, region: usize, room: RoomId, nominal: u64) {
    {
        let mut c = lock(&ctx.counters);
        c.regions[region].offered += 1;
        c.regions[region].offered_messages += nominal;
    }
    if !ctx.admit(region) {
        lock(&ctx.counters).regions[region].inbound_429 += 1;
        return;
    }
    if !ctx.try_start(region) {
        lock(&ctx.counters).regions[region].lambda_throttled += 1;
        return;
    }
    let published = Instant::now();
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let idle = lock(&ctx.regions[region].lambda).idle_msg.pop();
        let instance = match idle {
            Some(i) => i,
            None => {
                lock(&ctx.counters).regions[region].cold_starts += 1;
                tokio::time::sleep(ctx.s.cold_start).await;
                new_msg_instance(&ctx, region)
            }
        };
        instance.core.run(ctx.s.invocation_cpu).await;
        *lock(&instance.tap.published) = published;
        let result = instance
            .broadcaster
            .broadcast(&room, &ctx.payload, None)
            .await;
        {
            let mut c = lock(&ctx.counters);
            let r = &mut c.regions[region];
            r.invoked += 1;
            match result {
                Ok(report) => {
                    r.targets += report.targets() as u64;
                    r.delivered += report.delivered_count as u64;
                    r.gone += report.gone.len() as u64;
                    r.failed += report.failed.len() as u64;
                    r.not_attempted += report.not_attempted.len() as u64;
                }
                Err(_) => r.broadcast_errors += 1,
            }
        }
        lock(&ctx.regions[region].lambda).idle_msg.push(instance);
        ctx.finish(region, published);
    });
}

fn new_msg_instance(ctx: &Arc<Ctx>, region: usize) -> MsgInstance {
    let core = SimCore::new();
    let tap = Arc::new(TapState {
        published: Mutex::new(Instant::now()),
    });
    let sender = TapSender {
        inner: RoutingSender::on_core(&ctx.apis, region, &core),
        tap: Arc::clone(&tap),
        ctx: Arc::downgrade(ctx),
    };
    let mut config = BroadcastConfig::default();
    config.concurrency = ctx.s.concurrency;
    config.list_delivered = false;
    let broadcaster =
        Broadcaster::new(Arc::clone(&ctx.shared), Arc::new(sender)).with_config(config);
    MsgInstance {
        core,
        broadcaster,
        tap,
    }
}

/// A reconnect of `user`: `$disconnect` of its connection if online, then a new connection.
fn reconnect(ctx: &Arc<Ctx>, user: usize) {
    let region = ctx.region_of_user(user);
    let current = lock(&ctx.counters).online[user];
    if let Some(generation) = current {
        let Ok(id) = connection_id(user, generation) else {
            return;
        };
        {
            let mut c = lock(&ctx.counters);
            c.online[user] = None;
            c.dead.insert(id.clone());
        }
        if ctx.try_start(region) {
            let ctx2 = Arc::clone(ctx);
            tokio::spawn(async move {
                let began = Instant::now();
                let core = ctx2.other_instance(region, Function::Disconnect).await;
                core.run(ctx2.s.invocation_cpu).await;
                let done = ctx2
                    .store
                    .remove_connections(std::slice::from_ref(&id))
                    .await;
                lock(&ctx2.counters).regions[region].disconnects += u64::from(done.is_ok());
                lock(&ctx2.regions[region].lambda)
                    .idle(Function::Disconnect)
                    .push(core);
                ctx2.finish(region, began);
            });
        } else {
            lock(&ctx.counters).regions[region].disconnects_throttled += 1;
        }
    }
    connect(ctx, user, current.map_or(1, |g| g + 1));
}

fn connect(ctx: &Arc<Ctx>, user: usize, generation: u32) {
    let region = ctx.region_of_user(user);
    if !lock(&ctx.regions[region].connects).try_take(1) {
        let mut c = lock(&ctx.counters);
        let r = &mut c.regions[region];
        r.connects_refused += 1;
        r.saturation.connects.get_or_insert(ctx.elapsed());
        return;
    }
    if !ctx.admit(region) {
        lock(&ctx.counters).regions[region].connects_429 += 1;
        return;
    }
    if !ctx.try_start(region) {
        lock(&ctx.counters).regions[region].connects_throttled += 1;
        return;
    }
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let began = Instant::now();
        let core = ctx.other_instance(region, Function::Connect).await;
        core.run(ctx.s.invocation_cpu).await;
        let at = unix_now(&ctx.store);
        let mut ok = true;
        if let Ok(records) = ctx.records(user, generation, at) {
            for record in &records {
                ok &= ctx.store.join(record).await.is_ok();
            }
        } else {
            ok = false;
        }
        {
            let mut c = lock(&ctx.counters);
            if ok {
                c.online[user] = Some(generation);
                c.regions[region].connects += 1;
            }
        }
        lock(&ctx.regions[region].lambda)
            .idle(Function::Connect)
            .push(core);
        ctx.finish(region, began);
    });
}

/// An exponential inter-arrival time at `rate` per second (`None` for a rate of 0).
fn next_gap(rng: &mut fastrand::Rng, rate: f64) -> Option<Duration> {
    (rate > 0.0).then(|| Duration::from_secs_f64(-(1.0 - rng.f64()).ln() / rate))
}

impl CentrifugoScenario {
    /// Runs the scenario on a fresh current-thread runtime with a paused clock.
    ///
    /// # Errors
    ///
    /// The runtime cannot start, or a generated id is invalid.
    pub fn run(&self) -> Result<CentrifugoResult> {
        let (mut result, wall) = crate::clock::run_paused(self.seed, self.run_async())?;
        result.wall = wall;
        Ok(result)
    }

    async fn run_async(&self) -> Result<CentrifugoResult> {
        let s = self.clone();
        let n_regions = s.regions.max(1);
        let store = SimStore::new(s.store.clone());
        let apis: Vec<Arc<SimApi>> = (0..n_regions)
            .map(|i| {
                SimApi::new(ApiParams {
                    seed: s.seed.wrapping_add(i as u64),
                    ..s.api.clone()
                })
            })
            .collect();
        let payload = Payload::text("x".repeat(s.payload_bytes.max(1)))?;
        let mut counters = Counters {
            regions: (0..n_regions)
                .map(|i| RegionResult {
                    region: i,
                    ..RegionResult::default()
                })
                .collect(),
            latency: vec![Histogram::new(); n_regions],
            online: vec![Some(0); s.connections],
            ..Counters::default()
        };
        counters.dead.reserve(s.churn_per_minute as usize);
        let regions = apis
            .iter()
            .map(|api| Region {
                api: Arc::clone(api),
                connects: Mutex::new(TokenBucket::new(
                    s.new_connections_per_sec,
                    s.new_connections_per_sec,
                )),
                lambda: Mutex::default(),
            })
            .collect();
        let ctx = Arc::new(Ctx {
            shared: Arc::new(store.clone()),
            store,
            regions,
            apis,
            payload,
            counters: Mutex::new(counters),
            start: Instant::now(),
            s,
        });
        let an_hour_ago = unix_now(&ctx.store).saturating_sub(3_600);
        for user in 0..ctx.s.connections {
            for record in ctx.records(user, 0, an_hour_ago)? {
                ctx.store.inner().join(&record).await?;
            }
        }
        self.drive(&ctx).await?;
        Ok(self.collect(&ctx))
    }

    /// The two Poisson streams until `duration`, then waits for the invocations in flight.
    async fn drive(&self, ctx: &Arc<Ctx>) -> Result<()> {
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0xce47_1f09);
        let users = self.connections.max(1);
        let group_size = self.group_size.max(1);
        let groups = users.div_ceil(group_size);
        let end = ctx.start + self.duration;
        let churn_rate = self.churn_per_minute / 60.0;
        let mut next_publish = next_gap(&mut rng, self.publish_rate).map(|g| ctx.start + g);
        let mut next_churn = next_gap(&mut rng, churn_rate).map(|g| ctx.start + g);
        let mut dynamodb_check = ctx.start;
        loop {
            let at = match (next_publish, next_churn) {
                (Some(p), Some(c)) => p.min(c),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => break,
            };
            if at >= end {
                break;
            }
            tokio::time::sleep_until(at).await;
            if next_publish == Some(at) {
                next_publish = next_gap(&mut rng, self.publish_rate).map(|g| at + g);
                if rng.f64() < self.personal_share {
                    let user = rng.usize(..users);
                    let room = RoomId::new(format!("user-{user}"))?;
                    publish(ctx, ctx.region_of_user(user), room, 1);
                } else {
                    let group = rng.usize(..groups);
                    let first = group * group_size;
                    let members = group_size.min(users - first);
                    let publisher = first + rng.usize(..members);
                    let room = RoomId::new(format!("g{group}"))?;
                    publish(ctx, ctx.region_of_user(publisher), room, members as u64);
                }
            } else {
                next_churn = next_gap(&mut rng, churn_rate).map(|g| at + g);
                reconnect(ctx, rng.usize(..users));
            }
            // Tokio's timers tick by the millisecond: every arrival of a tick wakes at its
            // start, as do the posts and retries due then. Yielding after each arrival lets
            // those run between arrivals; without it the ~50 arrivals of a tick took its 10
            // tokens first and no post ever got through (see the README).
            tokio::task::yield_now().await;
            if at >= dynamodb_check {
                dynamodb_check = at + Duration::from_millis(10);
                ctx.note_dynamodb();
            }
        }
        tokio::time::sleep_until(end).await;
        while lock(&ctx.counters).in_flight > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ctx.note_dynamodb();
        }
        Ok(())
    }

    fn collect(&self, ctx: &Arc<Ctx>) -> CentrifugoResult {
        let simulated = ctx.elapsed();
        let stats = ctx.store.stats();
        let c = lock(&ctx.counters);
        let mut regions = c.regions.clone();
        let mut total = RegionResult {
            region: usize::MAX,
            ..RegionResult::default()
        };
        for (i, r) in regions.iter_mut().enumerate() {
            r.p50 = c.latency[i].quantile(0.5);
            r.p99 = c.latency[i].quantile(0.99);
            r.online_end = c
                .online
                .iter()
                .enumerate()
                .filter(|(u, g)| g.is_some() && ctx.region_of_user(*u) == i)
                .count() as u64;
            total.add(r);
        }
        total.p50 = c.all_latency.quantile(0.5);
        total.p99 = c.all_latency.quantile(0.99);
        let dynamodb_saturated = c.dynamodb_first;
        let mut result = CentrifugoResult {
            scenario: self.clone(),
            regions,
            total,
            rcu: stats.rcu,
            wcu: stats.wcu,
            read_throttles: stats.read_throttles,
            write_throttles: stats.write_throttles,
            dynamodb_saturated,
            bottleneck: super::Bottleneck::None,
            cost: crate::cost::Cost::default(),
            simulated,
            wall: Duration::ZERO,
        };
        result.bottleneck = bottleneck(&result);
        result.cost = hourly_cost(&result);
        result
    }
}
