//! The runs table adapter: runs and each connector's export watermarks.
//!
//! One partition per connector (`connector_id`). Runs have sort keys `run_<UUID v7>`: the ids
//! are time-ordered, so "newest first" is a reverse Query of the `run_` range. The connector's
//! watermarks live in one more item of the partition, `watermarks`, which sorts outside that
//! range and so never appears in a listing. Each file task of a run has an item
//! `task#<run id>#<index>` and the run's count of written tasks one more, `progress#<run id>`
//! (docs/architecture.md, "Fan-out"); both sort outside the `run_` range too. Every access is
//! by key: never a Scan.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::domain::export::run::{Run, Watermarks};
use crate::domain::export::task::TaskRecord;
use crate::error::{AwsCallError, StoreError};
use crate::ports::{Page, RunStore};
pub use crate::run_id::{RUN_ID_PREFIX, is_run_id, new_run_id};

/// Sort key of the connector's watermarks item: outside the `run_` range.
pub const WATERMARKS_SORT_KEY: &str = "watermarks";
fn task_sort_key(run_id: &str, index: u32) -> String {
    format!("task#{run_id}#{index:06}")
}

fn progress_sort_key(run_id: &str) -> String {
    format!("progress#{run_id}")
}

/// DynamoDB's item size limit (400 KB, attribute names included).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

#[derive(Clone)]
pub struct DynamoRunStore {
    client: Client,
    table: String,
}

impl DynamoRunStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

type Item = HashMap<String, AttributeValue>;

fn key(connector_id: &str, run_id: &str) -> Item {
    HashMap::from([
        (
            "connector_id".to_owned(),
            AttributeValue::S(connector_id.to_owned()),
        ),
        ("run_id".to_owned(), AttributeValue::S(run_id.to_owned())),
    ])
}

/// The run as an item, refused when DynamoDB would refuse it for its size: the error says how
/// large it is and why (a plan of very many files), instead of the SDK's bare
/// `ValidationException`.
pub fn run_item(run: &Run) -> Result<Item, StoreError> {
    let item: Item = serde_dynamo::to_item(run).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let bytes = item_size(&item);
    if bytes > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge {
            what: format!(
                "run {} ({} planned files, {} written)",
                run.run_id,
                run.plan.as_ref().map_or(0, |p| p.files.len()),
                run.files.len()
            ),
            bytes,
            limit: MAX_ITEM_BYTES,
        });
    }
    Ok(item)
}

fn run_from_item(item: Item) -> Result<Run, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A task record as an item: its own fields, under the run's partition. `run_id` (the sort
/// key) is the task's key, so the record's run id is stored as `task_run_id`.
fn task_item(connector_id: &str, task: &TaskRecord) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(task).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(run_id) = item.remove("run_id") {
        item.insert("task_run_id".into(), run_id);
    }
    item.extend(key(connector_id, &task_sort_key(&task.run_id, task.index)));
    let bytes = item_size(&item);
    if bytes > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge {
            what: format!("file task {} of run {}", task.index, task.run_id),
            bytes,
            limit: MAX_ITEM_BYTES,
        });
    }
    Ok(item)
}

fn task_from_item(mut item: Item) -> Result<TaskRecord, StoreError> {
    item.remove("connector_id");
    if let Some(run_id) = item.remove("task_run_id") {
        item.insert("run_id".into(), run_id);
    }
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("file task: {e}")))
}

/// An item's size as DynamoDB counts it against the 400 KB limit: attribute names plus values
/// (strings and binaries by length, numbers about one byte per two digits plus one, each list
/// or map 3 bytes plus 1 per element).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    let number = |n: &str| n.len().div_ceil(2) + 1;
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        // A type added to the SDK later: counted as nothing rather than guessed.
        _ => 0,
    }
}

/// The watermarks item as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredWatermarks {
    connector_id: String,
    run_id: String,
    watermarks: Watermarks,
    /// Bumped by every advance; the conditional write compares it.
    watermarks_version: u64,
    /// The run whose `.DONE` moved the watermarks last.
    last_run_id: String,
}

