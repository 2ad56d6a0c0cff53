//! [`DynamoDbLog`]: the message log in a DynamoDB table of its own.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use super::{Envelope, History, LogConfig, LogMessage, MessageLog, Position, ReadLimits};
use crate::clock::{Clock, SystemClock, unix_millis};
use crate::env;
use crate::error::{Error, Result};
use crate::ids::RoomId;
use crate::store::room_key;

type Item = HashMap<String, AttributeValue>;

mod attr;

/// Appends tried before giving up when other appenders keep taking the next offset.
const DEFAULT_MAX_APPEND_ATTEMPTS: u32 = 50;

/// A [`MessageLog`] on a DynamoDB table of its own (the routing table is not touched).
///
/// # Table layout
///
/// One item per message:
///
/// | attribute | type | role |
/// |---|---|---|
/// | `roomId` | S | partition key: `room#<name>`, as the routing table's sort key |
/// | `seq` | N | sort key: the message's place in the room's table, 1, 2, 3, … never reset |
/// | `offset` | N | the envelope's offset in its epoch (1, 2, 3, …) |
/// | `epoch` | S | the envelope's epoch |
/// | `id` | S | the message's id |
/// | `at` | N | Unix milliseconds of the append |
/// | `data` | S | the application's message as JSON |
/// | `ttl` | N | Unix seconds: `at` + [`LogConfig::ttl`]; the table's TTL attribute |
///
/// Why the sort key is `seq` and not the offset: a new epoch starts again at offset 1 (contract
/// rule 2) while the expired items of the old epoch may still be in the table (TTL deletion lags,
/// often by days). Keyed by offset, the new epoch's items would collide with them and the
/// room's newest item could no longer be found with one `Limit=1` query. `seq` keeps growing
/// across epochs, so the newest item is always the last one, and an epoch's items are those with
/// `seq - offset` equal to the epoch's base. While a room never loses its history, `seq` equals
/// `offset`.
///
/// ```text
/// aws dynamodb create-table --table-name ws-messages \
///   --attribute-definitions AttributeName=roomId,AttributeType=S AttributeName=seq,AttributeType=N \
///   --key-schema AttributeName=roomId,KeyType=HASH AttributeName=seq,KeyType=RANGE \
///   --billing-mode PAY_PER_REQUEST
/// aws dynamodb update-time-to-live --table-name ws-messages \
///   --time-to-live-specification Enabled=true,AttributeName=ttl
/// ```
///
/// # IAM
///
/// On `arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE`: `dynamodb:Query` (reads, and the newest
/// item before each append) and `dynamodb:PutItem` (appends). Nothing else.
///
/// # Appends
///
/// There is no counter item. An append reads the room's newest item (`Query`,
/// `ScanIndexForward=false`, `Limit=1`, `ConsistentRead=true`); when there is none, or it is past
/// its retention, it starts a new epoch ([`new_epoch`](super::new_epoch)) at offset 1, else it
/// takes the next offset in the same epoch. It writes with `PutItem` under
/// `attribute_not_exists(seq)`: when another appender took that place first
/// (`ConditionalCheckFailedException`) it reads again and retries, up to 50 attempts
/// ([`DynamoDbLogBuilder::max_append_attempts`]) with a small jittered backoff, then fails with
/// [`Error::Throttled`]. Only successful puts take an offset, so offsets have no holes. Two
/// appenders that both find an empty room both start an epoch; one put wins and the other
/// continues in the winner's epoch. The size check (rule 5) is made before the put; nothing is
/// written for a message too large.
///
/// # Retention
///
/// Reads return an item only while `ttl` is in the future and `at` + [`LogConfig::ttl`] is not
/// past, and only among the newest [`LogConfig::max_messages`] offsets of the epoch (offsets
/// `≤ head − max_messages` are never returned). Items beyond the count stay in the table until
/// their TTL removes them: **storage is bounded by the TTL, not by the count** (a room sending
/// 100 messages/s keeps up to 8.6 million items with the default 24 h). Expired items not yet
/// deleted are skipped by a filter but still read, and billed, by queries that cross them.
///
/// # Reads
///
/// A read first queries the head (the newest item, strongly consistent), then the items after
/// the position up to that head (`ConsistentRead=true`, pages of `max_messages + 1`, following
/// `LastEvaluatedKey` past expired items). `recovered` is `true` only when the page starts right
/// after the position in the head's epoch; [`Position::start`] counts as offset 0 of whatever
/// epoch there is. A room with nothing kept answers no epoch, head 0, and `recovered: true` only
/// for [`Position::start`]. A position beyond the head is not recovered.
///
/// # Cost and throughput
///
/// Per append: one strongly consistent `Query` of one item (1 RCU, one read request unit on
/// demand: strongly consistent reads cost 1 per 4 KB, and an eventually consistent one — 0.5 —
/// could miss the newest append and lose every race) plus one `PutItem` (1 WCU per KB of item:
/// 1 for a small message, up to 129 for a 128 KB one). A lost race costs one more `Query` and a
/// failed conditional put, which DynamoDB bills like a write of the item. Per read: one `Query`
/// for the head (1 RCU) and one or more for the page (1 RCU per 4 KB read, expired items
/// included until TTL deletes them).
///
/// One room is one partition: DynamoDB caps a partition at 1,000 WCU/s, so a room takes at most
/// ~1,000 small appends per second, fewer with larger messages. Appenders to one room also
/// contend for the next offset; measured on MiniStack 1.5.33 on a 2-core machine (not DynamoDB,
/// whose latencies and limits differ), 100 appends per task to one room:
///
/// | appenders | appends | time | appends/s | lost races per append | gave up |
/// |---|---|---|---|---|---|
/// | 1 | 100 | 0.68 s | 147 | 0 | 0 |
/// | 4 | 400 | 6.3 s | 63 | 1.11 | 0 |
/// | 8 | 800 | 29.9 s | 27 | 2.77 | 0 |
/// | 16 | 1,600 | 219 s | 7 | 6.70 | 0 |
///
/// (debug build; `measure_append_contention` in `tests/dynamodb/history.rs`). MiniStack answers
/// one request at a time, so every lost race (a `Query` and a failed put) takes capacity from
/// the winners and the total rate *falls* as appenders are added; with 20 attempts instead of 50,
/// 8 appenders saw 4 of 800 appends give up and 16 saw 67 of 1,600. DynamoDB serves requests in
/// parallel, so there a round costs one request latency (a few ms) rather than the sum of all
/// contenders', but the shape holds: optimistic appends suit rooms with a handful of concurrent
/// publishers; a room with many simultaneous publishers should funnel its appends through one
/// writer (e.g. an SQS FIFO queue with the room as message group) rather than race. Watch
/// [`lost_races`](Self::lost_races).
///
/// # Configuration
///
/// [`from_env`](Self::from_env) and [`from_env_with`](Self::from_env_with) read
/// [`MESSAGES_TABLE`](crate::env::MESSAGES_TABLE) (required),
/// [`MESSAGES_TTL_SECONDS`](crate::env::MESSAGES_TTL_SECONDS) and
/// [`MESSAGES_MAX_PER_ROOM`](crate::env::MESSAGES_MAX_PER_ROOM) (the retention; the defaults of
/// [`LogConfig`] when unset); region, credentials and endpoint come from the AWS SDK's chain.
/// [`ensure_table`](Self::ensure_table) creates the table above (for tests and local use).
#[derive(Clone)]
pub struct DynamoDbLog {
    client: Client,
    table: Arc<str>,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    max_append_attempts: u32,
    lost_races: Arc<AtomicU64>,
}

