//! The ingest benchmark's driver, run by `scripts/bench ingest` (which starts the S3 server and
//! prints the comparison). Each subcommand does one measured thing and prints one JSON line on
//! stdout; progress goes to stderr.
//!
//! The SDK is configured from the environment as in the functions (`AWS_ENDPOINT_URL_S3` for
//! S3), so the script can point S3 at a fast local server.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tests::bench::{
    self, BenchError, Flags, aws_error, cpu_seconds, create_bucket, delete_prefix, io_error,
    joined, mb_per_s, open_bucket, s3,
};
use tokio::runtime::Handle;
use tokio::task::JoinSet;

use shared::domain::connector::{DelimitedFormat, Dialect, FileFormat, IngestCompression};
use shared::ingest::parse::{ParseError, ParseSettings, ParseSummary, ParsedBatch, parse_file};
use shared::ingest::service::part_capacity;
use shared::ingest::source::{CHUNK_BYTES, READ_AHEAD, Source, StoreSource};
use shared::lake::part_file::{EncodedPart, PartEncoder};
use shared::ports::{Body, ObjectStore, WriteOptions};

const MIB: u64 = 1024 * 1024;

/// The ingest service's part size: it finishes a part once the encoder holds this much.
const SERVICE_PART_MIB: u64 = 16;

const USAGE: &str = "\
usage: bench_ingest <command> [--flag value]...
  create-bucket --bucket NAME              create an S3 bucket (ignores one that exists)
  delete-prefix --bucket B --prefix P      delete every object under a prefix
  write-csv --file F --mib N [--seed 1]    a CSV file of the sample sales rows, N MiB
  write-jsonl --file F --rows R [--seed 1] the same rows (the first R) as JSON lines
  put-csv --bucket B --key K --mib N [--seed 1] [--part-mib 16] [--in-flight 4]
                                           the CSV generated straight into a multipart upload
  convert --format csv|jsonl --file F --out-dir D [--part-mib 16]
                                           our ingest path on one thread, local disk to local
                                           disk: parse -> part encoder -> part files
  raw-get --bucket B --key K [--chunk-mib 8] [--read-ahead 2]
                                           the object fetched as the S3 source fetches it
                                           (ranged GETs under If-Match), bytes discarded
  ingest --bucket B --key K --lake-bucket L --prefix P [--part-mib 16]
                                           a CSV object through the ingest path: S3 source ->
                                           parse -> part encoder -> PutObject of each part
";

fn seconds_of(nanos: &AtomicU64) -> f64 {
    nanos.load(Ordering::Relaxed) as f64 / 1e9
}

// ---------------------------------------------------------------------------------------------
// The sample rows: a sales table, deterministic from (seed, row number), so that the CSV and
// the JSON lines hold the same rows and a run compares with the one before.

const CSV_HEADER: &[u8] =
    b"order_id,customer_id,sku,region,channel,quantity,unit_price,amount,discount,ordered_at,shipped,note\n";

const REGIONS: [&str; 8] = [
    "us-east",
    "us-west",
    "eu-central",
    "eu-west",
    "ap-south",
    "ap-northeast",
    "sa-east",
    "af-south",
];
const CHANNELS: [&str; 4] = ["web", "store", "phone", "partner"];
/// Notes as CSV and as JSON write them: one needs quotes for its comma, one doubled quotes.
const NOTES_CSV: [&str; 3] = [
    "gift wrap",
    "\"call before delivery, leave at the door\"",
    "\"fragile: \"\"handle with care\"\"\"",
];
const NOTES_JSON: [&str; 3] = [
    "\"gift wrap\"",
    "\"call before delivery, leave at the door\"",
    "\"fragile: \\\"handle with care\\\"\"",
];

/// 2024-01-01T00:00:00Z.
const FIRST_ORDER_EPOCH: u64 = 1_704_067_200;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Row {
    order_id: u64,
    customer_id: u64,
    sku: u64,
    region: &'static str,
    channel: &'static str,
    quantity: u64,
    unit_cents: u64,
    discount_cents: Option<u64>,
    ordered_at: u64,
    shipped: bool,
    note: Option<usize>,
}

