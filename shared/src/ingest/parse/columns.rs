//! What the formats share: the types inferred from a sample, the output schema against the
//! table's, the column builders and the batching of rows and bad rows.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatchOptions};
use arrow_schema::{Field, Schema, SchemaRef};

use super::values::{
    DecimalError, looks_like_float, parse_bool, parse_date, parse_decimal, parse_f64, parse_i64,
    parse_timestamp,
};
use super::{BAD_ROW_RAW_LIMIT, BadRow, FileError, ParseError, ParseSummary, ParsedBatch};
use super::{cut, quoted};
use crate::lake::schema::{ColumnType, TIMESTAMP_TIME_ZONE, lake_schema};

/// A column's type as its sampled values show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inferred {
    /// No value in the sample but nulls.
    Null,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Text,
}

impl Inferred {
    pub(super) fn merge(self, other: Inferred) -> Inferred {
        use Inferred::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Int, Float) | (Float, Int) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Text,
        }
    }

    /// The lake type of a new column; a column of nulls only is text.
    pub(super) fn column_type(self) -> ColumnType {
        match self {
            Inferred::Null | Inferred::Text => ColumnType::String,
            Inferred::Int => ColumnType::Int64,
            Inferred::Float => ColumnType::Float64,
            Inferred::Bool => ColumnType::Boolean,
            Inferred::Date => ColumnType::Date,
            Inferred::Timestamp => ColumnType::Timestamp,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Inferred::Null => "null",
            Inferred::Text => "string",
            other => match other.column_type() {
                ColumnType::Int64 => "int64",
                ColumnType::Float64 => "float64",
                ColumnType::Boolean => "boolean",
                ColumnType::Date => "date",
                _ => "timestamp",
            },
        }
    }

    /// Whether a table column of type `table` takes the text values sampled as `self`: the
    /// same type, a column of nulls, a widening that keeps every value (an integer into a
    /// float or a decimal, a number into a decimal, whose value is then checked row by row,
    /// a date into a timestamp at midnight UTC), or text, which keeps the values as written.
    pub(super) fn fits(self, table: ColumnType) -> bool {
        use Inferred::*;
        matches!(
            (table, self),
            (_, Null)
                | (ColumnType::String, _)
                | (ColumnType::Int64, Int)
                | (ColumnType::Float64, Int | Float)
                | (ColumnType::Decimal { .. }, Int | Float)
                | (ColumnType::Boolean, Bool)
                | (ColumnType::Date, Date)
                | (ColumnType::Timestamp, Date | Timestamp)
        )
    }
}

/// The type of one non-null text value. Integers with a leading zero (`007`, zip codes and
/// account numbers) and integers beyond the int64 range are text, so that no digit is lost.
pub(super) fn classify_text(text: &[u8]) -> Inferred {
    let digits = text
        .strip_prefix(b"-")
        .or(text.strip_prefix(b"+"))
        .unwrap_or(text);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        if digits.len() > 1 && digits[0] == b'0' || parse_i64(text).is_none() {
            return Inferred::Text;
        }
        return Inferred::Int;
    }
    if looks_like_float(text) {
        return Inferred::Float;
    }
    if parse_bool(text).is_some() {
        return Inferred::Bool;
    }
    if parse_date(text).is_some() {
        return Inferred::Date;
    }
    if parse_timestamp(text).is_some() {
        return Inferred::Timestamp;
    }
    Inferred::Text
}

/// How the file's columns land in the output schema.
#[derive(Debug)]
pub(super) struct Plan {
    pub schema: SchemaRef,
    pub types: Vec<ColumnType>,
    pub nullable: Vec<bool>,
    /// For each column of the file, its column in the output.
    pub file_to_out: Vec<usize>,
    pub new_columns: Vec<String>,
}

/// The output schema of a file whose columns are `file_columns` (names and their types as
/// `new_type` gives them), against the table's schema when there is one; `fits` says whether
/// a file column can be read into a table column of the given type, or names the file's type.
pub(super) fn plan(
    file_columns: &[String],
    table: Option<&SchemaRef>,
    new_type: impl Fn(usize) -> ColumnType,
    fits: impl Fn(usize, ColumnType) -> Result<(), String>,
) -> Result<Plan, FileError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut types = Vec::new();
    let mut file_to_out = vec![usize::MAX; file_columns.len()];
    let mut new_columns = Vec::new();
    if let Some(table) = table {
        for field in table.fields() {
            let table_type = ColumnType::from_data_type(field.data_type()).ok_or_else(|| {
                FileError::Schema(format!(
                    "the table's column {:?} has type {}, which the lake does not store",
                    field.name(),
                    field.data_type()
                ))
            })?;
            match file_columns.iter().position(|n| n == field.name()) {
                Some(at) => {
                    fits(at, table_type).map_err(|file_type| FileError::IncompatibleColumn {
                        column: field.name().clone(),
                        table_type: table_type.to_string(),
                        file_type,
                    })?;
                    file_to_out[at] = fields.len();
                }
                None if !field.is_nullable() => {
                    return Err(FileError::MissingRequiredColumn {
                        column: field.name().clone(),
                    });
                }
                None => {}
            }
            fields.push(Field::new(
                field.name(),
                table_type.data_type(),
                field.is_nullable(),
            ));
            types.push(table_type);
        }
    }
    for (at, name) in file_columns.iter().enumerate() {
        if file_to_out[at] != usize::MAX {
            continue;
        }
        let column_type = new_type(at);
        file_to_out[at] = fields.len();
        fields.push(Field::new(name, column_type.data_type(), true));
        types.push(column_type);
        if table.is_some() {
            new_columns.push(name.clone());
        }
    }
    let nullable = fields.iter().map(|f| f.is_nullable()).collect();
    let schema = lake_schema(&Schema::new(fields)).map_err(|e| FileError::Schema(e.to_string()))?;
    Ok(Plan {
        schema,
        types,
        nullable,
        file_to_out,
        new_columns,
    })
}

