use std::io::Write;

use super::*;
use crate::ingest::source::MemorySource;

fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    // One gzip member per part, concatenated, as `cat a.gz b.gz` makes.
    let mut out = Vec::new();
    for part in parts {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(part).expect("gzip");
        out.extend(encoder.finish().expect("gzip"));
    }
    out
}

fn zstd_frames(parts: &[&[u8]]) -> Vec<u8> {
    parts
        .iter()
        .flat_map(|p| zstd::encode_all(*p, 1).expect("zstd"))
        .collect()
}

/// A zip of `entries` (a name ending in `/` is a directory), deflated or stored.
fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, content) in entries {
        if name.ends_with('/') {
            writer.add_directory(*name, options).expect("directory");
        } else {
            writer.start_file(*name, options).expect("entry");
            writer.write_all(content).expect("entry");
        }
    }
    writer.finish().expect("zip").into_inner()
}

fn read_all(
    bytes: &[u8],
    key: &str,
    compression: IngestCompression,
) -> Result<(Vec<u8>, Compression, String), FileError> {
    let source = MemorySource::new(bytes.to_vec());
    let mut content = open_decompressed(&source, key, compression)?;
    let mut out = Vec::new();
    content
        .read_to_end(&mut out)
        .map_err(|e| FileError::from_io(&e).unwrap_or_else(|| panic!("not a file error: {e}")))?;
    assert_eq!(content.content_bytes(), out.len() as u64);
    Ok((
        out,
        content.compression(),
        content.content_name().to_owned(),
    ))
}

/// Name, file, key, compression setting, content, compression found, content name.
type ReadCase = (
    &'static str,
    Vec<u8>,
    &'static str,
    IngestCompression,
    Vec<u8>,
    Compression,
    &'static str,
);

#[test]
fn content_comes_out_whole() {
    use IngestCompression::{Auto, Gzip, None as Plain, Zip, Zstd};
    let text: &[u8] = b"a,b\n1,2\n";
    let big: Vec<u8> = (0..3_000_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let cases: Vec<ReadCase> = vec![
        (
            "plain",
            text.to_vec(),
            "d/a.csv",
            Auto,
            text.to_vec(),
            Compression::None,
            "d/a.csv",
        ),
        (
            "gzip by extension",
            gzip(&[text]),
            "a.csv.gz",
            Auto,
            text.to_vec(),
            Compression::Gzip,
            "a.csv",
        ),
        (
            "gzip, .gzip",
            gzip(&[text]),
            "a.csv.GZIP",
            Auto,
            text.to_vec(),
            Compression::Gzip,
            "a.csv",
        ),
        (
            "gzip by magic",
            gzip(&[text]),
            "a.csv",
            Auto,
            text.to_vec(),
            Compression::Gzip,
            "a.csv",
        ),
        (
            "gzip declared",
            gzip(&[text]),
            "a",
            Gzip,
            text.to_vec(),
            Compression::Gzip,
            "a",
        ),
        (
            "multi-member gzip",
            gzip(&[b"a,b\n", b"1,2\n", b""]),
            "a.gz",
            Auto,
            text.to_vec(),
            Compression::Gzip,
            "a",
        ),
        (
            "zstd",
            zstd_frames(&[text]),
            "a.csv.zst",
            Auto,
            text.to_vec(),
            Compression::Zstd,
            "a.csv",
        ),
        (
            "zstd frames",
            zstd_frames(&[b"a,b\n", b"1,2\n"]),
            "a.zstd",
            Zstd,
            text.to_vec(),
            Compression::Zstd,
            "a",
        ),
        (
            "zstd by magic",
            zstd_frames(&[text]),
            "a.csv",
            Auto,
            text.to_vec(),
            Compression::Zstd,
            "a.csv",
        ),
        (
            "magic wins over a wrong extension",
            zstd_frames(&[text]),
            "a.csv.gz",
            Auto,
            text.to_vec(),
            Compression::Zstd,
            "a.csv.gz",
        ),
        (
            "zip, one deflated file",
            zip_of(
                &[("inner/data.csv", text)],
                zip::CompressionMethod::Deflated,
            ),
            "a.zip",
            Auto,
            text.to_vec(),
            Compression::Zip,
            "inner/data.csv",
        ),
        (
            "zip, stored, directories ignored",
            zip_of(
                &[("inner/", b""), ("inner/data.csv", text)],
                zip::CompressionMethod::Stored,
            ),
            "a.zip",
            Zip,
            text.to_vec(),
            Compression::Zip,
            "inner/data.csv",
        ),
        (
            "zip larger than a range chunk",
            zip_of(&[("big.bin", &big)], zip::CompressionMethod::Stored),
            "a.zip",
            Auto,
            big.clone(),
            Compression::Zip,
            "big.bin",
        ),
        (
            "none keeps gzip bytes",
            gzip(&[text]),
            "a.gz",
            Plain,
            gzip(&[text]),
            Compression::None,
            "a.gz",
        ),
    ];
    for (name, bytes, key, compression, expected, found, content_name) in cases {
        let (out, compression, got_name) =
            read_all(&bytes, key, compression).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out == expected, "{name}: content differs");
        assert_eq!(compression, found, "{name}");
        assert_eq!(got_name, content_name, "{name}");
    }
}

