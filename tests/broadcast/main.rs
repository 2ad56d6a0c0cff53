//! The broadcaster, in one test binary: over the in-memory store and sender (`memory`), over the
//! real SDK client with faults injected at the SDK boundary (`mocks`), over HTTP against a
//! loopback management API that checks signatures and encoding (`http`), what happens to
//! posts whose answer comes late or never (`delivery`), one fault suite run against both senders,
//! the SDK's and the lean `SigV4Sender` (`faults`), the lean sender's credentials and its
//! delivery through the local gateway (`lean`), and both senders on MiniStack's WebSocket API
//! (`ministack_ws`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

#[path = "../presence/logs.rs"]
mod logs;

mod delivery;
mod faults;
mod http;
mod lean;
mod memory;
mod ministack_ws;
mod mocks;
mod streaming;

use std::sync::Arc;

use stateless_ws::broadcast::{ApiGatewaySender, ConnectionSender, SigV4Sender};

/// Both management API senders, named, on `endpoint` with the local SDK configuration: for the
/// tests that must see the same outcome from each.
pub(crate) async fn both_senders(endpoint: &str) -> Vec<(&'static str, Arc<dyn ConnectionSender>)> {
    let config = common::local_sdk_config().await;
    vec![
        (
            "ApiGatewaySender",
            Arc::new(
                ApiGatewaySender::new(&config)
                    .with_default_endpoint(endpoint)
                    .unwrap(),
            ),
        ),
        (
            "SigV4Sender",
            Arc::new(
                SigV4Sender::new(&config)
                    .unwrap()
                    .with_default_endpoint(endpoint)
                    .unwrap(),
            ),
        ),
    ]
}
