//! The lake adapter against the local stack: parts in the lake bucket, the catalog in DynamoDB.
//! Each test uses a tenant of its own, so they run side by side on one stack.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::RecordBatch;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::adapters::lake::{COMMITTED_TAG_VALUE, DynamoLake, LAKE_OBJECT_TAG, STAGED_TAG_VALUE};
use shared::lake::seed::{self, SeedTable};
use shared::lake::{Lake, LakeError, LakePart};
use tests::{Stack, attribute_map_to_json, lake_object_tag, unique_tenant};

fn lake(stack: &Stack) -> DynamoLake {
    DynamoLake::new(
        stack.s3(),
        stack.dynamodb(),
        stack.env.get("LAKE_BUCKET"),
        stack.env.get("LAKE_CATALOG_TABLE"),
    )
}

async fn read_all(lake: &DynamoLake, part: &LakePart, batch_rows: usize) -> Vec<RecordBatch> {
    lake.read_part(part, batch_rows)
        .await
        .unwrap_or_else(|e| panic!("read part {}: {e}", part.seq))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("decode part {}: {e}", part.seq))
}

/// The rows of a part equal the seed rows it was appended from, batch by batch.
fn assert_seed_rows(batches: &[RecordBatch], table: SeedTable, first_row: u64, rows: usize) {
    let mut offset = 0;
    for batch in batches {
        let expected = seed::batch(table, 5, first_row + offset as u64, batch.num_rows());
        assert_eq!(
            *batch,
            expected,
            "{table:?} row {}",
            first_row + offset as u64
        );
        offset += batch.num_rows();
    }
    assert_eq!(offset, rows);
}

