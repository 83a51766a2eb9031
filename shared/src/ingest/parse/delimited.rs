//! CSV, TSV and PSV: records by the `csv` crate into one reused `ByteRecord`, each field
//! parsed from its bytes straight into the column builders.

use arrow_schema::SchemaRef;
use csv::ByteRecord;

use super::columns::{Batcher, Inferred, Value, classify_text, parse_text, plan};
use super::text::{TextStream, file_error};
use super::{BadRow, FileError, Limits, ParseError, ParseSummary, ParsedBatch};
use crate::domain::connector::{DelimitedFormat, QuoteMode};
use crate::lake::schema::ColumnType;

/// The most bytes of records held for inference, whatever `infer_rows` says.
const SAMPLE_BYTE_LIMIT: usize = 32 << 20;

fn ascii(setting: &str, c: char) -> Result<u8, FileError> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        FileError::Settings(format!(
            "the {setting} must be one ASCII character, not {c:?}"
        ))
    })
}

/// The reader of `format`. The escape character equal to the quote means doubled quotes
/// (`""`); another one escapes the character after it inside quotes (`\"`). Quote mode
/// `never` reads quote characters as ordinary text.
fn reader<'a>(
    stream: TextStream<'a>,
    format: &DelimitedFormat,
) -> Result<csv::Reader<TextStream<'a>>, FileError> {
    let delimiter = ascii("delimiter", format.delimiter())?;
    let quote = ascii("quote character", format.quote_char)?;
    let escape = ascii("escape character", format.escape_char)?;
    if delimiter == quote || delimiter == escape {
        return Err(FileError::Settings(format!(
            "the delimiter {:?} is also the quote or escape character",
            format.delimiter()
        )));
    }
    Ok(csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(64 << 10)
        .delimiter(delimiter)
        .quote(quote)
        .quoting(format.quote != QuoteMode::Never)
        .double_quote(escape == quote)
        .escape((escape != quote).then_some(escape))
        .from_reader(stream))
}

/// The next record into `record`; false at the end.
fn next(
    reader: &mut csv::Reader<TextStream<'_>>,
    record: &mut ByteRecord,
) -> Result<bool, FileError> {
    let read = reader.read_byte_record(record).map_err(|e| {
        let offset = e.position().map_or(0, |p| p.byte());
        match e.into_kind() {
            csv::ErrorKind::Io(io) => file_error(&io, offset),
            other => FileError::Read {
                offset,
                reason: format!("{other:?}"),
            },
        }
    })?;
    let position = reader.position().clone();
    reader
        .get_mut()
        .mark_record_start(position.byte(), position.line());
    Ok(read)
}

/// Header names: an empty name becomes `column_N` (N its 1-based position), as for a file
/// without a header; a name given twice is an error, since either column could be meant.
fn header_names(record: &ByteRecord) -> Result<Vec<String>, FileError> {
    let line = record.position().map_or(1, |p| p.line());
    let mut names: Vec<String> = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let name = std::str::from_utf8(field).map_err(|_| FileError::HeaderNotUtf8 { line })?;
        let name = if name.is_empty() {
            format!("column_{}", i + 1)
        } else {
            name.to_owned()
        };
        if let Some(first) = names.iter().position(|n| *n == name) {
            return Err(FileError::DuplicateColumn {
                name,
                first: first + 1,
                second: i + 1,
            });
        }
        names.push(name);
    }
    Ok(names)
}

