//! [`InMemoryLog`]: the message log in this process's memory.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;

use super::{
    Envelope, History, LogConfig, LogMessage, MessageLog, Position, ReadLimits, new_epoch,
    validate_config,
};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::ids::RoomId;

/// Rooms below this many are never swept for expired histories (see [`InMemoryLog`]).
const MIN_SWEEP_ROOMS: usize = 1024;

/// A [`MessageLog`] in memory: for tests, the local gateway (`local_chat`) and single-process
/// applications whose history may die with the process.
///
/// It keeps the whole [contract](super#contract) and runs the same conformance scenarios as the
/// DynamoDB log. Each room holds its epoch and its kept messages, in order; an append takes the
/// room's next offset under one short lock (never held across an `.await`), so concurrent
/// appenders each get their own offset. A message's `at` never goes below the room's previous
/// one, even if the clock is set back, so messages expire in offset order.
///
/// **Memory.** A room holds at most [`LogConfig::max_messages`] envelopes of at most
/// [`LogConfig::max_message_bytes`] each; older and expired ones are dropped on the next append.
/// A room whose every message expired is forgotten — when it is read, and in a sweep of all rooms
/// each time their number doubles (from 1,024) — so memory follows the rooms with messages
/// younger than [`LogConfig::ttl`]. The number of rooms is not capped: a cap would have to drop
/// history the contract promises to keep; bound memory with `max_messages` and `ttl` instead.
///
/// ```
/// use stateless_ws::history::{InMemoryLog, LogMessage, MessageLog, Position, ReadLimits};
/// use stateless_ws::RoomId;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let log = InMemoryLog::new();
/// let room = RoomId::new("general")?;
/// let first = log.append(&room, LogMessage::new(serde_json::json!({"text": "hi"}))).await?;
/// assert_eq!(first.offset, 1);
/// log.append(&room, LogMessage::new(serde_json::json!({"text": "still there?"}))).await?;
///
/// // A client that has shown offset 1 resumes after a reconnect:
/// let page = log.read(&room, &Position::new(first.epoch, 1), ReadLimits::default()).await?;
/// assert!(page.recovered);
/// assert_eq!(page.messages[0].offset, 2);
/// # Ok::<(), stateless_ws::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct InMemoryLog {
    inner: Arc<Mutex<Rooms>>,
    config: LogConfig,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct Rooms {
    rooms: HashMap<RoomId, Room>,
    /// Sweep expired rooms when there are this many (0: not yet set).
    next_sweep: usize,
}

#[derive(Debug)]
struct Room {
    epoch: String,
    /// The last offset given in this epoch (the newest message's, while any is kept).
    last: u64,
    messages: VecDeque<Stored>,
}

#[derive(Debug)]
struct Stored {
    envelope: Envelope,
    /// Its JSON length, for the read's byte limit.
    bytes: usize,
    /// Unix milliseconds from which it is no longer kept.
    expires_ms: u64,
}

impl Room {
    /// Drops messages past retention (rule 4); `true` when none is left.
    fn prune(&mut self, now_ms: u64, max_messages: u64) -> bool {
        while self
            .messages
            .front()
            .is_some_and(|m| m.expires_ms <= now_ms)
        {
            self.messages.pop_front();
        }
        while self.messages.len() as u64 > max_messages {
            self.messages.pop_front();
        }
        self.messages.is_empty()
    }
}

impl InMemoryLog {
    /// An empty log with [`LogConfig::default`] on the system clock.
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            config: LogConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// An empty log keeping what `config` says.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` is out of range ([`validate_config`]).
    pub fn with_config(config: LogConfig) -> Result<Self> {
        validate_config(&config)?;
        Ok(Self {
            config,
            ..Self::new()
        })
    }

    /// Uses `clock` for `at` and retention.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn now_ms(&self) -> u64 {
        let millis = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        u64::try_from(millis).unwrap_or(u64::MAX)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rooms> {
        // Every critical section leaves the rooms consistent, so a panic elsewhere does not
        // make them unusable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for InMemoryLog {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLog")
            .field("rooms", &self.lock().rooms.len())
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish()
    }
}

impl fmt::Display for InMemoryLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryLog")
    }
}

#[async_trait]
impl MessageLog for InMemoryLog {
    async fn append(&self, room: &RoomId, message: LogMessage) -> Result<Envelope> {
        let id = message.id_or_new()?;
        let now_ms = self.now_ms();
        let (max_messages, limit) = (self.config.max_messages, self.config.max_message_bytes);
        let mut rooms = self.lock();

        if rooms.rooms.len() >= rooms.next_sweep.max(MIN_SWEEP_ROOMS) {
            rooms.rooms.retain(|_, r| !r.prune(now_ms, max_messages));
            rooms.next_sweep = (rooms.rooms.len() * 2).max(MIN_SWEEP_ROOMS);
        }

        let kept = rooms
            .rooms
            .get_mut(room)
            .and_then(|r| (!r.prune(now_ms, max_messages)).then_some(r));
        // Rule 2: a room with nothing kept starts a new epoch at 1. Nothing is stored until the
        // size check has passed (rule 5).
        let (epoch, offset, at) = match &kept {
            Some(r) => {
                let newest = r.messages.back().map_or(0, |m| m.envelope.at);
                (r.epoch.clone(), r.last + 1, now_ms.max(newest))
            }
            None => (new_epoch(), 1, now_ms),
        };
        let envelope = Envelope::new(room.clone(), epoch, offset, id, at, message.data);
        let bytes = envelope.to_json()?.len();
        if bytes > limit {
            return Err(Error::PayloadTooLarge { size: bytes, limit });
        }

        let stored = Stored {
            envelope: envelope.clone(),
            bytes,
            expires_ms: at.saturating_add(self.ttl_ms()),
        };
        let r = match kept {
            Some(r) => r,
            None => rooms.rooms.entry(room.clone()).or_insert(Room {
                epoch: envelope.epoch.clone(),
                last: 0,
                messages: VecDeque::new(),
            }),
        };
        if offset == 1 {
            r.epoch.clone_from(&envelope.epoch);
            r.messages.clear();
        }
        r.last = offset;
        r.messages.push_back(stored);
        r.prune(now_ms, max_messages);
        Ok(envelope)
    }

