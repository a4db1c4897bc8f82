//! Job logs after the run: `brood log merge` makes one log of many (the
//! shards of a cluster run, a run and its resumptions), and `brood log
//! report` sums one up.
//!
//! A job log is JSON Lines, one object per finished job (see
//! [`crate::joblog`]); a log appended to by `--resume` or `+FILE` holds one
//! record per run of a job. These tools read any such object: they need
//! only a job key, the `"key"` field or, for logs written before it existed,
//! one computed from `"argv"` as [`JobKey::of_argv`] does (exact only where
//! the argv was valid UTF-8: the log replaces other bytes with U+FFFD).
//! Everything else is optional; a field that is missing or of the wrong type
//! counts as absent. A line that is not a JSON object, or has no usable key,
//! is reported as [`Malformed`] and skipped.
//!
//! - [`read_log`] parses one file into [`Attempt`]s.
//! - [`merge()`] picks one attempt per job, and reports duplicates, conflicts
//!   and, given the jobs expected, the ones that never ran.
//! - [`report()`] counts and ranks the jobs of a merged log.
//!
//! # Caveats
//!
//! Attempts are ordered by their `"start"` time, so merging logs written on
//! machines whose clocks disagree can order two attempts of one job wrongly.
//! Within one file, and between files with equal times, file order decides.

mod merge;
mod report;

pub use merge::{merge, Expected, Merged};
pub use report::report;

use crate::jobkey::JobKey;
pub use crate::joblog::Outcome;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::SystemTime;

/// A job log, read: its attempts in file order, and the lines that could not
/// be used.
#[derive(Debug)]
pub struct LogFile {
    /// The usable records, in file order.
    pub attempts: Vec<Attempt>,
    /// The lines that were not.
    pub malformed: Vec<Malformed>,
}

/// Where a record sits: file name and line number (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The log's name.
    pub file: Arc<str>,
    /// The line, from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A line of a log that is not a usable record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// Where it is.
    pub at: Location,
    /// Why it cannot be used.
    pub reason: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// Whether an attempt with this outcome has a result: `stopped` and
/// `low_memory` jobs were cut short by brood (or the engine around it), and
/// `--resume` runs them again.
pub fn has_result(outcome: Outcome) -> bool {
    !matches!(outcome, Outcome::Stopped | Outcome::LowMemory)
}

/// One record: one attempt at one job.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The job's key.
    pub key: JobKey,
    /// Where the record is.
    pub at: Location,
    /// The record.
    pub record: Map<String, Value>,
    /// The line as written (without its line end), to copy it unchanged.
    pub(crate) raw: String,
    /// Whether the record holds `"key"` itself (else it was computed from
    /// `"argv"`).
    pub(crate) has_key_field: bool,
    /// `"start"`, if it is an RFC 3339 time.
    pub(crate) start: Option<SystemTime>,
}

impl Attempt {
    /// How the attempt ended: its `"outcome"`, or for a record written
    /// before that field existed, what its exit code and `"timed_out"` say.
    pub fn outcome(&self) -> Outcome {
        if let Some(outcome) = self
            .record
            .get("outcome")
            .and_then(|v| Outcome::deserialize(v).ok())
        {
            return outcome;
        }
        let flag = |name: &str| self.record.get(name).and_then(Value::as_bool) == Some(true);
        if flag("timed_out") {
            Outcome::TimedOut
        } else if self.int("exit_code") == Some(0) && self.int("signal").is_none() {
            Outcome::Ok
        } else {
            Outcome::Failed
        }
    }

    /// What to call the job in messages: its input, else its argv, else its
    /// key.
    pub fn label(&self) -> String {
        if let Some(input) = self.record.get("input").and_then(Value::as_str) {
            return input.to_string();
        }
        if let Some(argv) = self.argv() {
            return argv.join(" ");
        }
        self.key.to_string()
    }

    /// `"argv"`, if it is an array of strings.
    pub fn argv(&self) -> Option<Vec<&str>> {
        let items = self.record.get("argv")?.as_array()?;
        items.iter().map(Value::as_str).collect()
    }

    /// A numeric field, if it is a finite number.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.record
            .get(name)
            .and_then(Value::as_f64)
            .filter(|n| n.is_finite())
    }

    /// An integer field.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.record.get(name).and_then(Value::as_i64)
    }

    /// The record as one line of JSON, with `"key"` added first if the record
    /// did not hold it.
    pub fn to_line(&self) -> String {
        if self.has_key_field {
            return self.raw.clone();
        }
        // Splice the key in after the opening brace, so the rest of the line
        // stays byte for byte as written (serde_json would reorder fields).
        let body = self.raw.trim_start();
        let rest = body[1..].trim_start();
        let comma = if rest.starts_with('}') { "" } else { "," };
        format!("{{\"key\":\"{}\"{comma}{rest}", self.key)
    }
}

