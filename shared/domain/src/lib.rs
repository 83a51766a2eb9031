//! The pure domain: every rule of the connector product that needs no I/O, tested with case
//! tables. A crate of its own with no AWS dependency, so the compiler keeps it pure
//! (docs/architecture.md, "Code layout"). Organised by capability:
//!
//! - `connector`: the connector model, its settings' value types (schedule, key template), the
//!   API spec parser and field rules, and the platform's own resources no connector may name;
//! - `setup`: what the customer must configure (policies, trust) and validation's decisions;
//! - `export`: runs as plans of file tasks, their keys and manifests;
//! - `ingest`: S3 notifications, read into the files they announce.
//!
//! Dependencies point one way: `setup` and `ingest` use `connector`, never the reverse.

pub mod connector;
pub mod export;
pub mod ingest;
pub mod setup;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
