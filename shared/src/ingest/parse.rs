//! A customer's file to Arrow batches of the lake table's schema, in one streaming pass with
//! memory independent of the file's size. Every data row ends up either in a batch or as a
//! [`BadRow`] that says why it was refused; what makes the whole file unreadable is a
//! [`FileError`]. The reject policy (how many bad rows a load tolerates) is the caller's: it
//! sees the bad rows of each batch and may stop the parse by returning an error.
//!
//! The output schema: without a table schema, the columns of the file with the types inferred
//! from its first rows (all nullable); with one, the table's columns in their order (those the
//! file lacks are null) and then the file's new columns, nullable, with their inferred types.
//! Names match exactly (case included).
//!
//! Text formats: a UTF-8 BOM is dropped; a NUL byte, or more than a quarter of the first KiB
//! not being UTF-8, is a binary file; one record longer than 64 MiB is a file error (an
//! unclosed quote would otherwise hold the rest of the file). Delimited text: an empty field
//! is null in every column that is not text; in text columns only the null value is (the
//! `csv` crate does not tell a quoted `""` from an empty field, so with the default null
//! value both are null).

mod columns;
mod delimited;
mod jsonl;
mod parquet;
mod text;
mod values;

#[cfg(test)]
mod tests;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::Serialize;

use crate::domain::connector::{FileFormat, IngestCompression};
use crate::ingest::source::Source;

/// Rows per batch unless the settings say otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Rows sampled to infer the file's column types unless the settings say otherwise.
pub const DEFAULT_INFER_ROWS: usize = 8192;
/// The longest a bad row's `raw` text gets.
pub const BAD_ROW_RAW_LIMIT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSettings {
    pub format: FileFormat,
    /// Ignored for Parquet, whose pages are compressed inside the file.
    pub compression: IngestCompression,
    /// Rows per batch handed to `on_batch` (at least 1).
    pub batch_rows: usize,
    /// Rows read before the first batch to infer the column types (at least 1); Parquet
    /// carries its types and reads none.
    pub infer_rows: usize,
}

impl ParseSettings {
    pub fn new(format: FileFormat, compression: IngestCompression) -> Self {
        Self {
            format,
            compression,
            batch_rows: DEFAULT_BATCH_ROWS,
            infer_rows: DEFAULT_INFER_ROWS,
        }
    }
}

/// A row the parser refused; one line of the `<file>.errors.jsonl` sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// 1-based line of the record's start in the decompressed file (a quoted field may span
    /// several); for Parquet the 1-based row number.
    pub line: u64,
    /// The column whose value was refused, when it is one value.
    pub column: Option<String>,
    pub reason: String,
    /// The row's text, lossy UTF-8, cut to [`BAD_ROW_RAW_LIMIT`] bytes. Delimited text gives
    /// the fields joined by the delimiter (quotes are not restored).
    pub raw: String,
}

