//! Export end to end against the local stack: sample rows appended to the lake, a run started
//! through the API and delivered by the local poller to `scheduled-export`, and the objects it
//! wrote into the customer's bucket read back by independent readers (`tests/readers`: Python's
//! csv module, DuckDB, pyarrow, Sequoia for OpenPGP) and compared value for value.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use arrow_array::{
    Array, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, TimeUnit};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use shared::adapters::lake::DynamoLake;
use shared::lake::Lake;
use shared::lake::seed::{self, SeedTable};
use tests::{Api, Customer, Stack, hex, unique_tenant, without_action};

const SEED: u64 = 8;
const ROWS: usize = 120;

struct Exporting<'a> {
    stack: &'a Stack,
    api: Api<'a>,
    tenant: String,
    id: String,
    bucket: String,
    customer: Customer,
    role: String,
    setup: Value,
    lake: DynamoLake,
}

/// An active export connector of a new tenant on a new customer bucket, with its role set up as
/// the setup endpoint instructs; it exports the `sales` table.
async fn export_connector<'a>(stack: &'a Stack, label: &str) -> Exporting<'a> {
    let customer = stack.customer();
    let tenant = unique_tenant(label);
    let api = stack.api(&tenant);
    let connector = customer
        .active_connector(
            &api,
            label,
            json!({
                "name": "Acme Shop", "direction": "export", "prefix": "exports",
                "export": {"tables": [{"name": "sales"}]},
            }),
        )
        .await;
    let lake = DynamoLake::new(
        stack.s3(),
        stack.dynamodb(),
        stack.env.get("LAKE_BUCKET"),
        stack.env.get("LAKE_CATALOG_TABLE"),
    );
    Exporting {
        stack,
        api,
        tenant,
        id: connector.id,
        bucket: connector.bucket,
        customer,
        role: connector.role,
        setup: connector.setup,
        lake,
    }
}

impl Exporting<'_> {
    /// Appends `ROWS` sample rows (the `n`-th block of them) to the tenant's `sales` table.
    async fn append(&self, n: u64) -> RecordBatch {
        let batch = seed::batch(SeedTable::Sales, SEED, n * ROWS as u64, ROWS);
        self.lake
            .append_part(&self.tenant, "sales", std::slice::from_ref(&batch))
            .await
            .expect("append to the lake");
        batch
    }

    async fn set_export(&self, export: &Value) {
        let current = self.api.get(&format!("/connectors/{}", self.id)).await;
        let version = current.body["version"].as_u64().unwrap();
        let patched = self
            .api
            .patch(
                &format!("/connectors/{}", self.id),
                version,
                &json!({ "export": export }),
            )
            .await;
        assert_eq!(patched.status, 200, "{export}: {}", patched.raw_body);
        assert_eq!(
            patched.body["status"], "active",
            "a format change needs no validation"
        );
    }

    /// Starts a run through the API and waits until the poller has delivered it and the
    /// function finished it.
    async fn run(&self) -> Value {
        let started = self
            .api
            .post(&format!("/connectors/{}/runs", self.id), &json!({}))
            .await;
        assert_eq!(started.status, 202, "{}", started.raw_body);
        assert_eq!(started.body["status"], "queued");
        let run_id = started.body["run_id"].as_str().unwrap().to_owned();
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        loop {
            let run = self
                .api
                .get(&format!("/connectors/{}/runs/{run_id}", self.id))
                .await;
            assert_eq!(run.status, 200, "{}", run.raw_body);
            if matches!(run.body["status"].as_str(), Some("succeeded" | "failed")) {
                return run.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {run_id} did not finish in 180 s (is the poller running? see .local-stack/poller.log): {}",
                run.raw_body
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn object(&self, key: &str) -> (Vec<u8>, Option<String>) {
        self.customer.object(&self.bucket, key).await
    }

    async fn keys(&self) -> Vec<String> {
        let out = self
            .customer
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("exports/")
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .filter(|k| !k.contains(".connector-check/"))
            .collect()
    }

    async fn open_uploads(&self) -> usize {
        let out = self
            .customer
            .s3
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        out.uploads().len()
    }
}

/// The canonical text of every value, as `tests/readers/read_back.py` compares it: made here
/// from the lake's Arrow arrays with arrow's and chrono's own formatting, not the encoders'.
fn expected_rows(batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let mut object = Map::new();
            for (i, field) in batch.schema().fields().iter().enumerate() {
                let column = batch.column(i);
                let value = if column.is_null(row) {
                    Value::Null
                } else {
                    Value::String(canonical(column.as_ref(), field.data_type(), row))
                };
                object.insert(field.name().clone(), value);
            }
            out.push_str(&Value::Object(object).to_string());
            out.push('\n');
        }
    }
    out
}

