//! Encoders: record batches to CSV/TSV/PSV, JSONL or Parquet bytes, batch by batch.
