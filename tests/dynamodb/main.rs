//! `DynamoDbStore`, in one test binary: the conformance suite and the table layout shared with
//! the Python handlers on MiniStack (`ministack`; skipped with a printed reason when
//! `DYNAMODB_ENDPOINT` is unset), and faults only a mock can produce — `UnprocessedItems`,
//! throttling, missing tables — at the SDK boundary (`faults`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod history;
mod ministack;
