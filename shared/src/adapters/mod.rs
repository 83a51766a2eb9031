//! One adapter per AWS service, each implementing a port of `crate::ports` and each behind the
//! cargo feature of its service, so a function links only the clients it uses.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
/// The lake: Parquet parts in the lake bucket, recorded in the lake catalog table.
#[cfg(all(feature = "lake", feature = "s3", feature = "dynamodb"))]
pub mod lake;
/// The ingest ledger (one record per customer file).
#[cfg(feature = "dynamodb")]
pub mod ledger;
/// The runs table (runs and export watermarks).
#[cfg(feature = "dynamodb")]
pub mod runs;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "secrets-manager")]
pub mod secrets_manager;
/// The export queue.
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "sts")]
pub mod sts;