/// The room's newest item, as the log sees it.
#[derive(Debug, Clone)]
struct Stored {
    seq: u64,
    offset: u64,
    epoch: String,
    id: String,
    at: u64,
    data: serde_json::Value,
    ttl: u64,
}

impl Stored {
    fn base(&self) -> u64 {
        self.seq.saturating_sub(self.offset)
    }

    fn envelope(self, room: &RoomId) -> Envelope {
        Envelope::new(
            room.clone(),
            self.epoch,
            self.offset,
            self.id,
            self.at,
            self.data,
        )
    }
}

impl DynamoDbLog {
    /// A builder; `client` and `table_name` are required.
    pub fn builder() -> DynamoDbLogBuilder {
        DynamoDbLogBuilder::default()
    }

    /// A log on `table` with a client made from `config` and the default [`LogConfig`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the table name is invalid.
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Result<Self> {
        Self::builder()
            .client(Client::new(config))
            .table_name(table)
            .build()
    }

    /// A log configured from the environment ([`MESSAGES_TABLE`](crate::env::MESSAGES_TABLE)),
    /// with a client from `aws_config`'s default chain. Call it once at start-up.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the missing or invalid variable. Never panics.
    pub async fn from_env() -> Result<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_env_with(&config)
    }

    /// As [`from_env`](Self::from_env), with a client made from `config` (the process's shared
    /// `SdkConfig`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the missing or invalid variable. Never panics.
    pub fn from_env_with(config: &aws_config::SdkConfig) -> Result<Self> {
        DynamoDbLogBuilder::from_env_vars()?
            .client(Client::new(config))
            .build()
    }

    /// The same log with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `config` is out of range ([`validate_config`](super::validate_config)).
    pub fn with_config(mut self, config: LogConfig) -> Result<Self> {
        super::validate_config(&config)?;
        self.config = config;
        Ok(self)
    }

    /// The same log with `clock` for `at` and retention.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many conditional puts this log (and its clones) lost to another appender since it
    /// was built: a measure of contention on hot rooms, for metrics.
    pub fn lost_races(&self) -> u64 {
        self.lost_races.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    fn map_err<E>(&self, err: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        crate::store::sdk_error(self.to_string(), err)
    }

    fn corrupt(&self, room_key: &str, what: String) -> Error {
        Error::Store {
            backend: self.to_string(),
            source: format!("item of {room_key} does not fit the log's layout: {what}").into(),
        }
    }

    /// Whether `item` is still kept by time (rule 4; the count is checked against the head).
    fn is_live(&self, item: &Stored, now_ms: u64) -> bool {
        let ttl_ms = u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX);
        item.ttl.saturating_mul(1000) > now_ms && item.at.saturating_add(ttl_ms) > now_ms
    }

    fn parse(&self, room_key: &str, item: &Item) -> Result<Stored> {
        let s = |name: &str| -> Result<&String> {
            match item.get(name) {
                Some(AttributeValue::S(s)) => Ok(s),
                Some(other) => Err(self.corrupt(
                    room_key,
                    format!("attribute {name} is {other:?}, expected a string"),
                )),
                None => Err(self.corrupt(room_key, format!("attribute {name} is missing"))),
            }
        };
        let n = |name: &str| -> Result<u64> {
            match item.get(name) {
                Some(AttributeValue::N(n)) => n.trim().parse::<u64>().map_err(|_| {
                    self.corrupt(
                        room_key,
                        format!("attribute {name} is {n:?}, expected a whole number"),
                    )
                }),
                Some(other) => Err(self.corrupt(
                    room_key,
                    format!("attribute {name} is {other:?}, expected a number"),
                )),
                None => Err(self.corrupt(room_key, format!("attribute {name} is missing"))),
            }
        };
        let seq = n(attr::SEQ)?;
        let offset = n(attr::OFFSET)?;
        if offset == 0 || offset > seq {
            return Err(self.corrupt(
                room_key,
                format!("attribute offset is {offset}, expected 1..={seq} (its seq)"),
            ));
        }
        let data = s(attr::DATA)?;
        let data = serde_json::from_str(data).map_err(|e| {
            self.corrupt(
                room_key,
                format!("attribute data of seq {seq} is not JSON: {e}"),
            )
        })?;
        Ok(Stored {
            seq,
            offset,
            epoch: s(attr::EPOCH)?.clone(),
            id: s(attr::ID)?.clone(),
            at: n(attr::AT)?,
            data,
            ttl: n(attr::TTL)?,
        })
    }

    /// The room's newest item (kept or not), read strongly consistently.
    async fn newest(&self, room_key: &str) -> Result<Option<Stored>> {
        let out = self
            .client
            .query()
            .table_name(&*self.table)
            .key_condition_expression("#r = :r")
            .expression_attribute_names("#r", attr::ROOM_ID)
            .expression_attribute_values(":r", AttributeValue::S(room_key.to_owned()))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.map_err(e))?;
        out.items
            .unwrap_or_default()
            .first()
            .map(|item| self.parse(room_key, item))
            .transpose()
    }

    /// The room's newest item if it is kept: the head.
    async fn kept_head(&self, room_key: &str) -> Result<Option<Stored>> {
        let now = self.now_ms();
        Ok(self
            .newest(room_key)
            .await?
            .filter(|item| self.is_live(item, now)))
    }
}

