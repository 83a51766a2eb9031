//! Parquet: the footer and then each row group's column chunks fetched by range, decoded by
//! the `parquet` crate's synchronous reader, each column converted to its lake type. Memory
//! is one row group's (compressed) column chunks and one batch, whatever the file's size.
//! The Arrow schema a writer may embed is ignored: the Parquet types alone decide, so that
//! dictionary or large-string hints of another writer do not matter.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError as ReaderError;
use parquet::file::reader::{ChunkReader, Length};

use super::columns::{Batcher, Cell, expected, plan};
use super::{BadRow, FileError, Limits, ParseError, ParseSummary, ParsedBatch};
use crate::ingest::decompress::RangeReader;
use crate::ingest::source::Source;
use crate::lake::schema::ColumnType;

const MAGIC: &[u8] = b"PAR1";
const DAY_MICROS: i64 = 86_400_000_000;

/// The whole file by range, for reading the footer.
struct Ranges<'a>(&'a dyn Source);

impl Length for Ranges<'_> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<'a> ChunkReader for Ranges<'a> {
    type T = RangeReader<'a>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(RangeReader::new(self.0, start, self.0.len()))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let bytes = self
            .0
            .read_range(start, length as u64)
            .map_err(|e| ReaderError::External(Box::new(e)))?;
        if bytes.len() < length {
            return Err(ReaderError::EOF(format!(
                "{length} bytes at {start} asked, {} there",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

/// One row group's column chunks, fetched before decoding (the reader wants an owned
/// source, and the chunks are what it would read anyway).
struct RowGroupChunks {
    len: u64,
    chunks: Vec<(u64, Bytes)>,
}

impl RowGroupChunks {
    fn find(&self, start: u64, length: u64) -> parquet::errors::Result<Bytes> {
        self.chunks
            .iter()
            .find(|(at, bytes)| *at <= start && start + length <= *at + bytes.len() as u64)
            .map(|(at, bytes)| bytes.slice((start - at) as usize..(start - at + length) as usize))
            .ok_or_else(|| {
                ReaderError::General(format!(
                    "bytes {start}..{} lie outside the row group's column chunks",
                    start + length
                ))
            })
    }
}

impl Length for RowGroupChunks {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for RowGroupChunks {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let (at, bytes) = self
            .chunks
            .iter()
            .find(|(at, bytes)| *at <= start && start < *at + bytes.len() as u64)
            .ok_or_else(|| {
                ReaderError::General(format!("byte {start} lies outside the column chunks"))
            })?;
        Ok(bytes.slice((start - at) as usize..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.find(start, length as u64)
    }
}

/// The lake type a Parquet column's values convert to without loss (UInt64 beyond int64 is
/// refused row by row); `None` for what the lake does not store.
fn lake_type(data_type: &DataType) -> Option<ColumnType> {
    Some(match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ColumnType::Int64,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::String,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Timestamp(_, _) => ColumnType::Timestamp,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *s >= 0 && *s as u8 <= *p && *p <= 38 =>
        {
            ColumnType::Decimal {
                precision: *p,
                scale: *s,
            }
        }
        _ => return None,
    })
}

/// Whether a table column of type `table` takes a file column of lake type `file`: the same
/// type, text (values printed), or a widening that keeps every value.
fn fits(file: ColumnType, table: ColumnType) -> bool {
    use ColumnType::*;
    match (table, file) {
        (a, b) if a == b => true,
        (String, _) | (Float64, Int64) | (Decimal { .. }, Int64) | (Timestamp, Date) => true,
        (
            Decimal {
                precision: p2,
                scale: s2,
            },
            Decimal {
                precision: p1,
                scale: s1,
            },
        ) => s2 >= s1 && (p2 as i16 - s2 as i16) >= (p1 as i16 - s1 as i16),
        _ => false,
    }
}

/// A value as the file holds it, timestamps already in microseconds.
enum Scalar<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(&'a str),
    Bool(bool),
    Date(i32),
    Timestamp(i64),
    Decimal(i128, i8),
}

fn scalar(array: &dyn Array, row: usize) -> Result<Scalar<'_>, String> {
    if array.is_null(row) {
        return Ok(Scalar::Null);
    }
    Ok(match array.data_type() {
        DataType::Int8 => Scalar::Int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Scalar::Int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Scalar::Int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Scalar::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Scalar::Int(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Scalar::Int(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Scalar::Int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => Scalar::UInt(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => Scalar::Float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => Scalar::Float(array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => Scalar::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Scalar::Text(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Scalar::Text(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Scalar::Text(array.as_string_view().value(row)),
        DataType::Boolean => Scalar::Bool(array.as_boolean().value(row)),
        DataType::Date32 => Scalar::Date(array.as_primitive::<Date32Type>().value(row)),
        DataType::Date64 => {
            let millis = array.as_primitive::<Date64Type>().value(row);
            Scalar::Date(
                i32::try_from(millis.div_euclid(86_400_000))
                    .map_err(|_| format!("{millis} ms is beyond the dates the lake keeps"))?,
            )
        }
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1_000),
                TimeUnit::Microsecond => {
                    Some(array.as_primitive::<TimestampMicrosecondType>().value(row))
                }
                TimeUnit::Nanosecond => Some(
                    array
                        .as_primitive::<TimestampNanosecondType>()
                        .value(row)
                        .div_euclid(1_000),
                ),
            };
            Scalar::Timestamp(
                micros.ok_or("the timestamp is beyond the microseconds the lake keeps")?,
            )
        }
        DataType::Decimal32(_, s) => {
            Scalar::Decimal(array.as_primitive::<Decimal32Type>().value(row).into(), *s)
        }
        DataType::Decimal64(_, s) => {
            Scalar::Decimal(array.as_primitive::<Decimal64Type>().value(row).into(), *s)
        }
        DataType::Decimal128(_, s) => {
            Scalar::Decimal(array.as_primitive::<Decimal128Type>().value(row), *s)
        }
        other => return Err(format!("type {other} is not read")),
    })
}

fn decimal_text(value: i128, scale: i8) -> String {
    let digits = value.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

fn scalar_text(value: &Scalar<'_>) -> String {
    match value {
        Scalar::Null => "null".to_owned(),
        Scalar::Int(v) => v.to_string(),
        Scalar::UInt(v) => v.to_string(),
        Scalar::Float(v) => v.to_string(),
        Scalar::Text(v) => (*v).to_owned(),
        Scalar::Bool(v) => v.to_string(),
        Scalar::Date(days) => chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
            .map_or_else(|| format!("day {days}"), |d| d.to_string()),
        Scalar::Timestamp(micros) => chrono::DateTime::from_timestamp_micros(*micros).map_or_else(
            || format!("{micros} µs"),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        Scalar::Decimal(v, s) => decimal_text(*v, *s),
    }
}

/// `value * 10^(to - from)` within `precision` digits.
fn rescale(value: i128, from: i8, precision: u8, to: i8) -> Option<i128> {
    let up = u32::try_from(i32::from(to) - i32::from(from)).ok()?;
    let scaled = value.checked_mul(10i128.checked_pow(up)?)?;
    (scaled.unsigned_abs() < 10u128.pow(u32::from(precision))).then_some(scaled)
}

fn cell<'a>(value: Scalar<'a>, target: ColumnType) -> Result<Cell<'a>, String> {
    let refused =
        |value: &Scalar<'_>| format!("{} does not fit {}", scalar_text(value), expected(target));
    Ok(match (target, value) {
        (_, Scalar::Null) => Cell::Null,
        (ColumnType::String, Scalar::Text(text)) => Cell::Text(Cow::Borrowed(text)),
        (ColumnType::String, other) => Cell::Text(Cow::Owned(scalar_text(&other))),
        (ColumnType::Int64, Scalar::Int(v)) => Cell::I64(v),
        (ColumnType::Int64, Scalar::UInt(v)) => {
            Cell::I64(i64::try_from(v).map_err(|_| refused(&Scalar::UInt(v)))?)
        }
        (ColumnType::Float64, Scalar::Float(v)) => Cell::F64(v),
        (ColumnType::Float64, Scalar::Int(v)) => Cell::F64(v as f64),
        (ColumnType::Float64, Scalar::UInt(v)) => Cell::F64(v as f64),
        (ColumnType::Boolean, Scalar::Bool(v)) => Cell::Bool(v),
        (ColumnType::Date, Scalar::Date(v)) => Cell::Date(v),
        (ColumnType::Timestamp, Scalar::Timestamp(v)) => Cell::Timestamp(v),
        (ColumnType::Timestamp, Scalar::Date(days)) => {
            Cell::Timestamp(i64::from(days) * DAY_MICROS)
        }
        (ColumnType::Decimal { precision, scale }, value) => {
            let fitted = match value {
                Scalar::Decimal(v, from) => rescale(v, from, precision, scale),
                Scalar::Int(v) => rescale(v.into(), 0, precision, scale),
                Scalar::UInt(v) => rescale(v.into(), 0, precision, scale),
                _ => None,
            };
            Cell::Decimal(fitted.ok_or_else(|| refused(&value))?)
        }
        (_, other) => return Err(refused(&other)),
    })
}

fn corrupt(error: impl std::fmt::Display) -> FileError {
    FileError::CorruptParquet(error.to_string())
}

pub(super) fn parse<E>(
    source: &dyn Source,
    limits: Limits,
    table: Option<&SchemaRef>,
    on_batch: impl FnMut(ParsedBatch) -> Result<(), E>,
) -> Result<ParseSummary, ParseError<E>> {
    let len = source.len();
    if len == 0 {
        return Err(FileError::Empty { compression: None }.into());
    }
    let read = |offset: u64, n: u64| {
        source.read_range(offset, n).map_err(|e| FileError::Read {
            offset,
            reason: e.to_string(),
        })
    };
    if len < 12 {
        return Err(FileError::NotParquet(format!("it has only {len} bytes")).into());
    }
    let (head, tail) = (read(0, 4)?, read(len - 4, 4)?);
    if &head[..] != MAGIC || &tail[..] != MAGIC {
        let hint = match crate::ingest::decompress::Compression::from_magic(&head) {
            Some(c) => format!(" (it starts like a {} file)", c.name()),
            None if head.is_ascii() => " (it starts like text: is it csv or jsonl?)".to_owned(),
            None => String::new(),
        };
        return Err(FileError::NotParquet(format!(
            "it does not start and end with the Parquet magic bytes PAR1{hint}"
        ))
        .into());
    }
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let metadata = ArrowReaderMetadata::load(&Ranges(source), options).map_err(corrupt)?;
    let file_schema = metadata.schema().clone();
    let mut names = Vec::new();
    let mut file_types = Vec::new();
    for field in file_schema.fields() {
        let lake =
            lake_type(field.data_type()).ok_or_else(|| FileError::UnsupportedParquetType {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            })?;
        names.push(field.name().clone());
        file_types.push(lake);
    }
    let plan = plan(
        &names,
        table,
        |at| file_types[at],
        |at, table_type| {
            if fits(file_types[at], table_type) {
                Ok(())
            } else {
                Err(file_types[at].to_string())
            }
        },
    )?;
    let parquet_metadata = metadata.metadata().clone();
    if parquet_metadata.file_metadata().num_rows() == 0 {
        return Err(FileError::NoRows { header_only: false }.into());
    }
    let mut rows = Rows {
        targets: plan
            .file_to_out
            .iter()
            .map(|&o| (o, plan.types[o], plan.nullable[o]))
            .collect(),
        out_has_file: (0..plan.types.len())
            .map(|o| plan.file_to_out.iter().position(|&f| f == o))
            .collect(),
        batcher: Batcher::new(plan, limits.batch_rows, on_batch),
        names,
        next_row: 1,
        bad: Vec::new(),
    };
    for (index, group) in parquet_metadata.row_groups().iter().enumerate() {
        let mut chunks = Vec::with_capacity(group.columns().len());
        for column in group.columns() {
            let (start, length) = column.byte_range();
            let bytes = read(start, length)?;
            if (bytes.len() as u64) < length {
                return Err(corrupt(format!(
                    "row group {index}'s column chunk at byte {start} runs past the end of the file"
                ))
                .into());
            }
            chunks.push((start, bytes));
        }
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
            RowGroupChunks { len, chunks },
            metadata.clone(),
        )
        .with_row_groups(vec![index])
        .with_batch_size(limits.batch_rows)
        .build()
        .map_err(corrupt)?;
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(format!("row group {index}: {e}")))?;
            rows.push(&batch)?;
        }
    }
    rows.batcher.finish(len)
}

struct Rows<F> {
    batcher: Batcher<F>,
    /// Per file column: its output column, the type there and whether it may be null.
    targets: Vec<(usize, ColumnType, bool)>,
    /// Per output column: the file column it comes from.
    out_has_file: Vec<Option<usize>>,
    names: Vec<String>,
    /// The 1-based number of the batch's first row in the file.
    next_row: u64,
    /// Per row of the batch: why it is refused, if it is.
    bad: Vec<Option<(usize, String)>>,
}

impl<F, E> Rows<F>
where
    F: FnMut(ParsedBatch) -> Result<(), E>,
{
    fn push(&mut self, batch: &RecordBatch) -> Result<(), ParseError<E>> {
        let n = batch.num_rows();
        self.bad.clear();
        self.bad.resize(n, None);
        for (column, &(_, target, nullable)) in self.targets.iter().enumerate() {
            let array = batch.column(column).as_ref();
            for row in 0..n {
                if self.bad[row].is_some() {
                    continue;
                }
                match scalar(array, row).and_then(|v| cell(v, target)) {
                    Ok(Cell::Null) if !nullable => {
                        let reason = format!("column {:?} may not be null", self.names[column]);
                        self.bad[row] = Some((column, reason));
                    }
                    Ok(_) => {}
                    Err(reason) => self.bad[row] = Some((column, reason)),
                }
            }
        }
        let mut good = 0;
        for row in 0..n {
            let Some((column, reason)) = self.bad[row].take() else {
                good += 1;
                continue;
            };
            let raw = (0..batch.num_columns())
                .map(|c| {
                    let value = scalar(batch.column(c).as_ref(), row)
                        .map_or_else(|e| e, |v| scalar_text(&v));
                    format!("{}={value}", self.names[c])
                })
                .collect::<Vec<_>>()
                .join(", ");
            self.bad[row] = Some((column, String::new()));
            self.batcher.reject(BadRow {
                line: self.next_row + row as u64,
                column: Some(self.names[column].clone()),
                reason,
                raw,
            })?;
        }
        self.batcher.make_room(good)?;
        for (out, source) in self.out_has_file.iter().enumerate() {
            let builder = &mut self.batcher.builders[out];
            match source {
                Some(column) => {
                    let array = batch.column(*column).as_ref();
                    let target = self.targets[*column].1;
                    for row in (0..n).filter(|&r| self.bad[r].is_none()) {
                        match scalar(array, row).and_then(|v| cell(v, target)) {
                            Ok(cell) => builder.append(cell),
                            Err(_) => builder.append_null(),
                        }
                    }
                }
                None => (0..good).for_each(|_| builder.append_null()),
            }
        }
        self.next_row += n as u64;
        self.batcher.rows_added(good)
    }
}
