//! A lake part as a file: Parquet, zstd inside, statistics on, written from Arrow batches and
//! read back as batches checked against the catalog's schema. Pure (no I/O), so writers can
//! encode on worker threads and the adapter only moves bytes.

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::schema::lake_schema;
use super::{LakeError, PartBatches, schema_id};

/// Rows per row group: a part (≤ ~16 MiB) holds a few, so readers can skip by statistics
/// without a footer that outweighs the data.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// A part encoded and ready to upload.
#[derive(Debug, Clone)]
pub struct EncodedPart {
    pub bytes: Bytes,
    pub rows: u64,
    /// The batches' schema as the lake keeps it (no metadata).
    pub schema: SchemaRef,
}

/// Encodes `batches` as one Parquet file. All batches must have the same columns, each of a
/// lake type (`super::schema::ColumnType`); `table` names the table in errors.
pub fn encode_part(table: &str, batches: &[RecordBatch]) -> Result<EncodedPart, LakeError> {
    let invalid = |reason: String| LakeError::Invalid {
        table: table.to_owned(),
        reason,
    };
    let first = batches
        .first()
        .ok_or_else(|| invalid("a part needs at least one batch".to_owned()))?;
    let schema = lake_schema(&first.schema()).map_err(|e| invalid(e.to_string()))?;
    let id = schema_id(&schema);
    for (index, batch) in batches.iter().enumerate().skip(1) {
        let other = lake_schema(&batch.schema()).map_err(|e| invalid(e.to_string()))?;
        if schema_id(&other) != id {
            return Err(invalid(format!(
                "batch {index} has columns [{}], batch 0 has [{id}]; one part holds one schema",
                schema_id(&other)
            )));
        }
    }
    let properties = part_properties(&schema);
    let encode_error = |e: parquet::errors::ParquetError| {
        invalid(format!("the batches could not be encoded as Parquet: {e}"))
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties)).map_err(encode_error)?;
    let mut rows = 0u64;
    for batch in batches {
        // Rebuilt on the lake schema so that metadata on the caller's schema is not stored.
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|e| invalid(format!("a batch does not fit its schema: {e}")))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(encode_error)?;
    }
    let bytes = writer.into_inner().map_err(encode_error)?;
    Ok(EncodedPart {
        bytes: Bytes::from(bytes),
        rows,
        schema,
    })
}

