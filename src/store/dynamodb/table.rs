//! [`DynamoDbStore::ensure_table`]: creating the table, its indexes and its TTL. Set-up code,
//! kept apart from the store's request path.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};

use super::DynamoDbStore;
use super::item::attr;
use crate::error::{BoxError, Result};

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
                .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
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
}
