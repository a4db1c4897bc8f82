//! Many threads, many runtimes: children spawned and awaited from 8
//! threads, and moved between 8 runtimes.

use brood::Command;
use brood_testkit::procfs::child_pids;
use brood_testkit::{bounded, eventually_blocking, runtime, TEST_LIMIT};
use std::process::Stdio;
use std::time::Duration;

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
                runtime::current_thread().block_on(bounded(TEST_LIMIT, async move {
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
    let rts: Vec<_> = (0..8).map(|_| runtime::multi_thread(2)).collect();
    let spawned: Vec<_> = rts
        .iter()
        .enumerate()
        .map(|(r, rt)| rt.spawn(spawn_and_check(r)))
        .collect();
    let mut checks = Vec::new();
    for (r, join) in spawned.into_iter().enumerate() {
        let children = rts[r].block_on(bounded(TEST_LIMIT, join)).unwrap();
        let other = &rts[(r + 1) % rts.len()];
        checks.push(other.spawn(check_children(r, children)));
    }
    for (r, join) in checks.into_iter().enumerate() {
        rts[r].block_on(bounded(TEST_LIMIT, join)).unwrap();
    }
    drop(rts);
    assert!(eventually_blocking(Duration::from_secs(10), || child_pids(
    )
    .is_empty()));
}
