//! brood-bench: measures brood against `tokio::process`, async-process and a
//! raw `std::process` baseline. Not part of the test suite.
//!
//! ```text
//! brood-bench [--quick | --smoke] [--only S1,S5] [--reps N] [--strace] [--markdown FILE]
//! brood-bench worker <lib> <scenario> key=value...   (run by the driver)
//! brood-bench s8-worker parent_mib=N spawns=M         (S8, run by the driver)
//! brood-bench stamp | sleeper OFFSET_NS               (child modes)
//! ```

mod children;
mod contained;
mod driver;
mod params;
mod report;
mod s7;
mod scenarios;
mod stats;
mod sys;
mod table;
mod workers;

use driver::{Mode, Options};
use scenarios::{Lib, Scenario};
use std::process::ExitCode;

/// Seconds after which a worker ends itself (SIGALRM), overridable.
const WORKER_TIMEOUT_ENV: &str = "BROOD_BENCH_WORKER_TIMEOUT";
const WORKER_TIMEOUT_DEFAULT: u32 = 900;

const USAGE: &str = "\
usage: brood-bench [--quick | --smoke] [--only S1,S5,...] [--reps N] [--strace] [--markdown FILE]

  (default)        full run: 5 repetitions, S3 N=2000,10000, S6 N=500,1000,2000,4000,
                   S7 2000 from 8 tasks and from 4 threads
  --quick          3 repetitions at smaller sizes (about 2 minutes): S1 500, S2 1000,
                   S3 N=1000 x sleep 1, S4 128 MiB, S5 300, S6 N=250,1000 over 1 s,
                   S7 800
  --smoke          every scenario once at a tiny size (seconds), for CI
  --only LIST      run only these scenarios (S1..S8)
  --reps N         repetitions per (library, case)
  --strace         also count wait4+waitid per child in S6 under strace -f -c
  --markdown FILE  also write the report to FILE
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stamp") => children::stamp(),
        Some("sleeper") => children::sleeper(args.get(1).map_or("", String::as_str)),
        Some("worker") => worker(&args[1..]),
        Some("s8-worker") => contained::worker(&args[1..]),
        _ => drive(&args),
    }
}

fn worker(args: &[String]) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("brood-bench worker: {msg}");
        ExitCode::FAILURE
    };
    let (Some(lib), Some(scenario)) = (args.first(), args.get(1)) else {
        return fail("usage: brood-bench worker <lib> <scenario> key=value...".into());
    };
    let Some(lib) = Lib::parse(lib) else {
        return fail(format!("unknown library {lib:?}"));
    };
    let Some(scenario) = Scenario::parse(scenario) else {
        return fail(format!("unknown scenario {scenario:?}"));
    };
    let (case, options) = match params::parse_worker_args(scenario, &args[2..]) {
        Ok(parsed) => parsed,
        Err(e) => return fail(e),
    };
    // First, before any thread exists: every later thread inherits it.
    let mut notes = Vec::new();
    if options.deny_pidfd {
        if let Err(e) = brood_testkit::seccomp::deny_pidfd_open() {
            return fail(format!("cannot deny pidfd_open: {e}"));
        }
        notes.push("pidfd_open denied by seccomp (verified: ENOSYS)".to_owned());
    }
    let timeout = std::env::var(WORKER_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WORKER_TIMEOUT_DEFAULT);
    sys::watchdog(timeout);
    brood_testkit::limits::raise_open_files();
    match workers::run(lib, &case, &options) {
        Ok(mut report) => {
            for note in notes {
                report.note(note);
            }
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{} {scenario}: {e}", lib.name())),
    }
}

fn drive(args: &[String]) -> ExitCode {
    let mut options = Options {
        mode: Mode::Full,
        only: None,
        markdown: None,
        strace: false,
        reps: None,
        s8: true,
        command: std::iter::once("cargo run --release -p brood-bench --")
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => options.mode = Mode::Quick,
            "--smoke" => options.mode = Mode::Smoke,
            "--strace" => options.strace = true,
            "--only" => {
                let list = it.next().map(String::as_str).unwrap_or("");
                let is_s8 = |s: &&str| s.trim().eq_ignore_ascii_case("S8");
                options.s8 = list.split(',').any(|s| is_s8(&s));
                let others = list.split(',').filter(|s| !is_s8(s));
                let parsed: Option<Vec<Scenario>> = others.map(Scenario::parse).collect();
                match parsed {
                    Some(v) if !v.is_empty() || options.s8 => options.only = Some(v),
                    _ => return usage_error(&format!("bad --only list {list:?}")),
                }
            }
            "--reps" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) => options.reps = Some(n),
                None => return usage_error("--reps needs a number"),
            },
            "--markdown" => match it.next() {
                Some(path) => options.markdown = Some(path.into()),
                None => return usage_error("--markdown needs a file"),
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument {other:?}")),
        }
    }
    match driver::main(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("brood-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("brood-bench: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}
