//! Soak test: many spawn/wait/drop cycles must leave memory and descriptors
//! flat. Ignored by default; run it with `scripts/soak` (release build, both
//! reapers), or:
//!
//! ```text
//! BROOD_REAPER=pidfd cargo test --release -p brood --test it -- soak:: --ignored --nocapture
//! ```
//!
//! `SOAK_CYCLES` sets the number of cycles (default 100,000, sampled every
//! tenth of the run).

use brood::Command;
use brood_testkit::fds::settled_fd_count;
use brood_testkit::procfs::{child_pids, vm_rss_kib, zombie_children};
use brood_testkit::{bounded, eventually_blocking, runtime};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Cycles run before the first sample, so one-time allocations (runtime,
/// brood's tables, allocator arenas of new threads) are not counted as growth.
const WARM_UP: usize = 1_000;
/// Tasks spawning concurrently.
const TASKS: usize = 8;
/// Allowed RSS growth from the first sample to any later one.
const RSS_SLACK_KIB: u64 = 4 * 1024;

/// Bound on one cycle: brood documents that even a lost SIGCHLD is noticed
/// by its safety net within about a second.
const CYCLE_LIMIT: Duration = Duration::from_secs(30);

/// One cycle, bounded; the kind rotates so every path is exercised evenly.
async fn cycle(i: usize) {
    if tokio::time::timeout(CYCLE_LIMIT, cycle_unbounded(i))
        .await
        .is_err()
    {
        panic!(
            "cycle {i} (kind {}) hung for {CYCLE_LIMIT:?}; children: {:?}, zombies: {:?}",
            i % 5,
            child_pids(),
            zombie_children()
        );
    }
}

async fn cycle_unbounded(i: usize) {
    match i % 5 {
        // Plain wait.
        0 => {
            let mut child = Command::new("true").spawn().unwrap();
            assert!(child.wait().await.unwrap().success());
        }
        // Dropped unreaped: the background reaper collects it.
        1 => drop(Command::new("true").spawn().unwrap()),
        // kill_on_drop while running.
        2 => drop(
            Command::new("sleep")
                .arg("10")
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        ),
        // Pipes: read stdout to the end, then wait.
        3 => {
            let mut child = Command::new("echo")
                .arg("soak")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = Vec::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_end(&mut out)
                .await
                .unwrap();
            assert_eq!(out, b"soak\n");
            assert!(child.wait().await.unwrap().success());
        }
        // Dropped, then awaited through a handle.
        _ => {
            let child = Command::new("true").spawn().unwrap();
            let handle = child.handle();
            drop(child);
            assert!(handle.wait().await.unwrap().success());
        }
    }
}

fn run_cycles(rt: &tokio::runtime::Runtime, start: usize, count: usize) {
    rt.block_on(bounded(Duration::from_secs(1800), async move {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                tokio::spawn(async move {
                    let mut i = start + t;
                    while i < start + count {
                        cycle(i).await;
                        i += TASKS;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }));
    // Dropped children are reaped asynchronously: let the reaper catch up so
    // that samples compare like with like.
    assert!(
        eventually_blocking(Duration::from_secs(30), || child_pids().is_empty()),
        "children left behind: {:?}",
        child_pids()
    );
}

#[test]
#[ignore = "soak test: takes minutes; run scripts/soak"]
fn soak_spawn_wait_drop_cycles() {
    let cycles: usize = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let every = (cycles / 10).max(1);
    let rt = runtime::multi_thread(2);
    run_cycles(&rt, 0, WARM_UP);
    let rss_kib = || vm_rss_kib().expect("VmRSS in /proc/self/status");

    let started = Instant::now();
    let fds0 = settled_fd_count();
    let rss0 = rss_kib();
    println!(
        "soak under {:?}: {cycles} cycles after {WARM_UP} warm-up cycles",
        brood::reaper::current()
    );
    println!("sample      0: rss {rss0:>7} KiB, fds {fds0}");
    let mut done = 0;
    let mut max_rss = rss0;
    while done < cycles {
        let n = every.min(cycles - done);
        run_cycles(&rt, WARM_UP + done, n);
        done += n;
        let fds = settled_fd_count();
        let rss = rss_kib();
        max_rss = max_rss.max(rss);
        println!(
            "sample {done:>6}: rss {rss:>7} KiB, fds {fds}, {:.0} cycles/s",
            done as f64 / started.elapsed().as_secs_f64()
        );
        assert_eq!(fds, fds0, "descriptor count changed after {done} cycles");
    }
    let rss_end = rss_kib();
    println!(
        "end: rss {rss0} -> {rss_end} KiB (max {max_rss}), fds {fds0} -> {}, {cycles} cycles in {:?}",
        settled_fd_count(),
        started.elapsed()
    );
    assert!(
        max_rss <= rss0 + RSS_SLACK_KIB,
        "RSS grew from {rss0} KiB to {max_rss} KiB"
    );
}