#[test]
fn broken_and_mismatched_content_is_a_file_error() {
    use IngestCompression::{Auto, Gzip, Zip};
    let text: &[u8] = b"a,b\n1,2\n";
    let long: Vec<u8> = (0..200_000u32)
        .flat_map(|i| i.to_string().into_bytes())
        .collect();
    let truncated_gzip = {
        let whole = gzip(&[&long]);
        whole[..whole.len() / 2].to_vec()
    };
    let corrupt_zstd = {
        // With its checksum: a frame without one can hide a corrupted literal.
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).expect("zstd");
        encoder.include_checksum(true).expect("zstd");
        encoder.write_all(&long).expect("zstd");
        let mut whole = encoder.finish().expect("zstd");
        let middle = whole.len() / 2;
        for b in &mut whole[middle..middle + 64] {
            *b ^= 0x5a;
        }
        whole
    };
    let truncated_zstd = {
        let whole = zstd_frames(&[&long]);
        whole[..whole.len() / 2].to_vec()
    };
    let corrupt_zip = {
        let mut whole = zip_of(&[("a.csv", &long)], zip::CompressionMethod::Stored);
        whole[100] ^= 0xff;
        whole
    };
    let cases: Vec<(&str, Vec<u8>, &str, IngestCompression, &str)> = vec![
        (
            "truncated gzip",
            truncated_gzip,
            "a.csv.gz",
            Auto,
            "the gzip stream ends early after ",
        ),
        (
            "corrupt zstd",
            corrupt_zstd,
            "a.csv.zst",
            Auto,
            "the zstd stream is corrupt after ",
        ),
        (
            "truncated zstd",
            truncated_zstd,
            "a.csv.zst",
            Auto,
            "the zstd stream ends early after ",
        ),
        (
            "corrupt zip entry",
            corrupt_zip,
            "a.zip",
            Auto,
            "the zip stream is corrupt after ",
        ),
        (
            "zip with two files",
            zip_of(
                &[
                    ("a.csv", text),
                    ("dir/", b""),
                    ("b.csv", text),
                    ("c.csv", text),
                ],
                zip::CompressionMethod::Deflated,
            ),
            "a.zip",
            Auto,
            "the zip archive holds 3 files: a.csv, b.csv, c.csv; put one file in each archive",
        ),
        (
            "zip of directories only",
            zip_of(&[("dir/", b"")], zip::CompressionMethod::Deflated),
            "a.zip",
            Auto,
            "the zip archive holds no file",
        ),
        (
            "extension without its magic",
            text.to_vec(),
            "a.csv.gz",
            Auto,
            "the key ends in .gz, but the file does not start with gzip's magic bytes (1f 8b); it starts with 61 2c 62 0a",
        ),
        (
            "declared gzip on plain text",
            text.to_vec(),
            "a.csv",
            Gzip,
            "the connector's compression is gzip, but the file does not start with its magic bytes (1f 8b); it starts with 61 2c 62 0a. Set the compression to auto or none",
        ),
        (
            "declared zip on gzip",
            gzip(&[text]),
            "a.csv",
            Zip,
            "the connector's compression is zip, but the file does not start with its magic bytes (50 4b 03 04); it starts with 1f 8b",
        ),
        (
            "empty",
            Vec::new(),
            "a.csv.gz",
            Auto,
            "the file is empty (0 bytes)",
        ),
    ];
    for (name, bytes, key, compression, message) in cases {
        let error = read_all(&bytes, key, compression)
            .err()
            .unwrap_or_else(|| panic!("{name}: read"));
        assert!(error.to_string().starts_with(message), "{name}: {error}");
    }
    let error = read_all(&gzip(&[&long])[..40_000], "a.gz", Auto).expect_err("truncated");
    assert!(
        error
            .to_string()
            .ends_with("bytes of content (truncated upload?)"),
        "{error}"
    );
}

#[test]
fn keys_name_their_compression() {
    let cases: &[(&str, Option<Compression>, &str)] = &[
        ("a.csv.gz", Some(Compression::Gzip), "a.csv"),
        ("a.CSV.GZ", Some(Compression::Gzip), "a.CSV"),
        ("x/a.jsonl.zst", Some(Compression::Zstd), "x/a.jsonl"),
        ("a.zstd", Some(Compression::Zstd), "a"),
        ("a.zip", Some(Compression::Zip), "a"),
        ("a.csv", None, "a.csv"),
        (".gz", None, ".gz"),
        ("agz", None, "agz"),
    ];
    for (key, compression, stem) in cases {
        assert_eq!(compression_from_key(key), (*compression, *stem), "{key}");
    }
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(thousands(999), "999");
}
