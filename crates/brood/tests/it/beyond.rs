//! What brood offers beyond tokio::process: signals, graceful and group
//! stops, timeouts, resource usage, shared handles, output caps, pipe
//! capacity, watching any pid, and subreaper mode.

use brood::{Command, OutputLimitExceeded, Signal};
use brood_testkit::fds::pipe_size;
use brood_testkit::procfs::zombie_children;
use brood_testkit::procfs::{pid_exists, sigchld_caught, stat_state_ppid, vm_hwm_kib};
use brood_testkit::{bounded, bounded_test, eventually, worker, TEST_LIMIT};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Gone, or a zombie waiting for somebody else (init) to reap it.
fn is_dead(pid: u32) -> bool {
    stat_state_ppid(pid).is_none_or(|(state, _)| state == 'Z')
}

/// Reads one line from the child's stdout (a pid or a readiness mark).
/// A shell that exits with `code` once its (piped) stdin reaches EOF: a
/// child that runs until the test lets it go.
fn exits_at_eof(code: i32) -> brood::Child {
    Command::new("sh")
        .args(["-c", &format!("read x; exit {code}")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn read_line(child: &mut brood::Child) -> String {
    let stdout = child.stdout.as_mut().expect("stdout piped");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    line.trim().to_string()
}

/// A shell that prints the pid of a background grandchild, then waits.
/// `trap` decides how the shell itself treats SIGTERM.
fn tree(trap: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("{trap} sleep 30 & echo $!; wait")])
        .stdout(Stdio::piped())
        .process_group(0);
    cmd
}

const IGNORE_TERM: &str = "trap '' TERM;";

/// A shell that runs `trap`, prints `ready` and loops until a signal ends it.
fn looping_shell(trap: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("{trap} echo ready; while :; do sleep 0.01; done"),
    ])
    .stdout(Stdio::piped());
    cmd
}

/// Spawns `cmd` and waits until it printed `ready` (its trap is in place).
async fn spawn_ready(cmd: &mut Command) -> brood::Child {
    let mut child = cmd.spawn().unwrap();
    assert_eq!(read_line(&mut child).await, "ready");
    child
}

// ---------------------------------------------------------------------------
// Signal

#[test]
fn signal_constants_round_trip() {
    for (sig, raw) in [
        (Signal::TERM, libc::SIGTERM),
        (Signal::KILL, libc::SIGKILL),
        (Signal::INT, libc::SIGINT),
        (Signal::HUP, libc::SIGHUP),
        (Signal::QUIT, libc::SIGQUIT),
        (Signal::USR1, libc::SIGUSR1),
        (Signal::USR2, libc::SIGUSR2),
        (Signal::STOP, libc::SIGSTOP),
        (Signal::CONT, libc::SIGCONT),
    ] {
        assert_eq!(sig.as_raw(), raw);
        assert_eq!(Signal::from_raw(raw), sig);
    }
    assert_eq!(format!("{:?}", Signal::USR1), "SIGUSR1");
    assert_eq!(format!("{:?}", Signal::from_raw(60)), "Signal(60)");
}

bounded_test!(
    #[tokio::test]
    async fn signal_reaches_the_child() {
        let mut child = spawn_ready(&mut looping_shell("trap 'exit 10' USR1;")).await;
        child.signal(Signal::USR1).unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(10));
        // Reaped: a further signal sends nothing and succeeds.
        child.signal(Signal::KILL).unwrap();
    }
);

bounded_test!(
    #[tokio::test]
    async fn stop_and_continue() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id().unwrap();
        child.signal(Signal::STOP).unwrap();
        assert!(
            eventually(Duration::from_secs(5), || stat_state_ppid(pid).map(|s| s.0)
                == Some('T'))
            .await
        );
        // A stopped child is not an exited one.
        assert!(child.try_wait().unwrap().is_none());
        child.signal(Signal::CONT).unwrap();
        assert!(
            eventually(Duration::from_secs(5), || stat_state_ppid(pid).map(|s| s.0)
                == Some('S'))
            .await
        );
        child.kill().await.unwrap();
    }
);

