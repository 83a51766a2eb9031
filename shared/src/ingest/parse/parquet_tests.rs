//! Parquet files written by the `parquet` crate's Arrow writer, read back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ::parquet::arrow::ArrowWriter;
use ::parquet::file::properties::WriterProperties;
use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::{
    ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;

use super::tests::{Parsed, parse_with};
use super::*;
use crate::domain::connector::FileFormat;
use crate::ingest::source::{MemorySource, Source};

fn parquet_file(columns: Vec<(&str, ArrayRef)>, row_group_rows: usize) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(properties)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    out
}

fn settings() -> ParseSettings {
    // The compression setting is ignored for Parquet.
    ParseSettings::new(FileFormat::Parquet, IngestCompression::Gzip)
}

fn read(bytes: &[u8], table: Option<&SchemaRef>) -> Result<Parsed, FileError> {
    parse_with(bytes, "f.parquet", &settings(), table)
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn typical() -> Vec<u8> {
    parquet_file(
        vec![
            (
                "i",
                Arc::new(Int32Array::from(vec![Some(1), None, Some(-3)])) as ArrayRef,
            ),
            ("f", Arc::new(Float32Array::from(vec![1.5, 2.0, -0.25]))),
            (
                "t",
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_123),
                    None,
                    Some(0),
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a"), Some(""), None])),
            ),
        ],
        1024,
    )
}

#[test]
fn columns_convert_to_lake_types() {
    let parsed = read(&typical(), None).expect("reads");
    assert_eq!(
        parsed.types(),
        vec![
            DataType::Int64,
            DataType::Float64,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
        ]
    );
    assert_eq!(parsed.column("i"), vec![s("1"), None, s("-3")]);
    assert_eq!(parsed.column("f"), vec![s("1.5"), s("2"), s("-0.25")]);
    assert_eq!(
        parsed.column("t"),
        vec![
            s("2023-11-14T22:13:20.123Z"),
            None,
            s("1970-01-01T00:00:00Z")
        ]
    );
    assert_eq!(parsed.column("s"), vec![s("a"), s(""), None]);
    assert_eq!(parsed.summary.rows, 3);
    assert_eq!(parsed.summary.content_bytes, typical().len() as u64);
}

#[test]
fn unsupported_and_non_parquet_files_are_file_errors() {
    let mut list = ListBuilder::new(Int32Builder::new());
    list.values().append_value(1);
    list.append(true);
    let with_list = parquet_file(
        vec![
            ("id", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
            ("tags", Arc::new(list.finish())),
        ],
        1024,
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a list column", with_list, "column \"tags\" has type List("),
        (
            "csv text",
            b"a,b\n1,2\n3,4\n".to_vec(),
            "the file is not Parquet: it does not start and end with the Parquet magic bytes PAR1 (it starts like text: is it csv or jsonl?)",
        ),
        (
            "tiny",
            b"PAR1".to_vec(),
            "the file is not Parquet: it has only 4 bytes",
        ),
        ("empty", Vec::new(), "the file is empty (0 bytes)"),
        (
            "a broken footer",
            {
                let mut bytes = typical();
                let n = bytes.len();
                bytes[n - 20..n - 8].fill(0xff);
                bytes
            },
            "the Parquet file is corrupt: ",
        ),
    ];
    for (name, bytes, message) in cases {
        let error = read(&bytes, None)
            .err()
            .unwrap_or_else(|| panic!("{name}: read"));
        assert!(error.to_string().starts_with(message), "{name}: {error}");
    }
}

#[test]
fn unsigned_values_beyond_int64_are_bad_rows() {
    let bytes = parquet_file(
        vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            ("u", Arc::new(UInt64Array::from(vec![5, u64::MAX, 7]))),
        ],
        1024,
    );
    let parsed = read(&bytes, None).expect("reads");
    assert_eq!(parsed.column("u"), vec![s("5"), s("7")]);
    assert_eq!(
        parsed.reasons(),
        vec![(2, Some("u"), "18446744073709551615 does not fit an int64")]
    );
    assert_eq!(parsed.bad_rows[0].raw, "id=2, u=18446744073709551615");
}

#[test]
fn parquet_against_a_table() {
    let table: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Float64, true),
        Field::new("gone", DataType::Int64, true),
        Field::new("f", DataType::Utf8, true),
    ]));
    let parsed = read(&typical(), Some(&table)).expect("reads");
    assert_eq!(parsed.names(), vec!["i", "gone", "f", "t", "s"]);
    assert_eq!(parsed.summary.new_columns, vec!["t", "s"]);
    assert_eq!(parsed.column("i"), vec![s("1"), None, s("-3")]);
    assert_eq!(parsed.column("gone"), vec![None, None, None]);
    assert_eq!(parsed.column("f"), vec![s("1.5"), s("2"), s("-0.25")]);

    let strict: SchemaRef = Arc::new(Schema::new(vec![Field::new("s", DataType::Int64, true)]));
    let error = read(&typical(), Some(&strict)).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "column \"s\" is int64 in the table, but the file's values are string, which do not convert to int64"
    );
    let required: SchemaRef = Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, false)]));
    let parsed = read(&typical(), Some(&required)).expect("reads");
    assert_eq!(
        parsed.reasons(),
        vec![(2, Some("i"), "column \"i\" may not be null")]
    );
}

/// A source that counts what is asked of it.
pub(super) struct CountingSource {
    pub inner: MemorySource,
    pub largest_range: AtomicU64,
    pub ranged_bytes: AtomicU64,
}

impl CountingSource {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            inner: MemorySource::new(Bytes::from(bytes)),
            largest_range: AtomicU64::new(0),
            ranged_bytes: AtomicU64::new(0),
        }
    }
}

impl Source for CountingSource {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        self.largest_range.fetch_max(len, Ordering::Relaxed);
        self.ranged_bytes.fetch_add(len, Ordering::Relaxed);
        self.inner.read_range(offset, len)
    }

    fn sequential(&self) -> std::io::Result<Box<dyn std::io::Read + Send + '_>> {
        self.inner.sequential()
    }
}

#[test]
fn row_groups_are_read_by_range_into_batches_of_one_schema() {
    let n = 100_000;
    let bytes = parquet_file(
        vec![
            (
                "id",
                Arc::new(Int32Array::from_iter_values(0..n)) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("name {i}")),
                )),
            ),
        ],
        10_000,
    );
    let source = CountingSource::new(bytes.clone());
    let mut settings = settings();
    settings.batch_rows = 4096;
    let mut sizes = Vec::new();
    let mut ids = 0i64;
    let summary = parse_file(&source, "f.parquet", &settings, None, |parsed| {
        sizes.push(parsed.batch.num_rows());
        assert!(parsed.bad_rows.is_empty());
        let column = parsed.batch.column(0);
        ids += arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(column)
            .values()
            .iter()
            .sum::<i64>();
        Ok::<(), ()>(())
    })
    .expect("reads");
    assert_eq!(summary.rows, n as u64);
    assert_eq!(ids, (0..n as i64).sum::<i64>());
    assert!(sizes.iter().all(|&s| s <= 4096), "{sizes:?}");
    assert!(sizes.len() >= 25, "{sizes:?}");
    // A tenth of the file per row group: no range near the whole file.
    let largest = source.largest_range.load(Ordering::Relaxed);
    assert!(
        largest < bytes.len() as u64 / 4,
        "largest range {largest} of {}",
        bytes.len()
    );
}
