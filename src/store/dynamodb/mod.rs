//! [`DynamoDbStore`]: the routing table in DynamoDB, in the layout shared with the Python
//! version of this design.
//!
//! This file is the store and its request path. Beside it: making one (`builder.rs`), creating
//! its table (`table.rs`, set-up only), the item codec (`item.rs`) and batched deletes with their
//! retries (`batch.rs`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{ConnectionStore, Page, PageCursor};
use crate::clock::Clock;
use crate::clock::unix_seconds;
use crate::error::{BoxError, Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::Membership;

mod batch;
mod builder;
mod item;
mod table;

pub use builder::DynamoDbStoreBuilder;
pub(crate) use builder::validate_name as validate_table_name;
pub(crate) use item::room_key;
use item::{attr, parse_item, to_item};
pub(crate) use table::ensure_table;

/// One DynamoDB item (or key).
type Item = HashMap<String, AttributeValue>;

/// Connections whose records [`DynamoDbStore::remove_connections`] looks up at once.
const LOOKUP_CONCURRENCY: usize = 16;
/// Only records that have not expired: `ttl` is a reserved word, hence `#ttl`. Records written
/// without a `ttl` never expire, so they are kept too.
const LIVE_FILTER: &str = "attribute_not_exists(#ttl) OR #ttl > :now";

/// A [`ConnectionStore`] on a DynamoDB table.
///
/// # Table layout
///
/// The same table the Python version of this design (the original Lambda handlers, written with
/// boto3) reads and writes, so the two can share it while you switch handler by handler. One
/// item per (connection, room):
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
/// `dynamodb:PutItem` (join), `dynamodb:DeleteItem` (leave), `dynamodb:GetItem` (the membership
/// check, [`membership`](ConnectionStore::membership) and `is_member`), `dynamodb:Query` (every
/// listing), `dynamodb:BatchWriteItem` (removing connections), `dynamodb:UpdateItem` (refresh).
/// [`ensure_table`](DynamoDbStore::ensure_table) also needs `dynamodb:CreateTable`,
/// `dynamodb:DescribeTable`, `dynamodb:DescribeTimeToLive` and `dynamodb:UpdateTimeToLive`;
/// grant those to set-up tooling, not to handlers.
///
/// # Configuration
///
/// [`from_env`](DynamoDbStore::from_env) and `from_env_with(&sdk_config)` read
/// `CONNECTIONS_TABLE` (required), `CONNECTIONS_ROOM_INDEX`, `CONNECTIONS_USER_INDEX` and
/// `CONNECTION_TTL_SECONDS` (7,200 s, API Gateway's maximum connection duration): see
/// [`env`](crate::env). Region, credentials and endpoints come from the AWS SDK's chain
/// (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB` for a local server, ...).
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

impl DynamoDbStore {
    // `builder` and `from_env` are in `builder.rs`, `ensure_table` in `table.rs`.

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
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
        sdk_error(self.backend(), err)
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
        loop {
            let (page, last) = self
                .query_page(index, key, value, live_only, start.take(), None)
                .await?;
            items.extend(page);
            match last {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        Ok(items)
    }

    /// One `Query` page: its items and its `LastEvaluatedKey` (`None` on the last page).
    async fn query_page(
        &self,
        index: Option<&str>,
        key: &str,
        value: &str,
        live_only: bool,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<usize>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        // DynamoDB's `Limit` counts the items evaluated, before the expiry filter: the caller's
        // limit (at least 1) or the configured page size, whichever is smaller.
        let limit = limit.map(|n| i32::try_from(n.max(1)).unwrap_or(i32::MAX));
        let limit = match (limit, self.page_size) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut q = self
            .client
            .query()
            .table_name(&*self.table)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":k", AttributeValue::S(value.to_owned()))
            .set_index_name(index.map(str::to_owned))
            .set_limit(limit)
            .set_exclusive_start_key(start);
        if index.is_none() {
            // The base table supports strongly consistent reads; GSIs do not.
            q = q.consistent_read(true);
        }
        if live_only {
            q = q
                .filter_expression(LIVE_FILTER)
                .expression_attribute_names("#ttl", attr::TTL)
                .expression_attribute_values(
                    ":now",
                    AttributeValue::N(self.now_secs().to_string()),
                );
        }
        let out = q.send().await.map_err(|e| self.map_err(e))?;
        let last = out.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((out.items.unwrap_or_default(), last))
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

    /// The connection id of a `LastEvaluatedKey`: where the next room page starts.
    fn cursor_from(&self, key: &Item) -> Result<ConnectionId> {
        let id = key
            .get(attr::CONNECTION_ID)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| Error::Store {
                backend: self.backend(),
                source: format!(
                    "the room index's LastEvaluatedKey has no string {}: is {} keyed (roomId, connectionId)?",
                    attr::CONNECTION_ID,
                    self.room_index
                )
                .into(),
            })?;
        ConnectionId::new(id.as_str()).map_err(|e| Error::Store {
            backend: self.backend(),
            source: Box::new(e),
        })
    }

    fn item(&self, record: &Membership) -> HashMap<String, AttributeValue> {
        to_item(record, self.now_secs(), self.ttl)
    }
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
            .key(attr::ROOM_ID, AttributeValue::S(room_key(room)))
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

    async fn room_page(
        &self,
        room: &RoomId,
        cursor: Option<&PageCursor>,
        limit: Option<usize>,
    ) -> Result<Page> {
        let room_key = room_key(room);
        // The index's key (roomId, connectionId) is also the table's: the cursor's connection id
        // and this listing's own room make the whole ExclusiveStartKey, so a cursor cannot
        // steer the query to another room.
        let start = cursor.map(|c| {
            HashMap::from([
                (
                    attr::ROOM_ID.to_owned(),
                    AttributeValue::S(room_key.clone()),
                ),
                (
                    attr::CONNECTION_ID.to_owned(),
                    AttributeValue::S(c.last_evaluated().as_str().to_owned()),
                ),
            ])
        });
        let (items, last) = self
            .query_page(
                Some(&self.room_index),
                attr::ROOM_ID,
                &room_key,
                true,
                start,
                limit,
            )
            .await?;
        let next = match last {
            None => None,
            Some(key) => Some(PageCursor::after(self.cursor_from(&key)?)),
        };
        let records = items
            .iter()
            .filter_map(|item| self.record_from_item(item))
            .collect();
        Ok(Page::new(records, next))
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

    async fn membership(
        &self,
        connection: &ConnectionId,
        room: &RoomId,
    ) -> Result<Option<Membership>> {
        let out = self
            .client
            .get_item()
            .table_name(&*self.table)
            .key(
                attr::CONNECTION_ID,
                AttributeValue::S(connection.as_str().to_owned()),
            )
            .key(attr::ROOM_ID, AttributeValue::S(room_key(room)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.map_err(e))?;
        // GetItem takes no filter expression: the expiry check the queries make in
        // `LIVE_FILTER` is made here, on the store's clock, by the same rule.
        let now = self.clock.now();
        Ok(out
            .item
            .as_ref()
            .and_then(|item| self.record_from_item(item))
            .filter(|record| !record.is_expired_at(now)))
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
                .key(attr::ROOM_ID, AttributeValue::S(room_key(&record.room)))
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

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// An SDK error of a DynamoDB call by `backend` as the crate's error, by the service's error code
/// (throttling, a missing table, a validation error), the SDK error kept as the source. Shared by
/// every DynamoDB backend of the crate (the store and the message log).
pub(crate) fn sdk_error<E>(backend: String, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
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