#[tokio::test]
async fn appended_parts_are_listed_in_order_and_read_back_equal() {
    let stack = Stack::connect().await;
    let lake = lake(&stack);
    let tenant = unique_tenant("lake-append");
    let ranges = [(0u64, 1_000usize), (1_000, 1), (1_001, 2_500)];
    let mut appended = Vec::new();
    for (first, rows) in ranges {
        // Two batches per part: a part is one file whatever the batches were.
        let split = rows / 2;
        let batches = [
            seed::batch(SeedTable::Sales, 5, first, split),
            seed::batch(SeedTable::Sales, 5, first + split as u64, rows - split),
        ];
        appended.push(
            lake.append_part(&tenant, "sales", &batches)
                .await
                .expect("append"),
        );
    }
    assert_eq!(
        appended.iter().map(|p| p.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        lake.parts_after(&tenant, "sales", None)
            .await
            .expect("parts"),
        appended
    );
    assert_eq!(
        lake.parts_after(&tenant, "sales", Some(1))
            .await
            .expect("parts"),
        appended[1..]
    );
    assert!(
        lake.parts_after(&tenant, "sales", Some(3))
            .await
            .expect("parts")
            .is_empty()
    );
    assert!(
        lake.parts_after(&tenant, "stores", None)
            .await
            .expect("parts")
            .is_empty()
    );

    for (part, (first, rows)) in appended.iter().zip(ranges) {
        assert_eq!(part.rows, rows as u64);
        assert_eq!(part.schema, seed::schema(SeedTable::Sales));
        assert!(
            part.key
                .starts_with(&format!("tenants/{tenant}/sales/{:010}-", part.seq))
                && part.key.ends_with(".parquet"),
            "{}",
            part.key
        );
        let batches = read_all(&lake, part, 300).await;
        assert!(batches.iter().all(|b| b.num_rows() <= 300));
        assert_seed_rows(&batches, SeedTable::Sales, first, rows);
        let object = stack
            .s3()
            .head_object()
            .bucket(stack.env.get("LAKE_BUCKET"))
            .key(&part.key)
            .send()
            .await
            .expect("the part's object exists");
        assert_eq!(object.content_length(), Some(part.bytes as i64));
    }

    // The catalog as stored: the head at part_seq 0 and each part's item.
    let catalog = stack.env.get("LAKE_CATALOG_TABLE");
    let item = |seq: u64| {
        let dynamodb = stack.dynamodb();
        let id = format!("{tenant}#sales");
        async move {
            let out = dynamodb
                .get_item()
                .table_name(catalog)
                .key("table_id", AttributeValue::S(id))
                .key("part_seq", AttributeValue::N(seq.to_string()))
                .send()
                .await
                .expect("GetItem");
            attribute_map_to_json(&out.item.expect("catalog item"))
        }
    };
    let head = item(0).await;
    assert_eq!(head["last_seq"], "3");
    assert_eq!(head["last_key"], appended[2].key.as_str());
    let second = item(2).await;
    assert_eq!(second["rows"], "1");
    assert_eq!(second["key"], appended[1].key.as_str());
    let schema: serde_json::Value =
        serde_json::from_str(second["schema"].as_str().expect("schema text")).expect("JSON");
    assert_eq!(
        schema[6],
        serde_json::json!({"name": "unit_price", "type": "decimal(12,2)", "nullable": true})
    );
    assert_eq!(
        schema[3],
        serde_json::json!({"name": "sold_at", "type": "timestamp", "nullable": true})
    );
}

#[tokio::test]
async fn concurrent_appends_get_consecutive_numbers_without_a_gap() {
    let stack = Stack::connect().await;
    let lake = Arc::new(lake(&stack));
    let tenant = unique_tenant("lake-race");
    const WRITERS: usize = 8;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (lake, tenant) = (lake.clone(), tenant.clone());
            tokio::spawn(async move {
                // Writer i appends i + 1 rows, so each part tells whose it is.
                let batch = seed::batch(SeedTable::Inventory, 5, writer as u64 * 100, writer + 1);
                lake.append_part(&tenant, "inventory", &[batch]).await
            })
        })
        .collect();
    let mut appended = Vec::new();
    for task in tasks {
        appended.push(task.await.expect("task").expect("append"));
    }
    let seqs: BTreeSet<u64> = appended.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, (1..=WRITERS as u64).collect());
    let keys: BTreeSet<&str> = appended.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys.len(), WRITERS, "every part has its own object");

    let listed = lake
        .parts_after(&tenant, "inventory", None)
        .await
        .expect("parts");
    assert_eq!(
        listed.iter().map(|p| p.seq).collect::<Vec<_>>(),
        (1..=WRITERS as u64).collect::<Vec<_>>()
    );
    for part in &listed {
        let ours = appended
            .iter()
            .find(|p| p.seq == part.seq)
            .expect("appended");
        assert_eq!(part, ours, "the catalog records what the append returned");
        let writer = part.rows as usize - 1;
        let batches = read_all(&lake, part, 1_000).await;
        let mut offset = 0;
        for batch in &batches {
            let expected = seed::batch(
                SeedTable::Inventory,
                5,
                writer as u64 * 100 + offset,
                batch.num_rows(),
            );
            assert_eq!(*batch, expected, "part {} of writer {writer}", part.seq);
            offset += batch.num_rows() as u64;
        }
    }
    assert_eq!(lake.tables(&tenant).await.expect("tables"), ["inventory"]);
}

#[tokio::test]
async fn tables_are_listed_per_tenant_and_sorted() {
    let stack = Stack::connect().await;
    let lake = lake(&stack);
    let tenant = unique_tenant("lake-tables");
    let other = unique_tenant("lake-tables-other");
    assert!(lake.tables(&tenant).await.expect("tables").is_empty());
    for table in [
        SeedTable::Stores,
        SeedTable::Products,
        SeedTable::Sales,
        SeedTable::Stores,
    ] {
        lake.append_part(&tenant, table.name(), &[seed::batch(table, 5, 0, 10)])
            .await
            .expect("append");
    }
    lake.append_part(
        &other,
        "products",
        &[seed::batch(SeedTable::Products, 5, 0, 1)],
    )
    .await
    .expect("append");
    assert_eq!(
        lake.tables(&tenant).await.expect("tables"),
        ["products", "sales", "stores"]
    );
    assert_eq!(lake.tables(&other).await.expect("tables"), ["products"]);
    assert_eq!(
        lake.parts_after(&tenant, "stores", None)
            .await
            .expect("parts")
            .len(),
        2
    );
}

