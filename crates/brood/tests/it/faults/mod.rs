//! Fault injection: brood under denied system calls, exhausted limits, a
//! tracer, code that reaps or ignores its children behind its back, a host
//! SIGCHLD handler, many threads and runtimes, and runtime shutdown. One
//! module per fault.
//!
//! Scenarios that change process-wide state (seccomp, rlimits, signal
//! dispositions, the strategy, which is chosen once per process) run in a
//! worker: the test re-runs its own binary filtered to itself (see
//! `brood_testkit::worker`). The parent only checks that the worker ran to
//! its end and succeeded.

mod emfile;
mod foreign_reap;
mod host_handler;
mod many_runtimes;
mod nproc;
mod seccomp;
mod shutdown;
mod sig_ign;
mod strace;

use brood::{Command, Signal};
use brood_testkit::procfs::{child_pids, zombie_children};
use brood_testkit::{eventually, eventually_blocking};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// Bound on one wait whose exit brood may learn of only through the SIGCHLD
/// path's safety net (documented: a scan after one second without SIGCHLDs).
const PER_WAIT: Duration = Duration::from_secs(10);

/// Asserts, outside any runtime, that every child dropped so far has been
/// reaped: the drop path still works once a fault is over.
fn assert_dropped_children_reaped() {
    assert!(
        eventually_blocking(Duration::from_secs(10), || child_pids().is_empty()),
        "dropped children never reaped: {:?} (zombies {:?})",
        child_pids(),
        zombie_children()
    );
}

/// Spawns, waits and collects output on whatever strategy is in use; used by
/// workers to show that brood still works after a fault.
async fn exercise() {
    let status = Command::new("sh")
        .args(["-c", "exit 3"])
        .status()
        .await
        .expect("status");
    assert_eq!(status.code(), Some(3));
    let out = Command::new("sh")
        .args(["-c", "echo out; echo err >&2; exit 5"])
        .output()
        .await
        .expect("output");
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(5));
    let mut child = Command::new("sleep").arg("30").spawn().expect("spawn");
    child.signal(Signal::TERM).expect("signal");
    assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));
    // Dropped unreaped, awaited through a handle: the background path.
    let child = Command::new("sleep").arg("0.05").spawn().expect("spawn");
    let handle = child.handle();
    drop(child);
    assert!(handle.wait().await.unwrap().success());
    assert!(
        eventually(Duration::from_secs(10), || child_pids().is_empty()).await,
        "children left: {:?}",
        child_pids()
    );
}
