//! The lake adapter: Parquet parts in the lake bucket, recorded in the lake catalog table.
//!
//! Catalog items (`table_id`, `part_seq`), all read by key, never scanned:
//!
//! | item | `table_id` | `part_seq` | attributes |
//! |---|---|---|---|
//! | part | `<tenant>#<table>` | 1, 2, 3… | `key`, `rows`, `bytes`, `created_at` (RFC 3339, µs, UTC), `schema` (JSON) |
//! | table head | `<tenant>#<table>` | 0 | `last_seq`, `last_key`, `schema` (of the last part), `updated_at` |
//! | tenant's tables | `<tenant>#` | 0 | `tables` (string set) |
//!
//! Table names are never empty and hold no `#`, so `<tenant>#` cannot be a table's id.
//!
//! Order (docs/architecture.md, "The lake"): the Parquet object is written first, then one
//! transaction moves the head from n-1 to n and puts part n (and, for n = 1, adds the table to
//! the tenant's set). Part n+1 can therefore only exist once part n does, and a reader that
//! first reads the head (n) and then queries up to n sees every part up to n: an exporter never
//! advances its watermark past a part that is not yet visible.

use std::collections::HashMap;
use std::time::Duration;

use arrow_array::RecordBatch;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::error::AwsCallError;
use arrow_schema::SchemaRef;

use crate::lake::part_file::{EncodedPart, decode_part, encode_part};
use crate::lake::schema::{extends, schema_from_json, schema_to_json};
use crate::lake::{
    Lake, LakeError, LakePart, LoadState, PartBatches, StagedPart, validate_table_name,
    validate_tenant_id,
};

/// `part_seq` of a table's head item and of a tenant's table set.
const HEAD_SEQ: u64 = 0;
/// Appends that lose the race for the next number retry with the one after; past this many
/// lost races in a row the append fails as retryable rather than spin.
const MAX_APPEND_ATTEMPTS: u32 = 20;

/// Parts committed per transaction of a load: with the head, the manifest and the tenant's
/// table set that stays under DynamoDB's 100 items a transaction.
const LOAD_PARTS_PER_COMMIT: usize = 90;

/// The object tag that tells a staged part from a committed one. A staged part's key never
/// changes when it is committed, so only the tag can: the lake bucket's lifecycle rule expires
/// objects still tagged staged (template.yaml, `expire-uncommitted-staged-parts`), which are
/// the parts of refused or abandoned loads. Lake writers may not delete.
pub const LAKE_OBJECT_TAG: &str = "lake-object";
pub const STAGED_TAG_VALUE: &str = "staged";
pub const COMMITTED_TAG_VALUE: &str = "part";
/// Tags of a load's parts moved to committed at once.
const TAGGING_CONCURRENCY: usize = 8;

type Item = HashMap<String, AttributeValue>;

/// The lake over the lake bucket and the lake catalog table.
#[derive(Clone)]
pub struct DynamoLake {
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    bucket: String,
    catalog_table: String,
}

impl DynamoLake {
    pub fn new(
        s3: aws_sdk_s3::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        bucket: impl Into<String>,
        catalog_table: impl Into<String>,
    ) -> Self {
        Self {
            s3,
            dynamodb,
            bucket: bucket.into(),
            catalog_table: catalog_table.into(),
        }
    }

