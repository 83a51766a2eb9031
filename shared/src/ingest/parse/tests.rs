//! Behaviour of `parse_file` on delimited text and JSON Lines; Parquet has its own table in
//! `parquet_tests`.

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::*;
use crate::domain::connector::{DelimitedFormat, Dialect, QuoteMode};
use crate::ingest::source::MemorySource;

type Column = Vec<Option<String>>;
type Rows = Vec<Column>;

#[derive(Debug)]
pub(super) struct Parsed {
    pub summary: ParseSummary,
    pub batches: Vec<RecordBatch>,
    pub bad_rows: Vec<BadRow>,
}

impl Parsed {
    /// Every value of `column` as text (`None` for null): dates as `YYYY-MM-DD`, timestamps
    /// in RFC 3339, numbers as Rust prints them.
    pub fn column(&self, name: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for batch in &self.batches {
            let array = batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no {name}"));
            for row in 0..array.len() {
                out.push(cell_text(array.as_ref(), row));
            }
        }
        out
    }

    pub fn names(&self) -> Vec<String> {
        self.summary
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    pub fn types(&self) -> Vec<DataType> {
        self.summary
            .schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    pub fn reasons(&self) -> Vec<(u64, Option<&str>, &str)> {
        self.bad_rows
            .iter()
            .map(|b| (b.line, b.column.as_deref(), b.reason.as_str()))
            .collect()
    }
}

pub(super) fn cell_text(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .expect("date")
                .to_string()
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            chrono::DateTime::from_timestamp_micros(micros)
                .expect("timestamp")
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        }
        DataType::Decimal128(_, _) => array.as_primitive::<Decimal128Type>().value_as_string(row),
        other => panic!("not a lake type: {other}"),
    })
}

pub(super) fn parse_with(
    bytes: &[u8],
    key: &str,
    settings: &ParseSettings,
    table: Option<&SchemaRef>,
) -> Result<Parsed, FileError> {
    let source = MemorySource::new(bytes.to_vec());
    let mut batches = Vec::new();
    let mut bad_rows = Vec::new();
    let summary = parse_file(&source, key, settings, table, |parsed: ParsedBatch| {
        batches.push(parsed.batch);
        bad_rows.extend(parsed.bad_rows);
        Ok::<(), ()>(())
    })
    .map_err(|e| match e {
        ParseError::File(e) => e,
        ParseError::Stopped(()) => unreachable!("never stopped"),
    })?;
    for batch in &batches {
        assert_eq!(
            batch.schema(),
            summary.schema,
            "every batch has the summary's schema"
        );
    }
    lake_schema_ok(&summary.schema);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows as u64, summary.rows);
    assert_eq!(bad_rows.len() as u64, summary.bad_rows);
    Ok(Parsed {
        summary,
        batches,
        bad_rows,
    })
}

fn lake_schema_ok(schema: &SchemaRef) {
    let checked = crate::lake::schema::lake_schema(schema).expect("a lake schema");
    assert_eq!(&checked, schema);
}

pub(super) fn csv() -> DelimitedFormat {
    DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })
}

fn settings(format: FileFormat) -> ParseSettings {
    ParseSettings::new(format, IngestCompression::Auto)
}

fn parse_csv(text: &str) -> Parsed {
    parse_with(
        text.as_bytes(),
        "f.csv",
        &settings(FileFormat::Delimited(csv())),
        None,
    )
    .expect("parses")
}

