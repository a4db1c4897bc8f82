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
