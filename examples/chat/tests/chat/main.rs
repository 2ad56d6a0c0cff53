//! The chat example's tests, in one binary: its routes (in memory and on DynamoDB), the chat
//! behind the library's local gateway with real WebSocket clients, and the SAM template.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The library's own test helpers (MiniStack endpoint, local SDK config), shared rather than copied.
#[path = "../../../../tests/common/mod.rs"]
mod common;

mod chaos;
mod gateway;
mod history;
mod policy;
mod presence;
mod queued;
mod real_functions;
mod routes;
mod template;
mod template_iam;
mod template_queue;
