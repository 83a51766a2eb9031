use super::*;
use serde_json::json;

fn export_body() -> Value {
    json!({
        "name": "Nightly export",
        "direction": "export",
        "bucket": "acme-exports",
        "region": "us-east-1",
        "prefix": "platform/exports",
        "auth": {"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/acme-export"},
    })
}

fn ingest_body() -> Value {
    json!({
        "name": "Drops",
        "direction": "ingest",
        "bucket": "acme-drops",
        "region": "eu-west-1",
        "prefix": "incoming/",
        "auth": {"mode": "access_key", "access_key_id": "AKIAEXAMPLEEXAMPLE12", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
        "ingest": {"table": "orders"},
    })
}

fn with(mut base: Value, patch: Value) -> Value {
    merge_patch(&mut base, &patch);
    base
}

fn fields(result: Result<ConnectorSpec, Vec<FieldError>>) -> Vec<String> {
    result
        .expect_err("should be rejected")
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn export_defaults_are_filled_in() {
    let spec = parse_create(export_body()).unwrap();
    assert_eq!(spec.prefix, "platform/exports/");
    assert_eq!(
        spec.flow.schedule().map(Parsed::text),
        Some(DEFAULT_SCHEDULE)
    );
    assert!(spec.flow.schedule().and_then(Parsed::valid).is_some());
    assert!(spec.flow.ingest_options().is_none());
    let export = spec.flow.export_options().unwrap().clone();
    assert_eq!(export.format.kind(), FormatKind::Csv);
    let delimited = export.format.delimited().unwrap();
    assert_eq!(delimited.delimiter(), ',');
    assert_eq!(delimited.quote, QuoteMode::Necessary);
    assert!(delimited.header);
    assert_eq!(
        delimited,
        &DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })
    );
    assert_eq!(export.compression, ExportCompression::Gzip);
    assert_eq!(export.encryption.sse, SseMode::Aes256);
    assert_eq!(export.key_template.text(), DEFAULT_KEY_TEMPLATE);
    assert!(export.key_template.valid().is_some());
    assert_eq!(export.backfill_days, 730);
    assert_eq!(export.empty_export, EmptyExportPolicy::Skip);
    assert_eq!(export.max_file_size_mb, DEFAULT_MAX_FILE_SIZE_MB);
}

#[test]
fn ingest_defaults_and_secret_handling() {
    let spec = parse_create(ingest_body()).unwrap();
    assert!(spec.flow.schedule().is_none());
    assert!(spec.flow.export_options().is_none());
    let ingest = spec.flow.ingest_options().unwrap().clone();
    assert_eq!(ingest.compression, IngestCompression::Auto);
    assert_eq!(ingest.format.delimited().map(|d| d.delimiter()), Some(','));
    assert_eq!(ingest.reject, RejectPolicy::MaxBadRows(0));
    for (reject, want) in [
        (json!({"max_bad_rows": 25}), RejectPolicy::MaxBadRows(25)),
        (
            json!({"max_bad_percent": 1.5}),
            RejectPolicy::MaxBadPercent(1.5),
        ),
        (
            json!({"max_bad_percent": 0}),
            RejectPolicy::MaxBadPercent(0.0),
        ),
    ] {
        let mut body = ingest_body();
        body["ingest"]["reject"] = reject.clone();
        let spec = parse_create(body).unwrap();
        assert_eq!(spec.flow.ingest_options().unwrap().reject, want, "{reject}");
    }
    let AuthSpec::AccessKey(Some(keys)) = spec.auth else {
        panic!("keys expected")
    };
    assert_eq!(keys.hint(), "AKIA…LE12");
    assert!(
        !format!("{keys:?}").contains("EXAMPLEKEY"),
        "Debug never shows the secret"
    );
}

