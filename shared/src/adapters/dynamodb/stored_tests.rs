//! Items exactly as the connectors table holds them today (`stored_items.json`: the DynamoDB
//! attribute values a build before the typed model wrote, dumped with `serde_dynamo::to_item`)
//! read into the typed model and are written back attribute for attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

use crate::domain::connector::key_template::KeyTemplate;
use crate::domain::connector::schedule::Schedule;
use crate::domain::connector::spec;
use crate::domain::connector::*;
use crate::domain::setup::checks::{CheckStatus, ValidationStatus};

type Item = HashMap<String, AttributeValue>;

const STORED_ITEMS: &str = include_str!("stored_items.json");

/// DynamoDB JSON (`{"S": "…"}`, `{"M": {…}}`, …) to attribute values.
fn attribute(v: &Value) -> AttributeValue {
    let (tag, inner) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("one typed attribute");
    match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str().unwrap().to_owned()),
        "N" => AttributeValue::N(inner.as_str().unwrap().to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().unwrap()),
        "NULL" => AttributeValue::Null(inner.as_bool().unwrap()),
        "L" => AttributeValue::L(inner.as_array().unwrap().iter().map(attribute).collect()),
        "M" => AttributeValue::M(item(inner)),
        other => panic!("unexpected attribute type {other}"),
    }
}

fn item(v: &Value) -> Item {
    v.as_object()
        .expect("an item")
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect()
}

fn stored_item(name: &str) -> Item {
    let all: Value = serde_json::from_str(STORED_ITEMS).expect("valid JSON");
    item(&all[name])
}

fn read(item: Item) -> Result<Connector, serde_dynamo::Error> {
    serde_dynamo::from_item(item)
}

fn write(c: &Connector) -> Item {
    serde_dynamo::to_item(c).expect("serializes")
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

#[test]
fn items_written_today_read_and_write_back_unchanged() {
    for name in ["export", "ingest", "access_key", "bucket_policy"] {
        let today = stored_item(name);
        let c = read(today.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            write(&c),
            today,
            "{name} writes back attribute for attribute"
        );
        // The JSON form (what serde_json sees) agrees too.
        let again: Connector = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(again, c, "{name}");
    }
}

#[test]
fn an_export_item_with_every_option_reads_typed() {
    let c = read(stored_item("export")).unwrap();
    assert_eq!(c.direction(), Direction::Export);
    assert!(c.ingest_options().is_none());
    let schedule = c.schedule().expect("exports have a schedule");
    assert_eq!(schedule.text(), "cron(0 2 * * ? *)");
    assert!(matches!(schedule.valid(), Some(Schedule::Cron(_))));
    let export = c.export_options().unwrap();
    assert_eq!(
        export.format,
        FileFormat::Delimited(DelimitedFormat {
            dialect: Dialect::Csv { delimiter: ';' },
            quote: QuoteMode::All,
            quote_char: '\'',
            escape_char: '\\',
            header: false,
            null_value: "NULL".into(),
        })
    );
    assert_eq!(
        export.key_template.valid().map(KeyTemplate::as_str),
        Some("[table_name]/[yyyy]-[mm]-[dd]/[run_id]_[part_number]")
    );
    assert_eq!(export.compression, ExportCompression::Zstd);
    assert_eq!(export.encryption.sse, SseMode::AwsKms);
    assert_eq!(export.file_extension(), "csv.zst.pgp");
    let report = c.validation.as_ref().expect("validated");
    assert_eq!(report.status, ValidationStatus::Active);
    assert_eq!(
        report.checks.len(),
        crate::domain::setup::checks::CheckId::ALL.len()
    );
    let settings = report
        .check(crate::domain::setup::checks::CheckId::BucketSettings)
        .unwrap();
    assert_eq!(settings.status, CheckStatus::Warn);
    assert_eq!(settings.aws_error_code.as_deref(), Some("AccessDenied"));
    assert_eq!(report.bucket_region.as_deref(), Some("us-east-1"));
    assert_eq!(
        c.due_shard.as_deref(),
        Some(due_shard_for("con_1").as_str())
    );
    assert_eq!(c.key_examples().map(|k| k.len()), Some(3));
}

#[test]
fn ingest_and_access_key_items_read_typed() {
    let ingest = read(stored_item("ingest")).unwrap();
    let Flow::Ingest(options) = &ingest.flow else {
        panic!("an ingest flow")
    };
    assert!(ingest.schedule().is_none() && ingest.export_options().is_none());
    assert_eq!(
        options.format,
        FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Tsv))
    );
    assert_eq!(options.move_dirs(), vec!["done/", "failed/"]);
    assert!(ingest.key_examples().is_none());

    let keys = read(stored_item("access_key")).unwrap();
    assert_eq!(keys.auth.mode(), AuthMode::AccessKey);
    assert_eq!(
        keys.auth.secret_arn(),
        Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:s")
    );
    assert_eq!(keys.export_options().unwrap().format, FileFormat::Parquet);
    assert_eq!(keys.schedule().map(Parsed::text), Some("rate(1 day)"));

    let policy = read(stored_item("bucket_policy")).unwrap();
    assert_eq!(policy.ingest_options().unwrap().format, FileFormat::Jsonl);
    assert_eq!(policy.status, ConnectorStatus::Failed);
}

