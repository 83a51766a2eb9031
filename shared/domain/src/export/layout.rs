//! Export file naming: extension, Content-Type, manifest and marker keys.