#[test]
fn each_violation_names_its_field() {
    // (patch applied to a valid body, fields expected in the 400)
    let cases: Vec<(Value, Value, &[&str])> = vec![
        (
            export_body(),
            json!({"external_id": "chosen-by-me"}),
            &["external_id"],
        ),
        (
            export_body(),
            json!({"id": "con_x", "status": "active", "version": 9}),
            &["id", "status", "version"],
        ),
        (
            export_body(),
            json!({"colour": "blue", "auth": {"extra": 1}}),
            &["colour", "auth.extra"],
        ),
        (export_body(), json!({"name": "  "}), &["name"]),
        (
            export_body(),
            json!({"name": "pay\u{202E}fdp.exe"}),
            &["name"],
        ),
        (export_body(), json!({"name": "a\u{2067}b"}), &["name"]),
        (export_body(), json!({"name": "next\u{85}line"}), &["name"]),
        (export_body(), json!({"prefix": "a*"}), &["prefix"]),
        (
            export_body(),
            json!({"prefix": "${aws:userid}"}),
            &["prefix"],
        ),
        (export_body(), json!({"prefix": "a\u{200B}b"}), &["prefix"]),
        (
            export_body(),
            json!({"bucket": "s3://acme-exports/x"}),
            &["bucket"],
        ),
        (export_body(), json!({"region": "us-east-9"}), &["region"]),
        (export_body(), json!({"prefix": "/abs"}), &["prefix"]),
        (export_body(), json!({"prefix": "a//b"}), &["prefix"]),
        (export_body(), json!({"prefix": "a/../b"}), &["prefix"]),
        (
            export_body(),
            json!({"auth": {"role_arn": "arn:aws:iam::111111111111:user/bob"}}),
            &["auth.role_arn"],
        ),
        (
            export_body(),
            json!({"auth": {"mode": "password"}}),
            &["auth.mode"],
        ),
        (export_body(), json!({"auth": null}), &["auth"]),
        (
            export_body(),
            json!({"schedule": "every day"}),
            &["schedule"],
        ),
        (
            export_body(),
            json!({"ingest": {"table": "t"}}),
            &["ingest"],
        ),
        (
            export_body(),
            json!({"export": {"format": {"type": "parquet", "header": true}}}),
            &["export.format.header"],
        ),
        (
            export_body(),
            json!({"export": {"format": {"type": "parquet"}, "compression": "tgz"}}),
            &["export.compression"],
        ),
        (
            export_body(),
            json!({"export": {"format": {"type": "tsv", "delimiter": ","}}}),
            &["export.format.delimiter"],
        ),
        (
            export_body(),
            json!({"export": {"format": {"delimiter": ";;"}}}),
            &["export.format.delimiter"],
        ),
        (
            export_body(),
            json!({"export": {"format": {"delimiter": "'", "quote_char": "'"}}}),
            &["export.format.quote_char"],
        ),
        (
            export_body(),
            json!({"export": {"format": {"quote": "sometimes"}}}),
            &["export.format.quote"],
        ),
        (
            export_body(),
            json!({"export": {"compression": "rar"}}),
            &["export.compression"],
        ),
        (
            export_body(),
            json!({"export": {"encryption": {"sse": "AES256", "kms_key_id": "alias/x"}}}),
            &["export.encryption.kms_key_id"],
        ),
        (
            export_body(),
            json!({"export": {"encryption": {"sse": "aws:kms", "kms_key_id": "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}}),
            &["export.encryption.kms_key_id"],
        ),
        (
            export_body(),
            json!({"export": {"pgp_public_key": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n-----END PGP PRIVATE KEY BLOCK-----"}}),
            &["export.pgp_public_key"],
        ),
        (
            export_body(),
            json!({"export": {"key_template": "[table_name]/x"}}),
            &["export.key_template"],
        ),
        (
            export_body(),
            json!({"export": {"tables": [{"name": "orders"}, {"name": "orders"}, {"name": "1bad"}, {"columns": []}]}}),
            &[
                "export.tables[1].name",
                "export.tables[2].name",
                "export.tables[3].name",
                "export.tables[3].columns",
            ],
        ),
        (
            export_body(),
            json!({"export": {"backfill_days": 99999, "max_file_size_mb": 4, "empty_export": "maybe"}}),
            &[
                "export.backfill_days",
                "export.max_file_size_mb",
                "export.empty_export",
            ],
        ),
        (
            export_body(),
            json!({"export": {"source_connector_id_column": "has space"}}),
            &["export.source_connector_id_column"],
        ),
        (
            ingest_body(),
            json!({"schedule": "rate(1 day)", "export": {}}),
            &["schedule", "export"],
        ),
        (ingest_body(), json!({"ingest": null}), &["ingest"]),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "success_dir": "incoming/done/"}}),
            &["ingest.success_dir"],
        ),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "success_dir": "done/", "failed_dir": "done/bad/"}}),
            &["ingest.failed_dir"],
        ),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "failed_dir": ""}}),
            &["ingest.failed_dir"],
        ),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "reject": {"max_bad_rows": 1, "max_bad_percent": 2}}}),
            &["ingest.reject.max_bad_percent"],
        ),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "reject": {"max_bad_percent": 101}}}),
            &["ingest.reject.max_bad_percent"],
        ),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "reject": {}}}),
            &["ingest.reject.max_bad_rows"],
        ),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "reject": {"max_bad_rows": -1, "other": 1}}}),
            &["ingest.reject.max_bad_rows", "ingest.reject.other"],
        ),
        (
            ingest_body(),
            json!({"ingest": {"table": "orders", "success_dir": "done/*/", "failed_dir": "bad?/"}}),
            &["ingest.success_dir", "ingest.failed_dir"],
        ),
        (
            ingest_body(),
            json!({"auth": {"access_key_id": "ASIAEXAMPLEEXAMPLE12"}}),
            &["auth.access_key_id"],
        ),
        (
            ingest_body(),
            json!({"auth": {"secret_access_key": null}}),
            &["auth.secret_access_key"],
        ),
        (json!([]), json!(null), &["body"]),
    ];
    for (base, patch, expected) in cases {
        let body = if patch.is_null() {
            base
        } else {
            with(base, patch.clone())
        };
        let got = fields(parse_create(body));
        for field in expected {
            assert!(
                got.iter().any(|f| f == field),
                "patch {patch}: expected {field} in {got:?}"
            );
        }
        let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), expected.len(), "patch {patch}: got {got:?}");
    }
}