impl DynamoRunStore {
    /// The watermarks item with its version (`None`: never advanced).
    async fn stored_watermarks(
        &self,
        connector_id: &str,
    ) -> Result<Option<StoredWatermarks>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(connector_id, WATERMARKS_SORT_KEY)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| {
                    StoreError::Corrupt(format!("watermarks of connector {connector_id}: {e}"))
                })
            })
            .transpose()
    }
}

impl RunStore for DynamoRunStore {
    async fn create(&self, run: &Run) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(run)?))
            .condition_expression("attribute_not_exists(run_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::AlreadyExists)
            }
            Err(e) => Err(AwsCallError::from_sdk("dynamodb", "PutItem", &e).into()),
        }
    }

    async fn get(&self, connector_id: &str, run_id: &str) -> Result<Option<Run>, StoreError> {
        // Only run ids: the watermarks item is not a run.
        if !run_id.starts_with(RUN_ID_PREFIX) {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(connector_id, run_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        out.item.map(run_from_item).transpose()
    }

    async fn list(
        &self,
        connector_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Run>, StoreError> {
        // One extra item tells whether another page exists, so the last page has no token.
        let wanted = limit as usize + 1;
        let paginator = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("connector_id = :c AND begins_with(run_id, :run)")
            .expression_attribute_values(":c", AttributeValue::S(connector_id.to_owned()))
            .expression_attribute_values(":run", AttributeValue::S(RUN_ID_PREFIX.to_owned()))
            .scan_index_forward(false)
            .consistent_read(true)
            .set_exclusive_start_key(after.map(|after| key(connector_id, after)))
            .into_paginator()
            .page_size(i32::try_from(wanted).unwrap_or(i32::MAX));
        let mut stream = paginator.items().send();
        let mut items = Vec::new();
        while items.len() < wanted {
            let Some(item) = stream.next().await else {
                break;
            };
            let item = item.map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
            let run_id = match item.get("run_id") {
                Some(AttributeValue::S(id)) => id.clone(),
                _ => String::new(),
            };
            // One unreadable record must not hide the connector's other runs; reading it by
            // id still reports it as corrupt.
            match run_from_item(item) {
                Ok(run) => items.push(run),
                Err(e) => {
                    tracing::error!(%connector_id, %run_id, error = %e, "skipping a run item that cannot be read")
                }
            }
        }
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| r.run_id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn update(&self, run: &Run) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(run)?))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "PutItem", &e))?;
        Ok(())
    }

    async fn watermarks(&self, connector_id: &str) -> Result<Watermarks, StoreError> {
        Ok(self
            .stored_watermarks(connector_id)
            .await?
            .map(|stored| stored.watermarks)
            .unwrap_or_default())
    }

    async fn advance_watermarks(
        &self,
        connector_id: &str,
        run_id: &str,
        expected: &Watermarks,
        next: &Watermarks,
    ) -> Result<(), StoreError> {
        // Read, compare, then write conditioned on the version read: a concurrent advance
        // between the two bumps the version and fails the write.
        let current = self.stored_watermarks(connector_id).await?;
        let (current_map, version) = match &current {
            Some(stored) => (stored.watermarks.clone(), Some(stored.watermarks_version)),
            None => (Watermarks::new(), None),
        };
        // The same run committing the same watermarks again: a finishing step redone.
        if current
            .as_ref()
            .is_some_and(|c| c.last_run_id == run_id && &c.watermarks == next)
        {
            return Ok(());
        }
        if &current_map != expected {
            return Err(StoreError::Contended);
        }
        let stored = StoredWatermarks {
            connector_id: connector_id.to_owned(),
            run_id: WATERMARKS_SORT_KEY.to_owned(),
            watermarks: next.clone(),
            watermarks_version: version.map_or(1, |v| v + 1),
            last_run_id: run_id.to_owned(),
        };
        let item: Item =
            serde_dynamo::to_item(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match version {
            None => put.condition_expression("attribute_not_exists(run_id)"),
            Some(v) => put
                .condition_expression("watermarks_version = :v")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Contended)
            }
            Err(e) => Err(AwsCallError::from_sdk("dynamodb", "PutItem", &e).into()),
        }
    }

    async fn create_tasks(
        &self,
        connector_id: &str,
        tasks: &[TaskRecord],
    ) -> Result<(), StoreError> {
        for task in tasks {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(task_item(connector_id, task)?))
                .condition_expression("attribute_not_exists(run_id)")
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(AwsCallError::from_sdk("dynamodb", "PutItem", &e).into()),
            }
        }
        Ok(())
    }

    async fn tasks(&self, connector_id: &str, run_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let mut stream = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("connector_id = :c AND begins_with(run_id, :task)")
            .expression_attribute_values(":c", AttributeValue::S(connector_id.to_owned()))
            .expression_attribute_values(":task", AttributeValue::S(format!("task#{run_id}#")))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut tasks = Vec::new();
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
            tasks.push(task_from_item(item)?);
        }
        Ok(tasks)
    }

    async fn take_task(
        &self,
        connector_id: &str,
        run_id: &str,
        index: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(connector_id, &task_sort_key(run_id, index))))
            .update_expression(
                "SET #state = :writing, lease_until = :lease, updated_at = :at ADD attempts :one",
            )
            .condition_expression(
                "attribute_exists(run_id) AND #state <> :written AND lease_until <= :now",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":writing", AttributeValue::S("writing".into()))
            .expression_attribute_values(":written", AttributeValue::S("written".into()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":at",
                AttributeValue::S(
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                ),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.map(task_from_item).transpose(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(AwsCallError::from_sdk("dynamodb", "UpdateItem", &e).into()),
        }
    }

    async fn save_task(&self, connector_id: &str, task: &TaskRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(task_item(connector_id, task)?))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "PutItem", &e))?;
        Ok(())
    }

    async fn count_written(
        &self,
        connector_id: &str,
        run_id: &str,
        index: u32,
    ) -> Result<(u32, bool), StoreError> {
        let progress = key(connector_id, &progress_sort_key(run_id));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(progress.clone()))
            .update_expression("ADD written :index, written_count :one SET expires_at = if_not_exists(expires_at, :expires)")
            .condition_expression("attribute_not_exists(written) OR NOT contains(written, :n)")
            .expression_attribute_values(":index", AttributeValue::Ns(vec![index.to_string()]))
            .expression_attribute_values(":n", AttributeValue::N(index.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N(
                    (chrono::Utc::now()
                        + chrono::Duration::days(crate::domain::export::run::RUN_RETENTION_DAYS))
                    .timestamp()
                    .to_string(),
                ),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        let (attributes, counted) = match result {
            Ok(out) => (out.attributes, true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(progress))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
                (out.item, false)
            }
            Err(e) => return Err(AwsCallError::from_sdk("dynamodb", "UpdateItem", &e).into()),
        };
        let count = match attributes.as_ref().and_then(|a| a.get("written_count")) {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("written_count {n:?} of run {run_id}")))?,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "run {run_id} has no written_count"
                )));
            }
        };
        Ok((count, counted))
    }
}

