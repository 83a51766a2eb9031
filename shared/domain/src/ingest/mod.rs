//! Ingest: files customers drop in their bucket, announced by S3 notifications.

pub mod notification;