fn canonical(column: &dyn Array, data_type: &DataType, row: usize) -> String {
    let any = column.as_any();
    match data_type {
        DataType::Utf8 => any
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(row)
            .to_owned(),
        DataType::Int64 => any
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(row)
            .to_string(),
        DataType::Float64 => {
            let v = any.downcast_ref::<Float64Array>().unwrap().value(row);
            match v {
                v if v.is_nan() => "NaN".into(),
                v if v == f64::INFINITY => "Infinity".into(),
                v if v == f64::NEG_INFINITY => "-Infinity".into(),
                v => format!("{v:?}"),
            }
        }
        DataType::Decimal128(_, _) => any
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .value_as_string(row),
        DataType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .value(row)
            .to_string(),
        DataType::Date32 => {
            let days = any.downcast_ref::<Date32Array>().unwrap().value(row);
            (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(days.into()))
            .format("%Y-%m-%d")
            .to_string()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = any
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap()
                .value(row);
            chrono::DateTime::from_timestamp_micros(micros)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        }
        other => panic!("the sample data has no {other} column"),
    }
}

fn readers_dir() -> PathBuf {
    tests::StackEnv::repo_root().join("tests/readers")
}

/// Installs the readers' venv once per test process (idempotent; seconds when done before).
fn readers_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let status = Command::new(readers_dir().join("setup"))
            .status()
            .expect("run tests/readers/setup");
        assert!(status.success(), "tests/readers/setup failed");
        readers_dir().join(".venv/bin/python")
    })
}

/// An OpenPGP key pair made by Sequoia (armored secret, armored public key).
fn pgp_key_pair(dir: &Path) -> (PathBuf, String) {
    let secret = dir.join("secret.asc");
    let public = dir.join("public.asc");
    let status = Command::new(readers_python())
        .arg("-c")
        .arg("import sys, pysequoia; k = pysequoia.Tsk.generate('Export Test <export@example.com>'); open(sys.argv[1], 'w').write(str(k)); open(sys.argv[2], 'w').write(str(k.extract_certificate()))")
        .arg(&secret)
        .arg(&public)
        .status()
        .unwrap();
    assert!(status.success(), "generating a key with pysequoia");
    (secret, std::fs::read_to_string(public).unwrap())
}

