//! A deterministic simulator of `stateless-ws` fan-out under AWS's quotas.
//!
//! It runs the library's real code — [`Broadcaster`](stateless_ws::broadcast::Broadcaster),
//! [`FanoutPlanner`](stateless_ws::queue::FanoutPlanner) and
//! [`FanoutWorker`](stateless_ws::queue::FanoutWorker), the
//! [`InMemoryStore`](stateless_ws::store::InMemoryStore) and
//! [`InMemoryQueue`](stateless_ws::queue::InMemoryQueue) — on Tokio's paused clock, with AWS
//! modelled at the seams:
//!
//! | module | models | seam |
//! |---|---|---|
//! | [`sender`] | API Gateway's management API: account throttle, latency, 410s, CPU per post | `ConnectionSender` |
//! | [`store`] | DynamoDB: 1 MB pages, RCU/WCU per partition, latency | `ConnectionStore` |
//! | [`lambda`] | Lambda's SQS event source mapping: concurrency, cold starts, batches | drives `FanoutWorker` |
//! | [`core`] | one vCPU per Lambda instance, in virtual time | charged by the sender |
//! | [`bucket`] | token buckets (the throttle; partition capacity) | — |
//! | [`histogram`] | delivery latency quantiles | — |
//! | [`scenario`] | (b) one broadcast to a room of N members, in-line vs queued | — |
//! | [`plan`], [`plan_report`] | the capacity plan (analytic) | — |
//! | [`cost`] | AWS's dated prices; the cost of every scenario's usage (monthly, hourly) | — |
//! | [`storm`] | (c) the reconnect storm: new-connection quota, `$connect` Lambdas, presence, resume | `ConnectionSender`, `ConnectionStore`, `MessageLog` |
//! | [`centrifugo`] | (a) Centrifugo's workload for a simulated minute; (d) across regions | — |
//! | [`regions`] | one sender routing each target by its management endpoint to its region's API | `ConnectionSender` |
//!
//! Every random draw comes from a seeded `fastrand::Rng` per model, and the crate's own jitter
//! from `fastrand::seed`: the same seed gives the same figures.
//!
//! ```
//! use stateless_ws_sim::scenario::{BroadcastScenario, Mode};
//!
//! let mut scenario = BroadcastScenario::default();
//! scenario.members = 2_000;
//! let run = scenario.run(Mode::InLine)?;
//! assert_eq!(run.delivered + run.gone, 2_000);
//! # Ok::<(), stateless_ws::Error>(())
//! ```

pub mod bucket;
pub mod centrifugo;
pub mod clock;
pub mod core;
pub mod cost;
pub mod histogram;
pub mod lambda;
pub mod plan;
pub mod plan_report;
pub mod regions;
pub mod scenario;
pub mod sender;
pub mod store;
pub mod storm;
mod storm_attempts;
mod storm_handlers;
pub mod storm_report;
pub mod storm_seams;
pub mod table;
