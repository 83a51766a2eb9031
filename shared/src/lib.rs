//! Library shared by the connector functions: domain logic (pure), ports (narrow traits) and
//! adapters (one per AWS service).
//!
//! Each AWS client is behind a cargo feature of its service (`dynamodb`, `secrets-manager`, `s3`,
//! `sts`), so a function links only what it uses; credentials and validation work over the ports.

pub mod adapters;
#[cfg(feature = "sdk")]
pub mod aws;
pub mod config;
pub mod connector_bucket;
pub mod connectors;
pub mod credentials;
/// The pure domain crate, re-exported so callers name `shared::domain::…`.
pub use ::domain;
pub mod error;
#[cfg(feature = "export")]
pub mod export;
#[cfg(any(test, feature = "testing"))]
pub mod fakes;
#[cfg(feature = "ingest")]
pub mod ingest;
#[cfg(feature = "lake")]
pub mod lake;
pub mod ports;
pub mod run_id;
pub mod scheduler;
pub mod telemetry;
pub mod validation;
