//! The main job, end to end against the local stack: what a customer does to connect their
//! bucket, step by step, with readable output. Run by `scripts/demo`.
//!
//! The "customer" (Acme) has its own bucket, IAM role and IAM user in the local stack, created
//! from the very documents the setup endpoint returns, with IAM enforced: a permission Acme
//! forgets is a real denial.

use std::io::{Read, Write};

use serde_json::{Value, json};
use shared::adapters::lake::DynamoLake;
use shared::lake::Lake;
use shared::lake::seed::{self, SeedTable};
use tests::{Api, ApiResponse, Stack, unique_bucket, unique_tenant, without_action};

struct Walk {
    step: u32,
}

impl Walk {
    fn step(&mut self, text: &str) {
        self.step += 1;
        println!("\n\x1b[1m{}. {text}\x1b[0m", self.step);
    }
}

fn show(label: &str, value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("JSON");
    println!("   {label}:");
    for line in text.lines() {
        println!("     {line}");
    }
}

fn expect(response: &ApiResponse, status: u16, what: &str) {
    expect_quietly(response, status, what);
    println!("   → HTTP {} ({what})", response.status);
}

/// Stops the walk unless the response has `status`.
fn expect_quietly(response: &ApiResponse, status: u16, what: &str) {
    if response.status != status {
        eprintln!(
            "\n   FAILED: {what}: expected HTTP {status}, got {}: {}",
            response.status, response.raw_body
        );
        std::process::exit(1);
    }
}

fn require(condition: bool, what: &str) {
    if !condition {
        eprintln!("\n   FAILED: {what}");
        std::process::exit(1);
    }
}

async fn create(api: &Api<'_>, body: &Value, what: &str) -> Value {
    let out = api.post("/connectors", body).await;
    expect(&out, 201, what);
    out.body
}

