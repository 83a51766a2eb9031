//! What an exported file is called and labelled, and where a run's manifest and `.DONE` marker
//! go (docs/architecture.md, "Export").

use chrono::{DateTime, Utc};

use crate::connector::{ExportCompression, ExportOptions, FormatKind};

/// Folder (under the connector's prefix) of each run's manifest and marker.
pub const RUNS_DIR: &str = "_runs/";
pub const MANIFEST_NAME: &str = "manifest.json";
pub const DONE_NAME: &str = ".DONE";

/// The `Content-Type` of an exported object: its outermost layer decides.
pub fn content_type(options: &ExportOptions) -> &'static str {
    if options.pgp_public_key.is_some() {
        return "application/pgp-encrypted";
    }
    if !options.compresses_inside() {
        match options.compression {
            ExportCompression::None => {}
            ExportCompression::Gzip | ExportCompression::Tgz => return "application/gzip",
            ExportCompression::Zstd => return "application/zstd",
            ExportCompression::Zip => return "application/zip",
            ExportCompression::Tar => return "application/x-tar",
        }
    }
    match options.format.kind() {
        FormatKind::Csv => "text/csv; charset=utf-8",
        FormatKind::Tsv => "text/tab-separated-values; charset=utf-8",
        FormatKind::Psv => "text/plain; charset=utf-8",
        FormatKind::Jsonl => "application/x-ndjson; charset=utf-8",
        FormatKind::Parquet => "application/vnd.apache.parquet",
    }
}

/// The name of the data file inside a zip or tar (and the literal name inside a PGP message):
/// the object's file name with the container and `.pgp` suffixes taken off, e.g.
/// `sales_20260115T020000Z_00001.csv` for `…/sales_20260115T020000Z_00001.csv.zip.pgp`.
pub fn member_name(key: &str, options: &ExportOptions) -> String {
    let file = key.rsplit('/').next().unwrap_or(key);
    let full = options.file_extension();
    let inner = options.format.kind().extension();
    match file.strip_suffix(&format!(".{full}")) {
        Some(stem) => format!("{stem}.{inner}"),
        None => file.to_owned(),
    }
}

/// `<prefix>_runs/<timestamp>_<run id>/`: one folder per run, in time order.
fn run_dir(prefix: &str, loaded_at: DateTime<Utc>, run_id: &str) -> String {
    format!(
        "{prefix}{RUNS_DIR}{}_{run_id}/",
        loaded_at.format("%Y%m%dT%H%M%SZ")
    )
}

pub fn manifest_key(prefix: &str, loaded_at: DateTime<Utc>, run_id: &str) -> String {
    format!("{}{MANIFEST_NAME}", run_dir(prefix, loaded_at, run_id))
}

pub fn done_key(prefix: &str, loaded_at: DateTime<Utc>, run_id: &str) -> String {
    format!("{}{DONE_NAME}", run_dir(prefix, loaded_at, run_id))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::connector::{DelimitedFormat, Dialect, FileFormat};
    use crate::testing::export_options;

    fn options(format: FileFormat, compression: ExportCompression, pgp: bool) -> ExportOptions {
        ExportOptions {
            format,
            compression,
            pgp_public_key: pgp.then(|| "key".to_owned()),
            ..export_options()
        }
    }

    fn csv() -> FileFormat {
        FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Csv { delimiter: ',' }))
    }

    #[test]
    fn content_type_is_the_outermost_layers() {
        let tsv = FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Tsv));
        let psv = FileFormat::Delimited(DelimitedFormat::defaults(Dialect::Psv));
        let cases = [
            (
                csv(),
                ExportCompression::None,
                false,
                "text/csv; charset=utf-8",
            ),
            (
                tsv,
                ExportCompression::None,
                false,
                "text/tab-separated-values; charset=utf-8",
            ),
            (
                psv,
                ExportCompression::None,
                false,
                "text/plain; charset=utf-8",
            ),
            (
                FileFormat::Jsonl,
                ExportCompression::None,
                false,
                "application/x-ndjson; charset=utf-8",
            ),
            (csv(), ExportCompression::Gzip, false, "application/gzip"),
            (csv(), ExportCompression::Tgz, false, "application/gzip"),
            (
                FileFormat::Jsonl,
                ExportCompression::Zstd,
                false,
                "application/zstd",
            ),
            (csv(), ExportCompression::Zip, false, "application/zip"),
            (csv(), ExportCompression::Tar, false, "application/x-tar"),
            (
                FileFormat::Parquet,
                ExportCompression::None,
                false,
                "application/vnd.apache.parquet",
            ),
            // zstd compresses parquet's pages: still a parquet file.
            (
                FileFormat::Parquet,
                ExportCompression::Zstd,
                false,
                "application/vnd.apache.parquet",
            ),
            (
                FileFormat::Parquet,
                ExportCompression::Zip,
                false,
                "application/zip",
            ),
            (
                csv(),
                ExportCompression::Gzip,
                true,
                "application/pgp-encrypted",
            ),
        ];
        for (format, compression, pgp, want) in cases {
            let o = options(format.clone(), compression, pgp);
            assert_eq!(
                content_type(&o),
                want,
                "{format:?} {compression:?} pgp={pgp}"
            );
        }
    }

    #[test]
    fn member_name_drops_container_and_pgp_suffixes() {
        let cases = [
            (
                csv(),
                ExportCompression::Zip,
                false,
                "p/t/sales_00001.csv.zip",
                "sales_00001.csv",
            ),
            (
                csv(),
                ExportCompression::Tgz,
                true,
                "sales_00001.csv.tar.gz.pgp",
                "sales_00001.csv",
            ),
            (
                FileFormat::Parquet,
                ExportCompression::Zstd,
                true,
                "a.parquet/x_00002.parquet.pgp",
                "x_00002.parquet",
            ),
            (
                FileFormat::Jsonl,
                ExportCompression::None,
                false,
                "x/y.jsonl",
                "y.jsonl",
            ),
        ];
        for (format, compression, pgp, key, want) in cases {
            assert_eq!(
                member_name(key, &options(format, compression, pgp)),
                want,
                "{key}"
            );
        }
    }

    #[test]
    fn manifest_and_marker_share_the_runs_folder() {
        let at = Utc.with_ymd_and_hms(2026, 1, 15, 2, 0, 0).unwrap();
        assert_eq!(
            manifest_key("exports/", at, "run_01"),
            "exports/_runs/20260115T020000Z_run_01/manifest.json"
        );
        assert_eq!(
            done_key("", at, "run_01"),
            "_runs/20260115T020000Z_run_01/.DONE"
        );
    }
}
