//! JSONL: one JSON object per row and line, keys in column order, every column present.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::{
    BatchEncoder, ColumnView, EncodeError, FLUSH_AT, Values, bool_text, check_batch_schema,
    push_date, push_decimal, push_int, push_timestamp,
};
use crate::export::sink::ByteSink;

pub(super) struct JsonlEncoder {
    sink: Box<dyn ByteSink>,
    out: Vec<u8>,
    /// `{"first":`, then `,"next":` for each later column: the keys are escaped once.
    keys: Vec<Vec<u8>>,
    schema: SchemaRef,
    rows: u64,
}

impl JsonlEncoder {
    pub fn new(schema: SchemaRef, sink: Box<dyn ByteSink>) -> Self {
        let keys = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                push_json_string(&mut key, field.name().as_bytes());
                key.push(b':');
                key
            })
            .collect();
        Self {
            sink,
            out: Vec::with_capacity(FLUSH_AT + FLUSH_AT / 8),
            keys,
            schema,
            rows: 0,
        }
    }
}

impl BatchEncoder for JsonlEncoder {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), EncodeError> {
        check_batch_schema(&self.schema, batch)?;
        let columns = ColumnView::of_batch(batch)?;
        let out = &mut self.out;
        let mut floats = zmij::Buffer::new();
        for row in 0..batch.num_rows() {
            for (key, column) in self.keys.iter().zip(&columns) {
                out.extend_from_slice(key);
                if column.is_null(row) {
                    out.extend_from_slice(b"null");
                    continue;
                }
                match column.values {
                    Values::Utf8(_) | Values::LargeUtf8(_) | Values::Utf8View(_) => {
                        push_json_string(out, column.text(row).unwrap_or_default())
                    }
                    Values::Int64(values) => push_int(out, values[row]),
                    Values::Float64(values) => {
                        let value = values[row];
                        if value.is_finite() {
                            out.extend_from_slice(floats.format_finite(value).as_bytes());
                        } else {
                            // JSON has no NaN or infinity: their names, as strings.
                            out.push(b'"');
                            out.extend_from_slice(super::float_text(value, &mut floats));
                            out.push(b'"');
                        }
                    }
                    // A number literal with every digit: readers that parse decimals exactly
                    // keep them; f64 readers round as they would any number.
                    Values::Decimal128 { values, scale } => push_decimal(out, values[row], scale),
                    Values::Boolean(array) => out.extend_from_slice(bool_text(array.value(row))),
                    Values::Date32(values) => {
                        out.push(b'"');
                        push_date(out, i64::from(values[row]));
                        out.push(b'"');
                    }
                    Values::Timestamp { values, unit } => {
                        out.push(b'"');
                        push_timestamp(out, values[row], unit);
                        out.push(b'"');
                    }
                }
            }
            if self.keys.is_empty() {
                out.push(b'{');
            }
            out.extend_from_slice(b"}\n");
            if out.len() >= FLUSH_AT {
                self.sink.write_all(out)?;
                out.clear();
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        if !self.out.is_empty() {
            self.sink.write_all(&self.out)?;
        }
        self.sink.finish()?;
        Ok(())
    }

    fn pause(mut self: Box<Self>) -> Result<(), EncodeError> {
        if !self.out.is_empty() {
            self.sink.write_all(&self.out)?;
        }
        self.sink.pause()?;
        Ok(())
    }
}

/// What follows the backslash for each byte that JSON strings must escape (as serde_json
/// writes them); 0 for bytes written as they are.
const JSON_ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// A JSON string literal of UTF-8 `bytes` (Arrow strings are valid UTF-8, so only quotes,
/// backslashes and control characters need escaping).
fn push_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = JSON_ESCAPES[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[copied..i]);
        out.push(b'\\');
        out.push(escape);
        if escape == b'u' {
            out.extend_from_slice(b"00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        copied = i + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{
        TimestampMillisecondBuilder, TimestampNanosecondBuilder, TimestampSecondBuilder,
    };
    use arrow_array::{ArrayRef, LargeStringArray, RecordBatch, StringViewArray};
    use arrow_schema::{DataType, Field, Schema};
    use serde_json::Value;

    use super::super::test_support::{mixed_batch, mixed_schema, strings};
    use super::super::{BatchEncoder, ParquetCodec, encoder};
    use crate::domain::connector::FileFormat;
    use crate::export::sink::MemorySink;

    fn encode(batches: &[RecordBatch]) -> String {
        let sink = MemorySink::default();
        let mut encoder: Box<dyn BatchEncoder> = encoder(
            &FileFormat::Jsonl,
            ParquetCodec::Snappy,
            batches[0].schema(),
            Box::new(sink.clone()),
        )
        .expect("encoder");
        for batch in batches {
            encoder.write_batch(batch).expect("written");
        }
        assert_eq!(
            encoder.rows(),
            batches.iter().map(|b| b.num_rows() as u64).sum::<u64>()
        );
        encoder.finish().expect("finished");
        assert!(sink.is_finished(), "finish() finishes the sink");
        String::from_utf8(sink.contents()).expect("utf-8")
    }

    #[test]
    fn every_type_in_column_order_with_exact_decimals() {
        let text = encode(&[mixed_batch()]);
        let expected = [
            r#"{"id":-9223372036854775808,"name":"a,b \"c\"","score":0.1,"amount":-0.0001234500,"active":true,"day":"1970-01-01","at":"2024-02-29T23:59:59.123456Z"}"#,
            r#"{"id":42,"name":"","score":"NaN","amount":1234567890123456789012345678.9012345678,"active":false,"day":"2000-02-29","at":"1970-01-01T00:00:00.000000Z"}"#,
            r#"{"id":null,"name":null,"score":null,"amount":null,"active":null,"day":null,"at":null}"#,
        ];
        assert_eq!(text, expected.map(|line| format!("{line}\n")).concat());
        for line in text.lines() {
            let object: Value = serde_json::from_str(line).expect("valid JSON");
            let object = object.as_object().expect("an object per line");
            assert_eq!(
                object.len(),
                mixed_schema().fields().len(),
                "every column present"
            );
        }
        let first: Value = serde_json::from_str(text.lines().next().expect("line")).expect("json");
        assert_eq!(first["id"], Value::from(i64::MIN));
        assert_eq!(first["name"], "a,b \"c\"");
        assert_eq!(first["score"], 0.1);
        assert_eq!(first["active"], true);
    }

    #[test]
    fn tricky_strings_round_trip_through_a_json_parser() {
        let values = [
            "plain",
            "a,b",
            "say \"hi\"",
            "back\\slash",
            "line\nbreak",
            "cr\rhere",
            "crlf\r\n",
            "tab\t|pipe",
            " lead and trail ",
            "héllo wörld ✓ 中文",
            "🦀 emoji 👍🏽",
            "",
            "NULL",
            "\\N",
            "\u{0}\u{1}\u{1f}\u{7f}\u{8}\u{c}",
            "\u{2028}\u{2029}",
            "</script>",
        ];
        let batch = strings("s", &values.map(Some));
        let text = encode(&[batch]);
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), values.len(), "no raw line break inside a line");
        for (line, value) in lines.iter().zip(values) {
            let parsed: Value = serde_json::from_str(line).expect("valid JSON");
            assert_eq!(parsed["s"], value, "{line}");
            // The same escaping serde_json itself writes.
            assert_eq!(*line, serde_json::json!({ "s": value }).to_string());
        }
    }

    #[test]
    fn floats_and_timestamps_in_every_unit() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new(
                "s",
                DataType::Timestamp(arrow_schema::TimeUnit::Second, Some("UTC".into())),
                true,
            ),
            Field::new(
                "ms",
                DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("+00:00".into())),
                true,
            ),
            Field::new(
                "ns",
                DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
        ]));
        let mut seconds = TimestampSecondBuilder::new().with_timezone("UTC");
        let mut millis = TimestampMillisecondBuilder::new().with_timezone("+00:00");
        let mut nanos = TimestampNanosecondBuilder::new().with_timezone("UTC");
        for _ in 0..3 {
            seconds.append_value(951_782_400);
            millis.append_value(-1);
            nanos.append_value(1_709_251_199_123_456_789);
        }
        let floats = arrow_array::Float64Array::from(vec![f64::INFINITY, f64::NEG_INFINITY, 1e300]);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(floats) as ArrayRef,
                Arc::new(seconds.finish()),
                Arc::new(millis.finish()),
                Arc::new(nanos.finish()),
            ],
        )
        .expect("batch");
        let text = encode(&[batch]);
        let times = r#""s":"2000-02-29T00:00:00Z","ms":"1969-12-31T23:59:59.999Z","ns":"2024-02-29T23:59:59.123456789Z"}"#;
        assert_eq!(
            text,
            format!(
                "{{\"f\":\"Infinity\",{times}\n{{\"f\":\"-Infinity\",{times}\n{{\"f\":1e+300,{times}\n"
            )
        );
        for line in text.lines() {
            serde_json::from_str::<Value>(line).expect("valid JSON");
        }
    }

    #[test]
    fn large_and_view_strings_and_escaped_keys() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("large \"k\"", DataType::LargeUtf8, true),
            Field::new("view", DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(LargeStringArray::from(vec![Some("x\ty"), None])) as ArrayRef,
                Arc::new(StringViewArray::from(vec![
                    None,
                    Some("a string longer than twelve bytes"),
                ])),
            ],
        )
        .expect("batch");
        assert_eq!(
            encode(&[batch]),
            "{\"large \\\"k\\\"\":\"x\\ty\",\"view\":null}\n{\"large \\\"k\\\"\":null,\"view\":\"a string longer than twelve bytes\"}\n"
        );
    }

    #[test]
    fn an_empty_file_is_zero_bytes_and_batches_continue_the_file() {
        assert_eq!(encode(&[RecordBatch::new_empty(mixed_schema())]), "");
        let two = encode(&[strings("s", &[Some("a")]), strings("s", &[None])]);
        assert_eq!(two, "{\"s\":\"a\"}\n{\"s\":null}\n");
    }
}
