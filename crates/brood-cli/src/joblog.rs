//! The job log: one record per finished job, in the order jobs finish.
//!
//! JSON Lines by default, written with serde_json, one object per line;
//! every field is documented in the crate's README. With
//! `--joblog-format tsv`, GNU parallel's tab-separated format instead, for
//! the tools that read it. `--joblog -` writes to stdout; `--joblog +FILE`
//! appends, as do `--resume`, `--resume-failed` and `--retry-failed`.

use crate::jobkey::JobKey;
use crate::output::Display;
use crate::template::display_argv;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How a job ended, as the log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exit status 0.
    Ok,
    /// Non-zero exit, killed by a signal, or could not start.
    Failed,
    /// Ran out of time and was stopped.
    TimedOut,
    /// Stopped by brood before it could finish (Ctrl-C, SIGTERM, `--halt
    /// now`, a broken stdout): `--resume` runs it again.
    Stopped,
    /// Stopped by `--memfree` (less than half of SIZE was available) with
    /// no attempt left: counted as failed, and `--resume` runs it again.
    LowMemory,
}

/// One finished job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Job number, from 1.
    pub seq: u64,
    /// The content key (see `jobkey`).
    pub key: JobKey,
    /// The job's arguments, joined with spaces.
    pub input: String,
    /// The argv that was run.
    pub argv: Vec<String>,
    /// When the last attempt started (RFC 3339, UTC, milliseconds).
    pub start: String,
    /// How long the last attempt ran, in seconds.
    pub runtime_s: f64,
    /// The exit code, if the job exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the job, if any.
    pub signal: Option<i32>,
    /// Whether the last attempt ran out of time.
    pub timed_out: bool,
    /// Attempts after the first.
    pub retries: u32,
    /// User CPU time of the last attempt, in seconds.
    pub user_s: f64,
    /// System CPU time of the last attempt, in seconds.
    pub sys_s: f64,
    /// Peak RSS of the last attempt's leader, in bytes.
    pub max_rss_bytes: u64,
    /// User CPU time of the last attempt's whole tree (every process that
    /// ran in its cgroup), in seconds; `null` without a cgroup.
    pub tree_user_s: Option<f64>,
    /// System CPU time of the last attempt's whole tree, in seconds.
    pub tree_sys_s: Option<f64>,
    /// The whole tree's peak memory, in bytes; `null` without a cgroup or
    /// where the memory controller is not enabled for it.
    pub tree_peak_bytes: Option<u64>,
    /// Bytes the job wrote to stdout.
    pub stdout_bytes: u64,
    /// Bytes the job wrote to stderr.
    pub stderr_bytes: u64,
    /// How the last attempt was contained: `cgroup` or `group`; `null`
    /// with `--contain none`.
    pub containment: Option<String>,
    /// Processes of the last attempt's tree still running when it was
    /// done (its leader had exited and its output was closed, or
    /// `--wait-delay` had run out); `null` with `--contain none`.
    pub leftovers: Option<u64>,
    /// How the job ended.
    pub outcome: Outcome,
}

/// `t` as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The log's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines.
    Json,
    /// GNU parallel's TSV.
    Tsv,
}

/// Where the log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `--joblog -`.
    Stdout,
    /// A file; `append` keeps what it holds.
    File {
        /// The path.
        path: PathBuf,
        /// Append rather than truncate.
        append: bool,
    },
}

impl Target {
    /// Parses `--joblog`: `-` is stdout, `+FILE` appends.
    pub fn parse(arg: &std::ffi::OsStr) -> Result<Target, String> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = arg.as_bytes();
        match bytes {
            b"" | b"+" => Err("--joblog needs a file name".into()),
            b"-" => Ok(Target::Stdout),
            [b'+', rest @ ..] => Ok(Target::File {
                path: PathBuf::from(std::ffi::OsStr::from_bytes(rest)),
                append: true,
            }),
            _ => Ok(Target::File {
                path: PathBuf::from(arg),
                append: false,
            }),
        }
    }

    /// The file, if the log is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Target::Stdout => None,
            Target::File { path, .. } => Some(path),
        }
    }
}

enum Sink {
    File(File),
    Stdout(Arc<Display>),
}

/// An open job log.
pub struct JobLog {
    sink: Sink,
    format: Format,
}

/// The TSV header line, as GNU parallel writes it.
pub const TSV_HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

