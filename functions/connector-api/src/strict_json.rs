//! JSON bodies read strictly: a key repeated in one object is an error, not "last one wins", so
//! a client (or a proxy) cannot send two values of which we silently take one.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as JSON, refusing repeated keys.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|s| s.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("the key {key:?} appears twice")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"name": "a", "name": "b"}"#,
                Some(r#""name" appears twice"#),
            ),
            (
                r#"{"auth": {"mode": "role", "mode": "access_key"}}"#,
                Some(r#""mode" appears twice"#),
            ),
            (
                r#"[{"a": 1}, {"a": 1, "a": 2}]"#,
                Some(r#""a" appears twice"#),
            ),
            (r#"{"a": 1, "A": 2}"#, None),
            (r#"{"a": {"a": 1}}"#, None),
            (
                r#"{"n": -1.5e3, "big": 18446744073709551615, "x": [true, null, "é"]}"#,
                None,
            ),
        ];
        for (text, want) in cases {
            let got = from_slice(text.as_bytes());
            match want {
                Some(message) => {
                    let err = got.expect_err(text).to_string();
                    assert!(err.contains(message), "{text}: {err}");
                }
                None => assert_eq!(
                    got.expect(text),
                    serde_json::from_str::<Value>(text).unwrap(),
                    "{text}: same value as serde_json"
                ),
            }
        }
    }
}
