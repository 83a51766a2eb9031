//! Memory does not grow with the file: a 50 MB CSV parsed while the heap of the parsing
//! thread is measured. The test binary's allocator counts what each thread holds (the
//! counting is per thread, so the other tests running alongside do not disturb it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::*;
use crate::domain::connector::{DelimitedFormat, Dialect, FileFormat};
use crate::ingest::source::{MemorySource, Source};

struct PerThreadCounting;

thread_local! {
    static HELD: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    let _ = HELD.try_with(|held| {
        let now = held.get() + delta;
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counting only
// touches thread-local cells that neither allocate nor run destructors.
unsafe impl GlobalAlloc for PerThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: the caller's layout is passed on as it came.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: PerThreadCounting = PerThreadCounting;

/// Counts the largest read asked of its sequential reader and of its ranges.
struct CountingSource {
    inner: MemorySource,
    largest_read: AtomicU64,
}

struct CountingReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    largest_read: &'a AtomicU64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.largest_read
            .fetch_max(buf.len() as u64, Ordering::Relaxed);
        self.inner.read(buf)
    }
}

impl Source for CountingSource {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        self.largest_read.fetch_max(len, Ordering::Relaxed);
        self.inner.read_range(offset, len)
    }

    fn sequential(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(CountingReader {
            inner: self.inner.sequential()?,
            largest_read: &self.largest_read,
        }))
    }
}

#[test]
fn a_50_mb_csv_parses_in_bounded_memory() {
    let mut text = Vec::with_capacity(52 << 20);
    text.extend_from_slice(b"id,amount,name,at\n");
    let mut row = 0u64;
    while text.len() < 50 << 20 {
        use std::io::Write;
        writeln!(
            text,
            "{row},{}.{:02},customer {},2024-01-{:02}T{:02}:00:00Z",
            row % 10_000,
            row % 100,
            row % 977,
            row % 28 + 1,
            row % 24
        )
        .expect("write");
        row += 1;
    }
    let size = text.len();
    let source = CountingSource {
        inner: MemorySource::new(Bytes::from(text)),
        largest_read: AtomicU64::new(0),
    };
    let settings = ParseSettings::new(
        FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })),
        IngestCompression::Auto,
    );
    let held_before = HELD.with(Cell::get);
    PEAK.with(|peak| peak.set(held_before));
    let mut batches = 0;
    let summary = parse_file(&source, "big.csv", &settings, None, |parsed| {
        batches += 1;
        assert!(parsed.bad_rows.is_empty());
        assert!(parsed.batch.num_rows() <= DEFAULT_BATCH_ROWS);
        Ok::<(), ()>(())
    })
    .expect("parses");
    let peak = (PEAK.with(Cell::get) - held_before) as u64;
    assert_eq!(summary.rows, row);
    assert_eq!(summary.content_bytes, size as u64);
    assert!(batches > 100);
    // The file is 50 MB; the parse holds a sample, one batch and buffers.
    assert!(
        peak < 8 << 20,
        "peak heap {peak} bytes for a {size}-byte file"
    );
    let largest = source.largest_read.load(Ordering::Relaxed);
    assert!(largest <= 1 << 20, "largest read {largest}");
    eprintln!("{size} bytes, {row} rows: peak heap {peak} bytes, largest read {largest}");
}

/// `cargo test --release -p shared --lib throughput -- --ignored --nocapture`: MB/s of a
/// typical table (ints, floats, short strings, timestamps) from CSV to batches, one core.
#[test]
#[ignore = "a measurement; run in release"]
fn throughput_of_a_typical_csv() {
    use std::io::Write;
    let mut text = Vec::with_capacity(210 << 20);
    text.extend_from_slice(b"id,amount,ratio,name,city,at,flag\n");
    let mut row = 0u64;
    while text.len() < 200 << 20 {
        writeln!(
            text,
            "{row},{},{}.{:03},customer {},\"City, {}\",2024-01-{:02}T{:02}:{:02}:00.{:06}Z,{}",
            row * 7 % 1_000_003,
            row % 1000,
            row % 997,
            row % 9973,
            row % 50,
            row % 28 + 1,
            row % 24,
            row % 60,
            row % 1_000_000,
            row.is_multiple_of(2)
        )
        .expect("write");
        row += 1;
    }
    let source = MemorySource::new(Bytes::from(text));
    let settings = ParseSettings::new(
        FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' })),
        IngestCompression::None,
    );
    let started = std::time::Instant::now();
    let summary =
        parse_file(&source, "big.csv", &settings, None, |_| Ok::<(), ()>(())).expect("parses");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(summary.rows, row);
    eprintln!(
        "{} MB in {seconds:.2} s: {:.0} MB/s ({:?})",
        source.len() >> 20,
        source.len() as f64 / 1e6 / seconds,
        summary
            .schema
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect::<Vec<_>>()
    );
}