    /// Appends a part already encoded with [`encode_part`] (writers encode on their own
    /// threads and keep parts to about 16 MiB, since readers fetch a part whole).
    ///
    /// On a lost race the object already written is kept and recorded under the next free
    /// number: re-uploading would cost the bytes again and leave the first object behind, and
    /// the lake's writers may not delete (template.yaml grants them PutObject only). The
    /// number in the key is therefore the one first tried; the catalog's `part_seq` is the
    /// part's place.
    pub async fn append_encoded(
        &self,
        tenant_id: &str,
        table: &str,
        part: EncodedPart,
    ) -> Result<LakePart, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        let schema_json = schema_to_json(&part.schema).map_err(|e| LakeError::Invalid {
            table: table.to_owned(),
            reason: e.to_string(),
        })?;
        let mut head = self.head(tenant_id, table).await?;
        let key = part_key(tenant_id, table, head.last_seq + 1, Uuid::now_v7());
        let bytes = part.bytes.len() as u64;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/vnd.apache.parquet")
            .body(ByteStream::from(part.bytes))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("s3", "PutObject", &e))?;
        for attempt in 1..=MAX_APPEND_ATTEMPTS {
            let record = LakePart {
                tenant_id: tenant_id.to_owned(),
                table: table.to_owned(),
                seq: head.last_seq + 1,
                key: key.clone(),
                rows: part.rows,
                bytes,
                created_at: now(),
                schema: part.schema.clone(),
            };
            match self.commit(&record, &schema_json).await? {
                Commit::Done => return Ok(record),
                Commit::Lost => {}
            }
            head = self.head(tenant_id, table).await?;
            // A commit whose answer was lost (and whose retry then failed its condition) is
            // already in: it is the head.
            if head.last_key.as_deref() == Some(key.as_str()) {
                return self.part(tenant_id, table, head.last_seq).await;
            }
            tokio::time::sleep(race_backoff(attempt)).await;
        }
        Err(AwsCallError {
            service: "dynamodb",
            operation: "TransactWriteItems",
            code: Some("TransactionCanceledException".to_owned()),
            message: format!(
                "lake table {table}: {MAX_APPEND_ATTEMPTS} appends in a row lost the race for the next part number; object {key} is written but not recorded"
            ),
            http_status: None,
            retryable: true,
        }
        .into())
    }

    async fn manifest(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
    ) -> Result<Option<LoadManifest>, LakeError> {
        let id = load_table_id(tenant_id, table, load_id);
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.catalog_table)
            .set_key(Some(catalog_key(&id, HEAD_SEQ)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        out.item
            .map(|item| manifest_from_item(&id, &item))
            .transpose()
    }

    /// Records the load's parts once; the manifest already recorded wins over `parts`.
    async fn record_manifest(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
        parts: &[StagedPart],
    ) -> Result<LoadManifest, LakeError> {
        if let Some(manifest) = self.manifest(tenant_id, table, load_id).await? {
            return Ok(manifest);
        }
        let Some(first) = parts.first() else {
            return Err(LakeError::Invalid {
                table: table.to_owned(),
                reason: format!("load {load_id} has no part to commit"),
            });
        };
        let schema_json = schema_to_json(&first.schema).map_err(|e| LakeError::Invalid {
            table: table.to_owned(),
            reason: e.to_string(),
        })?;
        let manifest = LoadManifest {
            keys: parts.iter().map(|p| p.key.clone()).collect(),
            rows: parts.iter().map(|p| p.rows).collect(),
            bytes: parts.iter().map(|p| p.bytes).collect(),
            schema_json,
            seqs: Vec::new(),
        };
        let id = load_table_id(tenant_id, table, load_id);
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.catalog_table)
            .set_item(Some(manifest_item(&id, &manifest)))
            .condition_expression("attribute_not_exists(table_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(manifest),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // A concurrent commit of the same load recorded it first: its parts win.
                self.manifest(tenant_id, table, load_id)
                    .await?
                    .ok_or_else(|| LakeError::Corrupt {
                        key: id,
                        reason: "the load's manifest exists and cannot be read".to_owned(),
                    })
            }
            Err(e) => Err(AwsCallError::from_sdk("dynamodb", "PutItem", &e).into()),
        }
    }

    /// Commits the next chunk of the load's parts: the head, the parts and the manifest's
    /// count move in one transaction, so a chunk is in entirely or not at all.
    /// `tagged`: how many of the manifest's keys this call of `commit_load` has tagged
    /// committed already, so that a chunk retried after a lost race is not tagged again.
    async fn commit_chunk(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
        manifest: &LoadManifest,
        tagged: &mut usize,
    ) -> Result<Commit, LakeError> {
        let done = manifest.seqs.len();
        let end = (done + LOAD_PARTS_PER_COMMIT).min(manifest.keys.len());
        let schema = schema_from_json(&manifest.schema_json).map_err(|e| LakeError::Corrupt {
            key: load_table_id(tenant_id, table, load_id),
            reason: format!("schema: {e}"),
        })?;
        let head = self.head(tenant_id, table).await?;
        if done == 0 {
            self.check_extends(tenant_id, table, load_id, &head, &schema)
                .await?;
        }
        // Before the catalog names them, so that no committed part is left to expire.
        let untagged = (*tagged).max(done);
        if untagged < end {
            self.mark_committed(table, &manifest.keys[untagged..end])
                .await?;
            *tagged = end;
        }
        let created_at = now();
        let parts: Vec<LakePart> = (done..end)
            .enumerate()
            .map(|(offset, index)| LakePart {
                tenant_id: tenant_id.to_owned(),
                table: table.to_owned(),
                seq: head.last_seq + 1 + offset as u64,
                key: manifest.keys[index].clone(),
                rows: manifest.rows[index],
                bytes: manifest.bytes[index],
                created_at,
                schema: schema.clone(),
            })
            .collect();
        let mut items = commit_parts_items(&self.catalog_table, &parts, &manifest.schema_json)?;
        let counted = Update::builder()
            .table_name(&self.catalog_table)
            .set_key(Some(catalog_key(
                &load_table_id(tenant_id, table, load_id),
                HEAD_SEQ,
            )))
            .update_expression("SET seqs = list_append(seqs, :new)")
            .condition_expression("size(seqs) = :done")
            .expression_attribute_values(
                ":new",
                AttributeValue::L(parts.iter().map(|p| number(p.seq)).collect()),
            )
            .expression_attribute_values(":done", number(done as u64))
            .build()
            .map_err(|e| LakeError::Invalid {
                table: table.to_owned(),
                reason: format!("the catalog write could not be built: {e}"),
            })?;
        items.push(TransactWriteItem::builder().update(counted).build());
        let result = self
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Commit::Done),
            Err(e) if e.as_service_error().is_some_and(lost_the_race) => Ok(Commit::Lost),
            Err(e) => Err(AwsCallError::from_sdk("dynamodb", "TransactWriteItems", &e).into()),
        }
    }

    /// Moves staged parts' tag to committed. Repeating it is harmless (a retried chunk); a
    /// part tagged committed whose chunk then fails stays, unreferenced, as a leak, never a loss.
    async fn mark_committed(&self, table: &str, keys: &[String]) -> Result<(), LakeError> {
        let unbuilt = |e: aws_sdk_s3::error::BuildError| LakeError::Invalid {
            table: table.to_owned(),
            reason: format!("the committed tag could not be built: {e}"),
        };
        let tagging = Tagging::builder()
            .tag_set(
                Tag::builder()
                    .key(LAKE_OBJECT_TAG)
                    .value(COMMITTED_TAG_VALUE)
                    .build()
                    .map_err(unbuilt)?,
            )
            .build()
            .map_err(unbuilt)?;
        // Owned keys: a closure over borrowed ones makes the future not provably Send.
        stream::iter(keys.to_vec())
            .map(|key| {
                self.s3
                    .put_object_tagging()
                    .bucket(&self.bucket)
                    .key(key)
                    .tagging(tagging.clone())
                    .send()
            })
            .buffer_unordered(TAGGING_CONCURRENCY)
            .map_err(|e| LakeError::from(AwsCallError::from_sdk("s3", "PutObjectTagging", &e)))
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Before a load's first part goes in: its schema must extend the table's. If another load
    /// changed the schema since the parts were written, the manifest is withdrawn (nothing of
    /// the load is committed yet) and the load must be parsed again. Later chunks of a load
    /// are not checked: its first parts are in, and the load is finished as recorded.
    async fn check_extends(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
        head: &Head,
        schema: &SchemaRef,
    ) -> Result<(), LakeError> {
        let Some(head_json) = &head.schema_json else {
            return Ok(());
        };
        let table_schema = schema_from_json(head_json).map_err(|e| LakeError::Corrupt {
            key: format!("{} head", table_id(tenant_id, table)),
            reason: format!("schema: {e}"),
        })?;
        if extends(&table_schema, schema) {
            return Ok(());
        }
        let result = self
            .dynamodb
            .delete_item()
            .table_name(&self.catalog_table)
            .set_key(Some(catalog_key(
                &load_table_id(tenant_id, table, load_id),
                HEAD_SEQ,
            )))
            .condition_expression("size(seqs) = :none")
            .expression_attribute_values(":none", number(0))
            .send()
            .await;
        match result {
            Ok(_) => {}
            // A concurrent commit of the same load got a chunk in after all: finish it as is.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(AwsCallError::from_sdk("dynamodb", "DeleteItem", &e).into()),
        }
        Err(LakeError::SchemaChanged {
            table: table.to_owned(),
            schema: head_json.clone(),
        })
    }

    async fn head(&self, tenant_id: &str, table: &str) -> Result<Head, LakeError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.catalog_table)
            .set_key(Some(catalog_key(&table_id(tenant_id, table), HEAD_SEQ)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        match out.item {
            None => Ok(Head::default()),
            Some(item) => head_from_item(&table_id(tenant_id, table), &item),
        }
    }

    async fn part(&self, tenant_id: &str, table: &str, seq: u64) -> Result<LakePart, LakeError> {
        let id = table_id(tenant_id, table);
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.catalog_table)
            .set_key(Some(catalog_key(&id, seq)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        let item = out.item.ok_or_else(|| LakeError::Corrupt {
            key: format!("{id} #{seq}"),
            reason: "the head names this part but its item is missing".to_owned(),
        })?;
        part_from_item(tenant_id, table, &item)
    }

    async fn commit(&self, part: &LakePart, schema_json: &str) -> Result<Commit, LakeError> {
        let items = commit_items(&self.catalog_table, part, schema_json)?;
        let result = self
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Commit::Done),
            Err(e) if e.as_service_error().is_some_and(lost_the_race) => Ok(Commit::Lost),
            Err(e) => Err(AwsCallError::from_sdk("dynamodb", "TransactWriteItems", &e).into()),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Commit {
    Done,
    Lost,
}

/// What the head item says; all zero for a table with no part yet.
#[derive(Debug, Default, PartialEq)]
struct Head {
    last_seq: u64,
    last_key: Option<String>,
    /// The schema of the last part, as the catalog stores it.
    schema_json: Option<String>,
}

/// Only a failed condition or a concurrent transaction on the same items means another append
/// took the number; anything else (an item too large, throttling) is reported as it is.
fn lost_the_race(error: &TransactWriteItemsError) -> bool {
    match error {
        TransactWriteItemsError::TransactionCanceledException(t) => {
            t.cancellation_reasons().iter().all(|r| {
                matches!(
                    r.code(),
                    None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        _ => false,
    }
}

/// A few milliseconds, growing, with jitter so racing writers spread out.
fn race_backoff(attempt: u32) -> Duration {
    let ceiling = 5u64 << attempt.min(6);
    Duration::from_millis(rand::random_range(1..=ceiling))
}

fn now() -> DateTime<Utc> {
    // Microseconds, as stored, so the part returned equals the part read back.
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

pub fn table_id(tenant_id: &str, table: &str) -> String {
    format!("{tenant_id}#{table}")
}

fn tables_id(tenant_id: &str) -> String {
    format!("{tenant_id}#")
}

/// A load's manifest: `<tenant>#<table>#load#<load id>` (table names hold no `#`, so it is no
/// table's id).
fn load_table_id(tenant_id: &str, table: &str, load_id: &str) -> String {
    format!("{tenant_id}#{table}#load#{load_id}")
}

/// `tenants/<tenant>/<table>/staged-<uuid>.parquet`: a part whose number is given when its load
/// commits.
pub fn staged_part_key(tenant_id: &str, table: &str, id: Uuid) -> String {
    format!("tenants/{tenant_id}/{table}/staged-{id}.parquet")
}

/// The parts of one load in order, and the numbers of those committed so far (a prefix).
#[derive(Debug, Clone, PartialEq)]
struct LoadManifest {
    keys: Vec<String>,
    rows: Vec<u64>,
    bytes: Vec<u64>,
    schema_json: String,
    seqs: Vec<u64>,
}

fn numbers(values: &[u64]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| number(*v)).collect())
}

fn manifest_item(id: &str, manifest: &LoadManifest) -> Item {
    let mut item = catalog_key(id, HEAD_SEQ);
    item.extend([
        (
            "keys".to_owned(),
            AttributeValue::L(
                manifest
                    .keys
                    .iter()
                    .map(|k| AttributeValue::S(k.clone()))
                    .collect(),
            ),
        ),
        ("rows".to_owned(), numbers(&manifest.rows)),
        ("bytes".to_owned(), numbers(&manifest.bytes)),
        (
            "schema".to_owned(),
            AttributeValue::S(manifest.schema_json.clone()),
        ),
        ("seqs".to_owned(), numbers(&manifest.seqs)),
        (
            "created_at".to_owned(),
            AttributeValue::S(now().to_rfc3339_opts(SecondsFormat::Micros, true)),
        ),
    ]);
    item
}

fn manifest_from_item(id: &str, item: &Item) -> Result<LoadManifest, LakeError> {
    let corrupt = |reason: String| LakeError::Corrupt {
        key: id.to_owned(),
        reason,
    };
    let list = |name: &str| match item.get(name) {
        Some(AttributeValue::L(values)) => Ok(values),
        _ => Err(corrupt(format!("the load manifest has no {name} list"))),
    };
    let counts = |name: &str| -> Result<Vec<u64>, LakeError> {
        list(name)?
            .iter()
            .map(|v| match v {
                AttributeValue::N(n) => n
                    .parse()
                    .map_err(|_| corrupt(format!("{name} holds {n:?}, not a count"))),
                _ => Err(corrupt(format!(
                    "{name} holds a value that is not a number"
                ))),
            })
            .collect()
    };
    let keys = list("keys")?
        .iter()
        .map(|v| match v {
            AttributeValue::S(k) => Ok(k.clone()),
            _ => Err(corrupt(
                "keys holds a value that is not a string".to_owned(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = LoadManifest {
        rows: counts("rows")?,
        bytes: counts("bytes")?,
        seqs: counts("seqs")?,
        schema_json: match item.get("schema") {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => return Err(corrupt("the load manifest has no schema".to_owned())),
        },
        keys,
    };
    if manifest.rows.len() != manifest.keys.len()
        || manifest.bytes.len() != manifest.keys.len()
        || manifest.seqs.len() > manifest.keys.len()
    {
        return Err(corrupt(format!(
            "{} keys, {} row counts, {} byte counts and {} committed numbers do not match",
            manifest.keys.len(),
            manifest.rows.len(),
            manifest.bytes.len(),
            manifest.seqs.len()
        )));
    }
    Ok(manifest)
}

/// Load ids become part of a catalog key: `[A-Za-z0-9_-]{1,128}`.
fn validate_load_id(table: &str, load_id: &str) -> Result<(), LakeError> {
    let ok = !load_id.is_empty()
        && load_id.len() <= 128
        && load_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LakeError::Invalid {
            table: table.to_owned(),
            reason: format!("load id {load_id:?} must match [A-Za-z0-9_-]{{1,128}}"),
        })
    }
}

/// `tenants/<tenant>/<table>/<seq:010>-<uuid>.parquet`: sorted by the number first tried, and
/// unique by the UUID whatever races happened.
pub fn part_key(tenant_id: &str, table: &str, seq: u64, id: Uuid) -> String {
    format!("tenants/{tenant_id}/{table}/{seq:010}-{id}.parquet")
}

fn catalog_key(table_id: &str, seq: u64) -> Item {
    HashMap::from([
        (
            "table_id".to_owned(),
            AttributeValue::S(table_id.to_owned()),
        ),
        ("part_seq".to_owned(), number(seq)),
    ])
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn part_item(part: &LakePart, schema_json: &str) -> Item {
    let mut item = catalog_key(&table_id(&part.tenant_id, &part.table), part.seq);
    item.extend([
        ("key".to_owned(), AttributeValue::S(part.key.clone())),
        ("rows".to_owned(), number(part.rows)),
        ("bytes".to_owned(), number(part.bytes)),
        (
            "created_at".to_owned(),
            AttributeValue::S(part.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        ),
        (
            "schema".to_owned(),
            AttributeValue::S(schema_json.to_owned()),
        ),
    ]);
    item
}

/// The transaction of an append: head n-1 → n, part n put where none is, and for n = 1 the
/// table added to the tenant's set.
fn commit_items(
    catalog_table: &str,
    part: &LakePart,
    schema_json: &str,
) -> Result<Vec<TransactWriteItem>, LakeError> {
    commit_parts_items(catalog_table, std::slice::from_ref(part), schema_json)
}

/// The transaction that appends `parts` (consecutive numbers n..=m, one table): head n-1 → m,
/// each part put where none is, and for n = 1 the table added to the tenant's set.
fn commit_parts_items(
    catalog_table: &str,
    parts: &[LakePart],
    schema_json: &str,
) -> Result<Vec<TransactWriteItem>, LakeError> {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return Ok(Vec::new());
    };
    let built = |e: aws_sdk_dynamodb::error::BuildError| LakeError::Invalid {
        table: first.table.clone(),
        reason: format!("the catalog write could not be built: {e}"),
    };
    let id = table_id(&first.tenant_id, &first.table);
    let head = Update::builder()
        .table_name(catalog_table)
        .set_key(Some(catalog_key(&id, HEAD_SEQ)))
        .update_expression(
            "SET last_seq = :seq, last_key = :key, #schema = :schema, updated_at = :at",
        )
        .expression_attribute_names("#schema", "schema")
        .expression_attribute_values(":seq", number(last.seq))
        .expression_attribute_values(":key", AttributeValue::S(last.key.clone()))
        .expression_attribute_values(":schema", AttributeValue::S(schema_json.to_owned()))
        .expression_attribute_values(
            ":at",
            AttributeValue::S(last.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
    let head = if first.seq == 1 {
        head.condition_expression("attribute_not_exists(last_seq)")
    } else {
        head.condition_expression("last_seq = :previous")
            .expression_attribute_values(":previous", number(first.seq - 1))
    };
    let mut items = vec![
        TransactWriteItem::builder()
            .update(head.build().map_err(built)?)
            .build(),
    ];
    for part in parts {
        let put = Put::builder()
            .table_name(catalog_table)
            .set_item(Some(part_item(part, schema_json)))
            .condition_expression("attribute_not_exists(part_seq)");
        items.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(built)?)
                .build(),
        );
    }
    if first.seq == 1 {
        let listed = Update::builder()
            .table_name(catalog_table)
            .set_key(Some(catalog_key(&tables_id(&first.tenant_id), HEAD_SEQ)))
            .update_expression("ADD tables :table")
            .expression_attribute_values(":table", AttributeValue::Ss(vec![first.table.clone()]));
        items.push(
            TransactWriteItem::builder()
                .update(listed.build().map_err(built)?)
                .build(),
        );
    }
    Ok(items)
}

fn head_from_item(table_id: &str, item: &Item) -> Result<Head, LakeError> {
    let corrupt = |reason: String| LakeError::Corrupt {
        key: format!("{table_id} head"),
        reason,
    };
    let last_seq = match item.get("last_seq") {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| corrupt(format!("last_seq {n:?} is not a sequence number")))?,
        _ => return Err(corrupt("the head item has no last_seq number".to_owned())),
    };
    let last_key = match item.get("last_key") {
        Some(AttributeValue::S(key)) => Some(key.clone()),
        _ => None,
    };
    let schema_json = match item.get("schema") {
        Some(AttributeValue::S(schema)) => Some(schema.clone()),
        _ => None,
    };
    Ok(Head {
        last_seq,
        last_key,
        schema_json,
    })
}

fn part_from_item(tenant_id: &str, table: &str, item: &Item) -> Result<LakePart, LakeError> {
    let id = table_id(tenant_id, table);
    let seq_text = match item.get("part_seq") {
        Some(AttributeValue::N(n)) => n.as_str(),
        _ => "?",
    };
    let corrupt = |reason: String| LakeError::Corrupt {
        key: format!("{id} #{seq_text}"),
        reason,
    };
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.as_str()),
        _ => Err(corrupt(format!("the catalog item has no {name} string"))),
    };
    let count = |name: &str| match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse::<u64>()
            .map_err(|_| corrupt(format!("{name} {value:?} is not a count"))),
        _ => Err(corrupt(format!("the catalog item has no {name} number"))),
    };
    let seq = count("part_seq")?;
    if seq == HEAD_SEQ {
        return Err(corrupt(
            "part_seq 0 is the table's head, not a part".to_owned(),
        ));
    }
    let created_at = text("created_at")?;
    let created_at = DateTime::parse_from_rfc3339(created_at)
        .map_err(|e| corrupt(format!("created_at {created_at:?} is not RFC 3339: {e}")))?
        .with_timezone(&Utc);
    let schema = schema_from_json(text("schema")?).map_err(|e| corrupt(format!("schema: {e}")))?;
    Ok(LakePart {
        tenant_id: tenant_id.to_owned(),
        table: table.to_owned(),
        seq,
        key: text("key")?.to_owned(),
        rows: count("rows")?,
        bytes: count("bytes")?,
        created_at,
        schema,
    })
}

/// The parts `first..=last` as queried, or what is missing: the head said `last` exists, and
/// every part up to it was committed before the head moved, so a gap is a broken catalog.
fn contiguous(
    table_id: &str,
    first: u64,
    last: u64,
    parts: Vec<LakePart>,
) -> Result<Vec<LakePart>, LakeError> {
    for (expected, part) in (first..=last).zip(&parts) {
        if part.seq != expected {
            return Err(LakeError::Corrupt {
                key: format!("{table_id} #{expected}"),
                reason: format!(
                    "the head is at part {last} but part {expected} is missing (found {} next)",
                    part.seq
                ),
            });
        }
    }
    let expected = (last + 1).saturating_sub(first) as usize;
    if parts.len() != expected {
        return Err(LakeError::Corrupt {
            key: format!("{table_id} #{}", first + parts.len() as u64),
            reason: format!(
                "the head is at part {last} but only {} of parts {first}..={last} are recorded",
                parts.len()
            ),
        });
    }
    Ok(parts)
}

fn tables_from_item(tenant_id: &str, item: &Item) -> Result<Vec<String>, LakeError> {
    match item.get("tables") {
        Some(AttributeValue::Ss(tables)) => {
            let mut tables = tables.clone();
            tables.sort();
            Ok(tables)
        }
        _ => Err(LakeError::Corrupt {
            key: tables_id(tenant_id),
            reason: "the tenant's table list has no tables string set".to_owned(),
        }),
    }
}

impl Lake for DynamoLake {
    async fn tables(&self, tenant_id: &str) -> Result<Vec<String>, LakeError> {
        validate_tenant_id(tenant_id, "")?;
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.catalog_table)
            .set_key(Some(catalog_key(&tables_id(tenant_id), HEAD_SEQ)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        match out.item {
            None => Ok(Vec::new()),
            Some(item) => tables_from_item(tenant_id, &item),
        }
    }

    async fn parts_after(
        &self,
        tenant_id: &str,
        table: &str,
        after: Option<u64>,
    ) -> Result<Vec<LakePart>, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        // The head first: every part up to it is committed, so the query below sees them all,
        // and parts committed meanwhile wait for the next call rather than arrive with a gap.
        let last = self.head(tenant_id, table).await?.last_seq;
        let first = after.unwrap_or(HEAD_SEQ) + 1;
        if first > last {
            return Ok(Vec::new());
        }
        let id = table_id(tenant_id, table);
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.catalog_table)
            .key_condition_expression("table_id = :id AND part_seq BETWEEN :first AND :last")
            .expression_attribute_values(":id", AttributeValue::S(id.clone()))
            .expression_attribute_values(":first", number(first))
            .expression_attribute_values(":last", number(last))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut parts = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
            parts.push(part_from_item(tenant_id, table, &item)?);
        }
        contiguous(&id, first, last, parts)
    }

    async fn read_part(
        &self,
        part: &LakePart,
        batch_rows: usize,
    ) -> Result<PartBatches, LakeError> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&part.key)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("s3", "GetObject", &e))?;
        let body = out.body.collect().await.map_err(|e| AwsCallError {
            service: "s3",
            operation: "GetObject",
            code: None,
            message: format!("the body of lake part {} broke off: {e}", part.key),
            http_status: None,
            retryable: true,
        })?;
        decode_part(
            &part.key,
            body.into_bytes(),
            &part.schema,
            part.rows,
            batch_rows,
        )
    }

    async fn append_part(
        &self,
        tenant_id: &str,
        table: &str,
        batches: &[RecordBatch],
    ) -> Result<LakePart, LakeError> {
        validate_table_name(table)?;
        // Encoded here, on the caller's task: parts are small, and writers that append many
        // encode on their own threads and call `append_encoded`.
        let part = encode_part(table, batches)?;
        self.append_encoded(tenant_id, table, part).await
    }

    async fn table_schema(
        &self,
        tenant_id: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        let head = self.head(tenant_id, table).await?;
        if head.last_seq == HEAD_SEQ {
            return Ok(None);
        }
        Ok(Some(
            self.part(tenant_id, table, head.last_seq).await?.schema,
        ))
    }

    async fn stage_part(
        &self,
        tenant_id: &str,
        table: &str,
        part: EncodedPart,
    ) -> Result<StagedPart, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        let key = staged_part_key(tenant_id, table, Uuid::now_v7());
        let bytes = part.bytes.len() as u64;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/vnd.apache.parquet")
            .tagging(format!("{LAKE_OBJECT_TAG}={STAGED_TAG_VALUE}"))
            .body(ByteStream::from(part.bytes))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("s3", "PutObject", &e))?;
        Ok(StagedPart {
            key,
            rows: part.rows,
            bytes,
            schema: part.schema,
        })
    }

    async fn commit_load(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
        parts: &[StagedPart],
    ) -> Result<Vec<u64>, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        validate_load_id(table, load_id)?;
        let mut manifest = self
            .record_manifest(tenant_id, table, load_id, parts)
            .await?;
        let mut lost = 0;
        let mut tagged = 0;
        while manifest.seqs.len() < manifest.keys.len() {
            if self
                .commit_chunk(tenant_id, table, load_id, &manifest, &mut tagged)
                .await?
                == Commit::Lost
            {
                lost += 1;
                if lost >= MAX_APPEND_ATTEMPTS {
                    return Err(AwsCallError {
                        service: "dynamodb",
                        operation: "TransactWriteItems",
                        code: Some("TransactionCanceledException".to_owned()),
                        message: format!(
                            "lake table {table}: load {load_id} lost the race for the next part numbers {MAX_APPEND_ATTEMPTS} times in a row; committing again continues it"
                        ),
                        http_status: None,
                        retryable: true,
                    }
                    .into());
                }
                tokio::time::sleep(race_backoff(lost)).await;
            }
            // Re-read either way: a lost answer may have committed, another commit may have.
            manifest = self
                .manifest(tenant_id, table, load_id)
                .await?
                .ok_or_else(|| LakeError::Corrupt {
                    key: load_table_id(tenant_id, table, load_id),
                    reason: "the load's manifest was withdrawn (the table's schema changed under a concurrent commit of the same load); load again".to_owned(),
                })?;
        }
        Ok(manifest.seqs)
    }

    async fn load_state(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
    ) -> Result<LoadState, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        validate_load_id(table, load_id)?;
        Ok(match self.manifest(tenant_id, table, load_id).await? {
            None => LoadState::Absent,
            Some(m) if m.seqs.len() == m.keys.len() => LoadState::Committed(m.seqs),
            Some(_) => LoadState::Pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;

    use super::*;

    fn sample_part(seq: u64) -> LakePart {
        LakePart {
            tenant_id: "acme".to_owned(),
            table: "sales".to_owned(),
            seq,
            key: format!("tenants/acme/sales/{seq:010}-x.parquet"),
            rows: 1_000,
            bytes: 52_431,
            created_at: DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456Z")
                .expect("time")
                .with_timezone(&Utc),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("price", DataType::Decimal128(12, 2), true),
            ])),
        }
    }

    fn schema_json(part: &LakePart) -> String {
        schema_to_json(&part.schema).expect("lake schema")
    }

    #[test]
    fn keys_and_ids_have_their_documented_shape() {
        let id = Uuid::parse_str("0192f0c1-0000-7000-8000-000000000001").expect("uuid");
        assert_eq!(
            part_key("acme", "sales", 42, id),
            "tenants/acme/sales/0000000042-0192f0c1-0000-7000-8000-000000000001.parquet"
        );
        assert_eq!(
            part_key("acme", "sales", 12_345_678_901, id),
            "tenants/acme/sales/12345678901-0192f0c1-0000-7000-8000-000000000001.parquet"
        );
        assert_eq!(table_id("acme", "sales"), "acme#sales");
        assert_eq!(tables_id("acme"), "acme#");
    }

    #[test]
    fn a_part_item_reads_back_as_the_part() {
        let part = sample_part(7);
        let item = part_item(&part, &schema_json(&part));
        assert_eq!(item["table_id"], AttributeValue::S("acme#sales".into()));
        assert_eq!(item["part_seq"], AttributeValue::N("7".into()));
        assert_eq!(
            item["created_at"],
            AttributeValue::S("2026-03-01T12:00:00.123456Z".into())
        );
        assert_eq!(
            item["schema"],
            AttributeValue::S(
                r#"[{"name":"id","type":"int64","nullable":false},{"name":"price","type":"decimal(12,2)","nullable":true}]"#
                    .into()
            )
        );
        assert_eq!(part_from_item("acme", "sales", &item).expect("reads"), part);
    }

    #[test]
    fn broken_part_items_are_corrupt_and_say_what_is_wrong() {
        let part = sample_part(3);
        let good = part_item(&part, &schema_json(&part));
        let cases: Vec<(&str, Option<AttributeValue>, &str)> = vec![
            ("rows", None, "no rows number"),
            (
                "rows",
                Some(AttributeValue::N("-1".into())),
                "\"-1\" is not a count",
            ),
            (
                "bytes",
                Some(AttributeValue::S("12".into())),
                "no bytes number",
            ),
            ("key", None, "no key string"),
            (
                "created_at",
                Some(AttributeValue::S("yesterday".into())),
                "not RFC 3339",
            ),
            (
                "schema",
                Some(AttributeValue::S("[]".into())),
                "at least one column",
            ),
            (
                "schema",
                Some(AttributeValue::S(
                    r#"[{"name":"a","type":"uuid","nullable":true}]"#.into(),
                )),
                "\"uuid\" is unknown",
            ),
            (
                "part_seq",
                Some(AttributeValue::N("0".into())),
                "the table's head",
            ),
        ];
        for (attribute, value, message) in cases {
            let mut item = good.clone();
            match value {
                Some(v) => item.insert(attribute.to_owned(), v),
                None => item.remove(attribute),
            };
            let error = part_from_item("acme", "sales", &item).expect_err(message);
            assert!(matches!(error, LakeError::Corrupt { .. }), "{error}");
            assert!(error.to_string().contains(message), "{attribute}: {error}");
            assert!(error.to_string().contains("acme#sales"), "{error}");
        }
    }

    #[test]
    fn the_first_append_creates_the_head_and_lists_the_table() {
        let part = sample_part(1);
        let items = commit_items("catalog", &part, &schema_json(&part)).expect("builds");
        assert_eq!(items.len(), 3);
        let head = items[0].update().expect("head update");
        assert_eq!(
            head.condition_expression(),
            Some("attribute_not_exists(last_seq)")
        );
        assert_eq!(
            head.key()["part_seq"],
            AttributeValue::N("0".into()),
            "the head is part_seq 0"
        );
        let put = items[1].put().expect("part put");
        assert_eq!(
            put.condition_expression(),
            Some("attribute_not_exists(part_seq)")
        );
        assert_eq!(put.item()["part_seq"], AttributeValue::N("1".into()));
        let listed = items[2].update().expect("tables update");
        assert_eq!(listed.key()["table_id"], AttributeValue::S("acme#".into()));
        assert_eq!(
            listed.expression_attribute_values().expect("values")[":table"],
            AttributeValue::Ss(vec!["sales".into()])
        );
    }

    #[test]
    fn a_later_append_moves_the_head_from_the_previous_number() {
        let part = sample_part(8);
        let items = commit_items("catalog", &part, &schema_json(&part)).expect("builds");
        assert_eq!(items.len(), 2, "the table is listed already");
        let head = items[0].update().expect("head update");
        assert_eq!(head.condition_expression(), Some("last_seq = :previous"));
        let values = head.expression_attribute_values().expect("values");
        assert_eq!(values[":previous"], AttributeValue::N("7".into()));
        assert_eq!(values[":seq"], AttributeValue::N("8".into()));
        assert_eq!(values[":key"], AttributeValue::S(part.key.clone()));
    }

    #[test]
    fn only_conditions_and_conflicts_count_as_a_lost_race() {
        let canceled = |codes: &[Option<&str>]| {
            let mut builder = TransactionCanceledException::builder();
            for code in codes {
                builder = builder.cancellation_reasons(
                    CancellationReason::builder()
                        .set_code(code.map(str::to_owned))
                        .build(),
                );
            }
            TransactWriteItemsError::TransactionCanceledException(builder.build())
        };
        let cases: &[(&[Option<&str>], bool)] = &[
            (&[Some("ConditionalCheckFailed"), Some("None")], true),
            (&[Some("None"), Some("ConditionalCheckFailed")], true),
            (&[Some("TransactionConflict"), Some("None")], true),
            (&[], true),
            (&[None, None], true),
            (&[Some("ValidationError"), Some("None")], false),
            (
                &[
                    Some("ConditionalCheckFailed"),
                    Some("ItemCollectionSizeLimitExceeded"),
                ],
                false,
            ),
            (&[Some("ThrottlingError")], false),
        ];
        for (codes, lost) in cases {
            assert_eq!(lost_the_race(&canceled(codes)), *lost, "{codes:?}");
        }
    }

    #[test]
    fn a_gap_in_the_parts_is_corrupt() {
        let parts = |seqs: &[u64]| seqs.iter().map(|s| sample_part(*s)).collect::<Vec<_>>();
        assert_eq!(
            contiguous("acme#sales", 3, 5, parts(&[3, 4, 5]))
                .expect("whole")
                .len(),
            3
        );
        let cases: &[(&[u64], &str)] = &[
            (&[3, 5], "part 4 is missing"),
            (&[4, 5], "part 3 is missing"),
            (&[3, 4], "only 2 of parts 3..=5"),
            (&[], "only 0 of parts 3..=5"),
        ];
        for (seqs, message) in cases {
            let error = contiguous("acme#sales", 3, 5, parts(seqs)).expect_err(message);
            assert!(error.to_string().contains(message), "{seqs:?}: {error}");
        }
    }

    #[test]
    fn heads_and_table_lists_read_or_are_corrupt() {
        let head: Item = HashMap::from([
            ("last_seq".to_owned(), AttributeValue::N("12".into())),
            ("last_key".to_owned(), AttributeValue::S("k".into())),
        ]);
        assert_eq!(
            head_from_item("acme#sales", &head).expect("reads"),
            Head {
                last_seq: 12,
                last_key: Some("k".into()),
                schema_json: None,
            }
        );
        let mut with_schema = head.clone();
        with_schema.insert("schema".to_owned(), AttributeValue::S("[]".into()));
        assert_eq!(
            head_from_item("acme#sales", &with_schema)
                .expect("reads")
                .schema_json
                .as_deref(),
            Some("[]")
        );
        let broken: Item = HashMap::from([("last_seq".to_owned(), AttributeValue::S("12".into()))]);
        assert!(head_from_item("acme#sales", &broken).is_err());
        let tables: Item = HashMap::from([(
            "tables".to_owned(),
            AttributeValue::Ss(vec!["stores".into(), "inventory".into(), "sales".into()]),
        )]);
        assert_eq!(
            tables_from_item("acme", &tables).expect("reads"),
            ["inventory", "sales", "stores"]
        );
        assert!(tables_from_item("acme", &HashMap::new()).is_err());
    }

    #[test]
    fn race_backoff_stays_short() {
        for attempt in 1..=MAX_APPEND_ATTEMPTS {
            let wait = race_backoff(attempt);
            assert!(wait >= Duration::from_millis(1) && wait <= Duration::from_millis(320));
        }
    }
}
