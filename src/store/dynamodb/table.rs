//! [`DynamoDbStore::ensure_table`]: creating the table, its indexes and its TTL. Set-up code,
//! kept apart from the store's request path.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;

use super::item::attr;
use super::{DynamoDbStore, sdk_error};
use crate::error::{BoxError, Error, Result};

impl DynamoDbStore {
    /// Creates the table with both indexes if it does not exist, waits until it is `ACTIVE`, and
    /// enables TTL on `ttl` (tolerating "already enabled"). For tests, local use and set-up
    /// tooling; production tables belong in infrastructure code.
    ///
    /// # Errors
    ///
    /// The mapped SDK error of the call that failed, or [`Error::Store`](crate::Error::Store) if
    /// the table does not become active within 60 seconds.
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

        ensure_table(
            &self.client,
            &self.table,
            &self.backend(),
            request,
            attr::TTL,
        )
        .await
    }
}

/// Sends `create` (a table that already exists is fine), waits until the table and its indexes
/// are `ACTIVE`, and enables TTL on `ttl_attribute` (tolerating "already enabled"): the set-up
/// of [`DynamoDbStore::ensure_table`] and the message log's `ensure_table`.
///
/// # Errors
///
/// The mapped SDK error of the call that failed (errors name `backend`), or
/// [`Error::Store`](crate::Error::Store) if the table does not become active within 60 seconds.
pub(crate) async fn ensure_table(
    client: &Client,
    table: &str,
    backend: &str,
    create: CreateTableFluentBuilder,
    ttl_attribute: &str,
) -> Result<()> {
    let map_err = |e| sdk_error(backend.to_owned(), e);
    match create.send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => {}
        Err(e) => return Err(map_err(e)),
    }
    wait_active(client, table, backend).await?;
    enable_ttl(client, table, backend, ttl_attribute).await
}

async fn wait_active(client: &Client, table: &str, backend: &str) -> Result<()> {
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error(backend.to_owned(), e))?;
        let table = out.table();
        let table_active = table.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        let indexes_active = table
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
        if table_active && indexes_active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Store {
        backend: backend.to_owned(),
        source: "table did not become ACTIVE within 60 s".into(),
    })
}

async fn enable_ttl(client: &Client, table: &str, backend: &str, attribute: &str) -> Result<()> {
    let current = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error(backend.to_owned(), e))?;
    if let Some(desc) = current.time_to_live_description() {
        let status = desc.time_to_live_status();
        let on = matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        );
        if on && desc.attribute_name() == Some(attribute) {
            return Ok(());
        }
    }
    let spec = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(attribute)
        .build()
        .map_err(|e| Error::Store {
            backend: backend.to_owned(),
            source: e.into(),
        })?;
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // DynamoDB answers a ValidationException "TimeToLive is already enabled" when it is.
        Err(e) if e.message().is_some_and(|m| m.contains("already enabled")) => Ok(()),
        Err(e) => Err(sdk_error(backend.to_owned(), e)),
    }
}
