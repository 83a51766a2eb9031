//! Ingest: customers' files, from their bucket into the lake (docs/architecture.md, "Ingest").
//! `source` gives a file's bytes, `decompress` unwraps them, `parse` turns them into Arrow
//! batches of the table's schema and explains every row it refuses.

pub mod decompress;
pub mod parse;
pub mod service;
pub mod source;