/// Reads a job log. I/O errors are errors; lines that are not usable records
/// are collected in [`LogFile::malformed`]. Blank lines are skipped.
pub fn read_log(name: &str, mut reader: impl BufRead) -> io::Result<LogFile> {
    let name: Arc<str> = Arc::from(name);
    let mut log = LogFile {
        attempts: Vec::new(),
        malformed: Vec::new(),
    };
    let mut bytes = Vec::new();
    for line in 1.. {
        bytes.clear();
        if reader.read_until(b'\n', &mut bytes)? == 0 {
            break;
        }
        let torn = bytes.last() != Some(&b'\n');
        let at = Location {
            file: name.clone(),
            line,
        };
        match parse_line(&bytes, at.clone()) {
            Ok(Some(attempt)) => log.attempts.push(attempt),
            Ok(None) => {}
            Err(reason) => {
                let reason = if torn {
                    format!("{reason} (the last line, without a line end: torn?)")
                } else {
                    reason
                };
                log.malformed.push(Malformed { at, reason });
            }
        }
    }
    Ok(log)
}

/// One line: `Ok(None)` if blank.
fn parse_line(bytes: &[u8], at: Location) -> Result<Option<Attempt>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return Ok(None);
    }
    let record = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("not JSON ({e})")),
    };
    let (key, has_key_field) = match record.get("key") {
        Some(Value::String(hex)) => (hex.parse::<JobKey>().map_err(|e| e.to_string())?, true),
        Some(_) => return Err("\"key\" is not a string".into()),
        None => {
            let argv = record
                .get("argv")
                .and_then(Value::as_array)
                .and_then(|items| items.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
                .ok_or("no \"key\", and no \"argv\" of strings to compute it from")?;
            (JobKey::of_argv(argv), false)
        }
    };
    let start = record
        .get("start")
        .and_then(Value::as_str)
        .and_then(|s| humantime::parse_rfc3339(s).ok());
    Ok(Some(Attempt {
        key,
        at,
        record,
        raw: text.to_string(),
        has_key_field,
        start,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with the fields the tests need, as brood writes them; `extra`
    /// is spliced in last (`,"outcome":"stopped"`, ...). Without an outcome
    /// in `extra`, it is `ok` for exit 0 and `failed` otherwise.
    pub(crate) fn line(input: &str, exit: Option<i32>, start_ms: u32, extra: &str) -> String {
        let argv = format!("[\"work\",\"{input}\"]");
        let key = JobKey::of_argv(["work", input]);
        let outcome = match exit {
            _ if extra.contains("\"outcome\"") => String::new(),
            Some(0) => ",\"outcome\":\"ok\"".into(),
            _ => ",\"outcome\":\"failed\"".into(),
        };
        let extra = format!("{outcome}{extra}");
        let exit = exit.map_or("null".to_string(), |c| c.to_string());
        let signal = if exit == "null" { "15" } else { "null" };
        format!(
            "{{\"key\":\"{key}\",\"seq\":1,\"input\":\"{input}\",\"argv\":{argv},\
             \"start\":\"2024-05-01T12:00:{:02}.{:03}Z\",\"runtime_s\":1.5,\
             \"exit_code\":{exit},\"signal\":{signal},\"timed_out\":false,\
             \"user_s\":1.0,\"sys_s\":0.25,\"max_rss_bytes\":1048576{extra}}}",
            start_ms / 1000,
            start_ms % 1000
        )
    }

    pub(crate) fn log(name: &str, lines: &[String]) -> LogFile {
        let mut text = lines.join("\n");
        text.push('\n');
        read_log(name, text.as_bytes()).unwrap()
    }

    #[test]
    fn reads_records_and_reports_bad_lines() {
        let good = line("a", Some(0), 1000, "");
        let mut text = format!(
            "{good}\n\nnot json\n[1,2]\n{{\"key\":\"abc\"}}\n{{\"key\":7}}\n{{\"seq\":1}}\n\
             {{\"argv\":[\"x\",3]}}\n"
        )
        .into_bytes();
        text.extend_from_slice(b"\xff\n");
        text.extend_from_slice(good.as_bytes());
        let log = read_log("a.jsonl", text.as_slice()).unwrap();
        assert_eq!(log.attempts.len(), 2);
        assert_eq!(log.attempts[0].at.line, 1);
        assert_eq!(log.attempts[1].at.line, 10);
        let reasons: Vec<String> = log.malformed.iter().map(|m| m.to_string()).collect();
        let expect = [
            "a.jsonl:3: not JSON",
            "a.jsonl:4: not a JSON object",
            "a.jsonl:5: job key \"abc\" is not 32 hex digits",
            "a.jsonl:6: \"key\" is not a string",
            "a.jsonl:7: no \"key\"",
            "a.jsonl:8: no \"key\"",
            "a.jsonl:9: not UTF-8",
        ];
        assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
        for (got, want) in reasons.iter().zip(expect) {
            assert!(got.starts_with(want), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn a_torn_last_line_says_so() {
        let good = line("a", Some(0), 1000, "");
        let text = format!("{good}\n{}", &good[..40]);
        let log = read_log("a.jsonl", text.as_bytes()).unwrap();
        assert_eq!(log.attempts.len(), 1);
        assert!(
            log.malformed[0].reason.contains("torn"),
            "{:?}",
            log.malformed
        );
        // A complete last line without a line end is fine.
        let log = read_log("a.jsonl", good.as_bytes()).unwrap();
        assert_eq!((log.attempts.len(), log.malformed.len()), (1, 0));
    }

    #[test]
    fn keys_come_from_the_record_or_its_argv() {
        let with_key = log("a", &[line("in-1", Some(0), 0, "")]);
        let a = &with_key.attempts[0];
        assert!(a.has_key_field);
        assert_eq!(a.key, JobKey::of_argv(["work", "in-1"]));
        // Today's log has no key: it is computed from the argv, and added
        // first when the record is copied out.
        let raw = r#"{"seq":3,"input":"x y","argv":["echo","x y"],"exit_code":0}"#;
        let old = read_log("old", raw.as_bytes()).unwrap();
        let a = &old.attempts[0];
        assert!(!a.has_key_field);
        assert_eq!(a.key, JobKey::of_argv(["echo", "x y"]));
        let out = a.to_line();
        assert_eq!(
            out,
            format!(
                r#"{{"key":"{}","seq":3,"input":"x y","argv":["echo","x y"],"exit_code":0}}"#,
                a.key
            )
        );
        assert!(serde_json::from_str::<Value>(&out).is_ok());
        // A record that has its key is copied byte for byte.
        let spaced = format!("{{ \"key\" : \"{}\" ,\"exit_code\": 0 }}", a.key);
        let copy = read_log("s", spaced.as_bytes()).unwrap();
        assert_eq!(copy.attempts[0].to_line(), spaced);
    }

    #[test]
    fn outcomes() {
        let outcome = |extra: &str, exit: Option<i32>| {
            log("a", &[line("x", exit, 0, extra)]).attempts[0].outcome()
        };
        assert_eq!(outcome("", Some(0)), Outcome::Ok);
        assert_eq!(outcome("", Some(3)), Outcome::Failed);
        assert_eq!(outcome("", None), Outcome::Failed);
        for (name, want) in [
            ("ok", Outcome::Ok),
            ("failed", Outcome::Failed),
            ("timed_out", Outcome::TimedOut),
            ("stopped", Outcome::Stopped),
            ("low_memory", Outcome::LowMemory),
        ] {
            let extra = format!(",\"outcome\":\"{name}\"");
            assert_eq!(outcome(&extra, None), want, "{name}");
        }
        // The "outcome" field decides over the exit code.
        assert_eq!(
            outcome(",\"outcome\":\"stopped\"", Some(0)),
            Outcome::Stopped
        );
        // Records from before "outcome": the exit code and "timed_out".
        let old = |text: &[u8]| read_log("o", text).unwrap().attempts[0].outcome();
        assert_eq!(
            old(br#"{"argv":["a"],"exit_code":0,"signal":null}"#),
            Outcome::Ok
        );
        assert_eq!(
            old(br#"{"argv":["a"],"exit_code":null,"signal":15,"timed_out":true}"#),
            Outcome::TimedOut
        );
        // An outcome brood does not write is not trusted: the exit code decides.
        assert_eq!(
            old(br#"{"argv":["a"],"exit_code":3,"outcome":"fine"}"#),
            Outcome::Failed
        );
        // Exit 0 with a signal set is not a success; neither is a missing exit.
        let odd = read_log(
            "o",
            br#"{"argv":["a"],"exit_code":0,"signal":9}"#.as_slice(),
        )
        .unwrap();
        assert_eq!(odd.attempts[0].outcome(), Outcome::Failed);
        let bare = read_log("b", br#"{"argv":["a"]}"#.as_slice()).unwrap();
        assert_eq!(bare.attempts[0].outcome(), Outcome::Failed);
    }

    #[test]
    fn labels_and_fields() {
        let a = &log("a", &[line("in-7", Some(0), 0, "")]).attempts[0];
        assert_eq!(a.label(), "in-7");
        assert_eq!(a.number("user_s"), Some(1.0));
        assert_eq!(a.number("input"), None);
        assert_eq!(a.int("max_rss_bytes"), Some(1_048_576));
        assert_eq!(
            a.start,
            humantime::parse_rfc3339("2024-05-01T12:00:00.000Z").ok()
        );
        let b = &read_log(
            "b",
            br#"{"argv":["ls","-l"],"start":"yesterday"}"#.as_slice(),
        )
        .unwrap()
        .attempts[0];
        assert_eq!(b.label(), "ls -l");
        assert_eq!(b.start, None);
        let c = &read_log(
            "c",
            br#"{"key":"e3b0c44298fc1c149afbf4c8996fb924"}"#.as_slice(),
        )
        .unwrap()
        .attempts[0];
        assert_eq!(c.label(), "e3b0c44298fc1c149afbf4c8996fb924");
    }
}
