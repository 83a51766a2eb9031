//! The connectors table in DynamoDB. Every access is by key or index: never a Scan.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::domain::connector::Connector;
use crate::error::{AwsCallError, StoreError};
use crate::ports::{BucketClaims, ClaimsWrite, ConnectorStore, Page};

pub const BY_BUCKET_INDEX: &str = "by-bucket";
pub const BY_DUE_INDEX: &str = "by-due";
/// Sort keys of connectors; the tenant's partition also holds one claims item per bucket
/// (`claims#<bucket>`), which carries no `bucket` or `due_*` attribute and so stays out of
/// both indexes. Our ids are generated, so no connector id can take a claims key.
const CONNECTOR_SORT_PREFIX: &str = "con_";
const CLAIMS_SORT_PREFIX: &str = "claims#";

#[derive(Clone)]
pub struct DynamoConnectorStore {
    client: Client,
    table: String,
}

impl DynamoConnectorStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

type Item = HashMap<String, AttributeValue>;

fn key(tenant_id: &str, connector_id: &str) -> Item {
    HashMap::from([
        (
            "tenant_id".to_owned(),
            AttributeValue::S(tenant_id.to_owned()),
        ),
        (
            "connector_id".to_owned(),
            AttributeValue::S(connector_id.to_owned()),
        ),
    ])
}

fn claims_key(tenant_id: &str, bucket: &str) -> Item {
    key(tenant_id, &format!("{CLAIMS_SORT_PREFIX}{bucket}"))
}

fn claims_from_item(item: &Item) -> Result<BucketClaims, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("bucket claims item: {what}"));
    let version = match item.get("claims_version") {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| corrupt("bad claims_version"))?,
        _ => return Err(corrupt("no claims_version")),
    };
    let prefixes = match item.get("prefixes") {
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(id, prefix)| match prefix {
                AttributeValue::S(p) => Ok((id.clone(), p.clone())),
                _ => Err(corrupt("a prefix is not a string")),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        _ => return Err(corrupt("no prefixes")),
    };
    Ok(BucketClaims {
        version: Some(version),
        prefixes,
    })
}

/// The conditional put of one bucket's claims inside a transaction.
fn claims_put(
    table: &str,
    tenant_id: &str,
    claims: &ClaimsWrite,
) -> Result<TransactWriteItem, StoreError> {
    let mut item = claims_key(tenant_id, &claims.bucket);
    let next = claims.expected.map_or(1, |v| v + 1);
    item.insert("claims_version".into(), version_value(next));
    item.insert(
        "prefixes".into(),
        AttributeValue::M(
            claims
                .prefixes
                .iter()
                .map(|(id, prefix)| (id.clone(), AttributeValue::S(prefix.clone())))
                .collect(),
        ),
    );
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = match claims.expected {
        None => put.condition_expression("attribute_not_exists(connector_id)"),
        Some(v) => put
            .condition_expression("claims_version = :claims")
            .expression_attribute_values(":claims", version_value(v)),
    };
    Ok(TransactWriteItem::builder()
        .put(
            put.build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )
        .build())
}

fn to_item(connector: &Connector) -> Result<Item, StoreError> {
    serde_dynamo::to_item(connector).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_item(item: Item) -> Result<Connector, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Runs `query` page by page through the SDK's paginator (DynamoDB stops at 1 MB per call:
/// connectors with PGP keys are large) until `wanted` items are read or the results end. The
/// query's own `ExclusiveStartKey`, if any, is where the first page starts; no page is fetched
/// once `wanted` items are in. An item that no longer reads as a connector is logged and left
/// out, so one bad item cannot fail a tenant's listing or the routing of a bucket shared with
/// other tenants (reading it by id still reports it as corrupt).
async fn collect(
    query: QueryFluentBuilder,
    wanted: Option<usize>,
) -> Result<Vec<Connector>, StoreError> {
    let mut paginator = query.into_paginator();
    if let Some(wanted) = wanted {
        paginator = paginator.page_size(i32::try_from(wanted).unwrap_or(i32::MAX));
    }
    let mut stream = paginator.items().send();
    let mut items = Vec::new();
    while wanted.is_none_or(|w| items.len() < w) {
        let Some(item) = stream.next().await else {
            break;
        };
        let item = item.map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
        let key = |name: &str| match item.get(name) {
            Some(AttributeValue::S(value)) => value.clone(),
            _ => String::new(),
        };
        let (tenant_id, connector_id) = (key("tenant_id"), key("connector_id"));
        match from_item(item) {
            Ok(connector) => items.push(connector),
            Err(e) => {
                tracing::error!(%tenant_id, %connector_id, error = %e, "skipping a connector item that cannot be read")
            }
        }
    }
    Ok(items)
}

/// Outcome of a conditional write: `on_condition` when the condition did not hold.
fn conditional<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    operation: &'static str,
    is_condition_failure: impl Fn(&E) -> bool,
    on_condition: StoreError,
) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(&is_condition_failure) => Err(on_condition),
        Err(e) => Err(AwsCallError::from_sdk("dynamodb", operation, &e).into()),
    }
}