bounded_test!(
    #[tokio::test]
    async fn signal_group_needs_a_group_leader() {
        let mut child = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let err = child.signal_group(Signal::TERM).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(child.try_wait().unwrap().is_none(), "nothing was sent");
        child.kill().await.unwrap();
    }
);

bounded_test!(
    #[tokio::test]
    async fn signal_group_reaches_grandchildren() {
        let mut child = tree("").spawn().unwrap();
        let grandchild: u32 = read_line(&mut child).await.parse().unwrap();
        assert!(!is_dead(grandchild));
        child.signal_group(Signal::KILL).unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
        assert!(eventually(Duration::from_secs(5), || is_dead(grandchild)).await);
        // The handle reaches the group too, and is fine once all are gone.
        child.handle().signal_group(Signal::TERM).unwrap();
    }
);

// ---------------------------------------------------------------------------
// Graceful and whole-group stops

bounded_test!(
    #[tokio::test]
    async fn terminate_cooperative_child_exits_on_term() {
        let mut child = spawn_ready(&mut looping_shell("trap 'exit 3' TERM;")).await;
        let start = Instant::now();
        let status = child.terminate(Duration::from_secs(20)).await.unwrap();
        assert_eq!(status.code(), Some(3));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited out the grace"
        );
    }
);

bounded_test!(
    #[tokio::test]
    async fn terminate_uncooperative_child_is_killed_after_grace() {
        let mut child = spawn_ready(&mut looping_shell("trap '' TERM;")).await;
        let grace = Duration::from_millis(300);
        let start = Instant::now();
        let status = child.terminate(grace).await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(start.elapsed() >= grace);
    }
);

bounded_test!(
    #[tokio::test]
    async fn terminate_stops_the_whole_group() {
        // The shell exits on TERM; its background sleep ignores nothing but
        // is in the group, so it gets TERM too.
        let mut child = tree("").spawn().unwrap();
        let grandchild: u32 = read_line(&mut child).await.parse().unwrap();
        let status = child.terminate(Duration::from_secs(1)).await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // terminate resolves only once the whole group is gone.
        assert!(is_dead(grandchild));
    }
);

bounded_test!(
    #[tokio::test]
    async fn group_stragglers_that_ignore_term_get_kill_after_grace() {
        // The grandchild ignores TERM (and says so only once it does); the
        // leader does not.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "sh -c 'trap \"\" TERM; echo $$; exec sleep 30' & wait",
            ])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let grandchild: u32 = read_line(&mut child).await.parse().unwrap();
        let grace = Duration::from_millis(300);
        let start = Instant::now();
        let status = child.terminate(grace).await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // The straggler got the whole grace period, then SIGKILL, and
        // terminate waited for it.
        assert!(start.elapsed() >= grace);
        assert!(eventually(Duration::from_millis(500), || is_dead(grandchild)).await);
    }
);

bounded_test!(
    #[tokio::test]
    async fn kill_on_drop_stops_the_group_at_once_by_default() {
        let mut child = tree(IGNORE_TERM).kill_on_drop(true).spawn().unwrap();
        let grandchild: u32 = read_line(&mut child).await.parse().unwrap();
        let pid = child.id().unwrap();
        drop(child);
        assert!(
            eventually(Duration::from_secs(5), || is_dead(grandchild)
                && !pid_exists(pid))
            .await
        );
    }
);

