//! The export queue adapter (SQS).