/// Validates and prints one line per check; returns the report.
async fn validate(api: &Api<'_>, id: &str) -> Value {
    let out = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await;
    expect(&out, 200, "validation ran");
    for c in out.body["checks"].as_array().expect("checks") {
        let mark = match c["status"].as_str().unwrap_or_default() {
            "pass" => "✓",
            "fail" => "✗",
            "warn" => "!",
            _ => "-",
        };
        println!(
            "   {mark} {:<22} {}",
            c["id"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        );
        if c["status"] == "fail" {
            println!(
                "     fix: {}",
                c["remediation"].as_str().unwrap_or_default()
            );
        }
    }
    println!("   validation result: {}", out.body["status"]);
    out.body
}

/// Starts a run and waits until the export function finished it.
async fn run_now(api: &Api<'_>, id: &str) -> Value {
    let started = api
        .post(&format!("/connectors/{id}/runs"), &json!({}))
        .await;
    expect(&started, 202, "run queued");
    let run_id = started.body["run_id"].as_str().unwrap().to_owned();
    let since = std::time::Instant::now();
    loop {
        let run = api
            .get(&format!("/connectors/{id}/runs/{run_id}"))
            .await
            .body;
        if matches!(run["status"].as_str(), Some("succeeded" | "failed")) {
            return run;
        }
        require(
            since.elapsed() < std::time::Duration::from_secs(180),
            "the run finishes within 3 minutes (is the poller running? .local-stack/poller.log)",
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn print_run(run: &Value) {
    println!(
        "   run {} {}: {} file(s), {} rows, {} bytes, {} ms",
        run["run_id"].as_str().unwrap_or_default(),
        run["status"],
        run["files"].as_array().map_or(0, Vec::len),
        run["rows"],
        run["bytes"],
        run["duration_ms"]
    );
    if !run["error"].is_null() {
        show("error", &run["error"]);
    }
}

/// The file dropped before the bucket notification was configured: only the poll finds it.
const EARLY_FILE: &str = "incoming/orders/orders 2026-11-23 +returns.csv";

/// Orders as a store's system writes them, one row per id; `typo` replaces one id's line.
fn orders_csv(ids: std::ops::Range<u32>, typo: Option<(u32, &str)>) -> String {
    let mut text = String::from("order_id,store,total,placed_at\n");
    for id in ids {
        match typo {
            Some((at, line)) if at == id => text.push_str(line),
            _ => text.push_str(&format!(
                "{id},store {},{}.{:02},2026-12-07T{:02}:{:02}:00Z",
                id % 7,
                id * 3 % 200,
                id % 100,
                id / 60 % 24,
                id % 60
            )),
        }
        text.push('\n');
    }
    text
}

/// Polls the Files API until `count` files have a final status; they come newest first.
async fn wait_for_files(api: &Api<'_>, path: &str, count: usize) -> Vec<Value> {
    let since = std::time::Instant::now();
    loop {
        let listed = api.get(path).await;
        expect_quietly(&listed, 200, "the Files API answers");
        let files = listed.body["items"].as_array().cloned().unwrap_or_default();
        let decided = files
            .iter()
            .filter(|f| {
                matches!(
                    f["status"].as_str(),
                    Some("succeeded" | "failed" | "quarantined")
                )
            })
            .count();
        if decided >= count {
            return files;
        }
        require(
            since.elapsed() < std::time::Duration::from_secs(120),
            "the files are decided within 2 minutes (is the poller running? .local-stack/poller.log)",
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn print_file(file: &Value) {
    let destination = &file["destination"];
    let went = match destination["action"].as_str() {
        Some("moved") => format!(
            "moved to {}",
            destination["key"].as_str().unwrap_or_default()
        ),
        Some(action) => action.replace('_', " "),
        None => "not placed yet".to_owned(),
    };
    println!(
        "   - {} [{}, found by {}]: {} rows loaded, {} rejected, {} B, {went}",
        file["key"].as_str().unwrap_or_default(),
        file["status"].as_str().unwrap_or_default(),
        file["found_by"].as_str().unwrap_or_default(),
        file["rows_loaded"],
        file["rows_rejected"],
        file["size_bytes"],
    );
    if let Some(errors) = file["errors_key"].as_str() {
        println!("       bad rows listed in {errors}");
    }
    if !file["error"].is_null() {
        println!(
            "       {}: {}",
            file["error"]["reason"].as_str().unwrap_or_default(),
            file["error"]["message"].as_str().unwrap_or_default()
        );
        println!(
            "       what to do: {}",
            file["error"]["remediation"].as_str().unwrap_or_default()
        );
    }
}

async fn list_bucket(customer: &tests::Customer, bucket: &str) {
    let listing = customer
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    for object in listing.contents() {
        println!(
            "   {:>9} B  s3://{bucket}/{}",
            object.size().unwrap_or_default(),
            object.key().unwrap_or_default()
        );
    }
}

#[tokio::main]
async fn main() {
    let stack = Stack::connect().await;
    let customer = stack.customer();
    let tenant = unique_tenant("acme");
    let api = stack.api(&tenant);
    let export_bucket = unique_bucket("acme-exports");
    let drop_bucket = unique_bucket("acme-drops");
    let suffix = &export_bucket[export_bucket.len() - 8..];
    let role_name = format!("acme-platform-export-{suffix}");
    let role_arn = format!("arn:aws:iam::{}:role/{role_name}", customer.account_id);
    let mut walk = Walk { step: 0 };
    println!("Connector walkthrough against the local stack (IAM enforced)");
    println!(
        "   AWS endpoint {}, functions at {}",
        stack.env.get("AWS_ENDPOINT_URL"),
        stack.env.get("LAMBDA_ENDPOINT_URL")
    );
    println!("   acting as tenant {tenant:?} (from the JWT claims API Gateway verified)");

    walk.step("Acme creates an export connector that will assume an IAM role in its account");
    customer.create_bucket(&export_bucket, "us-east-1").await;
    let export = create(
        &api,
        &json!({
            "name": "Nightly warehouse export",
            "direction": "export",
            "bucket": export_bucket,
            "region": "us-east-1",
            "prefix": "platform/exports",
            "auth": {"mode": "role", "role_arn": role_arn},
            "schedule": "cron(0 2 * * ? *)",
            "export": {"format": {"type": "csv"}, "compression": "gzip", "tables": [{"name": "sales"}, {"name": "stores"}]}
        }),
        "export connector created",
    )
    .await;
    let export_id = export["id"].as_str().unwrap().to_owned();
    println!(
        "   id {export_id}, status {}, version {}",
        export["status"], export["version"]
    );
    println!(
        "   external ID (generated by us, pinned in the customer's trust policy): {}",
        export["external_id"]
    );
    show("example object keys", &export["key_examples"]);

    walk.step("Acme fetches what to paste into its AWS account");
    let setup = api.get(&format!("/connectors/{export_id}/setup")).await;
    expect(&setup, 200, "setup instructions");
    for s in setup.body["steps"].as_array().unwrap() {
        println!("   {}", s.as_str().unwrap());
    }
    show("trust policy", &setup.body["trust_policy"]);
    let permissions = setup.body["permission_policy"].clone();
    let actions: Vec<String> = permissions["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect();
    println!(
        "   permission policy: {} statements scoped to arn:aws:s3:::{export_bucket}/platform/exports/*, actions {}",
        permissions["Statement"].as_array().unwrap().len(),
        actions.join(", ")
    );

    walk.step("Acme creates the role exactly as instructed, then validates");
    customer
        .create_role(&role_name, &setup.body["trust_policy"], &permissions)
        .await;
    println!("   created {role_arn}");
    let report = validate(&api, &export_id).await;
    require(
        report["status"] == "active",
        "a role set up as instructed validates",
    );

    walk.step("Acme's admin later trims the role: s3:DeleteObject is gone");
    customer
        .put_role_policy(&role_name, &without_action(&permissions, "s3:DeleteObject"))
        .await;
    let report = validate(&api, &export_id).await;
    require(
        report["status"] == "failed",
        "a missing permission fails validation",
    );
    let connector = api.get(&format!("/connectors/{export_id}")).await.body;
    println!(
        "   the connector is now {} (not schedulable until it validates again)",
        connector["status"]
    );

    walk.step("Acme restores the permission; validation passes again");
    customer.put_role_policy(&role_name, &permissions).await;
    let report = validate(&api, &export_id).await;
    require(
        report["status"] == "active",
        "restored permissions validate",
    );

    walk.step(
        "The platform's lake holds Acme's tables: sample retail data with every tricky value",
    );
    let lake = DynamoLake::new(
        stack.s3(),
        stack.dynamodb(),
        stack.env.get("LAKE_BUCKET"),
        stack.env.get("LAKE_CATALOG_TABLE"),
    );
    for (table, parts, rows) in [(SeedTable::Sales, 2, 2_500), (SeedTable::Stores, 1, 40)] {
        for part in 0..parts {
            let batch = seed::batch(table, 1, part * rows as u64, rows);
            lake.append_part(&tenant, table.name(), &[batch])
                .await
                .expect("append to the lake");
        }
        println!(
            "   {}: {parts} part(s), {} rows",
            table.name(),
            parts * rows as u64
        );
    }

    walk.step("Acme exports now (POST /connectors/{id}/runs); the export function picks the run up from the queue");
    let run = run_now(&api, &export_id).await;
    print_run(&run);
    require(run["status"] == "succeeded", "the export run succeeds");

    walk.step("What landed in Acme's bucket");
    list_bucket(&customer, &export_bucket).await;
    let manifest_key = run["plan"]["manifest_key"].as_str().unwrap();
    let manifest = customer.object(&export_bucket, manifest_key).await.0;
    let manifest: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    let mut shown = manifest.clone();
    for file in shown["files"].as_array_mut().unwrap() {
        let columns: Vec<String> = file["schema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap()
                )
            })
            .collect();
        file["schema"] = json!(columns.join(", "));
    }
    show(&format!("{manifest_key} (schema folded)"), &shown);
    let sales_key = run["files"][0]["key"].as_str().unwrap();
    let gz = customer.object(&export_bucket, sales_key).await.0;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("a gzip file");
    println!("   first lines of {sales_key} (gunzipped):");
    for line in text.lines().take(4) {
        println!("     {line}");
    }

    walk.step(
        "Acme switches to Parquet with zstd pages; new rows arrive; the next run exports only them",
    );
    let batch = seed::batch(SeedTable::Sales, 1, 5_000, 1_000);
    lake.append_part(&tenant, "sales", &[batch])
        .await
        .expect("append");
    let current = api.get(&format!("/connectors/{export_id}")).await.body;
    let patched = api
        .patch(
            &format!("/connectors/{export_id}"),
            current["version"].as_u64().unwrap(),
            &json!({"export": {"format": {"type": "parquet"}, "compression": "zstd"}}),
        )
        .await;
    expect(&patched, 200, "format changed, still active");
    show("example object keys now", &patched.body["key_examples"]);
    let run = run_now(&api, &export_id).await;
    print_run(&run);
    require(
        run["status"] == "succeeded" && run["files"][0]["rows"] == 1_000,
        "only the new rows are exported",
    );
    let parquet = customer
        .object(&export_bucket, run["files"][0]["key"].as_str().unwrap())
        .await
        .0;
    println!(
        "   {} starts with {:?}: a Parquet file any reader opens",
        run["files"][0]["key"].as_str().unwrap(),
        String::from_utf8_lossy(&parquet[..4])
    );

    walk.step("Acme creates an ingest connector with an IAM user's access key");
    customer.create_bucket(&drop_bucket, "us-east-1").await;
    let user = format!("acme-drops-{suffix}");
    let (key_id, secret) = customer.create_user_with_key(&user, None).await;
    let ingest = create(
        &api,
        &json!({
            "name": "Order drops",
            "direction": "ingest",
            "bucket": drop_bucket,
            "region": "us-east-1",
            "prefix": "incoming/orders/",
            "auth": {"mode": "access_key", "access_key_id": key_id, "secret_access_key": secret},
            "ingest": {"table": "orders", "format": {"type": "csv"}, "success_dir": "processed/orders/", "failed_dir": "failed/orders/"}
        }),
        "ingest connector created",
    )
    .await;
    let ingest_id = ingest["id"].as_str().unwrap().to_owned();
    show(
        "auth as the API returns it (no secret, ever)",
        &ingest["auth"],
    );
    let ingest_setup = api.get(&format!("/connectors/{ingest_id}/setup")).await;
    show(
        "event notification to configure",
        &ingest_setup.body["event_notification"],
    );
    customer
        .put_user_policy(&user, &ingest_setup.body["permission_policy"])
        .await;
    customer
        .put_object(
            &drop_bucket,
            EARLY_FILE,
            orders_csv(1..2, None).into_bytes(),
        )
        .await;
    println!("   attached the permission policy to {user}; dropped a first file");
    let report = validate(&api, &ingest_id).await;
    require(
        report["status"] == "active",
        "the access-key ingest connector validates",
    );

    walk.step("The stored DynamoDB item holds only the secret's ARN");
    let item = stack
        .stored_item(&tenant, &ingest_id)
        .await
        .expect("stored item");
    show("connectors table item, auth attribute", &item["auth"]);
    require(
        !item.to_string().contains(&secret),
        "secret must not be stored in DynamoDB",
    );
    println!("   the secret access key appears nowhere in the item ✓");

    walk.step("Acme applies the event notification from the setup and drops a day's files");
    customer
        .apply_event_notification(&drop_bucket, &ingest_setup.body["event_notification"])
        .await;
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzipped
        .write_all(orders_csv(100..125, None).as_bytes())
        .expect("gzip");
    let drops: Vec<(&str, Vec<u8>)> = vec![
        (
            "incoming/orders/2026/12/07/orders 07 +returns.csv",
            orders_csv(10..50, None).into_bytes(),
        ),
        (
            "incoming/orders/café 日本 100%2B.csv.gz",
            gzipped.finish().expect("gzip"),
        ),
        (
            "incoming/orders/orders with a typo.csv",
            orders_csv(
                200..210,
                Some((205, "205,store 5,12,50,2026-12-07T10:05:00Z")),
            )
            .into_bytes(),
        ),
        ("incoming/orders/empty.csv", Vec::new()),
    ];
    let files_path = format!("/connectors/{ingest_id}/files");
    for (at, (key, body)) in drops.iter().enumerate() {
        customer.put_object(&drop_bucket, key, body.clone()).await;
        println!("   dropped s3://{drop_bucket}/{key} ({} B)", body.len());
        if at == 0 {
            // The table's schema comes from its first file: let that be a good one.
            wait_for_files(&api, &files_path, 1).await;
            println!(
                "     (loaded before the next drops: the orders table takes its schema from it)"
            );
        }
    }

    walk.step("S3 → SQS → s3-ingest: each file is loaded once, then moved by the folder rules");
    let files = wait_for_files(&api, &files_path, drops.len()).await;
    for file in &files {
        print_file(file);
    }
    let status_of = |files: &[Value], key: &str| {
        files
            .iter()
            .find(|f| f["key"] == key)
            .map(|f| f["status"].as_str().unwrap_or_default().to_owned())
    };
    require(
        status_of(&files, drops[0].0).as_deref() == Some("succeeded")
            && status_of(&files, drops[1].0).as_deref() == Some("succeeded")
            && status_of(&files, drops[2].0).as_deref() == Some("failed")
            && status_of(&files, drops[3].0).as_deref() == Some("failed"),
        "good files load, the file with a bad row and the empty file fail",
    );

    walk.step("The scheduled poll finds the file dropped before the notification existed");
    let scheduled = json!({"version": "0", "id": "walkthrough-poll", "detail-type": "Scheduled Event",
        "source": "aws.events", "time": "2026-12-07T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}});
    let report = stack.invoke("s3-ingest", &scheduled).await;
    println!("   poll report: {report}");
    let files = wait_for_files(&api, &files_path, drops.len() + 1).await;
    let early = files
        .iter()
        .find(|f| f["key"] == EARLY_FILE)
        .expect("the early file is in the Files API");
    print_file(early);
    require(
        early["status"] == "succeeded" && early["found_by"] == "poll",
        "the poll loads the file no notification announced",
    );

    walk.step("Where everything is now in Acme's bucket");
    list_bucket(&customer, &drop_bucket).await;
    let sidecar = "failed/orders/orders with a typo.csv.errors.jsonl";
    let (errors, _) = customer.object(&drop_bucket, sidecar).await;
    println!("   {sidecar}:");
    for line in String::from_utf8_lossy(&errors).lines() {
        println!("     {line}");
    }

    walk.step("The rows in the platform's lake: one part per good file, schema inferred");
    let parts = lake
        .parts_after(&tenant, "orders", None)
        .await
        .expect("orders parts");
    for part in &parts {
        println!("   part {}: {} rows, {} B", part.seq, part.rows, part.bytes);
    }
    let schema = lake
        .table_schema(&tenant, "orders")
        .await
        .expect("orders schema")
        .expect("the table exists");
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    println!("   orders: {}", columns.join(", "));
    let lake_rows: u64 = parts.iter().map(|p| p.rows).sum();
    require(
        parts.len() == 3 && lake_rows == 40 + 25 + 1,
        "three files loaded, each exactly once",
    );

    walk.step("Acme adds the ingested table to its export; the next run ships it");
    let current = api.get(&format!("/connectors/{export_id}")).await.body;
    let patched = api
        .patch(
            &format!("/connectors/{export_id}"),
            current["version"].as_u64().unwrap(),
            &json!({"export": {"tables": [{"name": "sales"}, {"name": "stores"}, {"name": "orders"}]}}),
        )
        .await;
    expect(&patched, 200, "orders added to the export");
    let run = run_now(&api, &export_id).await;
    print_run(&run);
    let shipped = run["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["table"] == "orders"))
        .cloned()
        .unwrap_or_default();
    require(
        run["status"] == "succeeded" && shipped["rows"] == lake_rows,
        "every ingested row is exported",
    );
    println!(
        "   s3://{export_bucket}/{}: {} rows, sha256 {}",
        shipped["key"].as_str().unwrap_or_default(),
        shipped["rows"],
        shipped["sha256"].as_str().unwrap_or_default()
    );

    walk.step("Acme lists its connectors, one per page");
    for page in api.pages(1).await {
        expect(&page, 200, "a page");
        for c in page.body["items"].as_array().unwrap() {
            println!(
                "   - {} {} ({}, {})",
                c["id"], c["name"], c["direction"], c["status"]
            );
        }
    }

    walk.step("Acme moves the export to 03:00 UTC with the version it read");
    let path = format!("/connectors/{export_id}");
    let current = api.get(&path).await;
    let version = current.body["version"].as_u64().unwrap();
    let updated = api
        .patch(&path, version, &json!({"schedule": "cron(0 3 * * ? *)"}))
        .await;
    expect(&updated, 200, "updated");
    println!(
        "   version {}, status {} (a schedule change needs no new validation), next run {}",
        updated.body["version"], updated.body["status"], updated.body["next_run_at"]
    );
    let stale = api
        .patch(&path, version, &json!({"name": "stale edit"}))
        .await;
    expect(
        &stale,
        412,
        "a second edit based on the old version is refused",
    );
    println!("   {}", stale.body["error"]["message"]);

    walk.step("Mistakes are explained field by field");
    let bad = api
        .post(
            "/connectors",
            &json!({"name": "typo", "direction": "export", "bucket": "s3://Acme-Exports/data", "region": "us-east-11",
                    "auth": {"mode": "role", "role_arn": "arn:aws:iam::111111111111:user/bob"}, "external_id": "mine"}),
        )
        .await;
    expect(&bad, 400, "rejected");
    for f in bad.body["error"]["fields"].as_array().unwrap() {
        println!(
            "   - {}: {}",
            f["field"].as_str().unwrap(),
            f["rule"].as_str().unwrap()
        );
    }

    walk.step("Globex names a role of Acme's that forgot the external ID condition");
    // Acme's second role trusts our principal without sts:ExternalId and may do anything in a
    // bucket holding payroll. Whoever learns its ARN could try to use us as a deputy.
    let payroll_bucket = unique_bucket("acme-payroll");
    customer.create_bucket(&payroll_bucket, "us-east-1").await;
    customer
        .put_object(
            &payroll_bucket,
            "private/payroll.csv",
            b"name,salary\n".to_vec(),
        )
        .await;
    let loose_role = format!("acme-loose-{suffix}");
    let mut loose_trust = setup.body["trust_policy"].clone();
    loose_trust["Statement"][0]
        .as_object_mut()
        .expect("statement")
        .remove("Condition");
    customer
        .create_role(
            &loose_role,
            &loose_trust,
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{payroll_bucket}"), format!("arn:aws:s3:::{payroll_bucket}/*")]}]}),
        )
        .await;
    let globex = stack.api(&unique_tenant("globex"));
    let deputy = create(
        &globex,
        &json!({"name": "not ours", "direction": "ingest", "bucket": payroll_bucket, "region": "us-east-1",
                "prefix": "private/", "ingest": {"table": "payroll"},
                "auth": {"mode": "role", "role_arn": format!("arn:aws:iam::{}:role/{loose_role}", customer.account_id)}}),
        "anyone may name a role",
    )
    .await;
    let report = validate(&globex, deputy["id"].as_str().unwrap()).await;
    require(
        report["status"] == "failed"
            && report["checks"].as_array().unwrap()[3..]
                .iter()
                .all(|c| c["status"] == "skip"),
        "nothing touches the bucket once the role accepts a wrong external ID",
    );
    println!(
        "   the payroll file was never listed or read; the fix names the condition Acme must add"
    );

    walk.step("Nobody can point a connector at the platform's own lake");
    let lake = stack.env.get("LAKE_BUCKET");
    let refused = globex
        .post(
            "/connectors",
            &json!({"name": "lake", "direction": "ingest", "bucket": lake, "region": "us-east-1",
                    "ingest": {"table": "t"}, "auth": {"mode": "bucket_policy"}}),
        )
        .await;
    expect(&refused, 400, "refused");
    println!(
        "   - bucket: {}",
        refused.body["error"]["fields"][0]["rule"]
    );

    walk.step("Another tenant cannot see Acme's connectors");
    let other = stack.api(&unique_tenant("globex"));
    let peek = other.get(&path).await;
    expect(&peek, 404, "invisible to another tenant");

    println!(
        "\nDone. Connectors {export_id} and {ingest_id} stay in the local stack for you to explore;"
    );
    println!("stop it with `scripts/local-stack down`.");
}
