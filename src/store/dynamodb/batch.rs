//! Batched deletes: `BatchWriteItem` in chunks of 25, `UnprocessedItems` retried with backoff.

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::DynamoDbStore;
use super::item::{attr, room_key};
use crate::error::{Error, Result};
use crate::store::Membership;

/// DynamoDB's limit on the requests in one `BatchWriteItem`.
const BATCH_WRITE_LIMIT: usize = 25;
/// `BatchWriteItem` calls in flight at once.
const BATCH_CONCURRENCY: usize = 4;
/// Backoff between `BatchWriteItem` retries of `UnprocessedItems`: 50 ms doubling, capped at 5 s.
const BATCH_BACKOFF_BASE: Duration = Duration::from_millis(50);
const BATCH_BACKOFF_CAP: Duration = Duration::from_secs(5);

impl DynamoDbStore {
    /// Deletes `records` with `BatchWriteItem`, 25 per call, retrying `UnprocessedItems`.
    pub(super) async fn batch_delete(&self, records: &[Membership]) -> Result<()> {
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
                    .key(attr::ROOM_ID, AttributeValue::S(room_key(&c.room)))
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

/// The (`connectionId`, `roomId`) key of a delete request, as reported in
/// [`Error::Unprocessed`].
fn delete_key(w: &WriteRequest) -> Option<(String, String)> {
    let key = w.delete_request()?.key();
    let s = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some((s(attr::CONNECTION_ID)?, s(attr::ROOM_ID)?))
}
