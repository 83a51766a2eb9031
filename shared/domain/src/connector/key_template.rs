//! Export object-key templates, Stitch style: `[element]`s and literal text, rendered under the
//! connector's prefix.

use chrono::{DateTime, TimeZone, Utc};

pub const DEFAULT_KEY_TEMPLATE: &str = "[integration_name]/[table_name]/[yyyy]/[mm]/[dd]/[table_name]_[timestamp_loaded]_[part_number]";

const MAX_TEMPLATE_CHARS: usize = 500;
/// Punctuation S3 documents as safe in keys; everything else may need encoding somewhere.
const SAFE_PUNCTUATION: &str = "/!-_.*'()";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    IntegrationName,
    TableName,
    TableVersion,
    TimestampLoaded,
    DateLoaded,
    Year,
    Month,
    Day,
    Hour,
    RunId,
    PartNumber,
}

impl Element {
    const ALL: [Element; 11] = [
        Element::IntegrationName,
        Element::TableName,
        Element::TableVersion,
        Element::TimestampLoaded,
        Element::DateLoaded,
        Element::Year,
        Element::Month,
        Element::Day,
        Element::Hour,
        Element::RunId,
        Element::PartNumber,
    ];

    fn name(self) -> &'static str {
        match self {
            Element::IntegrationName => "integration_name",
            Element::TableName => "table_name",
            Element::TableVersion => "table_version",
            Element::TimestampLoaded => "timestamp_loaded",
            Element::DateLoaded => "date_loaded",
            Element::Year => "yyyy",
            Element::Month => "mm",
            Element::Day => "dd",
            Element::Hour => "hh",
            Element::RunId => "run_id",
            Element::PartNumber => "part_number",
        }
    }

    fn from_name(name: &str) -> Option<Element> {
        Element::ALL.into_iter().find(|e| e.name() == name)
    }

    fn render(self, ctx: &KeyContext, out: &mut String) {
        let t = ctx.loaded_at;
        let text = match self {
            Element::IntegrationName => slug(ctx.integration_name),
            Element::TableName => slug(ctx.table_name),
            Element::TableVersion => ctx.table_version.to_string(),
            Element::TimestampLoaded => t.format("%Y%m%dT%H%M%SZ").to_string(),
            Element::DateLoaded => t.format("%Y-%m-%d").to_string(),
            Element::Year => t.format("%Y").to_string(),
            Element::Month => t.format("%m").to_string(),
            Element::Day => t.format("%d").to_string(),
            Element::Hour => t.format("%H").to_string(),
            Element::RunId => key_safe_id(ctx.run_id),
            Element::PartNumber => format!("{:05}", ctx.part_number),
        };
        out.push_str(&text);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Element(Element),
}

/// A linted key template; only [`KeyTemplate::parse`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// Values for one exported file.
#[derive(Debug, Clone, Copy)]
pub struct KeyContext<'a> {
    pub integration_name: &'a str,
    pub table_name: &'a str,
    pub table_version: u32,
    pub loaded_at: DateTime<Utc>,
    pub run_id: &'a str,
    pub part_number: u32,
    /// Appended to `[table_name]` where it names a folder (followed by `/`): `.parquet` puts
    /// Parquet tables in `<table>.parquet/` folders, as Spark-style readers expect.
    pub table_folder_suffix: &'a str,
}

