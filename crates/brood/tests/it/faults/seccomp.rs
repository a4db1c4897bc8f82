//! pidfds denied by a seccomp filter: `pidfd_open` (or `waitid(P_PIDFD)`)
//! fails as on an older kernel or in a strict container.

use super::exercise;
use brood::reaper::Strategy;
use brood::Command;
use brood_testkit::procfs::child_pids;
use brood_testkit::seccomp::{install, Deny};
use brood_testkit::{bounded, runtime, worker, TEST_LIMIT};
use std::io;

/// Worker: pidfds denied (by `rules`); with BROOD_REAPER unset, brood must
/// pick the SIGCHLD path and work; with BROOD_REAPER=pidfd, spawning must fail
/// with an error naming the variable, without panicking or leaving a child.
fn pidfd_denied_worker(rules: &[Deny]) {
    install(rules).expect("install the seccomp filter");
    let forced = std::env::var("BROOD_REAPER").ok();
    if forced.as_deref() == Some("pidfd") {
        let err = brood::reaper::try_current().unwrap_err();
        assert!(err.to_string().contains("BROOD_REAPER"), "{err}");
        for _ in 0..3 {
            let err = Command::new("true").spawn().unwrap_err();
            assert!(err.to_string().contains("BROOD_REAPER"), "{err}");
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        }
        assert!(child_pids().is_empty(), "a failed spawn left a child");
    } else {
        assert_eq!(forced, None, "the parent must unset BROOD_REAPER");
        assert_eq!(brood::reaper::current(), Strategy::Signal);
        runtime::current_thread().block_on(bounded(TEST_LIMIT, exercise()));
        runtime::multi_thread(2).block_on(bounded(TEST_LIMIT, exercise()));
    }
}

fn pidfd_open_denied(errno: i32) -> Vec<Deny> {
    vec![Deny {
        nr: libc::SYS_pidfd_open,
        arg0: None,
        errno,
    }]
}

/// Runs the current test's worker with `BROOD_REAPER` set to `reaper`, or
/// unset.
fn run_seccomp_worker(reaper: Option<&str>) {
    worker::run(&[("BROOD_REAPER", reaper)]).assert_ok();
}

#[test]
fn seccomp_pidfd_open_enosys_falls_back_to_signal() {
    if worker::is_worker() {
        pidfd_denied_worker(&pidfd_open_denied(libc::ENOSYS));
        return worker::done();
    }
    run_seccomp_worker(None);
}

#[test]
fn seccomp_pidfd_open_eperm_falls_back_to_signal() {
    if worker::is_worker() {
        pidfd_denied_worker(&pidfd_open_denied(libc::EPERM));
        return worker::done();
    }
    run_seccomp_worker(None);
}

/// A kernel older than 5.4 has pidfd_open (5.3) but no waitid(P_PIDFD): the
/// probe must notice and pick the SIGCHLD path.
#[test]
fn seccomp_waitid_p_pidfd_einval_falls_back_to_signal() {
    if worker::is_worker() {
        pidfd_denied_worker(&[Deny {
            nr: libc::SYS_waitid,
            arg0: Some(libc::P_PIDFD),
            errno: libc::EINVAL,
        }]);
        return worker::done();
    }
    run_seccomp_worker(None);
}

#[test]
fn seccomp_pidfd_open_enosys_with_forced_pidfd_fails_spawn() {
    if worker::is_worker() {
        pidfd_denied_worker(&pidfd_open_denied(libc::ENOSYS));
        return worker::done();
    }
    run_seccomp_worker(Some("pidfd"));
}

#[test]
fn seccomp_pidfd_open_eperm_with_forced_pidfd_fails_spawn() {
    if worker::is_worker() {
        pidfd_denied_worker(&pidfd_open_denied(libc::EPERM));
        return worker::done();
    }
    run_seccomp_worker(Some("pidfd"));
}
