//! Deterministic sample tables (retail data with every tricky value) for the demo, tests and benchmark.
//!
//! Every cell is a function of `(table, seed, row, column)` alone, through splitmix64 indexed by
//! row (written out here, so no crate upgrade can change the data): the same row range gives the
//! same rows however it is split into batches, and workers can generate parts independently.
//!
//! What the encoders must survive comes at fixed rates: every column is null on one row in
//! [`NULL_PERIOD`]; string columns take the next of [`TRICKY_STRINGS`] on one row in
//! [`TRICKY_PERIOD`]; numeric, date and timestamp columns take the next of their edge values
//! (extremes, negatives, zero, the epoch, a leap day) on one row in [`EDGE_PERIOD`].

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};

use super::schema::{ColumnType, TIMESTAMP_TIME_ZONE};

/// One row in this many is null, in every column (shifted per column, so a row is rarely null
/// throughout).
pub const NULL_PERIOD: u64 = 29;
/// One row in this many holds a tricky string, in every string column.
pub const TRICKY_PERIOD: u64 = 5;
/// One row in this many holds an edge value, in every other column.
pub const EDGE_PERIOD: u64 = 11;

/// The strings that break naive CSV, TSV, PSV and JSON writers and readers.
pub const TRICKY_STRINGS: &[&str] = &[
    ",",
    "\t",
    "|",
    "\"",
    "'",
    "\n",
    "\r",
    "\r\n",
    " leading space",
    "trailing space ",
    "  both sides  ",
    "back\\slash",
    "\\",
    "NULL",
    "\\N",
    "Café Zürich",
    "東京",
    "🛒",
    "",
    "a,b|c\td",
    "say \"hi\", then 'bye'",
    "line one\nline two\r\nline three",
    "emoji 🛒 in 東京, \"quoted\"",
];

const INT64_EDGES: &[i64] = &[0, -1, 1, i64::MIN, i64::MAX, -987_654_321];
const FLOAT64_EDGES: &[f64] = &[0.0, -0.0, 0.1, -123.456, 1e-300, f64::MAX, -2.5e-7];
/// Unscaled values of `decimal(12,2)`: ±9 999 999 999.99, ±0.01, zero.
const DECIMAL_12_2_EDGES: &[i128] = &[999_999_999_999, -999_999_999_999, 1, -1, 0, -5_050];
/// Unscaled values of `decimal(38,10)`: ±(10^38 − 1), ±10^-10, zero, and 28 integer digits.
const DECIMAL_38_10_EDGES: &[i128] = &[
    99_999_999_999_999_999_999_999_999_999_999_999_999,
    -99_999_999_999_999_999_999_999_999_999_999_999_999,
    1,
    -1,
    0,
    -12_345_678_901_234_567_890_123_456_789,
];
/// Days since 1970-01-01: the epoch, the day before, 2000-02-29, 9999-12-31.
const DATE_EDGES: &[i32] = &[0, -1, 11_016, 2_932_896];
/// Microseconds since the epoch: the epoch, one before it, 2000-02-29T23:59:59.999999Z,
/// 2038-01-19T03:14:08Z (past 32-bit seconds).
const TIMESTAMP_EDGES: &[i64] = &[0, -1, 951_868_799_999_999, 2_147_483_648_000_000];

const CITIES: &[&str] = &[
    "Lisbon",
    "Zürich",
    "São Paulo",
    "Kraków",
    "Reykjavík",
    "Osaka",
    "Nairobi",
    "Montréal",
    "Austin",
    "Malmö",
];
const CATEGORIES: &[&str] = &[
    "produce",
    "dairy",
    "bakery",
    "frozen",
    "beverages",
    "household",
    "snacks",
    "deli",
];
const WORDS: &[&str] = &[
    "fresh", "organic", "large", "family", "pack", "classic", "spicy", "sweet", "crunchy", "light",
    "whole", "grain", "roast", "blend", "extra", "mini", "jumbo", "local", "smoked", "citrus",
    "vanilla", "dark", "golden", "crème",
];

/// 2020-01-01T00:00:00Z in microseconds, and a span of about five years after it.
const TIMESTAMP_BASE: i64 = 1_577_836_800_000_000;
const TIMESTAMP_SPAN: u64 = 5 * 365 * 86_400 * 1_000_000;
/// 1990-01-01 in days, and forty years after it.
const DATE_BASE: i32 = 7_305;
const DATE_SPAN: u64 = 40 * 365;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeedTable {
    Sales,
    Inventory,
    Stores,
    Products,
}

