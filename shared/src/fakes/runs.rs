//! In-memory runs table and export queue.
