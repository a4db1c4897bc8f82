//! SIGCHLD set to SIG_IGN after spawning: the kernel reaps on its own.

use super::PER_WAIT;
use brood::Command;
use brood_testkit::procfs::child_pids;
use brood_testkit::{bounded, eventually, runtime, worker, TEST_LIMIT};
use std::time::{Duration, Instant};

// Regression test (bug found by this test, fixed in commit 6bd208d): on the
// SIGCHLD path the documented safety net never ran, because the dispatcher
// armed it only when it woke up with children in its table while
// registering a child did not wake it; with SIGCHLD ignored nothing else
// did, it slept in epoll_wait(-1) forever and `wait` hung.

#[test]
fn sigchld_ignored_after_spawn_never_hangs() {
    if worker::is_worker() {
        let rt = runtime::multi_thread(2);
        rt.block_on(bounded(TEST_LIMIT, async {
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
        return worker::done();
    }
    worker::run(&[]).assert_ok();
}
