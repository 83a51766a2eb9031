//! The lake adapter: Parquet parts in the lake bucket, recorded in the lake catalog table.