impl JobLog {
    /// Opens the log. `append` also holds for `--resume` and friends.
    pub fn open(
        target: &Target,
        format: Format,
        append: bool,
        display: Arc<Display>,
    ) -> io::Result<JobLog> {
        let mut log = match target {
            Target::Stdout => JobLog {
                sink: Sink::Stdout(display),
                format,
            },
            Target::File { path, append: plus } => {
                let append = append || *plus;
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(path)?;
                let empty = file.metadata()?.len() == 0;
                let mut log = JobLog {
                    sink: Sink::File(file),
                    format,
                };
                if format == Format::Tsv && empty {
                    log.write_line(TSV_HEADER.as_bytes())?;
                }
                return Ok(log);
            }
        };
        if format == Format::Tsv {
            log.write_line(TSV_HEADER.as_bytes())?;
        }
        Ok(log)
    }

    /// Appends one record. Each record is one `write` of a whole line, so
    /// the file holds only complete records whenever brood stops.
    pub fn write(&mut self, record: &Record, argv: &[OsString]) -> io::Result<()> {
        let line = match self.format {
            Format::Json => {
                let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
                line.push(b'\n');
                line
            }
            Format::Tsv => tsv_line(record, argv).into_bytes(),
        };
        self.write_line(&line)
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::File(f) => f.write_all(line),
            Sink::Stdout(display) => {
                display.stdout_line(line);
                Ok(())
            }
        }
    }

    /// At the end of a run: makes what was written durable. Every record
    /// was written whole as its job ended; syncing the file once more
    /// means a log on a shared file system is complete on the server even
    /// if the node goes down right after brood (a pre-empted cloud node).
    /// A log that cannot be synced (a pipe, `/dev/stderr`) is left as is.
    pub fn finish(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::File(f) => match f.sync_data() {
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
                other => other,
            },
            Sink::Stdout(_) => Ok(()),
        }
    }
}

/// One record in GNU parallel's format: Seq, Host (`:` for this machine),
/// Starttime (epoch seconds, 3 decimals), JobRuntime (`%10.3f`), Send,
/// Receive (both 0: nothing is transferred), Exitval (-1 when brood stopped the job), Signal, Command (the
/// command line, newlines written as NUL).
pub fn tsv_line(record: &Record, argv: &[OsString]) -> String {
    let start = humantime::parse_rfc3339(&record.start)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    let exitval = match (record.outcome, record.exit_code) {
        (Outcome::TimedOut | Outcome::Stopped | Outcome::LowMemory, _) => -1,
        (_, Some(code)) => code,
        (_, None) => -1,
    };
    let command = display_argv(argv).replace('\n', "\0");
    format!(
        "{}\t:\t{start:.3}\t{:10.3}\t0\t0\t{exitval}\t{}\t{command}\n",
        record.seq,
        record.runtime_s,
        record.signal.unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            seq: 3,
            key: "00".repeat(16).parse().unwrap(),
            input: "a \"b\"\n".into(),
            argv: vec!["echo".into(), "a \"b\"\n".into()],
            start: rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(1500)),
            runtime_s: 0.25,
            exit_code: None,
            signal: Some(15),
            timed_out: true,
            retries: 1,
            user_s: 0.000001,
            sys_s: 0.0,
            max_rss_bytes: 2048,
            tree_user_s: Some(0.5),
            tree_sys_s: Some(0.25),
            tree_peak_bytes: None,
            stdout_bytes: 5,
            stderr_bytes: 0,
            containment: Some("cgroup".into()),
            leftovers: Some(1),
            outcome: Outcome::TimedOut,
        }
    }

    #[test]
    fn json_round_trips() {
        let r = record();
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"seq":3,"key":"#), "{line}");
        assert!(
            line.contains(r#""start":"1970-01-01T00:00:01.500Z""#),
            "{line}"
        );
        assert!(line.contains(r#""outcome":"timed_out""#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }

    #[test]
    fn tsv_is_gnu_parallels() {
        let r = record();
        let argv: Vec<OsString> = vec!["echo".into(), "x\ny".into()];
        assert_eq!(
            tsv_line(&r, &argv),
            "3\t:\t1.500\t     0.250\t0\t0\t-1\t15\techo 'x\0y'\n"
        );
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("-".as_ref()), Ok(Target::Stdout));
        assert_eq!(
            Target::parse("+log".as_ref()),
            Ok(Target::File {
                path: "log".into(),
                append: true
            })
        );
        assert!(Target::parse("".as_ref()).is_err());
    }
}
