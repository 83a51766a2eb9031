//! The connector as stored: one item of the connectors table (docs/dynamodb.md). The API's view
//! of it lives in the `connector-api` function.

pub mod field;
pub mod key_template;
pub mod pgp_key;
pub mod platform;
pub mod report;
pub mod rules;
pub mod schedule;
pub mod spec;

/// Folder (under the connector's prefix) of the objects validation writes and removes; objects
/// there are the service's own, never the customer's files (`Connector::is_service_object`).
pub const CHECK_DIR: &str = ".connector-check/";

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connector::schedule::Schedule;
use key_template::KeyTemplate;
use report::ValidationReport;

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

/// How files are written (export) or read (ingest). Delimited-text settings exist only for
/// csv/tsv/psv, with every default resolved by the spec parser.
///
/// Serialised flat, as it always was: `{"type": "csv", "delimiter": ",", "quote": "necessary",
/// "quote_char": "\"", "escape_char": "\"", "header": true, "null_value": ""}` for delimited text
/// (all six settings present), `{"type": "jsonl"}` or `{"type": "parquet"}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FormatRecord", into = "FormatRecord")]
pub enum FileFormat {
    Delimited(DelimitedFormat),
    Jsonl,
    Parquet,
}

/// Settings of a csv, tsv or psv file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelimitedFormat {
    pub dialect: Dialect,
    pub quote: QuoteMode,
    pub quote_char: char,
    pub escape_char: char,
    pub header: bool,
    /// How a null is written (and recognised); "" by default.
    pub null_value: String,
}

/// The kind of delimited text: only csv may choose its delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Csv {
        delimiter: char,
    },
    /// Always tab-separated.
    Tsv,
    /// Always pipe-separated.
    Psv,
}

impl Dialect {
    pub fn kind(self) -> FormatKind {
        match self {
            Dialect::Csv { .. } => FormatKind::Csv,
            Dialect::Tsv => FormatKind::Tsv,
            Dialect::Psv => FormatKind::Psv,
        }
    }

    pub fn delimiter(self) -> char {
        match self {
            Dialect::Csv { delimiter } => delimiter,
            Dialect::Tsv => '\t',
            Dialect::Psv => '|',
        }
    }
}

impl DelimitedFormat {
    /// The parser's defaults for `dialect`: quote when necessary with `"` (which also escapes),
    /// a header row, nulls as "".
    pub fn defaults(dialect: Dialect) -> Self {
        Self {
            dialect,
            quote: QuoteMode::Necessary,
            quote_char: '"',
            escape_char: '"',
            header: true,
            null_value: String::new(),
        }
    }

    pub fn delimiter(&self) -> char {
        self.dialect.delimiter()
    }
}

impl FileFormat {
    pub fn kind(&self) -> FormatKind {
        match self {
            FileFormat::Delimited(d) => d.dialect.kind(),
            FileFormat::Jsonl => FormatKind::Jsonl,
            FileFormat::Parquet => FormatKind::Parquet,
        }
    }

    /// The delimited-text settings; `None` for jsonl and parquet.
    pub fn delimited(&self) -> Option<&DelimitedFormat> {
        match self {
            FileFormat::Delimited(d) => Some(d),
            FileFormat::Jsonl | FileFormat::Parquet => None,
        }
    }
}

/// The stored and returned shape of a [`FileFormat`]: a kind plus the six delimited-text
/// settings, which are absent for jsonl and parquet.
#[derive(Serialize, Deserialize)]
struct FormatRecord {
    #[serde(rename = "type")]
    kind: FormatKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quote: Option<QuoteMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quote_char: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    escape_char: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    null_value: Option<String>,
}

impl From<FileFormat> for FormatRecord {
    fn from(format: FileFormat) -> Self {
        let kind = format.kind();
        match format {
            FileFormat::Delimited(d) => FormatRecord {
                kind,
                delimiter: Some(d.delimiter().to_string()),
                quote: Some(d.quote),
                quote_char: Some(d.quote_char.to_string()),
                escape_char: Some(d.escape_char.to_string()),
                header: Some(d.header),
                null_value: Some(d.null_value),
            },
            FileFormat::Jsonl | FileFormat::Parquet => FormatRecord {
                kind,
                delimiter: None,
                quote: None,
                quote_char: None,
                escape_char: None,
                header: None,
                null_value: None,
            },
        }
    }
}

