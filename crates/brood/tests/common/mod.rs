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
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
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
