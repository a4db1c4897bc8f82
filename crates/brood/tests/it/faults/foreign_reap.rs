//! Foreign reaping: another thread waitpid()s a brood child, and children
//! spawned with std next to brood's keep their status for their owner.

use super::PER_WAIT;
use brood::Command;
use brood_testkit::procfs::{child_pids, stat_state_ppid, zombie_children};
use brood_testkit::{bounded, bounded_test, eventually};
use std::io;
use std::time::{Duration, Instant};

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

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_waitpid_racing_wait_never_hangs() {
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
    }
);

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_waitpid_before_wait_never_hangs() {
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
    }
);

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_waitpid_of_a_dropped_child_never_hangs_its_handle() {
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
    }
);

bounded_test!(
    /// brood reaps only its own children: a child spawned with std::process next
    /// to brood children keeps its status for its owner, on both paths.
    ///
    /// On the SIGCHLD path this also covers children that exit before `spawn`
    /// registered them while an older foreign zombie hides them from the
    /// dispatcher's peek (this test made 2-4 of the 20 quick children hang
    /// before commit 7774e92).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn std_children_are_never_reaped_by_brood() {
        let mut theirs = std::process::Command::new("sh")
            .args(["-c", "exit 9"])
            .spawn()
            .unwrap();
        let their_pid = theirs.id();
        // Make brood dispatch while the foreign zombie exists.
        let exited = eventually(Duration::from_secs(10), || {
            stat_state_ppid(their_pid).map(|s| s.0) == Some('Z')
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
    }
);
