//! The lake: the platform's tables, behind a port so that a real warehouse can take its place
//! (docs/architecture.md, "The lake"). Our adapter keeps each table as a sequence of immutable
//! Parquet parts in the lake bucket, each recorded in the lake catalog table.

pub mod part_file;
pub mod schema;
pub mod seed;

use std::future::Future;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};

use crate::domain::export::run::PartSummary;
use crate::error::AwsCallError;
use crate::lake::part_file::EncodedPart;

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
    /// A load's parts do not extend the table's schema, which another load changed since the
    /// parts were written ([`schema::extends`]); nothing of the load is committed or recorded,
    /// so it can be parsed again against the table as it is now.
    #[error("lake table {table}: another load changed its schema first ({schema}); load again")]
    SchemaChanged { table: String, schema: String },
}

/// A part written to the lake bucket but not in the catalog: no reader sees it until a load
/// commits it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedPart {
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    pub schema: SchemaRef,
}

/// How far a load (the parts of one ingested file) got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    /// Nothing of it is recorded.
    Absent,
    /// Its parts are recorded but not all committed (a commit was cut short): committing again
    /// finishes it with the parts first recorded.
    Pending,
    /// Committed as these part numbers.
    Committed(Vec<u64>),
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

    /// The schema of the table's last part; `None` before its first.
    fn table_schema(
        &self,
        tenant_id: &str,
        table: &str,
    ) -> impl Future<Output = Result<Option<SchemaRef>, LakeError>> + Send;

    /// Writes an encoded part's object without recording it (see [`Lake::commit_load`]).
    fn stage_part(
        &self,
        tenant_id: &str,
        table: &str,
        part: EncodedPart,
    ) -> impl Future<Output = Result<StagedPart, LakeError>> + Send;

    /// Appends `parts` as the table's next parts, in order, once per `load_id`: the first
    /// call records the load's parts, and every call (a retry after a crash or a lost answer)
    /// commits what is not committed yet of the parts first recorded, ignoring the `parts` it
    /// is given. The part numbers committed, in order.
    fn commit_load(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
        parts: &[StagedPart],
    ) -> impl Future<Output = Result<Vec<u64>, LakeError>> + Send;

    fn load_state(
        &self,
        tenant_id: &str,
        table: &str,
        load_id: &str,
    ) -> impl Future<Output = Result<LoadState, LakeError>> + Send;
}

/// The longest table name: the name goes into object keys and DynamoDB keys, and is shown to
/// customers as a file name part.
pub const MAX_TABLE_NAME_LEN: usize = 63;

/// Table names are `[a-z][a-z0-9_]{0,62}`: safe in an object key, a DynamoDB key
/// (`<tenant>#<table>`, no `#`), a file name and a SQL identifier.
pub fn validate_table_name(table: &str) -> Result<(), LakeError> {
    let invalid = |reason: &str| LakeError::Invalid {
        table: table.to_owned(),
        reason: reason.to_owned(),
    };
    let mut chars = table.chars();
    match chars.next() {
        None => return Err(invalid("the name is empty; use [a-z][a-z0-9_]{0,62}")),
        Some(c) if !c.is_ascii_lowercase() => {
            return Err(invalid(
                "the name must start with a lowercase letter a-z ([a-z][a-z0-9_]{0,62})",
            ));
        }
        Some(_) => {}
    }
    if table.len() > MAX_TABLE_NAME_LEN {
        return Err(invalid(&format!(
            "the name is {} characters long; at most {MAX_TABLE_NAME_LEN} are allowed",
            table.chars().count()
        )));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(invalid(
            "the name may hold only lowercase letters a-z, digits and underscores after its first letter",
        ));
    }
    Ok(())
}

/// Tenant ids come from verified tokens; they still become a key path segment
/// (`tenants/<tenant>/…`) and the head of `<tenant>#<table>`, so `/`, `#` and control
/// characters are refused rather than allowed to make two tenants' keys meet.
pub fn validate_tenant_id(tenant_id: &str, table: &str) -> Result<(), LakeError> {
    let reason = if tenant_id.is_empty() {
        "the tenant id is empty"
    } else if tenant_id
        .chars()
        .any(|c| c == '/' || c == '#' || c.is_control())
    {
        "the tenant id may not hold '/', '#' or control characters"
    } else {
        return Ok(());
    };
    Err(LakeError::Invalid {
        table: table.to_owned(),
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_pattern() {
        let long_ok = format!("a{}", "b".repeat(62));
        let too_long = format!("a{}", "b".repeat(63));
        let cases: &[(&str, bool)] = &[
            ("sales", true),
            ("a", true),
            ("sales_2024", true),
            ("s_", true),
            (&long_ok, true),
            (&too_long, false),
            ("", false),
            ("Sales", false),
            ("1sales", false),
            ("_sales", false),
            ("sales-eu", false),
            ("sales.eu", false),
            ("sales#1", false),
            ("sales/eu", false),
            ("sales eu", false),
            (" sales", false),
            ("sales\n", false),
            ("café", false),
            ("ｓales", false),
            ("sales🛒", false),
        ];
        for (name, ok) in cases {
            let result = validate_table_name(name);
            assert_eq!(result.is_ok(), *ok, "{name:?}: {result:?}");
            if let Err(e) = result {
                assert!(matches!(e, LakeError::Invalid { .. }), "{name:?}");
                assert!(e.to_string().contains("lake table"), "{e}");
            }
        }
    }

    #[test]
    fn tenant_ids_cannot_forge_keys() {
        for (tenant, ok) in [
            ("acme", true),
            ("tenant_01-EU.x", true),
            ("Café", true),
            ("", false),
            ("a/b", false),
            ("a#b", false),
            ("a\nb", false),
            ("a\u{0}b", false),
        ] {
            assert_eq!(
                validate_tenant_id(tenant, "sales").is_ok(),
                ok,
                "{tenant:?}"
            );
        }
    }
}
