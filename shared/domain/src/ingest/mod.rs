//! Ingest: files customers drop in their bucket, announced by S3 notifications.

pub mod file;
pub mod notification;