/// Writes one part from batches as they come, so a writer holds one part's encoded bytes and
/// one row group in progress, never the rows of a whole file.
pub struct PartEncoder {
    table: String,
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl PartEncoder {
    /// A part of `schema` (a lake schema: `lake_schema` of it is itself).
    pub fn new(table: &str, schema: &SchemaRef) -> Result<Self, LakeError> {
        Self::with_capacity(table, schema, 0)
    }

    /// As [`PartEncoder::new`], with room for `bytes` of output reserved up front: a part cut
    /// at a known size is then written without the buffer doubling on the way (a doubling
    /// holds the old and the new buffer at once, the peak of an ingest's memory).
    pub fn with_capacity(table: &str, schema: &SchemaRef, bytes: usize) -> Result<Self, LakeError> {
        let invalid = |reason: String| LakeError::Invalid {
            table: table.to_owned(),
            reason,
        };
        let schema = lake_schema(schema).map_err(|e| invalid(e.to_string()))?;
        let writer = ArrowWriter::try_new(
            Vec::with_capacity(bytes),
            schema.clone(),
            Some(part_properties(&schema)),
        )
        .map_err(|e| invalid(format!("a Parquet writer could not start: {e}")))?;
        Ok(Self {
            table: table.to_owned(),
            schema,
            writer,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        let batch =
            RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec()).map_err(|e| {
                LakeError::Invalid {
                    table: self.table.clone(),
                    reason: format!("a batch does not fit the part's schema: {e}"),
                }
            })?;
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch).map_err(|e| LakeError::Invalid {
            table: self.table.clone(),
            reason: format!("the batch could not be encoded as Parquet: {e}"),
        })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes written so far plus the row group in progress (an estimate of the part's size).
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    pub fn finish(self) -> Result<EncodedPart, LakeError> {
        let table = self.table;
        let bytes = self.writer.into_inner().map_err(|e| LakeError::Invalid {
            table,
            reason: format!("the part could not be finished: {e}"),
        })?;
        Ok(EncodedPart {
            bytes: Bytes::from(bytes),
            rows: self.rows,
            schema: self.schema,
        })
    }
}

/// The writer settings of every part: zstd, page statistics, row groups of [`ROW_GROUP_ROWS`],
/// version 2 data pages, and a dictionary only for text columns. Dictionaries pay for repeated
/// text (regions, channels, SKUs); numbers and timestamps rarely repeat enough, and building a
/// dictionary that is then abandoned halved the encoder's speed (`scripts/bench ingest`).
/// Without one, version 2 encodes integers and timestamps as deltas, which shrank the sample
/// parts by a third. Parts are read only by this crate's reader (`decode_part`); what customers
/// receive is written by the export encoders with their own settings.
pub fn part_properties(schema: &SchemaRef) -> WriterProperties {
    let mut properties = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false);
    for field in schema.fields() {
        if field.data_type() == &DataType::Utf8 {
            properties = properties
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
        }
    }
    properties.build()
}

/// Decodes a part file in batches of at most `batch_rows` rows (at least 1), after checking
/// that the file has the catalog's schema and row count; `key` names the part in errors.
pub fn decode_part(
    key: &str,
    bytes: Bytes,
    expected_schema: &SchemaRef,
    expected_rows: u64,
    batch_rows: usize,
) -> Result<PartBatches, LakeError> {
    let corrupt = |reason: String| LakeError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| corrupt(format!("not a readable Parquet file: {e}")))?;
    let file_schema = lake_schema(builder.schema())
        .map_err(|e| corrupt(format!("the file's schema is not a lake schema: {e}")))?;
    let (found, expected) = (schema_id(&file_schema), schema_id(expected_schema));
    if found != expected {
        return Err(corrupt(format!(
            "the file has columns [{found}], the catalog records [{expected}]"
        )));
    }
    let file_rows = builder.metadata().file_metadata().num_rows();
    if u64::try_from(file_rows).ok() != Some(expected_rows) {
        return Err(corrupt(format!(
            "the file holds {file_rows} rows, the catalog records {expected_rows}"
        )));
    }
    let reader = builder
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|e| corrupt(format!("the file cannot be read: {e}")))?;
    let key = key.to_owned();
    let schema = expected_schema.clone();
    Ok(Box::new(reader.map(move |batch| {
        let batch = batch.map_err(|e| LakeError::Corrupt {
            key: key.clone(),
            reason: format!("a row group cannot be decoded: {e}"),
        })?;
        // The file's schema carries Arrow metadata; hand out the catalog's, as appended.
        RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| {
            LakeError::Corrupt {
                key: key.clone(),
                reason: format!("a batch does not fit the catalog's schema: {e}"),
            }
        })
    })))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::lake::seed::{self, SeedTable};

    #[test]
    fn text_columns_get_a_dictionary_and_the_rest_version_2_pages() {
        use parquet::basic::{Encoding, PageType};
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("region", DataType::Utf8, true),
        ]));
        let regions = ["north", "south", "east", "west"];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..10_000)),
                Arc::new(StringArray::from_iter_values(
                    (0..10_000).map(|i| regions[i % 4]),
                )),
            ],
        )
        .unwrap();
        let part = encode_part("orders", &[batch]).expect("encodes");
        let reader = SerializedFileReader::new(part.bytes.clone()).expect("a Parquet file");
        let row_group = reader.metadata().row_group(0);
        let encodings = |column: usize| row_group.column(column).encodings().collect::<Vec<_>>();
        assert!(
            !encodings(0).contains(&Encoding::RLE_DICTIONARY),
            "{:?}",
            encodings(0)
        );
        assert!(
            encodings(0).contains(&Encoding::DELTA_BINARY_PACKED),
            "{:?}",
            encodings(0)
        );
        assert!(
            encodings(1).contains(&Encoding::RLE_DICTIONARY),
            "{:?}",
            encodings(1)
        );
        let mut pages = reader
            .get_row_group(0)
            .unwrap()
            .get_column_page_reader(0)
            .unwrap();
        let page = pages.get_next_page().unwrap().expect("a page");
        assert_eq!(page.page_type(), PageType::DATA_PAGE_V2);
    }

    #[test]
    fn every_seed_table_round_trips_through_parquet() {
        for table in SeedTable::ALL {
            let batches = [
                seed::batch(table, 7, 0, 300),
                seed::batch(table, 7, 300, 250),
            ];
            let part = encode_part(table.name(), &batches).expect("encodes");
            assert_eq!(part.rows, 550);
            assert_eq!(part.schema, seed::schema(table));
            assert_eq!(&part.bytes[..4], b"PAR1");
            let decoded: Vec<RecordBatch> =
                decode_part("k", part.bytes.clone(), &part.schema, 550, 100)
                    .expect("opens")
                    .collect::<Result<_, _>>()
                    .expect("decodes");
            assert!(decoded.iter().all(|b| b.num_rows() <= 100));
            let mut offset = 0;
            for batch in &decoded {
                // Seed rows depend on their index alone, so a slice regenerates on its own.
                let expected = seed::batch(table, 7, offset as u64, batch.num_rows());
                assert_eq!(*batch, expected, "{table:?} at row {offset}");
                offset += batch.num_rows();
            }
            assert_eq!(offset, 550);
        }
    }

    fn ids(values: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    #[test]
    fn encode_refuses_what_a_part_cannot_hold() {
        let strings = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["a"]))],
        )
        .expect("batch");
        let int32 = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)])),
            vec![Arc::new(arrow_array::Int32Array::from(vec![1]))],
        )
        .expect("batch");
        let cases: Vec<(Vec<RecordBatch>, &str)> = vec![
            (vec![], "at least one batch"),
            (vec![ids(&[Some(1)]), strings], "one part holds one schema"),
            (vec![int32], "does not store"),
        ];
        for (batches, message) in cases {
            let error = encode_part("sales", &batches).expect_err(message);
            assert!(matches!(error, LakeError::Invalid { .. }), "{error}");
            assert!(error.to_string().contains(message), "{error}");
            assert!(error.to_string().contains("lake table sales"), "{error}");
        }
    }

    #[test]
    fn empty_batches_make_an_empty_part() {
        let part = encode_part("t", &[ids(&[])]).expect("encodes");
        assert_eq!(part.rows, 0);
        let batches: Vec<_> = decode_part("k", part.bytes, &part.schema, 0, 10)
            .expect("opens")
            .collect::<Result<_, _>>()
            .expect("decodes");
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    }

    #[test]
    fn decode_reports_a_file_unlike_its_catalog_entry() {
        let part = encode_part("t", &[ids(&[Some(1), None, Some(-3)])]).expect("encodes");
        let other_schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let renamed = Arc::new(Schema::new(vec![Field::new("key", DataType::Int64, true)]));
        let truncated = part.bytes.slice(..part.bytes.len() - 10);
        let cases: Vec<(Bytes, SchemaRef, u64, &str)> = vec![
            (
                Bytes::from_static(b"not parquet"),
                part.schema.clone(),
                3,
                "not a readable Parquet file",
            ),
            (
                truncated,
                part.schema.clone(),
                3,
                "not a readable Parquet file",
            ),
            (
                part.bytes.clone(),
                other_schema,
                3,
                "the catalog records [id:Int64:notnull]",
            ),
            (
                part.bytes.clone(),
                renamed,
                3,
                "the file has columns [id:Int64:null]",
            ),
            (
                part.bytes.clone(),
                part.schema.clone(),
                4,
                "the file holds 3 rows, the catalog records 4",
            ),
        ];
        for (bytes, schema, rows, message) in cases {
            let error = match decode_part("tenants/a/t/x.parquet", bytes, &schema, rows, 10) {
                Ok(_) => panic!("{message}: opened"),
                Err(e) => e,
            };
            assert!(matches!(error, LakeError::Corrupt { .. }), "{error}");
            assert!(error.to_string().contains(message), "{error}");
            assert!(
                error.to_string().contains("tenants/a/t/x.parquet"),
                "{error}"
            );
        }
    }

    #[test]
    fn batch_rows_of_zero_reads_one_row_at_a_time() {
        let part = encode_part("t", &[ids(&[Some(1), Some(2)])]).expect("encodes");
        let sizes: Vec<usize> = decode_part("k", part.bytes, &part.schema, 2, 0)
            .expect("opens")
            .map(|b| b.expect("decodes").num_rows())
            .collect();
        assert_eq!(sizes, [1, 1]);
    }

    #[test]
    fn caller_metadata_is_not_stored() {
        let batch = ids(&[Some(1)]);
        let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(
            std::collections::HashMap::from([("origin".to_owned(), "ingest".to_owned())]),
        ));
        let batch = RecordBatch::try_new(schema, batch.columns().to_vec()).expect("batch");
        let part = encode_part("t", &[batch]).expect("encodes");
        let decoded = decode_part("k", part.bytes, &part.schema, 1, 10)
            .expect("opens")
            .next()
            .expect("one batch")
            .expect("decodes");
        assert!(decoded.schema().metadata().is_empty());
    }
}
