//! Fills the local lake with the seeded sample tables, through the lake adapter, and prints what
//! it wrote. Run by `scripts/lake`:
//!
//! ```text
//! lake seed --tenant T [--tables a,b] (--rows N | --size 1GiB) [--seed S] [--part-rows R] [--dry-run]
//! ```
//!
//! `--dry-run` generates and encodes the parts without a stack and uploads nothing: the
//! generator's own speed.
//!
//! Reads the local stack's settings like the tests (`LOCAL_STACK_ENV` or `.local-stack/env`).
//! `AWS_ENDPOINT_URL_S3`, from the environment or the env file, sends S3 calls to another
//! server than DynamoDB's (the lake bucket is created there when missing). Parts are generated
//! and encoded on one worker thread per core while the main task appends them in order.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::tests::{StackEnv, sdk_config};
use shared::adapters::lake::DynamoLake;
use shared::lake::part_file::{EncodedPart, encode_part};
use shared::lake::seed::{self, SeedTable};
use shared::lake::{Lake, LakeError};

const USAGE: &str = "usage: lake seed --tenant T [--tables sales,inventory,stores,products] (--rows N | --size 1GiB) [--seed S] [--part-rows R] [--dry-run]";
const DEFAULT_PART_ROWS: u64 = 200_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Amount {
    Rows(u64),
    /// Parquet bytes per table.
    Bytes(u64),
}

#[derive(Debug)]
struct SeedArgs {
    tenant: String,
    tables: Vec<SeedTable>,
    amount: Amount,
    seed: u64,
    part_rows: u64,
    dry_run: bool,
}

fn parse_args(args: &[String]) -> Result<SeedArgs, String> {
    let (command, rest) = args.split_first().ok_or("no command given")?;
    if command != "seed" {
        return Err(format!(
            "unknown command {command:?}; the command is `seed`"
        ));
    }
    let mut tenant = None;
    let mut tables = SeedTable::ALL.to_vec();
    let mut rows = None;
    let mut size = None;
    let mut seed = 1;
    let mut part_rows = DEFAULT_PART_ROWS;
    let mut dry_run = false;
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--tenant" => tenant = Some(value()?),
            "--tables" => {
                tables = value()?
                    .split(',')
                    .map(|name| name.trim().parse::<SeedTable>())
                    .collect::<Result<_, _>>()?;
            }
            "--rows" => rows = Some(parse_count(&value()?, "--rows")?),
            "--size" => size = Some(parse_size(&value()?)?),
            "--seed" => seed = parse_count(&value()?, "--seed")?,
            "--part-rows" => part_rows = parse_count(&value()?, "--part-rows")?,
            "--dry-run" => dry_run = true,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let tenant = tenant.ok_or("--tenant is required")?;
    let amount = match (rows, size) {
        (Some(rows), None) => Amount::Rows(rows),
        (None, Some(bytes)) => Amount::Bytes(bytes),
        (Some(_), Some(_)) => return Err("give --rows or --size, not both".to_owned()),
        (None, None) => return Err("give --rows N or --size (e.g. 1GiB)".to_owned()),
    };
    if part_rows == 0 {
        return Err("--part-rows must be at least 1".to_owned());
    }
    tables.dedup();
    Ok(SeedArgs {
        tenant,
        tables,
        amount,
        seed,
        part_rows,
        dry_run,
    })
}

fn parse_count(text: &str, flag: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag} {text:?} is not a whole number"))
}

/// `1GiB`, `500MiB`, `10MB`, `2048` (bytes): binary and decimal units, case-insensitive.
fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "--size {text:?}: unknown unit (use B, KiB, MiB, GiB, MB, GB)"
            ));
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("--size {text:?} does not start with a number"))?;
    if number <= 0.0 {
        return Err(format!("--size {text:?} must be more than zero"));
    }
    Ok((number * multiplier as f64) as u64)
}

/// The S3 client for the lake: the stack's endpoint, or `AWS_ENDPOINT_URL_S3` when S3 is
/// served elsewhere.
fn s3_client(env: &StackEnv, sdk: &aws_config::SdkConfig) -> (aws_sdk_s3::Client, Option<String>) {
    let separate = std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .or_else(|| env.vars.get("AWS_ENDPOINT_URL_S3").cloned())
        .filter(|url| !url.is_empty());
    let mut config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(true);
    if let Some(url) = &separate {
        config = config.endpoint_url(url);
    }
    (aws_sdk_s3::Client::from_conf(config.build()), separate)
}

