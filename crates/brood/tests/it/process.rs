//! Core process behaviour: a port of what tokio's process tests check, stdin
//! shutdown, descriptor hygiene, runtimes, and scale.

use brood::Command;
use brood_testkit::fds::{fd_count, fd_flags, is_cloexec, open_fds, settled_fd_count};
use brood_testkit::procfs::{child_pids, pid_exists, stat_state_ppid, zombie_children};
use brood_testkit::{bounded, bounded_test, eventually, runtime, TEST_LIMIT};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------
// Exit codes, fused wait, try_wait

bounded_test!(
    #[tokio::test]
    async fn exit_codes_and_a_second_wait_returns_the_same_status() {
        for code in [0, 1, 2, 42, 255] {
            let mut child = Command::new("sh")
                .args(["-c", &format!("exit {code}")])
                .spawn()
                .unwrap();
            let first = child.wait().await.unwrap();
            assert_eq!(first.code(), Some(code));
            let second = child.wait().await.unwrap();
            assert_eq!(first, second);
            assert_eq!(child.try_wait().unwrap(), Some(first));
            assert_eq!(child.id(), None, "no pid once reaped");
        }
    }
);

bounded_test!(
    #[tokio::test]
    async fn killed_child_reports_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.kill().await.unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(status.code(), None);
    }
);

bounded_test!(
    #[tokio::test]
    async fn try_wait_before_and_after_exit() {
        let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        assert!(child.id().is_some());
        drop(child.stdin.take());
        let pid = child.id().unwrap();
        // Wait for the exit without reaping (it turns into a zombie), then
        // try_wait must collect it.
        assert!(
            eventually(Duration::from_secs(10), || stat_state_ppid(pid)
                .is_some_and(|s| s.0 == 'Z')
                || !pid_exists(pid))
            .await
        );
        let mut status = None;
        assert!(
            eventually(Duration::from_secs(10), || {
                status = child.try_wait().unwrap();
                status.is_some()
            })
            .await
        );
        assert!(status.unwrap().success());
        assert_eq!(child.wait().await.unwrap(), status.unwrap());
    }
);

bounded_test!(
    #[tokio::test]
    async fn kill_after_wait_is_fine() {
        let mut child = Command::new("true").kill_on_drop(true).spawn().unwrap();
        assert!(child.wait().await.unwrap().success());
        child.start_kill().unwrap();
        child.kill().await.unwrap();
        child.signal(brood::Signal::TERM).unwrap();
    }
);

bounded_test!(
    #[tokio::test]
    async fn wait_is_cancel_safe() {
        let mut child = Command::new("sh")
            .args(["-c", "read x; exit 5"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Cancel a wait several times while the child runs.
        for _ in 0..3 {
            assert!(
                tokio::time::timeout(Duration::from_millis(20), child.wait())
                    .await
                    .is_err()
            );
        }
        stdin.write_all(b"go\n").await.unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(5));
    }
);

// ---------------------------------------------------------------------------
// arg0, env

bounded_test!(
    #[tokio::test]
    async fn arg0_is_passed() {
        let out = Command::new("sh")
            .arg0("renamed-shell")
            .args(["-c", "echo $0"])
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "renamed-shell\n");
    }
);

bounded_test!(
    #[tokio::test]
    async fn env_options_are_honoured() {
        let out = Command::new("/usr/bin/env")
            .env_clear()
            .env("ONLY", "this")
            .envs([("AND", "that")])
            .env("GONE", "x")
            .env_remove("GONE")
            .current_dir("/")
            .output()
            .await
            .unwrap();
        let mut lines: Vec<_> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        lines.sort();
        assert_eq!(lines, ["AND=that", "ONLY=this"]);
    }
);

// ---------------------------------------------------------------------------
// Pipes

bounded_test!(
    #[tokio::test]
    async fn pipe_from_one_command_to_another() {
        let mut first = Command::new("echo")
            .arg("hello pipeline")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: Stdio = first.stdout.take().unwrap().try_into().unwrap();
        let second = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(stdout)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = second.wait_with_output().await.unwrap();
        assert_eq!(out.stdout, b"HELLO PIPELINE\n");
        assert!(first.wait().await.unwrap().success());
    }
);

bounded_test!(
    #[tokio::test]
    async fn converted_pipes_are_blocking_again() {
        let mut child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
        let fd = child.stdout.take().unwrap().into_owned_fd().unwrap();
        let flags = fd_flags(fd.as_raw_fd()).expect("the pipe is open");
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        child.wait().await.unwrap();
    }
);

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_concurrent_stdin_and_stdout() {
        const SIZE: usize = 8 << 20;
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            // Vectored writes exercise writev.
            let (a, b) = data.split_at(SIZE / 2);
            let mut slices = [std::io::IoSlice::new(a), std::io::IoSlice::new(b)];
            let mut bufs = &mut slices[..];
            while !bufs.is_empty() {
                let n = stdin.write_vectored(bufs).await.unwrap();
                std::io::IoSlice::advance_slices(&mut bufs, n);
            }
            stdin.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        stdout.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "data corrupted in transit");
        assert!(child.wait().await.unwrap().success());
    }
);

bounded_test!(
    #[tokio::test]
    async fn stdin_shutdown_closes_the_pipe_while_the_handle_lives() {
        let mut child = Command::new("wc")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"12345").await.unwrap();
        stdin.shutdown().await.unwrap();
        // The ChildStdin is still alive in `child.stdin`, yet wc sees EOF.
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out.trim(), "5");
        assert!(child.stdin.is_some());
        let err = child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"x")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
        assert_eq!(child.stdin.as_ref().unwrap().as_raw_fd(), -1);
        assert!(child.wait().await.unwrap().success());
    }
);

