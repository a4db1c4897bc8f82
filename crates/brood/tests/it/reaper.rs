//! Core behaviours of the exit watchers: strategy choice, O(1) SIGCHLD
//! dispatch, no handler on the pidfd path, orphan reaping, kill_on_drop, and
//! spawning outside a runtime.

use crate::exits_one_after_another;
use brood::reaper::Strategy;
use brood::Command;
use brood_testkit::procfs::{
    child_pids, pid_exists, sigchld_caught, stat_state_ppid, zombie_children,
};
use brood_testkit::{bounded, bounded_test, eventually, eventually_blocking};
use brood_testkit::{runtime, worker, TEST_LIMIT};
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Runs `scenario` in a worker process of its own with
/// `BROOD_REAPER=signal`: the SIGCHLD path's process-wide state (its
/// handler, its listeners) starts fresh, whichever reaper the suite runs.
fn on_the_sigchld_path(scenario: impl FnOnce()) {
    if worker::is_worker() {
        scenario();
        return worker::done();
    }
    worker::run(&[("BROOD_REAPER", Some("signal"))]).assert_ok();
}

// ---------------------------------------------------------------------------
// 1. Choosing the exit watcher

#[test]
fn strategy_follows_brood_reaper() {
    let strategy = brood::reaper::current();
    // The strategy the suite was asked to test.
    match std::env::var("BROOD_REAPER").ok().as_deref() {
        Some("pidfd") => assert_eq!(strategy, Strategy::Pidfd),
        Some("signal") => assert_eq!(strategy, Strategy::Signal),
        _ => {}
    }
    // Chosen once: asking again gives the same answer.
    assert_eq!(brood::reaper::current(), strategy);
    assert_eq!(brood::reaper::try_current().unwrap(), strategy);
}

#[test]
fn auto_probes_and_prefers_pidfd_here() {
    if worker::is_worker() {
        // This machine runs Linux with pidfd support.
        assert_eq!(brood::reaper::current(), Strategy::Pidfd);
        let status = runtime::block_on(async { Command::new("true").status().await });
        assert!(status.unwrap().success());
        return worker::done();
    }
    for setting in [None, Some("auto"), Some("")] {
        worker::run(&[("BROOD_REAPER", setting)]).assert_ok();
    }
}

#[test]
fn invalid_brood_reaper_is_an_error_naming_the_variable() {
    if worker::is_worker() {
        let err = Command::new("true").spawn().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("BROOD_REAPER"), "{err}");
        assert!(err.to_string().contains("sometimes"), "{err}");
        // No process was created.
        assert!(child_pids().is_empty());
        let err = brood::reaper::try_current().unwrap_err();
        assert!(err.to_string().contains("BROOD_REAPER"));
        return worker::done();
    }
    worker::run(&[("BROOD_REAPER", Some("sometimes"))]).assert_ok();
}

// ---------------------------------------------------------------------------
// 2. The SIGCHLD path does O(1) work per exit

/// Counts how often the wrapped future is polled.
struct CountPolls<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

#[test]
fn sigchld_path_is_o1_per_exit_and_wakes_only_the_exited() {
    on_the_sigchld_path(|| {
        runtime::block_on(bounded(TEST_LIMIT, async {
            assert_eq!(brood::reaper::current(), Strategy::Signal);
            // 300 long-lived children, each awaited by a task that counts polls.
            let mut sleepers = Vec::new();
            let mut poll_counts = Vec::new();
            for _ in 0..300 {
                let mut child = Command::new("sleep")
                    .arg("30")
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                let polls = Arc::new(AtomicUsize::new(0));
                poll_counts.push(polls.clone());
                sleepers.push(tokio::spawn(CountPolls {
                    inner: Box::pin(async move { child.wait().await }),
                    polls,
                }));
            }
            // Let every sleeper task park once.
            assert!(
                eventually(Duration::from_secs(10), || poll_counts
                    .iter()
                    .all(|p| p.load(Ordering::SeqCst) >= 1))
                .await
            );
            let before_polls: usize = poll_counts.iter().map(|p| p.load(Ordering::SeqCst)).sum();
            let before_waits = brood::test_hooks::wait_calls();

            // 100 short children that exit one after another.
            for i in 0..100 {
                let status = Command::new("sh")
                    .args(["-c", &format!("exit {}", i % 7)])
                    .status()
                    .await
                    .unwrap();
                assert_eq!(status.code(), Some(i % 7));
            }
            let waits = brood::test_hooks::wait_calls() - before_waits;
            let after_polls: usize = poll_counts.iter().map(|p| p.load(Ordering::SeqCst)).sum();

            // A poll-every-pid design would make ~300 wait calls per exit
            // (30,000 here). brood needs one wait4 plus one peek per wake-up,
            // plus at most one safety-net scan of the 300 sleepers if the
            // machine is slow enough for a quiet second to fall in the window.
            assert!(waits <= 100 * 3 + 300, "{waits} wait calls for 100 exits");
            assert_eq!(after_polls, before_polls, "sleeping waiters were woken");
            for s in sleepers {
                s.abort();
            }
        }));
    });
}

