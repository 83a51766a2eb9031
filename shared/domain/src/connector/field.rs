//! Reading untrusted JSON objects field by field, collecting every violation instead of stopping
//! at the first, so a 400 can list each bad field with the rule it broke.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One rejected input field: dotted path (`export.format.delimiter`) and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// Takes fields out of one JSON object; whatever is left at `finish` is reported as unknown.
pub struct ObjectReader<'e> {
    path: String,
    map: Map<String, Value>,
    errors: &'e mut Vec<FieldError>,
}

impl<'e> ObjectReader<'e> {
    /// Starts reading `value` at `path` ("" for the document root). A non-object is reported
    /// and read as an empty object, so the caller's code path stays the same.
    pub fn new(path: &str, value: Value, errors: &'e mut Vec<FieldError>) -> Self {
        let map = match value {
            Value::Object(map) => map,
            other => {
                errors.push(FieldError::new(
                    display_path(path),
                    format!("must be a JSON object, not {}", json_kind(&other)),
                ));
                Map::new()
            }
        };
        Self {
            path: path.to_owned(),
            map,
            errors,
        }
    }

    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Removes `key`; `null` counts as absent. A value of the wrong type is reported.
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let value = self.take_raw(key)?;
        match serde_json::from_value::<T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let field = self.path_of(key);
                self.errors.push(FieldError::new(field, type_rule(&e)));
                None
            }
        }
    }

    /// Like `take`, and reports the field as required when it is absent.
    pub fn require<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        if self.map.get(key).is_none_or(|v| v.is_null()) {
            let field = self.path_of(key);
            self.errors.push(FieldError::new(field, "is required"));
            self.map.remove(key);
            return None;
        }
        self.take(key)
    }

    pub fn take_raw(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// Takes a nested object to read with its own reader.
    pub fn take_object(&mut self, key: &str) -> Option<Value> {
        self.take_raw(key)
    }

    /// Reports a field that must not be given (read-only, or not for this kind of connector).
    pub fn reject(&mut self, key: &str, rule: &str) {
        if self.map.remove(key).is_some() {
            let field = self.path_of(key);
            self.errors.push(FieldError::new(field, rule));
        }
    }

    pub fn error(&mut self, key: &str, rule: impl Into<String>) {
        let field = self.path_of(key);
        self.errors.push(FieldError::new(field, rule));
    }

    pub fn errors(&mut self) -> &mut Vec<FieldError> {
        self.errors
    }

    /// Reports every field nobody took as unknown.
    pub fn finish(self) {
        let mut unknown: Vec<String> = self.map.keys().cloned().collect();
        unknown.sort();
        for key in unknown {
            let field = if self.path.is_empty() {
                key
            } else {
                format!("{}.{key}", self.path)
            };
            self.errors
                .push(FieldError::new(field, "is not a known field; remove it"));
        }
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    }
}

pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde's messages are precise ("unknown variant `x`, expected one of `a`, `b`") but speak
/// Rust; turn the common ones into the vocabulary of a JSON API.
fn type_rule(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if let Some(rest) = text.strip_prefix("unknown variant ") {
        let rest = rest
            .replace(", expected one of ", " is not allowed; must be one of ")
            .replace(", expected ", " is not allowed; must be ");
        return format!("value {rest}");
    }
    if let Some(rest) = text.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let expected = match expected {
            "a string" | "a borrowed string" | "string or map" => "a string",
            "a boolean" => "true or false",
            e if e.starts_with("u32") || e.starts_with("u64") || e.starts_with("i64") => {
                "a whole number"
            }
            "a sequence" => "an array",
            e if e.starts_with("struct") || e.starts_with("a map") => "an object",
            e => e,
        };
        return format!("must be {expected}, not {found}");
    }
    if text.starts_with("invalid value: integer") {
        return "must be a non-negative whole number in range".to_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_violation_with_its_path() {
        let mut errors = Vec::new();
        let mut root = ObjectReader::new(
            "",
            json!({"name": 3, "bucket": "b", "extra": 1, "nested": {"deep": true, "x": 1}}),
            &mut errors,
        );
        assert_eq!(root.take::<String>("name"), None);
        assert_eq!(root.require::<String>("bucket").as_deref(), Some("b"));
        assert_eq!(root.require::<String>("region"), None);
        let nested = root.take_object("nested").unwrap();
        root.finish();
        let mut inner = ObjectReader::new("nested", nested, &mut errors);
        assert_eq!(inner.take::<bool>("deep"), Some(true));
        inner.finish();

        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.rule.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("name", "must be a string, not integer `3`"),
                ("region", "is required"),
                ("extra", "is not a known field; remove it"),
                ("nested.x", "is not a known field; remove it"),
            ]
        );
    }

    #[test]
    fn explains_enum_and_shape_errors() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "snake_case")]
        enum Mode {
            Role,
            AccessKey,
        }
        let cases: &[(Value, &str)] = &[
            (
                json!({"v": "roles"}),
                "value `roles` is not allowed; must be `role` or `access_key`",
            ),
            (json!({"v": 1}), "must be a string, not integer `1`"),
        ];
        for (input, expected) in cases {
            let mut errors = Vec::new();
            let mut r = ObjectReader::new("", input.clone(), &mut errors);
            assert!(r.take::<Mode>("v").is_none());
            r.finish();
            assert!(
                errors[0].rule.contains(expected),
                "{input}: got {:?}",
                errors[0].rule
            );
        }
        let mut errors = Vec::new();
        ObjectReader::new("export", json!([1]), &mut errors).finish();
        assert_eq!(
            errors,
            vec![FieldError::new(
                "export",
                "must be a JSON object, not an array"
            )]
        );
    }

    #[test]
    fn null_counts_as_absent() {
        let mut errors = Vec::new();
        let mut r = ObjectReader::new("", json!({"prefix": null}), &mut errors);
        assert_eq!(r.take::<String>("prefix"), None);
        r.finish();
        assert!(errors.is_empty());
    }
}
