//! In-memory lake: parts kept as the batches appended, numbered as the adapter numbers them,
//! with injectable faults (a part's read fails, before or part-way through its batches; appends
//! fail) and a log of reads, for the export engine's unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use arrow_array::RecordBatch;
use chrono::{DateTime, Utc};

use crate::error::AwsCallError;
use arrow_schema::SchemaRef;

use crate::lake::part_file::{EncodedPart, decode_part};
use crate::lake::schema::{extends, lake_schema, schema_to_json};
use crate::lake::{
    Lake, LakeError, LakePart, LoadState, PartBatches, StagedPart, schema_id, validate_table_name,
    validate_tenant_id,
};

/// How a read of a part fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFault {
    /// `read_part` itself fails (GetObject refused).
    Fetch,
    /// `read_part` succeeds and the iterator fails after this many batches (the body broke off
    /// mid-file, or a row group does not decode).
    AfterBatches(usize),
}

#[derive(Debug, Clone)]
struct StoredPart {
    part: LakePart,
    batches: Vec<RecordBatch>,
}

#[derive(Debug, Clone)]
struct PendingFault {
    fault: ReadFault,
    /// `None`: every read fails.
    remaining: Option<u32>,
}

/// A load's parts as first recorded, and their numbers once committed.
type RecordedLoad = (Vec<StagedPart>, Option<Vec<u64>>);

#[derive(Default)]
struct State {
    /// (tenant, table) → parts in sequence order.
    tables: BTreeMap<(String, String), Vec<StoredPart>>,
    /// (tenant, table, seq) → fault.
    read_faults: BTreeMap<(String, String, u64), PendingFault>,
    failing_appends: u32,
    reads: Vec<(String, String, u64)>,
    /// Staged objects by key: their batches, decoded from the bytes written.
    staged: BTreeMap<String, Vec<RecordBatch>>,
    /// (tenant, table, load id) → the load's parts as first recorded, and their numbers once
    /// committed.
    loads: BTreeMap<(String, String, String), RecordedLoad>,
    /// Commits that are applied and then answer with an error (a lost answer).
    lost_commit_answers: u32,
    failing_stages: u32,
    /// Staged parts are checked and counted but their rows are not kept (loads larger than
    /// the test's memory).
    forget_rows: bool,
    /// Parts another load commits just before the next `commit_load` (a race it loses).
    commit_first: Vec<(String, String, Vec<RecordBatch>)>,
}

#[derive(Default)]
pub struct MemoryLake {
    state: Mutex<State>,
}

/// A retryable server fault, as S3 or DynamoDB would answer it.
pub fn injected_fault(service: &'static str, operation: &'static str) -> LakeError {
    LakeError::Aws(AwsCallError {
        service,
        operation,
        code: Some("InternalError".to_owned()),
        message: "injected fault".to_owned(),
        http_status: Some(500),
        retryable: true,
    })
}

