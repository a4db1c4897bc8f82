//! RLIMIT_NPROC: EAGAIN at spawn, and when brood's background thread first
//! starts. Root ignores the limit, so the worker runs as nobody.

use super::{assert_dropped_children_reaped, exercise};
use brood::Command;
use brood_testkit::limits::{self, Resource::Processes};
use brood_testkit::procfs::child_pids;
use brood_testkit::{bounded, runtime, worker, TEST_LIMIT};
use std::io;
use std::process::Stdio;

const NOBODY: u32 = 65534;

/// Runs the current test's worker as uid [`NOBODY`] (when we are root), or
/// skips it with a message when that is impossible.
fn run_as_nobody() {
    let name = worker::current_test();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = worker::command();
    if root {
        use std::os::unix::process::CommandExt;
        cmd.uid(NOBODY).gid(NOBODY);
    }
    // The worker must be able to run its own binary as nobody.
    let mut probe = std::process::Command::new(cmd.get_program());
    probe
        .arg("--list")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if root {
        use std::os::unix::process::CommandExt;
        probe.uid(NOBODY).gid(NOBODY);
    }
    if !probe.status().map(|s| s.success()).unwrap_or(false) {
        eprintln!("SKIPPED {name}: cannot run the test binary as uid {NOBODY}");
        return;
    }
    let run = worker::run_command(cmd, worker::LIMIT);
    if let Some(line) = run.stdout.lines().find(|l| l.contains("runs as uid")) {
        eprintln!("{line}");
    }
    if run.stdout.contains("SKIP-NOT-UNPRIVILEGED") {
        eprintln!("SKIPPED {name}: could not drop privileges, RLIMIT_NPROC would not apply");
        return;
    }
    run.assert_ok();
}

fn unprivileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        println!("SKIP-NOT-UNPRIVILEGED");
        return false;
    }
    println!("worker runs as uid {euid}");
    true
}

fn set_nproc_soft(limit: libc::rlim_t) {
    limits::set_soft(Processes, limit).expect("setrlimit");
}

#[test]
fn nproc_exhausted_spawn_fails_with_would_block() {
    if worker::is_worker() {
        if unprivileged() {
            let rt = runtime::current_thread();
            // Warm up: starts brood's background thread on either path.
            rt.block_on(bounded(TEST_LIMIT, exercise()));
            let saved = limits::get(Processes);
            set_nproc_soft(1);
            for _ in 0..3 {
                let err = Command::new("true").spawn().unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err:?}");
            }
            assert!(child_pids().is_empty());
            limits::set(Processes, saved).expect("setrlimit");
            rt.block_on(bounded(TEST_LIMIT, exercise()));
        }
        return worker::done();
    }
    run_as_nobody();
}

// Regression test (same bug family, fixed in commit 6bd208d): on the SIGCHLD
// path the first spawn starts brood's background thread; when that failed
// (EAGAIN under RLIMIT_NPROC) the error was cached and every later spawn
// failed, even after the limit was lifted.
#[test]
fn nproc_on_the_first_spawn_is_not_sticky() {
    if worker::is_worker() {
        if unprivileged() {
            let rt = runtime::current_thread();
            let saved = limits::get(Processes);
            set_nproc_soft(1);
            let err = Command::new("true").spawn().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err:?}");
            limits::set(Processes, saved).expect("setrlimit");
            let again = Command::new("true").spawn();
            assert!(
                again.is_ok(),
                "spawning still fails once the limit is lifted: {:?}",
                again.err()
            );
            drop(again);
            rt.block_on(bounded(TEST_LIMIT, exercise()));
        }
        return worker::done();
    }
    run_as_nobody();
}

// Regression test (same bug family, fixed in commit 6bd208d): as above, with
// the reaper thread failing to start (EAGAIN under RLIMIT_NPROC) when the
// first child is dropped on the pidfd path; the dropped children stayed
// zombies. (On the SIGCHLD path the thread starts at spawn.)
#[test]
fn nproc_when_the_reaper_first_starts_on_drop_is_not_sticky() {
    if worker::is_worker() {
        if unprivileged() {
            let rt = runtime::current_thread();
            let first = Command::new("sleep").arg("0.1").spawn().unwrap();
            let saved = limits::get(Processes);
            set_nproc_soft(1);
            drop(first);
            limits::set(Processes, saved).expect("setrlimit");
            let second = Command::new("sleep").arg("0.1").spawn().unwrap();
            drop(second);
            assert_dropped_children_reaped();
            rt.block_on(bounded(TEST_LIMIT, exercise()));
        }
        return worker::done();
    }
    run_as_nobody();
}
