//! RLIMIT_NOFILE: EMFILE at every point of a spawn, and during brood's lazy
//! set-up.

use super::{assert_dropped_children_reaped, exercise};
use brood::Command;
use brood_testkit::fds::{fd_count, max_open_fd, settled_fd_count};
use brood_testkit::limits::{self, Resource::OpenFiles};
use brood_testkit::procfs::{child_pids, zombie_children};
use brood_testkit::{bounded, eventually_blocking, runtime, worker, TEST_LIMIT};
use std::process::Stdio;
use std::time::Duration;

/// Opens /dev/null until EMFILE; returns the descriptors.
fn exhaust_fds() -> Vec<std::fs::File> {
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return files;
            }
        }
    }
}

fn three_pipes(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
}

/// Worker: with brood warmed up, leave exactly `free` descriptors for
/// `free` = 0..=12, so that a spawn with three pipes fails at each of its
/// allocation points in turn (std's pipes, the pidfd after the fork, ...).
/// Every failure must be a clean error, leave no child, no zombie and no
/// descriptor behind; every success must work; and spawning must work again
/// afterwards.
fn emfile_warm_worker() {
    let rt = runtime::current_thread();
    rt.block_on(bounded(TEST_LIMIT, exercise()));
    let baseline = settled_fd_count();
    let saved = limits::get(OpenFiles);
    let low = (max_open_fd() + 40) as libc::rlim_t;
    limits::set_soft(OpenFiles, low).expect("setrlimit");
    let mut failures = 0;
    let mut successes = 0;
    let mut outcomes = Vec::new();
    for free in 0..=12usize {
        let mut fillers = exhaust_fds();
        assert!(fillers.len() >= free);
        fillers.truncate(fillers.len() - free);
        let result =
            three_pipes(Command::new("sh").args(["-c", "cat; echo err >&2; exit 7"])).spawn();
        match result {
            Err(e) => {
                eprintln!("free={free}: {e}");
                outcomes.push(format!("{free}:error"));
                failures += 1;
                assert!(
                    matches!(e.raw_os_error(), Some(libc::EMFILE))
                        || e.to_string().contains("Too many open files"),
                    "free={free}: unexpected error {e:?}"
                );
                // The failed spawn killed and reaped what it forked, synchronously.
                assert!(
                    child_pids().is_empty(),
                    "free={free}: stray child {:?}",
                    child_pids()
                );
            }
            Ok(mut child) => {
                eprintln!("free={free}: spawned");
                outcomes.push(format!("{free}:ok"));
                successes += 1;
                // Still no descriptor to spare: waiting and piping must work anyway.
                rt.block_on(bounded(TEST_LIMIT, async {
                    use tokio::io::AsyncWriteExt;
                    let mut stdin = child.stdin.take().unwrap();
                    stdin.write_all(b"in").await.unwrap();
                    drop(stdin);
                    let out = child.wait_with_output().await.unwrap();
                    assert_eq!(out.stdout, b"in", "free={free}");
                    assert_eq!(out.stderr, b"err\n", "free={free}");
                    assert_eq!(out.status.code(), Some(7), "free={free}");
                }));
            }
        }
        drop(fillers);
        assert!(
            eventually_blocking(Duration::from_secs(10), || fd_count() == baseline),
            "free={free}: {} descriptors open, baseline {baseline}",
            fd_count()
        );
        assert!(zombie_children().is_empty(), "free={free}: zombies");
    }
    println!(
        "emfile sweep (descriptors left:outcome): {}",
        outcomes.join(" ")
    );
    assert!(failures > 0, "no spawn ever hit EMFILE");
    assert!(successes > 0, "no spawn ever succeeded");
    limits::set(OpenFiles, saved).expect("setrlimit");
    rt.block_on(bounded(TEST_LIMIT, exercise()));
    assert_eq!(settled_fd_count(), baseline);
}

#[test]
fn emfile_fails_cleanly_at_every_point_and_recovers() {
    if worker::is_worker() {
        emfile_warm_worker();
        return worker::done();
    }
    let run = worker::run(&[]);
    eprintln!("{}", run.stdout_line("sweep"));
    run.assert_ok();
}

// Regression test (bug found by this test, fixed in commit 6bd208d): brood
// used to cache the *first* outcome of its lazy set-up forever. If the very
// first spawn of a process met a transient EMFILE, then with
// BROOD_REAPER=pidfd the pidfd probe failed and "pidfds cannot be used here"
// was recorded for good; with BROOD_REAPER=signal (or auto, which then
// silently picked SIGCHLD for good) `Background::new` failed to create its
// wake pipe and the error was kept in a OnceLock. Either way every later
// spawn failed although descriptors were free again.
#[test]
fn emfile_on_the_first_spawn_is_not_sticky() {
    if worker::is_worker() {
        let rt = runtime::current_thread();
        let saved = limits::get(OpenFiles);
        limits::set_soft(OpenFiles, (max_open_fd() + 40) as libc::rlim_t).expect("setrlimit");
        let fillers = exhaust_fds();
        let err = Command::new("true").spawn().unwrap_err();
        eprintln!("first spawn without descriptors: {err}");
        assert!(child_pids().is_empty());
        drop(fillers);
        limits::set(OpenFiles, saved).expect("setrlimit");
        let again = Command::new("true").spawn();
        assert!(
            again.is_ok(),
            "spawning still fails once descriptors are free: {:?}",
            again.err()
        );
        drop(again);
        rt.block_on(bounded(TEST_LIMIT, exercise()));
        return worker::done();
    }
    worker::run(&[]).assert_ok();
}

// Regression test (same bug family, fixed in commit 6bd208d): on the pidfd
// path the background reaper starts the first time a `Child` is dropped
// unreaped. When that start failed (here: no descriptor for its wake pipe and
// epoll set), `Drop` ignored the error and it was cached, so the dropped
// child, and every child dropped later, stayed a zombie forever.
#[test]
fn emfile_when_the_reaper_first_starts_on_drop_is_not_sticky() {
    if worker::is_worker() {
        let rt = runtime::current_thread();
        let first = Command::new("sleep").arg("0.1").spawn().unwrap();
        let saved = limits::get(OpenFiles);
        limits::set_soft(OpenFiles, (max_open_fd() + 40) as libc::rlim_t).expect("setrlimit");
        let fillers = exhaust_fds();
        drop(first);
        drop(fillers);
        limits::set(OpenFiles, saved).expect("setrlimit");
        let second = Command::new("sleep").arg("0.1").spawn().unwrap();
        drop(second);
        assert_dropped_children_reaped();
        rt.block_on(bounded(TEST_LIMIT, exercise()));
        return worker::done();
    }
    worker::run(&[]).assert_ok();
}
