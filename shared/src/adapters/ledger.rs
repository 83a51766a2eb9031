//! The ingest ledger adapter (docs/dynamodb.md, `ingest-ledger`): one item per file, keyed by
//! its `object_id`, written only if its `version` is still the one read. The `by-connector`
//! index (`connector_id`, `seen_key` = first-seen time `#` object id) lists a connector's files
//! newest first; records expire (`expires_at`) a year after they were last written.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::SecondsFormat;

use crate::domain::ingest::file::{FileStatus, IngestFile};
use crate::error::{AwsCallError, StoreError};
use crate::ports::{IngestLedger, Page};

/// The index listing a connector's files.
pub const BY_CONNECTOR_INDEX: &str = "by-connector";
/// How long a record outlives its last write: long enough that a file re-announced or
/// re-listed within a year is still recognised.
const RETENTION_SECONDS: i64 = 366 * 24 * 3600;

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoIngestLedger {
    client: Client,
    table: String,
}

impl DynamoIngestLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// `<first seen, RFC 3339 µs>#<object id>`: sorts by first sight, unique by the id.
pub fn seen_key(file: &IngestFile) -> String {
    format!(
        "{}#{}",
        file.first_seen_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        file.object_id
    )
}

fn file_item(file: &IngestFile) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(file).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    item.insert("seen_key".to_owned(), AttributeValue::S(seen_key(file)));
    item.insert(
        "expires_at".to_owned(),
        AttributeValue::N((file.updated_at.timestamp() + RETENTION_SECONDS).to_string()),
    );
    Ok(item)
}

fn file_from_item(mut item: Item) -> Result<IngestFile, StoreError> {
    item.remove("seen_key");
    item.remove("expires_at");
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl IngestLedger for DynamoIngestLedger {
    async fn get(&self, object_id: &str) -> Result<Option<IngestFile>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("object_id", AttributeValue::S(object_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        out.item.map(file_from_item).transpose()
    }

    async fn put(&self, file: &IngestFile) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(file_item(file)?));
        let request = if file.version <= 1 {
            request.condition_expression("attribute_not_exists(object_id)")
        } else {
            request
                .condition_expression("version = :expected")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N((file.version - 1).to_string()),
                )
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Contended)
            }
            Err(e) => Err(AwsCallError::from_sdk("dynamodb", "PutItem", &e).into()),
        }
    }

    async fn list(
        &self,
        connector_id: &str,
        status: Option<FileStatus>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<IngestFile>, StoreError> {
        let wanted = limit as usize + 1;
        let start = after.map(|seen| {
            let object_id = seen.rsplit('#').next().unwrap_or_default();
            HashMap::from([
                (
                    "object_id".to_owned(),
                    AttributeValue::S(object_id.to_owned()),
                ),
                (
                    "connector_id".to_owned(),
                    AttributeValue::S(connector_id.to_owned()),
                ),
                ("seen_key".to_owned(), AttributeValue::S(seen.to_owned())),
            ])
        });
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CONNECTOR_INDEX)
            .key_condition_expression("connector_id = :c")
            .expression_attribute_values(":c", AttributeValue::S(connector_id.to_owned()))
            .scan_index_forward(false)
            .set_exclusive_start_key(start);
        if let Some(status) = status {
            // A filter, not a key: a page may come back short while more follow.
            query = query
                .filter_expression("#status = :s")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":s", AttributeValue::S(status.as_str().to_owned()));
        }
        let mut stream = query
            .into_paginator()
            .page_size(i32::try_from(wanted).unwrap_or(i32::MAX))
            .items()
            .send();
        let mut items = Vec::new();
        while items.len() < wanted {
            let Some(item) = stream.next().await else {
                break;
            };
            let item = item.map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
            match file_from_item(item) {
                Ok(file) => items.push(file),
                Err(e) => {
                    tracing::error!(%connector_id, error = %e, "skipping a ledger item that cannot be read")
                }
            }
        }
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(seen_key)
        } else {
            None
        };
        Ok(Page { items, next })
    }
}