impl MemoryLake {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// Appends a part with the given creation time (backfill windows, part ages).
    pub fn append_at(
        &self,
        tenant_id: &str,
        table: &str,
        batches: &[RecordBatch],
        created_at: DateTime<Utc>,
    ) -> Result<LakePart, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        let invalid = |reason: String| LakeError::Invalid {
            table: table.to_owned(),
            reason,
        };
        let first = batches
            .first()
            .ok_or_else(|| invalid("a part needs at least one batch".to_owned()))?;
        let schema = lake_schema(&first.schema()).map_err(|e| invalid(e.to_string()))?;
        for batch in batches {
            let other = lake_schema(&batch.schema()).map_err(|e| invalid(e.to_string()))?;
            if schema_id(&other) != schema_id(&schema) {
                return Err(invalid("one part holds one schema".to_owned()));
            }
        }
        let mut state = self.state();
        if state.failing_appends > 0 {
            state.failing_appends -= 1;
            return Err(injected_fault("dynamodb", "TransactWriteItems"));
        }
        let parts = state
            .tables
            .entry((tenant_id.to_owned(), table.to_owned()))
            .or_default();
        let seq = parts.len() as u64 + 1;
        let part = LakePart {
            tenant_id: tenant_id.to_owned(),
            table: table.to_owned(),
            seq,
            key: format!("tenants/{tenant_id}/{table}/{seq:010}-memory.parquet"),
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            bytes: batches
                .iter()
                .map(|b| b.get_array_memory_size() as u64)
                .sum(),
            created_at,
            schema,
        };
        parts.push(StoredPart {
            part: part.clone(),
            batches: batches.to_vec(),
        });
        Ok(part)
    }

    /// The next `times` reads of part `seq` of `table` fail as `fault` (`None`: every read).
    pub fn fail_read(
        &self,
        tenant_id: &str,
        table: &str,
        seq: u64,
        fault: ReadFault,
        times: Option<u32>,
    ) {
        self.state().read_faults.insert(
            (tenant_id.to_owned(), table.to_owned(), seq),
            PendingFault {
                fault,
                remaining: times,
            },
        );
    }

    /// The next `times` appends fail with a retryable fault and record nothing.
    pub fn fail_appends(&self, times: u32) {
        self.state().failing_appends = times;
    }

    /// The next `times` load commits are applied but answer with a retryable error, as when
    /// the answer of a committed transaction is lost.
    pub fn lose_commit_answers(&self, times: u32) {
        self.state().lost_commit_answers = times;
    }

    /// The next `times` stagings fail with a retryable fault (PutObject refused).
    pub fn fail_stages(&self, times: u32) {
        self.state().failing_stages = times;
    }

    /// Another load commits `batches` as a part of the table right before the next
    /// `commit_load` (one such part per call, in the order given): the race a load loses when
    /// two files of a table load at once.
    pub fn commit_first(&self, tenant_id: &str, table: &str, batches: Vec<RecordBatch>) {
        self.state()
            .commit_first
            .push((tenant_id.to_owned(), table.to_owned(), batches));
    }

    /// Keeps no rows of the parts staged from now on: each part is still decoded whole (so a
    /// corrupt one fails as before) and counted, but reads of it find no batches.
    pub fn forget_rows(&self) {
        self.state().forget_rows = true;
    }

    /// Objects staged so far (committed or not).
    pub fn staged_keys(&self) -> Vec<String> {
        self.state().staged.keys().cloned().collect()
    }

    /// Every row of a table, in part order.
    pub fn all_batches(&self, tenant_id: &str, table: &str) -> Vec<RecordBatch> {
        self.state()
            .tables
            .get(&(tenant_id.to_owned(), table.to_owned()))
            .map(|parts| parts.iter().flat_map(|p| p.batches.clone()).collect())
            .unwrap_or_default()
    }

    /// Every `read_part` so far as (tenant, table, seq), in call order.
    pub fn reads(&self) -> Vec<(String, String, u64)> {
        self.state().reads.clone()
    }

    /// The batches of a part exactly as appended.
    pub fn batches(&self, tenant_id: &str, table: &str, seq: u64) -> Option<Vec<RecordBatch>> {
        self.state()
            .tables
            .get(&(tenant_id.to_owned(), table.to_owned()))
            .and_then(|parts| parts.get(seq.checked_sub(1)? as usize))
            .map(|stored| stored.batches.clone())
    }

    fn take_fault(&self, part: &LakePart) -> Option<ReadFault> {
        let mut state = self.state();
        let key = (part.tenant_id.clone(), part.table.clone(), part.seq);
        let pending = state.read_faults.get_mut(&key)?;
        let fault = pending.fault;
        match &mut pending.remaining {
            None => {}
            Some(0) => {
                state.read_faults.remove(&key);
                return None;
            }
            Some(remaining) => {
                *remaining -= 1;
                if *remaining == 0 {
                    state.read_faults.remove(&key);
                }
            }
        }
        Some(fault)
    }
}

/// `batches` re-cut into batches of at most `batch_rows` rows, as a Parquet reader would.
fn rebatch(batches: &[RecordBatch], batch_rows: usize) -> Vec<RecordBatch> {
    let batch_rows = batch_rows.max(1);
    batches
        .iter()
        .flat_map(|batch| {
            (0..batch.num_rows())
                .step_by(batch_rows)
                .map(move |start| batch.slice(start, batch_rows.min(batch.num_rows() - start)))
        })
        .collect()
}

impl Lake for MemoryLake {
    async fn tables(&self, tenant_id: &str) -> Result<Vec<String>, LakeError> {
        validate_tenant_id(tenant_id, "")?;
        Ok(self
            .state()
            .tables
            .keys()
            .filter(|(tenant, _)| tenant == tenant_id)
            .map(|(_, table)| table.clone())
            .collect())
    }