/// Rules may tighten after an item was written. Such an item still reads (one stale item must
/// not fail a tenant's listing or the `by-bucket` routing of other connectors), keeps its text,
/// never runs, and the `config` check of validation (which re-runs the spec rules through
/// `parse_patch(c, {})`) names what to fix, as it did when the text was re-parsed at every use.
#[test]
fn a_stale_schedule_or_key_template_reads_and_is_reported_by_the_config_check() {
    let mut today = stored_item("export");
    today.insert("schedule".into(), s("rate(1 minute)"));
    let Some(AttributeValue::M(export)) = today.get_mut("export") else {
        panic!("export block")
    };
    export.insert("key_template".into(), s("[table_name]/fixed"));

    let c = read(today.clone()).expect("a stale item still reads");
    let schedule = c.schedule().unwrap();
    assert!(schedule.valid().is_none(), "never runs");
    assert_eq!(schedule.text(), "rate(1 minute)");
    let Parsed::Stale { rule, .. } = schedule else {
        panic!("stale")
    };
    assert!(rule.contains("15"), "{rule}");
    assert!(c.export_options().unwrap().key_template.valid().is_none());
    assert!(c.key_examples().is_none());
    assert_eq!(write(&c), today, "kept as written");

    let mut fields: Vec<String> = spec::parse_patch(&c, json!({}))
        .expect_err("the config check fails")
        .into_iter()
        .map(|e| e.field)
        .collect();
    fields.dedup();
    assert_eq!(fields, vec!["schedule", "export.key_template"]);
    // A PATCH that fixes both makes it valid again.
    let fixed = spec::parse_patch(
        &c,
        json!({"schedule": "rate(1 hour)", "export": {"key_template": "[table_name]/[run_id]_[part_number]"}}),
    )
    .expect("fixed");
    assert!(fixed.flow.schedule().and_then(Parsed::valid).is_some());
}

#[test]
fn items_whose_blocks_contradict_their_direction_are_refused() {
    /// Attributes set (`Some`) or removed (`None`) on a stored item.
    type Changes = Vec<(&'static str, Option<AttributeValue>)>;
    let cases: Vec<(&str, Changes)> = vec![
        ("export", vec![("export", None)]),
        ("export", vec![("schedule", None)]),
        (
            "export",
            vec![("ingest", Some(stored_item("ingest")["ingest"].clone()))],
        ),
        ("ingest", vec![("ingest", None)]),
        ("ingest", vec![("schedule", Some(s("rate(1 day)")))]),
        ("ingest", vec![("direction", Some(s("export")))]),
    ];
    for (base, changes) in cases {
        let mut it = stored_item(base);
        for (key, value) in &changes {
            match value {
                Some(v) => it.insert((*key).to_owned(), v.clone()),
                None => it.remove(*key),
            };
        }
        let err = read(it).expect_err("refused").to_string();
        assert!(
            err.contains("connector con_1: a"),
            "{base} {changes:?}: {err}"
        );
    }
}

#[test]
fn stored_formats_fill_missing_settings_with_the_parsers_defaults_and_refuse_the_impossible() {
    let format = |v: Value| serde_json::from_value::<FileFormat>(v);
    assert_eq!(
        format(json!({"type": "csv"})).unwrap(),
        FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' }))
    );
    let FileFormat::Delimited(d) = format(json!({"type": "csv", "quote_char": "'"})).unwrap()
    else {
        panic!("delimited")
    };
    assert_eq!(d.escape_char, '\'', "the escape defaults to the quote");
    for bad in [
        json!({"type": "tsv", "delimiter": ","}),
        json!({"type": "csv", "delimiter": ";;"}),
        json!({"type": "jsonl", "header": true}),
        json!({"type": "parquet", "delimiter": ","}),
    ] {
        assert!(format(bad.clone()).is_err(), "{bad}");
    }
    // Written as before: all six settings for delimited text, none otherwise.
    assert_eq!(
        serde_json::to_value(FileFormat::Delimited(DelimitedFormat::defaults(
            Dialect::Psv
        )))
        .unwrap(),
        json!({"type": "psv", "delimiter": "|", "quote": "necessary", "quote_char": "\"",
               "escape_char": "\"", "header": true, "null_value": ""})
    );
    assert_eq!(
        serde_json::to_value(FileFormat::Jsonl).unwrap(),
        json!({"type": "jsonl"})
    );
}

#[test]
fn an_unreadable_stored_validation_is_dropped_not_fatal() {
    let mut today = stored_item("export");
    today.insert(
        "validation".into(),
        AttributeValue::M(HashMap::from([("status".to_owned(), s("retired"))])),
    );
    let c = read(today).expect("the connector still reads");
    assert!(c.validation.is_none());
    assert_eq!(c.status, ConnectorStatus::Active);
}