/// A column's value for the row being assembled, before it is appended.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) enum Value {
    #[default]
    Null,
    I64(i64),
    F64(f64),
    Bool(bool),
    Date(i32),
    Timestamp(i64),
    Decimal(i128),
    /// Field `n` of the delimited record, already checked to be UTF-8.
    Field(usize),
    Text(String),
}

/// A value as its builder takes it.
pub(super) enum Cell<'a> {
    Null,
    I64(i64),
    F64(f64),
    Bool(bool),
    Date(i32),
    Timestamp(i64),
    Decimal(i128),
    Text(Cow<'a, str>),
}

/// "an int64", "a date (YYYY-MM-DD)": what a value failed to be.
pub(super) fn expected(column_type: ColumnType) -> String {
    match column_type {
        ColumnType::String => "a string".to_owned(),
        ColumnType::Int64 => "an int64".to_owned(),
        ColumnType::Float64 => "a float64".to_owned(),
        ColumnType::Boolean => "a boolean (true or false)".to_owned(),
        ColumnType::Date => "a date (YYYY-MM-DD)".to_owned(),
        ColumnType::Timestamp => "a timestamp (RFC 3339)".to_owned(),
        ColumnType::Decimal { .. } => format!("a {column_type}"),
    }
}

/// A non-null text value read as `column_type` (not text: the callers keep text as it is).
pub(super) fn parse_text(column_type: ColumnType, text: &[u8]) -> Result<Value, String> {
    let value = match column_type {
        ColumnType::Int64 => parse_i64(text).map(Value::I64),
        ColumnType::Float64 => parse_f64(text).map(Value::F64),
        ColumnType::Boolean => parse_bool(text).map(Value::Bool),
        ColumnType::Date => parse_date(text).map(Value::Date),
        ColumnType::Timestamp => parse_timestamp(text).map(Value::Timestamp),
        ColumnType::Decimal { precision, scale } => {
            return match parse_decimal(text, precision, scale) {
                Ok(v) => Ok(Value::Decimal(v)),
                Err(DecimalError::NotANumber) => {
                    Err(format!("{} is not {}", quoted(text), expected(column_type)))
                }
                Err(DecimalError::TooManyPlaces) => Err(format!(
                    "{} has more than {scale} decimal places, the most {column_type} keeps",
                    quoted(text)
                )),
                Err(DecimalError::TooManyDigits) => Err(format!(
                    "{} has too many digits for {column_type}",
                    quoted(text)
                )),
            };
        }
        ColumnType::String => Some(Value::Text(String::from_utf8_lossy(text).into_owned())),
    };
    value.ok_or_else(|| format!("{} is not {}", quoted(text), expected(column_type)))
}

pub(super) enum Builder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder),
}

