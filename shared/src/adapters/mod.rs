//! One adapter per AWS service, each behind the cargo feature of that service (`s3` and `sts`
//! are the features for `s3.rs` and `sts.rs`).

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "secrets-manager")]
pub mod secrets_manager;