#[tokio::test]
async fn bad_table_names_are_refused_and_nothing_is_written() {
    let stack = Stack::connect().await;
    let lake = lake(&stack);
    let tenant = unique_tenant("lake-names");
    let batch = seed::batch(SeedTable::Sales, 5, 0, 3);
    for name in [
        "Sales", "1sales", "sales-eu", "", "sales#x", "sales/x", "café",
    ] {
        match lake
            .append_part(&tenant, name, std::slice::from_ref(&batch))
            .await
        {
            Err(LakeError::Invalid { table, reason }) => {
                assert_eq!(table, name);
                assert!(
                    reason.contains("[a-z]") || reason.contains("lowercase"),
                    "{reason}"
                );
            }
            other => panic!("{name:?}: {other:?}"),
        }
        assert!(matches!(
            lake.parts_after(&tenant, name, None).await,
            Err(LakeError::Invalid { .. })
        ));
    }
    assert!(lake.tables(&tenant).await.expect("tables").is_empty());
    let listed = stack
        .s3()
        .list_objects_v2()
        .bucket(stack.env.get("LAKE_BUCKET"))
        .prefix(format!("tenants/{tenant}/"))
        .send()
        .await
        .expect("ListObjectsV2");
    assert_eq!(listed.key_count(), Some(0), "no object written");
}