impl KeyTemplate {
    /// Parses and lints `template`, reporting every broken rule.
    pub fn parse(template: &str) -> Result<Self, Vec<String>> {
        if template.is_empty() {
            return Err(vec!["must not be empty".into()]);
        }
        let mut errors = Vec::new();
        if template.chars().count() > MAX_TEMPLATE_CHARS {
            errors.push(format!("must be at most {MAX_TEMPLATE_CHARS} characters"));
        }
        if template.starts_with('/') {
            errors.push("must not start with \"/\" (the prefix sets the folder)".into());
        }
        if template.contains("//") {
            errors.push("must not contain \"//\"".into());
        }
        if template.contains("..") {
            errors.push("must not contain \"..\"".into());
        }
        if template.ends_with('/') {
            errors.push("must not end with \"/\" (the key needs a file name)".into());
        }
        // Literal "." folders are dropped or refused by some S3 clients, like "..".
        if template.split('/').any(|seg| seg == ".") {
            errors.push("must not contain a \".\" folder".into());
        }

        let (segments, mut syntax_errors) = split_segments(template);
        errors.append(&mut syntax_errors);

        let has = |e: Element| segments.contains(&Segment::Element(e));
        if !has(Element::TableName) {
            errors.push("must include [table_name]".into());
        }
        if !has(Element::TimestampLoaded) && !has(Element::RunId) {
            errors.push(
                "must include [timestamp_loaded] or [run_id] so runs never overwrite each other"
                    .into(),
            );
        }
        if !has(Element::PartNumber) {
            errors.push(
                "must include [part_number] (a run may split a table into several files)".into(),
            );
        }

        if errors.is_empty() {
            Ok(KeyTemplate {
                text: template.to_owned(),
                segments,
            })
        } else {
            Err(errors)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `prefix` is a normalized prefix ("" or ending in '/'); `extension` like "csv.gz" (no dot)
    /// is appended as ".csv.gz".
    pub fn render(&self, prefix: &str, ctx: &KeyContext, extension: &str) -> String {
        debug_assert!(prefix.is_empty() || prefix.ends_with('/'), "{prefix:?}");
        let mut key = String::with_capacity(prefix.len() + self.text.len() + 32);
        key.push_str(prefix);
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => key.push_str(text),
                Segment::Element(element) => {
                    element.render(ctx, &mut key);
                    let names_folder = matches!(
                        self.segments.get(i + 1),
                        Some(Segment::Literal(next)) if next.starts_with('/')
                    );
                    if *element == Element::TableName && names_folder {
                        key.push_str(ctx.table_folder_suffix);
                    }
                }
            }
        }
        if !extension.is_empty() {
            key.push('.');
            key.push_str(extension);
        }
        key
    }

    /// Example keys for the API response: parts 1 and 2 of the first table, part 1 of the second.
    pub fn examples(
        &self,
        prefix: &str,
        integration_name: &str,
        tables: &[&str],
        extension: &str,
        table_folder_suffix: &str,
    ) -> Vec<String> {
        let loaded_at = Utc
            .with_ymd_and_hms(2026, 1, 15, 2, 0, 0)
            .single()
            .expect("a fixed, valid instant");
        let first = tables.first().copied().unwrap_or("orders");
        let mut picks = vec![(first, 1), (first, 2)];
        if let Some(second) = tables.get(1) {
            picks.push((second, 1));
        }
        picks
            .into_iter()
            .map(|(table_name, part_number)| {
                let ctx = KeyContext {
                    integration_name,
                    table_name,
                    table_version: 1,
                    loaded_at,
                    run_id: "run-0001",
                    part_number,
                    table_folder_suffix,
                };
                self.render(prefix, &ctx, extension)
            })
            .collect()
    }
}