bounded_test!(
    #[tokio::test]
    async fn never_reaps_a_child_brood_did_not_spawn() {
        // A std child that becomes a zombie and stays one until we wait.
        let mut foreign = std::process::Command::new("sh")
            .args(["-c", "exit 42"])
            .spawn()
            .unwrap();
        let fpid = foreign.id();
        assert!(
            eventually(Duration::from_secs(10), || matches!(
                stat_state_ppid(fpid),
                Some(('Z', _))
            ))
            .await
        );
        // While it is in the way, brood children still get reaped.
        exits_one_after_another(0..20).await;
        // The foreign zombie is still there for its owner.
        assert_eq!(stat_state_ppid(fpid).map(|s| s.0), Some('Z'));
        assert_eq!(foreign.wait().unwrap().code(), Some(42));
    }
);

// ---------------------------------------------------------------------------
// 2b. SIGCHLD listeners: the dispatch runs on the waiting runtime's thread

#[test]
fn sigchld_exits_are_dispatched_on_the_waiting_runtime_not_the_thread() {
    on_the_sigchld_path(|| {
        runtime::on_both(TEST_LIMIT, |flavour| async move {
            assert_eq!(brood::reaper::current(), Strategy::Signal);
            // The first wait starts this runtime's listener; an exit before
            // that may still go to the thread.
            let status = Command::new("true").status().await.unwrap();
            assert!(status.success());
            let (thread_before, elsewhere_before) = brood::test_hooks::dispatch_rounds();
            exits_one_after_another((0..200).map(|i| i % 5)).await;
            let (thread_after, elsewhere_after) = brood::test_hooks::dispatch_rounds();
            assert_eq!(
                thread_after, thread_before,
                "{flavour}: the background thread dispatched exits a listener was there for"
            );
            assert!(
                elsewhere_after > elsewhere_before,
                "{flavour}: no listener dispatched"
            );
        });
    });
}

#[test]
fn sigchld_orphan_is_reaped_while_its_runtime_is_idle() {
    on_the_sigchld_path(|| {
        // The runtime has a listener, then stops being driven (block_on
        // returned) but lives on: the orphan's exit must not wait for it.
        let rt = runtime::current_thread();
        let (pid, stdin) = rt.block_on(bounded(TEST_LIMIT, async {
            let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
            assert!(child
                .wait_timeout(Duration::from_millis(1))
                .await
                .unwrap()
                .is_none());
            let pid = child.id().unwrap();
            let stdin = child.stdin.take().unwrap().into_owned_fd().unwrap();
            drop(child);
            (pid, stdin)
        }));
        drop(stdin);
        let lifetime = zombie_lifetime(pid, Duration::from_secs(10));
        assert!(
            lifetime <= Duration::from_millis(100),
            "zombie for {lifetime:?} while its runtime was idle"
        );
        // And once the orphan is gone, exits go to the listener again.
        rt.block_on(bounded(TEST_LIMIT, async {
            assert!(Command::new("true").status().await.unwrap().success());
            let (thread_before, _) = brood::test_hooks::dispatch_rounds();
            for _ in 0..10 {
                assert!(Command::new("true").status().await.unwrap().success());
            }
            assert_eq!(brood::test_hooks::dispatch_rounds().0, thread_before);
        }));
    });
}

#[test]
fn sigchld_waits_in_one_runtime_while_another_runtime_is_idle() {
    on_the_sigchld_path(|| {
        // Runtime A gets a listener, then sits idle for the rest of the test.
        let idle = runtime::current_thread();
        idle.block_on(bounded(TEST_LIMIT, async {
            assert!(Command::new("true").status().await.unwrap().success());
        }));
        // Runtime B, on another thread, waits for children of its own, each
        // exit promptly (in milliseconds; the thread's fallback for records
        // left unread with A would take a second or more each).
        std::thread::spawn(|| {
            runtime::current_thread().block_on(bounded(
                Duration::from_secs(5),
                exits_one_after_another(0..20),
            ));
        })
        .join()
        .unwrap();
        drop(idle);
    });
}

