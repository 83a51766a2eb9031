//! JSON Lines: one object per line, blank lines skipped. The columns are the keys met in the
//! sampled lines, in the order they first appear (and the table's); a later line with a key
//! outside them is refused rather than dropped silently or widening the schema mid-file,
//! which batches already handed over could not follow.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};

use arrow_schema::SchemaRef;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
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
        last_keys: Vec::new(),
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
    /// The keys of the last line read, in its order, with their columns: lines of one file
    /// mostly repeat their keys in the same order, so the key at position `i` is first
    /// compared with this one's `i`th before the (slower) map is asked.
    last_keys: Vec<(String, usize, ColumnType)>,
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
        self.seen.clear();
        // The line goes straight into the row: keys are borrowed from the text, and each
        // value is read as its column's type, without a JSON tree in between.
        let mut reader = serde_json::Deserializer::from_slice(text);
        let read = serde::de::DeserializeSeed::deserialize(
            LineSeed {
                columns: &self.columns,
                last_keys: &mut self.last_keys,
                seen: &mut self.seen,
                row: &mut self.batcher.row,
                sampled_rows: self.sampled_rows,
            },
            &mut reader,
        )
        .and_then(|refusal| reader.end().map(|()| refusal));
        match read {
            Ok(None) => self.batcher.commit(None, line, raw),
            Ok(Some((column, reason))) => self.batcher.reject(refuse(Some(column), reason)),
            Err(e) => {
                let reason = if e.is_data() {
                    "the line is not a JSON object".to_owned()
                } else {
                    format!("the line is not valid JSON: {e}")
                };
                self.batcher.reject(refuse(None, reason))
            }
        }
    }
}

/// A line's key and why the line is refused for it.
type Refusal = Option<(String, String)>;

/// Reads one line's object into `row`; the first key that refuses the line (one outside the
/// columns, one given twice, a value its column cannot take) is kept, and the rest of the line
/// is still read, so that a line that is not valid JSON is refused for that instead.
struct LineSeed<'r> {
    columns: &'r HashMap<String, (usize, ColumnType)>,
    last_keys: &'r mut Vec<(String, usize, ColumnType)>,
    seen: &'r mut Vec<usize>,
    row: &'r mut [Value],
    sampled_rows: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for LineSeed<'_> {
    type Value = Refusal;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Refusal, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = Refusal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Refusal, A::Error> {
        let mut position = 0;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let known = match self.last_keys.get(position) {
                Some((last, out, column_type)) if *last == *key => Some((*out, *column_type)),
                _ => self.columns.get(key.as_ref()).copied(),
            };
            let Some((out, column_type)) = known else {
                map.next_value::<IgnoredAny>()?;
                let reason = format!(
                    "the key {key:?} is not among the columns found in the first {} rows",
                    self.sampled_rows
                );
                return refuse_rest(map, key.into_owned(), reason);
            };
            if self.seen.contains(&out) {
                map.next_value::<IgnoredAny>()?;
                let reason = format!("the key {key:?} appears twice");
                return refuse_rest(map, key.into_owned(), reason);
            }
            self.seen.push(out);
            match map.next_value_seed(ValueSeed(column_type))? {
                Ok(value) => self.row[out] = value,
                Err(reason) => return refuse_rest(map, key.into_owned(), reason),
            }
            match self.last_keys.get_mut(position) {
                Some(last) if last.0 == *key => {}
                Some(last) => *last = (key.into_owned(), out, column_type),
                None => self.last_keys.push((key.into_owned(), out, column_type)),
            }
            position += 1;
        }
        Ok(None)
    }
}

/// Reads the rest of a refused line (it must still be valid JSON) and refuses it for `key`.
fn refuse_rest<'de, A: MapAccess<'de>>(
    mut map: A,
    key: String,
    reason: String,
) -> Result<Refusal, A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(Some((key, reason)))
}

/// An object key, borrowed from the line unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// One value as a column of its type: strings are converted straight from the line's text;
/// every other JSON value goes through [`convert`], as a tree of its own.
struct ValueSeed(ColumnType);

impl<'de> serde::de::DeserializeSeed<'de> for ValueSeed {
    type Value = Result<Value, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Result<Value, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match self.0 {
            ColumnType::String => Ok(Value::Text(v.to_owned())),
            column_type => parse_text(column_type, v.as_bytes()),
        })
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(match self.0 {
            ColumnType::String => Ok(Value::Text(v)),
            column_type => parse_text(column_type, v.as_bytes()),
        })
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Value::Null))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(convert(self.0, Json::Bool(v)))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(convert(self.0, Json::from(v)))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(convert(self.0, Json::from(v)))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // serde_json reads no non-finite number, so `from_f64` always gives one.
        Ok(convert(
            self.0,
            serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number),
        ))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let tree = Json::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(convert(self.0, tree))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let tree = Json::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(convert(self.0, tree))
    }
}