impl TryFrom<FormatRecord> for FileFormat {
    type Error = String;

    /// A setting missing from a delimited format takes the parser's default, as it would when
    /// the connector is next patched; anything the parser could never have produced is refused.
    fn try_from(r: FormatRecord) -> Result<Self, String> {
        fn one_char(field: &str, value: &str) -> Result<char, String> {
            let mut chars = value.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(format!("format.{field} {value:?} is not one character")),
            }
        }
        let delimited = |dialect: Dialect| -> Result<FileFormat, String> {
            let defaults = DelimitedFormat::defaults(dialect);
            let quote_char = match &r.quote_char {
                Some(q) => one_char("quote_char", q)?,
                None => defaults.quote_char,
            };
            let escape_char = match &r.escape_char {
                Some(e) => one_char("escape_char", e)?,
                None => quote_char,
            };
            Ok(FileFormat::Delimited(DelimitedFormat {
                dialect,
                quote: r.quote.unwrap_or(defaults.quote),
                quote_char,
                escape_char,
                header: r.header.unwrap_or(defaults.header),
                null_value: r.null_value.clone().unwrap_or(defaults.null_value),
            }))
        };
        let delimiter = r
            .delimiter
            .as_deref()
            .map(|d| one_char("delimiter", d))
            .transpose()?;
        match r.kind {
            FormatKind::Csv => delimited(Dialect::Csv {
                delimiter: delimiter.unwrap_or(','),
            }),
            FormatKind::Tsv | FormatKind::Psv => {
                let dialect = if r.kind == FormatKind::Tsv {
                    Dialect::Tsv
                } else {
                    Dialect::Psv
                };
                match delimiter {
                    Some(d) if d != dialect.delimiter() => Err(format!(
                        "format {} is always separated by {:?}, not {d:?}",
                        r.kind.extension(),
                        dialect.delimiter()
                    )),
                    _ => delimited(dialect),
                }
            }
            FormatKind::Jsonl | FormatKind::Parquet => {
                let has_delimited = r.delimiter.is_some()
                    || r.quote.is_some()
                    || r.quote_char.is_some()
                    || r.escape_char.is_some()
                    || r.header.is_some()
                    || r.null_value.is_some();
                if has_delimited {
                    return Err(format!(
                        "format {} has delimited-text settings",
                        r.kind.extension()
                    ));
                }
                Ok(if r.kind == FormatKind::Jsonl {
                    FileFormat::Jsonl
                } else {
                    FileFormat::Parquet
                })
            }
        }
    }
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
    pub key_template: Parsed<KeyTemplate>,
    /// Empty exports every table of the tenant.
    #[serde(default)]
    pub tables: Vec<TableSelection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_connector_id_column: Option<String>,
    pub backfill_days: u32,
    pub empty_export: EmptyExportPolicy,
    pub max_file_size_mb: u64,
    /// Write the `.DONE` marker after the manifest (the success file customers trigger on).
    #[serde(default = "enabled")]
    pub success_marker: bool,
    /// Parquet only: a table's folder is named `<table>.parquet` (true) or `<table>` (false).
    #[serde(default = "enabled")]
    pub table_folder_extension: bool,
}

