//! The start shared by the text formats: the decompressed stream, checked for emptiness and
//! binary content on its first KiB, without a UTF-8 BOM, and with a bound on one record's
//! size so that a stray quote cannot make the parser hold the rest of the file as one field.

use std::io::{self, Read};

use super::FileError;
use crate::domain::connector::{FormatKind, IngestCompression};
use crate::ingest::decompress::{Compression, Decompressed, open_decompressed};
use crate::ingest::source::Source;

/// Bytes looked at to tell text from binary content.
const SNIFF_BYTES: usize = 1024;
/// The longest one record (a delimited row, a JSON line) may be.
pub(super) const RECORD_LIMIT: u64 = 64 << 20;

pub(super) struct TextStream<'a> {
    prefix: Vec<u8>,
    prefix_at: usize,
    content: Decompressed<'a>,
    /// Bytes handed to the parser so far.
    delivered: u64,
    /// Where the record being read starts (in delivered bytes) and its line.
    record_start: u64,
    record_line: u64,
    record_limit: u64,
}

impl TextStream<'_> {
    /// The parser's note that the next record starts at `offset` (of the bytes this stream
    /// delivered) on `line`.
    pub(super) fn mark_record_start(&mut self, offset: u64, line: u64) {
        self.record_start = offset;
        self.record_line = line;
    }

    pub(super) fn content_bytes(&self) -> u64 {
        self.content.content_bytes()
    }

    #[cfg(test)]
    pub(super) fn set_record_limit(&mut self, limit: u64) {
        self.record_limit = limit;
    }
}

impl Read for TextStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.delivered.saturating_sub(self.record_start) > self.record_limit {
            return Err(io::Error::other(FileError::RecordTooLong {
                line: self.record_line,
                limit_mib: self.record_limit >> 20,
            }));
        }
        let n = if self.prefix_at < self.prefix.len() {
            let rest = &self.prefix[self.prefix_at..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.prefix_at += n;
            if self.prefix_at == self.prefix.len() {
                self.prefix = Vec::new();
                self.prefix_at = 0;
            }
            n
        } else {
            self.content.read(buf)?
        };
        self.delivered += n as u64;
        Ok(n)
    }
}

/// An I/O error of the stream as the file error it carries.
pub(super) fn file_error(error: &io::Error, offset: u64) -> FileError {
    FileError::from_io(error).unwrap_or_else(|| FileError::Read {
        offset,
        reason: error.to_string(),
    })
}

pub(super) fn open<'a>(
    source: &'a dyn Source,
    key: &str,
    compression: IngestCompression,
    kind: FormatKind,
) -> Result<TextStream<'a>, FileError> {
    let mut content = open_decompressed(source, key, compression)?;
    let mut prefix = Vec::with_capacity(SNIFF_BYTES);
    while prefix.len() < SNIFF_BYTES {
        let mut chunk = [0u8; SNIFF_BYTES];
        let want = SNIFF_BYTES - prefix.len();
        let n = match content.read(&mut chunk[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(file_error(&e, prefix.len() as u64)),
        };
        if n == 0 {
            break;
        }
        prefix.extend_from_slice(&chunk[..n]);
    }
    if prefix.is_empty() {
        let compression = match content.compression() {
            Compression::None => None,
            other => Some(other.name()),
        };
        return Err(FileError::Empty { compression });
    }
    let prefix_at = if prefix.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    if let Some(evidence) = binary_evidence(&prefix[prefix_at..], content.compression()) {
        return Err(FileError::Binary {
            format: kind.extension(),
            evidence,
        });
    }
    Ok(TextStream {
        prefix,
        prefix_at,
        content,
        delivered: 0,
        record_start: 0,
        record_line: 1,
        record_limit: RECORD_LIMIT,
    })
}

/// Why the first bytes of a text file look binary: a NUL byte (never in text), or mostly
/// bytes that are not UTF-8 (a few are a stray Latin-1 character, kept to its row).
fn binary_evidence(start: &[u8], compression: Compression) -> Option<String> {
    let hint = || {
        if start.starts_with(b"PAR1") {
            "; it is a Parquet file, set the connector's format to parquet".to_owned()
        } else if compression == Compression::None {
            match Compression::from_magic(start) {
                Some(c) => format!(
                    "; it starts like a {} file, set the connector's compression to auto or {}",
                    c.name(),
                    c.name()
                ),
                None => String::new(),
            }
        } else {
            String::new()
        }
    };
    if let Some(at) = start.iter().position(|&b| b == 0) {
        return Some(format!("a NUL byte at byte {at}{}", hint()));
    }
    let mut invalid = 0usize;
    let mut rest = start;
    while let Err(error) = std::str::from_utf8(rest) {
        let Some(len) = error.error_len() else {
            break; // a character cut by the end of the sample
        };
        invalid += len;
        rest = &rest[error.valid_up_to() + len..];
    }
    (invalid * 4 > start.len()).then(|| {
        format!(
            "{invalid} of its first {} bytes are not UTF-8{}",
            start.len(),
            hint()
        )
    })
}
