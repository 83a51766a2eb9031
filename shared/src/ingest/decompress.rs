//! A file's content without its compression layer, as a stream: gzip (every member), zstd
//! (every frame) or the single file of a zip archive, read by range. Failures of the stream
//! (a truncated upload, corrupt data, a failed read of the source) surface from `read` as an
//! `io::Error` carrying a [`FileError`] ([`FileError::from_io`] takes it out again).
//! Truncation is always caught; corruption is caught by gzip's and zip's CRC-32 and by
//! zstd's frame checks (and its checksum, when the writer included the optional one).

use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;

use crate::domain::connector::IngestCompression;
use crate::ingest::parse::FileError;
use crate::ingest::source::Source;

/// Bytes fetched per range request by the zip reader.
const RANGE_CHUNK: u64 = 1 << 20;

/// The compression layer actually found around a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Zip,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Zip => "zip",
        }
    }

    /// The layer the first bytes of a file announce. Zip's second magic is an empty archive's
    /// end record, so that an empty archive is reported as one.
    pub fn from_magic(start: &[u8]) -> Option<Compression> {
        if start.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if start.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if start.starts_with(b"PK\x03\x04") || start.starts_with(b"PK\x05\x06") {
            Some(Compression::Zip)
        } else {
            None
        }
    }

    fn magic_text(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "1f 8b",
            Compression::Zstd => "28 b5 2f fd",
            Compression::Zip => "50 4b 03 04",
        }
    }
}

/// The compression a key's extension names and the key without it (`a.csv.gz` → `a.csv`).
pub fn compression_from_key(key: &str) -> (Option<Compression>, &str) {
    const SUFFIXES: &[(&str, Compression)] = &[
        (".gz", Compression::Gzip),
        (".gzip", Compression::Gzip),
        (".zst", Compression::Zstd),
        (".zstd", Compression::Zstd),
        (".zip", Compression::Zip),
    ];
    for (suffix, compression) in SUFFIXES {
        let at = key.len().saturating_sub(suffix.len());
        if key.len() > suffix.len()
            && key.is_char_boundary(at)
            && key[at..].eq_ignore_ascii_case(suffix)
        {
            return (Some(*compression), &key[..at]);
        }
    }
    (None, key)
}

/// The content of a file: a `Read` of the decompressed bytes, with what was unwrapped.
pub struct Decompressed<'a> {
    reader: Box<dyn Read + Send + 'a>,
    compression: Compression,
    content_name: String,
    content_bytes: u64,
}

impl Decompressed<'_> {
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The content's name for messages: the key without its compression suffix, or the zip
    /// entry's name.
    pub fn content_name(&self) -> &str {
        &self.content_name
    }

    /// Bytes of content read so far.
    pub fn content_bytes(&self) -> u64 {
        self.content_bytes
    }
}

impl Read for Decompressed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reader.read(buf) {
            Ok(n) => {
                self.content_bytes += n as u64;
                Ok(n)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(error),
            Err(error) if FileError::from_io(&error).is_some() => Err(error),
            Err(error) => {
                let compression = self.compression.name();
                let done = thousands(self.content_bytes);
                let reason = if error.kind() == io::ErrorKind::UnexpectedEof {
                    format!(
                        "the {compression} stream ends early after {done} bytes of content (truncated upload?)"
                    )
                } else {
                    format!(
                        "the {compression} stream is corrupt after {done} bytes of content: {error}"
                    )
                };
                Err(io::Error::other(FileError::Decompress {
                    compression,
                    reason,
                }))
            }
        }
    }
}