/// Serde default of the options that were on before they could be set.
fn enabled() -> bool {
    true
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
    /// Parquet's gzip and zstd compress the pages inside the file, which stays `.parquet`.
    pub fn file_extension(&self) -> String {
        let mut ext = self.format.kind().extension().to_owned();
        if !self.compresses_inside() {
            ext.push_str(self.compression.extension_suffix());
        }
        if self.pgp_public_key.is_some() {
            ext.push_str(".pgp");
        }
        ext
    }

    /// What a table's folder name carries after the table's name (see `KeyContext`).
    pub fn table_folder_suffix(&self) -> &'static str {
        if self.format.kind() == FormatKind::Parquet && self.table_folder_extension {
            ".parquet"
        } else {
            ""
        }
    }

    /// Parquet with gzip or zstd: the codec of its pages, not a layer around the file.
    pub fn compresses_inside(&self) -> bool {
        self.format.kind() == FormatKind::Parquet
            && matches!(
                self.compression,
                ExportCompression::Gzip | ExportCompression::Zstd
            )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOptions {
    /// Platform table the files feed.
    pub table: String,
    pub format: FileFormat,
    pub compression: IngestCompression,
    /// Where good files are moved; `None` deletes them once ingested (docs/architecture.md,
    /// "The flow").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_dir: Option<String>,
    /// Where bad files are moved; `None` leaves them in the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_dir: Option<String>,
    /// How many bad rows a file may have and still load (items written before it existed:
    /// none). Stored only when it is not the default, so items keep their shape.
    #[serde(default, skip_serializing_if = "RejectPolicy::is_default")]
    pub reject: RejectPolicy,
}

/// How many bad rows a file may have and still load (its good rows; the bad ones go to the
/// sidecar). Default: none, so one bad row fails the file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectPolicy {
    /// At most this many bad rows.
    MaxBadRows(u64),
    /// At most this share of the file's data rows, in percent (0–100).
    MaxBadPercent(f64),
}

// The spec parser only admits percentages in 0..=100 (never NaN), so equality is total.
impl Eq for RejectPolicy {}

impl Default for RejectPolicy {
    fn default() -> Self {
        RejectPolicy::MaxBadRows(0)
    }
}

impl RejectPolicy {
    pub fn is_default(&self) -> bool {
        *self == RejectPolicy::default()
    }

    /// Whether a file of `total` data rows with `bad` of them refused may load.
    pub fn accepts(self, bad: u64, total: u64) -> bool {
        match self {
            RejectPolicy::MaxBadRows(max) => bad <= max,
            RejectPolicy::MaxBadPercent(percent) => {
                bad == 0 || (total > 0 && (bad as f64) * 100.0 <= percent * (total as f64))
            }
        }
    }

    /// Whether `bad` refused rows already fail the file, however many rows follow (parsing
    /// can stop).
    pub fn exceeded(self, bad: u64) -> bool {
        match self {
            RejectPolicy::MaxBadRows(max) => bad > max,
            RejectPolicy::MaxBadPercent(percent) => bad > 0 && percent <= 0.0,
        }
    }

    /// The policy in words, for error messages.
    pub fn describe(self) -> String {
        match self {
            RejectPolicy::MaxBadRows(0) => "no bad row is accepted".to_owned(),
            RejectPolicy::MaxBadRows(max) => format!("at most {max} bad rows are accepted"),
            RejectPolicy::MaxBadPercent(percent) => {
                format!("at most {percent} % of the rows may be bad")
            }
        }
    }
}

/// Text the service stores and re-reads (a schedule, a key template), held parsed.
///
/// The spec parser only ever builds [`Parsed::Valid`]. An item written under older, looser rules
/// may hold text today's parser refuses: it still reads as [`Parsed::Stale`] (so the connector can
/// be listed, shown, patched and deleted, and one such item never fails a listing or the
/// `by-bucket` routing of other connectors), it never runs, and the `config` check of validation
/// reports the rule it breaks, as it did when the text was re-parsed at every use. Either way it
/// is stored and shown as the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    Valid(T),
    Stale {
        text: String,
        /// Why today's parser refuses `text`.
        rule: String,
    },
}

/// A value with a canonical text form that parses back to it.
pub trait TextForm: Sized {
    fn parse_text(text: &str) -> Result<Self, String>;
    fn text(&self) -> &str;
}

impl TextForm for Schedule {
    fn parse_text(text: &str) -> Result<Self, String> {
        Schedule::parse(text)
    }

    fn text(&self) -> &str {
        self.as_str()
    }
}