async fn ensure_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => s3
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("creating the lake bucket {bucket}: {e:?}")),
        Err(e) => Err(format!("HeadBucket {bucket}: {e:?}")),
    }
}

/// One part made by a worker.
struct Made {
    index: u64,
    part: EncodedPart,
}

#[derive(Default)]
struct TableReport {
    parts: u64,
    rows: u64,
    bytes: u64,
    seconds: f64,
    /// Time the workers spent generating and encoding, summed over workers.
    encode_seconds: f64,
}

async fn seed_table(
    lake: Option<&DynamoLake>,
    args: &SeedArgs,
    table: SeedTable,
) -> Result<TableReport, LakeError> {
    let started = Instant::now();
    // Rows continue after what the table holds, so seeding twice adds rows, not duplicates.
    let first_row: u64 = match lake {
        Some(lake) => lake
            .parts_after(&args.tenant, table.name(), None)
            .await?
            .iter()
            .map(|p| p.rows)
            .sum(),
        None => 0,
    };
    let part_count = match args.amount {
        Amount::Rows(rows) => Some(rows.div_ceil(args.part_rows)),
        Amount::Bytes(_) => None,
    };
    let total_rows = match args.amount {
        Amount::Rows(rows) => rows,
        Amount::Bytes(_) => u64::MAX,
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next_index = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let encode_nanos = Arc::new(AtomicU64::new(0));
    // Two parts in flight per worker: enough to keep the uploader busy, bounded memory.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Made, LakeError>>(workers * 2);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (next_index, stop, encode_nanos, sender) = (
                next_index.clone(),
                stop.clone(),
                encode_nanos.clone(),
                sender.clone(),
            );
            let (seed_value, part_rows) = (args.seed, args.part_rows);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let index = next_index.fetch_add(1, Ordering::Relaxed);
                    if part_count.is_some_and(|count| index >= count) {
                        break;
                    }
                    let offset = index * part_rows;
                    let rows = part_rows.min(total_rows - offset) as usize;
                    let began = Instant::now();
                    let batch = seed::batch(table, seed_value, first_row + offset, rows);
                    let made = encode_part(table.name(), &[batch]).map(|part| Made { index, part });
                    encode_nanos.fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    if sender.blocking_send(made).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(sender);

    let mut report = TableReport::default();
    let mut waiting = BTreeMap::new();
    let mut next_to_append = 0;
    let mut failure = None;
    'receive: while let Some(made) = receiver.recv().await {
        let made = match made {
            Ok(made) => made,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        waiting.insert(made.index, made.part);
        // Parts are appended in the order of their rows, whatever order workers finish in.
        while let Some(part) = waiting.remove(&next_to_append) {
            let (rows, bytes) = (part.rows, part.bytes.len() as u64);
            if let Some(lake) = lake
                && let Err(e) = lake.append_encoded(&args.tenant, table.name(), part).await
            {
                failure = Some(e);
                break 'receive;
            }
            report.parts += 1;
            report.rows += rows;
            report.bytes += bytes;
            next_to_append += 1;
            if matches!(args.amount, Amount::Bytes(goal) if report.bytes >= goal) {
                break 'receive;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(receiver);
    for handle in handles {
        let _ = handle.join();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.encode_seconds =
        Duration::from_nanos(encode_nanos.load(Ordering::Relaxed)).as_secs_f64();
    Ok(report)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("lake: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (lake, destination) = if args.dry_run {
        (None, "nowhere (dry run)".to_owned())
    } else {
        let env = StackEnv::load();
        let sdk = sdk_config(&env, None);
        let (s3, separate_s3) = s3_client(&env, &sdk);
        let bucket = env.get("LAKE_BUCKET").to_owned();
        if let Some(url) = &separate_s3 {
            println!("S3 at {url}, DynamoDB at {}", env.get("AWS_ENDPOINT_URL"));
            if let Err(e) = ensure_bucket(&s3, &bucket).await {
                eprintln!("lake: {e}");
                return ExitCode::FAILURE;
            }
        }
        let lake = DynamoLake::new(
            s3,
            aws_sdk_dynamodb::Client::new(&sdk),
            &bucket,
            env.get("LAKE_CATALOG_TABLE"),
        );
        (Some(lake), format!("s3://{bucket}"))
    };
    let goal = match args.amount {
        Amount::Rows(rows) => format!("{rows} rows"),
        Amount::Bytes(bytes) => format!("{:.1} MiB of Parquet", mib(bytes)),
    };
    println!(
        "seeding tenant {} with {goal} per table (seed {}, {} rows per part) into {destination}",
        args.tenant, args.seed, args.part_rows
    );
    println!(
        "{:<10} {:>6} {:>12} {:>10} {:>9} {:>8} {:>12}",
        "table", "parts", "rows", "MiB", "seconds", "MB/s", "encode s"
    );
    let mut total = TableReport::default();
    for table in &args.tables {
        let report = match seed_table(lake.as_ref(), &args, *table).await {
            Ok(report) => report,
            Err(e) => {
                eprintln!("lake: seeding {}: {e}", table.name());
                return ExitCode::FAILURE;
            }
        };
        print_row(table.name(), &report);
        total.parts += report.parts;
        total.rows += report.rows;
        total.bytes += report.bytes;
        total.seconds += report.seconds;
        total.encode_seconds += report.encode_seconds;
    }
    if args.tables.len() > 1 {
        print_row("total", &total);
    }
    ExitCode::SUCCESS
}

fn print_row(name: &str, report: &TableReport) {
    let rate = report.bytes as f64 / 1e6 / report.seconds.max(1e-9);
    println!(
        "{name:<10} {:>6} {:>12} {:>10.1} {:>9.2} {:>8.1} {:>12.2}",
        report.parts,
        report.rows,
        mib(report.bytes),
        report.seconds,
        rate,
        report.encode_seconds
    );
}

#[cfg(test)]
mod argument_tests {
    use super::*;

    fn args(text: &str) -> Result<SeedArgs, String> {
        parse_args(
            &text
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn sizes_read_in_binary_and_decimal_units() {
        let cases: &[(&str, Option<u64>)] = &[
            ("1GiB", Some(1 << 30)),
            ("1gib", Some(1 << 30)),
            ("10GiB", Some(10 << 30)),
            ("500MiB", Some(500 << 20)),
            ("1.5GiB", Some(3 << 29)),
            ("10MB", Some(10_000_000)),
            ("2048", Some(2048)),
            ("0", None),
            ("GiB", None),
            ("1XB", None),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text).ok(), *bytes, "{text}");
        }
    }

    #[test]
    fn arguments_parse_or_say_what_is_wrong() {
        let parsed =
            args("seed --tenant acme --tables sales,stores --rows 1_000 --seed 9 --part-rows 100")
                .expect("valid");
        assert_eq!(parsed.tenant, "acme");
        assert_eq!(parsed.tables, [SeedTable::Sales, SeedTable::Stores]);
        assert_eq!(parsed.amount, Amount::Rows(1_000));
        assert_eq!((parsed.seed, parsed.part_rows), (9, 100));
        let all = args("seed --tenant acme --size 1GiB").expect("valid");
        assert_eq!(all.tables, SeedTable::ALL);
        assert_eq!(all.amount, Amount::Bytes(1 << 30));
        for (text, message) in [
            ("", "no command"),
            ("load --tenant a --rows 1", "unknown command"),
            ("seed --rows 1", "--tenant is required"),
            ("seed --tenant a", "give --rows N or --size"),
            ("seed --tenant a --rows 1 --size 1GiB", "not both"),
            ("seed --tenant a --rows x", "not a whole number"),
            (
                "seed --tenant a --rows 1 --tables sale",
                "no sample table \"sale\"",
            ),
            ("seed --tenant a --rows 1 --part-rows 0", "at least 1"),
            ("seed --tenant a --rows 1 --fast", "unknown option"),
            ("seed --tenant", "needs a value"),
        ] {
            let error = args(text).expect_err(text);
            assert!(error.contains(message), "{text}: {error}");
        }
    }
}
