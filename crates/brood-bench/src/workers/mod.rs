//! Worker mode: one library, one scenario, one JSON line on stdout.
//!
//! Every library runs the same scenario bodies, written once per API:
//! `std_lib` (blocking, one thread), `tokio_style` (brood and
//! `tokio::process`, whose APIs match, from one macro so the code is
//! identical), and `async_proc` (async-process on its own executor).

// First: the macro is used by the modules below it.
#[macro_use]
mod tokio_style;

mod async_proc;
mod brood_lib;
mod std_lib;
mod tokio_lib;

use crate::report::Report;
use crate::scenarios::{Lib, Params, Scenario};
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

/// How many `/bin/true` to spawn and wait before any measurement, so that
/// one-time set-up (runtime threads, signal handlers, reaper threads, lazy
/// statics) is not measured: `warmup=K`, 5 by default. The strace runs use
/// 0 so that every counted call belongs to a measured child.
fn warmup(params: &Params) -> u64 {
    params.get("warmup", 5)
}

pub fn run(lib: Lib, scenario: Scenario, params: &Params) -> io::Result<Report> {
    let mut report = match lib {
        Lib::Std => std_lib::run(scenario, params)?,
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
            brood_lib::run(scenario, params, lib.flavor())?
        }
        Lib::Tokio | Lib::TokioCt => tokio_lib::run(scenario, params, lib.flavor())?,
        Lib::AsyncProcess => async_proc::run(scenario, params)?,
    };
    report.set("n", params.get("n", 0) as f64);
    Ok(report)
}

fn self_exe() -> io::Result<PathBuf> {
    std::env::current_exe()
}

/// S4's program and arguments.
fn capture_argv(params: &Params) -> (&'static str, Vec<OsString>) {
    let bytes = params.get("bytes", 268_435_456);
    (
        "head",
        vec!["-c".into(), bytes.to_string().into(), "/dev/zero".into()],
    )
}

fn check(status: std::process::ExitStatus) -> io::Result<()> {
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
