//! Fault injection: brood under denied system calls, exhausted limits, a
//! tracer, code that reaps or ignores its children behind its back, a host
//! SIGCHLD handler, many threads and runtimes, and runtime shutdown.
//!
//! Scenarios that change process-wide state (seccomp, rlimits, signal
//! dispositions, the strategy, which is chosen once per process) run in a
//! worker: the test re-executes its own binary filtered to itself with
//! `BROOD_TEST_WORKER` naming it (see `common::worker_command`). The parent
//! only checks that the worker ran to its end and succeeded.

mod common;

use brood::reaper::Strategy;
use brood::{Command, Signal};
use common::{
    bounded, child_pids, eventually, eventually_blocking, fd_count, is_worker, run_worker_bounded,
    worker_command, worker_done, zombie_children,
};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Bound on a worker process.
const WORKER_LIMIT: Duration = Duration::from_secs(120);
/// Bound on one async test body.
const LIMIT: Duration = Duration::from_secs(60);
/// Bound on one wait whose exit brood may learn of only through the SIGCHLD
/// path's safety net (documented: a scan after one second without SIGCHLDs).
const PER_WAIT: Duration = Duration::from_secs(10);

fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn multi_thread_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
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

fn getrlimit(resource: libc::__rlimit_resource_t) -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut lim) }, 0);
    lim
}

fn setrlimit(resource: libc::__rlimit_resource_t, lim: libc::rlimit) {
    // SAFETY: `lim` is a valid rlimit.
    let ret = unsafe { libc::setrlimit(resource, &lim) };
    assert_eq!(ret, 0, "setrlimit: {}", io::Error::last_os_error());
}

// ---------------------------------------------------------------------------
// seccomp: pidfd_open (or waitid(P_PIDFD)) denied.

mod seccomp {
    use std::io;