    async fn parts_after(
        &self,
        tenant_id: &str,
        table: &str,
        after: Option<u64>,
    ) -> Result<Vec<LakePart>, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        let after = after.unwrap_or(0);
        Ok(self
            .state()
            .tables
            .get(&(tenant_id.to_owned(), table.to_owned()))
            .map(|parts| {
                parts
                    .iter()
                    .filter(|stored| stored.part.seq > after)
                    .map(|stored| stored.part.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn read_part(
        &self,
        part: &LakePart,
        batch_rows: usize,
    ) -> Result<PartBatches, LakeError> {
        self.state()
            .reads
            .push((part.tenant_id.clone(), part.table.clone(), part.seq));
        let fault = self.take_fault(part);
        if fault == Some(ReadFault::Fetch) {
            return Err(injected_fault("s3", "GetObject"));
        }
        let batches = self
            .batches(&part.tenant_id, &part.table, part.seq)
            .ok_or_else(|| {
                LakeError::Aws(AwsCallError {
                    service: "s3",
                    operation: "GetObject",
                    code: Some("NoSuchKey".to_owned()),
                    message: format!("no lake part {}", part.key),
                    http_status: Some(404),
                    retryable: false,
                })
            })?;
        let batches = rebatch(&batches, batch_rows);
        let fail_after = match fault {
            Some(ReadFault::AfterBatches(n)) => Some(n),
            _ => None,
        };
        let mut results: Vec<Result<RecordBatch, LakeError>> =
            batches.into_iter().map(Ok).collect();
        if let Some(n) = fail_after {
            results.truncate(n);
            results.push(Err(injected_fault("s3", "GetObject")));
        }
        Ok(Box::new(results.into_iter()))
    }

    async fn append_part(
        &self,
        tenant_id: &str,
        table: &str,
        batches: &[RecordBatch],
    ) -> Result<LakePart, LakeError> {
        self.append_at(tenant_id, table, batches, Utc::now())
    }

    async fn table_schema(
        &self,
        tenant_id: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        Ok(self
            .state()
            .tables
            .get(&(tenant_id.to_owned(), table.to_owned()))
            .and_then(|parts| parts.last())
            .map(|stored| stored.part.schema.clone()))
    }

    async fn stage_part(
        &self,
        tenant_id: &str,
        table: &str,
        part: EncodedPart,
    ) -> Result<StagedPart, LakeError> {
        validate_table_name(table)?;
        validate_tenant_id(tenant_id, table)?;
        {
            let mut state = self.state();
            if state.failing_stages > 0 {
                state.failing_stages -= 1;
                return Err(injected_fault("s3", "PutObject"));
            }
        }
        let key = format!(
            "tenants/{tenant_id}/{table}/staged-{}.parquet",
            uuid::Uuid::new_v4()
        );
        let keep_rows = !self.state().forget_rows;
        let mut batches = Vec::new();
        for batch in decode_part(&key, part.bytes.clone(), &part.schema, part.rows, 8192)? {
            let batch = batch?;
            if keep_rows {
                batches.push(batch);
            }
        }
        self.state().staged.insert(key.clone(), batches);
        Ok(StagedPart {
            key,
            rows: part.rows,
            bytes: part.bytes.len() as u64,
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
        let id = (tenant_id.to_owned(), table.to_owned(), load_id.to_owned());
        let racing = {
            let mut state = self.state();
            (!state.commit_first.is_empty()).then(|| state.commit_first.remove(0))
        };
        if let Some((tenant, table, batches)) = racing {
            self.append_at(&tenant, &table, &batches, Utc::now())?;
        }
        let mut state = self.state();
        if state.failing_appends > 0 {
            state.failing_appends -= 1;
            return Err(injected_fault("dynamodb", "TransactWriteItems"));
        }
        let (recorded, committed) = state
            .loads
            .entry(id.clone())
            .or_insert_with(|| (parts.to_vec(), None))
            .clone();
        if let Some(seqs) = committed {
            return Ok(seqs);
        }
        if recorded.is_empty() {
            return Err(LakeError::Invalid {
                table: table.to_owned(),
                reason: format!("load {load_id} has no part to commit"),
            });
        }
        // As the adapter: the first part must extend the table's schema, or the load is
        // withdrawn to be parsed again.
        let table_schema = state
            .tables
            .get(&(tenant_id.to_owned(), table.to_owned()))
            .and_then(|parts| parts.last())
            .map(|last| last.part.schema.clone());
        if let Some(table_schema) = table_schema
            && !extends(&table_schema, &recorded[0].schema)
        {
            state.loads.remove(&id);
            return Err(LakeError::SchemaChanged {
                table: table.to_owned(),
                schema: schema_to_json(&table_schema).unwrap_or_default(),
            });
        }
        let mut seqs = Vec::new();
        for staged in &recorded {
            let batches =
                state
                    .staged
                    .get(&staged.key)
                    .cloned()
                    .ok_or_else(|| LakeError::Corrupt {
                        key: staged.key.clone(),
                        reason: "the staged object is missing".to_owned(),
                    })?;
            let parts = state
                .tables
                .entry((tenant_id.to_owned(), table.to_owned()))
                .or_default();
            let seq = parts.len() as u64 + 1;
            parts.push(StoredPart {
                part: LakePart {
                    tenant_id: tenant_id.to_owned(),
                    table: table.to_owned(),
                    seq,
                    key: staged.key.clone(),
                    rows: staged.rows,
                    bytes: staged.bytes,
                    created_at: Utc::now(),
                    schema: staged.schema.clone(),
                },
                batches,
            });
            seqs.push(seq);
        }
        state.loads.insert(id, (recorded, Some(seqs.clone())));
        if state.lost_commit_answers > 0 {
            state.lost_commit_answers -= 1;
            return Err(injected_fault("dynamodb", "TransactWriteItems"));
        }
        Ok(seqs)
    }

    async fn load_state(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
    ) -> Result<LoadState, LakeError> {
        let id = (tenant_id.to_owned(), table.to_owned(), load_id.to_owned());
        Ok(match self.state().loads.get(&id) {
            None => LoadState::Absent,
            Some((_, None)) => LoadState::Pending,
            Some((_, Some(seqs))) => LoadState::Committed(seqs.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::seed::{self, SeedTable};

    fn rows_of(batches: PartBatches) -> Vec<Result<usize, String>> {
        batches
            .map(|b| b.map(|b| b.num_rows()).map_err(|e| e.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn parts_are_numbered_and_listed_like_the_adapter() {
        let lake = MemoryLake::new();
        let sales = seed::batch(SeedTable::Sales, 1, 0, 10);
        let stores = seed::batch(SeedTable::Stores, 1, 0, 4);
        for _ in 0..3 {
            lake.append_part("acme", "sales", std::slice::from_ref(&sales))
                .await
                .expect("append");
        }
        lake.append_part("acme", "stores", &[stores])
            .await
            .expect("append");
        lake.append_part(
            "other",
            "products",
            &[seed::batch(SeedTable::Products, 1, 0, 1)],
        )
        .await
        .expect("append");
        assert_eq!(
            lake.tables("acme").await.expect("tables"),
            ["sales", "stores"]
        );
        let seqs = |parts: Vec<LakePart>| parts.iter().map(|p| p.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(
                lake.parts_after("acme", "sales", None)
                    .await
                    .expect("parts")
            ),
            [1, 2, 3]
        );
        assert_eq!(
            seqs(
                lake.parts_after("acme", "sales", Some(1))
                    .await
                    .expect("parts")
            ),
            [2, 3]
        );
        assert!(
            lake.parts_after("acme", "sales", Some(3))
                .await
                .expect("parts")
                .is_empty()
        );
        assert!(
            lake.parts_after("acme", "nothing", None)
                .await
                .expect("parts")
                .is_empty()
        );
        let error = lake
            .parts_after("acme", "Sales", None)
            .await
            .expect_err("bad name");
        assert!(matches!(error, LakeError::Invalid { .. }));
        let error = lake
            .append_part("acme", "9x", &[sales])
            .await
            .expect_err("bad name");
        assert!(matches!(error, LakeError::Invalid { .. }));
    }

    #[tokio::test]
    async fn reads_cut_batches_and_faults_fire_as_asked() {
        let lake = MemoryLake::new();
        let part = lake
            .append_part(
                "acme",
                "sales",
                &[
                    seed::batch(SeedTable::Sales, 1, 0, 25),
                    seed::batch(SeedTable::Sales, 1, 25, 5),
                ],
            )
            .await
            .expect("append");
        assert_eq!(part.rows, 30);
        let read = |n| lake.read_part(&part, n);
        assert_eq!(
            rows_of(read(10).await.expect("read")),
            [Ok(10), Ok(10), Ok(5), Ok(5)]
        );

        lake.fail_read("acme", "sales", 1, ReadFault::Fetch, Some(1));
        assert!(read(10).await.is_err());
        assert!(read(10).await.is_ok(), "one failure only");

        lake.fail_read("acme", "sales", 1, ReadFault::AfterBatches(1), None);
        for _ in 0..2 {
            let rows = rows_of(read(100).await.expect("opens"));
            assert_eq!(rows.len(), 2);
            assert_eq!(rows[0], Ok(25));
            assert!(rows[1].as_ref().is_err_and(|e| e.contains("injected")));
        }
        assert_eq!(lake.reads().len(), 5);

        lake.fail_appends(1);
        let batch = seed::batch(SeedTable::Sales, 1, 0, 1);
        assert!(
            lake.append_part("acme", "sales", std::slice::from_ref(&batch))
                .await
                .is_err()
        );
        let next = lake
            .append_part("acme", "sales", &[batch])
            .await
            .expect("append");
        assert_eq!(next.seq, 2, "a failed append takes no number");
    }
}
