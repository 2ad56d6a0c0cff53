//! [`RecordingSender`]: a [`ConnectionSender`] that keeps what it is sent, for tests and local use.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{ConnectionInfo, ConnectionSender, Payload, Target};
use crate::error::{Error, Result};
use crate::ids::ConnectionId;

/// A failure a [`RecordingSender`] can be told to produce for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectedFailure {
    /// 429 `LimitExceededException` ([`Error::Throttled`]).
    Throttled,
    /// A 5xx answer ([`Error::Delivery`], retryable) with this status.
    ServerError(u16),
    /// 403 `ForbiddenException` ([`Error::Forbidden`]).
    Forbidden,
    /// 413 `PayloadTooLargeException` ([`Error::PayloadTooLarge`]).
    PayloadTooLarge,
}

#[derive(Default)]
struct State {
    outbox: HashMap<ConnectionId, Vec<Payload>>,
    gone: HashSet<ConnectionId>,
    /// Failures to produce, per connection: (failure, remaining count; `None` = forever).
    failures: HashMap<ConnectionId, (InjectedFailure, Option<u32>)>,
    attempts: HashMap<ConnectionId, u32>,
    endpoints: HashMap<ConnectionId, Option<Arc<str>>>,
    latency: Duration,
}

/// An in-memory [`ConnectionSender`]: an outbox per connection, plus switches that make chosen
/// connections gone, throttled or failing. Clones share state.
///
/// Every connection not marked gone accepts posts; a connection marked gone answers 410 to posts,
/// gets and deletes, and a delete marks it gone.
///
/// ```
/// use stateless_ws::broadcast::{ConnectionSender, InjectedFailure, Payload, RecordingSender, Target};
/// use stateless_ws::{ConnectionId, Error};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sender = RecordingSender::new();
/// let (a, b) = (ConnectionId::new("a")?, ConnectionId::new("b")?);
/// sender.set_gone(&b);
/// sender.post(&Target::new(a.clone()), &Payload::text("hi")?).await?;
/// assert!(matches!(sender.post(&Target::new(b), &Payload::text("hi")?).await, Err(Error::Gone { .. })));
/// assert_eq!(sender.messages(&a), ["hi"]);
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct RecordingSender {
    state: Arc<Mutex<State>>,
}

impl fmt::Display for RecordingSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordingSender")
    }
}

impl RecordingSender {
    /// An empty recorder: every connection accepts posts.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `connection` answer 410 Gone from now on.
    pub fn set_gone(&self, connection: &ConnectionId) {
        self.lock().gone.insert(connection.clone());
    }

    /// Makes `connection` fail with `failure` for its next `times` posts (`None`: forever).
    pub fn fail(&self, connection: &ConnectionId, failure: InjectedFailure, times: Option<u32>) {
        self.lock()
            .failures
            .insert(connection.clone(), (failure, times));
    }

    /// Makes every post wait `latency` first (simulates the network).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The payloads delivered to `connection`, oldest first.
    pub fn outbox(&self, connection: &ConnectionId) -> Vec<Payload> {
        self.lock()
            .outbox
            .get(connection)
            .cloned()
            .unwrap_or_default()
    }

    /// The texts delivered to `connection`, oldest first.
    pub fn messages(&self, connection: &ConnectionId) -> Vec<String> {
        self.outbox(connection)
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
    }

    /// Posts attempted to `connection`, successful or not.
    pub fn attempts(&self, connection: &ConnectionId) -> u32 {
        self.lock().attempts.get(connection).copied().unwrap_or(0)
    }

    /// Posts attempted to all connections.
    pub fn total_attempts(&self) -> u64 {
        self.lock().attempts.values().map(|n| u64::from(*n)).sum()
    }

    /// Payloads delivered to all connections.
    pub fn total_delivered(&self) -> usize {
        self.lock().outbox.values().map(Vec::len).sum()
    }

    /// The endpoint the last post to `connection` was addressed to (`Some(None)`: the default).
    pub fn last_endpoint(&self, connection: &ConnectionId) -> Option<Option<Arc<str>>> {
        self.lock().endpoints.get(connection).cloned()
    }

    /// Forgets every delivered payload and attempt count (switches stay).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.outbox.clear();
        state.attempts.clear();
        state.endpoints.clear();
    }

    fn injected(state: &mut State, target: &Target) -> Option<Error> {
        let id = &target.connection_id;
        if state.gone.contains(id) {
            return Some(Error::Gone {
                connection_id: id.clone(),
            });
        }
        let (failure, remaining) = state.failures.get_mut(id)?;
        let failure = *failure;
        match remaining {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        Some(match failure {
            InjectedFailure::Throttled => Error::Throttled {
                backend: "RecordingSender".into(),
                source: "injected 429 LimitExceededException".into(),
            },
            InjectedFailure::ServerError(status) => Error::Delivery {
                connection_id: id.clone(),
                status: Some(status),
                retryable: true,
                source: format!("injected {status}").into(),
            },
            InjectedFailure::Forbidden => Error::Forbidden {
                endpoint: target.endpoint.as_deref().unwrap_or("(default)").to_owned(),
                source: "injected 403 ForbiddenException".into(),
            },
            InjectedFailure::PayloadTooLarge => Error::PayloadTooLarge {
                size: 0,
                limit: Payload::MAX_SIZE,
            },
        })
    }
}

impl fmt::Debug for RecordingSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("RecordingSender")
            .field("connections", &state.outbox.len())
            .field("gone", &state.gone.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ConnectionSender for RecordingSender {
    async fn post(&self, target: &Target, payload: &Payload) -> Result<()> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut state = self.lock();
        *state
            .attempts
            .entry(target.connection_id.clone())
            .or_default() += 1;
        state
            .endpoints
            .insert(target.connection_id.clone(), target.endpoint.clone());
        if let Some(err) = Self::injected(&mut state, target) {
            return Err(err);
        }
        state
            .outbox
            .entry(target.connection_id.clone())
            .or_default()
            .push(payload.clone());
        Ok(())
    }

    async fn get(&self, target: &Target) -> Result<ConnectionInfo> {
        let state = self.lock();
        if state.gone.contains(&target.connection_id) {
            return Err(Error::Gone {
                connection_id: target.connection_id.clone(),
            });
        }
        Ok(ConnectionInfo {
            connected_at: None,
            last_active_at: Some(SystemTime::now()),
            source_ip: None,
            user_agent: None,
        })
    }

    async fn delete(&self, target: &Target) -> Result<()> {
        let mut state = self.lock();
        if !state.gone.insert(target.connection_id.clone()) {
            return Err(Error::Gone {
                connection_id: target.connection_id.clone(),
            });
        }
        Ok(())
    }
}
