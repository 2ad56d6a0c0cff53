//! [`DynamoDbStore`]: the routing table in DynamoDB, in the layout shared with the Python
//! version of this design.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus, WriteRequest,
};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{Clock, ConnectionStore, DEFAULT_TTL, SystemClock};
use crate::error::{BoxError, Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::Membership;
use crate::store::membership::unix_seconds;

/// Attribute names of the table layout (shared with the Python version).
mod attr {
    pub(super) const CONNECTION_ID: &str = "connectionId";
    pub(super) const ROOM_ID: &str = "roomId";
    pub(super) const USER_ID: &str = "userId";
    pub(super) const CONNECTED_AT: &str = "connectedAt";
    pub(super) const TTL: &str = "ttl";
    pub(super) const ENDPOINT: &str = "managementEndpoint";
}

/// The default name of the GSI keyed by `roomId`.
pub const DEFAULT_ROOM_INDEX: &str = "roomId-index";
/// The default name of the GSI keyed by `userId`.
pub const DEFAULT_USER_INDEX: &str = "userId-index";

/// DynamoDB's limit on the requests in one `BatchWriteItem`.
const BATCH_WRITE_LIMIT: usize = 25;
/// Connections whose records are looked up at once by [`DynamoDbStore::remove_connections`] and
/// `BatchWriteItem` calls in flight at once.
const LOOKUP_CONCURRENCY: usize = 16;
const BATCH_CONCURRENCY: usize = 4;
/// Backoff between `BatchWriteItem` retries of `UnprocessedItems`: 50 ms doubling, capped at 5 s.
const BATCH_BACKOFF_BASE: Duration = Duration::from_millis(50);
const BATCH_BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Only records that have not expired: `ttl` is a reserved word, hence `#ttl`. Records written
/// without a `ttl` never expire, so they are kept too.
const LIVE_FILTER: &str = "attribute_not_exists(#ttl) OR #ttl > :now";

/// A [`ConnectionStore`] on a DynamoDB table.
///
/// # Table layout
///
/// The same table the Python version of this design reads and writes, so the two can share it
/// while you switch handler by handler. One item per (connection, room):
///
/// | attribute | type | role |
/// |---|---|---|
/// | `connectionId` | S | partition key: the API Gateway connection id |
/// | `roomId` | S | sort key: `room#<name>` |
/// | `userId` | S | the user (absent when unknown); key of `userId-index` |
/// | `connectedAt` | N | Unix seconds |
/// | `ttl` | N | Unix seconds; the table's TTL attribute |
/// | `managementEndpoint` | S | optional: `https://{domain}/{stage}` of the API holding the socket |
///
/// Global secondary indexes, both with projection `ALL`:
/// - `roomId-index`: partition key `roomId`, sort key `connectionId` ("everyone in room X");
/// - `userId-index`: partition key `userId`, sort key `connectionId` ("every connection of user U").
///
/// Only the partition keys of the indexes are queried, so a table created with other (or no) sort
/// keys on its indexes works too.
///
/// Create it with [`ensure_table`](DynamoDbStore::ensure_table), or with the AWS CLI:
///
/// ```text
/// aws dynamodb create-table --table-name ws-connections \
///   --attribute-definitions AttributeName=connectionId,AttributeType=S \
///       AttributeName=roomId,AttributeType=S AttributeName=userId,AttributeType=S \
///   --key-schema AttributeName=connectionId,KeyType=HASH AttributeName=roomId,KeyType=RANGE \
///   --billing-mode PAY_PER_REQUEST \
///   --global-secondary-indexes \
///     '[{"IndexName":"roomId-index","KeySchema":[{"AttributeName":"roomId","KeyType":"HASH"},{"AttributeName":"connectionId","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}},
///       {"IndexName":"userId-index","KeySchema":[{"AttributeName":"userId","KeyType":"HASH"},{"AttributeName":"connectionId","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}]'
/// aws dynamodb update-time-to-live --table-name ws-connections \
///   --time-to-live-specification Enabled=true,AttributeName=ttl
/// ```
///
/// # IAM
///
/// On `arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE` and `.../table/TABLE/index/*`:
/// `dynamodb:PutItem` (join), `dynamodb:DeleteItem` (leave), `dynamodb:Query` (every listing),
/// `dynamodb:BatchWriteItem` (removing connections), `dynamodb:UpdateItem` (refresh).
/// [`ensure_table`](DynamoDbStore::ensure_table) also needs `dynamodb:CreateTable`,
/// `dynamodb:DescribeTable`, `dynamodb:DescribeTimeToLive` and `dynamodb:UpdateTimeToLive`;
/// grant those to set-up tooling, not to handlers.
///
/// # Consistency and expiry
///
/// Reads by connection id (the base table) are strongly consistent; room and user listings read
/// the GSIs, which DynamoDB keeps eventually consistent. DynamoDB deletes expired items lazily
/// (often days later), so every read filters on `attribute_not_exists(#ttl) OR #ttl > :now`:
/// expired records are never returned. Every query follows `LastEvaluatedKey` to the end.
/// Removals run `BatchWriteItem` in chunks of 25 and retry `UnprocessedItems` with exponential
/// backoff and jitter; what is still unprocessed after the last attempt is reported in
/// [`Error::Unprocessed`], never dropped.
///
/// # Example
///
/// ```no_run
/// use stateless_ws::store::{ConnectionStore, DynamoDbStore};
/// use stateless_ws::{Membership, ConnectionId, RoomId};
///
/// # async fn run() -> stateless_ws::Result<()> {
/// // CONNECTIONS_TABLE names the table; credentials and region come from the environment.
/// let store = DynamoDbStore::from_env().await?;
/// let conn = ConnectionId::new("L0SM9cOFvHcCIhw=")?;
/// store.join(&Membership::new(conn, RoomId::new("general")?)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: Arc<str>,
    room_index: Arc<str>,
    user_index: Arc<str>,
    ttl: Duration,
    page_size: Option<i32>,
    max_batch_attempts: u32,
    clock: Arc<dyn Clock>,
}

