//! JSON Lines: one object per line, blank lines skipped. The columns are the keys met in the
//! sampled lines, in the order they first appear (and the table's); a later line with a key
//! outside them is refused rather than dropped silently or widening the schema mid-file,
//! which batches already handed over could not follow.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};

use arrow_schema::SchemaRef;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value as Json;

use super::columns::{Batcher, Inferred, Value, expected, parse_text, plan};
use super::text::{TextStream, file_error};
use super::values::{parse_date, parse_timestamp};
use super::{BAD_ROW_RAW_LIMIT, BadRow, FileError, Limits, ParseError, ParseSummary, ParsedBatch};
use crate::lake::schema::ColumnType;

/// The most bytes of lines held for inference, whatever `infer_rows` says.
const SAMPLE_BYTE_LIMIT: usize = 32 << 20;

/// A JSON object's members in the order of the text.
struct Object(Vec<(String, Json)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Object(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// The type of one JSON value: strings are text unless they read as a date or timestamp;
/// arrays and objects are kept as their JSON text; integers beyond int64 are text too.
fn classify(value: &Json) -> Inferred {
    match value {
        Json::Null => Inferred::Null,
        Json::Bool(_) => Inferred::Bool,
        Json::Number(n) if n.is_i64() => Inferred::Int,
        Json::Number(n) if n.is_u64() => Inferred::Text,
        Json::Number(_) => Inferred::Float,
        Json::String(s) if parse_date(s.as_bytes()).is_some() => Inferred::Date,
        Json::String(s) if parse_timestamp(s.as_bytes()).is_some() => Inferred::Timestamp,
        Json::String(_) | Json::Array(_) | Json::Object(_) => Inferred::Text,
    }
}

/// A JSON value as a column of `column_type`: strings are read as text values are; numbers
/// and booleans must be of the column's kind; into text, anything keeps its JSON text.
fn convert(column_type: ColumnType, value: Json) -> Result<Value, String> {
    let refused = |value: &Json| {
        let text = value.to_string();
        format!(
            "{} is not {}",
            super::quoted(text.as_bytes()),
            expected(column_type)
        )
    };
    Ok(match (column_type, value) {
        (_, Json::Null) => Value::Null,
        (ColumnType::String, Json::String(s)) => Value::Text(s),
        (ColumnType::String, other) => Value::Text(other.to_string()),
        (_, Json::String(s)) => parse_text(column_type, s.as_bytes())?,
        (ColumnType::Boolean, Json::Bool(b)) => Value::Bool(b),
        (ColumnType::Int64, Json::Number(n)) => match n.as_i64() {
            Some(v) => Value::I64(v),
            None => return Err(refused(&Json::Number(n))),
        },
        (ColumnType::Float64, Json::Number(n)) => match n.as_f64() {
            Some(v) => Value::F64(v),
            None => return Err(refused(&Json::Number(n))),
        },
        (ColumnType::Decimal { .. }, Json::Number(n)) => {
            parse_text(column_type, n.to_string().as_bytes())?
        }
        (_, other) => return Err(refused(&other)),
    })
}

struct Lines<'a> {
    reader: BufReader<TextStream<'a>>,
    buffer: Vec<u8>,
    consumed: u64,
    line: u64,
}

impl Lines<'_> {
    /// The next line that is not blank, without its line ending, and its 1-based number.
    fn next(&mut self) -> Result<Option<(u64, &[u8])>, FileError> {
        loop {
            self.buffer.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|e| file_error(&e, self.consumed))?;
            if n == 0 {
                return Ok(None);
            }
            self.consumed += n as u64;
            self.line += 1;
            self.reader
                .get_mut()
                .mark_record_start(self.consumed, self.line + 1);
            let text = self.buffer.trim_ascii_end();
            if !text.trim_ascii_start().is_empty() {
                let text_len = text.len();
                return Ok(Some((self.line, &self.buffer[..text_len])));
            }
        }
    }
}

