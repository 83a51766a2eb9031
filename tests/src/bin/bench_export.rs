//! The export benchmark's driver, run by `scripts/bench export` (which starts the servers and
//! prints the comparison). Each subcommand does one measured thing and prints one JSON line on
//! stdout; progress goes to stderr.
//!
//! The SDK is configured from the environment as in the functions (`AWS_ENDPOINT_URL` for
//! DynamoDB, `AWS_ENDPOINT_URL_S3` for S3), so the script can point S3 at a fast local server.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde_json::{Value, json};
use tests::bench::{
    self, BenchError, Flags, aws_error, cpu_seconds, create_bucket, delete_prefix, io_error,
    joined, mb_per_s, open_bucket, s3, sdk_config,
};
use tokio::task::JoinSet;

use arrow_array::RecordBatch;
use shared::adapters::lake::DynamoLake;
use shared::adapters::s3::S3Bucket;
use shared::domain::connector::ExportCompression;
use shared::domain::connector::{DelimitedFormat, Dialect, FileFormat};
use shared::export::compress::compressor;
use shared::export::encode::{EncodeError, ParquetCodec, encoder};
use shared::export::sink::ByteSink;
use shared::export::upload::{self, UploadError, UploadSettings, UploadedObject};
use shared::lake::seed::{self, SeedTable};
use shared::lake::{Lake, LakeError, LakePart, part_file};
use shared::ports::{ObjectStore, WriteOptions};

const MIB: u64 = 1024 * 1024;

const USAGE: &str = "\
usage: bench_export <command> [--flag value]...
  create-catalog --table NAME              create the lake catalog table (DynamoDB)
  create-bucket --bucket NAME              create an S3 bucket (ignores one that exists)
  raw-upload --bucket B --key K --file F [--part-mib 8] [--in-flight 4]
                                           multipart upload of a local file's bytes
  download --bucket B --key K --file F     fetch an object into a local file
  delete-prefix --bucket B --prefix P      delete every object under a prefix
  write-parquet --table T --mib N --file F [--seed 1]
                                           a Parquet file of a sample table, as lake parts are written
  convert --file F --out O [--batch-rows 8192]
                                           Parquet to CSV with our encoder, on this thread
  seed --tenant T --table NAME --until-mib N [--seed 1]
                                           append sample parts to a lake table until it holds N MiB
  export --tenant T --table NAME --compression none|gzip|zstd --bucket B --prefix P
         [--part-mib 8] [--in-flight 4] [--max-file-mib 0] [--delete-after 0] [--read-ahead 0]
                                           the table as CSV files, each as a file task writes
                                           it: lake read -> encoder -> compressor -> upload
";

async fn create_catalog(flags: &Flags) -> Result<Value, BenchError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let table = flags.text("table")?;
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    // The key schema of LakeCatalogTable in template.yaml (docs/dynamodb.md, "lake-catalog").
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("table_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(aws_error("catalog table_id attribute"))?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("part_seq")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .map_err(aws_error("catalog part_seq attribute"))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("table_id")
                .key_type(KeyType::Hash)
                .build()
                .map_err(aws_error("catalog hash key"))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("part_seq")
                .key_type(KeyType::Range)
                .build()
                .map_err(aws_error("catalog range key"))?,
        )
        .send()
        .await
        .map_err(aws_error(format!("CreateTable {table}")))?;
    Ok(json!({ "table": table }))
}

