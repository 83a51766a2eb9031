//! The API shows connectors exactly as before the typed model: `today.json` holds, for each
//! fixture, the stored connector (serde JSON form) and the view a build before the change
//! returned for it, changed only where export changed on purpose: the `success_marker` and
//! `table_folder_extension` options (on for items stored before them) and the `<table>.parquet`
//! folder of parquet key examples.

use serde_json::{Value, json};
use shared::domain::connector::Connector;

use super::*;

const TODAY: &str = include_str!("today.json");

fn fixtures() -> Value {
    serde_json::from_str(TODAY).expect("valid JSON")
}

#[test]
fn views_are_what_the_api_returned_before() {
    let all = fixtures();
    for name in ["export", "ingest", "access_key", "bucket_policy"] {
        let connector: Connector =
            serde_json::from_value(all[name]["stored"].clone()).expect("a stored connector");
        let view = serde_json::to_value(ConnectorView::from(&connector)).unwrap();
        assert_eq!(view, all[name]["view"], "{name}");
        let text = view.to_string();
        assert!(
            !text.contains("secret_arn"),
            "{name}: never the secret's ARN"
        );
    }
}

#[test]
fn a_stale_schedule_is_shown_as_written_without_examples_of_a_stale_template() {
    let all = fixtures();
    let mut stored = all["export"]["stored"].clone();
    stored["schedule"] = json!("rate(1 minute)");
    stored["export"]["key_template"] = json!("[table_name]/fixed");
    let connector: Connector = serde_json::from_value(stored).expect("still reads");
    let view = serde_json::to_value(ConnectorView::from(&connector)).unwrap();
    assert_eq!(view["schedule"], "rate(1 minute)");
    assert_eq!(view["export"]["key_template"], "[table_name]/fixed");
    assert!(view.get("key_examples").is_none());
}
