//! Where a file's bytes come from while it is parsed. Parsing is blocking work on its own
//! thread, so a source is blocking too: the S3 source behind it fetches ranges on the async
//! runtime and hands them over.

use std::io::{self, Read};

use bytes::Bytes;

/// A file's bytes: by range (Parquet's footer, a zip's central directory) or in one pass from
/// the start (everything else). Memory stays bounded by what a source keeps in flight, never by
/// the file's size.
pub trait Source: Send + Sync {
    /// The file's size in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes from `offset` (fewer only at the end of the file).
    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes>;

    /// A reader from byte 0 to the end.
    fn sequential(&self) -> io::Result<Box<dyn Read + Send + '_>>;
}

/// A file held in memory (tests, small files).
#[derive(Debug, Clone)]
pub struct MemorySource(pub Bytes);

impl MemorySource {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }
}

impl Source for MemorySource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let end = usize::try_from(offset.saturating_add(len))
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        Ok(self.0.slice(start..end))
    }

    fn sequential(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(io::Cursor::new(self.0.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_ranges_stop_at_the_end() {
        let source = MemorySource::new(&b"0123456789"[..]);
        assert_eq!(source.len(), 10);
        assert_eq!(&source.read_range(2, 3).unwrap()[..], b"234");
        assert_eq!(&source.read_range(8, 5).unwrap()[..], b"89");
        assert!(source.read_range(12, 5).unwrap().is_empty());
        let mut all = Vec::new();
        source.sequential().unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, b"0123456789");
    }
}
