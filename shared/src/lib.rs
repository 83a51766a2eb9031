//! Library shared by the connector functions: domain logic (pure), ports (narrow traits) and
//! adapters (one per AWS service).

pub mod adapters;
pub mod aws;
pub mod config;
pub mod connectors;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod fakes;
pub mod ports;
pub mod telemetry;
pub mod validation;