fn rows_as_text(parsed: &Parsed) -> Vec<Vec<Option<String>>> {
    let names = parsed.names();
    let columns: Vec<_> = names.iter().map(|n| parsed.column(n)).collect();
    (0..parsed.summary.rows as usize)
        .map(|r| columns.iter().map(|c| c[r].clone()).collect())
        .collect()
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

#[test]
fn types_are_inferred_from_the_sample() {
    let text = "i,f,b,d,t,s,zip,mixed,empty\n\
         1,1.5,true,2024-01-31,2024-01-31T10:00:00Z,a,007,1,\n\
         -2,2,FALSE,2024-02-01,2024-02-01 11:30:00.25,b,010,x,\n\
         ,,,,2024-02-02,,,,\n";
    let parsed = parse_csv(text);
    assert_eq!(
        parsed.types(),
        vec![
            DataType::Int64,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
            timestamp(),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ]
    );
    assert!(
        parsed
            .summary
            .schema
            .fields()
            .iter()
            .all(|f| f.is_nullable())
    );
    assert_eq!(parsed.column("i"), vec![s("1"), s("-2"), None]);
    assert_eq!(parsed.column("f"), vec![s("1.5"), s("2"), None]);
    assert_eq!(parsed.column("b"), vec![s("true"), s("false"), None]);
    assert_eq!(
        parsed.column("d"),
        vec![s("2024-01-31"), s("2024-02-01"), None]
    );
    assert_eq!(
        parsed.column("t"),
        vec![
            s("2024-01-31T10:00:00Z"),
            s("2024-02-01T11:30:00.250Z"),
            s("2024-02-02T00:00:00Z")
        ]
    );
    assert_eq!(parsed.column("zip"), vec![s("007"), s("010"), None]);
    assert_eq!(parsed.column("empty"), vec![None, None, None]);
    assert_eq!(parsed.summary.content_bytes, text.len() as u64);
}

#[test]
fn delimiters_quotes_escapes_and_headers() {
    let with = |change: &dyn Fn(&mut DelimitedFormat)| {
        let mut format = csv();
        change(&mut format);
        format
    };
    let cases: Vec<(&str, DelimitedFormat, &str, Rows)> = vec![
        (
            "quoted delimiter, doubled quote, newline",
            csv(),
            "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n\"two\nlines\",z\n",
            vec![
                vec![s("x,y"), s("say \"hi\"")],
                vec![s("two\nlines"), s("z")],
            ],
        ),
        (
            "tab",
            DelimitedFormat::defaults(Dialect::Tsv),
            "a\tb\nx,y\t\"q\tq\"\n",
            vec![vec![s("x,y"), s("q\tq")]],
        ),
        (
            "pipe",
            DelimitedFormat::defaults(Dialect::Psv),
            "a|b\nx,y|z\n",
            vec![vec![s("x,y"), s("z")]],
        ),
        (
            "semicolon",
            DelimitedFormat::defaults(Dialect::Csv { delimiter: ';' }),
            "a;b\n1,5;\"x;y\"\n",
            vec![vec![s("1,5"), s("x;y")]],
        ),
        (
            "single-quote quoting",
            with(&|f| {
                f.quote_char = '\'';
                f.escape_char = '\'';
            }),
            "a,b\n'x,y','it''s'\n\"q\",z\n",
            vec![vec![s("x,y"), s("it's")], vec![s("\"q\""), s("z")]],
        ),
        (
            "backslash escape",
            with(&|f| f.escape_char = '\\'),
            "a,b\n\"say \\\"hi\\\"\",\"c:\\\\dir\"\n",
            vec![vec![s("say \"hi\""), s("c:\\dir")]],
        ),
        (
            "quote mode never: quotes are text",
            with(&|f| f.quote = QuoteMode::Never),
            "a,b\n\"x\",y\"\n",
            vec![vec![s("\"x\""), s("y\"")]],
        ),
        (
            "no header",
            with(&|f| f.header = false),
            "x,1\ny,2\n",
            vec![vec![s("x"), s("1")], vec![s("y"), s("2")]],
        ),
        (
            "CRLF line ends",
            csv(),
            "a,b\r\nx,\"y\r\nz\"\r\nw,v\r\n",
            vec![vec![s("x"), s("y\r\nz")], vec![s("w"), s("v")]],
        ),
        (
            "no newline at the end",
            csv(),
            "a,b\nx,y",
            vec![vec![s("x"), s("y")]],
        ),
        (
            "blank lines are skipped",
            csv(),
            "a,b\n\nx,y\n\n",
            vec![vec![s("x"), s("y")]],
        ),
    ];
    for (name, format, text, expected) in cases {
        let header = format.header;
        let parsed = parse_with(
            text.as_bytes(),
            "f.csv",
            &settings(FileFormat::Delimited(format)),
            None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rows_as_text(&parsed), expected, "{name}");
        assert!(parsed.bad_rows.is_empty(), "{name}: {:?}", parsed.bad_rows);
        let names = parsed.names();
        if header {
            assert_eq!(names, vec!["a", "b"], "{name}");
        } else {
            assert_eq!(names, vec!["column_1", "column_2"], "{name}");
        }
    }
}

#[test]
fn bad_rows_name_the_line_of_their_record_start() {
    let mut settings = settings(FileFormat::Delimited(csv()));
    settings.infer_rows = 2;
    let text: &[u8] = b"id,name,n\n\
                1,\"multi\nline\nname\",10\n\
                2,b,20\n\
                3,c\n\
                4,\"quoted\nagain\",abc\n\
                5,\"x\xff\",50\n\
                6,d,60,extra\n\
                7,e,70\r\n";
    let parsed = parse_with(text, "f.csv", &settings, None).expect("parses");
    assert_eq!(
        parsed.reasons(),
        vec![
            (6, None, "has 2 fields, the header has 3"),
            (7, Some("n"), "\"abc\" is not an int64"),
            (
                9,
                Some("name"),
                "the value is not valid UTF-8 (byte 0xff at position 2)"
            ),
            (10, None, "has 4 fields, the header has 3"),
        ]
    );
    assert_eq!(parsed.column("id"), vec![s("1"), s("2"), s("7")]);
    assert_eq!(parsed.column("n"), vec![s("10"), s("20"), s("70")]);
    assert_eq!(parsed.bad_rows[1].raw, "4,quoted\nagain,abc");
    assert_eq!(parsed.bad_rows[2].raw, "5,x\u{fffd},50");
    assert_eq!(parsed.summary.rows + parsed.summary.bad_rows, 7);
    let sidecar = serde_json::to_string(&parsed.bad_rows[0]).expect("serialises");
    assert_eq!(
        sidecar,
        r#"{"line":6,"column":null,"reason":"has 2 fields, the header has 3","raw":"3,c"}"#
    );
}

#[test]
fn nulls_and_empty_strings() {
    let mut null_word = csv();
    null_word.null_value = "NULL".to_owned();
    let cases: Vec<(&str, DelimitedFormat, Column, Column)> = vec![
        (
            "the default null is the empty field",
            csv(),
            vec![None, None, s("NULL"), s("x")],
            vec![None, None, None, s("1")],
        ),
        (
            "with another null value an empty text is kept, an empty number is null",
            null_word,
            vec![s(""), s(""), None, s("x")],
            vec![None, None, None, s("1")],
        ),
    ];
    for (name, format, text, number) in cases {
        let parsed = parse_with(
            b"t,n\n,\n\"\",\"\"\nNULL,\nx,1\n",
            "f.csv",
            &settings(FileFormat::Delimited(format)),
            None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.column("t"), text, "{name}");
        assert_eq!(parsed.column("n"), number, "{name}");
        assert_eq!(parsed.types()[1], DataType::Int64, "{name}");
    }
}

#[test]
fn a_bom_is_dropped_and_the_header_is_checked() {
    let parsed = parse_csv("\u{feff}id,,name\n1,2,x\n");
    assert_eq!(parsed.names(), vec!["id", "column_2", "name"]);
    let error = parse_with(
        b"id,name,id\n1,2,3\n",
        "f.csv",
        &settings(FileFormat::Delimited(csv())),
        None,
    )
    .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "the header names column \"id\" twice (columns 1 and 3)"
    );
}

