//! Library shared by the connector functions: domain logic (pure), ports (narrow traits) and
//! adapters (one per AWS service).
//!
//! Each AWS client is behind a cargo feature of its service (`dynamodb`, `secrets-manager`, `s3`,
//! `sts`; `credentials` and `validation` build on them), so a function links only what it uses.

pub mod adapters;
#[cfg(feature = "sdk")]
pub mod aws;
pub mod config;
pub mod connectors;
#[cfg(feature = "credentials")]
pub mod credentials;
pub mod domain;
pub mod error;
pub mod fakes;
pub mod ports;
pub mod telemetry;
#[cfg(feature = "validation")]
pub mod validation;