#[test]
fn sigchld_exit_left_with_a_runtime_is_served_when_it_shuts_down() {
    on_the_sigchld_path(|| {
        let rt = runtime::current_thread();
        let (child, handle, stdin) = rt.block_on(bounded(TEST_LIMIT, async {
            let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
            let handle = child.handle();
            // Starts the listener and marks the child watched.
            assert!(
                tokio::time::timeout(Duration::from_millis(1), handle.wait())
                    .await
                    .is_err()
            );
            let stdin = child.stdin.take().unwrap().into_owned_fd().unwrap();
            (child, handle, stdin)
        }));
        // The exit goes to the listener, whose runtime is not driven.
        drop(stdin);
        let pid = child.id().unwrap();
        assert!(eventually_blocking(Duration::from_secs(10), || matches!(
            stat_state_ppid(pid),
            Some(('Z', _))
        )));
        // Shutting the runtime down hands the unread exit to the thread,
        // which announces it: the handle learns it without asking.
        drop(rt);
        let start = Instant::now();
        assert!(
            eventually_blocking(Duration::from_millis(500), || handle.status().is_some()),
            "the handle did not learn the exit within {:?}",
            start.elapsed()
        );
        assert_eq!(handle.status().unwrap().unwrap().code(), Some(0));
        drop(child);
    });
}

// ---------------------------------------------------------------------------
// 3. The pidfd path installs no SIGCHLD handler

#[test]
fn pidfd_path_installs_no_sigchld_handler() {
    if worker::is_worker() {
        assert!(!sigchld_caught());
        runtime::block_on(async {
            // Awaited, dropped unreaped, and dropped with kill_on_drop.
            Command::new("true").status().await.unwrap();
            drop(Command::new("sleep").arg("0.05").spawn().unwrap());
            drop(
                Command::new("sleep")
                    .arg("5")
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap(),
            );
            let handle = Command::new("true").spawn().unwrap().handle();
            handle.wait().await.unwrap();
        });
        assert!(
            !sigchld_caught(),
            "the pidfd path installed a SIGCHLD handler"
        );
        assert!(eventually_blocking(Duration::from_secs(10), || child_pids(
        )
        .is_empty()));
        return worker::done();
    }
    worker::run(&[("BROOD_REAPER", Some("pidfd"))]).assert_ok();
}

#[test]
fn signal_path_installs_its_handler() {
    if worker::is_worker() {
        assert!(!sigchld_caught());
        runtime::block_on(async { Command::new("true").status().await.unwrap() });
        assert!(sigchld_caught());
        return worker::done();
    }
    worker::run(&[("BROOD_REAPER", Some("signal"))]).assert_ok();
}

// ---------------------------------------------------------------------------
// 4. A dropped child is reaped in bounded time