#[test]
fn a_bad_body_lists_all_its_problems_at_once() {
    let body =
        json!({"direction": "export", "bucket": "Bad_Bucket", "auth": {"mode": "role"}, "x": 1});
    let got = fields(parse_create(body));
    assert_eq!(got, vec!["name", "bucket", "region", "auth.role_arn", "x"]);
}

/// Stored and active, at version 3.
fn stored(spec_body: Value) -> Connector {
    Connector {
        status: crate::connector::ConnectorStatus::Active,
        version: 3,
        ..crate::testing::stored_connector(spec_body)
    }
}

#[test]
fn patch_merges_into_the_current_connector() {
    let current = stored(export_body());
    let spec = parse_patch(
        &current,
        json!({"name": "Renamed", "export": {"compression": "zstd"}}),
    )
    .unwrap();
    assert_eq!(spec.name, "Renamed");
    assert_eq!(spec.bucket, "acme-exports");
    let export = spec.flow.export_options().unwrap();
    assert_eq!(export.compression, ExportCompression::Zstd);
    assert_eq!(
        export.format.kind(),
        FormatKind::Csv,
        "untouched options stay"
    );

    // Switching format replaces the format object: csv settings don't leak into jsonl.
    let spec = parse_patch(&current, json!({"export": {"format": {"type": "jsonl"}}})).unwrap();
    assert_eq!(
        spec.flow.export_options().unwrap().format,
        FileFormat::Jsonl
    );

    // Switching to parquet takes parquet's default compression instead of the stored gzip.
    let spec = parse_patch(&current, json!({"export": {"format": {"type": "parquet"}}})).unwrap();
    assert_eq!(
        spec.flow.export_options().unwrap().compression,
        ExportCompression::None
    );
    let got = fields(parse_patch(
        &current,
        json!({"export": {"format": {"type": "parquet"}, "compression": "tgz"}}),
    ));
    assert_eq!(got, vec!["export.compression"]);
    // zstd for parquet is the codec of its pages.
    let spec = parse_patch(
        &current,
        json!({"export": {"format": {"type": "parquet"}, "compression": "zstd", "success_marker": false, "table_folder_extension": false}}),
    )
    .unwrap();
    let options = spec.flow.export_options().unwrap();
    assert_eq!(options.compression, ExportCompression::Zstd);
    assert!(options.compresses_inside());
    assert_eq!(options.file_extension(), "parquet");
    assert!(!options.success_marker && !options.table_folder_extension);

    // Switching auth mode replaces the auth object.
    let spec = parse_patch(&current, json!({"auth": {"mode": "bucket_policy"}})).unwrap();
    assert_eq!(spec.auth, AuthSpec::BucketPolicy);

    // null removes an optional field (back to its default).
    let spec = parse_patch(&current, json!({"prefix": null})).unwrap();
    assert_eq!(spec.prefix, "");
}