mod claims;

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::export::run::{
        FileTask, RunPlan, RunStatus, RunTrigger, TablePlan, WrittenFile,
    };

    #[test]
    fn run_ids_are_time_ordered_and_recognised() {
        let first = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_run_id();
        assert!(first < second, "{first} then {second}");
        assert!(is_run_id(&first) && is_run_id(&second));
        let cases = [
            ("run_0193abcdef0123456789abcdef012345", true),
            ("run_0193ABCDEF0123456789ABCDEF012345", false),
            ("run_0193abcdef0123456789abcdef01234", false),
            ("run_0193abcdef0123456789abcdef0123456", false),
            ("run_0193abcdef0123456789abcdef01234g", false),
            ("watermarks", false),
            ("con_0193abcdef0123456789abcdef012345", false),
            ("run_", false),
            ("", false),
        ];
        for (id, expected) in cases {
            assert_eq!(is_run_id(id), expected, "{id:?}");
        }
        assert!(
            WATERMARKS_SORT_KEY > "run_ffffffffffffffffffffffffffffffff"
                && !WATERMARKS_SORT_KEY.starts_with(RUN_ID_PREFIX),
            "the watermarks item sorts outside the run_ range"
        );
    }

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        let item: Item = HashMap::from([
            ("ab".to_owned(), AttributeValue::S("héllo".into())),
            ("n".to_owned(), AttributeValue::N("12345".into())),
            ("t".to_owned(), AttributeValue::Bool(true)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![AttributeValue::S("xy".into())]),
            ),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "k".to_owned(),
                    AttributeValue::S("v".into()),
                )])),
            ),
        ]);
        // ab:2+6, n:1+4, t:1+1, l:1+3+1+2, m:1+3+1+1+1
        assert_eq!(item_size(&item), 8 + 5 + 2 + 7 + 7);
    }

    /// A plan of `files` tasks, every one written, with keys as long as the default template
    /// makes them under a typical prefix.
    fn big_run(files: usize) -> Run {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap();
        let mut run = Run::queued(
            "acme",
            "con_019ab3c4d5e67f808192a3b4c5d6e7f8",
            "run_019ab3c4d5e67f808192a3b4c5d6e7f8".into(),
            RunTrigger::Schedule,
            at,
        );
        let key = |i: usize| {
            format!(
                "platform/exports/nightly-warehouse-export/orders/2026/11/24/orders_20261124T020000Z_{i:05}.csv.gz"
            )
        };
        run.status = RunStatus::Succeeded;
        run.started_at = Some(at);
        run.finished_at = Some(at);
        run.plan = Some(RunPlan {
            loaded_at: at,
            tables: vec![TablePlan {
                table: "orders".into(),
                columns: None,
                after_seq: Some(1_000),
                through_seq: Some(1_000 + files as u64 * 4),
            }],
            files: (0..files)
                .map(|i| FileTask {
                    table: "orders".into(),
                    part_number: i as u32 + 1,
                    key: key(i + 1),
                    parts: Some((1_001 + i as u64 * 4, 1_004 + i as u64 * 4)),
                    rows: 1_250_000,
                    lake_bytes: 268_435_456,
                })
                .collect(),
            manifest_key: "platform/exports/nightly-warehouse-export/_manifests/run.json".into(),
            done_key: Some("platform/exports/nightly-warehouse-export/_manifests/run.DONE".into()),
        });
        run.files = (0..files)
            .map(|i| WrittenFile {
                key: key(i + 1),
                table: "orders".into(),
                rows: 1_250_000,
                bytes: 98_765_432,
                sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            })
            .collect();
        run
    }

    /// Measures what one file costs in a run item (planned and written, with 100-character
    /// keys) and so how many files a run can hold; the limit is refused with a clear error.
    #[test]
    fn item_size_per_file_and_the_limit() {
        let size = |files| item_size(&serde_dynamo::to_item(big_run(files)).unwrap());
        let base = size(0);
        let per_file = (size(100) - base) / 100;
        let fit = (MAX_ITEM_BYTES - base) / per_file;
        println!("run item: {base} bytes + {per_file} bytes per file; {fit} files fit");
        assert!((350..=450).contains(&per_file), "{per_file} bytes per file");
        assert!(fit >= 900, "{fit} files fit");

        // Larger part numbers and sequences take a few more bytes: 2% margin either side.
        assert!(run_item(&big_run(fit - fit / 50)).is_ok());
        match run_item(&big_run(fit + fit / 50)) {
            Err(StoreError::TooLarge { what, bytes, limit }) => {
                assert!(bytes > limit && limit == MAX_ITEM_BYTES);
                assert!(what.contains(" planned files, "), "{what}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn runs_round_trip_through_items() {
        let run = big_run(3);
        let item = run_item(&run).unwrap();
        assert_eq!(
            item.get("connector_id"),
            Some(&AttributeValue::S(run.connector_id.clone()))
        );
        assert_eq!(
            item.get("run_id"),
            Some(&AttributeValue::S(run.run_id.clone()))
        );
        assert!(
            matches!(item.get("expires_at"), Some(AttributeValue::N(_))),
            "TTL needs a number"
        );
        assert_eq!(run_from_item(item).unwrap(), run);

        let mut broken = run_item(&run).unwrap();
        broken.insert("status".into(), AttributeValue::S("exploded".into()));
        assert!(matches!(run_from_item(broken), Err(StoreError::Corrupt(_))));
    }
}