impl Row {
    fn new(seed: u64, index: u64) -> Self {
        let a = splitmix(seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let b = splitmix(a);
        let quantity = 1 + a % 20;
        Self {
            order_id: index + 1,
            customer_id: 1 + (a >> 8) % 1_000_000,
            sku: (a >> 32) % 50_000,
            region: REGIONS[((b >> 3) % 8) as usize],
            channel: CHANNELS[((b >> 7) % 4) as usize],
            quantity,
            unit_cents: 99 + (b >> 16) % 99_900,
            // One order in ten has no discount recorded (an empty field, JSON null).
            discount_cents: (!b.is_multiple_of(10)).then_some((b >> 40) % 31),
            ordered_at: FIRST_ORDER_EPOCH + index * 3 + (a >> 60) % 3,
            shipped: !(b >> 50).is_multiple_of(4),
            note: match (b >> 54) % 50 {
                0..=5 => Some(0),
                6..=8 => Some(1),
                9 => Some(2),
                _ => None,
            },
        }
    }

    fn amount_cents(&self) -> u64 {
        self.quantity * self.unit_cents
    }
}

fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_two(out: &mut Vec<u8>, value: u64) {
    out.push(b'0' + (value / 10 % 10) as u8);
    out.push(b'0' + (value % 10) as u8);
}

/// Cents as a decimal with two places ("12.05"): every value reads as a float.
fn push_cents(out: &mut Vec<u8>, cents: u64) {
    push_u64(out, cents / 100);
    out.push(b'.');
    push_two(out, cents % 100);
}

/// Seconds since the epoch as RFC 3339 in UTC ("2024-01-01T00:00:07Z").
fn push_timestamp(out: &mut Vec<u8>, epoch: u64) {
    let (days, seconds) = (epoch / 86_400, epoch % 86_400);
    // Civil from days (H. Hinnant's algorithm), for days after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    push_u64(out, year);
    out.push(b'-');
    push_two(out, month);
    out.push(b'-');
    push_two(out, day);
    out.push(b'T');
    push_two(out, seconds / 3600);
    out.push(b':');
    push_two(out, seconds / 60 % 60);
    out.push(b':');
    push_two(out, seconds % 60);
    out.push(b'Z');
}

fn push_csv_row(out: &mut Vec<u8>, row: &Row) {
    push_u64(out, row.order_id);
    out.push(b',');
    push_u64(out, row.customer_id);
    out.extend_from_slice(b",SKU-");
    let sku = row.sku;
    push_two(out, sku / 1000);
    push_two(out, sku / 10 % 100);
    out.push(b'0' + (sku % 10) as u8);
    out.push(b',');
    out.extend_from_slice(row.region.as_bytes());
    out.push(b',');
    out.extend_from_slice(row.channel.as_bytes());
    out.push(b',');
    push_u64(out, row.quantity);
    out.push(b',');
    push_cents(out, row.unit_cents);
    out.push(b',');
    push_cents(out, row.amount_cents());
    out.push(b',');
    if let Some(discount) = row.discount_cents {
        push_cents(out, discount);
    }
    out.push(b',');
    push_timestamp(out, row.ordered_at);
    out.extend_from_slice(if row.shipped { b",true," } else { b",false," });
    if let Some(note) = row.note {
        out.extend_from_slice(NOTES_CSV[note].as_bytes());
    }
    out.push(b'\n');
}

fn push_json_row(out: &mut Vec<u8>, row: &Row) {
    out.extend_from_slice(b"{\"order_id\":");
    push_u64(out, row.order_id);
    out.extend_from_slice(b",\"customer_id\":");
    push_u64(out, row.customer_id);
    out.extend_from_slice(b",\"sku\":\"SKU-");
    let sku = row.sku;
    push_two(out, sku / 1000);
    push_two(out, sku / 10 % 100);
    out.push(b'0' + (sku % 10) as u8);
    out.extend_from_slice(b"\",\"region\":\"");
    out.extend_from_slice(row.region.as_bytes());
    out.extend_from_slice(b"\",\"channel\":\"");
    out.extend_from_slice(row.channel.as_bytes());
    out.extend_from_slice(b"\",\"quantity\":");
    push_u64(out, row.quantity);
    out.extend_from_slice(b",\"unit_price\":");
    push_cents(out, row.unit_cents);
    out.extend_from_slice(b",\"amount\":");
    push_cents(out, row.amount_cents());
    out.extend_from_slice(b",\"discount\":");
    match row.discount_cents {
        Some(discount) => push_cents(out, discount),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"ordered_at\":\"");
    push_timestamp(out, row.ordered_at);
    out.extend_from_slice(if row.shipped {
        b"\",\"shipped\":true,\"note\":"
    } else {
        b"\",\"shipped\":false,\"note\":"
    });
    match row.note {
        Some(note) => out.extend_from_slice(NOTES_JSON[note].as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

/// Rows generated at a time into one buffer before it is written out.
const WRITE_CHUNK: usize = MIB as usize;

fn create(path: &PathBuf) -> Result<io::BufWriter<File>, BenchError> {
    Ok(io::BufWriter::with_capacity(
        WRITE_CHUNK,
        File::create(path).map_err(io_error(format!("create {}", path.display())))?,
    ))
}

/// A CSV file of at least `--mib` MiB (it stops after the row that reaches the size).
fn write_csv(flags: &Flags) -> Result<Value, BenchError> {
    let path = PathBuf::from(flags.text("file")?);
    let target = flags.number("mib", 512)? * MIB;
    let seed = flags.number("seed", 1)?;
    let started = Instant::now();
    let mut file = create(&path)?;
    let mut chunk = Vec::with_capacity(WRITE_CHUNK + 1024);
    chunk.extend_from_slice(CSV_HEADER);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while bytes + (chunk.len() as u64) < target {
        push_csv_row(&mut chunk, &Row::new(seed, rows));
        rows += 1;
        if chunk.len() >= WRITE_CHUNK {
            file.write_all(&chunk)
                .map_err(io_error(format!("write {}", path.display())))?;
            bytes += chunk.len() as u64;
            chunk.clear();
        }
    }
    file.write_all(&chunk)
        .and_then(|()| file.flush())
        .map_err(io_error(format!("write {}", path.display())))?;
    bytes += chunk.len() as u64;
    Ok(json!({ "rows": rows, "bytes": bytes, "seconds": started.elapsed().as_secs_f64() }))
}

/// The first `--rows` rows as JSON lines, one object a line with every column named.
fn write_jsonl(flags: &Flags) -> Result<Value, BenchError> {
    let path = PathBuf::from(flags.text("file")?);
    let rows = flags.number("rows", 1_000_000)?;
    let seed = flags.number("seed", 1)?;
    let started = Instant::now();
    let mut file = create(&path)?;
    let mut chunk = Vec::with_capacity(WRITE_CHUNK + 1024);
    let mut bytes = 0u64;
    for index in 0..rows {
        push_json_row(&mut chunk, &Row::new(seed, index));
        if chunk.len() >= WRITE_CHUNK {
            file.write_all(&chunk)
                .map_err(io_error(format!("write {}", path.display())))?;
            bytes += chunk.len() as u64;
            chunk.clear();
        }
    }
    file.write_all(&chunk)
        .and_then(|()| file.flush())
        .map_err(io_error(format!("write {}", path.display())))?;
    bytes += chunk.len() as u64;
    Ok(json!({ "rows": rows, "bytes": bytes, "seconds": started.elapsed().as_secs_f64() }))
}

/// The CSV generated on a blocking thread straight into a multipart upload (parts of
/// `--part-mib`, `--in-flight` at once): a 10 GiB object never exists as a local file, and
/// s3s-fs joins the parts into its object as it completes the upload.
async fn put_csv(flags: &Flags) -> Result<Value, BenchError> {
    let bucket = flags.text("bucket")?;
    let key = flags.text("key")?;
    let target = flags.number("mib", 1024)? * MIB;
    let seed = flags.number("seed", 1)?;
    let part_size = (flags.number("part-mib", 16)?.max(5) * MIB) as usize;
    let in_flight = flags.number("in-flight", 4)?.max(1) as usize;
    let client = Arc::new(s3().await);
    let started = Instant::now();

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let generator = tokio::task::spawn_blocking(move || {
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut chunk = Vec::with_capacity(part_size + 1024);
        chunk.extend_from_slice(CSV_HEADER);
        loop {
            let done = bytes + chunk.len() as u64 >= target;
            if !done {
                push_csv_row(&mut chunk, &Row::new(seed, rows));
                rows += 1;
            }
            if chunk.len() >= part_size || (done && !chunk.is_empty()) {
                bytes += chunk.len() as u64;
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(part_size + 1024));
                if sender.blocking_send(full).is_err() {
                    break;
                }
            }
            if done {
                break;
            }
        }
        (rows, bytes)
    });

    let upload_id = client
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .content_type("text/csv")
        .send()
        .await
        .map_err(aws_error(format!("CreateMultipartUpload {key}")))?
        .upload_id
        .ok_or_else(|| BenchError::Failed("CreateMultipartUpload returned no upload id".into()))?;
    let mut uploads: JoinSet<Result<CompletedPart, BenchError>> = JoinSet::new();
    let mut completed = Vec::new();
    let mut part_number = 0i32;
    while let Some(chunk) = receiver.recv().await {
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
    let (rows, bytes) = generator
        .await
        .map_err(|e| BenchError::Failed(format!("the generating thread failed: {e}")))?;
    completed.sort_by_key(|p| p.part_number);
    let out = client
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
    Ok(json!({
        "key": key,
        "rows": rows,
        "bytes": bytes,
        "parts": part_number,
        "e_tag": out.e_tag,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Our path: a source, the parser, the part encoder and where the parts go.

/// A local file as a source (step 1): what the parser reads from a file the page cache holds,
/// as DuckDB reads it.
struct FileSource {
    path: PathBuf,
    file: File,
    len: u64,
}

impl FileSource {
    fn open(path: PathBuf) -> Result<Self, BenchError> {
        let file = File::open(&path).map_err(io_error(format!("open {}", path.display())))?;
        let len = file
            .metadata()
            .map_err(io_error(format!("stat {}", path.display())))?
            .len();
        Ok(Self { path, file, len })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let end = offset.saturating_add(len).min(self.len);
        let mut buffer = vec![0; end.saturating_sub(offset) as usize];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(Bytes::from(buffer))
    }

    fn sequential(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        // Unbuffered: the parser reads in 64 KiB blocks of its own.
        Ok(Box::new(File::open(&self.path)?))
    }
}

/// A source whose reads are timed: the parser's wait for bytes (for S3, the fetch it could not
/// hide behind the read-ahead, and the copy out of the chunk).
struct TimedSource<S> {
    inner: S,
    nanos: AtomicU64,
}

impl<S> TimedSource<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            nanos: AtomicU64::new(0),
        }
    }
}

impl<S: Source> Source for TimedSource<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let started = Instant::now();
        let out = self.inner.read_range(offset, len);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    fn sequential(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        let started = Instant::now();
        let inner = self.inner.sequential();
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(Box::new(TimedRead {
            inner: inner?,
            nanos: &self.nanos,
        }))
    }
}

struct TimedRead<'a> {
    inner: Box<dyn Read + Send + 'a>,
    nanos: &'a AtomicU64,
}

impl Read for TimedRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let started = Instant::now();
        let out = self.inner.read(buf);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

/// Batches into parts as the ingest service makes them: one `PartEncoder` at a time, finished
/// once `size()` reaches the part size and handed to `store` (a file here, a PutObject there)
/// before parsing goes on. Times the encoder and the store apart.
struct Parts<F> {
    table: String,
    part_bytes: usize,
    encoder: Option<PartEncoder>,
    store: F,
    encode_nanos: u64,
    store_nanos: u64,
    parts: u64,
    encoded_bytes: u64,
    /// The first bad rows, to show why if there are any (the generator writes none).
    first_bad: Vec<String>,
}

impl<F: FnMut(u64, EncodedPart) -> Result<(), BenchError>> Parts<F> {
    fn new(table: &str, part_bytes: usize, store: F) -> Self {
        Self {
            table: table.to_owned(),
            part_bytes,
            encoder: None,
            store,
            encode_nanos: 0,
            store_nanos: 0,
            parts: 0,
            encoded_bytes: 0,
            first_bad: Vec::new(),
        }
    }

    fn add(&mut self, batch: ParsedBatch) -> Result<(), BenchError> {
        for bad in batch
            .bad_rows
            .iter()
            .take(3usize.saturating_sub(self.first_bad.len()))
        {
            self.first_bad.push(format!(
                "line {}: {} ({:?})",
                bad.line, bad.reason, bad.column
            ));
        }
        if batch.batch.num_rows() == 0 {
            return Ok(());
        }
        let started = Instant::now();
        if self.encoder.is_none() {
            self.encoder = Some(
                PartEncoder::with_capacity(
                    &self.table,
                    &batch.batch.schema(),
                    part_capacity(self.part_bytes),
                )
                .map_err(|e| BenchError::Failed(format!("starting a part: {e}")))?,
            );
        }
        let encoder = self.encoder.as_mut().expect("just set");
        encoder
            .write(&batch.batch)
            .map_err(|e| BenchError::Failed(format!("encoding a part: {e}")))?;
        let full = encoder.size() >= self.part_bytes;
        self.encode_nanos += started.elapsed().as_nanos() as u64;
        if full {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BenchError> {
        let Some(encoder) = self.encoder.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let part = encoder
            .finish()
            .map_err(|e| BenchError::Failed(format!("finishing a part: {e}")))?;
        let stored = Instant::now();
        self.encode_nanos += (stored - started).as_nanos() as u64;
        self.parts += 1;
        self.encoded_bytes += part.bytes.len() as u64;
        (self.store)(self.parts, part)?;
        self.store_nanos += stored.elapsed().as_nanos() as u64;
        Ok(())
    }
}

fn parse_error(error: ParseError<BenchError>) -> BenchError {
    match error {
        ParseError::File(e) => BenchError::Failed(format!("the parser refused the file: {e}")),
        ParseError::Stopped(e) => e,
    }
}

fn csv_format() -> FileFormat {
    FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' }))
}

fn format_flag(flags: &Flags) -> Result<FileFormat, BenchError> {
    match flags.text("format")?.as_str() {
        "csv" => Ok(csv_format()),
        "jsonl" => Ok(FileFormat::Jsonl),
        other => Err(BenchError::Usage(format!(
            "--format must be csv or jsonl, not '{other}'"
        ))),
    }
}

/// What one pass of our path measured, as JSON: the time split by stage. `parse` is what is
/// left of the wall time once reading, encoding and storing are taken out: splitting records,
/// converting values, building the Arrow columns.
fn pass_json<F>(
    summary: &ParseSummary,
    parts: &Parts<F>,
    input_bytes: u64,
    read_seconds: f64,
    seconds: f64,
    cpu: f64,
) -> Value {
    let encode = parts.encode_nanos as f64 / 1e9;
    let store = parts.store_nanos as f64 / 1e9;
    let types: Vec<Value> = summary
        .schema
        .fields()
        .iter()
        .map(|f| json!([f.name(), f.data_type().to_string()]))
        .collect();
    json!({
        "input_bytes": input_bytes,
        "content_bytes": summary.content_bytes,
        "rows": summary.rows,
        "bad_rows": summary.bad_rows,
        "first_bad_rows": parts.first_bad,
        "types": types,
        "parts": parts.parts,
        "parquet_bytes": parts.encoded_bytes,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "mb_s": mb_per_s(input_bytes, seconds),
        "stages": {
            "read": read_seconds,
            "parse": (seconds - read_seconds - encode - store).max(0.0),
            "encode": encode,
            "store": store,
        },
    })
}

/// Step 1, ours: a local file through the parser and the part encoder on this one thread,
/// each part written to a file in `--out-dir` (no fsync: DuckDB's COPY does not sync either).
fn convert(flags: &Flags) -> Result<Value, BenchError> {
    let format = format_flag(flags)?;
    let input = PathBuf::from(flags.text("file")?);
    let out_dir = PathBuf::from(flags.text("out-dir")?);
    let part_bytes = (flags.number("part-mib", SERVICE_PART_MIB)? * MIB) as usize;
    std::fs::create_dir_all(&out_dir).map_err(io_error(format!("create {}", out_dir.display())))?;
    let key = input
        .file_name()
        .map_or("input".to_owned(), |n| n.to_string_lossy().into_owned());
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let source = TimedSource::new(FileSource::open(input.clone())?);
    let settings = ParseSettings::new(format, IngestCompression::None);
    let mut parts = Parts::new("sales", part_bytes, |index, part: EncodedPart| {
        let path = out_dir.join(format!("part-{index:05}.parquet"));
        std::fs::write(&path, &part.bytes).map_err(io_error(format!("write {}", path.display())))
    });
    let summary = parse_file(&source, &key, &settings, None, |batch| parts.add(batch))
        .map_err(parse_error)?;
    parts.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(pass_json(
        &summary,
        &parts,
        source.len(),
        seconds_of(&source.nanos),
        seconds,
        cpu_seconds() - cpu_before,
    ))
}

/// Step 2's baseline: the object's bytes fetched exactly as the S3 source fetches them (the
/// adapter's ranged GET under If-Match, `--chunk-mib` ranges, `--read-ahead` in flight, in
/// order), each range dropped as it arrives.
async fn raw_get(flags: &Flags) -> Result<Value, BenchError> {
    let key = flags.text("key")?;
    let chunk = flags.number("chunk-mib", CHUNK_BYTES / MIB)?.max(1) * MIB;
    let read_ahead = flags.number("read-ahead", READ_AHEAD as u64)?.max(1) as usize;
    let store = Arc::new(open_bucket(&flags.text("bucket")?).await?);
    let head = store
        .head_object(&key)
        .await
        .map_err(|e| BenchError::Failed(format!("HeadObject {key}: {e}")))?;
    let e_tag = head
        .e_tag
        .ok_or_else(|| BenchError::Failed(format!("HeadObject {key}: no ETag")))?;
    let len = head.size;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let ranges = (0..len.div_ceil(chunk)).map(|i| (i * chunk, ((i + 1) * chunk).min(len) - 1));
    let mut chunks = futures::stream::iter(ranges)
        .map(|(first, last)| {
            let (store, key, e_tag) = (store.clone(), key.clone(), e_tag.clone());
            async move { store.get_range_if(&key, first, last, &e_tag).await }
        })
        .buffered(read_ahead);
    let (mut bytes, mut gets) = (0u64, 0u64);
    while let Some(fetched) = chunks.next().await {
        let fetched = fetched.map_err(|e| BenchError::Failed(format!("GetObject {key}: {e}")))?;
        bytes += fetched.len() as u64;
        gets += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "bytes": bytes,
        "gets": gets,
        "chunk_bytes": chunk,
        "read_ahead": read_ahead,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "mb_s": mb_per_s(bytes, seconds),
    }))
}

/// Steps 2 and 3, ours: a CSV object through the ingest service's load path, as
/// `IngestService::parse` chains it: the S3 source on a blocking thread (ranged GETs on this
/// runtime, read ahead), the parser, the part encoder, and each part PutObject'd to the lake
/// bucket from the parsing thread once it reaches the part size (the service stages it there
/// the same way; the catalog writes, one per file, are left out).
async fn ingest(flags: &Flags) -> Result<Value, BenchError> {
    let key = flags.text("key")?;
    let prefix = flags.text("prefix")?;
    let part_bytes = (flags.number("part-mib", SERVICE_PART_MIB)? * MIB) as usize;
    let store = Arc::new(open_bucket(&flags.text("bucket")?).await?);
    let lake = Arc::new(open_bucket(&flags.text("lake-bucket")?).await?);
    let head = store
        .head_object(&key)
        .await
        .map_err(|e| BenchError::Failed(format!("HeadObject {key}: {e}")))?;
    let e_tag = head
        .e_tag
        .ok_or_else(|| BenchError::Failed(format!("HeadObject {key}: no ETag")))?;
    let handle = Handle::current();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let pass = tokio::task::spawn_blocking(move || {
        let source = TimedSource::new(StoreSource::new(
            store,
            &key,
            &e_tag,
            head.size,
            handle.clone(),
        ));
        let settings = ParseSettings::new(csv_format(), IngestCompression::None);
        let options = WriteOptions {
            content_type: Some("application/vnd.apache.parquet".into()),
            ..WriteOptions::default()
        };
        let mut parts = Parts::new("sales", part_bytes, |index, part: EncodedPart| {
            let part_key = format!("{prefix}part-{index:05}.parquet");
            handle
                .block_on(lake.put(&part_key, Body::new(part.bytes), &options))
                .map(drop)
                .map_err(|e| BenchError::Failed(format!("PutObject {part_key}: {e}")))
        });
        let parsed = parse_file(&source, &key, &settings, None, |batch| parts.add(batch));
        if let Some(failure) = source.inner.failure() {
            return Err(BenchError::Failed(format!("reading {key}: {failure}")));
        }
        let summary = parsed.map_err(parse_error)?;
        parts.flush()?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(pass_json(
            &summary,
            &parts,
            source.len(),
            seconds_of(&source.nanos),
            seconds,
            cpu_seconds() - cpu_before,
        ))
    })
    .await
    .map_err(|e| BenchError::Failed(format!("the parsing thread failed: {e}")))??;
    Ok(pass)
}

async fn run(command: &str, flags: &Flags) -> Result<Value, BenchError> {
    match command {
        "create-bucket" => create_bucket(flags).await,
        "delete-prefix" => delete_prefix(flags).await,
        "write-csv" => write_csv(flags),
        "write-jsonl" => write_jsonl(flags),
        "put-csv" => put_csv(flags).await,
        "convert" => convert(flags),
        "raw-get" => raw_get(flags).await,
        "ingest" => ingest(flags).await,
        other => Err(BenchError::Usage(format!("unknown command '{other}'"))),
    }
}

#[tokio::main]
async fn main() {
    bench::main("bench_ingest", USAGE, run).await;
}
