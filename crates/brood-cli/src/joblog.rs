//! The job log: JSON Lines, one record per finished job, in the order jobs
//! finish.
//!
//! Fields: `seq`, `input`, `argv`, `start` (RFC 3339, UTC), `runtime_s`,
//! `exit_code` (null if signalled), `signal` (null or number), `timed_out`,
//! `retries` (retries used), `user_s`, `sys_s`, `max_rss_bytes`,
//! `stdout_bytes`, `stderr_bytes`. With retries, timings, status and
//! resource usage are those of the last attempt. Strings that are not UTF-8
//! are logged with U+FFFD in place of invalid bytes.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One finished job.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Job number, from 1.
    pub seq: u64,
    /// The input.
    pub input: Vec<u8>,
    /// The argv that was run.
    pub argv: Vec<OsString>,
    /// When the last attempt started.
    pub start: Option<SystemTime>,
    /// How long the last attempt ran.
    pub runtime: Duration,
    /// The exit code, if the job exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the job, if any.
    pub signal: Option<i32>,
    /// Whether the last attempt ran out of time.
    pub timed_out: bool,
    /// Retries used.
    pub retries: u32,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub sys: Duration,
    /// Peak RSS in bytes.
    pub max_rss: u64,
    /// Bytes written to stdout.
    pub stdout_bytes: u64,
    /// Bytes written to stderr.
    pub stderr_bytes: u64,
}

impl Record {
    /// The record as one line of JSON, without the newline.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("{\"seq\":");
        let _ = write!(s, "{}", self.seq);
        s.push_str(",\"input\":");
        json_string(&mut s, &self.input);
        s.push_str(",\"argv\":[");
        for (i, arg) in self.argv.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_string(&mut s, arg.as_bytes());
        }
        s.push_str("],\"start\":");
        match self.start {
            Some(t) => {
                s.push('"');
                s.push_str(&rfc3339(t));
                s.push('"');
            }
            None => s.push_str("null"),
        }
        let _ = write!(s, ",\"runtime_s\":{:.6}", self.runtime.as_secs_f64());
        s.push_str(",\"exit_code\":");
        json_opt(&mut s, self.exit_code);
        s.push_str(",\"signal\":");
        json_opt(&mut s, self.signal);
        let _ = write!(
            s,
            ",\"timed_out\":{},\"retries\":{},\"user_s\":{:.6},\"sys_s\":{:.6},\
             \"max_rss_bytes\":{},\"stdout_bytes\":{},\"stderr_bytes\":{}}}",
            self.timed_out,
            self.retries,
            self.user.as_secs_f64(),
            self.sys.as_secs_f64(),
            self.max_rss,
            self.stdout_bytes,
            self.stderr_bytes,
        );
        s
    }
}

fn json_opt(s: &mut String, v: Option<i32>) {
    match v {
        Some(n) => {
            let _ = write!(s, "{n}");
        }
        None => s.push_str("null"),
    }
}

/// Appends `bytes` as a JSON string literal (lossy UTF-8).
pub fn json_string(s: &mut String, bytes: &[u8]) {
    s.push('"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            // Other control characters, plus the line separators that some
            // JavaScript parsers choke on.
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// `t` as RFC 3339 in UTC with milliseconds: `2024-05-01T12:34:56.789Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An open job log.
pub struct JobLog {
    file: File,
}

impl JobLog {
    /// Creates (truncates) the log file.
    pub fn create(path: &Path) -> io::Result<JobLog> {
        Ok(JobLog {
            file: File::create(path)?,
        })
    }

    /// Appends one record. Each record is one `write` of a whole line, so the
    /// file holds only complete records whenever brood stops.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        let mut line = record.to_json();
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }

    /// Flushes to the file system.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(bytes: &[u8]) -> String {
        let mut s = String::new();
        json_string(&mut s, bytes);
        s
    }

    #[test]
    fn escaping() {
        assert_eq!(js(b"plain"), r#""plain""#);
        assert_eq!(js(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(js(b"l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(
            js(b"\x00\x01\x08\x0c\x1f\x7f"),
            r#""\u0000\u0001\b\f\u001f\u007f""#
        );
        assert_eq!(js("é→😀".as_bytes()), "\"é→😀\"");
        assert_eq!(js("\u{2028}".as_bytes()), r#""\u2028""#);
        assert_eq!(js(b"\xff"), "\"\u{fffd}\"");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // end of Feb 2024
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_800); // 2100 is not leap
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00.000Z");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // Every day for 1000 years round-trips with a simple counter.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for day in 0..365_250 {
            assert_eq!(civil_from_days(day), (y, m, d));
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[m as usize - 1] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn record_json() {
        let r = Record {
            seq: 3,
            input: b"a \"b\"\n".to_vec(),
            argv: vec!["echo".into(), "a \"b\"\n".into()],
            start: Some(UNIX_EPOCH + Duration::from_millis(1500)),
            runtime: Duration::from_millis(250),
            exit_code: None,
            signal: Some(15),
            timed_out: true,
            retries: 1,
            user: Duration::from_micros(1),
            sys: Duration::ZERO,
            max_rss: 2048,
            stdout_bytes: 5,
            stderr_bytes: 0,
        };
        assert_eq!(
            r.to_json(),
            r#"{"seq":3,"input":"a \"b\"\n","argv":["echo","a \"b\"\n"],"start":"1970-01-01T00:00:01.500Z","runtime_s":0.250000,"exit_code":null,"signal":15,"timed_out":true,"retries":1,"user_s":0.000001,"sys_s":0.000000,"max_rss_bytes":2048,"stdout_bytes":5,"stderr_bytes":0}"#
        );
    }
}
