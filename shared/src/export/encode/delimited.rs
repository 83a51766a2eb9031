//! CSV, TSV and PSV: one record per row ending in `\n`, an optional header row, fields quoted
//! by the connector's quote mode.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::{BatchEncoder, ColumnView, EncodeError, FLUSH_AT, ValueClass, check_batch_schema};
use crate::domain::connector::{DelimitedFormat, QuoteMode};
use crate::export::sink::ByteSink;

pub(super) struct DelimitedEncoder {
    sink: Box<dyn ByteSink>,
    out: Vec<u8>,
    /// A formatted value moved aside to be written again quoted and escaped.
    scratch: Vec<u8>,
    rules: Rules,
    schema: SchemaRef,
    rows: u64,
}

impl DelimitedEncoder {
    pub fn new(
        settings: &DelimitedFormat,
        schema: SchemaRef,
        sink: Box<dyn ByteSink>,
    ) -> Result<Self, EncodeError> {
        let rules = Rules::new(settings)?;
        let mut out = Vec::with_capacity(FLUSH_AT + FLUSH_AT / 8);
        if settings.header {
            for (i, field) in schema.fields().iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(rules.delimiter.as_slice());
                }
                rules
                    .push_text(&mut out, field.name().as_bytes(), ValueClass::Text)
                    .map_err(|clash| rules.value_error(field.name(), 0, clash))?;
            }
            out.push(b'\n');
        }
        Ok(Self {
            sink,
            out,
            scratch: Vec::new(),
            rules,
            schema,
            rows: 0,
        })
    }
}

