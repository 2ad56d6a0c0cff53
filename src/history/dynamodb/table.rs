//! [`DynamoDbLog::ensure_table`]: creating the log's table and its TTL. Set-up code, kept apart
//! from the log's request path.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use super::{DynamoDbLog, attr};
use crate::error::{BoxError, Error, Result};

impl DynamoDbLog {
    /// Creates the log's table if it does not exist (`roomId` string partition key, `seq`
    /// number sort key, on-demand), waits until it is `ACTIVE`, and enables TTL on `ttl`
    /// (tolerating "already enabled"). For tests, local use and set-up tooling; production
    /// tables belong in infrastructure code (the chat's `template.yaml` has one).
    ///
    /// # Errors
    ///
    /// The mapped SDK error of the call that failed, or [`Error::Store`] if the table does not
    /// become active within 60 seconds.
    pub async fn ensure_table(&self) -> Result<()> {
        let definition = |name: &str, kind: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let request = (|| -> std::result::Result<_, BoxError> {
            Ok(self
                .client
                .create_table()
                .table_name(&*self.table)
                .attribute_definitions(definition(attr::ROOM_ID, ScalarAttributeType::S)?)
                .attribute_definitions(definition(attr::SEQ, ScalarAttributeType::N)?)
                .key_schema(key(attr::ROOM_ID, KeyType::Hash)?)
                .key_schema(key(attr::SEQ, KeyType::Range)?)
                .billing_mode(BillingMode::PayPerRequest))
        })()
        .map_err(|source| Error::Store {
            backend: self.to_string(),
            source,
        })?;
        crate::store::ensure_table(
            &self.client,
            &self.table,
            &self.to_string(),
            request,
            attr::TTL,
        )
        .await
    }
}