bounded_test!(
    #[tokio::test]
    async fn status_closes_its_pipes() {
        // cat would wait forever on a stdin pipe that stayed open.
        let status = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
);

bounded_test!(
    #[tokio::test]
    async fn output_collects_both_streams() {
        let out = Command::new("sh")
            .args(["-c", "echo to-out; echo to-err >&2; exit 4"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"to-out\n");
        assert_eq!(out.stderr, b"to-err\n");
        assert_eq!(out.status.code(), Some(4));
    }
);

// ---------------------------------------------------------------------------
// 9. Descriptors

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_descriptor_leaks_after_hundreds_of_spawns() {
        // Warm up: lazily created process-wide descriptors (the background
        // reaper's pipe and epoll set, started by a handle wait) are not leaks.
        // The baseline is settled: the pidfd of the warm-up child, which the
        // background reaper lets go of just after the wait, is not in it.
        let _ = Command::new("true").status().await.unwrap();
        let handle = Command::new("true").spawn().unwrap().handle();
        handle.wait().await.unwrap();
        drop(handle);
        let baseline = settled_fd_count();
        let mut tasks = Vec::new();
        for i in 0..300 {
            tasks.push(tokio::spawn(async move {
                let mut child = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                match i % 3 {
                    0 => {
                        // Full use of all three pipes.
                        let mut stdin = child.stdin.take().unwrap();
                        stdin.write_all(b"data").await.unwrap();
                        drop(stdin);
                        let out = child.wait_with_output().await.unwrap();
                        assert_eq!(out.stdout, b"data");
                    }
                    1 => {
                        // Dropped with pipes open and the child running.
                        drop(child);
                    }
                    _ => {
                        child.kill().await.unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            eventually(Duration::from_secs(10), || fd_count() <= baseline).await,
            "fds: baseline {baseline}, now {}",
            fd_count()
        );
        assert!(eventually(Duration::from_secs(10), || zombie_children().is_empty()).await);
    }
);

bounded_test!(
    #[tokio::test]
    async fn every_descriptor_brood_creates_is_cloexec() {
        let before: std::collections::HashSet<_> = open_fds().into_iter().collect();
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Register the exit watcher and the pipes with the reactor.
        let _ = tokio::time::timeout(Duration::from_millis(5), child.wait()).await;
        let mut buf = [0u8; 1];
        let _ = tokio::time::timeout(
            Duration::from_millis(5),
            child.stdout.as_mut().unwrap().read(&mut buf),
        )
        .await;
        let _dropped_elsewhere = Command::new("sleep").arg("0.01").spawn().unwrap();
        let new: Vec<_> = open_fds()
            .into_iter()
            .filter(|fd| !before.contains(fd))
            .collect();
        assert!(new.len() >= 3, "expected pipes (and a pidfd), got {new:?}");
        for fd in new {
            assert_ne!(is_cloexec(fd), Some(false), "fd {fd} is not close-on-exec");
        }
        child.kill().await.unwrap();
    }
);

// ---------------------------------------------------------------------------
// 10. Runtimes and tasks

#[test]
fn works_on_a_current_thread_runtime() {
    let rt = runtime::current_thread();
    rt.block_on(bounded(TEST_LIMIT, async {
        let out = Command::new("echo").arg("ct").output().await.unwrap();
        assert_eq!(out.stdout, b"ct\n");
        let mut children: Vec<_> = (0..50)
            .map(|i| {
                Command::new("sh")
                    .args(["-c", &format!("exit {}", i % 5)])
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (i, child) in children.iter_mut().enumerate() {
            assert_eq!(child.wait().await.unwrap().code(), Some((i % 5) as i32));
        }
    }));
}

bounded_test!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawned_in_one_task_awaited_in_another() {
        let child = tokio::spawn(async {
            Command::new("sh")
                .args(["-c", "exit 17"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .await
        .unwrap();
        let status = tokio::spawn(async move {
            let mut child = child;
            child.wait().await.unwrap()
        })
        .await
        .unwrap();
        assert_eq!(status.code(), Some(17));
    }
);

#[test]
fn child_types_are_send_sync_unpin_debug() {
    fn check<T: Send + Sync + Unpin + std::fmt::Debug>() {}
    check::<brood::Child>();
    check::<brood::ChildStdin>();
    check::<brood::ChildStdout>();
    check::<brood::ChildStderr>();
    check::<brood::ChildHandle>();
}

// ---------------------------------------------------------------------------
// Scale

bounded_test!(
    #[time_limit(Duration::from_secs(120))]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_thousand_live_children() {
        const N: usize = 2000;
        let mut children = Vec::with_capacity(N);
        for i in 0..N {
            // Each child waits for its stdin to close, so all N are alive
            // at once.
            children.push(
                Command::new("sh")
                    .args(["-c", &format!("read x; exit {}", i % 100)])
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        let live = child_pids().len();
        assert!(live >= N, "only {live} children alive at once");
        let tasks: Vec<_> = children
            .into_iter()
            .enumerate()
            .map(|(i, mut child)| {
                tokio::spawn(async move {
                    child.stdin.take();
                    let status = child.wait().await.unwrap();
                    assert_eq!(status.code(), Some((i % 100) as i32));
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(zombie_children().is_empty());
    }
);
