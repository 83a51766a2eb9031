//! Encoders: record batches to CSV/TSV/PSV, JSONL or Parquet bytes, batch by batch, into a
//! [`ByteSink`] (docs/architecture.md, "The flow": an export file is encoder → compressor →
//! encryptor → multipart upload).
//!
//! The text encoders downcast each column once per batch ([`ColumnView`]), format every value
//! into one reusable buffer without allocating, and hand the buffer to the sink about every MiB.

mod delimited;
mod jsonl;
mod parquet;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    Array, BooleanArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use super::sink::ByteSink;
use crate::domain::connector::FileFormat;

/// Compression of the pages inside a Parquet file (Parquet files are not compressed again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCodec {
    Snappy,
    Gzip,
    Zstd,
}

/// Writes one export file: batches in, bytes out into the sink beneath.
pub trait BatchEncoder: Send {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), EncodeError>;
    /// Rows written so far.
    fn rows(&self) -> u64;
    /// Writes what remains (the header of an empty file, the Parquet footer), then finishes
    /// the sink. An encoder dropped without `finish` leaves a file that must not be completed.
    fn finish(self: Box<Self>) -> Result<(), EncodeError>;
    /// Writes what it holds and pauses the sink (see `ByteSink::pause`): the file continues in
    /// a later invocation, from the next row. Parquet cannot continue (its footer indexes the
    /// whole file) and refuses.
    fn pause(self: Box<Self>) -> Result<(), EncodeError> {
        Err(EncodeError::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this format cannot be continued by a later invocation",
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A value the file's settings cannot represent; `row` is 1-based among the file's data
    /// rows, 0 for the header row.
    #[error("column `{column}`, {}: {reason}; {remediation}", row_name(*.row))]
    Value {
        column: String,
        row: u64,
        reason: String,
        remediation: String,
    },
    #[error(
        "column `{column}` has type {data_type}, which exports cannot write; cast it to string, \
         int64, float64, decimal(p,s), boolean, date or timestamp (UTC)"
    )]
    Unsupported { column: String, data_type: String },
    /// Delimited-text settings that would make every file unreadable, whatever the data.
    #[error("format.{setting}: {reason}; {remediation}")]
    Settings {
        setting: &'static str,
        reason: String,
        remediation: String,
    },
    /// A batch whose columns are not the ones the encoder was made for.
    #[error("a batch has columns [{found}], the file was started with [{expected}]")]
    SchemaMismatch { expected: String, found: String },
    #[error("writing the export file: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the parquet file: {0}")]
    Parquet(String),
}

fn row_name(row: u64) -> String {
    if row == 0 {
        "header row".to_owned()
    } else {
        format!("row {row}")
    }
}

/// The encoder of `format` over `sink`; every column of `schema` must have a supported type
/// ([`column_type_name`]). `codec` applies to Parquet only.
pub fn encoder(
    format: &FileFormat,
    codec: ParquetCodec,
    schema: SchemaRef,
    sink: Box<dyn ByteSink>,
) -> Result<Box<dyn BatchEncoder>, EncodeError> {
    for field in schema.fields() {
        if column_type_name(field.data_type()).is_none() {
            return Err(EncodeError::Unsupported {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        }
    }
    Ok(match format {
        FileFormat::Delimited(settings) => {
            Box::new(delimited::DelimitedEncoder::new(settings, schema, sink)?)
        }
        FileFormat::Jsonl => Box::new(jsonl::JsonlEncoder::new(schema, sink)),
        FileFormat::Parquet => Box::new(parquet::ParquetEncoder::new(codec, schema, sink)?),
    })
}

/// The export's name of a column type ("string", "int64", "float64", "decimal(p,s)",
/// "boolean", "date", "timestamp"); `None` for a type exports cannot write. Timestamps must be
/// in UTC: a naive or zoned timestamp has no single `…Z` text.
pub fn column_type_name(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".to_owned(),
        DataType::Int64 => "int64".to_owned(),
        DataType::Float64 => "float64".to_owned(),
        DataType::Decimal128(precision, scale) => format!("decimal({precision},{scale})"),
        DataType::Boolean => "boolean".to_owned(),
        DataType::Date32 => "date".to_owned(),
        DataType::Timestamp(_, Some(tz)) if is_utc(tz) => "timestamp".to_owned(),
        _ => return None,
    })
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "+00:00" | "Z" | "Etc/UTC" | "+00")
}