/// Watches `pid` until it is gone; returns how long it spent as a zombie.
fn zombie_lifetime(pid: u32, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut became_zombie = None;
    loop {
        match stat_state_ppid(pid) {
            None => {
                return became_zombie.map_or(Duration::ZERO, |t: Instant| t.elapsed());
            }
            Some(('Z', _)) if became_zombie.is_none() => became_zombie = Some(Instant::now()),
            _ => {}
        }
        assert!(
            start.elapsed() < limit,
            "pid {pid} still exists after {limit:?}"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_child_is_reaped_within_100ms_of_exiting() {
        for _ in 0..5 {
            let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
            let pid = child.id().unwrap();
            let stdin = child.stdin.take().unwrap();
            drop(child);
            // cat exits when its input closes.
            drop(stdin);
            let lifetime =
                tokio::task::spawn_blocking(move || zombie_lifetime(pid, Duration::from_secs(10)))
                    .await
                    .unwrap();
            assert!(
                lifetime <= Duration::from_millis(100),
                "zombie for {lifetime:?}"
            );
        }
    }
);

#[test]
fn dropped_child_is_reaped_after_its_runtime_shut_down() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (pid, stdin) = rt.block_on(async {
        let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
        // Poll the exit watcher so it registers with this runtime (unlike
        // wait, wait_timeout leaves stdin open).
        assert!(child.try_wait().unwrap().is_none());
        assert!(child
            .wait_timeout(Duration::from_millis(1))
            .await
            .unwrap()
            .is_none());
        (
            child.id().unwrap(),
            child.stdin.take().unwrap().into_owned_fd().unwrap(),
        )
    });
    drop(rt);
    // The Child was dropped inside the runtime; the runtime is gone; now the
    // child exits.
    drop(stdin);
    let lifetime = zombie_lifetime(pid, Duration::from_secs(10));
    assert!(
        lifetime <= Duration::from_millis(100),
        "zombie for {lifetime:?}"
    );
}

// ---------------------------------------------------------------------------
// 5. kill_on_drop

bounded_test!(
    #[tokio::test]
    async fn kill_on_drop_kills_and_reaps() {
        let child = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        drop(child);
        assert!(
            eventually(Duration::from_secs(5), || !pid_exists(pid)).await,
            "pid {pid} survived: {:?}",
            stat_state_ppid(pid)
        );
    }
);

bounded_test!(
    #[tokio::test]
    async fn no_kill_on_drop_leaves_the_child_running_then_reaps_it() {
        let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
        let pid = child.id().unwrap();
        let stdin = child.stdin.take().unwrap();
        drop(child);
        // Still running: dropping a Child does not kill it.
        assert_eq!(stat_state_ppid(pid).map(|s| s.0 != 'Z'), Some(true));
        drop(stdin);
        assert!(eventually(Duration::from_secs(5), || !pid_exists(pid)).await);
    }
);

// ---------------------------------------------------------------------------
// 6. spawn never panics, inside or outside a runtime

#[test]
fn spawn_outside_a_runtime_then_drive_inside_one() {
    let mut child = Command::new("sh")
        .args(["-c", "echo out; exit 3"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn without a runtime");
    let rt = runtime::current_thread();
    rt.block_on(bounded(TEST_LIMIT, async {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "out\n");
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
    }));
}

#[test]
fn wait_outside_tokio_uses_the_background_reaper() {
    let mut child = Command::new("sh").args(["-c", "exit 9"]).spawn().unwrap();
    // A minimal executor that is not Tokio.
    let status = block_on_thread(child.wait()).unwrap();
    assert_eq!(status.code(), Some(9));
}

/// A tiny single-future executor: parks the thread until woken.
fn block_on_thread<F: Future>(f: F) -> F::Output {
    use std::task::{Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + TEST_LIMIT;
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(Instant::now() < deadline, "future did not complete");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn pipes_polled_outside_a_runtime_fail_without_panicking() {
    use tokio::io::AsyncReadExt;
    let mut child = Command::new("echo")
        .arg("x")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = Vec::new();
    let err = block_on_thread(stdout.read_to_end(&mut buf)).unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
    assert!(block_on_thread(child.wait()).unwrap().success());
}

bounded_test!(
    #[tokio::test]
    async fn spawn_errors_are_errors() {
        let err = Command::new("/nonexistent/program").spawn().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        let err = Command::new("true")
            .current_dir("/nonexistent/dir")
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(zombie_children().is_empty());
    }
);

// ---------------------------------------------------------------------------
// Descriptor exhaustion on the pidfd path

#[test]
fn wait_works_when_no_descriptor_is_left_for_a_pidfd() {
    if worker::is_worker() {
        runtime::block_on(bounded(TEST_LIMIT, async {
            // Start the background reaper while descriptors are plentiful.
            let handle = Command::new("true").spawn().unwrap().handle();
            handle.wait().await.unwrap();
            let mut child = Command::new("sh")
                .args(["-c", "sleep 0.2; exit 5"])
                .spawn()
                .unwrap();
            let orphan = Command::new("sh")
                .args(["-c", "sleep 0.2"])
                .spawn()
                .unwrap();
            let orphan_pid = orphan.id().unwrap();
            // Use up every descriptor.
            let mut hog = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hog.push(f);
            }
            assert!(hog.len() > 10);
            // Neither the owner's wait nor the orphan hand-off can open a
            // pidfd; both fall back and still see the exit.
            drop(orphan);
            let status = child.wait().await.unwrap();
            assert_eq!(status.code(), Some(5));
            let gone = eventually(Duration::from_secs(10), || !pid_exists(orphan_pid)).await;
            drop(hog);
            assert!(gone, "orphan not reaped while descriptors ran out");
        }));
        return worker::done();
    }
    worker::run(&[("BROOD_REAPER", Some("pidfd"))]).assert_ok();
}