/// Builds a [`DynamoDbStore`]; see [`DynamoDbStore::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct DynamoDbStoreBuilder {
    client: Option<Client>,
    table: Option<String>,
    room_index: Option<String>,
    user_index: Option<String>,
    ttl: Option<Duration>,
    page_size: Option<u32>,
    max_batch_attempts: Option<u32>,
    clock: Option<Arc<dyn Clock>>,
}

use crate::env;

impl DynamoDbStoreBuilder {
    /// A builder with the settings found in the environment: [`env::CONNECTIONS_TABLE`] (required),
    /// [`env::CONNECTIONS_ROOM_INDEX`], [`env::CONNECTIONS_USER_INDEX`], [`env::CONNECTION_TTL_SECONDS`]. Add a client and build.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable that is missing or unparsable. Never panics.
    pub fn from_env() -> Result<Self> {
        let table = env::var(env::CONNECTIONS_TABLE)?.ok_or_else(|| {
            Error::config(format!(
                "environment variable {} is not set: it must name the connections table",
                env::CONNECTIONS_TABLE
            ))
        })?;
        let mut builder = Self::default().table_name(table);
        if let Some(index) = env::var(env::CONNECTIONS_ROOM_INDEX)? {
            builder = builder.room_index(index);
        }
        if let Some(index) = env::var(env::CONNECTIONS_USER_INDEX)? {
            builder = builder.user_index(index);
        }
        if let Some(ttl) = env::var(env::CONNECTION_TTL_SECONDS)? {
            let secs: u64 = ttl.trim().parse().map_err(|_| {
                Error::config(format!(
                    "environment variable {} must be a whole number of seconds, got {ttl:?}",
                    env::CONNECTION_TTL_SECONDS
                ))
            })?;
            builder = builder.ttl(Duration::from_secs(secs));
        }
        Ok(builder)
    }

    /// The DynamoDB client (required). Build it once per process and share it.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The table name (required).
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// The GSI keyed by `roomId` (default `roomId-index`).
    pub fn room_index(mut self, index: impl Into<String>) -> Self {
        self.room_index = Some(index.into());
        self
    }