/// Rows in the schema of the parse, with the bad rows met since the previous batch. A batch
/// may hold no rows when it only carries bad rows (a run of refused rows is handed over in
/// batches too, so that memory stays bounded).
#[derive(Debug, Clone)]
pub struct ParsedBatch {
    pub batch: RecordBatch,
    pub bad_rows: Vec<BadRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseSummary {
    /// Rows handed over in batches.
    pub rows: u64,
    /// Rows refused; `rows + bad_rows` is every data row of the file.
    pub bad_rows: u64,
    /// The schema of every batch, a valid lake schema.
    pub schema: SchemaRef,
    /// Bytes of content after decompression (before a BOM was dropped); for Parquet the
    /// file's size.
    pub content_bytes: u64,
    /// Columns of the file the table does not have, in the order they were added at the end
    /// of `schema` (empty without a table schema).
    pub new_columns: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError<E> {
    #[error(transparent)]
    File(#[from] FileError),
    /// `on_batch` returned this error; the parse stopped there.
    #[error("the parse was stopped")]
    Stopped(E),
}

/// What makes a whole file unreadable, worded for the customer: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty (0 bytes{})", match compression {
        Some(c) => format!(" after {c} decompression"),
        None => String::new(),
    })]
    Empty { compression: Option<&'static str> },
    #[error("{}", if *header_only {
        "the file has a header row but no data rows"
    } else {
        "the file holds no rows"
    })]
    NoRows { header_only: bool },
    #[error("the file looks like a binary file, not {format}: {evidence}")]
    Binary {
        format: &'static str,
        evidence: String,
    },
    /// `reason` is a whole sentence naming the compression.
    #[error("{reason}")]
    Decompress {
        compression: &'static str,
        reason: String,
    },
    #[error("{0}")]
    CompressionMismatch(String),
    #[error("the zip archive holds {count} files: {names}; put one file in each archive")]
    ZipEntries { count: usize, names: String },
    #[error("the zip archive holds no file (only directories, or nothing)")]
    ZipNoFile,
    #[error("the zip archive is unreadable: {0}")]
    ZipCorrupt(String),
    #[error("the zip entry {entry:?} {reason}")]
    ZipUnsupported { entry: String, reason: String },
    #[error("reading the file failed at byte {offset}: {reason}")]
    Read { offset: u64, reason: String },
    #[error("the file is not Parquet: {0}")]
    NotParquet(String),
    #[error("the Parquet file is corrupt: {0}")]
    CorruptParquet(String),
    #[error(
        "column {column:?} has type {data_type} in the Parquet file, which the lake does not store; use integers, floats, decimals, strings, booleans, dates or timestamps"
    )]
    UnsupportedParquetType { column: String, data_type: String },
    #[error(
        "column {column:?} is {table_type} in the table, but the file's values are {file_type}, which do not convert to {table_type}"
    )]
    IncompatibleColumn {
        column: String,
        table_type: String,
        file_type: String,
    },
    #[error("the table's column {column:?} may not be null, but the file has no such column")]
    MissingRequiredColumn { column: String },
    #[error("the header names column {name:?} twice (columns {first} and {second})")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("the header row (line {line}) is not valid UTF-8")]
    HeaderNotUtf8 { line: u64 },
    #[error(
        "the record starting at line {line} is longer than {limit_mib} MiB (an unclosed quote?)"
    )]
    RecordTooLong { line: u64, limit_mib: u64 },
    #[error("the format settings cannot be used: {0}")]
    Settings(String),
    #[error("the file's columns do not make a lake table: {0}")]
    Schema(String),
}

impl FileError {
    /// The `FileError` an I/O error from the decompressing reader carries, if any.
    pub fn from_io(error: &std::io::Error) -> Option<FileError> {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<FileError>())
            .cloned()
    }
}

/// Parses `source` (the object at `key`) into batches handed to `on_batch`; see the module
/// comment for the schema of the batches. Blocking: run it on a thread of its own.
pub fn parse_file<E>(
    source: &dyn Source,
    key: &str,
    settings: &ParseSettings,
    table_schema: Option<&SchemaRef>,
    on_batch: impl FnMut(ParsedBatch) -> Result<(), E>,
) -> Result<ParseSummary, ParseError<E>> {
    let limits = Limits {
        batch_rows: settings.batch_rows.max(1),
        infer_rows: settings.infer_rows.max(1),
    };
    match &settings.format {
        FileFormat::Parquet => parquet::parse(source, limits, table_schema, on_batch),
        FileFormat::Delimited(format) => {
            let stream = text::open(source, key, settings.compression, format.dialect.kind())?;
            delimited::parse(stream, format, limits, table_schema, on_batch)
        }
        FileFormat::Jsonl => {
            let stream = text::open(
                source,
                key,
                settings.compression,
                crate::domain::connector::FormatKind::Jsonl,
            )?;
            jsonl::parse(stream, limits, table_schema, on_batch)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    batch_rows: usize,
    infer_rows: usize,
}

/// `text` cut to at most `limit` bytes on a character boundary.
fn cut(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A value quoted for a reason, shortened so that a huge field does not make a huge reason.
fn quoted(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if text.len() > 64 {
        format!("{:?}…", cut(text.into_owned(), 64))
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod parquet_tests;