#[test]
fn patch_rejects_immutable_and_read_only_fields() {
    let current = stored(export_body());
    let cases: &[(Value, &str)] = &[
        (json!({"external_id": "new"}), "external_id"),
        (json!({"direction": "ingest"}), "direction"),
        (json!({"version": 4}), "version"),
        (json!({"status": "active"}), "status"),
        (json!({"bucket": "UPPER"}), "bucket"),
    ];
    for (patch, field) in cases {
        let got = fields(parse_patch(&current, patch.clone()));
        assert_eq!(got, vec![field.to_string()], "{patch}");
    }
    // Repeating the current direction is harmless.
    assert!(parse_patch(&current, json!({"direction": "export"})).is_ok());
}

#[test]
fn access_keys_are_kept_unless_both_are_replaced() {
    let current = stored(ingest_body());
    let spec = parse_patch(&current, json!({"name": "x"})).unwrap();
    assert_eq!(spec.auth, AuthSpec::AccessKey(None));
    let got = fields(parse_patch(
        &current,
        json!({"auth": {"access_key_id": "AKIANEWNEWNEWNEW1234"}}),
    ));
    assert_eq!(got, vec!["auth.secret_access_key"]);
    let spec = parse_patch(
        &current,
        json!({"auth": {"access_key_id": "AKIANEWNEWNEWNEW1234", "secret_access_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCD"}}),
    )
    .unwrap();
    assert!(matches!(spec.auth, AuthSpec::AccessKey(Some(_))));
    // Moving from role to access keys needs both keys.
    let role = stored(export_body());
    let got = fields(parse_patch(&role, json!({"auth": {"mode": "access_key"}})));
    assert_eq!(got, vec!["auth.access_key_id", "auth.secret_access_key"]);
}

#[test]
fn editable_document_round_trips() {
    for body in [export_body(), ingest_body()] {
        let current = stored(body);
        let spec = parse_patch(&current, json!({})).unwrap();
        assert_eq!(spec.flow, current.flow);
        assert_eq!(spec.prefix, current.prefix);
    }
}

#[test]
fn the_pgp_public_key_must_be_a_public_key_that_can_encrypt() {
    let sign_only = include_str!("../../testdata/pgp_sign_only.asc");
    let oversized = format!(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n{}\n-----END PGP PUBLIC KEY BLOCK-----",
        "A".repeat(MAX_PGP_KEY_BYTES)
    );
    let cases: [(&str, String, Option<&str>); 6] = [
        ("a real public key", crate::testing::PGP_PUBLIC_KEY.into(), None),
        (
            "a private key",
            crate::testing::PGP_SECRET_KEY.into(),
            Some("PRIVATE key"),
        ),
        ("too large", oversized, Some("at most")),
        ("not armored", "mQENBFexample".into(), Some("ASCII-armored")),
        (
            "armored garbage",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBFexample\n-----END PGP PUBLIC KEY BLOCK-----".into(),
            Some("could not be read"),
        ),
        ("signing only", sign_only.into(), Some("can encrypt")),
    ];
    for (name, key, refusal) in cases {
        let body = with(export_body(), json!({"export": {"pgp_public_key": key}}));
        match (parse_create(body), refusal) {
            (Ok(spec), None) => assert!(
                spec.flow
                    .export_options()
                    .and_then(|e| e.pgp_public_key.as_ref())
                    .is_some(),
                "{name}"
            ),
            (Err(errors), Some(phrase)) => {
                assert_eq!(errors.len(), 1, "{name}: {errors:?}");
                assert_eq!(errors[0].field, "export.pgp_public_key", "{name}");
                assert!(
                    errors[0].rule.contains(phrase),
                    "{name}: {}",
                    errors[0].rule
                );
            }
            (result, _) => panic!("{name}: {result:?}"),
        }
    }
}
