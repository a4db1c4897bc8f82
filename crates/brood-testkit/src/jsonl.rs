//! JSON Lines read strictly, with `serde_json`: for checking files a program
//! writes record by record (the `brood` command's job log).
//!
//! Stricter than `serde_json::from_str` into a [`Value`] in one way: an
//! object with the same key twice is an error, not "the last one wins",
//! since a writer that repeats a key is broken.

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;

/// Parses one JSON document: no trailing characters, no duplicate keys.
///
/// # Panics
///
/// On any syntax error, naming it and the text.
pub fn parse_strict(text: &str) -> Value {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value))
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {text:?}"));
    value
}

/// Reads a JSON Lines file: one [`parse_strict`] document per line, and the
/// last line terminated (a record cut short is an error).
///
/// # Panics
///
/// If the file cannot be read or any record is invalid.
pub fn read_file(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the last record of {} is incomplete",
        path.display()
    );
    text.lines().map(parse_strict).collect()
}

/// Deserializes a [`Value`], rejecting duplicate keys at every depth.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictValue)?;
            if object.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Value::Object(object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    // Scalars: as serde_json's own `Value` reads them.
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let text = r#"{"a": [1, -2, 3.5, "x\n", null, true, {"b": {}}], "c": "é"}"#;
        assert_eq!(
            parse_strict(text),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    #[should_panic(expected = "duplicate key \"k\"")]
    fn rejects_a_duplicate_key_at_any_depth() {
        parse_strict(r#"{"a": [{"k": 1, "k": 2}]}"#);
    }

    #[test]
    #[should_panic(expected = "trailing characters")]
    fn rejects_trailing_characters() {
        parse_strict(r#"{"a": 1} x"#);
    }

    #[test]
    fn reads_a_file_and_requires_its_last_record_whole() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.jsonl");
        std::fs::write(&whole, "{\"n\":1}\n{\"n\":2}\n").unwrap();
        let records = read_file(&whole);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1]["n"], 2);
        let cut = dir.path().join("cut.jsonl");
        std::fs::write(&cut, "{\"n\":1}\n{\"n\":").unwrap();
        let result = std::panic::catch_unwind(|| read_file(&cut));
        assert!(result.is_err(), "a record cut short was accepted");
    }
}