/// The baseline: the bytes of a local file uploaded as a multipart upload with the SDK alone,
/// parts of the same size and as many in flight as the export's multipart writer uses. The file
/// is read as the upload goes (from the page cache once it was just written or fetched), so the
/// measured time is the upload's.
async fn raw_upload(flags: &Flags) -> Result<Value, BenchError> {
    let bucket = flags.text("bucket")?;
    let key = flags.text("key")?;
    let path = PathBuf::from(flags.text("file")?);
    let part_size = flags.number("part-mib", 8)? * MIB;
    let in_flight = flags.number("in-flight", 4)?.max(1) as usize;
    let client = Arc::new(s3().await);
    let mut file = File::open(&path).map_err(io_error(format!("open {}", path.display())))?;

    let started = Instant::now();
    let upload_id = client
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(aws_error(format!("CreateMultipartUpload {key}")))?
        .upload_id
        .ok_or_else(|| BenchError::Failed("CreateMultipartUpload returned no upload id".into()))?;

    let mut uploads: JoinSet<Result<CompletedPart, BenchError>> = JoinSet::new();
    let mut completed = Vec::new();
    let mut part_number = 0i32;
    let mut total = 0u64;
    loop {
        let chunk = read_chunk(&mut file, part_size as usize)
            .map_err(io_error(format!("read {}", path.display())))?;
        if chunk.is_empty() {
            break;
        }
        total += chunk.len() as u64;
        part_number += 1;
        while uploads.len() >= in_flight {
            completed.push(joined(uploads.join_next().await)?);
        }
        let (client, bucket, key, upload_id) = (
            client.clone(),
            bucket.clone(),
            key.clone(),
            upload_id.clone(),
        );
        uploads.spawn(async move {
            let out = client
                .upload_part()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(part_number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(aws_error(format!("UploadPart {part_number}")))?;
            Ok(CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(out.e_tag)
                .build())
        });
    }
    while let Some(result) = uploads.join_next().await {
        completed.push(joined(Some(result))?);
    }
    completed.sort_by_key(|p| p.part_number);
    client
        .complete_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .map_err(aws_error(format!("CompleteMultipartUpload {key}")))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "bytes": total,
        "parts": part_number,
        "seconds": seconds,
        "mb_s": mb_per_s(total, seconds),
    }))
}

/// Reads up to `size` bytes (fewer only at the end of the file).
fn read_chunk(file: &mut File, size: usize) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(size);
    file.take(size as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

async fn download(flags: &Flags) -> Result<Value, BenchError> {
    use std::io::Write;
    let bucket = flags.text("bucket")?;
    let key = flags.text("key")?;
    let path = PathBuf::from(flags.text("file")?);
    let out = s3()
        .await
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(aws_error(format!("GetObject {key}")))?;
    let mut file = File::create(&path).map_err(io_error(format!("create {}", path.display())))?;
    let mut body = out.body;
    let mut total = 0u64;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(aws_error(format!("GetObject {key} body")))?
    {
        total += chunk.len() as u64;
        file.write_all(&chunk)
            .map_err(io_error(format!("write {}", path.display())))?;
    }
    Ok(json!({ "bytes": total }))
}

/// Rows per batch read from the lake: the engine's `BATCH_ROWS`.
const ENGINE_BATCH_ROWS: usize = 8192;

/// Rows generated at a time: big enough that generation is not per-row bound, small enough to
/// stay a few MiB.
const SEED_BATCH_ROWS: usize = 16 * 1024;

/// Rows in one seeded lake part, as `scripts/lake seed` writes them by default.
const SEED_PART_ROWS: u64 = 200_000;

fn seed_table(flags: &Flags) -> Result<SeedTable, BenchError> {
    flags.text("table")?.parse().map_err(BenchError::Usage)
}

/// A Parquet file of `--mib` MiB of a sample table, with the writer settings of lake part files
/// (`shared::lake::part_file::part_properties`), written as rows are generated.
fn write_parquet(flags: &Flags) -> Result<Value, BenchError> {
    use parquet::arrow::ArrowWriter;

    let table = seed_table(flags)?;
    let target = flags.number("mib", 512)? * MIB;
    let seed = flags.number("seed", 1)?;
    let path = PathBuf::from(flags.text("file")?);
    let properties = part_file::part_properties(&seed::schema(table));
    let file = File::create(&path).map_err(io_error(format!("create {}", path.display())))?;
    let parquet_error = |e: parquet::errors::ParquetError| {
        BenchError::Failed(format!("writing {}: {e}", path.display()))
    };
    let mut writer =
        ArrowWriter::try_new(file, seed::schema(table), Some(properties)).map_err(parquet_error)?;
    let mut rows = 0u64;
    // bytes_written counts flushed row groups only; the last one adds less than a row group.
    while writer.bytes_written() as u64 + writer.in_progress_size() as u64 <= target {
        let batch = seed::batch(table, seed, rows, SEED_BATCH_ROWS);
        writer.write(&batch).map_err(parquet_error)?;
        rows += batch.num_rows() as u64;
    }
    let metadata = writer.close().map_err(parquet_error)?;
    let parquet_bytes = std::fs::metadata(&path)
        .map_err(io_error(format!("stat {}", path.display())))?
        .len();
    Ok(json!({
        "table": table.name(),
        "rows": rows,
        "row_groups": metadata.num_row_groups(),
        "codec": "zstd",
        "parquet_bytes": parquet_bytes,
    }))
}

/// A file on disk as the bottom of the byte stack.
struct FileSink {
    file: std::io::BufWriter<File>,
}

impl std::io::Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl ByteSink for FileSink {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        // No fsync: DuckDB's COPY does not sync either, so both leave the bytes in the page cache.
        self.file.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }
}