#[test]
fn whole_file_errors() {
    let gzip = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"a,b\n1,2\n").expect("gzip");
        encoder.finish().expect("gzip")
    };
    let empty_gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
        .finish()
        .expect("gzip");
    let mut binary = b"a,b\n".to_vec();
    binary.extend((0..=255u8).cycle().take(3000));
    let latin1 = b"name\ncaf\xe9\nna\xefve\nplain\n".to_vec();
    let truncated_gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"a,b\n").expect("gzip");
        for i in 0..20_000 {
            writeln!(e, "{i},{}", i * 3).expect("gzip");
        }
        let whole = e.finish().expect("gzip");
        whole[..whole.len() / 2].to_vec()
    };
    let mut unusable = csv();
    unusable.quote_char = ',';
    let unusable = ParseSettings::new(FileFormat::Delimited(unusable), IngestCompression::Auto);
    let csv_none = ParseSettings::new(FileFormat::Delimited(csv()), IngestCompression::None);
    let csv_auto = settings(FileFormat::Delimited(csv()));
    let cases: Vec<(&str, Vec<u8>, &str, &ParseSettings, &str)> = vec![
        (
            "empty",
            vec![],
            "f.csv",
            &csv_auto,
            "the file is empty (0 bytes)",
        ),
        (
            "empty after gzip",
            empty_gzip,
            "f.csv.gz",
            &csv_auto,
            "the file is empty (0 bytes after gzip decompression)",
        ),
        (
            "header only",
            b"a,b\n".to_vec(),
            "f.csv",
            &csv_auto,
            "the file has a header row but no data rows",
        ),
        (
            "blank lines only",
            b"\n\n\r\n".to_vec(),
            "f.csv",
            &csv_auto,
            "the file holds no rows",
        ),
        (
            "binary",
            binary,
            "f.csv",
            &csv_auto,
            "the file looks like a binary file, not csv: a NUL byte at byte 4",
        ),
        (
            "gzip read as uncompressed",
            gzip,
            "f.csv",
            &csv_none,
            "the file looks like a binary file, not csv: ",
        ),
    ];
    let more: Vec<(&str, Vec<u8>, &str, &ParseSettings, &str)> = vec![
        (
            "truncated gzip",
            truncated_gzip,
            "f.csv.gz",
            &csv_auto,
            "the gzip stream ends early after ",
        ),
        (
            "delimiter is the quote",
            b"a,b\n1,2\n".to_vec(),
            "f.csv",
            &unusable,
            "the format settings cannot be used: the delimiter ',' is also the quote or escape character",
        ),
        (
            "parquet read as csv",
            b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00\x08".to_vec(),
            "f.csv",
            &csv_auto,
            "the file looks like a binary file, not csv: a NUL byte at byte 14; it is a Parquet file, set the connector's format to parquet",
        ),
    ];
    for (name, bytes, key, settings, message) in cases.into_iter().chain(more) {
        let error = parse_with(&bytes, key, settings, None)
            .err()
            .unwrap_or_else(|| panic!("{name}: parsed"));
        assert!(error.to_string().starts_with(message), "{name}: {error}");
    }
    let gzip_hint = parse_with(
        &{
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&[b'x'; 2000]).expect("gzip");
            e.finish().expect("gzip")
        },
        "f.csv",
        &csv_none,
        None,
    )
    .expect_err("refused");
    assert!(
        gzip_hint.to_string().ends_with(
            "it starts like a gzip file, set the connector's compression to auto or gzip"
        ),
        "{gzip_hint}"
    );
    // A few Latin-1 bytes are not a binary file: their rows are refused one by one.
    let parsed = parse_with(&latin1, "f.csv", &csv_auto, None).expect("text");
    assert_eq!(parsed.column("name"), vec![s("plain")]);
    assert_eq!(parsed.bad_rows.len(), 2);
}