impl std::fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits the template into literals and elements, with messages for bad brackets, unknown
/// elements and unsafe literal characters.
fn split_segments(template: &str) -> (Vec<Segment>, Vec<String>) {
    let mut segments = Vec::new();
    let mut errors = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    let mut unsafe_chars: Vec<char> = Vec::new();
    let mut unbalanced = false;

    let mut literal_start = 0;
    let mut rest = template;
    let mut offset = 0;
    while let Some(i) = rest.find(['[', ']']) {
        let at = offset + i;
        if rest[i..].starts_with(']') {
            unbalanced = true;
            offset = at + 1;
            rest = &template[offset..];
            continue;
        }
        let after_open = &template[at + 1..];
        let close = after_open.find(['[', ']']);
        match close {
            Some(j) if after_open[j..].starts_with(']') => {
                push_literal(
                    &template[literal_start..at],
                    &mut segments,
                    &mut unsafe_chars,
                );
                let name = &after_open[..j];
                match Element::from_name(name) {
                    Some(element) => segments.push(Segment::Element(element)),
                    None if !unknown.contains(&name) => unknown.push(name),
                    None => {}
                }
                offset = at + 1 + j + 1;
                literal_start = offset;
            }
            // "[" followed by another "[" or by nothing: treat it as literal text.
            _ => {
                unbalanced = true;
                offset = at + 1;
            }
        }
        rest = &template[offset..];
    }
    push_literal(&template[literal_start..], &mut segments, &mut unsafe_chars);

    if unbalanced {
        errors.push("has an unbalanced \"[\" or \"]\"; write elements as [table_name]".into());
    }
    let known = Element::ALL
        .iter()
        .map(|e| format!("[{}]", e.name()))
        .collect::<Vec<_>>()
        .join(" ");
    for name in unknown {
        errors.push(format!("unknown element [{name}]; use {known}"));
    }
    if !unsafe_chars.is_empty() {
        let named = unsafe_chars
            .iter()
            .map(|c| match c {
                ' ' => "space".to_owned(),
                _ => format!("\"{}\"", c.escape_debug()),
            })
            .collect::<Vec<_>>()
            .join(", ");
        errors.push(format!(
            "must not contain {named} outside elements; use letters, digits and {SAFE_PUNCTUATION}"
        ));
    }
    (segments, errors)
}

/// Records a literal, noting unsafe characters; brackets were handled by the caller and are
/// not reported twice.
fn push_literal(text: &str, segments: &mut Vec<Segment>, unsafe_chars: &mut Vec<char>) {
    for c in text.chars() {
        let safe =
            c.is_ascii_alphanumeric() || SAFE_PUNCTUATION.contains(c) || c == '[' || c == ']';
        if !safe && !unsafe_chars.contains(&c) {
            unsafe_chars.push(c);
        }
    }
    if !text.is_empty() {
        segments.push(Segment::Literal(text.to_owned()));
    }
}

/// Key-safe text for a connector or table name: lowercase ASCII letters, digits and `_`, with
/// every other run of characters turned into one `-`. Common Latin accents are folded first so
/// "Données" reads "donnees". Never empty.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_dash = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        let folded = fold_latin(c);
        let mut push = |c: char| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                if pending_dash && !out.is_empty() {
                    out.push('-');
                }
                pending_dash = false;
                out.push(c);
            } else {
                pending_dash = true;
            }
        };
        match folded {
            Some(ascii) => ascii.chars().for_each(&mut push),
            None => push(c),
        }
    }
    if out.is_empty() {
        "connector".to_owned()
    } else {
        out
    }
}

fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => "i",
        'ł' | 'ľ' | 'ĺ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' | 'ŕ' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ß' => "ss",
        'ť' | 'ţ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// Run ids keep their case (they are looked up as written); anything outside