impl Builder {
    fn new(column_type: ColumnType, rows: usize) -> Builder {
        match column_type {
            ColumnType::String => Builder::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
            ColumnType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            ColumnType::Timestamp => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(TIMESTAMP_TIME_ZONE),
            ),
            ColumnType::Decimal { .. } => Builder::Decimal(
                Decimal128Builder::with_capacity(rows).with_data_type(column_type.data_type()),
            ),
        }
    }

    /// Appends `cell`, which the caller made of this builder's type (anything else is null).
    pub(super) fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Builder::Utf8(b), Cell::Text(t)) => b.append_value(t),
            (Builder::Int64(b), Cell::I64(v)) => b.append_value(v),
            (Builder::Float64(b), Cell::F64(v)) => b.append_value(v),
            (Builder::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Date(b), Cell::Date(v)) => b.append_value(v),
            (Builder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(v),
            (Builder::Decimal(b), Cell::Decimal(v)) => b.append_value(v),
            (builder, cell) => {
                debug_assert!(matches!(cell, Cell::Null), "a cell of another type");
                builder.append_null();
            }
        }
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Builder::Utf8(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Decimal(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Decimal(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows into batches of `batch_rows`, with the bad rows met on the way; a batch is also
/// handed over when `batch_rows` bad rows are waiting, so that a file of refused rows does
/// not pile them up.
pub(super) struct Batcher<F> {
    pub plan: Plan,
    pub builders: Vec<Builder>,
    /// The row being assembled, one value per output column (all null between rows).
    pub row: Vec<Value>,
    bad_rows: Vec<BadRow>,
    rows_in_batch: usize,
    rows: u64,
    bad_total: u64,
    batch_rows: usize,
    on_batch: F,
}

impl<F, E> Batcher<F>
where
    F: FnMut(ParsedBatch) -> Result<(), E>,
{
    pub(super) fn new(plan: Plan, batch_rows: usize, on_batch: F) -> Self {
        let builders = plan
            .types
            .iter()
            .map(|t| Builder::new(*t, batch_rows))
            .collect();
        let row = vec![Value::Null; plan.types.len()];
        Self {
            plan,
            builders,
            row,
            bad_rows: Vec::new(),
            rows_in_batch: 0,
            rows: 0,
            bad_total: 0,
            batch_rows,
            on_batch,
        }
    }

    /// Appends the assembled row (`fields` resolves [`Value::Field`]), or refuses it when a
    /// column that may not be null is.
    pub(super) fn commit(
        &mut self,
        fields: Option<&csv::ByteRecord>,
        line: u64,
        raw: impl FnOnce() -> String,
    ) -> Result<(), ParseError<E>> {
        if let Some(column) =
            (0..self.row.len()).find(|&c| !self.plan.nullable[c] && self.row[c] == Value::Null)
        {
            let name = self.plan.schema.field(column).name().clone();
            return self.reject(BadRow {
                line,
                reason: format!("column {name:?} may not be null"),
                column: Some(name),
                raw: raw(),
            });
        }
        // One UTF-8 check of the whole record instead of one per text field (a record with a
        // bad byte in a field that is not text falls back to checking each field).
        let record_text = fields.and_then(|f| std::str::from_utf8(f.as_slice()).ok());
        for (builder, value) in self.builders.iter_mut().zip(self.row.iter_mut()) {
            let cell = match std::mem::take(value) {
                Value::Null => Cell::Null,
                Value::I64(v) => Cell::I64(v),
                Value::F64(v) => Cell::F64(v),
                Value::Bool(v) => Cell::Bool(v),
                Value::Date(v) => Cell::Date(v),
                Value::Timestamp(v) => Cell::Timestamp(v),
                Value::Decimal(v) => Cell::Decimal(v),
                Value::Text(text) => Cell::Text(Cow::Owned(text)),
                Value::Field(n) => {
                    let text = match (record_text, fields) {
                        (Some(text), Some(f)) => f.range(n).and_then(|r| text.get(r)),
                        _ => fields
                            .and_then(|f| f.get(n))
                            .and_then(|bytes| std::str::from_utf8(bytes).ok()),
                    };
                    Cell::Text(Cow::Borrowed(text.unwrap_or_default()))
                }
            };
            builder.append(cell);
        }
        self.rows_added(1)
    }

    /// Hands over the batch being built if `rows` more would make it longer than a batch.
    pub(super) fn make_room(&mut self, rows: usize) -> Result<(), ParseError<E>> {
        if self.rows_in_batch > 0 && self.rows_in_batch + rows > self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Counts rows the caller appended to every builder itself.
    pub(super) fn rows_added(&mut self, rows: usize) -> Result<(), ParseError<E>> {
        self.rows_in_batch += rows;
        self.rows += rows as u64;
        if self.rows_in_batch >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Refuses the row being assembled.
    pub(super) fn reject(&mut self, mut bad: BadRow) -> Result<(), ParseError<E>> {
        self.row.fill(Value::Null);
        bad.raw = cut(std::mem::take(&mut bad.raw), BAD_ROW_RAW_LIMIT);
        self.bad_rows.push(bad);
        self.bad_total += 1;
        if self.bad_rows.len() >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParseError<E>> {
        if self.rows_in_batch == 0 && self.bad_rows.is_empty() {
            return Ok(());
        }
        let columns = self.builders.iter_mut().map(Builder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows_in_batch));
        let batch = RecordBatch::try_new_with_options(self.plan.schema.clone(), columns, &options)
            .map_err(|e| FileError::Schema(format!("a batch does not match its schema: {e}")))?;
        self.rows_in_batch = 0;
        let bad_rows = std::mem::take(&mut self.bad_rows);
        (self.on_batch)(ParsedBatch { batch, bad_rows }).map_err(ParseError::Stopped)
    }

    pub(super) fn finish(mut self, content_bytes: u64) -> Result<ParseSummary, ParseError<E>> {
        self.flush()?;
        Ok(ParseSummary {
            rows: self.rows,
            bad_rows: self.bad_total,
            schema: self.plan.schema,
            content_bytes,
            new_columns: self.plan.new_columns,
        })
    }
}