pub(super) fn parse<E>(
    stream: TextStream<'_>,
    format: &DelimitedFormat,
    limits: Limits,
    table: Option<&SchemaRef>,
    on_batch: impl FnMut(ParsedBatch) -> Result<(), E>,
) -> Result<ParseSummary, ParseError<E>> {
    let mut reader = reader(stream, format)?;
    let mut record = ByteRecord::new();
    let header = if format.header {
        if !next(&mut reader, &mut record)? {
            return Err(FileError::NoRows { header_only: false }.into());
        }
        Some(header_names(&record)?)
    } else {
        None
    };

    let mut sample = Vec::new();
    let mut sample_bytes = 0;
    while sample.len() < limits.infer_rows && sample_bytes < SAMPLE_BYTE_LIMIT {
        if !next(&mut reader, &mut record)? {
            break;
        }
        sample_bytes += record.as_slice().len() + 8 * record.len();
        sample.push(record.clone());
    }
    let Some(first) = sample.first() else {
        return Err(FileError::NoRows {
            header_only: header.is_some(),
        }
        .into());
    };
    let names = header
        .clone()
        .unwrap_or_else(|| (1..=first.len()).map(|i| format!("column_{i}")).collect());
    let null = format.null_value.as_bytes();
    let mut inferred = vec![Inferred::Null; names.len()];
    for row in sample.iter().filter(|r| r.len() == names.len()) {
        for (column, field) in inferred.iter_mut().zip(row.iter()) {
            if *column != Inferred::Text && !field.is_empty() && field != null {
                *column = column.merge(classify_text(field));
            }
        }
    }
    let plan = plan(
        &names,
        table,
        |at| inferred[at].column_type(),
        |at, table_type| {
            if inferred[at].fits(table_type) {
                Ok(())
            } else {
                Err(inferred[at].name().to_owned())
            }
        },
    )?;
    let mut rows = Rows {
        types: plan.file_to_out.iter().map(|&o| plan.types[o]).collect(),
        file_to_out: plan.file_to_out.clone(),
        batcher: Batcher::new(plan, limits.batch_rows, on_batch),
        names,
        width_of: if header.is_some() {
            "the header"
        } else {
            "the first row"
        },
        null: null.to_vec(),
        delimiter: format.delimiter() as u8,
    };
    for record in &sample {
        rows.push(record)?;
    }
    drop(sample);
    while next(&mut reader, &mut record)? {
        rows.push(&record)?;
    }
    let content_bytes = reader.get_ref().content_bytes();
    rows.batcher.finish(content_bytes)
}

struct Rows<F> {
    batcher: Batcher<F>,
    /// Per column of the file: its type and its output column.
    types: Vec<ColumnType>,
    file_to_out: Vec<usize>,
    names: Vec<String>,
    width_of: &'static str,
    null: Vec<u8>,
    delimiter: u8,
}

impl<F, E> Rows<F>
where
    F: FnMut(ParsedBatch) -> Result<(), E>,
{
    /// One record into the batch, or refused. An empty field is null in every column but
    /// text, where only the format's null value is.
    fn push(&mut self, record: &ByteRecord) -> Result<(), ParseError<E>> {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != self.types.len() {
            let reason = format!(
                "has {} fields, {} has {}",
                record.len(),
                self.width_of,
                self.types.len()
            );
            return self.refuse(record, line, None, reason);
        }
        let ascii = record.as_slice().is_ascii();
        for (at, field) in record.iter().enumerate() {
            let column_type = self.types[at];
            // The usual null value is empty: a length check, not a comparison per field.
            let is_null = if self.null.is_empty() {
                field.is_empty()
            } else {
                field == self.null.as_slice()
            };
            let value = if is_null {
                Value::Null
            } else if column_type == ColumnType::String {
                if !ascii && std::str::from_utf8(field).is_err() {
                    return self.refuse(record, line, Some(at), not_utf8(field));
                }
                Value::Field(at)
            } else if field.is_empty() {
                Value::Null
            } else {
                match parse_text(column_type, field) {
                    Ok(value) => value,
                    Err(reason) => {
                        let reason = if !ascii && std::str::from_utf8(field).is_err() {
                            not_utf8(field)
                        } else {
                            reason
                        };
                        return self.refuse(record, line, Some(at), reason);
                    }
                }
            };
            self.batcher.row[self.file_to_out[at]] = value;
        }
        let delimiter = self.delimiter;
        self.batcher
            .commit(Some(record), line, || raw_text(record, delimiter))
    }

    fn refuse(
        &mut self,
        record: &ByteRecord,
        line: u64,
        column: Option<usize>,
        reason: String,
    ) -> Result<(), ParseError<E>> {
        let bad = BadRow {
            line,
            column: column.map(|c| self.names[c].clone()),
            reason,
            raw: raw_text(record, self.delimiter),
        };
        self.batcher.reject(bad)
    }
}

fn not_utf8(field: &[u8]) -> String {
    let at = std::str::from_utf8(field).map_or_else(|e| e.valid_up_to(), |_| 0);
    format!(
        "the value is not valid UTF-8 (byte 0x{:02x} at position {})",
        field[at],
        at + 1
    )
}

/// The record's fields joined by the delimiter, as far as a bad row keeps them.
fn raw_text(record: &ByteRecord, delimiter: u8) -> String {
    let mut raw = Vec::with_capacity(record.as_slice().len() + record.len());
    for (i, field) in record.iter().enumerate() {
        if i > 0 {
            raw.push(delimiter);
        }
        raw.extend_from_slice(field);
        if raw.len() > super::BAD_ROW_RAW_LIMIT {
            break;
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}