pub(super) fn parse<E>(
    stream: TextStream<'_>,
    limits: Limits,
    table: Option<&SchemaRef>,
    on_batch: impl FnMut(ParsedBatch) -> Result<(), E>,
) -> Result<ParseSummary, ParseError<E>> {
    let mut lines = Lines {
        reader: BufReader::with_capacity(64 << 10, stream),
        buffer: Vec::new(),
        consumed: 0,
        line: 0,
    };
    let mut sample: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut sample_bytes = 0;
    while sample.len() < limits.infer_rows && sample_bytes < SAMPLE_BYTE_LIMIT {
        let Some((line, text)) = lines.next()? else {
            break;
        };
        sample_bytes += text.len();
        sample.push((line, text.to_vec()));
    }
    if sample.is_empty() {
        return Err(FileError::NoRows { header_only: false }.into());
    }
    let mut names: Vec<String> = Vec::new();
    let mut inferred: Vec<Inferred> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (_, text) in &sample {
        let Ok(Object(members)) = serde_json::from_slice::<Object>(text) else {
            continue;
        };
        for (key, value) in members {
            let at = *index.entry(key).or_insert_with_key(|key| {
                names.push(key.clone());
                inferred.push(Inferred::Null);
                names.len() - 1
            });
            if inferred[at] != Inferred::Text {
                inferred[at] = inferred[at].merge(classify(&value));
            }
        }
    }
    if let Some(table) = table {
        // Keys the table has are columns even when the sample never shows them (they
        // match table columns, so they are never new ones; a required one is checked by row).
        for field in table.fields() {
            if !index.contains_key(field.name()) {
                index.insert(field.name().clone(), names.len());
                names.push(field.name().clone());
                inferred.push(Inferred::Null);
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
    let columns: HashMap<String, (usize, ColumnType)> = index
        .into_iter()
        .map(|(name, at)| {
            let out = plan.file_to_out[at];
            (name, (out, plan.types[out]))
        })
        .collect();
    let mut rows = Rows {
        batcher: Batcher::new(plan, limits.batch_rows, on_batch),
        columns,
        seen: Vec::new(),
        sampled_rows: sample.len(),
    };
    for (line, text) in &sample {
        rows.push(*line, text)?;
    }
    drop(sample);
    while let Some((line, text)) = lines.next()? {
        rows.push(line, text)?;
    }
    let content_bytes = lines.reader.get_ref().content_bytes();
    rows.batcher.finish(content_bytes)
}

struct Rows<F> {
    batcher: Batcher<F>,
    columns: HashMap<String, (usize, ColumnType)>,
    /// Output columns set by the line being read (a key given twice is refused).
    seen: Vec<usize>,
    sampled_rows: usize,
}

impl<F, E> Rows<F>
where
    F: FnMut(ParsedBatch) -> Result<(), E>,
{
    fn push(&mut self, line: u64, text: &[u8]) -> Result<(), ParseError<E>> {
        let raw =
            || String::from_utf8_lossy(&text[..text.len().min(BAD_ROW_RAW_LIMIT + 4)]).into_owned();
        let refuse = |column: Option<String>, reason: String| BadRow {
            line,
            column,
            reason,
            raw: raw(),
        };
        let members = match serde_json::from_slice::<Object>(text) {
            Ok(Object(members)) => members,
            Err(e) => {
                let reason = if e.is_data() {
                    "the line is not a JSON object".to_owned()
                } else {
                    format!("the line is not valid JSON: {e}")
                };
                return self.batcher.reject(refuse(None, reason));
            }
        };
        self.seen.clear();
        for (key, value) in members {
            let Some(&(out, column_type)) = self.columns.get(&key) else {
                let reason = format!(
                    "the key {key:?} is not among the columns found in the first {} rows",
                    self.sampled_rows
                );
                return self.batcher.reject(refuse(Some(key), reason));
            };
            if self.seen.contains(&out) {
                let reason = format!("the key {key:?} appears twice");
                return self.batcher.reject(refuse(Some(key), reason));
            }
            self.seen.push(out);
            match convert(column_type, value) {
                Ok(value) => self.batcher.row[out] = value,
                Err(reason) => return self.batcher.reject(refuse(Some(key), reason)),
            }
        }
        self.batcher.commit(None, line, raw)
    }
}