impl fmt::Debug for DynamoDbLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbLog")
            .field("table", &self.table)
            .field("config", &self.config)
            .field("max_append_attempts", &self.max_append_attempts)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for DynamoDbLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DynamoDbLog({})", self.table)
    }
}

#[async_trait]
impl MessageLog for DynamoDbLog {
    async fn append(&self, room: &RoomId, message: LogMessage) -> Result<Envelope> {
        let id = message.id_or_new()?;
        let data_json =
            serde_json::to_string(&message.data).map_err(|e| Error::InvalidPayload {
                reason: format!("message data does not serialize: {e}"),
            })?;
        let key = room_key(room);
        let limit = self.config.max_message_bytes.min(super::MAX_ENVELOPE_BYTES);
        let mut data = Some(message.data);
        for attempt in 1..=self.max_append_attempts {
            let now = self.now_ms();
            // Always the true newest: retrying at the winner's place + 1 (from `ALL_OLD`) only
            // chases the other appenders one place behind.
            let newest = self.newest(&key).await?;
            let (seq, epoch, offset) = match newest {
                // `seq` is read back from the table: a hand-edited maximum must not overflow.
                Some(n) if n.seq == u64::MAX => {
                    return Err(self.corrupt(&key, "attribute seq is at its maximum".to_owned()));
                }
                Some(n) if self.is_live(&n, now) => (n.seq + 1, n.epoch, n.offset + 1),
                Some(n) => (n.seq + 1, super::new_epoch(), 1),
                None => (1, super::new_epoch(), 1),
            };
            let envelope = Envelope::new(
                room.clone(),
                epoch,
                offset,
                id.clone(),
                now,
                data.take().unwrap_or_default(),
            );
            let size = envelope.to_json()?.len();
            if size > limit {
                return Err(Error::PayloadTooLarge { size, limit });
            }
            let ttl = (now / 1000).saturating_add(self.config.ttl.as_secs().max(1));
            let n = |v: u64| AttributeValue::N(v.to_string());
            let result = self
                .client
                .put_item()
                .table_name(&*self.table)
                .item(attr::ROOM_ID, AttributeValue::S(key.clone()))
                .item(attr::SEQ, n(seq))
                .item(attr::OFFSET, n(offset))
                .item(attr::EPOCH, AttributeValue::S(envelope.epoch.clone()))
                .item(attr::ID, AttributeValue::S(id.clone()))
                .item(attr::AT, n(now))
                .item(attr::DATA, AttributeValue::S(data_json.clone()))
                .item(attr::TTL, n(ttl))
                .condition_expression("attribute_not_exists(#s)")
                .expression_attribute_names("#s", attr::SEQ)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(envelope),
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                    data = Some(envelope.data);
                    self.lost_races.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(log = %self, room = %room, attempt, seq, "offset taken by another appender; reading again");
                    tokio::time::sleep(crate::backoff::delay(
                        attempt,
                        Duration::from_millis(2),
                        Duration::from_millis(50),
                    ))
                    .await;
                }
                Err(e) => return Err(self.map_err(e)),
            }
        }
        Err(Error::Throttled {
            backend: self.to_string(),
            source: format!(
                "append to room {room} gave up after {} attempts: other appenders took each next offset first",
                self.max_append_attempts
            )
            .into(),
        })
    }

    async fn read(&self, room: &RoomId, from: &Position, limits: ReadLimits) -> Result<History> {
        let key = room_key(room);
        let Some(head) = self.kept_head(&key).await? else {
            // Nothing kept: a client that knew no epoch lost nothing.
            let recovered = from.epoch.is_none() && from.offset == 0;
            return Ok(History::new(
                room.clone(),
                None,
                0,
                recovered,
                false,
                vec![],
            ));
        };
        let base = head.base();
        let oldest_by_count = head
            .offset
            .saturating_sub(self.config.max_messages)
            .saturating_add(1);
        // A client that has seen nothing (`Position::start()`) continues from offset 0 of
        // whatever epoch there is: nothing is lost if that epoch still starts at 1.
        let same_epoch = from.epoch.as_deref() == Some(head.epoch.as_str())
            || (from.epoch.is_none() && from.offset == 0);
        // Where the page starts (as an offset: messages after it).
        let continues = same_epoch
            && from.offset.saturating_add(1) >= oldest_by_count
            && from.offset <= head.offset;
        let after = if continues {
            from.offset
        } else {
            oldest_by_count - 1
        };
        let max_messages = limits.max_messages.max(1);
        let mut messages = Vec::new();
        let mut bytes = 0usize;
        let mut start: Option<Item> = None;
        let now = self.now_ms();
        // Nothing after `after` (up to the head): no query.
        let mut pages_left = after < head.offset;
        'pages: while pages_left {
            let page_limit = i32::try_from(max_messages.saturating_add(1)).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&*self.table)
                .key_condition_expression("#r = :r AND #s BETWEEN :lo AND :hi")
                .expression_attribute_names("#r", attr::ROOM_ID)
                .expression_attribute_names("#s", attr::SEQ)
                .expression_attribute_values(":r", AttributeValue::S(key.clone()))
                .expression_attribute_values(
                    ":lo",
                    AttributeValue::N((base + after + 1).to_string()),
                )
                .expression_attribute_values(":hi", AttributeValue::N(head.seq.to_string()))
                .consistent_read(true)
                .limit(page_limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.map_err(e))?;
            for item in out.items.unwrap_or_default() {
                let stored = self.parse(&key, &item)?;
                if !self.is_live(&stored, now) {
                    continue;
                }
                if stored.base() != base {
                    return Err(self.corrupt(
                        &key,
                        format!(
                            "seq {} has offset {} in epoch {:?}, but the head's epoch starts after seq {base}",
                            stored.seq, stored.offset, stored.epoch
                        ),
                    ));
                }
                let envelope = stored.envelope(room);
                let size = envelope.to_json()?.len();
                if !messages.is_empty() && bytes + size > limits.max_bytes {
                    break 'pages;
                }
                bytes += size;
                messages.push(envelope);
                if messages.len() >= max_messages {
                    break 'pages;
                }
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            pages_left = start.is_some();
        }
        let recovered = continues
            && match messages.first() {
                Some(first) => first.offset == from.offset.saturating_add(1),
                None => from.offset == head.offset,
            };
        let more =
            messages.last().map_or(after, |m| m.offset) < head.offset && !messages.is_empty();
        Ok(History::new(
            room.clone(),
            Some(head.epoch),
            head.offset,
            recovered,
            more,
            messages,
        ))
    }

    async fn head(&self, room: &RoomId) -> Result<Option<Position>> {
        Ok(self
            .kept_head(&room_key(room))
            .await?
            .map(|h| Position::new(h.epoch, h.offset)))
    }

    fn config(&self) -> &LogConfig {
        &self.config
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

mod builder;
mod table;
pub use builder::DynamoDbLogBuilder;