/// Reads `bytes` back with the independent readers; panics with what differs.
fn read_back(
    dir: &Path,
    label: &str,
    bytes: &[u8],
    spec: &Value,
    expected: &str,
    secret: Option<&Path>,
) {
    let file = dir.join(format!("{label}.bin"));
    let spec_file = dir.join(format!("{label}.spec.json"));
    let expected_file = dir.join(format!("{label}.expected.jsonl"));
    std::fs::write(&file, bytes).unwrap();
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    std::fs::write(&expected_file, expected).unwrap();
    let mut command = Command::new(readers_python());
    command
        .arg(readers_dir().join("read_back.py"))
        .arg("--file")
        .arg(&file)
        .arg("--spec")
        .arg(&spec_file)
        .arg("--expected")
        .arg(&expected_file);
    if let Some(secret) = secret {
        command.arg("--secret-key").arg(secret);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{label}: the exported file does not read back as the lake's rows:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn content_type_of(export: &Value) -> &'static str {
    let compression = export["compression"].as_str().unwrap();
    let kind = export["format"]["type"].as_str().unwrap();
    if export.get("pgp_public_key").is_some_and(|k| !k.is_null()) {
        return "application/pgp-encrypted";
    }
    match (kind, compression) {
        ("parquet", "none" | "gzip" | "zstd") => "application/vnd.apache.parquet",
        (_, "gzip" | "tgz") => "application/gzip",
        (_, "zstd") => "application/zstd",
        (_, "zip") => "application/zip",
        (_, "tar") => "application/x-tar",
        ("csv", _) => "text/csv; charset=utf-8",
        ("tsv", _) => "text/tab-separated-values; charset=utf-8",
        ("psv", _) => "text/plain; charset=utf-8",
        ("jsonl", _) => "application/x-ndjson; charset=utf-8",
        _ => unreachable!(),
    }
}

/// Every format × option that changes bytes, exported from the tricky sample data and read
/// back value for value; each run exports only the rows appended since the last good run.
#[tokio::test]
async fn every_format_and_option_reads_back_value_for_value() {
    let stack = Stack::connect().await;
    let e = export_connector(&stack, "formats").await;
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = pgp_key_pair(dir.path());
    let csv = |extra: Value| {
        let mut format = json!({"type": "csv"});
        format
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        format
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "csv-defaults-gzip",
            json!({"format": {"type": "csv"}, "compression": "gzip"}),
        ),
        (
            "csv-all-custom-quote-escape",
            json!({"format": csv(json!({"quote": "all", "quote_char": "'", "escape_char": "\\", "header": false, "null_value": "NULL"})), "compression": "none"}),
        ),
        (
            "csv-non-null-semicolon-zstd",
            json!({"format": csv(json!({"quote": "non_null", "delimiter": ";"})), "compression": "zstd"}),
        ),
        (
            "csv-non-numeric-tgz",
            json!({"format": csv(json!({"quote": "non_numeric"})), "compression": "tgz"}),
        ),
        (
            "tsv-null-marker-zip",
            json!({"format": {"type": "tsv", "null_value": "\\N"}, "compression": "zip"}),
        ),
        (
            "psv-tar",
            json!({"format": {"type": "psv"}, "compression": "tar"}),
        ),
        (
            "jsonl-none",
            json!({"format": {"type": "jsonl"}, "compression": "none"}),
        ),
        (
            "jsonl-gzip-pgp",
            json!({"format": {"type": "jsonl"}, "compression": "gzip", "pgp_public_key": public.trim()}),
        ),
        (
            "parquet-snappy",
            json!({"format": {"type": "parquet"}, "compression": "none", "pgp_public_key": null}),
        ),
        (
            "parquet-zstd",
            json!({"format": {"type": "parquet"}, "compression": "zstd"}),
        ),
        (
            "parquet-zip-pgp",
            json!({"format": {"type": "parquet"}, "compression": "zip", "pgp_public_key": public.trim()}),
        ),
        (
            "csv-escape-gzip-pgp",
            json!({"format": csv(json!({"escape_char": "\\"})), "compression": "gzip"}),
        ),
    ];
    for (n, (label, export)) in cases.iter().enumerate() {
        let batch = e.append(n as u64).await;
        e.set_export(export).await;
        let run = e.run().await;
        assert_eq!(run["status"], "succeeded", "{label}: {run}");
        let files = run["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{label}: {run}");
        assert_eq!(files[0]["rows"], ROWS as u64, "{label}");
        let key = files[0]["key"].as_str().unwrap();
        let view = e.api.get(&format!("/connectors/{}", e.id)).await.body;
        let settings = &view["export"];
        assert!(
            key.ends_with(&format!("_00001.{}", extension_of(settings))),
            "{label}: {key}"
        );
        let (bytes, content_type) = e.object(key).await;
        assert_eq!(
            content_type.as_deref(),
            Some(content_type_of(settings)),
            "{label}"
        );
        assert_eq!(files[0]["bytes"], bytes.len() as u64, "{label}");
        assert_eq!(files[0]["sha256"], hex(&Sha256::digest(&bytes)), "{label}");

        let manifest_key = run["plan"]["manifest_key"].as_str().unwrap();
        let (manifest, _) = e.object(manifest_key).await;
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["run_id"], run["run_id"]);
        assert_eq!(manifest["files"][0]["key"], key);
        assert_eq!(manifest["files"][0]["sha256"], files[0]["sha256"]);
        assert_eq!(manifest["files"][0]["bytes"], bytes.len() as u64);
        let done = manifest_key.replace("manifest.json", ".DONE");
        assert!(e.keys().await.contains(&done), "{label}: .DONE written");

        let pgp = settings.get("pgp_public_key").is_some_and(|k| !k.is_null());
        let spec = json!({
            "format": settings["format"],
            "compression": settings["compression"],
            "pgp": pgp,
            "columns": manifest["files"][0]["schema"],
        });
        read_back(
            dir.path(),
            label,
            &bytes,
            &spec,
            &expected_rows(&[batch]),
            pgp.then_some(secret.as_path()),
        );
    }
}

