//! The lake: the platform's tables, behind a port so that a real warehouse can take its place
//! (docs/architecture.md, "The lake"). Our adapter keeps each table as a sequence of immutable
//! Parquet parts in the lake bucket, each recorded in the lake catalog table.

pub mod seed;

use std::future::Future;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};

use crate::domain::export::run::PartSummary;
use crate::error::AwsCallError;

/// One immutable part of a lake table, as the catalog records it.
#[derive(Debug, Clone, PartialEq)]
pub struct LakePart {
    pub tenant_id: String,
    pub table: String,
    /// 1, 2, 3… within the table, in the order parts were appended.
    pub seq: u64,
    /// Object key of the Parquet file in the lake bucket.
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    pub schema: SchemaRef,
}

impl LakePart {
    /// What the export planner needs of a part.
    pub fn summary(&self) -> PartSummary {
        PartSummary {
            seq: self.seq,
            rows: self.rows,
            bytes: self.bytes,
            created_at: self.created_at,
            schema_id: schema_id(&self.schema),
        }
    }
}

/// The same for two schemas with the same columns (names, types, nullability) in the same order.
pub fn schema_id(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}",
                f.name(),
                f.data_type(),
                if f.is_nullable() { "null" } else { "notnull" }
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    Aws(#[from] AwsCallError),
    /// A catalog item or part file that does not read as what the catalog says.
    #[error("lake part {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("lake table {table}: {reason}")]
    Invalid { table: String, reason: String },
}

/// The batches of one part, decoded as they are iterated (the part's bytes are already fetched).
pub type PartBatches = Box<dyn Iterator<Item = Result<RecordBatch, LakeError>> + Send>;

/// The platform's tables of one tenant: list, read and append immutable parts.
pub trait Lake: Send + Sync {
    /// The tenant's tables, by name, sorted.
    fn tables(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, LakeError>> + Send;

    /// The parts of `table` with a sequence greater than `after` (all of them for `None`),
    /// in sequence order.
    fn parts_after(
        &self,
        tenant_id: &str,
        table: &str,
        after: Option<u64>,
    ) -> impl Future<Output = Result<Vec<LakePart>, LakeError>> + Send;

    /// Fetches a part and returns its record batches (at most `batch_rows` rows each).
    fn read_part(
        &self,
        part: &LakePart,
        batch_rows: usize,
    ) -> impl Future<Output = Result<PartBatches, LakeError>> + Send;

    /// Writes `batches` (one schema) as the table's next part and records it in the catalog.
    fn append_part(
        &self,
        tenant_id: &str,
        table: &str,
        batches: &[RecordBatch],
    ) -> impl Future<Output = Result<LakePart, LakeError>> + Send;
}
