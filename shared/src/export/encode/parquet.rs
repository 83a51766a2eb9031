//! Parquet: Arrow's writer straight over the sink, with page statistics and bounded row groups.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{BatchEncoder, EncodeError, ParquetCodec, check_batch_schema};
use crate::export::sink::ByteSink;

/// Rows per row group at most: large enough for efficient scans by readers, small enough that
/// the writer (which holds a row group's encoded pages until it is flushed) stays bounded.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Bytes per row group at most (the writer's estimate), for wide rows.
const ROW_GROUP_BYTES: usize = 64 << 20;

pub(super) struct ParquetEncoder {
    writer: ArrowWriter<Box<dyn ByteSink>>,
    schema: SchemaRef,
    rows: u64,
}

impl ParquetEncoder {
    pub fn new(
        codec: ParquetCodec,
        schema: SchemaRef,
        sink: Box<dyn ByteSink>,
    ) -> Result<Self, EncodeError> {
        let compression = match codec {
            ParquetCodec::Snappy => Compression::SNAPPY,
            ParquetCodec::Gzip => Compression::GZIP(GzipLevel::default()),
            ParquetCodec::Zstd => Compression::ZSTD(ZstdLevel::default()),
        };
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .build();
        let writer =
            ArrowWriter::try_new(sink, schema.clone(), Some(properties)).map_err(parquet_error)?;
        Ok(Self {
            writer,
            schema,
            rows: 0,
        })
    }
}

fn parquet_error(error: parquet::errors::ParquetError) -> EncodeError {
    EncodeError::Parquet(error.to_string())
}

impl BatchEncoder for ParquetEncoder {
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), EncodeError> {
        check_batch_schema(&self.schema, batch)?;
        self.writer.write(batch).map_err(parquet_error)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn finish(self: Box<Self>) -> Result<(), EncodeError> {
        // Flushes the last row group and writes the footer, then hands the sink back.
        let sink = self.writer.into_inner().map_err(parquet_error)?;
        sink.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::RecordBatch;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;

    use super::super::test_support::{mixed_batch, mixed_schema};
    use super::super::{BatchEncoder, ParquetCodec, encoder};
    use crate::domain::connector::FileFormat;
    use crate::export::sink::MemorySink;

    fn encode(codec: ParquetCodec, batches: &[RecordBatch]) -> Bytes {
        let sink = MemorySink::default();
        let mut encoder: Box<dyn BatchEncoder> = encoder(
            &FileFormat::Parquet,
            codec,
            mixed_schema(),
            Box::new(sink.clone()),
        )
        .expect("encoder");
        for batch in batches {
            encoder.write_batch(batch).expect("written");
        }
        assert!(!sink.is_finished());
        encoder.finish().expect("finished");
        assert!(sink.is_finished(), "finish() finishes the sink");
        Bytes::from(sink.contents())
    }

    #[test]
    fn round_trips_with_schema_values_statistics_and_codec() {
        let cases = [
            (ParquetCodec::Snappy, "SNAPPY"),
            (ParquetCodec::Gzip, "GZIP"),
            (ParquetCodec::Zstd, "ZSTD"),
        ];
        for (codec, codec_name) in cases {
            let file = encode(codec, &[mixed_batch(), mixed_batch()]);
            let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("a parquet file");
            let metadata = reader.metadata().clone();
            assert_eq!(reader.schema(), &mixed_schema(), "{codec_name}");
            let batches: Vec<RecordBatch> = reader
                .build()
                .expect("reader")
                .collect::<Result<_, _>>()
                .expect("batches");
            assert_eq!(batches.len(), 1, "six rows read as one batch");
            assert_eq!(
                batches[0].slice(0, 3),
                mixed_batch(),
                "{codec_name}: values"
            );
            assert_eq!(
                batches[0].slice(3, 3),
                mixed_batch(),
                "{codec_name}: values"
            );
            assert_eq!(metadata.file_metadata().num_rows(), 6);
            for row_group in metadata.row_groups() {
                for column in row_group.columns() {
                    let compression = column.compression();
                    let name = match compression {
                        Compression::SNAPPY => "SNAPPY",
                        Compression::GZIP(_) => "GZIP",
                        Compression::ZSTD(_) => "ZSTD",
                        _ => "other",
                    };
                    assert_eq!(name, codec_name, "{}", column.column_path());
                    let statistics = column.statistics().expect("chunk statistics");
                    assert_eq!(
                        statistics.null_count_opt(),
                        Some(2),
                        "{}",
                        column.column_path()
                    );
                    assert!(
                        column.column_index_offset().is_some(),
                        "{}: page-level statistics (a column index)",
                        column.column_path()
                    );
                }
            }
        }
    }

    #[test]
    fn an_empty_file_has_the_schema_and_no_rows() {
        let file = encode(ParquetCodec::Snappy, &[]);
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("a parquet file");
        assert_eq!(reader.schema(), &mixed_schema());
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
        let rows: usize = reader
            .build()
            .expect("reader")
            .map(|b| b.expect("batch").num_rows())
            .sum();
        assert_eq!(rows, 0);
    }

    #[test]
    fn row_groups_are_bounded() {
        assert_eq!(super::ROW_GROUP_ROWS, 131_072);
        let many: Vec<RecordBatch> = (0..50_000).map(|_| mixed_batch()).collect();
        let file = encode(ParquetCodec::Snappy, &many);
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("a parquet file");
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [131_072, 18_928]);
    }
}