impl SeedTable {
    pub const ALL: [SeedTable; 4] = [
        SeedTable::Sales,
        SeedTable::Inventory,
        SeedTable::Stores,
        SeedTable::Products,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SeedTable::Sales => "sales",
            SeedTable::Inventory => "inventory",
            SeedTable::Stores => "stores",
            SeedTable::Products => "products",
        }
    }

    /// Distinct per table, so two tables of one seed do not share their random streams.
    fn salt(self) -> u64 {
        match self {
            SeedTable::Sales => 0x5a1e_5a1e_0000_0001,
            SeedTable::Inventory => 0x1173_0000_0000_0002,
            SeedTable::Stores => 0x5704_e500_0000_0003,
            SeedTable::Products => 0x9a0d_0c75_0000_0004,
        }
    }

    fn columns(self) -> &'static [Column] {
        match self {
            SeedTable::Sales => SALES_COLUMNS,
            SeedTable::Inventory => INVENTORY_COLUMNS,
            SeedTable::Stores => STORES_COLUMNS,
            SeedTable::Products => PRODUCTS_COLUMNS,
        }
    }
}

const SALES_COLUMNS: &[Column] = &[
    Column::new("sale_id", Generator::RowId),
    Column::new("store_id", Generator::Reference(500)),
    Column::new("product_id", Generator::Reference(20_000)),
    Column::new("sold_at", Generator::Instant),
    Column::new("sale_date", Generator::Day),
    Column::new("quantity", Generator::Count(50)),
    Column::new("unit_price", Generator::Price),
    Column::new("total", Generator::Amount),
    Column::new("discount", Generator::Ratio),
    Column::new("paid", Generator::Flag),
    Column::new("note", Generator::Sentence),
];
const INVENTORY_COLUMNS: &[Column] = &[
    Column::new("store_id", Generator::Reference(500)),
    Column::new("product_id", Generator::Reference(20_000)),
    Column::new("counted_on", Generator::Day),
    Column::new("on_hand", Generator::Count(1_000)),
    Column::new("unit_cost", Generator::Amount),
    Column::new("list_price", Generator::Price),
    Column::new("shelf", Generator::Code("SH")),
    Column::new("reorder", Generator::Flag),
    Column::new("fill_ratio", Generator::Ratio),
    Column::new("updated_at", Generator::Instant),
];
const STORES_COLUMNS: &[Column] = &[
    Column::new("store_id", Generator::RowId),
    Column::new("name", Generator::Sentence),
    Column::new("city", Generator::Word(CITIES)),
    Column::new("opened_on", Generator::Day),
    Column::new("floor_area", Generator::Ratio),
    Column::new("open", Generator::Flag),
    Column::new("staff", Generator::Count(200)),
    Column::new("rent", Generator::Price),
    Column::new("manager_note", Generator::Sentence),
    Column::new("updated_at", Generator::Instant),
];
const PRODUCTS_COLUMNS: &[Column] = &[
    Column::new("product_id", Generator::RowId),
    Column::new("sku", Generator::Code("SKU")),
    Column::new("name", Generator::Sentence),
    Column::new("category", Generator::Word(CATEGORIES)),
    Column::new("price", Generator::Price),
    Column::new("cost", Generator::Amount),
    Column::new("weight_kg", Generator::Ratio),
    Column::new("launched_on", Generator::Day),
    Column::new("active", Generator::Flag),
    Column::new("stock", Generator::Count(5_000)),
    Column::new("description", Generator::Sentence),
    Column::new("updated_at", Generator::Instant),
];

impl FromStr for SeedTable {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        SeedTable::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                format!("no sample table {name:?}; choose from sales, inventory, stores, products")
            })
    }
}

#[derive(Debug, Clone, Copy)]
enum Generator {
    /// `first_row + index + 1`: a key unique within the table.
    RowId,
    /// 1..=n, a key of another table.
    Reference(u64),
    /// 0..n.
    Count(u64),
    /// `decimal(12,2)`.
    Price,
    /// `decimal(38,10)`.
    Amount,
    /// `float64`.
    Ratio,
    Flag,
    Day,
    Instant,
    /// One of the words.
    Word(&'static [&'static str]),
    /// `<prefix>-<five digits>`.
    Code(&'static str),
    /// Two to four words and a number.
    Sentence,
}

