//! Restarts from a job log: `--resume`, `--resume-failed`,
//! `--retry-failed`.
//!
//! The log is keyed by each job's content key, not its sequence number, so
//! a resumed run stays right when the inputs were reordered or new ones
//! added (GNU parallel, keyed by sequence number, then runs the wrong
//! jobs). When a key appears more than once (a log appended to by several
//! runs), its last record counts.
//!
//! - `--resume` skips every job the log records, except those brood itself
//!   stopped before they could finish (`stopped`, `low_memory`).
//! - `--resume-failed` skips only the jobs that succeeded.
//! - `--retry-failed` runs only the jobs that failed, with the argv the
//!   log recorded, ignoring the command line's command and inputs.
//!
//! Both of brood's formats are read: JSON Lines by their `key`, and GNU
//! parallel's TSV by the key of its Command column split back into words.

use crate::jobkey::JobKey;
use crate::joblog::{Outcome, Record};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::Path;

/// What the log says of one job key.
#[derive(Clone, Debug)]
pub struct Logged {
    /// The last recorded outcome.
    pub outcome: Outcome,
    /// The logged argv.
    pub argv: Vec<OsString>,
    /// The order in which the key first appeared.
    pub first_seen: usize,
}

/// Reads a log; a missing file is an empty log.
pub fn read(path: &Path) -> Result<HashMap<JobKey, Logged>, String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(format!("cannot read job log {}: {e}", path.display())),
    };
    let mut jobs: HashMap<JobKey, Logged> = HashMap::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() || line.starts_with(b"Seq\tHost\t") {
            continue;
        }
        let bad = |why: String| format!("job log {} line {}: {why}", path.display(), n + 1);
        let (key, outcome, argv) = if line.starts_with(b"{") {
            let r: Record = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
            (
                r.key,
                r.outcome,
                r.argv.into_iter().map(OsString::from).collect(),
            )
        } else {
            tsv(line).ok_or_else(|| bad("neither a JSON record nor GNU parallel's TSV".into()))?
        };
        let first_seen = jobs.get(&key).map_or(jobs.len(), |l| l.first_seen);
        jobs.insert(
            key,
            Logged {
                outcome,
                argv,
                first_seen,
            },
        );
    }
    Ok(jobs)
}

/// A TSV line: its key (from the command), outcome and argv.
fn tsv(line: &[u8]) -> Option<(JobKey, Outcome, Vec<OsString>)> {
    let line = std::str::from_utf8(line).ok()?;
    let fields: Vec<&str> = line.splitn(9, '\t').collect();
    if fields.len() != 9 {
        return None;
    }
    let exitval: i64 = fields[6].trim().parse().ok()?;
    let signal: i64 = fields[7].trim().parse().ok()?;
    let command = fields[8].replace('\0', "\n");
    let argv: Vec<OsString> = shlex::split(&command)?
        .into_iter()
        .map(OsString::from)
        .collect();
    let outcome = match (exitval, signal) {
        (0, 0) => Outcome::Ok,
        // GNU parallel writes -1 for jobs it killed; so does brood, for
        // timeouts and its own stops. Neither finished: run them again.
        (-1, _) => Outcome::Stopped,
        _ => Outcome::Failed,
    };
    Some((JobKey::of_argv(&argv), outcome, argv))
}

/// The keys `--resume` skips.
pub fn resume_skips(log: &HashMap<JobKey, Logged>) -> HashSet<JobKey> {
    log.iter()
        .filter(|(_, l)| !matches!(l.outcome, Outcome::Stopped | Outcome::LowMemory))
        .map(|(k, _)| *k)
        .collect()
}

/// The keys `--resume-failed` skips.
pub fn resume_failed_skips(log: &HashMap<JobKey, Logged>) -> HashSet<JobKey> {
    log.iter()
        .filter(|(_, l)| l.outcome == Outcome::Ok)
        .map(|(k, _)| *k)
        .collect()
}

/// The argvs `--retry-failed` runs again, in the order the log first
/// recorded them.
pub fn retry_failed(log: &HashMap<JobKey, Logged>) -> Vec<Vec<OsString>> {
    let mut failed: Vec<&Logged> = log.values().filter(|l| l.outcome != Outcome::Ok).collect();
    failed.sort_by_key(|l| l.first_seen);
    failed.into_iter().map(|l| l.argv.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_record_wins_and_tsv_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rec = |argv: &[&str], outcome: &str| {
            let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            let key = JobKey::of_argv(&argv);
            format!(
                r#"{{"seq":1,"key":"{key}","input":"","argv":{},"start":"1970-01-01T00:00:00.000Z","runtime_s":0.0,"exit_code":0,"signal":null,"timed_out":false,"retries":0,"user_s":0.0,"sys_s":0.0,"max_rss_bytes":0,"stdout_bytes":0,"stderr_bytes":0,"outcome":"{outcome}"}}"#,
                serde_json::to_string(&argv).unwrap()
            )
        };
        let text = [
            rec(&["a"], "failed"),
            rec(&["b"], "ok"),
            rec(&["a"], "ok"),
            rec(&["c"], "stopped"),
            rec(&["d"], "failed"),
        ]
        .join("\n")
            + "\n"
            + "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
            + "9\t:\t1.0\t     0.100\t0\t0\t2\t0\techo 'x y'\n";
        std::fs::write(&path, text).unwrap();
        let log = read(&path).unwrap();
        assert_eq!(log.len(), 5);
        let key = |w: &[&str]| JobKey::of_argv(w);
        let skips = resume_skips(&log);
        assert!(skips.contains(&key(&["a"])) && !skips.contains(&key(&["c"])));
        let skips = resume_failed_skips(&log);
        assert!(skips.contains(&key(&["a"])) && !skips.contains(&key(&["d"])));
        let retry = retry_failed(&log);
        assert_eq!(
            retry,
            [
                vec![OsString::from("c")],
                vec!["d".into()],
                vec!["echo".into(), "x y".into()]
            ]
        );
        assert!(read(&dir.path().join("missing")).unwrap().is_empty());
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(read(&path).unwrap_err().contains("line 1"));
    }
}
