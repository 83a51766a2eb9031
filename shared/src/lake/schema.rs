//! The column types a lake table may hold, and the schema as the catalog stores it: a JSON list
//! of `{name, type, nullable}` with types `string`, `int64`, `float64`, `decimal(p,s)`,
//! `boolean`, `date`, `timestamp` (docs/architecture.md, "The lake").

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// Time zone of every lake timestamp: instants in UTC, microseconds.
pub const TIMESTAMP_TIME_ZONE: &str = "UTC";
/// The widest decimal Arrow's `Decimal128` holds.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    /// Precision 1..=38, scale 0..=precision.
    Decimal {
        precision: u8,
        scale: i8,
    },
    Boolean,
    /// Days since 1970-01-01.
    Date,
    /// Microseconds since the epoch, UTC.
    Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "column {column:?} has Arrow type {data_type}, which the lake does not store; use Utf8, Int64, Float64, Decimal128(p,s), Boolean, Date32 or Timestamp(Microsecond, \"UTC\")"
    )]
    UnsupportedType { column: String, data_type: String },
    #[error(
        "column type {0:?} is unknown; expected string, int64, float64, decimal(p,s), boolean, date or timestamp"
    )]
    UnknownType(String),
    #[error("the schema text is not a JSON list of {{name, type, nullable}}: {0}")]
    Json(String),
    #[error("column name {0:?} appears twice")]
    DuplicateColumn(String),
    #[error("a table needs at least one column")]
    NoColumns,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(TIMESTAMP_TIME_ZONE.into()))
            }
        }
    }

    /// The lake type of an Arrow type; `None` for types the lake does not store (a timestamp
    /// without a zone or in another unit among them: its instant would be ambiguous).
    pub fn from_data_type(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => ColumnType::String,
            DataType::Int64 => ColumnType::Int64,
            DataType::Float64 => ColumnType::Float64,
            DataType::Decimal128(precision, scale) if valid_decimal(*precision, *scale) => {
                ColumnType::Decimal {
                    precision: *precision,
                    scale: *scale,
                }
            }
            DataType::Boolean => ColumnType::Boolean,
            DataType::Date32 => ColumnType::Date,
            DataType::Timestamp(TimeUnit::Microsecond, Some(zone))
                if zone.as_ref() == TIMESTAMP_TIME_ZONE =>
            {
                ColumnType::Timestamp
            }
            _ => return None,
        })
    }
}