impl TextForm for KeyTemplate {
    fn parse_text(text: &str) -> Result<Self, String> {
        KeyTemplate::parse(text).map_err(|rules| rules.join("; "))
    }

    fn text(&self) -> &str {
        self.as_str()
    }
}

impl<T: TextForm> Parsed<T> {
    /// Parses stored text; text that no longer parses is kept as [`Parsed::Stale`].
    pub fn from_text(text: String) -> Self {
        match T::parse_text(&text) {
            Ok(value) => Parsed::Valid(value),
            Err(rule) => Parsed::Stale { text, rule },
        }
    }

    /// The text as written (and stored).
    pub fn text(&self) -> &str {
        match self {
            Parsed::Valid(value) => value.text(),
            Parsed::Stale { text, .. } => text,
        }
    }

    /// The parsed value; `None` when the stored text breaks today's rules.
    pub fn valid(&self) -> Option<&T> {
        match self {
            Parsed::Valid(value) => Some(value),
            Parsed::Stale { .. } => None,
        }
    }
}

impl<T> From<T> for Parsed<T> {
    fn from(value: T) -> Self {
        Parsed::Valid(value)
    }
}

impl<T: TextForm> Serialize for Parsed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text())
    }
}

impl<'de, T: TextForm> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Parsed::from_text)
    }
}

/// Which way data flows, with the settings of that way: an export has a schedule and export
/// options, an ingest (run when files arrive) only its ingest options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Export {
        /// Always present: the spec parser defaults it (`rate(1 day)`) and never removes it.
        schedule: Parsed<Schedule>,
        options: ExportOptions,
    },
    Ingest(IngestOptions),
}

impl Flow {
    pub fn direction(&self) -> Direction {
        match self {
            Flow::Export { .. } => Direction::Export,
            Flow::Ingest(_) => Direction::Ingest,
        }
    }

    pub fn schedule(&self) -> Option<&Parsed<Schedule>> {
        match self {
            Flow::Export { schedule, .. } => Some(schedule),
            Flow::Ingest(_) => None,
        }
    }

    pub fn export_options(&self) -> Option<&ExportOptions> {
        match self {
            Flow::Export { options, .. } => Some(options),
            Flow::Ingest(_) => None,
        }
    }

    pub fn ingest_options(&self) -> Option<&IngestOptions> {
        match self {
            Flow::Ingest(options) => Some(options),
            Flow::Export { .. } => None,
        }
    }
}

/// A connector as stored in the connectors table (one item, keyed by tenant and id).
///
/// The item keeps its flat attributes (`direction`, `schedule`, `export`, `ingest`): it is
/// (de)serialised through [`StoredConnector`], and an item whose blocks contradict its direction
/// is refused as corrupt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredConnector", into = "StoredConnector")]
pub struct Connector {
    pub tenant_id: String,
    pub connector_id: String,
    pub name: String,
    pub bucket: String,
    pub region: String,
    /// "" (bucket root) or a folder ending in `/`.
    pub prefix: String,
    pub auth: Auth,
    /// Generated by us, never changed: the customer's trust policy pins it.
    pub external_id: String,
    /// Name of the empty file the customer uploads at the prefix to prove ownership.
    pub challenge_file: String,
    pub flow: Flow,
    pub status: ConnectorStatus,
    /// Last validation result, as returned by the validate endpoint.
    pub validation: Option<ValidationReport>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// Sparse scheduling index (`by-due`): present only while the connector can run.
    pub due_shard: Option<String>,
    pub due_at: Option<i64>,
    /// Optimistic-concurrency counter, bumped by every write.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The item's shape in the connectors table (and the only shape ever written): the flow as a
/// `direction` plus its `schedule`, `export` or `ingest` attribute.
#[derive(Serialize, Deserialize)]
struct StoredConnector {
    tenant_id: String,
    connector_id: String,
    name: String,
    direction: Direction,
    bucket: String,
    region: String,
    prefix: String,
    auth: Auth,
    external_id: String,
    challenge_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<Parsed<Schedule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    export: Option<ExportOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ingest: Option<IngestOptions>,
    status: ConnectorStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "readable_report"
    )]
    validation: Option<ValidationReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_run_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_at: Option<i64>,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The last validation is a record of a past result, replaced by the next validation: one that