fn version_value(version: u64) -> AttributeValue {
    AttributeValue::N(version.to_string())
}

impl ConnectorStore for DynamoConnectorStore {
    async fn get(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> Result<Option<Connector>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_id, connector_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        out.item.map(from_item).transpose()
    }

    async fn list(
        &self,
        tenant_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Connector>, StoreError> {
        // One extra item tells whether another page exists, so the last page has no token.
        let wanted = limit as usize + 1;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("tenant_id = :t AND begins_with(connector_id, :con)")
            .expression_attribute_values(":t", AttributeValue::S(tenant_id.to_owned()))
            .expression_attribute_values(":con", AttributeValue::S(CONNECTOR_SORT_PREFIX.into()))
            .consistent_read(true)
            .set_exclusive_start_key(after.map(|after| key(tenant_id, after)));
        let mut items = collect(query, Some(wanted)).await?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|c| c.connector_id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn list_by_bucket(&self, bucket: &str) -> Result<Vec<Connector>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_BUCKET_INDEX)
            .key_condition_expression("bucket = :b")
            .expression_attribute_values(":b", AttributeValue::S(bucket.to_owned()));
        collect(query, None).await
    }

    async fn due(
        &self,
        shard: &str,
        until_epoch: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_DUE_INDEX)
            .key_condition_expression("due_shard = :s AND due_at <= :until")
            .expression_attribute_values(":s", AttributeValue::S(shard.to_owned()))
            .expression_attribute_values(":until", AttributeValue::N(until_epoch.to_string()))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
        let string = |item: &Item, name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Ok(s.clone()),
            _ => Err(StoreError::Corrupt(format!(
                "{BY_DUE_INDEX} item lacks {name}"
            ))),
        };
        out.items
            .unwrap_or_default()
            .iter()
            .map(|item| Ok((string(item, "tenant_id")?, string(item, "connector_id")?)))
            .collect()
    }

    async fn bucket_claims(
        &self,
        tenant_id: &str,
        bucket: &str,
    ) -> Result<BucketClaims, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(claims_key(tenant_id, bucket)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        match out.item {
            Some(item) => claims_from_item(&item),
            None => Ok(BucketClaims::default()),
        }
    }

    async fn create(&self, connector: &Connector, claims: &ClaimsWrite) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(connector)?))
            .condition_expression("attribute_not_exists(connector_id)")
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            claims_put(&self.table, &connector.tenant_id, claims)?,
        ];
        self.transact(items).await
    }

    async fn replace(
        &self,
        connector: &Connector,
        expected_version: u64,
        claims: &[ClaimsWrite],
    ) -> Result<(), StoreError> {
        if claims.is_empty() {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(connector)?))
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", version_value(expected_version))
                .send()
                .await;
            return conditional(
                result,
                "PutItem",
                |e| e.is_conditional_check_failed_exception(),
                StoreError::VersionConflict {
                    expected: expected_version,
                },
            );
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(connector)?))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", version_value(expected_version))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        for c in claims {
            items.push(claims_put(&self.table, &connector.tenant_id, c)?);
        }
        self.transact(items).await
    }

    async fn delete(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: u64,
        claims: Option<&ClaimsWrite>,
    ) -> Result<(), StoreError> {
        let Some(claims) = claims else {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(tenant_id, connector_id)))
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", version_value(expected_version))
                .send()
                .await;
            return conditional(
                result,
                "DeleteItem",
                |e| e.is_conditional_check_failed_exception(),
                StoreError::VersionConflict {
                    expected: expected_version,
                },
            );
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(tenant_id, connector_id)))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", version_value(expected_version))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.transact(vec![
            TransactWriteItem::builder().delete(delete).build(),
            claims_put(&self.table, tenant_id, claims)?,
        ])
        .await
    }
}

impl DynamoConnectorStore {
    /// All or nothing; a failed condition (or a concurrent transaction on the same items) is
    /// `Contended`, for the caller to re-read and retry.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        // Only a failed condition or a concurrent transaction means "re-read and retry"; any
        // other reason (an item too large, throttling) is reported as what it is.
        let contended = |e: &TransactWriteItemsError| match e {
            TransactWriteItemsError::TransactionCanceledException(t) => {
                t.cancellation_reasons().iter().all(|r| {
                    matches!(
                        r.code(),
                        None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                    )
                })
            }
            _ => false,
        };
        conditional(
            result,
            "TransactWriteItems",
            contended,
            StoreError::Contended,
        )
    }
}

#[cfg(test)]
mod stored_tests;