fn valid_decimal(precision: u8, scale: i8) -> bool {
    (1..=MAX_DECIMAL_PRECISION).contains(&precision) && scale >= 0 && scale as u8 <= precision
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Int64 => f.write_str("int64"),
            ColumnType::Float64 => f.write_str("float64"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = SchemaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || SchemaError::UnknownType(text.to_owned());
        Ok(match text {
            "string" => ColumnType::String,
            "int64" => ColumnType::Int64,
            "float64" => ColumnType::Float64,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            other => {
                let inner = other
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(unknown)?;
                let (precision, scale) = inner.split_once(',').ok_or_else(unknown)?;
                let precision: u8 = precision.parse().map_err(|_| unknown())?;
                let scale: i8 = scale.parse().map_err(|_| unknown())?;
                if !valid_decimal(precision, scale) {
                    return Err(unknown());
                }
                ColumnType::Decimal { precision, scale }
            }
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredColumn {
    name: String,
    #[serde(rename = "type")]
    column_type: String,
    nullable: bool,
}

/// Checks that every column has a lake type and the names are distinct; the schema returned
/// carries no metadata, so that two files of the same columns compare equal.
pub fn lake_schema(schema: &Schema) -> Result<SchemaRef, SchemaError> {
    if schema.fields().is_empty() {
        return Err(SchemaError::NoColumns);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column_type = ColumnType::from_data_type(field.data_type()).ok_or_else(|| {
            SchemaError::UnsupportedType {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            }
        })?;
        if fields.iter().any(|f: &Field| f.name() == field.name()) {
            return Err(SchemaError::DuplicateColumn(field.name().clone()));
        }
        fields.push(Field::new(
            field.name(),
            column_type.data_type(),
            field.is_nullable(),
        ));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// The catalog's text of a schema: `[{"name":…,"type":…,"nullable":…},…]`.
pub fn schema_to_json(schema: &Schema) -> Result<String, SchemaError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column_type = ColumnType::from_data_type(field.data_type()).ok_or_else(|| {
                SchemaError::UnsupportedType {
                    column: field.name().clone(),
                    data_type: field.data_type().to_string(),
                }
            })?;
            Ok(StoredColumn {
                name: field.name().clone(),
                column_type: column_type.to_string(),
                nullable: field.is_nullable(),
            })
        })
        .collect::<Result<Vec<_>, SchemaError>>()?;
    serde_json::to_string(&columns).map_err(|e| SchemaError::Json(e.to_string()))
}

/// Reads the catalog's text of a schema.
pub fn schema_from_json(text: &str) -> Result<SchemaRef, SchemaError> {
    let columns: Vec<StoredColumn> =
        serde_json::from_str(text).map_err(|e| SchemaError::Json(e.to_string()))?;
    let fields = columns
        .into_iter()
        .map(|c| {
            let column_type: ColumnType = c.column_type.parse()?;
            Ok(Field::new(c.name, column_type.data_type(), c.nullable))
        })
        .collect::<Result<Vec<_>, SchemaError>>()?;
    lake_schema(&Schema::new(fields))
}

/// Whether parts of schema `next` may follow parts of schema `table` in one table: the table's
/// columns first, in their order, with their types and nullability, then only nullable new
/// columns. This is the shape the ingest parser gives a later file (docs/architecture.md,
/// "Ingest"); anything else would leave readers two types for one column.
pub fn extends(table: &Schema, next: &Schema) -> bool {
    let (old, new) = (table.fields(), next.fields());
    old.len() <= new.len()
        && old.iter().zip(new.iter()).all(|(a, b)| {
            a.name() == b.name()
                && a.data_type() == b.data_type()
                && a.is_nullable() == b.is_nullable()
        })
        && new[old.len()..].iter().all(|f| f.is_nullable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_extends_its_table_only_by_appending_nullable_columns() {
        let field =
            |name: &str, data_type: DataType, nullable: bool| Field::new(name, data_type, nullable);
        let table = Schema::new(vec![
            field("id", DataType::Int64, false),
            field("total", DataType::Float64, true),
        ]);
        let with = |extra: Vec<Field>| {
            let mut fields: Vec<Field> = table.fields().iter().map(|f| (**f).clone()).collect();
            fields.extend(extra);
            Schema::new(fields)
        };
        let cases: Vec<(&str, Schema, bool)> = vec![
            ("the same columns", table.clone(), true),
            (
                "a new nullable column",
                with(vec![field("note", DataType::Utf8, true)]),
                true,
            ),
            (
                "a new required column",
                with(vec![field("note", DataType::Utf8, false)]),
                false,
            ),
            (
                "another type",
                Schema::new(vec![
                    field("id", DataType::Int64, false),
                    field("total", DataType::Utf8, true),
                ]),
                false,
            ),
            (
                "other nullability",
                Schema::new(vec![
                    field("id", DataType::Int64, true),
                    field("total", DataType::Float64, true),
                ]),
                false,
            ),
            (
                "a column missing",
                Schema::new(vec![field("id", DataType::Int64, false)]),
                false,
            ),
            (
                "the columns reordered",
                Schema::new(vec![
                    field("total", DataType::Float64, true),
                    field("id", DataType::Int64, false),
                ]),
                false,
            ),
            (
                "a column renamed",
                Schema::new(vec![
                    field("id", DataType::Int64, false),
                    field("amount", DataType::Float64, true),
                ]),
                false,
            ),
        ];
        for (case, next, expected) in cases {
            assert_eq!(extends(&table, &next), expected, "{case}");
        }
    }

    #[test]
    fn column_types_read_and_print_the_same() {
        let cases: &[(&str, ColumnType, DataType)] = &[
            ("string", ColumnType::String, DataType::Utf8),
            ("int64", ColumnType::Int64, DataType::Int64),
            ("float64", ColumnType::Float64, DataType::Float64),
            (
                "decimal(38,10)",
                ColumnType::Decimal {
                    precision: 38,
                    scale: 10,
                },
                DataType::Decimal128(38, 10),
            ),
            (
                "decimal(12,2)",
                ColumnType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                DataType::Decimal128(12, 2),
            ),
            (
                "decimal(1,0)",
                ColumnType::Decimal {
                    precision: 1,
                    scale: 0,
                },
                DataType::Decimal128(1, 0),
            ),
            ("boolean", ColumnType::Boolean, DataType::Boolean),
            ("date", ColumnType::Date, DataType::Date32),
            (
                "timestamp",
                ColumnType::Timestamp,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
        ];
        for (text, column_type, data_type) in cases {
            assert_eq!(
                text.parse::<ColumnType>().as_ref(),
                Ok(column_type),
                "{text}"
            );
            assert_eq!(column_type.to_string(), *text);
            assert_eq!(column_type.data_type(), *data_type, "{text}");
            assert_eq!(
                ColumnType::from_data_type(data_type),
                Some(*column_type),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_type_texts_are_refused() {
        for text in [
            "",
            "String",
            "int32",
            "decimal",
            "decimal(39,2)",
            "decimal(0,0)",
            "decimal(10,11)",
            "decimal(10,-1)",
            "decimal(10, 2)",
            "decimal(10,2",
            "timestamp(us)",
        ] {
            assert_eq!(
                text.parse::<ColumnType>(),
                Err(SchemaError::UnknownType(text.to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn arrow_types_outside_the_lake_are_refused() {
        for data_type in [
            DataType::Int32,
            DataType::Float32,
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Date64,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            DataType::Decimal128(10, -2),
            DataType::Binary,
        ] {
            assert_eq!(ColumnType::from_data_type(&data_type), None, "{data_type}");
            let schema = Schema::new(vec![Field::new("c", data_type.clone(), true)]);
            let error = lake_schema(&schema).expect_err("refused");
            assert!(error.to_string().contains("column \"c\""), "{error}");
        }
    }

    #[test]
    fn schemas_round_trip_through_the_catalog_text() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name, \"quoted\" 東京", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(38, 10), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let text = schema_to_json(&schema).expect("supported");
        assert_eq!(
            text,
            r#"[{"name":"id","type":"int64","nullable":false},{"name":"name, \"quoted\" 東京","type":"string","nullable":true},{"name":"amount","type":"decimal(38,10)","nullable":true},{"name":"at","type":"timestamp","nullable":true}]"#
        );
        assert_eq!(*schema_from_json(&text).expect("reads"), schema);
    }

    #[test]
    fn bad_catalog_texts_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("", "not a JSON list"),
            ("{}", "not a JSON list"),
            ("[]", "at least one column"),
            (r#"[{"name":"a","type":"int64"}]"#, "not a JSON list"),
            (
                r#"[{"name":"a","type":"int64","nullable":true,"x":1}]"#,
                "not a JSON list",
            ),
            (
                r#"[{"name":"a","type":"int32","nullable":true}]"#,
                "unknown",
            ),
            (
                r#"[{"name":"a","type":"int64","nullable":true},{"name":"a","type":"date","nullable":true}]"#,
                "appears twice",
            ),
        ];
        for (text, message) in cases {
            let error = schema_from_json(text).expect_err(text);
            assert!(error.to_string().contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn lake_schema_drops_metadata() {
        let schema = Schema::new(vec![Field::new("a", DataType::Int64, true)]).with_metadata(
            std::collections::HashMap::from([("k".to_owned(), "v".to_owned())]),
        );
        assert!(lake_schema(&schema).expect("ok").metadata().is_empty());
    }
}