fn extension_of(export: &Value) -> String {
    let kind = export["format"]["type"].as_str().unwrap();
    let compression = export["compression"].as_str().unwrap();
    let mut ext = kind.to_owned();
    let suffix = match (kind, compression) {
        ("parquet", "gzip" | "zstd") | (_, "none") => "",
        (_, "gzip") => ".gz",
        (_, "zstd") => ".zst",
        (_, "zip") => ".zip",
        (_, "tar") => ".tar",
        (_, "tgz") => ".tar.gz",
        _ => unreachable!(),
    };
    ext.push_str(suffix);
    if export.get("pgp_public_key").is_some_and(|k| !k.is_null()) {
        ext.push_str(".pgp");
    }
    ext
}

/// A run that cannot write (quote mode `never` with commas in the data; then a role without
/// s3:PutObject) fails with what to fix, leaves no multipart upload open and keeps the
/// watermark: the next good run exports the whole backlog, once.
#[tokio::test]
async fn failed_runs_keep_the_watermark_and_leave_nothing_open() {
    let stack = Stack::connect().await;
    let e = export_connector(&stack, "failing").await;
    let first = e.append(0).await;

    e.set_export(&json!({"format": {"type": "csv", "quote": "never"}, "compression": "none"}))
        .await;
    let refused = e.run().await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(
        refused["error"]["reason"], "value_not_writable",
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("row "), "{message}");
    assert!(
        refused["error"]["remediation"]
            .as_str()
            .unwrap()
            .contains("necessary"),
        "{refused}"
    );
    assert_eq!(
        e.open_uploads().await,
        0,
        "the refused file's upload was aborted"
    );

    // Take s3:PutObject away from the role: the write is denied and named.
    let denied_policy = without_action(&e.setup["permission_policy"], "s3:PutObject");
    e.customer.put_role_policy(&e.role, &denied_policy).await;
    e.set_export(&json!({"format": {"type": "csv", "quote": "necessary"}, "compression": "gzip"}))
        .await;
    let denied = e.run().await;
    assert_eq!(denied["status"], "failed", "{denied}");
    assert_eq!(
        denied["error"]["aws_error_code"], "AccessDenied",
        "{denied}"
    );
    assert!(
        denied["error"]["remediation"]
            .as_str()
            .unwrap()
            .contains("s3:PutObject"),
        "{denied}"
    );
    assert_eq!(e.open_uploads().await, 0);
    assert!(
        e.keys().await.iter().all(|k| !k.ends_with(".DONE")),
        "no marker for a failed run: {:?}",
        e.keys().await
    );

    // A permission error needs the customer: the connector waits for them, runs are refused.
    let view = e.api.get(&format!("/connectors/{}", e.id)).await.body;
    assert_eq!(view["status"], "needs_attention", "{view}");
    let refused = e
        .api
        .post(&format!("/connectors/{}/runs", e.id), &json!({}))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.raw_body);
    assert_eq!(refused.body["error"]["code"], "connector_not_active");

    // Put it back and validate: the next run exports both blocks of rows, and the one after
    // nothing new.
    e.customer
        .put_role_policy(&e.role, &e.setup["permission_policy"])
        .await;
    let report = e
        .api
        .post(&format!("/connectors/{}/validate", e.id), &json!({}))
        .await;
    assert_eq!(report.body["status"], "active", "{}", report.raw_body);
    let second = e.append(1).await;
    let good = e.run().await;
    assert_eq!(good["status"], "succeeded", "{good}");
    assert_eq!(
        good["files"][0]["rows"],
        2 * ROWS as u64,
        "the backlog, once: {good}"
    );
    let key = good["files"][0]["key"].as_str().unwrap();
    let (bytes, _) = e.object(key).await;
    let view = e.api.get(&format!("/connectors/{}", e.id)).await.body;
    let dir = tempfile::tempdir().unwrap();
    let manifest_key = good["plan"]["manifest_key"].as_str().unwrap();
    let (manifest, _) = e.object(manifest_key).await;
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let spec = json!({"format": view["export"]["format"], "compression": "gzip", "pgp": false, "columns": manifest["files"][0]["schema"]});
    read_back(
        dir.path(),
        "backlog",
        &bytes,
        &spec,
        &expected_rows(&[first, second]),
        None,
    );

    let nothing_new = e.run().await;
    assert_eq!(nothing_new["status"], "succeeded", "{nothing_new}");
    assert_eq!(nothing_new["files"], json!([]), "{nothing_new}");
    let _ = e.stack;
}