/// `[A-Za-z0-9_-]` becomes `-`.
fn key_safe_id(id: &str) -> String {
    let out: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() {
        "run".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn ctx<'a>(table_name: &'a str, part_number: u32) -> KeyContext<'a> {
        KeyContext {
            integration_name: "Acme Shop",
            table_name,
            table_version: 3,
            loaded_at: at(2026, 3, 7, 9, 5, 4),
            run_id: "run-0042",
            part_number,
            table_folder_suffix: "",
        }
    }

    const REQUIRED: &str = "[table_name]_[run_id]_[part_number]";

    #[test]
    fn parse_lints() {
        let long = format!(
            "{REQUIRED}{}",
            "a".repeat(MAX_TEMPLATE_CHARS - REQUIRED.len() + 1)
        );
        let longest = format!(
            "{REQUIRED}{}",
            "a".repeat(MAX_TEMPLATE_CHARS - REQUIRED.len())
        );
        // (template, substrings every one of which must appear in some error; empty = valid)
        let cases: Vec<(&str, &[&str])> = vec![
            (DEFAULT_KEY_TEMPLATE, &[]),
            (REQUIRED, &[]),
            ("[table_name]/[timestamp_loaded]-[part_number]", &[]),
            (
                "exports/[integration_name]/[table_name]/v[table_version]/[date_loaded]/[hh]/[run_id].[part_number]",
                &[],
            ),
            ("[table_name]!*'()_[run_id]_[part_number]", &[]),
            (&longest, &[]),
            ("", &["must not be empty"]),
            (&long, &["at most 500 characters"]),
            (
                "/[table_name]/[run_id]_[part_number]",
                &["must not start with \"/\""],
            ),
            (
                "[table_name]//[run_id]_[part_number]",
                &["must not contain \"//\""],
            ),
            (
                "[table_name]/../[run_id]_[part_number]",
                &["must not contain \"..\""],
            ),
            (
                "[table_name]..[run_id]_[part_number]",
                &["must not contain \"..\""],
            ),
            ("[table_name]/./[run_id]_[part_number]", &["\".\" folder"]),
            (
                "[table_name]/[run_id]_[part_number]/",
                &["must not end with \"/\""],
            ),
            (
                "[table_name]/[foo]/[run_id]_[part_number]",
                &[
                    "unknown element [foo]; use [integration_name] [table_name] [table_version] [timestamp_loaded] [date_loaded] [yyyy] [mm] [dd] [hh] [run_id] [part_number]",
                ],
            ),
            (
                "[Table_Name]_[run_id]_[part_number]",
                &["unknown element [Table_Name]", "must include [table_name]"],
            ),
            (
                "[table_name]_[run_id]_[part_number]_[]",
                &["unknown element []"],
            ),
            (
                "[table_name_[run_id]_[part_number]",
                &["unbalanced", "must include [table_name]"],
            ),
            ("[table_name]]_[run_id]_[part_number]", &["unbalanced"]),
            ("[table_name]_[run_id]_[part_number][", &["unbalanced"]),
            (
                "[table_name] [run_id]%[part_number]",
                &[
                    "must not contain space, \"%\" outside elements; use letters, digits and /!-_.*'()",
                ],
            ),
            (
                "[table_name]_[run_id]_[part_number]é",
                &["must not contain \"é\""],
            ),
            (
                "[table_name]\t[run_id]_[part_number]",
                &["must not contain \"\\t\""],
            ),
            ("[table_name]_[run_id]_[part_number]#", &["\"#\""]),
            ("[run_id]_[part_number]", &["must include [table_name]"]),
            (
                "[table_name]_[part_number]",
                &["must include [timestamp_loaded] or [run_id]"],
            ),
            (
                "[table_name]_[date_loaded]_[part_number]",
                &["must include [timestamp_loaded] or [run_id]"],
            ),
            ("[table_name]_[run_id]", &["must include [part_number]"]),
            (
                "/a//b/../[x]%/",
                &[
                    "must not start with \"/\"",
                    "must not contain \"//\"",
                    "must not contain \"..\"",
                    "must not end with \"/\"",
                    "unknown element [x]",
                    "\"%\"",
                    "must include [table_name]",
                    "must include [timestamp_loaded] or [run_id]",
                    "must include [part_number]",
                ],
            ),
        ];
        for (template, expected) in cases {
            match KeyTemplate::parse(template) {
                Ok(t) => {
                    assert!(
                        expected.is_empty(),
                        "{template:?}: accepted, want {expected:?}"
                    );
                    assert_eq!(t.as_str(), template);
                }
                Err(errors) => {
                    assert!(
                        !expected.is_empty(),
                        "{template:?}: rejected with {errors:?}"
                    );
                    for want in expected {
                        assert!(
                            errors.iter().any(|e| e.contains(want)),
                            "{template:?}: {errors:?} has nothing with {want:?}"
                        );
                    }
                    if expected.len() == 1 && !template.is_empty() {
                        assert_eq!(errors.len(), 1, "{template:?}: {errors:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn renders() {
        let cases: Vec<(&str, &str, KeyContext, &str, &str)> = vec![
            (
                DEFAULT_KEY_TEMPLATE,
                "",
                ctx("orders", 1),
                "csv.gz",
                "acme-shop/orders/2026/03/07/orders_20260307T090504Z_00001.csv.gz",
            ),
            (
                DEFAULT_KEY_TEMPLATE,
                "exports/daily/",
                ctx("Order Items", 12),
                "jsonl",
                "exports/daily/acme-shop/order-items/2026/03/07/order-items_20260307T090504Z_00012.jsonl",
            ),
            (
                "[table_name]/v[table_version]/[date_loaded]T[hh]/[run_id]-[part_number]",
                "données/é/",
                ctx("Données Clients", 123456),
                "parquet",
                "données/é/donnees-clients/v3/2026-03-07T09/run-0042-123456.parquet",
            ),
            (
                "[table_name]_[run_id]_[part_number]",
                "a/",
                ctx("注文", 2),
                "",
                "a/connector_run-0042_00002",
            ),
            (
                "[table_name]_[run_id]_[part_number]",
                "",
                KeyContext {
                    run_id: "01J/..Z x",
                    ..ctx("../../etc", 7)
                },
                "csv",
                "etc_01J---Z-x_00007.csv",
            ),
        ];
        for (template, prefix, ctx, extension, want) in cases {
            let t = KeyTemplate::parse(template).unwrap();
            let key = t.render(prefix, &ctx, extension);
            assert_eq!(key, want, "{template:?} under {prefix:?}");
            assert!(key.starts_with(prefix), "{key:?} escapes {prefix:?}");
            assert!(!key[prefix.len()..].starts_with('/'), "{key:?}");
            assert!(!key.contains("//") && !key.contains(".."), "{key:?}");
        }
    }

    #[test]
    fn table_folder_suffix_applies_only_where_the_table_names_a_folder() {
        let cases = [
            (
                "[table_name]/[run_id]_[part_number]",
                "sales.parquet/run-0042_00001",
            ),
            (
                "x/[table_name]_[run_id]/[part_number]",
                "x/sales_run-0042/00001",
            ),
            (
                "[table_name]/[table_name]_[run_id]_[part_number]",
                "sales.parquet/sales_run-0042_00001",
            ),
            ("[table_name][run_id]/[part_number]", "salesrun-0042/00001"),
        ];
        for (template, want) in cases {
            let t = KeyTemplate::parse(template).unwrap();
            let ctx = KeyContext {
                table_folder_suffix: ".parquet",
                ..ctx("sales", 1)
            };
            assert_eq!(t.render("", &ctx, ""), want, "{template}");
        }
    }

    #[test]
    fn examples() {
        let t = KeyTemplate::parse(DEFAULT_KEY_TEMPLATE).unwrap();
        assert_eq!(
            t.examples(
                "exports/",
                "Acme Shop",
                &["orders", "Line Items", "ignored"],
                "csv.gz",
                ""
            ),
            vec![
                "exports/acme-shop/orders/2026/01/15/orders_20260115T020000Z_00001.csv.gz",
                "exports/acme-shop/orders/2026/01/15/orders_20260115T020000Z_00002.csv.gz",
                "exports/acme-shop/line-items/2026/01/15/line-items_20260115T020000Z_00001.csv.gz",
            ]
        );
        let t = KeyTemplate::parse("[table_name]/[run_id]/[part_number]").unwrap();
        assert_eq!(
            t.examples("", "Acme", &[], "parquet", ".parquet"),
            vec![
                "orders.parquet/run-0001/00001.parquet",
                "orders.parquet/run-0001/00002.parquet"
            ]
        );
    }

    #[test]
    fn slugs() {
        const CASES: &[(&str, &str)] = &[
            ("orders", "orders"),
            ("Order Items", "order-items"),
            ("  Acme -- Shop!  ", "acme-shop"),
            ("snake_case_table", "snake_case_table"),
            ("_airbyte_raw", "_airbyte_raw"),
            ("public.orders", "public-orders"),
            ("Données Clients", "donnees-clients"),
            ("Straße", "strasse"),
            ("ÉTÉ 2026", "ete-2026"),
            ("注文 orders", "orders"),
            ("注文", "connector"),
            ("", "connector"),
            ("---", "connector"),
            ("a/../b", "a-b"),
        ];
        for &(input, want) in CASES {
            assert_eq!(slug(input), want, "slug({input:?})");
        }
    }
}
