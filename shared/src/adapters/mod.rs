//! One adapter per AWS service, each implementing a port of `crate::ports` and each behind the
//! cargo feature of its service, so a function links only the clients it uses.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "secrets-manager")]
pub mod secrets_manager;
#[cfg(feature = "sts")]
pub mod sts;
