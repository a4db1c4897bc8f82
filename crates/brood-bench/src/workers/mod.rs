//! Worker mode: one library, one case, one JSON line on stdout.
//!
//! Every async library runs the same scenario bodies
//! ([`async_scenarios`]), each on its own executor: brood and
//! `tokio::process` on a Tokio runtime ([`on_tokio`]), async-process on an
//! `async_executor` ([`async_proc`]). The raw baseline, blocking std on one
//! thread, has bodies of its own ([`std_lib`]).

mod async_proc;
mod async_scenarios;
mod on_tokio;
mod std_lib;

use crate::params::{Case, WorkerOptions, S4};
use crate::report::Report;
use crate::scenarios::Lib;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

pub fn run(lib: Lib, case: &Case, options: &WorkerOptions) -> io::Result<Report> {
    let warmup = options.warmup;
    let mut report = match lib {
        Lib::Std => std_lib::run(case, warmup)?,
        Lib::BroodPidfd | Lib::BroodSignal | Lib::BroodPidfdCt | Lib::BroodSignalCt => {
            let want = match lib.brood_reaper() {
                Some("pidfd") => brood::reaper::Strategy::Pidfd,
                _ => brood::reaper::Strategy::Signal,
            };
            let got = brood::reaper::try_current()?;
            if got != want {
                return Err(io::Error::other(format!(
                    "brood chose {got:?}, expected {want:?}: is BROOD_REAPER set?"
                )));
            }
            on_tokio::run::<on_tokio::Brood>(case, warmup, lib.flavor(), false)?
        }
        Lib::Tokio | Lib::TokioCt => {
            on_tokio::run::<on_tokio::TokioProcess>(case, warmup, lib.flavor(), true)?
        }
        Lib::AsyncProcess => async_proc::run(case, warmup)?,
    };
    report.set("n", case.n().unwrap_or(0) as f64);
    Ok(report)
}

fn self_exe() -> io::Result<PathBuf> {
    std::env::current_exe()
}

/// S4's program and arguments.
fn capture_argv(p: &S4) -> (&'static str, Vec<OsString>) {
    (
        "head",
        vec!["-c".into(), p.bytes.to_string().into(), "/dev/zero".into()],
    )
}

pub(crate) use async_scenarios::{AsyncLib, Spec};

pub(crate) fn check(status: std::process::ExitStatus) -> io::Result<()> {
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("child failed: {status}")))
    }
}

fn parse_stamp(stdout: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(stdout)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad stamp {stdout:?}")))
}