/// Counts the bytes that pass into the layer beneath (the CSV before compression).
struct CountingSink {
    inner: Box<dyn ByteSink>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes
            .fetch_add(written as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ByteSink for CountingSink {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        self.inner.finish()
    }
}

/// The connectors' default CSV: comma, quotes when necessary, a header row, nulls as "".
fn csv_format() -> FileFormat {
    FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' }))
}

/// Step 1, ours: the Parquet file decoded and encoded as CSV on this one thread, into a file.
fn convert(flags: &Flags) -> Result<Value, BenchError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let input = PathBuf::from(flags.text("file")?);
    let output = PathBuf::from(flags.text("out")?);
    let batch_rows = flags.number("batch-rows", 8192)?.max(1) as usize;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let file = File::open(&input).map_err(io_error(format!("open {}", input.display())))?;
    let parquet_error = |e: parquet::errors::ParquetError| {
        BenchError::Failed(format!("reading {}: {e}", input.display()))
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error)?
        .with_batch_size(batch_rows)
        .build()
        .map_err(parquet_error)?;
    let csv_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = CountingSink {
        inner: Box::new(FileSink {
            file: std::io::BufWriter::with_capacity(
                MIB as usize,
                File::create(&output).map_err(io_error(format!("create {}", output.display())))?,
            ),
        }),
        bytes: csv_bytes.clone(),
    };
    let encode_error = |e: EncodeError| BenchError::Failed(format!("encoding CSV: {e}"));
    let mut encoder = encoder(
        &csv_format(),
        ParquetCodec::Snappy,
        arrow_array::RecordBatchReader::schema(&reader),
        Box::new(sink),
    )
    .map_err(encode_error)?;
    for batch in reader {
        let batch =
            batch.map_err(|e| BenchError::Failed(format!("decoding {}: {e}", input.display())))?;
        encoder.write_batch(&batch).map_err(encode_error)?;
    }
    let rows = encoder.rows();
    encoder.finish().map_err(encode_error)?;
    let seconds = started.elapsed().as_secs_f64();
    let csv_bytes = csv_bytes.load(std::sync::atomic::Ordering::Relaxed);
    Ok(json!({
        "rows": rows,
        "csv_bytes": csv_bytes,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "mb_s": mb_per_s(csv_bytes, seconds),
    }))
}

fn lake_env(name: &str) -> Result<String, BenchError> {
    std::env::var(name).map_err(|_| {
        BenchError::Usage(format!(
            "{name} is not set (scripts/bench sets it to its own lake)"
        ))
    })
}

async fn open_lake() -> Result<DynamoLake, BenchError> {
    let sdk = sdk_config().await;
    Ok(DynamoLake::new(
        shared::aws::s3_client(&sdk),
        shared::aws::dynamodb_client(&sdk),
        lake_env("LAKE_BUCKET")?,
        lake_env("LAKE_CATALOG_TABLE")?,
    ))
}

