//! Planning a run: per table, the lake parts past the connector's watermark (on the first run,
//! those inside the backfill window), grouped into files no larger than `max_file_size_mb`,
//! each with its key fixed up front so that a retried task overwrites its object and never
//! adds one (docs/architecture.md, "Export").

use chrono::{DateTime, Duration, Utc};

use crate::connector::key_template::KeyContext;
use crate::connector::{Connector, EmptyExportPolicy, ExportOptions, FormatKind};
use crate::export::layout;
use crate::export::run::{FileTask, PartSummary, RunPlan, TablePlan};

const MIB: u64 = 1024 * 1024;

/// One planned file of a table: its part range (`None`: the empty file), rows and lake bytes.
type FileSpan = (Option<(u64, u64)>, u64, u64);

/// What the lake holds of one selected table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableParts {
    pub table: String,
    /// The selected columns in order; `None` for all.
    pub columns: Option<Vec<String>>,
    /// The connector's watermark of this table (`None`: never exported).
    pub watermark: Option<u64>,
    /// The parts after the watermark, in sequence order.
    pub parts: Vec<PartSummary>,
}

#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub connector: &'a Connector,
    pub run_id: &'a str,
    pub loaded_at: DateTime<Utc>,
    pub tables: Vec<TableParts>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("connector {0} is not an export connector")]
    NotExport(String),
    #[error("the key template breaks today's rules ({0}); fix export.key_template")]
    StaleKeyTemplate(String),
    #[error(
        "tables {first} and {second} both render the key {key}; use [table_name] in export.key_template where the tables' names differ"
    )]
    DuplicateKey {
        key: String,
        first: String,
        second: String,
    },
}

/// How many bytes of output a byte of lake Parquet becomes, before compression: text
/// formats spell out what Parquet encodes and compresses. An estimate that errs on the large
/// side keeps files under the limit; a single part larger than the limit is a file of its own.
fn expansion(kind: FormatKind) -> u64 {
    match kind {
        FormatKind::Csv | FormatKind::Tsv | FormatKind::Psv => 3,
        FormatKind::Jsonl => 6,
        FormatKind::Parquet => 1,
    }
}

pub fn plan(request: PlanRequest<'_>) -> Result<RunPlan, PlanError> {
    let connector = request.connector;
    let options = connector
        .export_options()
        .ok_or_else(|| PlanError::NotExport(connector.connector_id.clone()))?;
    let template = match &options.key_template {
        crate::connector::Parsed::Valid(t) => t,
        crate::connector::Parsed::Stale { rule, .. } => {
            return Err(PlanError::StaleKeyTemplate(rule.clone()));
        }
    };
    let extension = options.file_extension();
    let backfill_from = request.loaded_at - Duration::days(i64::from(options.backfill_days));

    let mut tables = Vec::new();
    let mut files: Vec<FileTask> = Vec::new();
    for table in request.tables {
        let wanted: Vec<&PartSummary> = table
            .parts
            .iter()
            .filter(|p| table.watermark.is_some() || p.created_at >= backfill_from)
            .collect();
        let groups = group(&wanted, budget(options));
        let mut table_files: Vec<FileSpan> = groups
            .iter()
            .map(|g| {
                let first = g.first().map(|p| p.seq).unwrap_or_default();
                let last = g.last().map(|p| p.seq).unwrap_or_default();
                let rows = g.iter().map(|p| p.rows).sum();
                let bytes = g.iter().map(|p| p.bytes).sum();
                (Some((first, last)), rows, bytes)
            })
            .collect();
        if table_files.is_empty() && options.empty_export == EmptyExportPolicy::EmptyFile {
            table_files.push((None, 0, 0));
        }
        for (i, (parts, rows, lake_bytes)) in table_files.into_iter().enumerate() {
            let part_number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let ctx = KeyContext {
                integration_name: &connector.name,
                table_name: &table.table,
                table_version: 1,
                loaded_at: request.loaded_at,
                run_id: request.run_id,
                part_number,
                table_folder_suffix: options.table_folder_suffix(),
            };
            let key = template.render(&connector.prefix, &ctx, &extension);
            if let Some(other) = files.iter().find(|f| f.key == key) {
                return Err(PlanError::DuplicateKey {
                    key,
                    first: other.table.clone(),
                    second: table.table.clone(),
                });
            }
            files.push(FileTask {
                table: table.table.clone(),
                part_number,
                key,
                parts,
                rows,
                lake_bytes,
            });
        }
        tables.push(TablePlan {
            through_seq: table.parts.last().map(|p| p.seq).or(table.watermark),
            table: table.table,
            columns: table.columns,
            after_seq: table.watermark,
        });
    }
    Ok(RunPlan {
        loaded_at: request.loaded_at,
        tables,
        files,
        manifest_key: layout::manifest_key(&connector.prefix, request.loaded_at, request.run_id),
        done_key: options
            .success_marker
            .then(|| layout::done_key(&connector.prefix, request.loaded_at, request.run_id)),
    })
}