    /// The GSI keyed by `userId` (default `userId-index`).
    pub fn user_index(mut self, index: impl Into<String>) -> Self {
        self.user_index = Some(index.into());
        self
    }

    /// How long a joined record lives, and how far [`refresh`](ConnectionStore::refresh) extends
    /// it (default 2 hours, API Gateway's maximum connection duration).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The `Limit` of each query page (default: none, DynamoDB's 1 MB pages). Small pages are
    /// for tests that must cross page boundaries.
    pub fn page_size(mut self, items: u32) -> Self {
        self.page_size = Some(items);
        self
    }

    /// How many times a `BatchWriteItem` is sent while DynamoDB keeps returning
    /// `UnprocessedItems` (default 8; at least 1).
    pub fn max_batch_attempts(mut self, attempts: u32) -> Self {
        self.max_batch_attempts = Some(attempts);
        self
    }

    /// The clock for "now" in expiry filters and TTLs (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the store. Makes no network call.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client or table name is missing, or a name is not a valid
    /// DynamoDB table or index name (3–255 characters of `a-z A-Z 0-9 _ - .`), or the page size
    /// is 0 or exceeds `i32::MAX`.
    pub fn build(self) -> Result<DynamoDbStore> {
        let client = self
            .client
            .ok_or_else(|| Error::config("DynamoDbStore needs a client: call .client(...)"))?;
        let table = self.table.ok_or_else(|| {
            Error::config("DynamoDbStore needs a table name: call .table_name(...)")
        })?;
        validate_name("table name", &table)?;
        let room_index = self
            .room_index
            .unwrap_or_else(|| DEFAULT_ROOM_INDEX.to_owned());
        validate_name("room index name", &room_index)?;
        let user_index = self
            .user_index
            .unwrap_or_else(|| DEFAULT_USER_INDEX.to_owned());
        validate_name("user index name", &user_index)?;
        let page_size = match self.page_size {
            None => None,
            Some(n) => Some(i32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::config(format!("page size must be 1..=2147483647, got {n}"))
            })?),
        };
        Ok(DynamoDbStore {
            client,
            table: table.into(),
            room_index: room_index.into(),
            user_index: user_index.into(),
            ttl: self.ttl.unwrap_or(DEFAULT_TTL),
            page_size,
            max_batch_attempts: self.max_batch_attempts.unwrap_or(8).max(1),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        })
    }
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if (3..=255).contains(&name.len()) && ok_chars {
        Ok(())
    } else {
        Err(Error::config(format!(
            "DynamoDB {what} {name:?} is invalid: it must be 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'"
        )))
    }
}

