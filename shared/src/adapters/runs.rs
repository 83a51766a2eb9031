//! The runs table adapter: runs and each connector's export watermarks.
