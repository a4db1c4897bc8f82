//! The built-in demo: `brood` with no arguments, or `brood demo`.
//!
//! Fourteen small `sh` jobs, three at a time, with a one-second timeout: most
//! sleep a little and print, one burns some CPU, one fails, and one starts a
//! process tree (`sleep 30 & sleep 30`) that the timeout stops as a whole
//! group. It needs no input and ends within about three seconds.

use crate::cli::Halt;
use crate::runner::{Config, JobSpec, Source};
use std::collections::VecDeque;
use std::time::Duration;

/// The demo's settings.
pub fn config() -> Config {
    Config {
        jobs: 3,
        timeout: Some(Duration::from_secs(1)),
        grace: Duration::from_millis(300),
        retries: 0,
        halt: Halt::Never,
    }
}

/// The demo's jobs: (label, shell script).
const JOBS: &[(&str, &str)] = &[
    ("hello", "echo hello from job $BROOD_DEMO_SEQ; sleep 0.3"),
    ("nap-0.8", "sleep 0.8; echo napped for 0.8s"),
    (
        "tree",
        "echo starting two sleeps of 30s in one process group; sleep 30 & sleep 30",
    ),
    (
        "count",
        "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; echo counted to $i",
    ),
    ("nap-0.4", "sleep 0.4; echo napped for 0.4s"),
    ("fail", "echo this job fails on purpose >&2; exit 3"),
    ("nap-0.6", "sleep 0.6; echo napped for 0.6s"),
    ("lines", "for n in 1 2 3; do echo line $n; sleep 0.2; done"),
    ("nap-0.9", "sleep 0.9; echo napped for 0.9s"),
    ("uname", "uname -sr"),
    ("nap-0.5", "sleep 0.5; echo napped for 0.5s"),
    ("nap-0.7", "sleep 0.7; echo napped for 0.7s"),
    ("nap-0.3", "sleep 0.3; echo napped for 0.3s"),
    ("bye", "sleep 0.4; echo goodbye"),
];

/// The demo's jobs as a source.
pub fn source() -> Source {
    let jobs: VecDeque<JobSpec> = JOBS
        .iter()
        .enumerate()
        .map(|(i, (label, script))| {
            let script = script.replace("$BROOD_DEMO_SEQ", &(i + 1).to_string());
            JobSpec {
                seq: i as u64 + 1,
                input: label.as_bytes().to_vec(),
                argv: vec!["sh".into(), "-c".into(), script.into()],
            }
        })
        .collect();
    let total = jobs.len();
    Source::Fixed(jobs, total)
}

/// What the demo prints before it starts.
pub const INTRO: &str = "\
brood demo: 14 shell jobs, 3 at a time, each limited to 1s (output: tag).
  job 'tree' runs `sleep 30 & sleep 30`: at 1s its whole process group gets
  SIGTERM (then SIGKILL after 300ms), grandchild included. Job 'fail' exits 3.
  Try: brood run -j 4 --timeout 2s -- echo {#}: {} ::: a b c
";