impl DynamoDbStore {
    /// A builder; `client` and `table_name` are required.
    ///
    /// ```no_run
    /// # async fn f() -> stateless_ws::Result<()> {
    /// use std::time::Duration;
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let store = stateless_ws::store::DynamoDbStore::builder()
    ///     .client(aws_sdk_dynamodb::Client::new(&config))
    ///     .table_name("ws-connections")
    ///     .ttl(Duration::from_secs(3600))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> DynamoDbStoreBuilder {
        DynamoDbStoreBuilder::default()
    }

    /// A store configured from the environment: the table and tuning from
    /// [`DynamoDbStoreBuilder::from_env`], the client from `aws_config`'s default chain (region,
    /// credentials, and `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` for a local endpoint).
    /// Call it once at start-up, not per request.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the missing or invalid variable. Never panics.
    pub async fn from_env() -> Result<Self> {
        let builder = DynamoDbStoreBuilder::from_env()?;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        builder.client(Client::new(&config)).build()
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table with both indexes if it does not exist, waits until it is `ACTIVE`, and
    /// enables TTL on `ttl` (tolerating "already enabled"). For tests, local use and set-up
    /// tooling; production tables belong in infrastructure code.
    ///
    /// # Errors
    ///
    /// The mapped SDK error of the call that failed, or [`Error::Store`] if the table does not
    /// become active within 60 seconds.
    pub async fn ensure_table(&self) -> Result<()> {
        let s = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let gsi = |index: &str, hash: &str| -> std::result::Result<_, BoxError> {
            Ok(GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(hash, KeyType::Hash)?)
                .key_schema(key(attr::CONNECTION_ID, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?)
        };
        let request = (|| -> std::result::Result<_, BoxError> {
            Ok(self
                .client
                .create_table()
                .table_name(&*self.table)
                .attribute_definitions(s(attr::CONNECTION_ID)?)
                .attribute_definitions(s(attr::ROOM_ID)?)
                .attribute_definitions(s(attr::USER_ID)?)
                .key_schema(key(attr::CONNECTION_ID, KeyType::Hash)?)
                .key_schema(key(attr::ROOM_ID, KeyType::Range)?)
                .global_secondary_indexes(gsi(&self.room_index, attr::ROOM_ID)?)
                .global_secondary_indexes(gsi(&self.user_index, attr::USER_ID)?)
                .billing_mode(BillingMode::PayPerRequest))
        })()
        .map_err(|source| self.store_error(source))?;

        match request.send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(self.map_err(e)),
        }
        self.wait_active().await?;
        self.enable_ttl().await
    }

    async fn wait_active(&self) -> Result<()> {
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&*self.table)
                .send()
                .await
                .map_err(|e| self.map_err(e))?;
            let table = out.table();
            let table_active = table.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
            let indexes_active = table
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .all(|i| {
                    i.index_status()
                        .is_none_or(|s| *s == aws_sdk_dynamodb::types::IndexStatus::Active)
                });
            if table_active && indexes_active {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(self.store_error("table did not become ACTIVE within 60 s".into()))
    }

    async fn enable_ttl(&self) -> Result<()> {
        let current = self
            .client
            .describe_time_to_live()
            .table_name(&*self.table)
            .send()
            .await
            .map_err(|e| self.map_err(e))?;
        if let Some(desc) = current.time_to_live_description() {
            let status = desc.time_to_live_status();
            let on = matches!(
                status,
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            );
            if on && desc.attribute_name() == Some(attr::TTL) {
                return Ok(());
            }
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(attr::TTL)
            .build()
            .map_err(|e| self.store_error(e.into()))?;
        match self
            .client
            .update_time_to_live()
            .table_name(&*self.table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // DynamoDB answers a ValidationException "TimeToLive is already enabled" when it is.
            Err(e) if e.message().is_some_and(|m| m.contains("already enabled")) => Ok(()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    fn now_secs(&self) -> u64 {
        unix_seconds(self.clock.now())
    }

    fn backend(&self) -> String {
        self.to_string()
    }

    fn store_error(&self, source: BoxError) -> Error {
        Error::Store {
            backend: self.backend(),
            source,
        }
    }

    /// Maps an SDK error onto the crate's error, keeping it as the source.
    fn map_err<E>(&self, err: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let backend = self.backend();
        let code = err.code().map(str::to_owned);
        let source: BoxError = Box::new(err);
        match code.as_deref() {
            Some("ResourceNotFoundException") => Error::NotFound { backend, source },
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "LimitExceededException",
            ) => Error::Throttled { backend, source },
            Some("ValidationException" | "SerializationException") => {
                Error::Validation { backend, source }
            }
            _ => Error::Store { backend, source },
        }
    }

    /// Every item matching `key = value` on the table (`index: None`) or an index, following
    /// `LastEvaluatedKey` to the end. `live_only` adds the expiry filter.
    async fn query_all(
        &self,
        index: Option<&str>,
        key: &str,
        value: &str,
        live_only: bool,
    ) -> Result<Vec<HashMap<String, AttributeValue>>> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let now = self.now_secs();
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&*self.table)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":k", AttributeValue::S(value.to_owned()))
                .set_index_name(index.map(str::to_owned))
                .set_limit(self.page_size)
                .set_exclusive_start_key(start.take());
            if index.is_none() {
                // The base table supports strongly consistent reads; GSIs do not.
                q = q.consistent_read(true);
            }
            if live_only {
                q = q
                    .filter_expression(LIVE_FILTER)
                    .expression_attribute_names("#ttl", attr::TTL)
                    .expression_attribute_values(":now", AttributeValue::N(now.to_string()));
            }
            let out = q.send().await.map_err(|e| self.map_err(e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(items)
    }

    async fn query_records(
        &self,
        index: Option<&str>,
        key: &str,
        value: &str,
        live_only: bool,
    ) -> Result<Vec<Membership>> {
        Ok(self
            .query_all(index, key, value, live_only)
            .await?
            .iter()
            .filter_map(|item| self.record_from_item(item))
            .collect())
    }

    /// Parses an item; items that do not fit the layout are skipped with a warning rather than
    /// failing a whole listing (the table is shared with other code).
    fn record_from_item(&self, item: &HashMap<String, AttributeValue>) -> Option<Membership> {
        let parsed = parse_item(item);
        if let Err(reason) = &parsed {
            tracing::warn!(store = %self, %reason, "skipping a record that does not fit the table layout");
        }
        parsed.ok()
    }

    fn item(&self, c: &Membership) -> HashMap<String, AttributeValue> {
        let now = self.now_secs();
        let mut item = HashMap::with_capacity(6);
        item.insert(
            attr::CONNECTION_ID.to_owned(),
            AttributeValue::S(c.connection_id.as_str().to_owned()),
        );
        item.insert(
            attr::ROOM_ID.to_owned(),
            AttributeValue::S(c.room.storage_key()),
        );
        if let Some(user) = &c.user_id {
            item.insert(
                attr::USER_ID.to_owned(),
                AttributeValue::S(user.as_str().to_owned()),
            );
        }
        item.insert(
            attr::CONNECTED_AT.to_owned(),
            AttributeValue::N(c.connected_at.unwrap_or(now).to_string()),
        );
        let ttl = c
            .expires_at
            .unwrap_or_else(|| now.saturating_add(self.ttl.as_secs()));
        item.insert(attr::TTL.to_owned(), AttributeValue::N(ttl.to_string()));
        if let Some(endpoint) = &c.endpoint {
            item.insert(
                attr::ENDPOINT.to_owned(),
                AttributeValue::S(endpoint.clone()),
            );
        }
        item
    }

    /// Deletes `records` with `BatchWriteItem`, 25 per call, retrying `UnprocessedItems`.
    async fn batch_delete(&self, records: &[Membership]) -> Result<()> {
        // Indices rather than `&[Membership]` items: a closure taking a reference trips the
        // higher-ranked `Send` check of `async_trait` futures.
        stream::iter((0..records.len()).step_by(BATCH_WRITE_LIMIT))
            .map(|start| {
                let end = (start + BATCH_WRITE_LIMIT).min(records.len());
                self.batch_delete_chunk(&records[start..end])
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn batch_delete_chunk(&self, chunk: &[Membership]) -> Result<()> {
        let mut pending = chunk
            .iter()
            .map(|c| {
                let key = DeleteRequest::builder()
                    .key(
                        attr::CONNECTION_ID,
                        AttributeValue::S(c.connection_id.as_str().to_owned()),
                    )
                    .key(attr::ROOM_ID, AttributeValue::S(c.room.storage_key()))
                    .build()
                    .map_err(|e| self.store_error(e.into()))?;
                Ok(WriteRequest::builder().delete_request(key).build())
            })
            .collect::<Result<Vec<_>>>()?;
        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt == self.max_batch_attempts {
                return Err(Error::Unprocessed {
                    backend: self.backend(),
                    unprocessed: pending.iter().filter_map(delete_key).collect(),
                    attempts: attempt,
                });
            }
            if attempt > 0 {
                tokio::time::sleep(crate::backoff::delay(
                    attempt,
                    BATCH_BACKOFF_BASE,
                    BATCH_BACKOFF_CAP,
                ))
                .await;
            }
            attempt += 1;
            let out = self
                .client
                .batch_write_item()
                .request_items(&*self.table, std::mem::take(&mut pending))
                .send()
                .await
                .map_err(|e| self.map_err(e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&*self.table))
                .unwrap_or_default();
            if !pending.is_empty() {
                tracing::debug!(store = %self, unprocessed = pending.len(), attempt, "BatchWriteItem returned UnprocessedItems; retrying");
            }
        }
        Ok(())
    }
}

fn delete_key(w: &WriteRequest) -> Option<(String, String)> {
    let key = w.delete_request()?.key();
    let s = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some((s(attr::CONNECTION_ID)?, s(attr::ROOM_ID)?))
}

fn parse_item(item: &HashMap<String, AttributeValue>) -> std::result::Result<Membership, String> {
    let s = |name: &str| -> std::result::Result<Option<&String>, String> {
        match item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s)),
            Some(other) => Err(format!("attribute {name} is {other:?}, expected a string")),
        }
    };
    // Numbers are written as N by this crate and by the Python version; accept a numeric string
    // too, and ignore a fractional part.
    let n = |name: &str| -> Option<u64> {
        let text = match item.get(name)? {
            AttributeValue::N(n) | AttributeValue::S(n) => n,
            _ => return None,
        };
        let text = text.trim();
        text.parse::<u64>().ok().or_else(|| {
            text.parse::<f64>()
                .ok()
                .filter(|f| *f >= 0.0)
                .map(|f| f as u64)
        })
    };
    let connection_id = s(attr::CONNECTION_ID)?.ok_or("missing connectionId")?;
    let room = s(attr::ROOM_ID)?.ok_or("missing roomId")?;
    let connection_id = ConnectionId::new(connection_id.as_str()).map_err(|e| e.to_string())?;
    let room = RoomId::from_storage_key(room).map_err(|e| e.to_string())?;
    let user_id = s(attr::USER_ID)?
        .map(|u| UserId::new(u.as_str()))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(Membership {
        connection_id,
        room,
        user_id,
        connected_at: n(attr::CONNECTED_AT),
        expires_at: n(attr::TTL),
        endpoint: s(attr::ENDPOINT)?.cloned(),
    })
}

impl fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .field("room_index", &self.room_index)
            .field("user_index", &self.user_index)
            .field("ttl", &self.ttl)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for DynamoDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DynamoDbStore({})", self.table)
    }
}