/// no longer reads as a [`ValidationReport`] (say, a check id since retired) is dropped with a
/// warning rather than making the whole connector unreadable.
fn readable_report<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ValidationReport>, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(raw.filter(|v| !v.is_null()).and_then(|v| {
        serde_json::from_value(v)
            .map_err(|e| tracing::warn!(error = %e, "dropping an unreadable stored validation"))
            .ok()
    }))
}

impl From<Connector> for StoredConnector {
    fn from(c: Connector) -> Self {
        let direction = c.direction();
        let (schedule, export, ingest) = match c.flow {
            Flow::Export { schedule, options } => (Some(schedule), Some(options), None),
            Flow::Ingest(options) => (None, None, Some(options)),
        };
        StoredConnector {
            tenant_id: c.tenant_id,
            connector_id: c.connector_id,
            name: c.name,
            direction,
            bucket: c.bucket,
            region: c.region,
            prefix: c.prefix,
            auth: c.auth,
            external_id: c.external_id,
            challenge_file: c.challenge_file,
            schedule,
            export,
            ingest,
            status: c.status,
            validation: c.validation,
            next_run_at: c.next_run_at,
            due_shard: c.due_shard,
            due_at: c.due_at,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl TryFrom<StoredConnector> for Connector {
    type Error = String;

    fn try_from(s: StoredConnector) -> Result<Self, String> {
        let flow = match (s.direction, s.schedule, s.export, s.ingest) {
            (Direction::Export, Some(schedule), Some(options), None) => {
                Flow::Export { schedule, options }
            }
            (Direction::Ingest, None, None, Some(options)) => Flow::Ingest(options),
            (direction, schedule, export, ingest) => {
                let present = |name: &'static str, here: bool| here.then_some(name);
                let found: Vec<&str> = [
                    present("schedule", schedule.is_some()),
                    present("export", export.is_some()),
                    present("ingest", ingest.is_some()),
                ]
                .into_iter()
                .flatten()
                .collect();
                let wanted = match direction {
                    Direction::Export => "schedule and export",
                    Direction::Ingest => "ingest only",
                };
                return Err(format!(
                    "connector {}: a {} connector needs {wanted}, the item has [{}]",
                    s.connector_id,
                    direction_name(direction),
                    found.join(", ")
                ));
            }
        };
        Ok(Connector {
            tenant_id: s.tenant_id,
            connector_id: s.connector_id,
            name: s.name,
            bucket: s.bucket,
            region: s.region,
            prefix: s.prefix,
            auth: s.auth,
            external_id: s.external_id,
            challenge_file: s.challenge_file,
            flow,
            status: s.status,
            validation: s.validation,
            next_run_at: s.next_run_at,
            due_shard: s.due_shard,
            due_at: s.due_at,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Export => "export",
        Direction::Ingest => "ingest",
    }
}

/// Number of partitions of the `by-due` index; a tick queries each. Spreads hot writes when many
/// connectors share a schedule slot.
pub const DUE_SHARDS: u32 = 8;

impl Connector {
    /// Which way data flows. Callers use this and the accessors below rather than matching
    /// [`Flow`] where they need only one part of it.
    pub fn direction(&self) -> Direction {
        self.flow.direction()
    }

    /// The export settings of an export connector; `None` for ingest.
    pub fn export_options(&self) -> Option<&ExportOptions> {
        self.flow.export_options()
    }

    /// The ingest settings of an ingest connector; `None` for export.
    pub fn ingest_options(&self) -> Option<&IngestOptions> {
        self.flow.ingest_options()
    }

    /// The schedule of an export connector (always set); `None` for ingest.
    pub fn schedule(&self) -> Option<&Parsed<Schedule>> {
        self.flow.schedule()
    }

    /// Keeps the sparse `by-due` index attributes in step with status and schedule: only active
    /// export connectors with a next run are visible to the scheduler (`due#n` shards), and
    /// active ingest connectors to the poll of source prefixes (`poll#n` shards, always due),
    /// which the scheduler never queries.
    pub fn refresh_due_index(&mut self) {
        let active = self.status == ConnectorStatus::Active;
        match self.direction() {
            Direction::Export if active && self.next_run_at.is_some() => {
                self.due_shard = Some(due_shard_for(&self.connector_id));
                self.due_at = self.next_run_at.map(|t| t.timestamp());
            }
            Direction::Ingest if active => {
                self.due_shard = Some(poll_shard_for(&self.connector_id));
                self.due_at = Some(0);
            }
            _ => {
                self.due_shard = None;
                self.due_at = None;
            }
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
                .is_some_and(|rest| rest.starts_with(CHECK_DIR))
    }

    /// Example object keys of an export connector (none while its key template is stale).
    pub fn key_examples(&self) -> Option<Vec<String>> {
        let export = self.export_options()?;
        let template = export.key_template.valid()?;
        let tables: Vec<&str> = if export.tables.is_empty() {
            vec!["orders", "customers"]
        } else {
            export.tables.iter().map(|t| t.name.as_str()).collect()
        };
        Some(template.examples(
            &self.prefix,
            &self.name,
            &tables,
            &export.file_extension(),
            export.table_folder_suffix(),
        ))
    }
}

/// Stable shard of a connector id (FNV-1a, so it never changes between releases).
pub fn due_shard_for(connector_id: &str) -> String {
    due_shard_name(shard_number(connector_id))
}

/// The `by-due` shard of an active ingest connector (see `Connector::refresh_due_index`).
pub fn poll_shard_for(connector_id: &str) -> String {
    format!("poll#{}", shard_number(connector_id))
}

/// Every ingest connector's `by-due` partition, for the poll of source prefixes.
pub fn poll_shards() -> impl Iterator<Item = String> {
    (0..DUE_SHARDS).map(|n| format!("poll#{n}"))
}

fn shard_number(connector_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in connector_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % DUE_SHARDS
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
        assert_eq!(poll_shard_for("con_example"), "poll#2");
        assert!(poll_shards().any(|s| s == poll_shard_for("con_x")));
        assert!(!due_shards().any(|s| s == poll_shard_for("con_x")));
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
        let c = crate::testing::stored_connector(serde_json::json!({
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
            (
                FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })),
                ExportCompression::Gzip,
                false,
                "csv.gz",
            ),
            (
                FileFormat::Jsonl,
                ExportCompression::Zstd,
                false,
                "jsonl.zst",
            ),
            (
                FileFormat::Parquet,
                ExportCompression::None,
                true,
                "parquet.pgp",
            ),
            (
                FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Tsv)),
                ExportCompression::Tgz,
                false,
                "tsv.tar.gz",
            ),
            // gzip and zstd compress parquet's pages: the file keeps its extension.
            (
                FileFormat::Parquet,
                ExportCompression::Zstd,
                false,
                "parquet",
            ),
            (
                FileFormat::Parquet,
                ExportCompression::Gzip,
                true,
                "parquet.pgp",
            ),
            (
                FileFormat::Parquet,
                ExportCompression::Zip,
                false,
                "parquet.zip",
            ),
        ];
        for (format, compression, pgp, expected) in cases {
            let options = ExportOptions {
                format,
                compression,
                encryption: Encryption {
                    sse: SseMode::Aes256,
                    kms_key_id: None,
                },
                pgp_public_key: pgp.then(|| "key".to_owned()),
                key_template: Parsed::from_text(String::new()),
                tables: vec![],
                source_connector_id_column: None,
                backfill_days: 1,
                empty_export: EmptyExportPolicy::Skip,
                max_file_size_mb: 5,
                success_marker: true,
                table_folder_extension: true,
            };
            assert_eq!(options.file_extension(), expected);
        }
    }
}
