//! One adapter per AWS service, each implementing a port of `crate::ports`.

pub mod dynamodb;
pub mod s3;
pub mod secrets_manager;
pub mod sts;