#[async_trait]
impl ConnectionStore for DynamoDbStore {
    async fn join(&self, connection: &Membership) -> Result<()> {
        self.client
            .put_item()
            .table_name(&*self.table)
            .set_item(Some(self.item(connection)))
            .send()
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    async fn leave(&self, connection: &ConnectionId, room: &RoomId) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&*self.table)
            .key(
                attr::CONNECTION_ID,
                AttributeValue::S(connection.as_str().to_owned()),
            )
            .key(attr::ROOM_ID, AttributeValue::S(room.storage_key()))
            .send()
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    async fn remove_connections(&self, connections: &[ConnectionId]) -> Result<Vec<Membership>> {
        let mut seen = HashSet::with_capacity(connections.len());
        let unique: Vec<ConnectionId> = connections
            .iter()
            .filter(|c| seen.insert(*c))
            .cloned()
            .collect();
        // Expired records are removed too: the connection is gone either way.
        let records: Vec<Membership> = stream::iter(unique)
            .map(|c| async move {
                self.query_records(None, attr::CONNECTION_ID, c.as_str(), false)
                    .await
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .try_concat()
            .await?;
        self.batch_delete(&records).await?;
        Ok(records)
    }

    async fn room_connections(&self, room: &RoomId) -> Result<Vec<Membership>> {
        self.query_records(
            Some(&self.room_index),
            attr::ROOM_ID,
            &room.storage_key(),
            true,
        )
        .await
    }

    async fn user_connections(&self, user: &UserId) -> Result<Vec<Membership>> {
        let records = self
            .query_records(Some(&self.user_index), attr::USER_ID, user.as_str(), true)
            .await?;
        let mut seen = HashSet::with_capacity(records.len());
        Ok(records
            .into_iter()
            .filter(|c| seen.insert(c.connection_id.clone()))
            .collect())
    }

    async fn connection_rooms(&self, connection: &ConnectionId) -> Result<Vec<Membership>> {
        self.query_records(None, attr::CONNECTION_ID, connection.as_str(), true)
            .await
    }

    async fn refresh(&self, connection: &ConnectionId) -> Result<usize> {
        let records = self.connection_rooms(connection).await?;
        let now = self.now_secs();
        let horizon = now.saturating_add(self.ttl.as_secs());
        let mut refreshed = 0;
        for record in records {
            let result = self
                .client
                .update_item()
                .table_name(&*self.table)
                .key(
                    attr::CONNECTION_ID,
                    AttributeValue::S(connection.as_str().to_owned()),
                )
                .key(attr::ROOM_ID, AttributeValue::S(record.room.storage_key()))
                .update_expression("SET #ttl = :horizon")
                // Never resurrect a record deleted (or expired) since the query.
                .condition_expression(
                    "attribute_exists(#cid) AND (attribute_not_exists(#ttl) OR #ttl > :now)",
                )
                .expression_attribute_names("#ttl", attr::TTL)
                .expression_attribute_names("#cid", attr::CONNECTION_ID)
                .expression_attribute_values(":horizon", AttributeValue::N(horizon.to_string()))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .send()
                .await;
            match result {
                Ok(_) => refreshed += 1,
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
                Err(e) => return Err(self.map_err(e)),
            }
        }
        Ok(refreshed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn parses_items_written_by_the_python_version() {
        let parsed = parse_item(&item(&[
            ("connectionId", AttributeValue::S("L0SM9cOFvHcCIhw=".into())),
            ("roomId", AttributeValue::S("room#general".into())),
            ("userId", AttributeValue::S("alice".into())),
            ("connectedAt", AttributeValue::N("1700000000".into())),
            ("ttl", AttributeValue::N("1700007200.0".into())),
        ]))
        .unwrap();
        assert_eq!(parsed.connection_id, "L0SM9cOFvHcCIhw=");
        assert_eq!(parsed.room, "general");
        assert_eq!(parsed.user_id.unwrap(), "alice");
        assert_eq!(parsed.connected_at, Some(1_700_000_000));
        assert_eq!(parsed.expires_at, Some(1_700_007_200));
        assert_eq!(parsed.endpoint, None);
    }

    #[test]
    fn rejects_items_that_do_not_fit_the_layout() {
        let no_room = item(&[("connectionId", AttributeValue::S("c".into()))]);
        assert!(parse_item(&no_room).unwrap_err().contains("roomId"));
        let bad_prefix = item(&[
            ("connectionId", AttributeValue::S("c".into())),
            ("roomId", AttributeValue::S("general".into())),
        ]);
        assert!(parse_item(&bad_prefix).unwrap_err().contains("room#"));
        let wrong_type = item(&[
            ("connectionId", AttributeValue::N("1".into())),
            ("roomId", AttributeValue::S("room#x".into())),
        ]);
        assert!(
            parse_item(&wrong_type)
                .unwrap_err()
                .contains("connectionId")
        );
    }

    #[test]
    fn builder_validates() {
        let client = || {
            Client::from_conf(
                aws_sdk_dynamodb::Config::builder()
                    .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                    .build(),
            )
        };
        let err = DynamoDbStore::builder()
            .table_name("t-ok")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(".client("), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(".table_name("), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .table_name("ab")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("\"ab\""), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .table_name("conns")
            .room_index("bad index")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("room index name"), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .table_name("conns")
            .page_size(0)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("page size"), "{err}");
        let store = DynamoDbStore::builder()
            .client(client())
            .table_name("conns")
            .build()
            .unwrap();
        assert_eq!(store.to_string(), "DynamoDbStore(conns)");
        assert_eq!(&*store.room_index, DEFAULT_ROOM_INDEX);
        assert_eq!(store.ttl, DEFAULT_TTL);
    }
}
