//! The connector as stored: one item of the connectors table (docs/dynamodb.md). The API's view
//! of it lives in the `connector-api` function.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::key_template::KeyTemplate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Export,
    Ingest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorStatus {
    /// Created or changed where it matters (bucket, prefix, region, auth); never run.
    PendingValidation,
    Active,
    /// The last validation failed; its checks say why.
    Failed,
    /// Was active; a run found something that rotted (credentials, challenge file).
    NeedsAttention,
}

/// How a run obtains credentials for the customer's bucket (docs/architecture.md,
/// "Credentials, per auth mode").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Auth {
    Role {
        role_arn: String,
    },
    WebIdentity {
        role_arn: String,
    },
    /// The key pair lives in Secrets Manager; only its ARN and a hint of the key id are kept here.
    AccessKey {
        secret_arn: String,
        access_key_id_hint: String,
    },
    BucketPolicy,
}

impl Auth {
    pub fn mode(&self) -> AuthMode {
        match self {
            Auth::Role { .. } => AuthMode::Role,
            Auth::WebIdentity { .. } => AuthMode::WebIdentity,
            Auth::AccessKey { .. } => AuthMode::AccessKey,
            Auth::BucketPolicy => AuthMode::BucketPolicy,
        }
    }

    pub fn secret_arn(&self) -> Option<&str> {
        match self {
            Auth::AccessKey { secret_arn, .. } => Some(secret_arn),
            _ => None,
        }
    }

