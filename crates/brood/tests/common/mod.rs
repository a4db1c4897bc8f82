//! Shared helpers for brood's integration tests: bounded waits and /proc
//! inspection of zombies and descriptors.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// The default bound on one async test.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Runs `fut` to completion, failing the test if it takes longer than `limit`.
pub async fn bounded<F: Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("test exceeded its time bound of {limit:?}"),
    }
}

/// Pids of this process's children that are zombies (state `Z`).
pub fn zombie_children() -> Vec<u32> {
    children_in_state(|state| state == 'Z')
}

/// Pids of this process's children, any state.
pub fn child_pids() -> Vec<u32> {
    children_in_state(|_| true)
}

fn children_in_state(want: impl Fn(char) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((state, ppid)) = stat_state_ppid(pid) {
            if ppid == me && want(state) {
                out.push(pid);
            }
        }
    }
    out
}

/// (state, ppid) of `pid` from /proc/<pid>/stat.
pub fn stat_state_ppid(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` exists at all (any state, zombies included).
pub fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Number of open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
/// For conditions only observable from /proc (no event to wait on).
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Blocking version of [`eventually`], for code outside a runtime.
pub fn eventually_blocking(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The strategy the suite was asked to test, from BROOD_REAPER.
pub fn requested_reaper() -> Option<String> {
    std::env::var("BROOD_REAPER").ok()
}

/// The environment variable that makes a test binary act as a worker.
pub const WORKER_VAR: &str = "BROOD_TEST_WORKER";

/// Whether this process was started by [`run_worker`] for `test_name`.
pub fn is_worker(test_name: &str) -> bool {
    std::env::var(WORKER_VAR).as_deref() == Ok(test_name)
}

/// Re-runs this test binary with only `test_name`, as a worker process with
/// `env` added (`None` removes the variable). For behaviour that is chosen or
/// changed process-wide (the reaper strategy, signal dispositions, rlimits).
pub fn run_worker(test_name: &str, env: &[(&str, Option<&str>)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(WORKER_VAR, test_name);
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let out = cmd.output().expect("run the test binary as a worker");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed") || !out.status.success(),
        "worker for {test_name} ran no test:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Asserts a worker succeeded, showing its output otherwise.
pub fn assert_worker_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "worker failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether SIGCHLD is caught by a handler in this process (/proc SigCgt).
pub fn sigchld_caught() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    mask & (1 << (libc::SIGCHLD - 1)) != 0
}

// ---------------------------------------------------------------------------
// Bounded subprocess workers (same protocol as `run_worker`: the test binary
// re-executes itself filtered to one test, with WORKER_VAR naming it), for
// workers that need a custom command line (strace, another uid) and a time
// bound, and that must prove their body ran to the end.

/// The marker a worker prints once its body completed.
pub const WORKER_DONE: &str = "BROOD-WORKER-DONE";

/// Called by a worker when its body completed: prints the marker the parent
/// looks for (a worker that silently ran no test must not count as a pass).
pub fn worker_done(name: &str) {
    use std::io::Write;
    println!("{WORKER_DONE} {name}");
    let _ = std::io::stdout().flush();
}

/// The command re-executing this test binary as the worker for test `name`
/// (`name` is the test's full path inside its test binary). Inherits
/// `BROOD_REAPER` unless the caller changes it.
pub fn worker_command(name: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(WORKER_VAR, name)
        .stdin(std::process::Stdio::null());
    cmd
}

/// A finished worker: its exit status and what it printed.
#[derive(Debug)]
pub struct WorkerRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl WorkerRun {
    /// Panics, showing the worker's output, unless it succeeded and printed
    /// the completion marker.
    pub fn assert_ok(&self, name: &str) {
        let marker = format!("{WORKER_DONE} {name}");
        assert!(
            self.status.success() && self.stdout.contains(&marker),
            "worker {name} failed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `cmd` (with std, not brood, so the harness does not depend on the
/// code under test) and collects its output; kills it and panics if it runs
/// longer than `limit`.
pub fn run_worker_bounded(mut cmd: std::process::Command, limit: Duration) -> WorkerRun {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait worker") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_t.join().unwrap_or_default();
            let stderr = err_t.join().unwrap_or_default();
            panic!(
                "worker exceeded its time bound of {limit:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    WorkerRun {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Resident set size of this process in KiB (VmRSS), 0 if unknown.
pub fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, all threads.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into a valid, zero-initialised struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Number of pidfds this process holds open.
pub fn open_pidfds() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().contains("pidfd"))
                .unwrap_or(false)
        })
        .count()
}

/// The descriptor count once no pidfd is open any more (the background
/// reaper drops its reference to a reaped child just after waking its
/// waiters, so a pidfd can outlive the wait by a moment). For baselines.
pub fn settled_fd_count() -> usize {
    assert!(
        eventually_blocking(Duration::from_secs(10), || open_pidfds() == 0),
        "pidfds stay open: {}",
        open_pidfds()
    );
    fd_count()
}
