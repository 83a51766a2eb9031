//! The export engine: lake batches through encoder → compressor → encryptor into a multipart
//! upload, with bounded memory (docs/architecture.md, "Export").

pub mod compress;
pub mod encode;
pub mod engine;
pub mod pgp;
pub mod resumable_sha256;
pub mod sink;
pub mod upload;