    async fn read(&self, room: &RoomId, from: &Position, limits: ReadLimits) -> Result<History> {
        let now_ms = self.now_ms();
        let mut rooms = self.lock();
        let Some(r) = rooms.rooms.get_mut(room) else {
            return Ok(empty(room, from));
        };
        if r.prune(now_ms, self.config.max_messages) {
            rooms.rooms.remove(room);
            return Ok(empty(room, from));
        }

        let oldest = r.messages.front().map_or(1, |m| m.envelope.offset);
        // A client with no epoch that has shown nothing is at the start of any history.
        let same_epoch = match &from.epoch {
            Some(epoch) => *epoch == r.epoch,
            None => from.offset == 0,
        };
        let recovered = same_epoch && from.offset <= r.last && from.offset + 1 >= oldest;
        let first = if recovered { from.offset + 1 } else { oldest };

        // Offsets are contiguous among the kept messages (rule 1), so `first` is an index.
        let skip = usize::try_from(first - oldest).unwrap_or(usize::MAX);
        let mut page = Vec::new();
        let mut bytes = 0usize;
        for m in r.messages.iter().skip(skip) {
            let full = page.len() >= limits.max_messages.max(1)
                || (!page.is_empty() && bytes.saturating_add(m.bytes) > limits.max_bytes);
            if full {
                break;
            }
            bytes = bytes.saturating_add(m.bytes);
            page.push(m.envelope.clone());
        }
        let more = page.last().is_some_and(|m| m.offset < r.last);
        Ok(History::new(
            room.clone(),
            Some(r.epoch.clone()),
            r.last,
            recovered,
            more,
            page,
        ))
    }

    async fn head(&self, room: &RoomId) -> Result<Option<Position>> {
        let now_ms = self.now_ms();
        let mut rooms = self.lock();
        let Some(r) = rooms.rooms.get_mut(room) else {
            return Ok(None);
        };
        if r.prune(now_ms, self.config.max_messages) {
            rooms.rooms.remove(room);
            return Ok(None);
        }
        Ok(Some(Position::new(r.epoch.clone(), r.last)))
    }

    fn config(&self) -> &LogConfig {
        &self.config
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// The page of a room with no message kept.
fn empty(room: &RoomId, from: &Position) -> History {
    let recovered = from.epoch.is_none() && from.offset == 0;
    History::new(room.clone(), None, 0, recovered, false, Vec::new())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, SystemTime};

    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;

    fn room(name: &str) -> RoomId {
        RoomId::new(name).unwrap()
    }

    fn small(ttl_secs: u64, max_messages: u64) -> LogConfig {
        LogConfig {
            ttl: Duration::from_secs(ttl_secs),
            max_messages,
            ..LogConfig::default()
        }
    }

    #[tokio::test]
    async fn conformance_default_and_small() {
        crate::conformance::history::run_all(&InMemoryLog::new()).await;
        let mut config = small(3_600, 5);
        config.max_message_bytes = 4_096;
        crate::conformance::history::run_all(&InMemoryLog::with_config(config).unwrap()).await;
    }

    #[test]
    fn config_is_validated() {
        assert!(matches!(
            InMemoryLog::with_config(small(3_600, 0)),
            Err(Error::Config { .. })
        ));
        assert_eq!(InMemoryLog::new().to_string(), "InMemoryLog");
    }

    #[tokio::test]
    async fn expired_messages_are_not_read_and_the_epoch_changes() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let log = InMemoryLog::with_config(small(60, 100))
            .unwrap()
            .with_clock(clock.clone());
        let r = room("ttl");
        let first = log.append(&r, LogMessage::new(json!(1))).await.unwrap();
        clock.advance(Duration::from_secs(30));
        log.append(&r, LogMessage::new(json!(2))).await.unwrap();
        clock.advance(Duration::from_secs(30));

        let page = log
            .read(
                &r,
                &Position::new(first.epoch.clone(), 0),
                ReadLimits::default(),
            )
            .await
            .unwrap();
        assert!(!page.recovered, "message 1 expired at 60 s");
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].offset, 2);

        clock.advance(Duration::from_secs(30));
        assert_eq!(log.head(&r).await.unwrap(), None);
        let again = log.append(&r, LogMessage::new(json!(3))).await.unwrap();
        assert_eq!(again.offset, 1);
        assert_ne!(again.epoch, first.epoch);
    }

    #[tokio::test]
    async fn at_never_goes_back_and_expired_rooms_are_swept() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let log = InMemoryLog::with_config(small(60, 10))
            .unwrap()
            .with_clock(clock.clone());
        let a = log
            .append(&room("a"), LogMessage::new(json!(1)))
            .await
            .unwrap();
        clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(900));
        let b = log
            .append(&room("a"), LogMessage::new(json!(2)))
            .await
            .unwrap();
        assert_eq!(b.at, a.at);

        // With room `a`, 1,024 rooms: the next append sweeps.
        for i in 0..MIN_SWEEP_ROOMS - 1 {
            log.append(&room(&format!("r{i}")), LogMessage::new(json!(i)))
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(3_600));
        log.append(&room("new"), LogMessage::new(json!(0)))
            .await
            .unwrap();
        assert_eq!(log.lock().rooms.len(), 1, "expired rooms are forgotten");
    }
}