    #[repr(C)]
    struct SockFilter {
        code: u16,
        jt: u8,
        jf: u8,
        k: u32,
    }

    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const SockFilter,
    }

    /// BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20).
    const BPF_LD_W_ABS: u16 = 0x20;
    /// BPF_JMP | BPF_JEQ | BPF_K (0x05 | 0x10 | 0x00).
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    /// Offsets in `struct seccomp_data`.
    const OFF_NR: u32 = 0;
    const OFF_ARCH: u32 = 4;
    const OFF_ARG0_LOW: u32 = 16; // little-endian low half of args[0]

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;

    fn stmt(code: u16, k: u32) -> SockFilter {
        SockFilter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jeq(k: u32, jt: u8, jf: u8) -> SockFilter {
        SockFilter {
            code: BPF_JMP_JEQ_K,
            jt,
            jf,
            k,
        }
    }

    /// A rule: system call `nr` (with `args[0] == arg0`, if given) fails
    /// with `errno` instead of running.
    pub struct Deny {
        pub nr: i64,
        pub arg0: Option<u32>,
        pub errno: i32,
    }

    /// Installs a filter on every thread of this process (TSYNC), and on
    /// every thread and child created later. Irreversible.
    pub fn install(rules: &[Deny]) -> io::Result<()> {
        let mut prog = vec![
            stmt(BPF_LD_W_ABS, OFF_ARCH),
            jeq(AUDIT_ARCH, 1, 0),
            stmt(BPF_RET_K, RET_ALLOW),
        ];
        for rule in rules {
            prog.push(stmt(BPF_LD_W_ABS, OFF_NR));
            let ret = stmt(BPF_RET_K, RET_ERRNO | (rule.errno as u32 & 0xffff));
            match rule.arg0 {
                None => {
                    prog.push(jeq(rule.nr as u32, 0, 1));
                    prog.push(ret);
                }
                Some(arg0) => {
                    prog.push(jeq(rule.nr as u32, 0, 3));
                    prog.push(stmt(BPF_LD_W_ABS, OFF_ARG0_LOW));
                    prog.push(jeq(arg0, 0, 1));
                    prog.push(ret);
                }
            }
        }
        prog.push(stmt(BPF_RET_K, RET_ALLOW));
        let fprog = SockFprog {
            len: prog.len() as u16,
            filter: prog.as_ptr(),
        };
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fprog` points to a valid filter program that outlives the
        // call (the kernel copies it).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1, // SECCOMP_SET_MODE_FILTER
                1, // SECCOMP_FILTER_FLAG_TSYNC
                &fprog as *const SockFprog,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Worker: pidfds denied (by `rules`); with BROOD_REAPER unset, brood must
/// pick the SIGCHLD path and work; with BROOD_REAPER=pidfd, spawning must fail
/// with an error naming the variable, without panicking or leaving a child.
fn pidfd_denied_worker(rules: &[seccomp::Deny]) {
    seccomp::install(rules).expect("install the seccomp filter");
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
        current_thread_rt().block_on(bounded(LIMIT, exercise()));
        multi_thread_rt(2).block_on(bounded(LIMIT, exercise()));
    }
}

fn pidfd_open_denied(errno: i32) -> Vec<seccomp::Deny> {
    vec![seccomp::Deny {
        nr: libc::SYS_pidfd_open,
        arg0: None,
        errno,
    }]
}

fn run_seccomp_worker(name: &str, reaper: Option<&str>) {
    let mut cmd = worker_command(name);
    match reaper {
        Some(r) => cmd.env("BROOD_REAPER", r),
        None => cmd.env_remove("BROOD_REAPER"),
    };
    run_worker_bounded(cmd, WORKER_LIMIT).assert_ok(name);
}

#[test]
fn seccomp_pidfd_open_enosys_falls_back_to_signal() {
    const NAME: &str = "seccomp_pidfd_open_enosys_falls_back_to_signal";
    if is_worker(NAME) {
        pidfd_denied_worker(&pidfd_open_denied(libc::ENOSYS));
        return worker_done(NAME);
    }
    run_seccomp_worker(NAME, None);
}

#[test]
fn seccomp_pidfd_open_eperm_falls_back_to_signal() {
    const NAME: &str = "seccomp_pidfd_open_eperm_falls_back_to_signal";
    if is_worker(NAME) {
        pidfd_denied_worker(&pidfd_open_denied(libc::EPERM));
        return worker_done(NAME);
    }
    run_seccomp_worker(NAME, None);
}

/// A kernel older than 5.4 has pidfd_open (5.3) but no waitid(P_PIDFD): the
/// probe must notice and pick the SIGCHLD path.
#[test]
fn seccomp_waitid_p_pidfd_einval_falls_back_to_signal() {
    const NAME: &str = "seccomp_waitid_p_pidfd_einval_falls_back_to_signal";
    if is_worker(NAME) {
        pidfd_denied_worker(&[seccomp::Deny {
            nr: libc::SYS_waitid,
            arg0: Some(libc::P_PIDFD),
            errno: libc::EINVAL,
        }]);
        return worker_done(NAME);
    }
    run_seccomp_worker(NAME, None);
}

#[test]
fn seccomp_pidfd_open_enosys_with_forced_pidfd_fails_spawn() {
    const NAME: &str = "seccomp_pidfd_open_enosys_with_forced_pidfd_fails_spawn";
    if is_worker(NAME) {
        pidfd_denied_worker(&pidfd_open_denied(libc::ENOSYS));
        return worker_done(NAME);
    }
    run_seccomp_worker(NAME, Some("pidfd"));
}

#[test]
fn seccomp_pidfd_open_eperm_with_forced_pidfd_fails_spawn() {
    const NAME: &str = "seccomp_pidfd_open_eperm_with_forced_pidfd_fails_spawn";
    if is_worker(NAME) {
        pidfd_denied_worker(&pidfd_open_denied(libc::EPERM));
        return worker_done(NAME);
    }
    run_seccomp_worker(NAME, Some("pidfd"));
}

// ---------------------------------------------------------------------------
// RLIMIT_NOFILE: EMFILE at every point of a spawn.

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

fn max_open_fd() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .max()
        .unwrap_or(2)
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
    let rt = current_thread_rt();
    rt.block_on(bounded(LIMIT, exercise()));
    let baseline = common::settled_fd_count();
    let saved = getrlimit(libc::RLIMIT_NOFILE);
    let low = (max_open_fd() + 40) as libc::rlim_t;
    setrlimit(
        libc::RLIMIT_NOFILE,
        libc::rlimit {
            rlim_cur: low,
            rlim_max: saved.rlim_max,
        },
    );
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
                rt.block_on(bounded(LIMIT, async {
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
    setrlimit(libc::RLIMIT_NOFILE, saved);
    rt.block_on(bounded(LIMIT, exercise()));
    assert_eq!(common::settled_fd_count(), baseline);
}

#[test]
fn emfile_fails_cleanly_at_every_point_and_recovers() {
    const NAME: &str = "emfile_fails_cleanly_at_every_point_and_recovers";
    if is_worker(NAME) {
        emfile_warm_worker();
        return worker_done(NAME);
    }
    let run = run_worker_bounded(worker_command(NAME), WORKER_LIMIT);
    eprintln!(
        "{}",
        run.stdout
            .lines()
            .find(|l| l.contains("sweep"))
            .unwrap_or("")
    );
    run.assert_ok(NAME);
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
    const NAME: &str = "emfile_on_the_first_spawn_is_not_sticky";
    if is_worker(NAME) {
        let rt = current_thread_rt();
        let saved = getrlimit(libc::RLIMIT_NOFILE);
        setrlimit(
            libc::RLIMIT_NOFILE,
            libc::rlimit {
                rlim_cur: (max_open_fd() + 40) as libc::rlim_t,
                rlim_max: saved.rlim_max,
            },
        );
        let fillers = exhaust_fds();
        let err = Command::new("true").spawn().unwrap_err();
        eprintln!("first spawn without descriptors: {err}");
        assert!(child_pids().is_empty());
        drop(fillers);
        setrlimit(libc::RLIMIT_NOFILE, saved);
        let again = Command::new("true").spawn();
        assert!(
            again.is_ok(),
            "spawning still fails once descriptors are free: {:?}",
            again.err()
        );
        drop(again);
        rt.block_on(bounded(LIMIT, exercise()));
        return worker_done(NAME);
    }
    run_worker_bounded(worker_command(NAME), WORKER_LIMIT).assert_ok(NAME);
}

// Regression test (same bug family, fixed in commit 6bd208d): on the pidfd
// path the background reaper starts the first time a `Child` is dropped
// unreaped. When that start failed (here: no descriptor for its wake pipe and
// epoll set), `Drop` ignored the error and it was cached, so the dropped
// child, and every child dropped later, stayed a zombie forever.
#[test]
fn emfile_when_the_reaper_first_starts_on_drop_is_not_sticky() {
    const NAME: &str = "emfile_when_the_reaper_first_starts_on_drop_is_not_sticky";
    if is_worker(NAME) {
        let rt = current_thread_rt();
        let first = Command::new("sleep").arg("0.1").spawn().unwrap();
        let saved = getrlimit(libc::RLIMIT_NOFILE);
        setrlimit(
            libc::RLIMIT_NOFILE,
            libc::rlimit {
                rlim_cur: (max_open_fd() + 40) as libc::rlim_t,
                rlim_max: saved.rlim_max,
            },
        );
        let fillers = exhaust_fds();
        drop(first);
        drop(fillers);
        setrlimit(libc::RLIMIT_NOFILE, saved);
        let second = Command::new("sleep").arg("0.1").spawn().unwrap();
        drop(second);
        assert!(
            eventually_blocking(Duration::from_secs(10), || child_pids().is_empty()),
            "dropped children never reaped: {:?} (zombies {:?})",
            child_pids(),
            zombie_children()
        );
        rt.block_on(bounded(LIMIT, exercise()));
        return worker_done(NAME);
    }
    run_worker_bounded(worker_command(NAME), WORKER_LIMIT).assert_ok(NAME);
}

// ---------------------------------------------------------------------------
// RLIMIT_NPROC: EAGAIN. Root ignores the limit, so the worker runs as nobody.

const NOBODY: u32 = 65534;

fn run_as_nobody(name: &str) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = worker_command(name);
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
    let run = run_worker_bounded(cmd, WORKER_LIMIT);
    if let Some(line) = run.stdout.lines().find(|l| l.contains("runs as uid")) {
        eprintln!("{line}");
    }
    if run.stdout.contains("SKIP-NOT-UNPRIVILEGED") {
        eprintln!("SKIPPED {name}: could not drop privileges, RLIMIT_NPROC would not apply");
        return;
    }
    run.assert_ok(name);
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
    let cur = getrlimit(libc::RLIMIT_NPROC);
    setrlimit(
        libc::RLIMIT_NPROC,
        libc::rlimit {
            rlim_cur: limit,
            rlim_max: cur.rlim_max,
        },
    );
}

#[test]
fn nproc_exhausted_spawn_fails_with_would_block() {
    const NAME: &str = "nproc_exhausted_spawn_fails_with_would_block";
    if is_worker(NAME) {
        if unprivileged() {
            let rt = current_thread_rt();
            // Warm up: starts brood's background thread on either path.
            rt.block_on(bounded(LIMIT, exercise()));
            let saved = getrlimit(libc::RLIMIT_NPROC);
            set_nproc_soft(1);
            for _ in 0..3 {
                let err = Command::new("true").spawn().unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err:?}");
            }
            assert!(child_pids().is_empty());
            setrlimit(libc::RLIMIT_NPROC, saved);
            rt.block_on(bounded(LIMIT, exercise()));
        }
        return worker_done(NAME);
    }
    run_as_nobody(NAME);
}

// Regression test (same bug family, fixed in commit 6bd208d): on the SIGCHLD
// path the first spawn starts brood's background thread; when that failed
// (EAGAIN under RLIMIT_NPROC) the error was cached and every later spawn
// failed, even after the limit was lifted.
#[test]
fn nproc_on_the_first_spawn_is_not_sticky() {
    const NAME: &str = "nproc_on_the_first_spawn_is_not_sticky";
    if is_worker(NAME) {
        if unprivileged() {
            let rt = current_thread_rt();
            let saved = getrlimit(libc::RLIMIT_NPROC);
            set_nproc_soft(1);
            let err = Command::new("true").spawn().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err:?}");
            setrlimit(libc::RLIMIT_NPROC, saved);
            let again = Command::new("true").spawn();
            assert!(
                again.is_ok(),
                "spawning still fails once the limit is lifted: {:?}",
                again.err()
            );
            drop(again);
            rt.block_on(bounded(LIMIT, exercise()));
        }
        return worker_done(NAME);
    }
    run_as_nobody(NAME);
}

// Regression test (same bug family, fixed in commit 6bd208d): as above, with
// the reaper thread failing to start (EAGAIN under RLIMIT_NPROC) when the
// first child is dropped on the pidfd path; the dropped children stayed
// zombies. (On the SIGCHLD path the thread starts at spawn.)
#[test]
fn nproc_when_the_reaper_first_starts_on_drop_is_not_sticky() {
    const NAME: &str = "nproc_when_the_reaper_first_starts_on_drop_is_not_sticky";
    if is_worker(NAME) {
        if unprivileged() {
            let rt = current_thread_rt();
            let first = Command::new("sleep").arg("0.1").spawn().unwrap();
            let saved = getrlimit(libc::RLIMIT_NPROC);
            set_nproc_soft(1);
            drop(first);
            setrlimit(libc::RLIMIT_NPROC, saved);
            let second = Command::new("sleep").arg("0.1").spawn().unwrap();
            drop(second);
            assert!(
                eventually_blocking(Duration::from_secs(10), || child_pids().is_empty()),
                "dropped children never reaped: {:?} (zombies {:?})",
                child_pids(),
                zombie_children()
            );
            rt.block_on(bounded(LIMIT, exercise()));
        }
        return worker_done(NAME);
    }
    run_as_nobody(NAME);
}

// ---------------------------------------------------------------------------
// strace -f: children are traced, so pidfds turn readable before the parent
// may reap (the tracer holds the exit). Statuses must stay right and the
// parent must not spin.

fn strace_usable() -> bool {
    std::process::Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn strace_attached_statuses_stay_right_and_cpu_stays_low() {
    const NAME: &str = "strace_attached_statuses_stay_right_and_cpu_stays_low";
    const CHILDREN: usize = 50;
    if is_worker(NAME) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(|v| v.trim().to_string());
        assert_ne!(tracer.as_deref(), Some("0"), "the worker is not traced");
        let rt = multi_thread_rt(2);
        rt.block_on(bounded(LIMIT, async {
            let mut owned = Vec::new();
            let mut handles = Vec::new();
            for i in 0..CHILDREN {
                let child = Command::new("sh")
                    .args(["-c", &format!("sleep 0.2; exit {}", i % 7)])
                    .spawn()
                    .unwrap();
                if i % 2 == 0 {
                    owned.push((i, child));
                } else {
                    // Dropped: the background reaper (edge-triggered epoll)
                    // must also cope with early readiness.
                    handles.push((i, child.handle()));
                }
            }
            let cpu0 = common::cpu_time();
            let wall0 = Instant::now();
            let waits: Vec<_> = owned
                .into_iter()
                .map(|(i, mut c)| tokio::spawn(async move { (i, c.wait().await) }))
                .collect();
            for (i, h) in &handles {
                assert_eq!(h.wait().await.unwrap().code(), Some((i % 7) as i32));
            }
            for w in waits {
                let (i, s) = w.await.unwrap();
                assert_eq!(s.unwrap().code(), Some((i % 7) as i32));
            }
            let cpu = common::cpu_time() - cpu0;
            let wall = wall0.elapsed();
            println!("waiting for {CHILDREN} traced children: cpu {cpu:?}, wall {wall:?}");
            assert!(
                cpu.as_secs_f64() < 0.5 * wall.as_secs_f64(),
                "busy loop: {cpu:?} of CPU in {wall:?}"
            );
            assert!(eventually(Duration::from_secs(10), || child_pids().is_empty()).await);
        }));
        return worker_done(NAME);
    }
    if !strace_usable() {
        eprintln!("SKIPPED {NAME}: strace is not installed or cannot trace here");
        return;
    }
    let worker = worker_command(NAME);
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-o", "/dev/null"])
        .arg(worker.get_program())
        .args(worker.get_args());
    for (k, v) in worker.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let run = run_worker_bounded(cmd, WORKER_LIMIT);
    eprintln!(
        "{}",
        run.stdout.lines().find(|l| l.contains("cpu")).unwrap_or("")
    );
    run.assert_ok(NAME);
}

// ---------------------------------------------------------------------------
// Foreign reaping: another thread waitpid()s a brood child.

fn foreign_waitpid(pid: u32) -> std::thread::JoinHandle<(i32, i32)> {
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: `status` is a valid, writable int.
        let ret = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        (ret, status)
    })
}

/// Exactly one of brood and the thief got the exit; brood's side, if it lost,
/// is an error explaining what happened.
fn one_winner(pid: u32, brood: io::Result<std::process::ExitStatus>, thief: (i32, i32), code: i32) {
    match brood {
        Ok(s) => {
            assert_eq!(s.code(), Some(code));
            assert_eq!(thief.0, -1, "both brood and the thief reaped pid {pid}");
        }
        Err(e) => {
            assert_eq!(thief.0, pid as i32, "nobody reaped pid {pid}: {e}");
            assert!(libc::WIFEXITED(thief.1) && libc::WEXITSTATUS(thief.1) == code);
            assert!(
                e.to_string().contains("reaped by someone other than brood"),
                "{e}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_waitpid_racing_wait_never_hangs() {
    bounded(LIMIT, async {
        for _ in 0..5 {
            let mut child = Command::new("sh")
                .args(["-c", "sleep 0.1; exit 4"])
                .spawn()
                .unwrap();
            let pid = child.handle().id();
            let thief = foreign_waitpid(pid);
            let started = Instant::now();
            let result = child.wait().await;
            assert!(started.elapsed() < Duration::from_secs(10));
            let thief = tokio::task::spawn_blocking(move || thief.join().unwrap())
                .await
                .unwrap();
            one_winner(pid, result, thief, 4);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_waitpid_before_wait_never_hangs() {
    bounded(LIMIT, async {
        let mut child = Command::new("sh").args(["-c", "exit 6"]).spawn().unwrap();
        let pid = child.handle().id();
        let thief = tokio::task::spawn_blocking(move || foreign_waitpid(pid).join().unwrap())
            .await
            .unwrap();
        // try_wait never blocks, whatever happened.
        let _ = child.try_wait();
        let started = Instant::now();
        let result = child.wait().await;
        println!("wait returned {result:?} after {:?}", started.elapsed());
        one_winner(pid, result, thief, 6);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_waitpid_of_a_dropped_child_never_hangs_its_handle() {
    bounded(LIMIT, async {
        let child = Command::new("sh")
            .args(["-c", "sleep 0.1; exit 2"])
            .spawn()
            .unwrap();
        let handle = child.handle();
        let pid = handle.id();
        drop(child);
        let thief = foreign_waitpid(pid);
        let result = handle.wait().await;
        let thief = tokio::task::spawn_blocking(move || thief.join().unwrap())
            .await
            .unwrap();
        one_winner(pid, result, thief, 2);
        assert!(zombie_children().is_empty());
    })
    .await;
}

/// brood reaps only its own children: a child spawned with std::process next
/// to brood children keeps its status for its owner, on both paths.
///
/// On the SIGCHLD path this also covers children that exit before `spawn`
/// registered them while an older foreign zombie hides them from the
/// dispatcher's peek (this test made 2-4 of the 20 quick children hang
/// before commit 7774e92).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_children_are_never_reaped_by_brood() {
    bounded(LIMIT, async {
        let mut theirs = std::process::Command::new("sh")
            .args(["-c", "exit 9"])
            .spawn()
            .unwrap();
        let their_pid = theirs.id();
        // Make brood dispatch while the foreign zombie exists.
        let exited = eventually(Duration::from_secs(10), || {
            common::stat_state_ppid(their_pid).map(|s| s.0) == Some('Z')
        })
        .await;
        assert!(exited);
        for i in 0..20 {
            // The SIGCHLD path's safety net rescues a lost exit within about
            // a second: 10 s is generous.
            let s = bounded(
                PER_WAIT,
                Command::new("sh")
                    .args(["-c", &format!("exit {i}")])
                    .status(),
            )
            .await
            .unwrap();
            assert_eq!(s.code(), Some(i));
        }
        // Dropped brood children are reaped by the background thread while
        // the foreign zombie is still there.
        for _ in 0..5 {
            drop(Command::new("true").spawn().unwrap());
        }
        assert!(
            eventually(Duration::from_secs(10), || child_pids() == vec![their_pid]).await,
            "{:?}",
            child_pids()
        );
        assert_eq!(theirs.wait().unwrap().code(), Some(9));
    })
    .await;
}

// ---------------------------------------------------------------------------
// SIGCHLD set to SIG_IGN after spawning: the kernel reaps on its own.
//
// Regression test (bug found by this test, fixed in commit 6bd208d): on the
// SIGCHLD path the documented safety net never ran, because the dispatcher
// armed it only when it woke up with children in its table while
// registering a child did not wake it; with SIGCHLD ignored nothing else
// did, it slept in epoll_wait(-1) forever and `wait` hung.

#[test]
fn sigchld_ignored_after_spawn_never_hangs() {
    const NAME: &str = "sigchld_ignored_after_spawn_never_hangs";
    if is_worker(NAME) {
        let rt = multi_thread_rt(2);
        rt.block_on(bounded(LIMIT, async {
            let mut before: Vec<_> = (0..4)
                .map(|i| {
                    Command::new("sh")
                        .args(["-c", &format!("sleep 0.2; exit {i}")])
                        .spawn()
                        .unwrap()
                })
                .collect();
            let dropped = Command::new("sleep").arg("0.2").spawn().unwrap();
            let dropped_handle = dropped.handle();
            drop(dropped);
            // SAFETY: setting a signal disposition.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
            let mut after: Vec<_> = (0..2)
                .map(|_| Command::new("sleep").arg("0.1").spawn().unwrap())
                .collect();
            let started = Instant::now();
            for (i, c) in before.iter_mut().enumerate() {
                match bounded(PER_WAIT, c.wait()).await {
                    Ok(s) => assert_eq!(s.code(), Some(i as i32)),
                    Err(e) => assert!(e.to_string().contains("SIG_IGN"), "{e}"),
                }
            }
            for c in &mut after {
                if let Ok(s) = bounded(PER_WAIT, c.wait()).await {
                    assert!(s.success());
                }
            }
            let _ = bounded(PER_WAIT, dropped_handle.wait()).await;
            println!("all waits returned after {:?}", started.elapsed());
            assert!(eventually(Duration::from_secs(10), || child_pids().is_empty()).await);
        }));
        return worker_done(NAME);
    }
    run_worker_bounded(worker_command(NAME), WORKER_LIMIT).assert_ok(NAME);
}

// ---------------------------------------------------------------------------
// A SIGCHLD handler the host installed before brood keeps being called.

static HOST_CALLS: AtomicUsize = AtomicUsize::new(0);
static HOST_LAST_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn host_handler_siginfo(
    _: libc::c_int,
    info: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    HOST_CALLS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
    if let Some(info) = unsafe { info.as_ref() } {
        // SAFETY: SIGCHLD fills the _sigchld member.
        HOST_LAST_PID.store(unsafe { info.si_pid() }, Ordering::SeqCst);
    }
}

extern "C" fn host_handler_plain(_: libc::c_int) {
    HOST_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn host_handler_worker(siginfo: bool) {
    // SAFETY: installing a handler that only touches atomics.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        if siginfo {
            action.sa_sigaction = host_handler_siginfo as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        } else {
            action.sa_sigaction = host_handler_plain as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
        }
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()),
            0
        );
    }
    assert_eq!(brood::reaper::current(), Strategy::Signal);
    let rt = multi_thread_rt(2);
    rt.block_on(bounded(LIMIT, async {
        // One at a time, so that no two SIGCHLDs can merge.
        for i in 0..5 {
            let mut child = Command::new("sh")
                .args(["-c", &format!("exit {i}")])
                .spawn()
                .unwrap();
            let pid = child.handle().id();
            assert_eq!(child.wait().await.unwrap().code(), Some(i));
            let seen = eventually(Duration::from_secs(5), || {
                HOST_CALLS.load(Ordering::SeqCst) > i as usize
                    && (!siginfo || HOST_LAST_PID.load(Ordering::SeqCst) == pid as i32)
            })
            .await;
            assert!(
                seen,
                "host handler not called for child {i}: {} calls, last pid {}",
                HOST_CALLS.load(Ordering::SeqCst),
                HOST_LAST_PID.load(Ordering::SeqCst)
            );
        }
    }));
}

#[test]
fn host_sigchld_siginfo_handler_is_still_called() {
    const NAME: &str = "host_sigchld_siginfo_handler_is_still_called";
    if is_worker(NAME) {
        host_handler_worker(true);
        return worker_done(NAME);
    }
    let mut cmd = worker_command(NAME);
    cmd.env("BROOD_REAPER", "signal");
    run_worker_bounded(cmd, WORKER_LIMIT).assert_ok(NAME);
}

#[test]
fn host_sigchld_plain_handler_is_still_called() {
    const NAME: &str = "host_sigchld_plain_handler_is_still_called";
    if is_worker(NAME) {
        host_handler_worker(false);
        return worker_done(NAME);
    }
    let mut cmd = worker_command(NAME);
    cmd.env("BROOD_REAPER", "signal");
    run_worker_bounded(cmd, WORKER_LIMIT).assert_ok(NAME);
}

// ---------------------------------------------------------------------------
// Many threads, many runtimes.

const PER_SPAWNER: usize = 25;

async fn spawn_and_check(seed: usize) -> Vec<brood::Child> {
    let mut children = Vec::new();
    for i in 0..PER_SPAWNER {
        let code = (seed * PER_SPAWNER + i) % 256;
        let child = Command::new("sh")
            .args(["-c", &format!("echo {code}; exit {code}")])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    children
}

async fn check_children(seed: usize, children: Vec<brood::Child>) {
    for (i, child) in children.into_iter().enumerate() {
        let code = (seed * PER_SPAWNER + i) % 256;
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(out.status.code(), Some(code as i32));
        assert_eq!(out.stdout, format!("{code}\n").as_bytes());
    }
}

#[test]
fn spawning_from_8_threads_with_their_own_runtimes() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                current_thread_rt().block_on(bounded(LIMIT, async move {
                    let children = spawn_and_check(t).await;
                    check_children(t, children).await;
                }))
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(eventually_blocking(Duration::from_secs(10), || child_pids(
    )
    .is_empty()));
}

/// Eight multi-thread runtimes at once; each waits for the children another
/// one spawned, so exit watchers move between runtimes.
#[test]
fn spawning_from_8_runtimes_at_once() {
    let rts: Vec<_> = (0..8).map(|_| multi_thread_rt(2)).collect();
    let spawned: Vec<_> = rts
        .iter()
        .enumerate()
        .map(|(r, rt)| rt.spawn(spawn_and_check(r)))
        .collect();
    let mut checks = Vec::new();
    for (r, join) in spawned.into_iter().enumerate() {
        let children = rts[r].block_on(bounded(LIMIT, join)).unwrap();
        let other = &rts[(r + 1) % rts.len()];
        checks.push(other.spawn(check_children(r, children)));
    }
    for (r, join) in checks.into_iter().enumerate() {
        rts[r].block_on(bounded(LIMIT, join)).unwrap();
    }
    drop(rts);
    assert!(eventually_blocking(Duration::from_secs(10), || child_pids(
    )
    .is_empty()));
}

// ---------------------------------------------------------------------------
// Runtime shutdown with 1000 live children.

#[test]
fn runtime_shutdown_with_1000_live_children() {
    const NAME: &str = "runtime_shutdown_with_1000_live_children";
    const N: usize = 1000;
    if is_worker(NAME) {
        let lim = getrlimit(libc::RLIMIT_NOFILE);
        setrlimit(
            libc::RLIMIT_NOFILE,
            libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            },
        );
        // Warm up brood's own descriptors (wake pipe, epoll set, ...) first.
        current_thread_rt().block_on(bounded(LIMIT, exercise()));
        let baseline = common::settled_fd_count();
        let rt = multi_thread_rt(2);
        let polled = std::sync::Arc::new(AtomicUsize::new(0));
        let (doomed, survivors) = rt.block_on(bounded(LIMIT, {
            let polled = polled.clone();
            async move {
                let (mut doomed, mut survivors) = (Vec::new(), Vec::new());
                for i in 0..N {
                    let kill = i % 2 == 0;
                    let mut child = Command::new("sleep")
                        .arg(if kill { "30" } else { "3" })
                        .kill_on_drop(kill)
                        .spawn()
                        .unwrap();
                    if kill {
                        doomed.push(child.handle());
                    } else {
                        survivors.push(child.handle());
                    }
                    let polled = polled.clone();
                    if i % 4 < 2 {
                        // Awaited by a task when the runtime goes away.
                        tokio::spawn(async move {
                            polled.fetch_add(1, Ordering::SeqCst);
                            // Normally still pending when the runtime goes.
                            let _ = child.wait().await;
                        });
                    } else {
                        // Merely held by a task.
                        tokio::spawn(async move {
                            polled.fetch_add(1, Ordering::SeqCst);
                            std::future::pending::<()>().await;
                            drop(child);
                        });
                    }
                }
                assert!(eventually(LIMIT, || polled.load(Ordering::SeqCst) == N).await);
                (doomed, survivors)
            }
        }));
        let running = survivors.iter().filter(|h| h.status().is_none()).count();
        let dropped_at = Instant::now();
        drop(rt);
        let doomed_done = eventually_blocking(Duration::from_secs(10), || {
            doomed.iter().all(|h| h.status().is_some())
        });
        let doomed_time = dropped_at.elapsed();
        assert!(doomed_done, "kill_on_drop children not reaped within 10 s");
        for h in &doomed {
            let s = h.status().unwrap().unwrap();
            assert_eq!(
                s.signal(),
                Some(libc::SIGKILL),
                "kill_on_drop child {}: {s:?}",
                h.id()
            );
        }
        let survivors_done = eventually_blocking(Duration::from_secs(30), || {
            survivors.iter().all(|h| h.status().is_some())
        });
        let survivors_time = dropped_at.elapsed();
        assert!(survivors_done, "children without kill_on_drop not reaped");
        for h in &survivors {
            let s = h.status().unwrap().unwrap();
            assert!(
                s.success(),
                "child without kill_on_drop {} was not left alone: {s:?}",
                h.id()
            );
        }
        assert!(
            eventually_blocking(Duration::from_secs(10), || child_pids().is_empty()),
            "children or zombies left: {:?}",
            child_pids()
        );
        drop((doomed, survivors));
        assert!(
            eventually_blocking(Duration::from_secs(10), || fd_count() == baseline),
            "descriptors: {} open, baseline {baseline}",
            fd_count()
        );
        println!(
            "{running} of {} survivors still running at shutdown; kill_on_drop ones reaped \
             {doomed_time:?} after the drop, the others {survivors_time:?} after",
            N / 2
        );
        assert!(
            doomed_time < Duration::from_secs(3),
            "kill_on_drop children were not stopped promptly: {doomed_time:?}"
        );
        return worker_done(NAME);
    }
    let run = run_worker_bounded(worker_command(NAME), WORKER_LIMIT);
    eprintln!(
        "{}",
        run.stdout
            .lines()
            .find(|l| l.contains("survivors"))
            .unwrap_or("")
    );
    run.assert_ok(NAME);
}
