//! Runtime shutdown with 1000 live children.

use super::exercise;
use brood::Command;
use brood_testkit::fds::{fd_count, settled_fd_count};
use brood_testkit::limits::{self, Resource::OpenFiles};
use brood_testkit::procfs::child_pids;
use brood_testkit::{bounded, eventually, eventually_blocking, runtime, worker, TEST_LIMIT};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn runtime_shutdown_with_1000_live_children() {
    const N: usize = 1000;
    if worker::is_worker() {
        let hard = limits::get(OpenFiles).rlim_max;
        limits::set_soft(OpenFiles, hard).expect("setrlimit");
        // Warm up brood's own descriptors (wake pipe, epoll set, ...) first,
        // on a runtime that lives until the last count. Dropped before the
        // baseline, its driver's epoll set and eventfd could still be open
        // when the baseline is taken: the background reaper lets go of the
        // waker of the last wait it completed only after the wake-up, which
        // the woken test may outrun (on the SIGCHLD path no pidfd marks that
        // moment). The baseline was then two descriptors high, and the final
        // count failed with "12 open, baseline 14".
        let warm = runtime::current_thread();
        warm.block_on(bounded(TEST_LIMIT, exercise()));
        let baseline = settled_fd_count();
        let rt = runtime::multi_thread(2);
        let polled = std::sync::Arc::new(AtomicUsize::new(0));
        let (doomed, survivors) = rt.block_on(bounded(TEST_LIMIT, {
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
                assert!(eventually(TEST_LIMIT, || polled.load(Ordering::SeqCst) == N).await);
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
        drop(warm);
        println!(
            "{running} of {} survivors still running at shutdown; kill_on_drop ones reaped \
             {doomed_time:?} after the drop, the others {survivors_time:?} after",
            N / 2
        );
        assert!(
            doomed_time < Duration::from_secs(3),
            "kill_on_drop children were not stopped promptly: {doomed_time:?}"
        );
        return worker::done();
    }
    let run = worker::run(&[]);
    eprintln!("{}", run.stdout_line("survivors"));
    run.assert_ok();
}