/// Opens the content of the file at `key`.
///
/// With [`IngestCompression::Auto`] the magic bytes decide when they name a compression, even
/// against the extension: they are written by the compressor and checked again by its
/// decoder (a gzip header and CRC, a zstd frame, a zip directory), so a wrong guess fails
/// loudly instead of producing garbage, while an extension is only a name someone gave. An
/// extension that names a compression whose magic bytes are absent is an error, never plain
/// text. A declared compression must find its magic bytes too; `None` takes the bytes as
/// they are.
pub fn open_decompressed<'a>(
    source: &'a dyn Source,
    key: &str,
    compression: IngestCompression,
) -> Result<Decompressed<'a>, FileError> {
    if source.is_empty() {
        return Err(FileError::Empty { compression: None });
    }
    let start = source.read_range(0, 4).map_err(|e| read_error(0, &e))?;
    let by_magic = Compression::from_magic(&start);
    let (by_key, stem) = compression_from_key(key);
    let found = match compression {
        IngestCompression::None => Compression::None,
        IngestCompression::Auto => match (by_magic, by_key) {
            (Some(magic), _) => magic,
            (None, Some(named)) => {
                return Err(FileError::CompressionMismatch(format!(
                    "the key ends in .{}, but the file does not start with {}'s magic bytes ({}); it starts with {}. Rename the file or set the connector's compression",
                    key.rsplit('.').next().unwrap_or_default(),
                    named.name(),
                    named.magic_text(),
                    hex(&start),
                )));
            }
            (None, None) => Compression::None,
        },
        declared => {
            let declared = match declared {
                IngestCompression::Gzip => Compression::Gzip,
                IngestCompression::Zstd => Compression::Zstd,
                _ => Compression::Zip,
            };
            if by_magic != Some(declared) {
                return Err(FileError::CompressionMismatch(format!(
                    "the connector's compression is {}, but the file does not start with its magic bytes ({}); it starts with {}. Set the compression to auto{}",
                    declared.name(),
                    declared.magic_text(),
                    hex(&start),
                    by_magic.map_or(" or none".to_owned(), |m| format!(" or {}", m.name())),
                )));
            }
            declared
        }
    };
    let content_name = if found == Compression::None || by_key != Some(found) {
        key.to_owned()
    } else {
        stem.to_owned()
    };
    let sequential = || -> Result<SourceReader<'a>, FileError> {
        let reader = source.sequential().map_err(|e| read_error(0, &e))?;
        Ok(SourceReader { reader, offset: 0 })
    };
    let (reader, content_name): (Box<dyn Read + Send + 'a>, String) = match found {
        Compression::None => (Box::new(sequential()?), content_name),
        Compression::Gzip => (
            Box::new(flate2::read::MultiGzDecoder::new(
                io::BufReader::with_capacity(64 << 10, sequential()?),
            )),
            content_name,
        ),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(sequential()?).map_err(|e| {
                FileError::Decompress {
                    compression: "zstd",
                    reason: format!("the zstd decoder could not start: {e}"),
                }
            })?;
            (Box::new(decoder), content_name)
        }
        Compression::Zip => {
            let (entry, name) = open_zip_entry(source)?;
            (entry, name)
        }
    };
    Ok(Decompressed {
        reader,
        compression: found,
        content_name,
        content_bytes: 0,
    })
}

fn read_error(offset: u64, error: &io::Error) -> FileError {
    FileError::from_io(error).unwrap_or_else(|| FileError::Read {
        offset,
        reason: error.to_string(),
    })
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".to_owned();
    }
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The source's sequential reader, its failures turned into [`FileError::Read`] so that the
/// decoders above pass them through unchanged.
struct SourceReader<'a> {
    reader: Box<dyn Read + Send + 'a>,
    offset: u64,
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reader.read(buf) {
            Ok(n) => {
                self.offset += n as u64;
                Ok(n)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(error),
            Err(error) => Err(io::Error::other(read_error(self.offset, &error))),
        }
    }
}

/// `Read + Seek` over `Source::read_range`, one chunk of at most [`RANGE_CHUNK`] held at a
/// time, within `[start, end)` of the file.
pub(crate) struct RangeReader<'a> {
    source: &'a dyn Source,
    start: u64,
    end: u64,
    /// Absolute position in the file.
    position: u64,
    chunk: Bytes,
    chunk_start: u64,
}

