//! [`TapSender`]: the message route's sender as the scenario sees it.

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use stateless_ws::broadcast::{ConnectionInfo, ConnectionSender, Payload, Target};
use stateless_ws::{Error, Result};
use tokio::time::Instant;

use super::run::{Ctx, lock};
use crate::regions::RoutingSender;

/// The per-instance state the tap sender reads: which publish is being delivered.
pub(super) struct TapState {
    pub(super) published: Mutex<Instant>,
}

/// A [`ConnectionSender`] around the [`RoutingSender`]: a post to a connection that has
/// disconnected answers 410 (after using its request, as API Gateway's does), and every
/// delivery's latency from its publish is recorded.
pub(super) struct TapSender {
    pub(super) inner: RoutingSender,
    pub(super) tap: std::sync::Arc<TapState>,
    pub(super) ctx: std::sync::Weak<Ctx>,
}

impl fmt::Debug for TapSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapSender")
            .field("inner", &self.inner)
            .finish()
    }
}

impl fmt::Display for TapSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TapSender({})", self.inner)
    }
}

#[async_trait]
impl ConnectionSender for TapSender {
    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        let region = self.inner.region_of(target).unwrap_or(0);
        let result = self.inner.post(target, payload).await;
        let Some(ctx) = self.ctx.upgrade() else {
            return result;
        };
        let now = Instant::now();
        let mut guard = lock(&ctx.counters);
        let c = &mut *guard;
        let Some(r) = c.regions.get_mut(region) else {
            return result;
        };
        r.posts += 1;
        match result {
            Err(Error::Throttled { .. }) => {
                r.post_429 += 1;
                r.saturation.api.get_or_insert(now - ctx.start);
                result
            }
            Ok(()) if c.dead.contains(&target.connection_id) => Err(Error::Gone {
                connection_id: target.connection_id.clone(),
            }),
            Ok(()) => {
                r.received += 1;
                if now <= ctx.start + ctx.s.duration {
                    r.received_in_window += 1;
                }
                let since = now.saturating_duration_since(*lock(&self.tap.published));
                c.all_latency.record(since);
                if let Some(h) = c.latency.get_mut(region) {
                    h.record(since);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        self.inner.get(target).await
    }

    async fn delete(&self, target: &Target) -> Result<()> {
        self.inner.delete(target).await
    }
}