#[test]
fn a_record_longer_than_the_limit_is_a_file_error() {
    let mut text = b"a,b\n1,\"unclosed\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 300_000));
    let source = MemorySource::new(text);
    let mut stream = text::open(
        &source,
        "f.csv",
        IngestCompression::None,
        crate::domain::connector::FormatKind::Csv,
    )
    .expect("opens");
    stream.set_record_limit(100_000);
    let limits = Limits {
        batch_rows: 10,
        infer_rows: 10,
    };
    let error =
        delimited::parse(stream, &csv(), limits, None, |_| Ok::<(), ()>(())).expect_err("refused");
    let ParseError::File(error) = error else {
        panic!("not a file error")
    };
    assert_eq!(
        error,
        FileError::RecordTooLong {
            line: 2,
            limit_mib: 0
        }
    );
}

#[test]
fn rows_split_into_batches_of_one_schema() {
    let mut text = String::from("id,name\n");
    for i in 0..25 {
        text.push_str(&format!("{i},n{i}\n"));
    }
    text.push_str("x,bad\n");
    let mut settings = settings(FileFormat::Delimited(csv()));
    settings.batch_rows = 10;
    settings.infer_rows = 5;
    let parsed = parse_with(text.as_bytes(), "f.csv", &settings, None).expect("parses");
    let sizes: Vec<usize> = parsed.batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(parsed.summary.rows, 25);
    assert_eq!(parsed.bad_rows.len(), 1);
    assert_eq!(parsed.bad_rows[0].line, 27);
}