#[tokio::test]
async fn a_part_file_unlike_its_catalog_entry_reads_as_corrupt() {
    let stack = Stack::connect().await;
    let lake = lake(&stack);
    let tenant = unique_tenant("lake-corrupt");
    let part = lake
        .append_part(
            &tenant,
            "stores",
            &[seed::batch(SeedTable::Stores, 5, 0, 20)],
        )
        .await
        .expect("append");
    // Another table's file under this part's key: a valid Parquet file of the wrong schema.
    let other = lake
        .append_part(
            &tenant,
            "products",
            &[seed::batch(SeedTable::Products, 5, 0, 20)],
        )
        .await
        .expect("append");
    let bucket = stack.env.get("LAKE_BUCKET");
    stack
        .s3()
        .copy_object()
        .bucket(bucket)
        .key(&part.key)
        .copy_source(format!("{bucket}/{}", other.key))
        .send()
        .await
        .expect("CopyObject");
    match lake.read_part(&part, 100).await {
        Err(LakeError::Corrupt { key, reason }) => {
            assert_eq!(key, part.key);
            assert!(reason.contains("the catalog records"), "{reason}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, the part read"),
    }
    let mut missing = part.clone();
    missing.key = format!("tenants/{tenant}/stores/missing.parquet");
    match lake.read_part(&missing, 100).await {
        Err(LakeError::Aws(e)) => assert_eq!(e.code.as_deref(), Some("NoSuchKey"), "{e:?}"),
        Err(e) => panic!("expected NoSuchKey, got {e}"),
        Ok(_) => panic!("expected NoSuchKey, the part read"),
    }
}

/// A load whose parts were written against an older schema of the table is withdrawn whole at
/// commit, and commits once written again against the table's schema.
#[tokio::test]
async fn a_load_that_does_not_extend_the_tables_schema_is_withdrawn() {
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use shared::lake::LoadState;
    use shared::lake::part_file::encode_part;

    let stack = Stack::connect().await;
    let lake = lake(&stack);
    let tenant = unique_tenant("lake-schema");
    let batch = |total: Arc<dyn arrow_array::Array>, data_type: DataType| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("total", data_type, true),
        ]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2])), total]).unwrap()
    };
    let as_float = batch(
        Arc::new(Float64Array::from(vec![1.5, 2.5])),
        DataType::Float64,
    );
    let as_text = batch(
        Arc::new(StringArray::from(vec!["1.5", "12.50 EUR"])),
        DataType::Utf8,
    );
    let stage = |batch: &RecordBatch| {
        let part = encode_part("orders", std::slice::from_ref(batch)).expect("encodes");
        lake.stage_part(&tenant, "orders", part)
    };
    // Both loads staged against the empty table; the float one commits first.
    let first = stage(&as_float).await.expect("stages");
    let second = stage(&as_text).await.expect("stages");
    let (first_key, second_key) = (first.key.clone(), second.key.clone());
    assert_eq!(
        lake_object_tag(&stack.s3(), stack.env.get("LAKE_BUCKET"), &first_key).await,
        STAGED_TAG_VALUE
    );
    assert_eq!(
        lake.commit_load(&tenant, "orders", "load-float", &[first])
            .await
            .expect("commits"),
        vec![1]
    );
    let refused = lake
        .commit_load(&tenant, "orders", "load-text", &[second])
        .await
        .expect_err("the text load no longer fits the table");
    assert!(
        matches!(&refused, LakeError::SchemaChanged { table, .. } if table == "orders"),
        "{refused}"
    );
    assert_eq!(
        lake.load_state(&tenant, "orders", "load-text")
            .await
            .unwrap(),
        LoadState::Absent,
        "nothing of the withdrawn load is recorded"
    );
    assert_eq!(
        lake.parts_after(&tenant, "orders", None)
            .await
            .unwrap()
            .len(),
        1
    );
    // Committed parts lose the staged tag; the withdrawn one keeps it, for the lifecycle rule.
    assert_eq!(
        lake_object_tag(&stack.s3(), stack.env.get("LAKE_BUCKET"), &first_key).await,
        COMMITTED_TAG_VALUE
    );
    assert_eq!(
        lake_object_tag(&stack.s3(), stack.env.get("LAKE_BUCKET"), &second_key).await,
        STAGED_TAG_VALUE
    );
    // Written again against the table's schema, the same load id commits.
    let again = stage(&as_float).await.expect("stages");
    let again_key = again.key.clone();
    assert_eq!(
        lake.commit_load(&tenant, "orders", "load-text", &[again])
            .await
            .expect("commits"),
        vec![2]
    );
    assert_eq!(
        lake_object_tag(&stack.s3(), stack.env.get("LAKE_BUCKET"), &again_key).await,
        COMMITTED_TAG_VALUE
    );
}

/// The lake bucket, as the stack provisions it from template.yaml, expires exactly the objects
/// still tagged staged, and after long enough for any retry of their file.
#[tokio::test]
async fn the_lake_bucket_expires_only_uncommitted_staged_parts() {
    let stack = Stack::connect().await;
    let lifecycle = stack
        .s3()
        .get_bucket_lifecycle_configuration()
        .bucket(stack.env.get("LAKE_BUCKET"))
        .send()
        .await
        .expect("GetBucketLifecycleConfiguration");
    let expiring: Vec<_> = lifecycle
        .rules()
        .iter()
        .filter(|rule| rule.expiration().is_some())
        .collect();
    assert_eq!(expiring.len(), 1, "{:?}", lifecycle.rules());
    let rule = expiring[0];
    let tag = rule
        .filter()
        .and_then(|f| f.tag())
        .unwrap_or_else(|| panic!("the expiring rule filters on a tag alone: {rule:?}"));
    assert_eq!(
        (tag.key(), tag.value()),
        (LAKE_OBJECT_TAG, STAGED_TAG_VALUE)
    );
    let days = rule.expiration().and_then(|e| e.days()).unwrap_or(0);
    assert!(
        days >= 14,
        "staged parts expire after {days} days: fewer than a file's retries may take"
    );
}
