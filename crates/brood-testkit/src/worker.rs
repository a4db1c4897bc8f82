//! Worker processes: a test re-runs its own test binary, filtered to itself,
//! so that its body runs in a fresh process.
//!
//! For behaviour that is chosen or changed once per process: brood's exit
//! watcher (chosen on first use), seccomp filters, rlimits, signal
//! dispositions, subreaper mode.
//!
//! ```no_run
//! use brood_testkit::worker;
//!
//! #[test]
//! fn changes_process_wide_state() {
//!     if worker::is_worker() {
//!         // The body, alone in a process of its own.
//!         return worker::done();
//!     }
//!     worker::run(&[("BROOD_REAPER", Some("signal"))]).assert_ok();
//! }
//! # fn main() {}
//! ```
//!
//! The parent runs `<test binary> --exact <test> --nocapture
//! --test-threads=1` with [`VAR`] set to the test's name, so that only that
//! test runs and knows it is the worker. A test's name is its path inside the
//! test binary (`module::test`), which libtest gives the thread it runs the
//! test on, under `cargo test` and nextest alike. The worker prints a
//! completion marker once its body has finished ([`done`]), and
//! [`Run::assert_ok`] requires it: a worker that ran no test, or stopped
//! half-way, cannot pass. Every run is bounded ([`LIMIT`] unless the caller
//! gives another bound).
//!
//! The harness runs workers with `std::process`, never with brood, so that
//! it does not depend on the code under test.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that makes a test binary act as a worker: it
/// holds the name of the test to act for.
pub const VAR: &str = "BROOD_TEST_WORKER";

/// The marker a worker prints once its body completed, followed by the
/// test's name.
pub const DONE: &str = "BROOD-WORKER-DONE";

/// The default bound on one worker process.
pub const LIMIT: Duration = Duration::from_secs(120);

/// The name of the test running on this thread, as libtest and nextest know
/// it (`module::test`).
///
/// # Panics
///
/// Outside a test's own thread (say, in a thread the test spawned).
pub fn current_test() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) if name != "main" => name.to_owned(),
        other => panic!(
            "the worker harness must be used on a test's own thread (libtest names it after \
             the test), not on thread {other:?}"
        ),
    }
}

/// Whether this process is the worker for the test running on this thread.
pub fn is_worker() -> bool {
    std::env::var(VAR).is_ok_and(|test| test == current_test())
}

/// Called by a worker once its body completed: prints the marker the parent
/// looks for.
pub fn done() {
    println!("{DONE} {}", current_test());
    let _ = std::io::stdout().flush();
}

/// The command that re-runs this test binary as the worker for the test
/// running on this thread, with stdin from `/dev/null`. It inherits this
/// process's environment (`BROOD_REAPER` included) unless the caller changes
/// it; the caller may also wrap it (`strace`, another uid).
pub fn command() -> Command {
    let test = current_test();
    let exe = std::env::current_exe().expect("the path of this test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(VAR, &test)
        .stdin(Stdio::null());
    cmd
}

/// Runs the worker for the test running on this thread with `env` changed
/// (`None` removes a variable), bounded by [`LIMIT`].
pub fn run(env: &[(&str, Option<&str>)]) -> Run {
    let mut cmd = command();
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    run_command(cmd, LIMIT)
}

/// A finished worker: its exit status and what it printed.
#[derive(Debug)]
pub struct Run {
    /// The test the worker ran for.
    pub test: String,
    /// How the worker ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Panics, showing the worker's output, unless it succeeded and printed
    /// the completion marker of its test.
    pub fn assert_ok(&self) {
        // With --nocapture the marker may follow libtest's "test ... " on
        // the same line; the newline keeps `a::b` from matching `a::bc`.
        let marker = format!("{DONE} {}\n", self.test);
        assert!(
            self.status.success() && self.stdout.contains(&marker),
            "worker {} failed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.test,
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// The first line of the worker's stdout containing `needle`, or "".
    pub fn stdout_line(&self, needle: &str) -> &str {
        self.stdout
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or("")
    }
}

/// Runs `cmd` (a [`command`], possibly wrapped) and collects its output;
/// kills it and panics, showing what it printed, if it runs longer than
/// `limit`. The run is attributed to the test running on this thread.
///
/// The worker writes to files, not pipes: processes it starts (and that
/// may outlive a failing worker, a grandchild that escaped its process
/// group) inherit its output, and a pipe would stay open until the last of
/// them is gone. A file is read once the worker itself has ended.
pub fn run_command(mut cmd: Command, limit: Duration) -> Run {
    let test = current_test();
    let out = tempfile::tempfile().expect("a file for the worker's stdout");
    let err = tempfile::tempfile().expect("a file for the worker's stderr");
    let mut child = cmd
        .stdout(out.try_clone().expect("dup the stdout file"))
        .stderr(err.try_clone().expect("dup the stderr file"))
        .spawn()
        .expect("spawn the worker");
    drop(cmd);
    let deadline = Instant::now() + limit;
    // No event tells us a std child exited: poll, with the deadline.
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on the worker") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "worker {test} exceeded its time bound of {limit:?}\n--- stdout ---\n{}\n\
                 --- stderr ---\n{}",
                read_all(out),
                read_all(err)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        test,
        status,
        stdout: read_all(out),
        stderr: read_all(err),
    }
}

/// What was written to `file` (the worker's copy shares its offset, so
/// read from the start).
fn read_all(mut file: std::fs::File) -> String {
    let mut bytes = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