/// Lake bytes a file may take so that its output stays under `max_file_size_mb`.
fn budget(options: &ExportOptions) -> u64 {
    (options.max_file_size_mb * MIB / expansion(options.format.kind())).max(1)
}

/// Consecutive parts, a new group whenever the budget would be passed or the schema changes.
fn group<'a>(parts: &[&'a PartSummary], budget: u64) -> Vec<Vec<&'a PartSummary>> {
    let mut groups: Vec<Vec<&PartSummary>> = Vec::new();
    let mut size = 0;
    for part in parts {
        let fits = groups.last().is_some_and(|g| {
            g.last().is_some_and(|p| p.schema_id == part.schema_id) && size + part.bytes <= budget
        });
        if fits {
            size += part.bytes;
            groups.last_mut().expect("checked above").push(part);
        } else {
            size = part.bytes;
            groups.push(vec![part]);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::testing::export_connector;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 2, 0, 0).unwrap()
    }

    fn part(seq: u64, mib: u64, day: u32) -> PartSummary {
        PartSummary {
            seq,
            rows: seq * 10,
            bytes: mib * MIB,
            created_at: at(day),
            schema_id: "a:Int64".into(),
        }
    }

    fn table(name: &str, watermark: Option<u64>, parts: Vec<PartSummary>) -> TableParts {
        TableParts {
            table: name.into(),
            columns: None,
            watermark,
            parts,
        }
    }

    fn run(export: serde_json::Value, tables: Vec<TableParts>) -> Result<RunPlan, PlanError> {
        let connector = export_connector(export);
        plan(PlanRequest {
            connector: &connector,
            run_id: "run_1",
            loaded_at: at(20),
            tables,
        })
    }

    fn ranges(plan: &RunPlan) -> Vec<(String, Option<(u64, u64)>)> {
        plan.files
            .iter()
            .map(|f| (f.table.clone(), f.parts))
            .collect()
    }

    #[test]
    fn parts_are_grouped_under_the_file_size_with_the_text_expansion() {
        // csv: 3 bytes out per lake byte, so 30 MiB files take 10 MiB of parts.
        let parts = vec![
            part(1, 4, 19),
            part(2, 4, 19),
            part(3, 4, 19),
            part(4, 12, 19),
            part(5, 1, 19),
        ];
        let cases = [
            (
                json!({"max_file_size_mb": 30}),
                vec![Some((1, 2)), Some((3, 3)), Some((4, 4)), Some((5, 5))],
            ),
            (
                json!({"max_file_size_mb": 20, "format": {"type": "parquet"}}),
                vec![Some((1, 3)), Some((4, 5))],
            ),
            (json!({"max_file_size_mb": 1024}), vec![Some((1, 5))]),
            // A part alone above the budget still makes one file.
            (
                json!({"max_file_size_mb": 5}),
                vec![
                    Some((1, 1)),
                    Some((2, 2)),
                    Some((3, 3)),
                    Some((4, 4)),
                    Some((5, 5)),
                ],
            ),
        ];
        for (export, want) in cases {
            let p = run(export.clone(), vec![table("sales", Some(0), parts.clone())]).unwrap();
            let got: Vec<_> = p.files.iter().map(|f| f.parts).collect();
            assert_eq!(got, want, "{export}");
            let numbers: Vec<u32> = p.files.iter().map(|f| f.part_number).collect();
            assert_eq!(numbers, (1..=want.len() as u32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_schema_change_starts_a_new_file() {
        let mut changed = part(2, 1, 19);
        changed.schema_id = "a:Int64,b:Utf8".into();
        let p = run(
            json!({}),
            vec![table(
                "sales",
                Some(0),
                vec![part(1, 1, 19), changed, part(3, 1, 19)],
            )],
        )
        .unwrap();
        assert_eq!(
            ranges(&p),
            vec![
                ("sales".into(), Some((1, 1))),
                ("sales".into(), Some((2, 2))),
                ("sales".into(), Some((3, 3)))
            ]
        );
    }

    #[test]
    fn the_first_run_takes_the_backfill_window_and_moves_past_older_parts() {
        let parts = vec![
            part(1, 1, 1),
            part(2, 1, 10),
            part(3, 1, 18),
            part(4, 1, 19),
        ];
        let first = run(
            json!({"backfill_days": 5}),
            vec![table("sales", None, parts.clone())],
        )
        .unwrap();
        assert_eq!(ranges(&first), vec![("sales".into(), Some((3, 4)))]);
        assert_eq!(first.files[0].rows, 70);
        assert_eq!(first.tables[0].after_seq, None);
        assert_eq!(
            first.tables[0].through_seq,
            Some(4),
            "older parts are never exported later"
        );
        // With a watermark, age does not matter: everything after it goes.
        let next = run(
            json!({"backfill_days": 5}),
            vec![table("sales", Some(1), parts[1..].to_vec())],
        )
        .unwrap();
        assert_eq!(ranges(&next), vec![("sales".into(), Some((2, 4)))]);
        // backfill 0: nothing of the past, the watermark moves to the end.
        let none = run(
            json!({"backfill_days": 0}),
            vec![table("sales", None, parts)],
        )
        .unwrap();
        assert!(none.files.is_empty());
        assert_eq!(none.tables[0].through_seq, Some(4));
    }

    #[test]
    fn empty_tables_follow_the_empty_export_policy() {
        let skip = run(json!({}), vec![table("sales", Some(7), vec![])]).unwrap();
        assert!(skip.files.is_empty());
        assert_eq!(skip.tables[0].through_seq, Some(7), "the watermark stays");
        let empty = run(
            json!({"empty_export": "empty_file"}),
            vec![table("sales", Some(7), vec![])],
        )
        .unwrap();
        assert_eq!(ranges(&empty), vec![("sales".into(), None)]);
        assert_eq!(empty.files[0].rows, 0);
    }

    #[test]
    fn keys_are_fixed_in_the_plan_from_the_template() {
        let export = json!({
            "key_template": "[table_name]/[date_loaded]/[table_name]_[run_id]_[part_number]",
            "max_file_size_mb": 5,
            "format": {"type": "parquet"},
        });
        let p = run(
            export.clone(),
            vec![
                table("sales", Some(0), vec![part(1, 5, 19), part(2, 5, 19)]),
                table("stores", Some(0), vec![part(9, 1, 19)]),
            ],
        )
        .unwrap();
        let keys: Vec<&str> = p.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "exports/sales.parquet/2026-03-20/sales_run_1_00001.parquet",
                "exports/sales.parquet/2026-03-20/sales_run_1_00002.parquet",
                "exports/stores.parquet/2026-03-20/stores_run_1_00001.parquet",
            ]
        );
        assert_eq!(
            p.manifest_key,
            "exports/_runs/20260320T020000Z_run_1/manifest.json"
        );
        assert_eq!(
            p.done_key.as_deref(),
            Some("exports/_runs/20260320T020000Z_run_1/.DONE")
        );
        // The same request plans the same keys: a retried run overwrites.
        let again = run(
            export,
            vec![
                table("sales", Some(0), vec![part(1, 5, 19), part(2, 5, 19)]),
                table("stores", Some(0), vec![part(9, 1, 19)]),
            ],
        )
        .unwrap();
        assert_eq!(again, p);
        let no_marker = run(json!({"success_marker": false, "table_folder_extension": false, "format": {"type": "parquet"}}), vec![table("sales", Some(0), vec![part(1, 1, 19)])]).unwrap();
        assert_eq!(no_marker.done_key, None);
        assert!(
            no_marker.files[0]
                .key
                .starts_with("exports/acme-shop/sales/"),
            "{}",
            no_marker.files[0].key
        );
    }

    #[test]
    fn tables_whose_keys_collide_are_refused() {
        let export = json!({"key_template": "[table_name]_[run_id]_[part_number]"});
        let err = run(
            export,
            vec![
                table("Sales", Some(0), vec![part(1, 1, 19)]),
                table("sales", Some(0), vec![part(1, 1, 19)]),
            ],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::DuplicateKey { .. }), "{err}");
    }

    #[test]
    fn watermarks_after_the_run_cover_every_planned_table() {
        let p = run(
            json!({}),
            vec![
                table("sales", Some(2), vec![part(3, 1, 19)]),
                table("stores", None, vec![]),
            ],
        )
        .unwrap();
        let before = [("sales".to_owned(), 2), ("other".to_owned(), 5)]
            .into_iter()
            .collect();
        let after = p.watermarks_after(&before);
        assert_eq!(after.get("sales"), Some(&3));
        assert_eq!(
            after.get("other"),
            Some(&5),
            "tables outside the run keep theirs"
        );
        assert_eq!(
            after.get("stores"),
            None,
            "a table with nothing yet has no watermark"
        );
    }
}