fn lake_error(what: impl Into<String>) -> impl FnOnce(LakeError) -> BenchError {
    let what = what.into();
    move |error| BenchError::Failed(format!("{what}: {error}"))
}

/// Appends sample parts of `SEED_PART_ROWS` rows to a lake table until its parts add up to
/// `--until-mib` MiB, continuing the row numbers where the table ends. Parts are generated and
/// encoded on blocking threads (two at a time, one per core) while the previous one uploads.
async fn seed(flags: &Flags) -> Result<Value, BenchError> {
    let tenant = flags.text("tenant")?;
    let table = seed_table(flags)?;
    let target = flags.number("until-mib", 1024)? * MIB;
    let seed_value = flags.number("seed", 1)?;
    let lake = open_lake().await?;
    let existing = lake
        .parts_after(&tenant, table.name(), None)
        .await
        .map_err(lake_error("listing the lake table"))?;
    let mut lake_bytes: u64 = existing.iter().map(|p| p.bytes).sum();
    let mut next_row: u64 = existing.iter().map(|p| p.rows).sum();
    let mut parts = existing.len() as u64;
    let started = Instant::now();
    let encode = |first_row: u64| {
        tokio::task::spawn_blocking(move || {
            let batches: Vec<RecordBatch> = (0..SEED_PART_ROWS)
                .step_by(SEED_BATCH_ROWS)
                .map(|offset| {
                    let rows = (SEED_PART_ROWS - offset).min(SEED_BATCH_ROWS as u64) as usize;
                    seed::batch(table, seed_value, first_row + offset, rows)
                })
                .collect();
            part_file::encode_part(table.name(), &batches)
        })
    };
    let mut pending = std::collections::VecDeque::new();
    while lake_bytes < target {
        while pending.len() < 2 {
            pending.push_back(encode(next_row));
            next_row += SEED_PART_ROWS;
        }
        let Some(next) = pending.pop_front() else {
            break;
        };
        let part = next
            .await
            .map_err(|e| BenchError::Failed(format!("a seeding task failed: {e}")))?
            .map_err(lake_error("encoding a sample part"))?;
        let appended = lake
            .append_encoded(&tenant, table.name(), part)
            .await
            .map_err(lake_error("appending a sample part"))?;
        lake_bytes += appended.bytes;
        parts += 1;
    }
    // Parts encoded ahead but not needed are dropped; their rows were never appended.
    let rows = lake
        .parts_after(&tenant, table.name(), None)
        .await
        .map_err(lake_error("listing the lake table"))?
        .iter()
        .map(|p| p.rows)
        .sum::<u64>();
    Ok(json!({
        "table": table.name(),
        "parts": parts,
        "rows": rows,
        "lake_bytes": lake_bytes,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

/// Exports every part of a table through the pieces a file task chains (the engine's
/// `FilePipeline`): the lake read, the CSV encoder, the compressor and the multipart writer,
/// which uploads parts from a task on this runtime while the encoder runs on a blocking thread
/// (docs/architecture.md, "Export"). Parts go into files of at most `--max-file-mib` MiB of lake
/// bytes (0: one file), written one after the other; with `--delete-after 1` each file is
/// deleted once complete (outside the measured time), so a large table needs the disk of one
/// file only. `--only-file N` writes the table's N-th file alone (1-based), as one file task
/// of a fanned-out run does in its own invocation. `--read-ahead 1` fetches the next part while
/// one is encoded (the engine reads them in turn).
async fn export(flags: &Flags) -> Result<Value, BenchError> {
    let tenant = flags.text("tenant")?;
    let table = flags.text("table")?;
    let compression_name = flags.text("compression")?;
    let compression: ExportCompression =
        serde_json::from_value(json!(compression_name)).map_err(|_| {
            BenchError::Usage(format!(
                "--compression must be none, gzip or zstd, not '{compression_name}'"
            ))
        })?;
    let bucket = flags.text("bucket")?;
    let prefix = flags.text("prefix")?;
    let settings = UploadSettings {
        first_part_size: (flags.number("part-mib", 8)? * MIB) as usize,
        parts_in_flight: flags.number("in-flight", 4)?.max(1) as usize,
    };
    let max_file_bytes = flags.number("max-file-mib", 0)? * MIB;
    let delete_after = flags.number("delete-after", 0)? == 1;
    let read_ahead = flags.number("read-ahead", 0)? == 1;
    let only_file = flags.number("only-file", 0)? as usize;

    let lake = Arc::new(open_lake().await?);
    let parts = lake
        .parts_after(&tenant, &table, None)
        .await
        .map_err(lake_error("listing the lake table"))?;
    if parts.is_empty() {
        return Err(BenchError::Failed(format!(
            "lake table {table} of {tenant} has no parts; seed it first"
        )));
    }
    let lake_bytes: u64 = parts.iter().map(|p| p.bytes).sum();
    let store = Arc::new(open_bucket(&bucket).await?);

    let mut files: Vec<Vec<LakePart>> = vec![Vec::new()];
    let mut file_bytes = 0u64;
    for part in parts.iter().cloned() {
        let current_is_full = max_file_bytes > 0 && file_bytes + part.bytes > max_file_bytes;
        if current_is_full && files.last().is_some_and(|f| !f.is_empty()) {
            files.push(Vec::new());
            file_bytes = 0;
        }
        file_bytes += part.bytes;
        if let Some(file) = files.last_mut() {
            file.push(part);
        }
    }

    let csv_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (mut rows, mut bytes, mut upload_parts, mut seconds) = (0u64, 0u64, 0u64, 0f64);
    let mut keys = Vec::new();
    let file_count = files.len();
    let mut written_lake_bytes = 0u64;
    if only_file > file_count {
        return Err(BenchError::Usage(format!(
            "--only-file {only_file}: the table makes {file_count} file(s)"
        )));
    }
    for (index, file_parts) in files.into_iter().enumerate() {
        if only_file > 0 && index + 1 != only_file {
            continue;
        }
        written_lake_bytes += file_parts.iter().map(|p| p.bytes).sum::<u64>();
        let member = if file_count == 1 {
            format!("{table}.csv")
        } else {
            format!("{table}_{}.csv", index + 1)
        };
        let key = format!("{prefix}{member}{}", compression.extension_suffix());
        let job = FileJob {
            lake: lake.clone(),
            parts: file_parts,
            compression,
            member,
            read_ahead,
            csv_bytes: csv_bytes.clone(),
        };
        let started = Instant::now();
        let (file_rows, uploaded) = job.write(store.clone(), key.clone(), settings).await?;
        seconds += started.elapsed().as_secs_f64();
        rows += file_rows;
        bytes += uploaded.bytes;
        upload_parts += u64::from(uploaded.parts);
        if delete_after {
            store
                .delete(&key)
                .await
                .map_err(|e| BenchError::Failed(format!("deleting {key}: {e}")))?;
        } else {
            keys.push(key);
        }
    }
    Ok(json!({
        "path": "file task: lake read -> CSV encoder -> compressor -> multipart writer \
                 (as the engine's FilePipeline)",
        "read_ahead": read_ahead,
        "keys": keys,
        "files": file_count,
        "only_file": only_file,
        "written_lake_bytes": written_lake_bytes,
        "rows": rows,
        "lake_bytes": lake_bytes,
        "lake_parts": parts.len(),
        "csv_bytes": csv_bytes.load(std::sync::atomic::Ordering::Relaxed),
        "bytes": bytes,
        "upload_parts": upload_parts,
        "seconds": seconds,
        "mb_s": mb_per_s(bytes, seconds),
    }))
}

/// One export file's inputs.
struct FileJob {
    lake: Arc<DynamoLake>,
    parts: Vec<LakePart>,
    compression: ExportCompression,
    member: String,
    read_ahead: bool,
    /// CSV bytes before compression, added up over the files.
    csv_bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl FileJob {
    async fn write(
        self,
        store: Arc<S3Bucket>,
        key: String,
        settings: UploadSettings,
    ) -> Result<(u64, UploadedObject), BenchError> {
        let runtime = tokio::runtime::Handle::current();
        let options = WriteOptions {
            content_type: Some("text/csv".into()),
            ..WriteOptions::default()
        };
        let (writer, upload) = upload::start(store, key.clone(), options, settings, &runtime);
        let encoded = tokio::task::spawn_blocking(move || self.encode(Box::new(writer), runtime))
            .await
            .map_err(|e| BenchError::Failed(format!("the encoding thread failed: {e}")))?;
        let uploaded = upload.await;
        match (encoded, uploaded) {
            (Ok(rows), Ok(object)) => Ok((rows, object)),
            // The upload's own error explains a broken pipe on the encoding side.
            (_, Err(e)) if !matches!(e, UploadError::Abandoned) => {
                Err(BenchError::Failed(format!("uploading {key}: {e}")))
            }
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(BenchError::Failed(format!("uploading {key}: {e}"))),
        }
    }

    /// The blocking half: rows written.
    fn encode(
        self,
        writer: Box<dyn ByteSink>,
        runtime: tokio::runtime::Handle,
    ) -> Result<u64, BenchError> {
        let compressed = compressor(
            self.compression,
            &self.member,
            &std::env::temp_dir(),
            writer,
        )
        .map_err(io_error("starting the compressor"))?;
        let sink = CountingSink {
            inner: compressed,
            bytes: self.csv_bytes.clone(),
        };
        let encode_error = |e: EncodeError| BenchError::Failed(format!("encoding CSV: {e}"));
        let schema = match self.parts.first() {
            Some(part) => part.schema.clone(),
            None => return Err(BenchError::Failed("a file without lake parts".into())),
        };
        let mut encoder = encoder(&csv_format(), ParquetCodec::Snappy, schema, Box::new(sink))
            .map_err(encode_error)?;
        let fetch = |part: &LakePart| {
            let (lake, part) = (self.lake.clone(), part.clone());
            runtime.spawn(async move { lake.read_part(&part, ENGINE_BATCH_ROWS).await })
        };
        let mut ahead = if self.read_ahead {
            self.parts.first().map(fetch)
        } else {
            None
        };
        for (index, part) in self.parts.iter().enumerate() {
            let batches = match ahead.take() {
                Some(fetched) => runtime
                    .block_on(fetched)
                    .map_err(|e| BenchError::Failed(format!("a lake read failed: {e}")))?,
                None => runtime.block_on(self.lake.read_part(part, ENGINE_BATCH_ROWS)),
            }
            .map_err(lake_error("reading a lake part"))?;
            if self.read_ahead {
                ahead = self.parts.get(index + 1).map(fetch);
            }
            for batch in batches {
                let batch = batch.map_err(lake_error("decoding a lake part"))?;
                encoder.write_batch(&batch).map_err(encode_error)?;
            }
        }
        let rows = encoder.rows();
        encoder.finish().map_err(encode_error)?;
        Ok(rows)
    }
}

async fn run(command: &str, flags: &Flags) -> Result<Value, BenchError> {
    match command {
        "create-catalog" => create_catalog(flags).await,
        "create-bucket" => create_bucket(flags).await,
        "raw-upload" => raw_upload(flags).await,
        "download" => download(flags).await,
        "delete-prefix" => delete_prefix(flags).await,
        "write-parquet" => write_parquet(flags),
        "convert" => convert(flags),
        "seed" => seed(flags).await,
        "export" => export(flags).await,
        other => Err(BenchError::Usage(format!("unknown command '{other}'"))),
    }
}

#[tokio::main]
async fn main() {
    bench::main("bench_export", USAGE, run).await;
}
