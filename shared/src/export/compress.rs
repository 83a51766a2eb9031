//! Compression and containers: gzip, zstd, zip, tar, tgz over a ByteSink.