impl Generator {
    fn column_type(self) -> ColumnType {
        match self {
            Generator::RowId | Generator::Reference(_) | Generator::Count(_) => ColumnType::Int64,
            Generator::Price => ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            Generator::Amount => ColumnType::Decimal {
                precision: 38,
                scale: 10,
            },
            Generator::Ratio => ColumnType::Float64,
            Generator::Flag => ColumnType::Boolean,
            Generator::Day => ColumnType::Date,
            Generator::Instant => ColumnType::Timestamp,
            Generator::Word(_) | Generator::Code(_) | Generator::Sentence => ColumnType::String,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    generator: Generator,
}

impl Column {
    const fn new(name: &'static str, generator: Generator) -> Self {
        Self { name, generator }
    }
}

/// The table's columns, every one nullable.
pub fn schema(table: SeedTable) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns()
            .iter()
            .map(|c| Field::new(c.name, c.generator.column_type().data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64's increment.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The random stream of one column: its value at row `r` is splitmix64's `r`-th output from a
/// state derived from the seed, the table and the column.
#[derive(Clone, Copy)]
struct ColumnStream {
    state: u64,
}

impl ColumnStream {
    fn new(table: SeedTable, seed: u64, column: usize) -> Self {
        Self {
            state: mix(seed ^ table.salt() ^ mix(column as u64 + 1)),
        }
    }

    fn at(self, row: u64) -> u64 {
        mix(self.state.wrapping_add(row.wrapping_mul(GOLDEN_GAMMA)))
    }
}

/// What a cell holds before its generator's ordinary value.
enum Special {
    Null,
    /// The `n`-th special value of the column (tricky string or edge value).
    Nth(usize),
    None,
}

fn special(row: u64, column: usize, period: u64) -> Special {
    let column = column as u64;
    if (row + column * 7).is_multiple_of(NULL_PERIOD) {
        Special::Null
    } else if row % period == column % period {
        // Offset by the column so columns of one row do not all take the same value.
        Special::Nth(((row / period) + column) as usize)
    } else {
        Special::None
    }
}

fn pick<T: Copy>(values: &[T], n: usize) -> T {
    values[n % values.len()]
}

/// Rows `first_row..first_row + rows` of `table` generated from `seed`.
pub fn batch(table: SeedTable, seed: u64, first_row: u64, rows: usize) -> RecordBatch {
    let columns: Vec<ArrayRef> = table
        .columns()
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let stream = ColumnStream::new(table, seed, index);
            generate(column.generator, stream, index, first_row, rows)
        })
        .collect();
    RecordBatch::try_new(schema(table), columns)
        .expect("the generators build the columns of the table's schema")
}

fn generate(
    generator: Generator,
    stream: ColumnStream,
    column: usize,
    first_row: u64,
    rows: usize,
) -> ArrayRef {
    let row_numbers = first_row..first_row + rows as u64;
    macro_rules! build {
        ($builder:expr, $edges:expr, |$row:ident, $h:ident| $value:expr) => {{
            let mut builder = $builder;
            for $row in row_numbers {
                match special($row, column, EDGE_PERIOD) {
                    Special::Null => builder.append_null(),
                    Special::Nth(n) => builder.append_value(pick($edges, n)),
                    Special::None => {
                        let $h = stream.at($row);
                        builder.append_value($value)
                    }
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    match generator {
        Generator::RowId => {
            // No edge values: the id stays unique within the table.
            let mut builder = Int64Builder::with_capacity(rows);
            for row in row_numbers {
                match special(row, column, EDGE_PERIOD) {
                    Special::Null => builder.append_null(),
                    _ => builder.append_value(row as i64 + 1),
                }
            }
            Arc::new(builder.finish())
        }
        Generator::Reference(n) => {
            build!(Int64Builder::with_capacity(rows), INT64_EDGES, |_row, h| {
                (1 + h % n) as i64
            })
        }
        Generator::Count(n) => build!(Int64Builder::with_capacity(rows), INT64_EDGES, |_row, h| {
            (h % n) as i64
        }),
        Generator::Price => build!(
            decimal_builder(rows, 12, 2),
            DECIMAL_12_2_EDGES,
            |_row, h| {
                // ±100 000.00, negative one time in eight (refunds).
                let cents = (h >> 8) % 10_000_000;
                if h & 7 == 0 {
                    -(cents as i128)
                } else {
                    cents as i128
                }
            }
        ),
        Generator::Amount => build!(
            decimal_builder(rows, 38, 10),
            DECIMAL_38_10_EDGES,
            |_row, h| {
                // Up to 18 integer digits and all ten fractional ones.
                let magnitude = ((h as u128) << 64 | mix(h) as u128) % 10u128.pow(28);
                if h & 3 == 0 {
                    -(magnitude as i128)
                } else {
                    magnitude as i128
                }
            }
        ),
        Generator::Ratio => build!(
            Float64Builder::with_capacity(rows),
            FLOAT64_EDGES,
            |_row, h| (h % 1_000_000) as f64 / 1_000.0
        ),
        Generator::Flag => {
            let mut builder = BooleanBuilder::with_capacity(rows);
            for row in row_numbers {
                match special(row, column, EDGE_PERIOD) {
                    Special::Null => builder.append_null(),
                    _ => builder.append_value(stream.at(row) & 1 == 1),
                }
            }
            Arc::new(builder.finish())
        }
        Generator::Day => build!(Date32Builder::with_capacity(rows), DATE_EDGES, |_row, h| {
            DATE_BASE + (h % DATE_SPAN) as i32
        }),
        Generator::Instant => build!(
            TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(TIMESTAMP_TIME_ZONE),
            TIMESTAMP_EDGES,
            |_row, h| TIMESTAMP_BASE + (h % TIMESTAMP_SPAN) as i64
        ),
        Generator::Word(_) | Generator::Code(_) | Generator::Sentence => {
            let mut builder = StringBuilder::with_capacity(rows, rows * 24);
            let mut text = String::with_capacity(64);
            for row in row_numbers {
                match special(row, column, TRICKY_PERIOD) {
                    Special::Null => builder.append_null(),
                    Special::Nth(n) => builder.append_value(pick(TRICKY_STRINGS, n)),
                    Special::None => {
                        text.clear();
                        ordinary_text(generator, stream.at(row), &mut text);
                        builder.append_value(&text);
                    }
                }
            }
            Arc::new(builder.finish())
        }
    }
}

fn decimal_builder(rows: usize, precision: u8, scale: i8) -> Decimal128Builder {
    Decimal128Builder::with_capacity(rows)
        .with_precision_and_scale(precision, scale)
        .expect("the seed's decimal types are valid")
}

fn ordinary_text(generator: Generator, h: u64, text: &mut String) {
    // Writing to a String cannot fail.
    match generator {
        Generator::Word(words) => text.push_str(pick(words, h as usize)),
        Generator::Code(prefix) => {
            let _ = write!(text, "{prefix}-{:05}", h % 100_000);
        }
        _ => {
            let words = 2 + (h % 3) as usize;
            for i in 0..words {
                if i > 0 {
                    text.push(' ');
                }
                text.push_str(pick(WORDS, (h >> (8 + 6 * i)) as usize));
            }
            let _ = write!(text, " {}", (h >> 40) % 1_000);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
    };
    use arrow_array::{Array, BooleanArray};
    use arrow_schema::DataType;

    use super::*;

    #[test]
    fn the_same_range_gives_the_same_rows_however_split() {
        for table in SeedTable::ALL {
            let whole = batch(table, 42, 1_000, 500);
            assert_eq!(whole, batch(table, 42, 1_000, 500), "{table:?}");
            for (first, len) in [(1_000, 1), (1_000, 137), (1_137, 363), (1_499, 1)] {
                assert_eq!(
                    batch(table, 42, first, len),
                    whole.slice((first - 1_000) as usize, len),
                    "{table:?} rows {first}+{len}"
                );
            }
            assert_eq!(batch(table, 42, 0, 0).num_rows(), 0);
        }
    }

    #[test]
    fn seeds_and_tables_give_different_rows() {
        let a = batch(SeedTable::Sales, 1, 0, 200);
        let b = batch(SeedTable::Sales, 2, 0, 200);
        assert_ne!(a, b);
        // Same column type in two tables (store_id of sales and inventory), different values.
        let sales = batch(SeedTable::Sales, 1, 0, 200);
        let inventory = batch(SeedTable::Inventory, 1, 0, 200);
        assert_ne!(sales.column(1), inventory.column(0));
    }

    /// Pinned values: the generator is ours, so a change of these is a change of the data every
    /// demo, test and benchmark relies on, and must be deliberate.
    #[test]
    fn the_data_is_stable() {
        assert_eq!(mix(0), 0);
        assert_eq!(mix(GOLDEN_GAMMA), 0xe220_a839_7b1d_cdaf);
        let sales = batch(SeedTable::Sales, 7, 0, 3);
        let store_ids = sales.column(1).as_primitive::<Int64Type>();
        let pinned: Vec<Option<i64>> = store_ids.iter().collect();
        assert_eq!(pinned, PINNED_SALES_STORE_IDS);
    }

    const PINNED_SALES_STORE_IDS: [Option<i64>; 3] = [Some(83), Some(-1), Some(15)];

    #[test]
    fn every_table_has_every_type_and_only_nullable_columns() {
        let all_types: BTreeSet<&str> = [
            "string",
            "int64",
            "float64",
            "decimal",
            "boolean",
            "date",
            "timestamp",
        ]
        .into();
        for table in SeedTable::ALL {
            let schema = schema(table);
            let types: BTreeSet<&str> = schema
                .fields()
                .iter()
                .map(|f| match ColumnType::from_data_type(f.data_type()) {
                    Some(ColumnType::Decimal { .. }) => "decimal",
                    Some(ColumnType::String) => "string",
                    Some(ColumnType::Int64) => "int64",
                    Some(ColumnType::Float64) => "float64",
                    Some(ColumnType::Boolean) => "boolean",
                    Some(ColumnType::Date) => "date",
                    Some(ColumnType::Timestamp) => "timestamp",
                    None => panic!("{table:?}.{} is not a lake type", f.name()),
                })
                .collect();
            assert_eq!(types, all_types, "{table:?}");
            assert!(schema.fields().iter().all(|f| f.is_nullable()), "{table:?}");
            assert_eq!(table.name().parse(), Ok(table));
        }
        let decimals: BTreeSet<DataType> = SeedTable::ALL
            .iter()
            .flat_map(|t| {
                schema(*t)
                    .fields()
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect::<Vec<_>>()
            })
            .filter(|t| matches!(t, DataType::Decimal128(..)))
            .collect();
        assert_eq!(
            decimals,
            [DataType::Decimal128(12, 2), DataType::Decimal128(38, 10)].into()
        );
        assert!("sale".parse::<SeedTable>().is_err());
    }

    const COVERAGE_ROWS: usize = 6_000;

    #[test]
    fn every_column_has_nulls_and_every_string_column_every_tricky_value() {
        for table in SeedTable::ALL {
            let rows = batch(table, 3, 0, COVERAGE_ROWS);
            for (field, column) in rows.schema().fields().iter().zip(rows.columns()) {
                let nulls = column.null_count();
                assert!(
                    nulls > COVERAGE_ROWS / 40 && nulls < COVERAGE_ROWS / 20,
                    "{table:?}.{}: {nulls} nulls",
                    field.name()
                );
                if field.data_type() == &DataType::Utf8 {
                    let found: BTreeSet<&str> =
                        column.as_string::<i32>().iter().flatten().collect();
                    for tricky in TRICKY_STRINGS {
                        assert!(
                            found.contains(tricky),
                            "{table:?}.{} lacks {tricky:?}",
                            field.name()
                        );
                    }
                }
            }
        }
    }

    fn column<'a>(rows: &'a RecordBatch, name: &str) -> &'a ArrayRef {
        rows.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    #[test]
    fn edge_values_appear_in_every_column_of_their_type() {
        for table in SeedTable::ALL {
            let rows = batch(table, 3, 0, COVERAGE_ROWS);
            for field in rows.schema().fields() {
                let values = column(&rows, field.name());
                let name = format!("{table:?}.{}", field.name());
                match field.data_type() {
                    DataType::Int64 => {
                        let found: BTreeSet<i64> = values
                            .as_primitive::<Int64Type>()
                            .iter()
                            .flatten()
                            .collect();
                        let is_row_id = table.columns().iter().any(|c| {
                            c.name == field.name() && matches!(c.generator, Generator::RowId)
                        });
                        if is_row_id {
                            let non_null = COVERAGE_ROWS - values.null_count();
                            assert_eq!(found.len(), non_null, "{name}: ids repeat");
                        } else {
                            assert!(INT64_EDGES.iter().all(|e| found.contains(e)), "{name}");
                        }
                    }
                    DataType::Float64 => {
                        let found: Vec<u64> = values
                            .as_primitive::<Float64Type>()
                            .iter()
                            .flatten()
                            .map(f64::to_bits)
                            .collect();
                        // By bits, so -0.0 counts apart from 0.0.
                        assert!(
                            FLOAT64_EDGES.iter().all(|e| found.contains(&e.to_bits())),
                            "{name}"
                        );
                    }
                    DataType::Decimal128(precision, _) => {
                        let found: BTreeSet<i128> = values
                            .as_primitive::<Decimal128Type>()
                            .iter()
                            .flatten()
                            .collect();
                        let edges = if *precision == 12 {
                            DECIMAL_12_2_EDGES
                        } else {
                            DECIMAL_38_10_EDGES
                        };
                        assert!(edges.iter().all(|e| found.contains(e)), "{name}");
                        assert!(found.iter().any(|v| *v < -1), "{name}: no negative");
                        let limit = 10i128.pow(u32::from(*precision));
                        assert!(
                            found.iter().all(|v| v.abs() < limit),
                            "{name}: a value beyond the precision"
                        );
                    }
                    DataType::Date32 => {
                        let found: BTreeSet<i32> = values
                            .as_primitive::<Date32Type>()
                            .iter()
                            .flatten()
                            .collect();
                        assert!(DATE_EDGES.iter().all(|e| found.contains(e)), "{name}");
                    }
                    DataType::Timestamp(..) => {
                        let found: BTreeSet<i64> = values
                            .as_primitive::<TimestampMicrosecondType>()
                            .iter()
                            .flatten()
                            .collect();
                        assert!(TIMESTAMP_EDGES.iter().all(|e| found.contains(e)), "{name}");
                        assert!(found.iter().any(|t| t % 1_000_000 != 0), "{name}: no µs");
                    }
                    DataType::Boolean => {
                        let flags: &BooleanArray = values.as_boolean();
                        let found: BTreeSet<bool> = flags.iter().flatten().collect();
                        assert_eq!(found, [false, true].into(), "{name}");
                    }
                    DataType::Utf8 => {}
                    other => panic!("{name}: unexpected {other}"),
                }
            }
        }
    }

    #[test]
    fn edge_dates_and_timestamps_mean_what_they_say() {
        let day = |days: i32| {
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + chrono::Duration::days(i64::from(days))
        };
        let dates: Vec<String> = DATE_EDGES.iter().map(|d| day(*d).to_string()).collect();
        assert_eq!(
            dates,
            ["1970-01-01", "1969-12-31", "2000-02-29", "9999-12-31"]
        );
        let instants: Vec<String> = TIMESTAMP_EDGES
            .iter()
            .map(|t| {
                chrono::DateTime::from_timestamp_micros(*t)
                    .expect("in range")
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string()
            })
            .collect();
        assert_eq!(
            instants,
            [
                "1970-01-01T00:00:00.000000Z",
                "1969-12-31T23:59:59.999999Z",
                "2000-02-29T23:59:59.999999Z",
                "2038-01-19T03:14:08.000000Z",
            ]
        );
        assert_eq!(
            DECIMAL_38_10_EDGES[0].to_string().len(),
            38,
            "10^38 - 1 has 38 digits"
        );
    }

    #[test]
    fn row_ids_count_from_one_and_follow_the_range() {
        let rows = batch(SeedTable::Products, 9, 99, 5);
        let ids: Vec<Option<i64>> = rows.column(0).as_primitive::<Int64Type>().iter().collect();
        // Row 99 is an edge row of column 0 and keeps its id; row 116 is its next null.
        assert_eq!(ids, [Some(100), Some(101), Some(102), Some(103), Some(104)]);
        let nulls = batch(SeedTable::Products, 9, 116, 1);
        assert!(nulls.column(0).is_null(0));
    }
}
