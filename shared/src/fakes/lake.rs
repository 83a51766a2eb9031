//! In-memory lake.