#[test]
fn a_stop_from_the_caller_ends_the_parse() {
    let mut text = String::from("id\n");
    for i in 0..100 {
        text.push_str(&format!("{i}\n"));
    }
    let source = MemorySource::new(text.into_bytes());
    let mut settings = settings(FileFormat::Delimited(csv()));
    settings.batch_rows = 10;
    let mut calls = 0;
    let result = parse_file(&source, "f.csv", &settings, None, |_| {
        calls += 1;
        if calls == 2 { Err("too many") } else { Ok(()) }
    });
    assert!(matches!(result, Err(ParseError::Stopped("too many"))));
    assert_eq!(calls, 2);
}

fn table(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

#[test]
fn the_table_schema_leads_and_new_columns_follow() {
    let table = table(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("old", DataType::Utf8, true),
        Field::new("at", timestamp(), true),
        Field::new("note", DataType::Utf8, true),
    ]);
    let parsed = parse_with(
        b"extra,amount,id,price,at,note\nx,1,1,2.5,2024-01-02,7\ny,2,2,3,2024-01-03T04:05:06Z,8\n",
        "f.csv",
        &settings(FileFormat::Delimited(csv())),
        Some(&table),
    )
    .expect("parses");
    assert_eq!(
        parsed.names(),
        vec!["id", "amount", "price", "old", "at", "note", "extra"]
    );
    assert_eq!(parsed.summary.new_columns, vec!["extra"]);
    assert!(!parsed.summary.schema.field(0).is_nullable());
    assert!(parsed.summary.schema.field(6).is_nullable());
    assert_eq!(parsed.column("amount"), vec![s("1"), s("2")]);
    assert_eq!(parsed.types()[1], DataType::Float64);
    assert_eq!(parsed.column("price"), vec![s("2.50"), s("3.00")]);
    assert_eq!(parsed.column("old"), vec![None, None]);
    assert_eq!(
        parsed.column("at"),
        vec![s("2024-01-02T00:00:00Z"), s("2024-01-03T04:05:06Z")]
    );
    assert_eq!(parsed.column("note"), vec![s("7"), s("8")]);

    let cases: Vec<(&str, &[u8], &str)> = vec![
        (
            "text into an int64 column",
            b"id,amount\nabc,1\n",
            "column \"id\" is int64 in the table, but the file's values are string, which do not convert to int64",
        ),
        (
            "float into an int64 column",
            b"id\n1.5\n",
            "column \"id\" is int64 in the table, but the file's values are float64, which do not convert to int64",
        ),
        (
            "a required column is missing",
            b"amount\n1\n",
            "the table's column \"id\" may not be null, but the file has no such column",
        ),
    ];
    for (name, bytes, message) in cases {
        let error = parse_with(
            bytes,
            "f.csv",
            &settings(FileFormat::Delimited(csv())),
            Some(&table),
        )
        .err()
        .unwrap_or_else(|| panic!("{name}: parsed"));
        assert_eq!(error.to_string(), message, "{name}");
    }

    // After the sample, values are read with the table's types and refused one by one.
    let mut few = settings(FileFormat::Delimited(csv()));
    few.infer_rows = 1;
    let parsed = parse_with(
        b"id,price\n1,1.5\n,2\n3,1.234\n4,123456789\n5,x\n",
        "f.csv",
        &few,
        Some(&table),
    )
    .expect("parses");
    assert_eq!(
        parsed.reasons(),
        vec![
            (3, Some("id"), "column \"id\" may not be null"),
            (
                4,
                Some("price"),
                "\"1.234\" has more than 2 decimal places, the most decimal(10,2) keeps"
            ),
            (
                5,
                Some("price"),
                "\"123456789\" has too many digits for decimal(10,2)"
            ),
            (6, Some("price"), "\"x\" is not a decimal(10,2)"),
        ]
    );
}