impl BatchEncoder for DelimitedEncoder {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), EncodeError> {
        check_batch_schema(&self.schema, batch)?;
        let columns = ColumnView::of_batch(batch)?;
        let classes: Vec<ValueClass> = columns.iter().map(ColumnView::class).collect();
        for row in 0..batch.num_rows() {
            let row_start = self.out.len();
            let written =
                self.rules
                    .push_row(&mut self.out, &mut self.scratch, &columns, &classes, row);
            if let Err((column, clash)) = written {
                // The file keeps whole rows only: what came before is intact if the caller
                // reports the error and abandons the file.
                self.out.truncate(row_start);
                let file_row = self.rows + row as u64 + 1;
                self.rows += row as u64;
                let name = self.schema.field(column).name();
                return Err(self.rules.value_error(name, file_row, clash));
            }
            if self.out.len() >= FLUSH_AT {
                self.sink.write_all(&self.out)?;
                self.out.clear();
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

/// A char's UTF-8 bytes, held without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CharBytes {
    bytes: [u8; 4],
    len: usize,
}

impl CharBytes {
    fn new(c: char) -> Self {
        let mut bytes = [0; 4];
        let len = c.encode_utf8(&mut bytes).len();
        Self { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Why a value cannot be written bare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clash {
    Delimiter,
    Quote,
    Escape,
    CarriageReturn,
    LineFeed,
    NullValue,
}

/// Characters of the text we format for numbers, booleans, dates and timestamps (digits,
/// signs, `.`, `:`, `T`, `Z`, exponents, `NaN`, `Infinity`, `true`, `false`).
const FORMATTED_ALPHABET: &[u8] = b"0123456789+-.:TZeENaInfityruls";

/// The connector's quoting settings, resolved into byte tables once per file.
struct Rules {
    mode: QuoteMode,
    delimiter: CharBytes,
    quote: CharBytes,
    escape: CharBytes,
    null_value: Vec<u8>,
    /// First bytes of the delimiter, quote and escape chars, CR and LF: a field holding one
    /// must be quoted (refused under `never`).
    trigger: [bool; 256],
    /// First bytes of the quote and escape chars: escaped inside quotes.
    escaped: [bool; 256],
    /// A special char is outside ASCII: a table hit on a byte ≥ 0x80 is confirmed whole.
    multibyte: bool,
    /// No special char occurs in our own formatting of non-string values, so they are never
    /// escaped and need no scan.
    formatted_plain: bool,
}

impl Rules {
    fn new(settings: &DelimitedFormat) -> Result<Self, EncodeError> {
        let delimiter = settings.delimiter();
        let (quote, escape) = (settings.quote_char, settings.escape_char);
        if quote == delimiter {
            return Err(EncodeError::Settings {
                setting: "quote_char",
                reason: format!("the quote char {quote:?} is also the delimiter"),
                remediation: "choose a quote_char other than the delimiter".to_owned(),
            });
        }
        if escape == delimiter {
            return Err(EncodeError::Settings {
                setting: "escape_char",
                reason: format!("the escape char {escape:?} is also the delimiter"),
                remediation: "choose an escape_char other than the delimiter (by default it is \
                              the quote_char)"
                    .to_owned(),
            });
        }
        if settings.quote != QuoteMode::All {
            let breaks = |c: char| c == delimiter || c == quote || c == '\r' || c == '\n';
            if let Some(c) = settings.null_value.chars().find(|&c| breaks(c)) {
                return Err(EncodeError::Settings {
                    setting: "null_value",
                    reason: format!(
                        "{:?} contains {c:?}, and nulls are written unquoted, so every null \
                         would break its row",
                        settings.null_value
                    ),
                    remediation: "choose a null_value without the delimiter, the quote char or \
                                  a line break, or use quote mode all"
                        .to_owned(),
                });
            }
        }
        let specials = [delimiter, quote, escape, '\r', '\n'];
        let mut trigger = [false; 256];
        let mut escaped = [false; 256];
        for c in specials {
            trigger[usize::from(CharBytes::new(c).bytes[0])] = true;
        }
        for c in [quote, escape] {
            escaped[usize::from(CharBytes::new(c).bytes[0])] = true;
        }
        let formatted_plain = specials
            .iter()
            .all(|&c| !c.is_ascii() || !FORMATTED_ALPHABET.contains(&(c as u8)));
        Ok(Self {
            mode: settings.quote,
            delimiter: CharBytes::new(delimiter),
            quote: CharBytes::new(quote),
            escape: CharBytes::new(escape),
            null_value: settings.null_value.as_bytes().to_vec(),
            trigger,
            escaped,
            multibyte: specials.iter().any(|c| !c.is_ascii()),
            formatted_plain,
        })
    }

    /// The special char starting `rest`, if any.
    fn special_at(&self, rest: &[u8]) -> Option<Clash> {
        if rest.starts_with(self.delimiter.as_slice()) {
            Some(Clash::Delimiter)
        } else if rest.starts_with(self.quote.as_slice()) {
            Some(Clash::Quote)
        } else if rest.starts_with(self.escape.as_slice()) {
            Some(Clash::Escape)
        } else if rest.first() == Some(&b'\r') {
            Some(Clash::CarriageReturn)
        } else if rest.first() == Some(&b'\n') {
            Some(Clash::LineFeed)
        } else {
            None
        }
    }

    #[inline]
    fn has_special(&self, bytes: &[u8]) -> bool {
        if !self.multibyte {
            return bytes.iter().any(|&b| self.trigger[usize::from(b)]);
        }
        bytes.iter().enumerate().any(|(i, &b)| {
            self.trigger[usize::from(b)] && (b < 0x80 || self.special_at(&bytes[i..]).is_some())
        })
    }

    fn first_special(&self, bytes: &[u8]) -> Option<Clash> {
        (0..bytes.len())
            .filter(|&i| self.trigger[usize::from(bytes[i])])
            .find_map(|i| self.special_at(&bytes[i..]))
    }

    /// A value that would read back as something else if written bare: it holds a special
    /// char, or it is the text of a null.
    #[inline]
    fn misreads_bare(&self, bytes: &[u8]) -> bool {
        bytes == self.null_value.as_slice() || self.has_special(bytes)
    }

    /// Why `never` cannot write the value. An empty null_value is allowed to collide with the
    /// empty string there (the mode's documented limit).
    fn never_clash(&self, bytes: &[u8]) -> Option<Clash> {
        if !self.has_special(bytes) {
            return (!self.null_value.is_empty() && bytes == self.null_value.as_slice())
                .then_some(Clash::NullValue);
        }
        self.first_special(bytes)
    }

    /// Whether a non-null string (or header name) is written quoted.
    #[inline]
    fn quotes_text(&self, bytes: &[u8], class: ValueClass) -> Result<bool, Clash> {
        Ok(match self.mode {
            QuoteMode::All | QuoteMode::NonNull | QuoteMode::NonNumeric => true,
            // Quoted too: leading or trailing blanks, which readers that trim unquoted fields
            // (a common reader option) would otherwise drop.
            QuoteMode::Necessary => {
                self.misreads_bare(bytes) || (class == ValueClass::Text && has_edge_blank(bytes))
            }
            QuoteMode::Never => match self.never_clash(bytes) {
                Some(clash) => return Err(clash),
                None => false,
            },
        })
    }

    fn push_text(&self, out: &mut Vec<u8>, bytes: &[u8], class: ValueClass) -> Result<(), Clash> {
        if self.quotes_text(bytes, class)? {
            self.push_quoted(out, bytes);
        } else {
            out.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// `bytes` between quote chars; a quote or escape char inside is preceded by the escape
    /// char (so doubled when the escape char is the quote char).
    fn push_quoted(&self, out: &mut Vec<u8>, bytes: &[u8]) {
        let quote = self.quote.as_slice();
        let escape = self.escape.as_slice();
        out.extend_from_slice(quote);
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.escaped[usize::from(bytes[i])] {
                let rest = &bytes[i..];
                let matched = if rest.starts_with(quote) {
                    quote.len()
                } else if rest.starts_with(escape) {
                    escape.len()
                } else {
                    0
                };
                if matched > 0 {
                    out.extend_from_slice(&bytes[copied..i]);
                    out.extend_from_slice(escape);
                    out.extend_from_slice(&rest[..matched]);
                    i += matched;
                    copied = i;
                    continue;
                }
            }
            i += 1;
        }
        out.extend_from_slice(&bytes[copied..]);
        out.extend_from_slice(quote);
    }

    fn push_null(&self, out: &mut Vec<u8>) {
        if self.mode == QuoteMode::All {
            self.push_quoted(out, &self.null_value);
        } else {
            out.extend_from_slice(&self.null_value);
        }
    }

    /// Appends one record; on a value it cannot write, the column index and why.
    #[inline]
    fn push_row(
        &self,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        columns: &[ColumnView<'_>],
        classes: &[ValueClass],
        row: usize,
    ) -> Result<(), (usize, Clash)> {
        for (i, (column, &class)) in columns.iter().zip(classes).enumerate() {
            if i > 0 {
                out.extend_from_slice(self.delimiter.as_slice());
            }
            if column.is_null(row) {
                self.push_null(out);
            } else if let Some(bytes) = column.text(row) {
                self.push_text(out, bytes, class)
                    .map_err(|clash| (i, clash))?;
            } else {
                self.push_formatted(out, scratch, column, class, row)
                    .map_err(|clash| (i, clash))?;
            }
        }
        out.push(b'\n');
        Ok(())
    }

    /// A number, boolean, date or timestamp: formatted in place, then quoted if it must be.
    #[inline]
    fn push_formatted(
        &self,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        column: &ColumnView<'_>,
        class: ValueClass,
        row: usize,
    ) -> Result<(), Clash> {
        let always_quoted = match self.mode {
            QuoteMode::All | QuoteMode::NonNull => true,
            QuoteMode::NonNumeric => class != ValueClass::Numeric,
            QuoteMode::Necessary | QuoteMode::Never => false,
        };
        if always_quoted && self.formatted_plain {
            out.extend_from_slice(self.quote.as_slice());
            column.push_formatted(row, out);
            out.extend_from_slice(self.quote.as_slice());
            return Ok(());
        }
        let start = out.len();
        column.push_formatted(row, out);
        let field = &out[start..];
        let quoted = always_quoted
            || match self.mode {
                QuoteMode::Never => match self.never_clash(field) {
                    Some(clash) => return Err(clash),
                    None => false,
                },
                // Numbers under non_numeric are bare unless bare text would misread (a
                // delimiter such as `.` inside them, or a null_value such as `NaN`).
                _ => {
                    field == self.null_value.as_slice()
                        || (!self.formatted_plain && self.has_special(field))
                }
            };
        if quoted {
            scratch.clear();
            scratch.extend_from_slice(field);
            out.truncate(start);
            self.push_quoted(out, scratch);
        }
        Ok(())
    }

    fn value_error(&self, column: &str, row: u64, clash: Clash) -> EncodeError {
        let shown = |c: &CharBytes| String::from_utf8_lossy(c.as_slice()).into_owned();
        let (reason, remediation) = match clash {
            Clash::Delimiter => (
                format!(
                    "the value contains the delimiter {:?}",
                    shown(&self.delimiter)
                ),
                "use quote mode necessary, or a delimiter the data does not contain",
            ),
            Clash::Quote => (
                format!("the value contains the quote char {:?}", shown(&self.quote)),
                "use quote mode necessary, or a quote_char the data does not contain",
            ),
            Clash::Escape => (
                format!(
                    "the value contains the escape char {:?}",
                    shown(&self.escape)
                ),
                "use quote mode necessary, or an escape_char the data does not contain",
            ),
            Clash::CarriageReturn | Clash::LineFeed => (
                format!(
                    "the value contains a line break ({})",
                    if clash == Clash::LineFeed { "LF" } else { "CR" }
                ),
                "use quote mode necessary: a line break can only be written inside quotes",
            ),
            Clash::NullValue => (
                format!(
                    "the value equals the null_value {:?} and would read back as null",
                    String::from_utf8_lossy(&self.null_value)
                ),
                "use quote mode necessary, or a null_value the data does not contain",
            ),
        };
        EncodeError::Value {
            column: column.to_owned(),
            row,
            reason: format!("{reason}, which quote mode never cannot write"),
            remediation: remediation.to_owned(),
        }
    }
}

fn has_edge_blank(bytes: &[u8]) -> bool {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    bytes.first().is_some_and(blank) || bytes.last().is_some_and(blank)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    use super::super::test_support::{mixed_batch, mixed_schema, strings};
    use super::super::{BatchEncoder, EncodeError, ParquetCodec, encoder};
    use crate::domain::connector::{DelimitedFormat, Dialect, FileFormat, QuoteMode};
    use crate::export::sink::MemorySink;

    fn csv(quote: QuoteMode) -> DelimitedFormat {
        DelimitedFormat {
            quote,
            header: false,
            ..DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })
        }
    }

    fn start(
        settings: &DelimitedFormat,
        schema: arrow_schema::SchemaRef,
    ) -> (Box<dyn BatchEncoder>, MemorySink) {
        let sink = MemorySink::default();
        let encoder = encoder(
            &FileFormat::Delimited(settings.clone()),
            ParquetCodec::Snappy,
            schema,
            Box::new(sink.clone()),
        )
        .expect("encoder");
        (encoder, sink)
    }

    fn encode(settings: &DelimitedFormat, batches: &[RecordBatch]) -> Result<String, EncodeError> {
        let (mut encoder, sink) = start(settings, batches[0].schema());
        for batch in batches {
            encoder.write_batch(batch)?;
        }
        encoder.finish()?;
        assert!(sink.is_finished(), "finish() finishes the sink");
        Ok(String::from_utf8(sink.contents()).expect("utf-8"))
    }

    /// Each value of a one-string-column file, as its field is written.
    fn fields_of(
        settings: &DelimitedFormat,
        values: &[Option<&str>],
    ) -> Vec<Result<String, String>> {
        values
            .iter()
            .map(|value| {
                encode(settings, &[strings("s", &[*value])])
                    .map(|text| {
                        text.strip_suffix('\n')
                            .expect("records end with LF")
                            .to_owned()
                    })
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    const TRICKY: &[Option<&str>] = &[
        Some("plain"),
        Some("a,b"),
        Some("say \"hi\""),
        Some("line\nbreak"),
        Some("cr\rhere"),
        Some("crlf\r\nx"),
        Some("tab\there"),
        Some("pipe|x"),
        Some(" lead"),
        Some("trail "),
        Some("héllo wörld ✓ 中文"),
        Some("🦀 emoji 👍🏽"),
        Some(""),
        None,
        Some("NULL"),
        Some("\\N"),
        Some("123"),
    ];

    fn ok(text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }

    #[test]
    fn necessary_quotes_only_what_would_misread() {
        let expected = [
            ok("plain"),
            ok("\"a,b\""),
            ok("\"say \"\"hi\"\"\""),
            ok("\"line\nbreak\""),
            ok("\"cr\rhere\""),
            ok("\"crlf\r\nx\""),
            ok("tab\there"),
            ok("pipe|x"),
            ok("\" lead\""),
            ok("\"trail \""),
            ok("héllo wörld ✓ 中文"),
            ok("🦀 emoji 👍🏽"),
            ok("\"\""),
            ok(""),
            ok("NULL"),
            ok("\\N"),
            ok("123"),
        ];
        let written = fields_of(&csv(QuoteMode::Necessary), TRICKY);
        for ((value, written), expected) in TRICKY.iter().zip(written).zip(expected) {
            assert_eq!(written, expected, "{value:?}");
        }
    }

    #[test]
    fn all_non_null_and_non_numeric_quote_strings_and_differ_on_nulls() {
        let quoted = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
        for mode in [QuoteMode::All, QuoteMode::NonNull, QuoteMode::NonNumeric] {
            let written = fields_of(&csv(mode), TRICKY);
            for (value, written) in TRICKY.iter().zip(written) {
                let expected = match (value, mode) {
                    (Some(v), _) => quoted(v),
                    (None, QuoteMode::All) => "\"\"".to_owned(),
                    (None, _) => String::new(),
                };
                assert_eq!(written, Ok(expected), "{mode:?} {value:?}");
            }
        }
    }

    #[test]
    fn never_writes_bare_or_refuses_naming_column_and_row() {
        let refused = |what: &str| Err(what.to_owned());
        let expected = [
            ok("plain"),
            refused("the delimiter \",\""),
            refused("the quote char \"\\\"\""),
            refused("a line break (LF)"),
            refused("a line break (CR)"),
            refused("a line break (CR)"),
            ok("tab\there"),
            ok("pipe|x"),
            ok(" lead"),
            ok("trail "),
            ok("héllo wörld ✓ 中文"),
            ok("🦀 emoji 👍🏽"),
            ok(""),
            ok(""),
            ok("NULL"),
            ok("\\N"),
            ok("123"),
        ];
        let written = fields_of(&csv(QuoteMode::Never), TRICKY);
        for ((value, written), expected) in TRICKY.iter().zip(written).zip(expected) {
            match (written, expected) {
                (Err(message), Err(what)) => {
                    assert!(message.contains(&what), "{value:?}: {message}");
                    assert!(message.starts_with("column `s`, row 1: "), "{message}");
                    assert!(message.contains("use quote mode necessary"), "{message}");
                }
                (written, expected) => assert_eq!(written, expected, "{value:?}"),
            }
        }
    }

    #[test]
    fn null_value_strings_are_told_apart_from_nulls() {
        let values = [Some("NULL"), None, Some(""), Some("null")];
        let with = |quote| DelimitedFormat {
            null_value: "NULL".to_owned(),
            ..csv(quote)
        };
        let cases = [
            (
                QuoteMode::Necessary,
                vec![ok("\"NULL\""), ok("NULL"), ok(""), ok("null")],
            ),
            (
                QuoteMode::All,
                vec![ok("\"NULL\""), ok("\"NULL\""), ok("\"\""), ok("\"null\"")],
            ),
            (
                QuoteMode::NonNull,
                vec![ok("\"NULL\""), ok("NULL"), ok("\"\""), ok("\"null\"")],
            ),
            (
                QuoteMode::NonNumeric,
                vec![ok("\"NULL\""), ok("NULL"), ok("\"\""), ok("\"null\"")],
            ),
        ];
        for (mode, expected) in cases {
            assert_eq!(fields_of(&with(mode), &values), expected, "{mode:?}");
        }
        let never = fields_of(&with(QuoteMode::Never), &values);
        assert!(
            never[0]
                .as_ref()
                .is_err_and(|m| m.contains("equals the null_value \"NULL\"")),
            "{never:?}"
        );
        assert_eq!(never[1..], [ok("NULL"), ok(""), ok("null")]);
    }

    #[test]
    fn tsv_with_backslash_escape_and_mysql_nulls() {
        let settings = DelimitedFormat {
            escape_char: '\\',
            null_value: "\\N".to_owned(),
            header: false,
            ..DelimitedFormat::defaults(Dialect::Tsv)
        };
        let values = [
            Some("a\tb"),
            Some("say \"hi\""),
            Some("back\\slash"),
            Some("\\N"),
            None,
            Some("a,b|c"),
            Some(""),
        ];
        let expected = [
            ok("\"a\tb\""),
            ok("\"say \\\"hi\\\"\""),
            ok("\"back\\\\slash\""),
            ok("\"\\\\N\""),
            ok("\\N"),
            ok("a,b|c"),
            ok(""),
        ];
        assert_eq!(fields_of(&settings, &values), expected);
        let never = DelimitedFormat {
            quote: QuoteMode::Never,
            ..settings
        };
        let written = fields_of(&never, &values);
        assert!(
            written[2]
                .as_ref()
                .is_err_and(|m| m.contains("the escape char \"\\\\\"")),
            "{written:?}"
        );
        assert!(written[3].is_err(), "{written:?}");
        assert_eq!(written[4], ok("\\N"));
    }

    #[test]
    fn psv_and_custom_delimiters_and_quote_chars() {
        let psv = DelimitedFormat {
            header: false,
            ..DelimitedFormat::defaults(Dialect::Psv)
        };
        assert_eq!(
            fields_of(&psv, &[Some("pipe|x"), Some("a,b"), Some("tab\tx")]),
            [ok("\"pipe|x\""), ok("a,b"), ok("tab\tx")]
        );
        let semicolon = DelimitedFormat {
            quote_char: '\'',
            escape_char: '\'',
            ..csv(QuoteMode::Necessary)
        };
        let semicolon = DelimitedFormat {
            dialect: Dialect::Csv { delimiter: ';' },
            ..semicolon
        };
        assert_eq!(
            fields_of(&semicolon, &[Some("it's"), Some("a;b"), Some("a,\"b\"")]),
            [ok("'it''s'"), ok("'a;b'"), ok("a,\"b\"")]
        );
        // Non-ASCII specials: a value sharing only the first UTF-8 byte is not special.
        let section = DelimitedFormat {
            dialect: Dialect::Csv { delimiter: '§' },
            quote_char: '«',
            escape_char: '«',
            ..csv(QuoteMode::Necessary)
        };
        assert_eq!(
            fields_of(
                &section,
                &[Some("a§b"), Some("¦ ©"), Some("x«y"), Some("\"q\"")]
            ),
            [ok("«a§b«"), ok("¦ ©"), ok("«x««y«"), ok("\"q\"")]
        );
        let text = encode(
            &section,
            &[mixed_batch().project(&[0, 1]).expect("columns")],
        )
        .expect("encoded");
        assert_eq!(text, "-9223372036854775808§a,b \"c\"\n42§««\n§\n");
    }

    #[test]
    fn every_type_in_every_mode_with_a_header() {
        let header = |quoted: bool| {
            let names = ["id", "name", "score", "amount", "active", "day", "at"];
            if quoted {
                names.map(|n| format!("\"{n}\"")).join(",")
            } else {
                names.join(",")
            }
        };
        let min = "-9223372036854775808";
        let big = "1234567890123456789012345678.9012345678";
        let cases = [
            (
                QuoteMode::Necessary,
                format!(
                    "{}\n{min},\"a,b \"\"c\"\"\",0.1,-0.0001234500,true,1970-01-01,2024-02-29T23:59:59.123456Z\n\
                     42,\"\",NaN,{big},false,2000-02-29,1970-01-01T00:00:00.000000Z\n,,,,,,\n",
                    header(false)
                ),
            ),
            (
                QuoteMode::NonNumeric,
                format!(
                    "{}\n{min},\"a,b \"\"c\"\"\",0.1,-0.0001234500,\"true\",\"1970-01-01\",\"2024-02-29T23:59:59.123456Z\"\n\
                     42,\"\",NaN,{big},\"false\",\"2000-02-29\",\"1970-01-01T00:00:00.000000Z\"\n,,,,,,\n",
                    header(true)
                ),
            ),
            (
                QuoteMode::NonNull,
                format!(
                    "{}\n\"{min}\",\"a,b \"\"c\"\"\",\"0.1\",\"-0.0001234500\",\"true\",\"1970-01-01\",\"2024-02-29T23:59:59.123456Z\"\n\
                     \"42\",\"\",\"NaN\",\"{big}\",\"false\",\"2000-02-29\",\"1970-01-01T00:00:00.000000Z\"\n,,,,,,\n",
                    header(true)
                ),
            ),
            (
                QuoteMode::All,
                format!(
                    "{}\n\"{min}\",\"a,b \"\"c\"\"\",\"0.1\",\"-0.0001234500\",\"true\",\"1970-01-01\",\"2024-02-29T23:59:59.123456Z\"\n\
                     \"42\",\"\",\"NaN\",\"{big}\",\"false\",\"2000-02-29\",\"1970-01-01T00:00:00.000000Z\"\n\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n",
                    header(true)
                ),
            ),
        ];
        for (mode, expected) in cases {
            let settings = DelimitedFormat {
                header: true,
                ..csv(mode)
            };
            assert_eq!(
                encode(&settings, &[mixed_batch()]).expect("encoded"),
                expected,
                "{mode:?}"
            );
        }
        let never = DelimitedFormat {
            header: true,
            ..csv(QuoteMode::Never)
        };
        let error = encode(&never, &[mixed_batch()]).expect_err("refused");
        assert!(
            matches!(&error, EncodeError::Value { column, row: 1, .. } if column == "name"),
            "{error:?}"
        );
        let without_name = mixed_batch().project(&[0, 2, 3, 4, 5, 6]).expect("columns");
        assert_eq!(
            encode(&never, &[without_name]).expect("encoded"),
            format!(
                "id,score,amount,active,day,at\n{min},0.1,-0.0001234500,true,1970-01-01,2024-02-29T23:59:59.123456Z\n\
                 42,NaN,{big},false,2000-02-29,1970-01-01T00:00:00.000000Z\n,,,,,\n"
            )
        );
    }

    #[test]
    fn numbers_are_quoted_only_when_bare_text_would_misread() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(-5), None])) as ArrayRef,
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(2.5)])),
            ],
        )
        .expect("batch");
        let nan_is_null = DelimitedFormat {
            null_value: "NaN".to_owned(),
            ..csv(QuoteMode::Necessary)
        };
        assert_eq!(
            encode(&nan_is_null, std::slice::from_ref(&batch)).expect("encoded"),
            "-5,\"NaN\"\nNaN,2.5\n"
        );
        let non_numeric = DelimitedFormat {
            quote: QuoteMode::NonNumeric,
            ..nan_is_null.clone()
        };
        assert_eq!(
            encode(&non_numeric, std::slice::from_ref(&batch)).expect("encoded"),
            "-5,\"NaN\"\nNaN,2.5\n"
        );
        let dot = DelimitedFormat {
            dialect: Dialect::Csv { delimiter: '.' },
            ..csv(QuoteMode::NonNumeric)
        };
        assert_eq!(
            encode(&dot, std::slice::from_ref(&batch)).expect("encoded"),
            "-5.NaN\n.\"2.5\"\n"
        );
        let minus_quote = DelimitedFormat {
            quote_char: '-',
            escape_char: '-',
            ..csv(QuoteMode::Necessary)
        };
        assert_eq!(
            encode(&minus_quote, std::slice::from_ref(&batch)).expect("encoded"),
            "---5-,NaN\n,2.5\n"
        );
        let never = DelimitedFormat {
            quote: QuoteMode::Never,
            ..nan_is_null
        };
        let error = encode(&never, &[batch]).expect_err("refused");
        assert!(
            matches!(&error, EncodeError::Value { column, row: 1, .. } if column == "f"),
            "{error:?}"
        );
    }

    #[test]
    fn header_names_follow_the_value_rules() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("full name", DataType::Utf8, true),
            Field::new("a,b", DataType::Utf8, true),
            Field::new("ünï \"q\"", DataType::Utf8, true),
        ]));
        let empty = RecordBatch::new_empty(schema.clone());
        let with_header = |quote| DelimitedFormat {
            header: true,
            ..csv(quote)
        };
        assert_eq!(
            encode(
                &with_header(QuoteMode::Necessary),
                std::slice::from_ref(&empty)
            )
            .expect("encoded"),
            "id,full name,\"a,b\",\"ünï \"\"q\"\"\"\n"
        );
        assert_eq!(
            encode(
                &with_header(QuoteMode::NonNumeric),
                std::slice::from_ref(&empty)
            )
            .expect("encoded"),
            "\"id\",\"full name\",\"a,b\",\"ünï \"\"q\"\"\"\n"
        );
        let error = encoder(
            &FileFormat::Delimited(with_header(QuoteMode::Never)),
            ParquetCodec::Snappy,
            schema,
            Box::new(MemorySink::default()),
        )
        .err()
        .expect("refused");
        assert_eq!(
            error.to_string(),
            "column `a,b`, header row: the value contains the delimiter \",\", which quote mode \
             never cannot write; use quote mode necessary, or a delimiter the data does not contain"
        );
    }

    #[test]
    fn empty_files_hold_the_header_or_nothing() {
        for (header, expected) in [(true, "id,name,score,amount,active,day,at\n"), (false, "")] {
            let settings = DelimitedFormat {
                header,
                ..csv(QuoteMode::Necessary)
            };
            let (encoder, sink) = start(&settings, mixed_schema());
            assert_eq!(encoder.rows(), 0);
            encoder.finish().expect("finished");
            assert!(sink.is_finished());
            assert_eq!(String::from_utf8(sink.contents()).expect("utf-8"), expected);
        }
    }

    #[test]
    fn rows_count_across_batches_and_refusals_name_the_row_in_the_file() {
        let settings = csv(QuoteMode::Never);
        let (mut encoder, sink) = start(&settings, strings("s", &[]).schema());
        encoder
            .write_batch(&strings("s", &[Some("a"), None]))
            .expect("first batch");
        assert_eq!(encoder.rows(), 2);
        let error = encoder
            .write_batch(&strings("s", &[Some("b"), Some("c\nd"), Some("e")]))
            .expect_err("refused");
        assert!(
            matches!(&error, EncodeError::Value { row: 4, .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with("column `s`, row 4: "),
            "{error}"
        );
        assert_eq!(encoder.rows(), 3, "the rows before the refused one stand");
        encoder.finish().expect("finished");
        assert_eq!(sink.contents(), b"a\n\nb\n", "only whole rows");
    }

    #[test]
    fn settings_that_break_every_file_are_refused() {
        let cases = [
            (
                DelimitedFormat {
                    null_value: "n,a".to_owned(),
                    ..csv(QuoteMode::Necessary)
                },
                Some("null_value"),
            ),
            (
                DelimitedFormat {
                    null_value: "\"".to_owned(),
                    ..csv(QuoteMode::NonNull)
                },
                Some("null_value"),
            ),
            (
                DelimitedFormat {
                    null_value: "n,a".to_owned(),
                    ..csv(QuoteMode::All)
                },
                None,
            ),
            (
                DelimitedFormat {
                    escape_char: ',',
                    ..csv(QuoteMode::Necessary)
                },
                Some("escape_char"),
            ),
            (
                DelimitedFormat {
                    quote_char: ',',
                    escape_char: ',',
                    ..csv(QuoteMode::Necessary)
                },
                Some("quote_char"),
            ),
        ];
        for (settings, refused) in cases {
            let result = encoder(
                &FileFormat::Delimited(settings.clone()),
                ParquetCodec::Snappy,
                mixed_schema(),
                Box::new(MemorySink::default()),
            );
            match (result, refused) {
                (Err(EncodeError::Settings { setting, .. }), Some(expected)) => {
                    assert_eq!(setting, expected, "{settings:?}")
                }
                (Ok(_), None) => {}
                (result, _) => panic!("{settings:?}: {:?}", result.err()),
            }
        }
        let all = DelimitedFormat {
            null_value: "n,a".to_owned(),
            ..csv(QuoteMode::All)
        };
        assert_eq!(
            encode(&all, &[strings("s", &[None, Some("n,a")])]).expect("encoded"),
            "\"n,a\"\n\"n,a\"\n"
        );
    }

    #[test]
    fn output_reaches_the_sink_before_finish() {
        let settings = csv(QuoteMode::Necessary);
        let (mut encoder, sink) = start(&settings, strings("s", &[]).schema());
        let row = "x".repeat(1000);
        let batch = strings("s", &vec![Some(row.as_str()); 2000]);
        encoder.write_batch(&batch).expect("written");
        let before = sink.contents().len();
        assert!(
            before >= super::FLUSH_AT,
            "flushed at about a MiB, got {before} bytes"
        );
        assert!(!sink.is_finished());
        encoder.finish().expect("finished");
        assert_eq!(sink.contents().len(), 2000 * 1001);
    }

    /// Release-mode throughput: `cargo test --release -p shared --lib csv_throughput -- --ignored --nocapture`.
    /// `ENCODE_BENCH_PARQUET=path` keeps the Parquet input for a comparison with other tools.
    #[test]
    #[ignore = "benchmark; run in release"]
    fn csv_throughput() {
        use std::time::Instant;

        use arrow_array::builder::{
            BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
            StringBuilder, TimestampMicrosecondBuilder,
        };

        const ROWS: usize = 1_000_000;
        const BATCH: usize = 8192;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("customer", DataType::Utf8, true),
            Field::new("email", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("score", DataType::Float64, true),
            Field::new("active", DataType::Boolean, true),
            Field::new("signup", DataType::Date32, true),
            Field::new(
                "updated_at",
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let names = [
            "Alice Martin",
            "Bob \"Bobby\" Chen",
            "Zoë Ångström",
            "Dupont, Jean",
            "李小龍",
            "O'Brien",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut batches = Vec::new();
        let mut row = 0;
        while row < ROWS {
            let n = BATCH.min(ROWS - row);
            let (mut id, mut customer, mut email) = (
                Int64Builder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
            );
            let mut amount = Decimal128Builder::new()
                .with_precision_and_scale(18, 2)
                .expect("type");
            let (mut score, mut active, mut signup) = (
                Float64Builder::new(),
                BooleanBuilder::new(),
                Date32Builder::new(),
            );
            let mut updated = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            for i in row..row + n {
                let r = next();
                id.append_value(i as i64);
                customer.append_value(names[(r % 6) as usize]);
                if r % 10 == 0 {
                    email.append_null();
                } else {
                    email.append_value(format!("user{}@example.com", r % 100_000));
                }
                amount.append_value(i128::from((r >> 8) % 10_000_000) - 2_000_000);
                score.append_value((r >> 11) as f64 / (1u64 << 53) as f64 * 1000.0);
                active.append_value(r & 1 == 0);
                signup.append_value(15_000 + (r % 5000) as i32);
                updated.append_value(1_700_000_000_000_000 + (r % 100_000_000_000) as i64);
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(id.finish()),
                Arc::new(customer.finish()),
                Arc::new(email.finish()),
                Arc::new(amount.finish()),
                Arc::new(score.finish()),
                Arc::new(active.finish()),
                Arc::new(signup.finish()),
                Arc::new(updated.finish()),
            ];
            batches.push(RecordBatch::try_new(schema.clone(), columns).expect("batch"));
            row += n;
        }

        struct Counting(Arc<std::sync::atomic::AtomicU64>);
        impl std::io::Write for Counting {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl crate::export::sink::ByteSink for Counting {
            fn finish(self: Box<Self>) -> std::io::Result<()> {
                Ok(())
            }
        }
        let format =
            FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' }));
        let run = |batches: &mut dyn Iterator<Item = RecordBatch>| {
            let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut encoder = encoder(
                &format,
                ParquetCodec::Snappy,
                schema.clone(),
                Box::new(Counting(bytes.clone())),
            )
            .expect("encoder");
            for batch in batches {
                encoder.write_batch(&batch).expect("written");
            }
            encoder.finish().expect("finished");
            bytes.load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut best = f64::MAX;
        let mut bytes = 0;
        for _ in 0..5 {
            let started = Instant::now();
            bytes = run(&mut batches.iter().cloned());
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!(
            "arrow→csv: {ROWS} rows, {:.1} MB in {:.3} s: {:.0} MB/s",
            bytes as f64 / 1e6,
            best,
            bytes as f64 / 1e6 / best
        );

        let parquet_bytes = {
            let mut file = Vec::new();
            let mut writer =
                ::parquet::arrow::ArrowWriter::try_new(&mut file, schema.clone(), None)
                    .expect("writer");
            for batch in &batches {
                writer.write(batch).expect("written");
            }
            writer.close().expect("closed");
            bytes::Bytes::from(file)
        };
        if let Ok(path) = std::env::var("ENCODE_BENCH_PARQUET") {
            std::fs::write(&path, &parquet_bytes).expect("parquet file kept");
        }
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let reader = ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                parquet_bytes.clone(),
            )
            .expect("reader")
            .with_batch_size(BATCH)
            .build()
            .expect("reader");
            bytes = run(&mut reader.map(|batch| batch.expect("batch")));
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!(
            "parquet→csv: {ROWS} rows, {:.1} MB parquet → {:.1} MB csv in {:.3} s: {:.0} MB/s of csv",
            parquet_bytes.len() as f64 / 1e6,
            bytes as f64 / 1e6,
            best,
            bytes as f64 / 1e6 / best
        );
    }
}
