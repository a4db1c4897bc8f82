//! The built-in demo: `brood` with no arguments, or `brood demo`.
//!
//! Fourteen small `sh` jobs, three at a time, with a one-second timeout: most
//! sleep a little and print, one burns some CPU, one fails, and one starts a
//! process tree (`setsid sleep 30 & sleep 30`, one grandchild in a session
//! of its own) that the timeout stops as a whole. It needs no input and
//! ends within about three seconds.

use crate::job::{Confinement, JobContext, Leftovers, Save};
use crate::jobkey::JobKey;
use crate::jobs::{JobSource, JobSpec};
use crate::output::{Display, Mode};
use crate::progress::Bar;
use crate::schedule::{Plan, TimeoutSpec};
use crate::termseq::TermSeq;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

/// The demo's jobs: (label, shell script).
const JOBS: &[(&str, &str)] = &[
    (
        "hello",
        "echo hello from job $BROOD_SEQ in slot $BROOD_SLOT; sleep 0.3",
    ),
    ("nap-0.8", "sleep 0.8; echo napped for 0.8s"),
    (
        "tree",
        "echo starting a sleep of 30s in a session of its own, and one here; \
         setsid sleep 30 & sleep 30",
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

/// What the demo prints before it starts.
const INTRO: &str = "\
brood demo: 14 shell jobs, 3 at a time, each limited to 1s (output: --line-buffer --tag).
  job 'tree' runs `setsid sleep 30 & sleep 30`: at 1s its whole tree gets SIGTERM
  (then SIGKILL after 300ms), the grandchild that left its session included
  (in a cgroup of its own where brood can make one). Job 'fail' exits 3.
  Try: brood run -j 4 --timeout 2s -- echo {#}: {} ::: a b c
";

/// Runs the demo; the failures are on purpose, so its status is 0.
pub fn run() -> u8 {
    crate::say(format_args!("{INTRO}"));
    let jobs: Vec<JobSpec> = JOBS
        .iter()
        .enumerate()
        .map(|(i, (label, script))| {
            let argv = vec!["sh".into(), "-c".into(), (*script).into()];
            JobSpec {
                seq: i as u64 + 1,
                args: vec![label.as_bytes().to_vec()],
                key: JobKey::of_argv(&argv),
                argv,
            }
        })
        .collect();
    let tty = std::io::stderr().is_terminal();
    let display = Arc::new(Display::new(
        Mode::Line,
        false,
        false,
        tty.then(|| Bar::new(false)),
    ));
    let ctx = Arc::new(JobContext {
        termseq: TermSeq::grace(Duration::from_millis(300)),
        attempts: 1,
        retry_delay: None,
        display,
        tag: Some(crate::job::tag_with_input()),
        save: Save::No,
        verbose: false,
        memfree: None,
        confinement: Confinement {
            containment: Some(brood::Containment::Auto),
            cgroup_parent: None,
            pool: None,
        },
        wait_delay: crate::settings::DEFAULT_WAIT_DELAY,
        leftovers: Leftovers::Kill,
        tree_ends: Default::default(),
    });
    let plan = Plan {
        jobs: 3,
        delay: None,
        load: None,
        memfree: None,
        timeout: TimeoutSpec::Fixed(Duration::from_secs(1)),
        halt: None,
        summary: true,
        signal_grace: crate::settings::DEFAULT_SIGNAL_GRACE,
    };
    let _ = brood::become_subreaper();
    let status = crate::block_on(crate::schedule::run(
        plan,
        JobSource::fixed(jobs),
        ctx,
        None,
    ));
    match status {
        Ok(0..=101) => 0,
        Ok(code) => code,
        Err(e) => {
            crate::say(format_args!("brood: error: {e}\n"));
            255
        }
    }
}