fn jsonl(text: &str, table: Option<&SchemaRef>, infer_rows: usize) -> Parsed {
    let mut settings = settings(FileFormat::Jsonl);
    settings.infer_rows = infer_rows;
    parse_with(text.as_bytes(), "f.jsonl", &settings, table).expect("parses")
}

#[test]
fn jsonl_types_nested_values_and_key_order() {
    let parsed = jsonl(
        "{\"z\":1,\"a\":1.5,\"s\":\"x\",\"b\":true,\"d\":\"2024-01-01\",\"t\":\"2024-01-01T00:00:00+01:00\",\"n\":{\"k\":[1,2]},\"l\":[1,\"x\"]}\n\
         \n\
         {\"a\":2,\"z\":null,\"s\":\"12\",\"e\":null,\"mixed\":1}\r\n\
         {\"mixed\":\"x\",\"big\":18446744073709551615}\n",
        None,
        100,
    );
    assert_eq!(
        parsed.names(),
        vec!["z", "a", "s", "b", "d", "t", "n", "l", "e", "mixed", "big"]
    );
    assert_eq!(
        parsed.types(),
        vec![
            DataType::Int64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Date32,
            timestamp(),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ]
    );
    assert_eq!(parsed.column("z"), vec![s("1"), None, None]);
    assert_eq!(parsed.column("a"), vec![s("1.5"), s("2"), None]);
    assert_eq!(parsed.column("s"), vec![s("x"), s("12"), None]);
    assert_eq!(parsed.column("t")[0], s("2023-12-31T23:00:00Z"));
    assert_eq!(parsed.column("n"), vec![s("{\"k\":[1,2]}"), None, None]);
    assert_eq!(parsed.column("l"), vec![s("[1,\"x\"]"), None, None]);
    assert_eq!(parsed.column("mixed"), vec![None, s("1"), s("x")]);
    assert_eq!(
        parsed.column("big"),
        vec![None, None, s("18446744073709551615")]
    );
}