/// Text encoders flush their buffer to the sink once it holds this much.
const FLUSH_AT: usize = 1 << 20;

/// Refuses a batch whose column types differ from the schema the encoder was made with (the
/// views below rely on it).
fn check_batch_schema(schema: &SchemaRef, batch: &RecordBatch) -> Result<(), EncodeError> {
    let same = batch.num_columns() == schema.fields().len()
        && batch
            .columns()
            .iter()
            .zip(schema.fields())
            .all(|(column, field)| column.data_type() == field.data_type());
    if same {
        return Ok(());
    }
    let describe = |types: Vec<String>| types.join(", ");
    Err(EncodeError::SchemaMismatch {
        expected: describe(
            schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect(),
        ),
        found: describe(
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect(),
        ),
    })
}

/// One column of a batch, downcast once.
pub(super) enum Values<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Int64(&'a [i64]),
    Float64(&'a [f64]),
    Decimal128 { values: &'a [i128], scale: i8 },
    Boolean(&'a BooleanArray),
    Date32(&'a [i32]),
    Timestamp { values: &'a [i64], unit: TimeUnit },
}

/// How a column's values read in text: quote modes treat numbers apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueClass {
    Text,
    Numeric,
    /// Boolean, date, timestamp: formatted by us, but not numbers.
    Other,
}

pub(super) struct ColumnView<'a> {
    pub values: Values<'a>,
    nulls: Option<&'a NullBuffer>,
}

impl<'a> ColumnView<'a> {
    /// `None` for a type [`column_type_name`] refuses.
    pub fn new(array: &'a dyn Array) -> Option<Self> {
        let values = match array.data_type() {
            DataType::Utf8 => Values::Utf8(array.as_string_opt::<i32>()?),
            DataType::LargeUtf8 => Values::LargeUtf8(array.as_string_opt::<i64>()?),
            DataType::Utf8View => Values::Utf8View(array.as_string_view_opt()?),
            DataType::Int64 => Values::Int64(array.as_primitive_opt::<Int64Type>()?.values()),
            DataType::Float64 => Values::Float64(array.as_primitive_opt::<Float64Type>()?.values()),
            DataType::Decimal128(_, scale) => Values::Decimal128 {
                values: array.as_primitive_opt::<Decimal128Type>()?.values(),
                scale: *scale,
            },
            DataType::Boolean => Values::Boolean(array.as_boolean_opt()?),
            DataType::Date32 => Values::Date32(array.as_primitive_opt::<Date32Type>()?.values()),
            DataType::Timestamp(unit, Some(tz)) if is_utc(tz) => {
                let values = match unit {
                    TimeUnit::Second => array.as_primitive_opt::<TimestampSecondType>()?.values(),
                    TimeUnit::Millisecond => array
                        .as_primitive_opt::<TimestampMillisecondType>()?
                        .values(),
                    TimeUnit::Microsecond => array
                        .as_primitive_opt::<TimestampMicrosecondType>()?
                        .values(),
                    TimeUnit::Nanosecond => array
                        .as_primitive_opt::<TimestampNanosecondType>()?
                        .values(),
                };
                Values::Timestamp {
                    values,
                    unit: *unit,
                }
            }
            _ => return None,
        };
        Some(Self {
            values,
            nulls: array.nulls(),
        })
    }

    /// The views of every column of a batch already checked by [`check_batch_schema`].
    pub fn of_batch(batch: &'a RecordBatch) -> Result<Vec<Self>, EncodeError> {
        batch
            .columns()
            .iter()
            .zip(batch.schema_ref().fields())
            .map(|(column, field)| {
                Self::new(column.as_ref()).ok_or_else(|| EncodeError::Unsupported {
                    column: field.name().clone(),
                    data_type: field.data_type().to_string(),
                })
            })
            .collect()
    }

    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.is_some_and(|nulls| nulls.is_null(row))
    }

    pub fn class(&self) -> ValueClass {
        match self.values {
            Values::Utf8(_) | Values::LargeUtf8(_) | Values::Utf8View(_) => ValueClass::Text,
            Values::Int64(_) | Values::Float64(_) | Values::Decimal128 { .. } => {
                ValueClass::Numeric
            }
            Values::Boolean(_) | Values::Date32(_) | Values::Timestamp { .. } => ValueClass::Other,
        }
    }

    /// The bytes of a string value; `None` for the other types (see [`Self::push_formatted`]).
    #[inline]
    pub fn text(&self, row: usize) -> Option<&'a [u8]> {
        match self.values {
            Values::Utf8(array) => Some(array.value(row).as_bytes()),
            Values::LargeUtf8(array) => Some(array.value(row).as_bytes()),
            Values::Utf8View(array) => Some(array.value(row).as_bytes()),
            _ => None,
        }
    }

    /// Appends the text of a non-string value as delimited text writes it (non-finite floats
    /// as `NaN`, `Infinity`, `-Infinity`).
    #[inline]
    pub fn push_formatted(&self, row: usize, out: &mut Vec<u8>) {
        match self.values {
            Values::Utf8(_) | Values::LargeUtf8(_) | Values::Utf8View(_) => {
                out.extend_from_slice(self.text(row).unwrap_or_default())
            }
            Values::Int64(values) => push_int(out, values[row]),
            Values::Float64(values) => {
                out.extend_from_slice(float_text(values[row], &mut zmij::Buffer::new()))
            }
            Values::Decimal128 { values, scale } => push_decimal(out, values[row], scale),
            Values::Boolean(array) => out.extend_from_slice(bool_text(array.value(row))),
            Values::Date32(values) => push_date(out, i64::from(values[row])),
            Values::Timestamp { values, unit } => push_timestamp(out, values[row], unit),
        }
    }
}

#[inline]
pub(super) fn push_int(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Shortest text that reads back as the same f64; non-finite values by name.
#[inline]
pub(super) fn float_text(value: f64, buffer: &mut zmij::Buffer) -> &[u8] {
    if value.is_finite() {
        buffer.format_finite(value).as_bytes()
    } else if value.is_nan() {
        b"NaN"
    } else if value > 0.0 {
        b"Infinity"
    } else {
        b"-Infinity"
    }
}

#[inline]
pub(super) fn bool_text(value: bool) -> &'static [u8] {
    if value { b"true" } else { b"false" }
}

/// The exact decimal text of `value` × 10^-`scale`, with every digit of the scale
/// (`-0.0001234500`, `0.00`): integer arithmetic only, never through f64.
pub(super) fn push_decimal(out: &mut Vec<u8>, value: i128, scale: i8) {
    if value < 0 {
        out.push(b'-');
    }
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value.unsigned_abs()).as_bytes();
    if scale <= 0 {
        out.extend_from_slice(digits);
        if value != 0 {
            out.resize(out.len() + usize::from(scale.unsigned_abs()), b'0');
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(whole);
        out.push(b'.');
        out.extend_from_slice(fraction);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    }
}

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Two digits of `value` (0..=99).
#[inline]
fn push_two(out: &mut Vec<u8>, value: u32) {
    let i = (value as usize % 100) * 2;
    out.extend_from_slice(&DIGIT_PAIRS[i..i + 2]);
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (proleptic Gregorian). Years outside
/// 0000..=9999 take ISO 8601's expanded form (`+10000-01-01`, `-0001-12-31`).
pub(super) fn push_date(out: &mut Vec<u8>, days_since_epoch: i64) {
    // Days to civil date, after H. Hinnant's `civil_from_days` (eras of 400 years).
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    if (0..=9999).contains(&year) {
        let year = year as u32; // in 0..=9999
        push_two(out, year / 100);
        push_two(out, year % 100);
    } else {
        out.push(if year < 0 { b'-' } else { b'+' });
        let mut buffer = itoa::Buffer::new();
        let digits = buffer.format(year.unsigned_abs());
        out.resize(out.len() + 4usize.saturating_sub(digits.len()), b'0');
        out.extend_from_slice(digits.as_bytes());
    }
    out.push(b'-');
    push_two(out, month as u32);
    out.push(b'-');
    push_two(out, day as u32);
}

/// ISO 8601 in UTC with the unit's precision: `2024-02-29T23:59:59.123456Z` (microseconds),
/// no fraction for seconds.
pub(super) fn push_timestamp(out: &mut Vec<u8>, value: i64, unit: TimeUnit) {
    let (per_second, fraction_digits): (i64, usize) = match unit {
        TimeUnit::Second => (1, 0),
        TimeUnit::Millisecond => (1_000, 3),
        TimeUnit::Microsecond => (1_000_000, 6),
        TimeUnit::Nanosecond => (1_000_000_000, 9),
    };
    let seconds = value.div_euclid(per_second);
    let fraction = value.rem_euclid(per_second);
    push_date(out, seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400) as u32; // in 0..86_400
    out.push(b'T');
    push_two(out, second_of_day / 3600);
    out.push(b':');
    push_two(out, second_of_day / 60 % 60);
    out.push(b':');
    push_two(out, second_of_day % 60);
    if fraction_digits > 0 {
        out.push(b'.');
        let mut buffer = itoa::Buffer::new();
        let digits = buffer.format(fraction);
        out.resize(out.len() + fraction_digits - digits.len(), b'0');
        out.extend_from_slice(digits.as_bytes());
    }
    out.push(b'Z');
}

#[cfg(test)]
pub(super) mod test_support {
    //! Batches with every supported type, for the encoders' tests.

    use std::sync::Arc;

    use arrow_array::builder::{
        BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
        StringBuilder, TimestampMicrosecondBuilder,
    };
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

    /// One column of nullable strings named `name`.
    pub fn strings(name: &str, values: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(values.to_vec())) as ArrayRef],
        )
        .expect("batch")
    }

    pub fn mixed_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("amount", DataType::Decimal128(38, 10), true),
            Field::new("active", DataType::Boolean, true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]))
    }

    /// Two rows of every type plus a row of nulls.
    pub fn mixed_batch() -> RecordBatch {
        let mut id = Int64Builder::new();
        id.append_value(-9_223_372_036_854_775_808);
        id.append_value(42);
        id.append_null();
        let mut name = StringBuilder::new();
        name.append_value("a,b \"c\"");
        name.append_value("");
        name.append_null();
        let mut score = Float64Builder::new();
        score.append_value(0.1);
        score.append_value(f64::NAN);
        score.append_null();
        let mut amount = Decimal128Builder::new()
            .with_precision_and_scale(38, 10)
            .expect("decimal type");
        amount.append_value(-1_234_500);
        amount.append_value(12_345_678_901_234_567_890_123_456_789_012_345_678);
        amount.append_null();
        let mut active = BooleanBuilder::new();
        active.append_value(true);
        active.append_value(false);
        active.append_null();
        let mut day = Date32Builder::new();
        day.append_value(0);
        day.append_value(11_016);
        day.append_null();
        let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        at.append_value(1_709_251_199_123_456);
        at.append_value(0);
        at.append_null();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(score.finish()),
            Arc::new(amount.finish()),
            Arc::new(active.finish()),
            Arc::new(day.finish()),
            Arc::new(at.finish()),
        ];
        RecordBatch::try_new(mixed_schema(), columns).expect("batch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(push: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        push(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn decimals_are_exact_with_their_scale() {
        let cases: &[(i128, i8, &str)] = &[
            (12_345, 2, "123.45"),
            (0, 2, "0.00"),
            (-1_234_500, 10, "-0.0001234500"),
            (5, 1, "0.5"),
            (-5, 1, "-0.5"),
            (100, 2, "1.00"),
            (7, 0, "7"),
            (0, 0, "0"),
            (-42, 0, "-42"),
            (5, -2, "500"),
            (0, -3, "0"),
            (
                99_999_999_999_999_999_999_999_999_999_999_999_999,
                10,
                "9999999999999999999999999999.9999999999",
            ),
            (
                -99_999_999_999_999_999_999_999_999_999_999_999_999,
                38,
                "-0.99999999999999999999999999999999999999",
            ),
            (1, 38, "0.00000000000000000000000000000000000001"),
            (i128::MIN, 10, "-17014118346046923173168730371.5884105728"),
        ];
        for &(value, scale, expected) in cases {
            assert_eq!(
                text(|out| push_decimal(out, value, scale)),
                expected,
                "{value} scale {scale}"
            );
        }
    }

    #[test]
    fn floats_are_shortest_round_trip_text() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-7"),
            (123_456.789, "123456.789"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(value, expected) in cases {
            let mut buffer = zmij::Buffer::new();
            let written = std::str::from_utf8(float_text(value, &mut buffer))
                .expect("utf-8")
                .to_owned();
            assert_eq!(written, expected, "{value:?}");
            if value.is_finite() {
                let back: f64 = written.parse().expect("reads back");
                assert_eq!(back.to_bits(), value.to_bits(), "{written} round-trips");
            }
        }
    }

    #[test]
    fn integers_cover_the_range() {
        for (value, expected) in [
            (0, "0"),
            (-1, "-1"),
            (i64::MAX, "9223372036854775807"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            assert_eq!(text(|out| push_int(out, value)), expected);
        }
    }

    #[test]
    fn dates_are_iso_days() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01"),
            (-1, "1969-12-31"),
            (11_016, "2000-02-29"),
            (19_782, "2024-02-29"),
            (2_932_896, "9999-12-31"),
            (2_932_897, "+10000-01-01"),
            (-719_528, "0000-01-01"),
            (-719_529, "-0001-12-31"),
            (i64::from(i32::MAX), "+5881580-07-11"),
            (i64::from(i32::MIN), "-5877641-06-23"),
        ];
        for &(days, expected) in cases {
            assert_eq!(text(|out| push_date(out, days)), expected, "{days}");
        }
        // Every day of four centuries agrees with chrono.
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        for days in (-146_097 * 2..146_097 * 2).step_by(7) {
            let expected = (epoch + chrono::Duration::days(days))
                .format("%Y-%m-%d")
                .to_string();
            assert_eq!(text(|out| push_date(out, days)), expected, "{days}");
        }
    }

    #[test]
    fn timestamps_carry_their_unit_precision() {
        let cases: &[(i64, TimeUnit, &str)] = &[
            (0, TimeUnit::Second, "1970-01-01T00:00:00Z"),
            (1_709_251_199, TimeUnit::Second, "2024-02-29T23:59:59Z"),
            (
                1_709_251_199_123,
                TimeUnit::Millisecond,
                "2024-02-29T23:59:59.123Z",
            ),
            (
                1_709_251_199_123_456,
                TimeUnit::Microsecond,
                "2024-02-29T23:59:59.123456Z",
            ),
            (
                1_709_251_199_123_456_789,
                TimeUnit::Nanosecond,
                "2024-02-29T23:59:59.123456789Z",
            ),
            (1, TimeUnit::Microsecond, "1970-01-01T00:00:00.000001Z"),
            (-1, TimeUnit::Millisecond, "1969-12-31T23:59:59.999Z"),
            (-1, TimeUnit::Second, "1969-12-31T23:59:59Z"),
            (
                i64::MIN,
                TimeUnit::Nanosecond,
                "1677-09-21T00:12:43.145224192Z",
            ),
            (
                i64::MAX,
                TimeUnit::Nanosecond,
                "2262-04-11T23:47:16.854775807Z",
            ),
            (253_402_300_799, TimeUnit::Second, "9999-12-31T23:59:59Z"),
        ];
        for &(value, unit, expected) in cases {
            assert_eq!(
                text(|out| push_timestamp(out, value, unit)),
                expected,
                "{value} {unit:?}"
            );
        }
    }

    #[test]
    fn column_types_have_export_names_or_are_refused() {
        let utc = |unit| DataType::Timestamp(unit, Some("UTC".into()));
        let cases: Vec<(DataType, Option<&str>)> = vec![
            (DataType::Utf8, Some("string")),
            (DataType::LargeUtf8, Some("string")),
            (DataType::Utf8View, Some("string")),
            (DataType::Int64, Some("int64")),
            (DataType::Float64, Some("float64")),
            (DataType::Decimal128(38, 10), Some("decimal(38,10)")),
            (DataType::Decimal128(9, 0), Some("decimal(9,0)")),
            (DataType::Boolean, Some("boolean")),
            (DataType::Date32, Some("date")),
            (utc(TimeUnit::Second), Some("timestamp")),
            (utc(TimeUnit::Millisecond), Some("timestamp")),
            (utc(TimeUnit::Microsecond), Some("timestamp")),
            (utc(TimeUnit::Nanosecond), Some("timestamp")),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                Some("timestamp"),
            ),
            (DataType::Timestamp(TimeUnit::Microsecond, None), None),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())),
                None,
            ),
            (DataType::Int32, None),
            (DataType::Float32, None),
            (DataType::Date64, None),
            (DataType::Binary, None),
            (DataType::Null, None),
        ];
        for (data_type, expected) in cases {
            assert_eq!(
                column_type_name(&data_type).as_deref(),
                expected,
                "{data_type}"
            );
        }
    }

    #[test]
    fn unsupported_columns_are_refused_at_construction_for_every_format() {
        use std::sync::Arc;

        use arrow_schema::{Field, Schema};

        use crate::domain::connector::{DelimitedFormat, Dialect};
        use crate::export::sink::MemorySink;

        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "local_time",
                DataType::Timestamp(TimeUnit::Second, None),
                true,
            ),
        ]));
        let formats = [
            FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })),
            FileFormat::Jsonl,
            FileFormat::Parquet,
        ];
        for format in formats {
            let error = encoder(
                &format,
                ParquetCodec::Snappy,
                schema.clone(),
                Box::new(MemorySink::default()),
            )
            .err()
            .expect("refused");
            assert!(
                matches!(&error, EncodeError::Unsupported { column, .. } if column == "local_time"),
                "{error:?}"
            );
            assert!(error.to_string().contains("`local_time`"), "{error}");
        }
    }

    #[test]
    fn batches_of_another_schema_are_refused() {
        use crate::domain::connector::{DelimitedFormat, Dialect};
        use crate::export::sink::MemorySink;

        let formats = [
            FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })),
            FileFormat::Jsonl,
            FileFormat::Parquet,
        ];
        for format in formats {
            let mut encoder = encoder(
                &format,
                ParquetCodec::Snappy,
                test_support::mixed_schema(),
                Box::new(MemorySink::default()),
            )
            .expect("encoder");
            let error = encoder
                .write_batch(&test_support::strings("id", &[Some("1")]))
                .expect_err("refused");
            assert!(
                matches!(
                    error,
                    EncodeError::SchemaMismatch { .. } | EncodeError::Parquet(_)
                ),
                "{format:?}: {error:?}"
            );
        }
    }
}