bounded_test!(
    #[tokio::test]
    async fn kill_on_drop_with_grace_runs_in_the_background_and_reaps() {
        let grace = Duration::from_secs(1);
        // The grandchild keeps the default TERM action; the leader ignores
        // TERM (set after the grandchild started, so it is not inherited).
        let mut child = Command::new("sh")
            .args([
                "-c",
                "sleep 30 & trap '' TERM; echo $!; while :; do sleep 0.01; done",
            ])
            .stdout(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .grace(grace)
            .spawn()
            .unwrap();
        let grandchild: u32 = read_line(&mut child).await.parse().unwrap();
        let pid = child.id().unwrap();
        let dropped = Instant::now();
        drop(child);
        // TERM was sent to the group: the grandchild (default TERM action)
        // dies, the leader ignores it and lives until the grace ends.
        assert!(eventually(Duration::from_secs(5), || is_dead(grandchild)).await);
        assert!(
            pid_exists(pid) && dropped.elapsed() < grace,
            "leader died before the grace ended"
        );
        assert!(
            eventually(Duration::from_secs(5), || !pid_exists(pid)).await,
            "leader not reaped"
        );
        assert!(dropped.elapsed() >= grace);
    }
);

bounded_test!(
    #[tokio::test]
    async fn kill_on_drop_with_grace_lets_a_cooperative_child_exit() {
        let handle;
        {
            let child = spawn_ready(
                looping_shell("trap 'exit 0' TERM;")
                    .kill_on_drop(true)
                    .grace(Duration::from_secs(30)),
            )
            .await;
            handle = child.handle();
        }
        let status = handle.wait().await.unwrap();
        assert_eq!(status.code(), Some(0), "exited by itself on TERM");
    }
);

// ---------------------------------------------------------------------------
// Timeouts

bounded_test!(
    #[tokio::test]
    async fn status_timeout_stops_the_tree_and_reports_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let err = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .timeout(Duration::from_millis(300))
            .status()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(300));
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(eventually(Duration::from_secs(5), || is_dead(grandchild)).await);
        dir.close().unwrap();
    }
);

bounded_test!(
    #[tokio::test]
    async fn output_timeout_with_grace() {
        let err = Command::new("sh")
            .args([
                "-c",
                "trap '' TERM; echo partial; while :; do sleep 0.01; done",
            ])
            .timeout(Duration::from_millis(200))
            .grace(Duration::from_millis(200))
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(eventually(Duration::from_secs(5), || zombie_children().is_empty()).await);
    }
);

bounded_test!(
    #[tokio::test]
    async fn timeout_not_reached_returns_normally() {
        let out = Command::new("echo")
            .arg("quick")
            .timeout(Duration::from_secs(30))
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"quick\n");
        let status = Command::new("true")
            .timeout(Duration::from_secs(30))
            .status()
            .await;
        assert!(status.unwrap().success());
    }
);

bounded_test!(
    #[tokio::test]
    async fn wait_timeout_leaves_the_child_running() {
        let mut child = exits_at_eof(6);
        let start = Instant::now();
        assert_eq!(
            child
                .wait_timeout(Duration::from_millis(100))
                .await
                .unwrap(),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(child.id().is_some(), "still running");
        assert!(child.stdin.is_some(), "stdin left open");
        drop(child.stdin.take());
        let status = child.wait_timeout(Duration::from_secs(30)).await.unwrap();
        assert_eq!(status.unwrap().code(), Some(6));
    }
);

// ---------------------------------------------------------------------------
// Resource usage

bounded_test!(
    #[tokio::test]
    async fn wait_with_rusage_reports_this_child_alone() {
        let mut child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        assert_eq!(child.resource_usage(), None);
        let (status, usage) = child.wait_with_rusage().await.unwrap();
        assert!(status.success());
        assert!(usage.user_time() > Duration::from_millis(10), "{usage:?}");
        assert!(usage.user_time() < Duration::from_secs(60));
        assert!(usage.max_rss() > 100 * 1024, "max_rss in bytes: {usage:?}");
        assert!(usage.minor_faults() > 0);
        assert!(usage.voluntary_context_switches() + usage.involuntary_context_switches() > 0);
        let _ = (usage.system_time(), usage.major_faults());
        assert_eq!(child.resource_usage(), Some(usage));
        // A quick child uses (much) less.
        let mut quick = Command::new("true").spawn().unwrap();
        let (_, small) = quick.wait_with_rusage().await.unwrap();
        assert!(small.user_time() < usage.user_time());
    }
);

// ---------------------------------------------------------------------------
// Shared handles

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_handle_waiters_all_get_the_status() {
        let mut child = exits_at_eof(12);
        let handle = child.handle();
        let waiters: Vec<_> = (0..16)
            .map(|_| {
                let h = handle.clone();
                tokio::spawn(async move { h.wait().await.unwrap() })
            })
            .collect();
        assert!(handle.status().is_none());
        drop(child.stdin.take());
        // The Child itself is awaited too, concurrently.
        assert_eq!(child.wait().await.unwrap().code(), Some(12));
        for w in waiters {
            assert_eq!(w.await.unwrap().code(), Some(12));
        }
        assert_eq!(handle.status().unwrap().unwrap().code(), Some(12));
        assert!(handle.resource_usage().is_some());
        assert_eq!(handle.id(), child.handle().id());
    }
);

