use std::io::{Read, Write};

use domain::connector::ExportCompression;

use super::*;
use crate::export::sink::MemorySink;

/// Every awkward byte an encoder can hand down: delimiters, quotes, CR/LF, tabs, Unicode.
fn sample_text() -> Vec<u8> {
    let row = "id,name,note\r\n1,\"a,b\",\"say \"\"hi\"\"\"\n2,\t tab |pipe| ,Données 😀\r\n3,,\n";
    row.repeat(2_000).into_bytes()
}

fn compress(kind: ExportCompression, member: &str, data: &[u8]) -> (MemorySink, tempfile::TempDir) {
    let spool = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let mut layer = compressor(kind, member, spool.path(), Box::new(sink.clone())).unwrap();
    // Uneven writes, as an encoder makes them.
    for chunk in data.chunks(7_777) {
        layer.write_all(chunk).unwrap();
    }
    layer.finish().unwrap();
    (sink, spool)
}

/// The one member a tar holds: (name, size in the header, bytes).
fn read_tar(bytes: &[u8]) -> (String, u64, Vec<u8>) {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = archive.entries().unwrap();
    let mut entry = entries.next().expect("one member").unwrap();
    let name = entry.path().unwrap().to_string_lossy().into_owned();
    let size = entry.header().size().unwrap();
    let mut data = Vec::new();
    entry.read_to_end(&mut data).unwrap();
    drop(entry);
    assert!(entries.next().is_none(), "only one member");
    (name, size, data)
}

fn read_gzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Decompresses `bytes` with an independent reader for `kind`: (member name, data).
fn decompress(kind: ExportCompression, bytes: &[u8]) -> (Option<String>, Vec<u8>) {
    match kind {
        ExportCompression::None => (None, bytes.to_vec()),
        ExportCompression::Gzip => (None, read_gzip(bytes)),
        ExportCompression::Zstd => (None, zstd::stream::decode_all(bytes).unwrap()),
        ExportCompression::Zip => {
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
            assert_eq!(archive.len(), 1, "one member");
            let mut member = archive.by_index(0).unwrap();
            assert_eq!(member.compression(), zip::CompressionMethod::Deflated);
            let mut data = Vec::new();
            member.read_to_end(&mut data).unwrap();
            (Some(member.name().unwrap().into_owned()), data)
        }
        ExportCompression::Tar => {
            let (name, size, data) = read_tar(bytes);
            assert_eq!(size, data.len() as u64);
            (Some(name), data)
        }
        ExportCompression::Tgz => {
            let (name, size, data) = read_tar(&read_gzip(bytes));
            assert_eq!(size, data.len() as u64);
            (Some(name), data)
        }
    }
}

const ALL: [ExportCompression; 6] = [
    ExportCompression::None,
    ExportCompression::Gzip,
    ExportCompression::Zstd,
    ExportCompression::Zip,
    ExportCompression::Tar,
    ExportCompression::Tgz,
];

#[test]
fn every_kind_round_trips_through_an_independent_reader() {
    let long_name = format!("{}/orders_20260115T020000Z_0001.csv", "deep".repeat(40));
    let cases: [(&str, Vec<u8>); 4] = [
        ("orders_20260115T020000Z_0001.csv", sample_text()),
        ("empty.csv", Vec::new()),
        ("one byte.tsv", b"\n".to_vec()),
        (long_name.as_str(), sample_text()),
    ];
    for kind in ALL {
        for (member, data) in &cases {
            let (sink, spool) = compress(kind, member, data);
            assert!(
                sink.is_finished(),
                "{kind:?}: finish finishes the inner sink"
            );
            let bytes = sink.contents();
            let (name, plain) = decompress(kind, &bytes);
            assert_eq!(&plain, data, "{kind:?} {member}");
            match kind {
                ExportCompression::Zip | ExportCompression::Tar | ExportCompression::Tgz => {
                    assert_eq!(name.as_deref(), Some(*member), "{kind:?}: member name")
                }
                _ => assert_eq!(name, None),
            }
            assert_eq!(
                std::fs::read_dir(spool.path()).unwrap().count(),
                0,
                "{kind:?}: no spool file left"
            );
        }
    }
}

#[test]
fn compressed_kinds_shrink_repetitive_text() {
    let data = sample_text();
    for kind in [
        ExportCompression::Gzip,
        ExportCompression::Zstd,
        ExportCompression::Zip,
        ExportCompression::Tgz,
    ] {
        let (sink, _spool) = compress(kind, "f.csv", &data);
        let size = sink.contents().len();
        assert!(size * 10 < data.len(), "{kind:?}: {size} of {}", data.len());
    }
}