    pub fn role_arn(&self) -> Option<&str> {
        match self {
            Auth::Role { role_arn } | Auth::WebIdentity { role_arn } => Some(role_arn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Role,
    WebIdentity,
    AccessKey,
    BucketPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    Csv,
    Tsv,
    Psv,
    Jsonl,
    Parquet,
}

impl FormatKind {
    pub fn is_delimited(self) -> bool {
        matches!(self, FormatKind::Csv | FormatKind::Tsv | FormatKind::Psv)
    }

    pub fn default_delimiter(self) -> Option<char> {
        match self {
            FormatKind::Csv => Some(','),
            FormatKind::Tsv => Some('\t'),
            FormatKind::Psv => Some('|'),
            FormatKind::Jsonl | FormatKind::Parquet => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            FormatKind::Csv => "csv",
            FormatKind::Tsv => "tsv",
            FormatKind::Psv => "psv",
            FormatKind::Jsonl => "jsonl",
            FormatKind::Parquet => "parquet",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuoteMode {
    All,
    NonNull,
    Necessary,
    NonNumeric,
    Never,
}

/// Delimited-text settings exist only for csv/tsv/psv; `None` everywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFormat {
    #[serde(rename = "type")]
    pub kind: FormatKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<QuoteMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_char: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape_char: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportCompression {
    None,
    Gzip,
    Zstd,
    Zip,
    Tar,
    Tgz,
}

impl ExportCompression {
    pub fn extension_suffix(self) -> &'static str {
        match self {
            ExportCompression::None => "",
            ExportCompression::Gzip => ".gz",
            ExportCompression::Zstd => ".zst",
            ExportCompression::Zip => ".zip",
            ExportCompression::Tar => ".tar",
            ExportCompression::Tgz => ".tar.gz",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestCompression {
    /// Decided per file from its extension and magic bytes.
    Auto,
    None,
    Gzip,
    Zstd,
    Zip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseMode {
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    AwsKms,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub sse: SseMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyExportPolicy {
    /// Write nothing for a table with no new rows.
    Skip,
    /// Write a file with only the header (or an empty JSONL/Parquet file) and list it in the manifest.
    EmptyFile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSelection {
    pub name: String,
    /// `None` exports every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOptions {
    pub format: FileFormat,
    pub compression: ExportCompression,
    pub encryption: Encryption,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgp_public_key: Option<String>,
    pub key_template: String,
    /// Empty exports every table of the tenant.
    #[serde(default)]
    pub tables: Vec<TableSelection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_connector_id_column: Option<String>,
    pub backfill_days: u32,
    pub empty_export: EmptyExportPolicy,
    pub max_file_size_mb: u64,
}

impl IngestOptions {
    /// The success and failed folders that are set: where moved files go.
    pub fn move_dirs(&self) -> Vec<&str> {
        [self.success_dir.as_deref(), self.failed_dir.as_deref()]
            .into_iter()
            .flatten()
            .collect()
    }
}

impl ExportOptions {
    /// File extension of exported objects, e.g. `csv.gz` (`.pgp` when encrypted for the customer).
    pub fn file_extension(&self) -> String {
        let mut ext = format!(
            "{}{}",
            self.format.kind.extension(),
            self.compression.extension_suffix()
        );
        if self.pgp_public_key.is_some() {
            ext.push_str(".pgp");
        }
        ext
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOptions {
    /// Platform table the files feed.
    pub table: String,
    pub format: FileFormat,
    pub compression: IngestCompression,
    /// Where good files are moved; `None` deletes them once ingested (docs/architecture.md,
    /// "Export and ingest").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_dir: Option<String>,
    /// Where bad files are moved; `None` leaves them in the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_dir: Option<String>,
}

/// A connector as stored in the connectors table (one item, keyed by tenant and id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub tenant_id: String,
    pub connector_id: String,
    pub name: String,
    pub direction: Direction,
    pub bucket: String,
    pub region: String,
    /// "" (bucket root) or a folder ending in `/`.
    pub prefix: String,
    pub auth: Auth,
    /// Generated by us, never changed: the customer's trust policy pins it.
    pub external_id: String,
    /// Name of the empty file the customer uploads at the prefix to prove ownership.
    pub challenge_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<IngestOptions>,
    pub status: ConnectorStatus,
    /// Last validation result, as returned by the validate endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<DateTime<Utc>>,
    /// Sparse scheduling index (`by-due`): present only while the connector can run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    /// Optimistic-concurrency counter, bumped by every write.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Number of partitions of the `by-due` index; a tick queries each. Spreads hot writes when many
/// connectors share a schedule slot.
pub const DUE_SHARDS: u32 = 8;

impl Connector {
    /// Which way data flows. Callers use this and the two accessors below rather than the
    /// stored fields, so the representation can change behind them.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The export settings of an export connector; `None` for ingest.
    pub fn export_options(&self) -> Option<&ExportOptions> {
        self.export
            .as_ref()
            .filter(|_| self.direction == Direction::Export)
    }

    /// The ingest settings of an ingest connector; `None` for export.
    pub fn ingest_options(&self) -> Option<&IngestOptions> {
        self.ingest
            .as_ref()
            .filter(|_| self.direction == Direction::Ingest)
    }

    /// Keeps the sparse `by-due` index attributes in step with status and schedule: only active
    /// export connectors with a next run are visible to the scheduler.
    pub fn refresh_due_index(&mut self) {
        let schedulable = self.direction == Direction::Export
            && self.status == ConnectorStatus::Active
            && self.next_run_at.is_some();
        if schedulable {
            self.due_shard = Some(due_shard_for(&self.connector_id));
            self.due_at = self.next_run_at.map(|t| t.timestamp());
        } else {
            self.due_shard = None;
            self.due_at = None;
        }
    }

    /// Full key of the challenge file in the customer's bucket.
    pub fn challenge_key(&self) -> String {
        format!("{}{}", self.prefix, self.challenge_file)
    }

    /// Objects the service itself keeps under the connector's prefix (validation test objects,
    /// the challenge file): ingest must never take them for the customer's files.
    pub fn is_service_object(&self, key: &str) -> bool {
        key == self.challenge_key()
            || key
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.starts_with(super::checks::CHECK_DIR))
    }

    pub fn key_examples(&self) -> Option<Vec<String>> {
        let export = self.export.as_ref()?;
        let template = KeyTemplate::parse(&export.key_template).ok()?;
        let tables: Vec<&str> = if export.tables.is_empty() {
            vec!["orders", "customers"]
        } else {
            export.tables.iter().map(|t| t.name.as_str()).collect()
        };
        Some(template.examples(&self.prefix, &self.name, &tables, &export.file_extension()))
    }
}

/// Stable shard of a connector id (FNV-1a, so it never changes between releases).
pub fn due_shard_for(connector_id: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in connector_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    due_shard_name(hash % DUE_SHARDS)
}

/// Every `by-due` partition, for the scheduler's tick.
pub fn due_shards() -> impl Iterator<Item = String> {
    (0..DUE_SHARDS).map(due_shard_name)
}

fn due_shard_name(n: u32) -> String {
    format!("due#{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_shards_are_stable_and_in_range() {
        let cases = [("con_a", "due#"), ("con_0193", "due#")];
        for (id, prefix) in cases {
            let shard = due_shard_for(id);
            assert!(shard.starts_with(prefix));
            let n: u32 = shard.trim_start_matches("due#").parse().unwrap();
            assert!(n < DUE_SHARDS);
            assert_eq!(shard, due_shard_for(id), "deterministic for {id}");
        }
        // Pinned: changing the hash would strand scheduled connectors in old shards.
        // (values computed independently with FNV-1a 32-bit)
        assert_eq!(due_shard_for("con_example"), "due#2");
        assert_eq!(
            due_shard_for("con_01a208edb40c7605a1176af7caf9be8f"),
            "due#2"
        );
        assert_eq!(
            due_shard_for(""),
            format!("due#{}", 0x811c_9dc5_u32 % DUE_SHARDS)
        );
        let spread: std::collections::HashSet<String> = (0..64)
            .map(|i| due_shard_for(&format!("con_{i}")))
            .collect();
        assert!(spread.len() > 4, "ids spread over shards: {spread:?}");
    }

    #[test]
    fn service_objects_are_told_apart_from_customer_files() {
        let c = crate::domain::testing::stored_connector(serde_json::json!({
            "name": "c", "direction": "ingest", "bucket": "acme-drops", "region": "us-east-1",
            "prefix": "in/", "auth": {"mode": "bucket_policy"}, "ingest": {"table": "t"},
        }));
        let cases = [
            ("in/connector-challenge-abc.txt", true),
            ("in/.connector-check/0193", true),
            ("in/.connector-check/0193-multipart", true),
            ("in/orders.csv", false),
            ("in/sub/.connector-check/x", false),
            ("in/connector-challenge-abc.txt.csv", false),
            ("other/.connector-check/x", false),
        ];
        for (key, expected) in cases {
            assert_eq!(c.is_service_object(key), expected, "{key}");
        }
    }

    #[test]
    fn extension_follows_format_compression_and_pgp() {
        let cases = [
            (FormatKind::Csv, ExportCompression::Gzip, false, "csv.gz"),
            (
                FormatKind::Jsonl,
                ExportCompression::Zstd,
                false,
                "jsonl.zst",
            ),
            (
                FormatKind::Parquet,
                ExportCompression::None,
                true,
                "parquet.pgp",
            ),
            (FormatKind::Tsv, ExportCompression::Tgz, false, "tsv.tar.gz"),
        ];
        for (kind, compression, pgp, expected) in cases {
            let options = ExportOptions {
                format: FileFormat {
                    kind,
                    delimiter: None,
                    quote: None,
                    quote_char: None,
                    escape_char: None,
                    header: None,
                    null_value: None,
                },
                compression,
                encryption: Encryption {
                    sse: SseMode::Aes256,
                    kms_key_id: None,
                },
                pgp_public_key: pgp.then(|| "key".to_owned()),
                key_template: String::new(),
                tables: vec![],
                source_connector_id_column: None,
                backfill_days: 1,
                empty_export: EmptyExportPolicy::Skip,
                max_file_size_mb: 5,
            };
            assert_eq!(options.file_extension(), expected);
        }
    }
}