bounded_test!(
    #[tokio::test]
    async fn handle_wait_without_the_child_ever_awaited() {
        let child = Command::new("sh").args(["-c", "exit 4"]).spawn().unwrap();
        let handle = child.handle();
        assert_eq!(handle.wait().await.unwrap().code(), Some(4));
        // The Child sees the same status.
        let mut child = child;
        assert_eq!(child.wait().await.unwrap().code(), Some(4));
    }
);

bounded_test!(
    #[tokio::test]
    async fn handle_wait_after_the_child_was_dropped() {
        let mut child = exits_at_eof(8);
        let stdin = child.stdin.take().unwrap();
        let handle = child.handle();
        drop(child); // no kill_on_drop: keeps running
        let waiter = tokio::spawn({
            let handle = handle.clone();
            async move { handle.wait().await.unwrap() }
        });
        drop(stdin);
        assert_eq!(waiter.await.unwrap().code(), Some(8));
        handle.signal(Signal::TERM).unwrap();
    }
);

bounded_test!(
    #[tokio::test]
    async fn handle_wait_is_cancel_safe() {
        let mut child = exits_at_eof(2);
        let handle = child.handle();
        for _ in 0..5 {
            assert!(
                tokio::time::timeout(Duration::from_millis(10), handle.wait())
                    .await
                    .is_err()
            );
        }
        drop(child.stdin.take());
        assert_eq!(handle.wait().await.unwrap().code(), Some(2));
    }
);

// ---------------------------------------------------------------------------
// watch_pid

bounded_test!(
    #[tokio::test]
    async fn watch_pid_sees_a_process_that_is_not_our_child() {
        // The grandchild is the shell's child, not ours.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.3 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let grandchild: u32 = read_line(&mut child).await.parse().unwrap();
        let exited = brood::watch_pid(grandchild).unwrap();
        let start = Instant::now();
        exited.await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(is_dead(grandchild));
        child.wait().await.unwrap();
    }
);

bounded_test!(
    #[tokio::test]
    async fn watch_pid_of_a_missing_process_fails_at_once() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id().unwrap();
        child.wait().await.unwrap();
        let err = match brood::watch_pid(pid) {
            Err(e) => e,
            // The pid was recycled at once; extremely unlikely, but not a bug.
            Ok(_) => return,
        };
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(
            brood::watch_pid(0).err().unwrap().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
);

// ---------------------------------------------------------------------------
// Output cap and pipe capacity

bounded_test!(
    #[tokio::test]
    async fn max_output_stops_the_child_and_keeps_what_fits() {
        let cap = 100_000;
        let err = Command::new("sh")
            .args(["-c", "yes out & yes err >&2; wait"])
            .process_group(0)
            .max_output(cap)
            .output()
            .await
            .unwrap_err();
        let over = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<OutputLimitExceeded>())
            .expect("OutputLimitExceeded inside");
        assert_eq!(over.limit(), cap);
        assert_eq!(over.stdout().len() + over.stderr().len(), cap);
        assert!(over.stdout().chunks(4).all(|c| c == &b"out\n"[..c.len()]));
        assert!(err.to_string().contains("exceeded"));
        assert!(eventually(Duration::from_secs(5), || zombie_children().is_empty()).await);
    }
);

