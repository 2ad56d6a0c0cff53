//! [`RoutingSender`]: one sender over several regions' management APIs, routing each
//! [`Target`] by its [`endpoint`](Target::endpoint) — what the crate's real sender does with
//! the per-record `managementEndpoint` when one table serves several APIs or regions.
//!
//! Each region is a [`SimApi`] of its own (its own account throttle); a target without an
//! endpoint goes to the sender's home region (the default endpoint of the function's own API).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use stateless_ws::broadcast::{ConnectionInfo, ConnectionSender, Payload, Target};
use stateless_ws::{Error, Result};

use crate::core::SimCore;
use crate::sender::{SimApi, SimSender};

/// The management endpoint of simulated region `index` (`https://r{index}.example/prod`).
pub fn endpoint(index: usize) -> String {
    format!("https://r{index}.example/prod")
}

/// Routes each post to the [`SimSender`] of the region named by the target's endpoint, all
/// on one core (one Lambda instance).
#[derive(Debug, Clone)]
pub struct RoutingSender {
    routes: Vec<(Arc<str>, SimSender)>,
    home: usize,
}

impl RoutingSender {
    /// A sender on `core` over `apis` (region `i` at [`endpoint(i)`](endpoint)); targets
    /// without an endpoint go to region `home`.
    pub fn on_core(apis: &[Arc<SimApi>], home: usize, core: &SimCore) -> Self {
        let routes = apis
            .iter()
            .enumerate()
            .map(|(i, api)| {
                (
                    Arc::from(endpoint(i)),
                    SimSender::on_core(Arc::clone(api), core.clone()),
                )
            })
            .collect();
        Self { routes, home }
    }

    /// The region index a target is routed to, or `None` for an endpoint no region has.
    pub fn region_of(&self, target: &Target) -> Option<usize> {
        match &target.endpoint {
            None => Some(self.home).filter(|&h| h < self.routes.len()),
            Some(e) => self.routes.iter().position(|(ep, _)| ep == e),
        }
    }

    fn route(&self, target: &Target) -> Result<&SimSender> {
        self.region_of(target)
            .and_then(|i| self.routes.get(i))
            .map(|(_, s)| s)
            .ok_or_else(|| Error::Forbidden {
                endpoint: target.endpoint.as_deref().unwrap_or("(none)").to_owned(),
                source: "no simulated region has this endpoint".into(),
            })
    }
}

impl fmt::Display for RoutingSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoutingSender({} regions)", self.routes.len())
    }
}

#[async_trait]
impl ConnectionSender for RoutingSender {
    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        self.route(target)?.post(target, payload).await
    }

    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        self.route(target)?.get(target).await
    }

    async fn delete(&self, target: &Target) -> Result<()> {
        self.route(target)?.delete(target).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::ApiParams;
    use stateless_ws::ConnectionId;

    #[tokio::test(start_paused = true)]
    async fn each_target_reaches_its_region() {
        let params = ApiParams {
            gone_fraction: 0.0,
            ..ApiParams::default()
        };
        let apis = [SimApi::new(params.clone()), SimApi::new(params)];
        let sender = RoutingSender::on_core(&apis, 1, &SimCore::new());
        let payload = Payload::text("x").unwrap();
        let id = |s: &str| ConnectionId::new(s).unwrap();
        sender
            .post(&Target::new(id("a=")).with_endpoint(endpoint(0)), &payload)
            .await
            .unwrap();
        sender.post(&Target::new(id("b=")), &payload).await.unwrap();
        sender
            .post(&Target::new(id("c=")).with_endpoint(endpoint(1)), &payload)
            .await
            .unwrap();
        assert_eq!(
            (apis[0].stats().delivered, apis[1].stats().delivered),
            (1, 2)
        );
        let unknown = Target::new(id("d=")).with_endpoint("https://elsewhere/prod");
        assert!(matches!(
            sender.post(&unknown, &payload).await,
            Err(Error::Forbidden { .. })
        ));
    }
}