#[test]
fn magic_bytes_name_the_format() {
    let cases: [(ExportCompression, &[u8]); 4] = [
        (ExportCompression::Gzip, &[0x1f, 0x8b]),
        (ExportCompression::Tgz, &[0x1f, 0x8b]),
        (ExportCompression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
        (ExportCompression::Zip, b"PK\x03\x04"),
    ];
    for (kind, magic) in cases {
        let (sink, _spool) = compress(kind, "f.csv", b"a,b\n");
        assert!(sink.contents().starts_with(magic), "{kind:?}");
    }
    let (sink, _spool) = compress(ExportCompression::Tar, "f.csv", b"a,b\n");
    assert_eq!(&sink.contents()[257..262], b"ustar", "tar magic");
    assert_eq!(sink.contents().len() % 512, 0, "tar is whole blocks");
}

#[test]
fn gzip_output_reads_as_one_member_with_the_standard_decoder() {
    let data = sample_text();
    let (sink, _spool) = compress(ExportCompression::Gzip, "f.csv", &data);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(sink.contents().as_slice())
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, data);
}

#[test]
fn dropping_without_finish_never_finishes_the_inner_sink_and_leaves_no_spool_file() {
    for kind in ALL {
        let spool = tempfile::tempdir().unwrap();
        let sink = MemorySink::default();
        let mut layer = compressor(kind, "f.csv", spool.path(), Box::new(sink.clone())).unwrap();
        layer.write_all(&sample_text()).unwrap();
        drop(layer);
        assert!(!sink.is_finished(), "{kind:?}");
        assert_eq!(
            std::fs::read_dir(spool.path()).unwrap().count(),
            0,
            "{kind:?}"
        );
    }
}

#[test]
fn tar_spool_never_shows_in_the_spool_directory_while_writing() {
    let spool = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let mut layer = compressor(
        ExportCompression::Tar,
        "f.csv",
        spool.path(),
        Box::new(sink.clone()),
    )
    .unwrap();
    layer.write_all(&sample_text()).unwrap();
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
    assert!(
        sink.contents().is_empty(),
        "nothing reaches inner before finish"
    );
    layer.finish().unwrap();
    assert!(sink.is_finished());
}

#[test]
fn a_missing_spool_directory_is_named_in_the_error() {
    let error = compressor(
        ExportCompression::Tar,
        "f.csv",
        Path::new("/nonexistent/spool"),
        Box::new(MemorySink::default()),
    )
    .err()
    .expect("refused");
    assert!(error.to_string().contains("/nonexistent/spool"), "{error}");
}

#[test]
fn a_full_disk_while_spooling_says_to_lower_max_file_size_mb() {
    let cases = [
        std::io::Error::from_raw_os_error(28),
        std::io::Error::from(std::io::ErrorKind::StorageFull),
    ];
    for error in cases {
        let mapped = spool_error(error);
        assert_eq!(mapped.kind(), std::io::ErrorKind::StorageFull);
        let text = mapped.to_string();
        assert!(text.contains("ephemeral storage"), "{text}");
        assert!(text.contains("max_file_size_mb"), "{text}");
    }
    let other = spool_error(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    assert_eq!(other.kind(), std::io::ErrorKind::PermissionDenied);
}

/// A full /dev/full-like device: every write fails with ENOSPC.
#[test]
fn a_full_spool_device_fails_the_write_with_the_clear_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not on Linux
    };
    let mut layer = TarSink {
        member_name: "f.csv".into(),
        spool: full,
        inner: Box::new(MemorySink::default()),
    };
    let error = layer.write_all(&[0; 4096]).and_then(|()| layer.flush());
    let error = error.expect_err("the device is full");
    assert!(error.to_string().contains("max_file_size_mb"), "{error}");
}

struct FailingSink;

impl Write for FailingSink {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("upload refused"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ByteSink for FailingSink {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        panic!("a failed stack is never finished");
    }
}

#[test]
fn an_inner_write_error_reaches_the_caller() {
    for kind in ALL {
        let spool = tempfile::tempdir().unwrap();
        let result =
            compressor(kind, "f.csv", spool.path(), Box::new(FailingSink)).and_then(|mut layer| {
                layer.write_all(&sample_text())?;
                layer.finish()
            });
        let error = result.expect_err("fails");
        assert!(
            error.to_string().contains("upload refused"),
            "{kind:?}: {error}"
        );
    }
}