bounded_test!(
    #[tokio::test]
    async fn max_output_at_or_under_the_cap_is_fine() {
        let out = Command::new("head")
            .args(["-c", "5000", "/dev/zero"])
            .max_output(5000)
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), 5000);
        let child = Command::new("head")
            .args(["-c", "5001", "/dev/zero"])
            .stdout(Stdio::piped())
            .max_output(5000)
            .spawn()
            .unwrap();
        let err = child.wait_with_output().await.unwrap_err();
        let over = err
            .into_inner()
            .unwrap()
            .downcast::<OutputLimitExceeded>()
            .unwrap();
        assert_eq!(over.into_parts().0.len(), 5000);
    }
);

#[test]
fn max_output_keeps_memory_bounded() {
    if worker::is_worker() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let peak_kib = || vm_hwm_kib().expect("VmHWM in /proc/self/status") as i64;
        let hwm_before = peak_kib();
        rt.block_on(bounded(TEST_LIMIT, async {
            let err = Command::new("head")
                .args(["-c", "400000000", "/dev/zero"])
                .max_output(1 << 20)
                .output()
                .await
                .unwrap_err();
            assert!(err.get_ref().unwrap().is::<OutputLimitExceeded>());
        }));
        let grown = peak_kib() - hwm_before;
        assert!(
            grown < 32 * 1024,
            "peak RSS grew by {grown} KiB for a 1 MiB cap"
        );
        return worker::done();
    }
    worker::run(&[]).assert_ok();
}

bounded_test!(
    #[tokio::test]
    async fn pipe_capacity_is_set_and_clamped() {
        use std::os::fd::AsRawFd;
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .pipe_capacity(256 * 1024)
            .spawn()
            .unwrap();
        assert_eq!(
            pipe_size(child.stdin.as_ref().unwrap().as_raw_fd()),
            256 * 1024
        );
        assert_eq!(
            pipe_size(child.stdout.as_ref().unwrap().as_raw_fd()),
            256 * 1024
        );
        assert_eq!(
            pipe_size(child.stderr.as_ref().unwrap().as_raw_fd()),
            256 * 1024
        );
        child.kill().await.unwrap();

        let max: i32 = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut child = Command::new("true")
            .stdout(Stdio::piped())
            .pipe_capacity(1 << 30)
            .spawn()
            .expect("an oversized request is clamped, not an error");
        assert_eq!(pipe_size(child.stdout.as_ref().unwrap().as_raw_fd()), max);
        child.wait().await.unwrap();
    }
);

// ---------------------------------------------------------------------------
// Subreaper

