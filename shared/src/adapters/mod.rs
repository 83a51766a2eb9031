//! One adapter per AWS service.

pub mod dynamodb;
pub mod secrets_manager;
