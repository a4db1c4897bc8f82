//! The one JSON line a worker prints: named measurements plus notes.
//!
//! `{"metrics":{"wall_us_per_op":310.2,...},"notes":["..."]}`

use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub metrics: BTreeMap<String, f64>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn set(&mut self, key: &str, value: f64) {
        self.metrics.insert(key.to_owned(), value);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn to_json(&self) -> String {
        let metrics: Map<String, Value> = self
            .metrics
            .iter()
            .map(|(k, v)| {
                let value = serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number);
                (k.clone(), value)
            })
            .collect();
        let notes = self.notes.iter().cloned().map(Value::String).collect();
        let mut root = Map::new();
        root.insert("metrics".into(), Value::Object(metrics));
        root.insert("notes".into(), Value::Array(notes));
        Value::Object(root).to_string()
    }

    /// Parses the last line of a worker's stdout that holds a JSON object.
    pub fn parse(stdout: &str) -> Result<Report, String> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| format!("no JSON line in worker output {stdout:?}"))?;
        let value: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let mut report = Report::default();
        if let Some(metrics) = value.get("metrics").and_then(Value::as_object) {
            for (k, v) in metrics {
                // A null (NaN, infinity) is left out: the table shows "n/a".
                if let Some(x) = v.as_f64() {
                    report.metrics.insert(k.clone(), x);
                }
            }
        }
        if let Some(notes) = value.get("notes").and_then(Value::as_array) {
            report
                .notes
                .extend(notes.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut r = Report::default();
        r.set("a", 1.5);
        r.set("nan", f64::NAN);
        r.note("hello \"x\"");
        let back = Report::parse(&format!("noise\n{}\n", r.to_json())).unwrap();
        assert_eq!(back.metrics.get("a"), Some(&1.5));
        assert!(!back.metrics.contains_key("nan"));
        assert_eq!(back.notes, vec!["hello \"x\"".to_owned()]);
    }
}