#[test]
fn subreaper_reaps_adopted_orphans_and_never_steals_our_children() {
    if worker::is_worker() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(bounded(TEST_LIMIT, async {
            // A brood child from before subreaper mode, still running.
            let mut early = exits_at_eof(21);
            brood::become_subreaper().unwrap();
            assert!(sigchld_caught(), "subreaper mode listens for SIGCHLD");
            // A shell that daemonises a grandchild and exits at once: the
            // grandchild is re-parented to us.
            let mut child = Command::new("sh")
                .args(["-c", "sleep 0.3 & echo $!"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let orphan: u32 = read_line(&mut child).await.parse().unwrap();
            assert!(child.wait().await.unwrap().success());
            assert!(
                eventually(Duration::from_secs(5), || stat_state_ppid(orphan)
                    .is_some_and(|s| s.1 == std::process::id()))
                .await
                    || !pid_exists(orphan),
                "orphan was not re-parented to us"
            );
            // Many brood children come and go meanwhile; none is stolen.
            crate::exits_one_after_another(0..30).await;
            // The orphan exits and is reaped by brood: no zombie child.
            assert!(eventually(Duration::from_secs(5), || !pid_exists(orphan)).await);
            drop(early.stdin.take());
            assert_eq!(early.wait().await.unwrap().code(), Some(21));
            assert!(eventually(Duration::from_secs(5), || zombie_children().is_empty()).await);
        }));
        return worker::done();
    }
    worker::run(&[]).assert_ok();
}

#[test]
fn terminate_returns_as_soon_as_the_group_is_gone_in_a_subreaper() {
    if worker::is_worker() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(bounded(TEST_LIMIT, async {
            // As a subreaper, brood reaps the orphaned grandchild itself, so
            // the group is seen empty as soon as it is.
            brood::become_subreaper().unwrap();
            let mut child = tree("").spawn().unwrap();
            let grandchild: u32 = read_line(&mut child).await.parse().unwrap();
            let start = Instant::now();
            child.terminate(Duration::from_secs(20)).await.unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited out the grace"
            );
            assert!(!pid_exists(grandchild) || is_dead(grandchild));
        }));
        return worker::done();
    }
    worker::run(&[]).assert_ok();
}

bounded_test!(
    #[tokio::test]
    async fn abandoned_timeouts_do_not_accumulate() {
        let mut child = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..3000 {
            // Each call arms an hour-long timer, then is dropped unfinished.
            let wait = child.wait_timeout(Duration::from_secs(3600));
            let _ = tokio::time::timeout(Duration::from_micros(1), wait).await;
        }
        let pending = brood::test_hooks::pending_timers();
        assert!(
            pending < 1000,
            "{pending} timer entries kept for 3000 abandoned waits"
        );
        child.kill().await.unwrap();
    }
);

// ---------------------------------------------------------------------------
// Bulk capture on a multi-thread runtime: once the output proves large it is
// drained on a blocking thread (see `child/output.rs`).

/// Whether `data` is `line` repeated, the last copy possibly cut short.
fn repeats(data: &[u8], line: &[u8]) -> bool {
    data.chunks(line.len()).all(|c| c == &line[..c.len()])
}

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_capture_keeps_both_streams_whole() {
        let out = Command::new("sh")
            .args([
                "-c",
                "yes 0123456 | head -c 3000000; yes err | head -c 2000000 >&2; printf END >&2",
            ])
            .output()
            .await
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 3_000_000);
        assert!(repeats(&out.stdout, b"0123456\n"));
        assert_eq!(out.stderr.len(), 2_000_003);
        assert!(repeats(&out.stderr[..2_000_000], b"err\n"));
        assert_eq!(&out.stderr[2_000_000..], b"END");
    }
);

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_capture_over_the_cap_stops_the_child() {
        let cap = 5 << 20;
        let err = Command::new("yes")
            .arg("0123456")
            .max_output(cap)
            .output()
            .await
            .unwrap_err();
        let over = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<OutputLimitExceeded>())
            .expect("OutputLimitExceeded inside");
        assert_eq!(over.stdout().len(), cap);
        assert!(repeats(over.stdout(), b"0123456\n"));
        assert!(eventually(Duration::from_secs(5), || zombie_children().is_empty()).await);
    }
);

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_bulk_capture_lets_go_of_the_pipes() {
        let child = Command::new("yes")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        // `yes` never ends on its own: the capture is abandoned mid-way, by
        // then running on a blocking thread.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(300), child.wait_with_output()).await;
        assert!(abandoned.is_err());
        // The thread drops the read ends, `yes` dies of SIGPIPE, and the
        // dropped child is reaped.
        assert!(
            eventually(Duration::from_secs(10), || !pid_exists(pid)).await,
            "yes ({pid}) still alive: the capture thread kept reading"
        );
    }
);