impl<'a> RangeReader<'a> {
    pub(crate) fn new(source: &'a dyn Source, start: u64, end: u64) -> Self {
        Self {
            source,
            start,
            end: end.min(source.len()),
            position: start,
            chunk: Bytes::new(),
            chunk_start: start,
        }
    }
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.end || buf.is_empty() {
            return Ok(0);
        }
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if self.position < self.chunk_start || self.position >= chunk_end {
            let len = RANGE_CHUNK.min(self.end - self.position);
            self.chunk = self
                .source
                .read_range(self.position, len)
                .map_err(|e| io::Error::other(read_error(self.position, &e)))?;
            self.chunk_start = self.position;
            if self.chunk.is_empty() {
                return Err(io::Error::other(FileError::Read {
                    offset: self.position,
                    reason: "the file ended before its stated size".to_owned(),
                }));
            }
        }
        let from = (self.position - self.chunk_start) as usize;
        let n = buf.len().min(self.chunk.len() - from);
        buf[..n].copy_from_slice(&self.chunk[from..from + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let length = self.end - self.start;
        let relative = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(n) => length.checked_add_signed(n),
            SeekFrom::Current(n) => (self.position - self.start).checked_add_signed(n),
        };
        let relative = relative
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.position = self.start + relative;
        Ok(relative)
    }
}

/// The one file of a zip archive, streamed from its data by range; the archive's directory
/// is read first (from the end of the file) to find it.
fn open_zip_entry<'a>(
    source: &'a dyn Source,
) -> Result<(Box<dyn Read + Send + 'a>, String), FileError> {
    let corrupt = |e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(io) => {
            FileError::from_io(&io).unwrap_or_else(|| FileError::ZipCorrupt(io.to_string()))
        }
        other => FileError::ZipCorrupt(other.to_string()),
    };
    let mut archive =
        zip::ZipArchive::new(RangeReader::new(source, 0, source.len())).map_err(corrupt)?;
    let mut files = Vec::new();
    for index in 0..archive.len() {
        let name = archive
            .name_for_index(index)
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default();
        if !name.ends_with('/') {
            files.push((index, name.into_owned()));
        }
    }
    let (index, name) = match files.as_slice() {
        [] => return Err(FileError::ZipNoFile),
        [one] => one.clone(),
        many => {
            let mut names = many
                .iter()
                .take(10)
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if many.len() > 10 {
                names.push_str(", …");
            }
            return Err(FileError::ZipEntries {
                count: many.len(),
                names,
            });
        }
    };
    let entry = archive.by_index_raw(index).map_err(corrupt)?;
    let unsupported = |reason: String| FileError::ZipUnsupported {
        entry: name.clone(),
        reason,
    };
    if entry.encrypted() {
        return Err(unsupported(
            "is encrypted; upload it without a password".to_owned(),
        ));
    }
    let data_start = entry
        .data_start()
        .ok_or_else(|| FileError::ZipCorrupt(format!("the entry {name:?} has no data")))?;
    let method = entry.compression();
    let compressed = RangeReader::new(
        source,
        data_start,
        data_start.saturating_add(entry.compressed_size()),
    );
    let content: Box<dyn Read + Send + 'a> = match method {
        zip::CompressionMethod::Stored => Box::new(compressed),
        zip::CompressionMethod::Deflated => Box::new(flate2::read::DeflateDecoder::new(compressed)),
        other => {
            return Err(unsupported(format!(
                "is compressed with {other}, which is not supported; use deflate or store"
            )));
        }
    };
    let checked = CheckedEntry {
        content,
        crc: flate2::Crc::new(),
        expected_crc: entry.crc32(),
        expected_size: entry.size(),
        size: 0,
    };
    Ok((Box::new(checked), name))
}

/// A zip entry's content, checked against the size and CRC-32 its directory states: a
/// truncated or corrupt entry ends in an error, not in fewer or wrong bytes.
struct CheckedEntry<'a> {
    content: Box<dyn Read + Send + 'a>,
    crc: flate2::Crc,
    expected_crc: u32,
    expected_size: u64,
    size: u64,
}

impl Read for CheckedEntry<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.content.read(buf)?;
        self.crc.update(&buf[..n]);
        self.size += n as u64;
        if self.size > self.expected_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the entry holds more than the {} bytes its directory states",
                    self.expected_size
                ),
            ));
        }
        if n == 0 && !buf.is_empty() {
            if self.size < self.expected_size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the entry ends early",
                ));
            }
            if self.crc.sum() != self.expected_crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "its CRC-32 does not match the archive's directory",
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