#[test]
fn jsonl_bad_lines_and_unknown_keys() {
    let parsed = jsonl(
        "{\"id\":1,\"name\":\"a\"}\n\
         {\"id\":2}\n\
         [1,2]\n\
         {\"id\":3,\n\
         \"just a string\"\n\
         {\"id\":4,\"extra\":true}\n\
         {\"id\":\"x\"}\n\
         {\"id\":5,\"id\":6}\n\
         {\"id\":7,\"name\":{\"n\":1}}\n",
        None,
        2,
    );
    assert_eq!(
        parsed.reasons(),
        vec![
            (3, None, "the line is not a JSON object"),
            (
                4,
                None,
                "the line is not valid JSON: EOF while parsing a value at line 1 column 8"
            ),
            (5, None, "the line is not a JSON object"),
            (
                6,
                Some("extra"),
                "the key \"extra\" is not among the columns found in the first 2 rows"
            ),
            (7, Some("id"), "\"x\" is not an int64"),
            (8, Some("id"), "the key \"id\" appears twice"),
        ]
    );
    assert_eq!(parsed.column("id"), vec![s("1"), s("2"), s("7")]);
    assert_eq!(parsed.column("name"), vec![s("a"), None, s("{\"n\":1}")]);
    assert_eq!(parsed.summary.rows + parsed.summary.bad_rows, 9);
}

/// Lines are read straight into the row: keys in any order (the previous line's order is
/// only a hint), keys and values with escapes, and a line refused for a key is still refused as
/// invalid JSON when it is.
#[test]
fn jsonl_keys_in_any_order_with_escapes() {
    let parsed = jsonl(
        "{\"id\":1,\"name\":\"a\",\"ok\":true}\n\
         {\"ok\":false,\"na\\u006de\":\"b\\\"q\",\"id\":\"\\u0032\"}\n\
         {\"name\":true,\"id\":3}\n\
         {\"id\":4,\"name\":\"c\"}\n\
         {\"id\":5,\"extra\":1,\"name\":}\n\
         {\"id\":6,\"extra\":[1,{\"x\":2}],\"name\":\"d\"}\n",
        None,
        1,
    );
    assert_eq!(parsed.names(), vec!["id", "name", "ok"]);
    assert_eq!(
        parsed.types(),
        vec![DataType::Int64, DataType::Utf8, DataType::Boolean]
    );
    assert_eq!(parsed.column("id"), vec![s("1"), s("2"), s("3"), s("4")]);
    assert_eq!(
        parsed.column("name"),
        vec![s("a"), s("b\"q"), s("true"), s("c")]
    );
    assert_eq!(parsed.column("ok"), vec![s("true"), s("false"), None, None]);
    assert_eq!(
        parsed.reasons(),
        vec![
            (
                5,
                None,
                "the line is not valid JSON: expected value at line 1 column 26"
            ),
            (
                6,
                Some("extra"),
                "the key \"extra\" is not among the columns found in the first 1 rows"
            ),
        ]
    );
}

#[test]
fn jsonl_against_a_table() {
    let table = table(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("late", DataType::Utf8, true),
    ]);
    let parsed = jsonl(
        "{\"id\":1,\"amount\":3,\"new\":\"2024-01-01\"}\n{\"id\":2,\"late\":5}\n{\"amount\":1}\n",
        Some(&table),
        1,
    );
    assert_eq!(parsed.names(), vec!["id", "amount", "late", "new"]);
    assert_eq!(parsed.summary.new_columns, vec!["new"]);
    assert_eq!(parsed.types()[3], DataType::Date32);
    assert_eq!(parsed.column("amount"), vec![s("3"), None]);
    assert_eq!(parsed.column("late"), vec![None, s("5")]);
    assert_eq!(
        parsed.reasons(),
        vec![(3, Some("id"), "column \"id\" may not be null")]
    );
    let mut settings = settings(FileFormat::Jsonl);
    settings.infer_rows = 10;
    let error = parse_with(
        b"{\"amount\":\"many\",\"id\":1}\n",
        "f.jsonl",
        &settings,
        Some(&table),
    )
    .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "column \"amount\" is float64 in the table, but the file's values are string, which do not convert to float64"
    );
}
