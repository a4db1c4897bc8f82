//! Drop-in fidelity (issue 10): brood driven the way crates built on
//! `tokio::process` drive it, side by side with tokio where the two must
//! agree.
//!
//! - a process-group wrapper that reaps its own group with
//!   `waitpid(-pgid, WNOHANG)` and only then asks the `Child` (process-wrap,
//!   command-group);
//! - hand-written futures and a `Stream` of output lines followed by the
//!   exit, which poll a fresh `wait()` each time (tokio-process-stream);
//! - an extension trait with a method named `signal`, called through UFCS;
//! - `Debug` of `Command` and the conversions from and to tokio's.
//!
//! Every scenario runs on a current-thread and on a multi-thread runtime
//! (`brood_testkit::runtime::on_both`), and `scripts/test` runs the file
//! under both exit watchers. Scenarios that read brood's process-wide
//! counters run in a worker process (`brood_testkit::worker`) so no other
//! test disturbs them.

use brood::{Child, ChildHandle, Command};
use brood_testkit::procfs::{state as proc_state, zombie_children};
use brood_testkit::runtime::{self, on_both};
use brood_testkit::{bounded, eventually, worker};
use std::future::{poll_fn, Future};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};

// ---------------------------------------------------------------------------
// Helpers of this module

/// The bound on one scenario on one runtime (and on a worker's body).
const LIMIT: Duration = Duration::from_secs(30);

/// How soon after a child's exit a parked waiter must be woken.
const WAKE_BOUND: Duration = Duration::from_millis(100);

/// Whether the requested exit watcher is the SIGCHLD one.
fn on_sigchld_path() -> bool {
    brood::reaper::current() == brood::reaper::Strategy::Signal
}

/// `waitpid(pid, WNOHANG)` as a program's own code calls it: `Ok(None)`
/// while nothing has exited, the pid and raw status otherwise.
fn waitpid_nohang(pid: libc::pid_t) -> io::Result<Option<(libc::pid_t, ExitStatus)>> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable int for the call.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some((pid, ExitStatus::from_raw(status)))),
    }
}

/// `kill(2)`, as an extension trait would send it.
fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An error saying another waitpid collected the exit first.
fn assert_echild(err: &io::Error) {
    assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
    assert!(err.to_string().contains("ECHILD"), "{err}");
}

// ---------------------------------------------------------------------------
// 1. A process-group wrapper that reaps its own group (points 2 and 6)

/// What process-wrap's `ProcessGroupChild` and command-group's `ChildImp`
/// do: the wrapper owns the `Child`, reaps every member of the group with
/// `waitpid(-pgid, WNOHANG)` itself, and asks the `Child` only when the
/// group still has running members.
struct GroupWrapper {
    child: Child,
    pgid: libc::pid_t,
    exit: Option<ExitStatus>,
}

impl GroupWrapper {
    fn spawn(command: &mut Command) -> io::Result<Self> {
        let child = command.process_group(0).spawn()?;
        let pgid = child.id().expect("running") as libc::pid_t;
        Ok(GroupWrapper {
            child,
            pgid,
            exit: None,
        })
    }

    /// Reaps what has exited in the group. `Break` with the leader's
    /// status (if this call saw it) once the group has nobody left to reap
    /// (`ECHILD`); `Continue` while members run.
    fn reap_group(&self) -> io::Result<ControlFlow<Option<ExitStatus>>> {
        let mut leader = None;
        loop {
            match waitpid_nohang(-self.pgid) {
                Ok(None) => return Ok(ControlFlow::Continue(())),
                Ok(Some((pid, status))) => {
                    if pid == self.pgid {
                        leader = Some(status);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                    return Ok(ControlFlow::Break(leader));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.exit {
            return Ok(Some(status));
        }
        let status = match self.reap_group()? {
            ControlFlow::Break(leader) => leader,
            ControlFlow::Continue(()) => self.child.try_wait()?,
        };
        self.exit = self.exit.or(status);
        Ok(status)
    }

    fn signal_group(&self, signal: i32) -> io::Result<()> {
        // SAFETY: killpg has no memory-safety preconditions.
        if unsafe { libc::killpg(self.pgid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Polls `try_wait` until it reports an exit or `limit` passes.
    async fn try_wait_until_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The leader's zombie stays for the wrapper's own `waitpid(-pgid)`: brood
/// does not reap a child whose owner has not asked. On the SIGCHLD path
/// brood used to reap it on its SIGCHLD, so the wrapper's waitpid found
/// ECHILD and reported "still running" forever.
#[test]
fn group_wrapper_reaps_its_own_group_after_sigterm() {
    on_both(LIMIT, |flavour| async move {
        let mut wrapper = GroupWrapper::spawn(Command::new("yes").stdout(Stdio::null())).unwrap();
        assert_eq!(wrapper.try_wait().unwrap(), None, "{flavour}: pre SIGTERM");
        wrapper.signal_group(libc::SIGCONT).unwrap();
        assert_eq!(
            wrapper.try_wait().unwrap(),
            None,
            "{flavour}: after SIGCONT"
        );
        wrapper.signal_group(libc::SIGTERM).unwrap();
        let status = wrapper
            .try_wait_until_exit(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{flavour}: the wrapper never saw the leader exit"));
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{flavour}");
        // Twice, as process-wrap's tests ask.
        assert_eq!(wrapper.try_wait().unwrap(), Some(status));
        // The Child itself: the owner reaped the exit first, so brood says
        // so (kind Other, naming ECHILD) instead of "still running".
        assert_echild(&wrapper.child.try_wait().unwrap_err());
        assert_echild(&wrapper.child.wait().await.unwrap_err());
    });
}

#[test]
fn group_wrapper_sees_its_leader_exit_by_itself() {
    on_both(LIMIT, |flavour| async move {
        let mut wrapper = GroupWrapper::spawn(Command::new("sh").args(["-c", "exit 5"])).unwrap();
        let status = wrapper
            .try_wait_until_exit(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{flavour}: the wrapper never saw the leader exit"));
        assert_eq!(status.code(), Some(5), "{flavour}");
        // Dropping the Child afterwards leaves nothing behind and does not
        // hang, although its exit went elsewhere.
        let pid = wrapper.pgid as u32;
        drop(wrapper);
        assert_eq!(proc_state(pid), None, "{flavour}: pid {pid} still exists");
    });
}

/// Code that calls `waitpid(pid)` itself before asking the `Child` gets the
/// exit, as under tokio; `wait` and `try_wait` then report ECHILD, and
/// never hang.
#[test]
fn own_waitpid_before_asking_the_child_gets_the_exit() {
    on_both(LIMIT, |flavour| async move {
        let mut child = Command::new("sh").args(["-c", "exit 4"]).spawn().unwrap();
        let pid = child.id().unwrap() as libc::pid_t;
        let mut mine = None;
        assert!(
            eventually(Duration::from_secs(10), || {
                mine = waitpid_nohang(pid).unwrap();
                mine.is_some()
            })
            .await,
            "{flavour}: the program's own waitpid never saw the exit"
        );
        let (reaped, status) = mine.unwrap();
        assert_eq!((reaped, status.code()), (pid, Some(4)), "{flavour}");
        assert_echild(&child.wait().await.unwrap_err());
        assert_echild(&child.try_wait().unwrap_err());
    });
}

/// The zombie of a child nobody waits for stays (both exit watchers), and
/// the owner's `try_wait` or `wait` collects it; dropping such a `Child`
/// reaps it at once.
#[test]
fn an_exit_nobody_asked_for_waits_for_its_owner() {
    on_both(LIMIT, |flavour| async move {
        let mut held = Command::new("sh").args(["-c", "exit 6"]).spawn().unwrap();
        let handle = held.handle();
        let pid = held.id().unwrap();
        assert!(
            eventually(Duration::from_secs(10), || proc_state(pid) == Some('Z')).await,
            "{flavour}: never became a zombie"
        );
        // (That the dispatcher's handling of the SIGCHLD leaves it too is
        // checked, with its counters, in the blind-peek worker below.)
        assert_eq!(
            proc_state(pid),
            Some('Z'),
            "{flavour}: reaped behind the owner"
        );
        assert_eq!(held.try_wait().unwrap().map(|s| s.code()), Some(Some(6)));
        assert_eq!(proc_state(pid), None);
        assert_eq!(handle.status().unwrap().unwrap().code(), Some(6));

        // Dropped once exited: reaped within the drop.
        let dropped = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = dropped.id().unwrap();
        assert!(eventually(Duration::from_secs(10), || proc_state(pid) == Some('Z')).await);
        drop(dropped);
        assert_eq!(
            proc_state(pid),
            None,
            "{flavour}: orphan not reaped at drop"
        );
    });
}

// ---------------------------------------------------------------------------
// 2. Fresh wait() futures, dropped while pending (points 1 and 6)

/// A hand-written future that polls a fresh `wait()` each time and drops it
/// when it is pending, as stream adapters and `select!` loops do. `parked`
/// counts the polls that returned `Pending`.
struct FreshWaits<'a> {
    waiter: Waiter<'a>,
    parked: Arc<AtomicUsize>,
}

enum Waiter<'a> {
    Child(&'a mut Child),
    Handle(&'a ChildHandle),
}

impl Future for FreshWaits<'_> {
    type Output = io::Result<ExitStatus>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let poll = match &mut this.waiter {
            Waiter::Child(child) => Box::pin(child.wait()).as_mut().poll(cx),
            Waiter::Handle(handle) => Box::pin(handle.wait()).as_mut().poll(cx),
        };
        if poll.is_pending() {
            this.parked.fetch_add(1, Ordering::SeqCst);
        }
        poll
    }
}

/// The task is woken within 100 ms of the exit although every future it
/// parked with was dropped; for the `Child` and for a `ChildHandle`.
#[test]
fn dropped_wait_futures_keep_the_wake_up() {
    on_both(LIMIT, |flavour| async move {
        for through_handle in [false, true] {
            // Prints once it is ready, then exits as soon as its stdin closes.
            let mut child = Command::new("sh")
                .args(["-c", "echo ready; read line; exit 7"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // wait() closes stdin: take it out first, to release the child.
            let stdin = child.stdin.take().unwrap();
            let mut ready = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut ready)
                .await
                .unwrap();
            assert_eq!(ready, "ready\n");

            let handle = child.handle();
            let parked = Arc::new(AtomicUsize::new(0));
            let waits = FreshWaits {
                waiter: if through_handle {
                    Waiter::Handle(&handle)
                } else {
                    Waiter::Child(&mut child)
                },
                parked: parked.clone(),
            };
            let mut waits = Box::pin(waits);
            // Park it (the first poll), then release the child.
            assert!(poll_fn(|cx| Poll::Ready(waits.as_mut().poll(cx)))
                .await
                .is_pending());
            let released = Instant::now();
            drop(stdin);
            let status = waits.await.unwrap();
            let late = released.elapsed();
            assert_eq!(status.code(), Some(7));
            assert!(
                late < WAKE_BOUND,
                "{flavour} (handle: {through_handle}): woken {late:?} after the release"
            );
            // Woken by the exit, not spinning.
            assert!(
                parked.load(Ordering::SeqCst) <= 4,
                "{flavour}: polled in a loop"
            );
        }
    });
}

/// A `Stream`-like reader of a child's output lines followed by its exit,
/// built as tokio-process-stream builds it: once both pipes are closed it
/// polls a fresh `wait()` on each call and drops it if pending.
struct LineStream {
    child: Option<Child>,
    stdout: Option<Lines<BufReader<brood::ChildStdout>>>,
    stderr: Option<Lines<BufReader<brood::ChildStderr>>>,
}

#[derive(Debug, PartialEq)]
enum Item {
    Stdout(String),
    Stderr(String),
    Done(ExitStatus),
}

impl LineStream {
    fn new(mut child: Child) -> Self {
        let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        let stderr = child.stderr.take().map(|s| BufReader::new(s).lines());
        LineStream {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if let Some(stderr) = &mut self.stderr {
            match Pin::new(stderr).poll_next_line(cx) {
                Poll::Ready(Ok(Some(line))) => return Poll::Ready(Some(Item::Stderr(line))),
                Poll::Ready(_) => self.stderr = None,
                Poll::Pending => {}
            }
        }
        if let Some(stdout) = &mut self.stdout {
            match Pin::new(stdout).poll_next_line(cx) {
                Poll::Ready(Ok(Some(line))) => return Poll::Ready(Some(Item::Stdout(line))),
                Poll::Ready(_) => self.stdout = None,
                Poll::Pending => {}
            }
        }
        if self.stdout.is_none() && self.stderr.is_none() {
            let Some(mut child) = self.child.take() else {
                return Poll::Ready(None);
            };
            if let Poll::Ready(status) = Box::pin(child.wait()).as_mut().poll(cx) {
                return Poll::Ready(Some(Item::Done(status.unwrap())));
            }
            // The pipes can close before the exit: keep the child.
            self.child = Some(child);
        }
        Poll::Pending
    }

    async fn next(&mut self) -> Option<Item> {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

#[test]
fn a_line_stream_ends_with_the_exit() {
    on_both(LIMIT, |flavour| async move {
        // Closes both pipes well before it exits, so the stream is left
        // polling fresh waits.
        let child = Command::new("sh")
            .args([
                "-c",
                "echo out1; echo err1 >&2; echo out2; exec >&- 2>&-; sleep 0.2; exit 3",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut stream = LineStream::new(child);
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item);
        }
        let took = started.elapsed();
        let (mut out, mut err, mut done) = (Vec::new(), Vec::new(), Vec::new());
        for item in items {
            match item {
                Item::Stdout(line) => out.push(line),
                Item::Stderr(line) => err.push(line),
                Item::Done(status) => done.push(status.code()),
            }
        }
        assert_eq!(out, ["out1", "out2"], "{flavour}");
        assert_eq!(err, ["err1"], "{flavour}");
        assert_eq!(done, [Some(3)], "{flavour}");
        // 0.2 s of sleep, plus start-up and the wake-up; a lost wake-up
        // costs seconds, or forever.
        assert!(took < Duration::from_secs(2), "{flavour}: took {took:?}");
    });
}

// ---------------------------------------------------------------------------
// 3. An extension trait whose method brood's inherent `signal` shadows

/// command-group's `UnixChildExt` in miniature. `Child::signal` (brood's,
/// inherent) hides it in method-call syntax, so it is called by path.
trait UnixChildExt {
    fn signal(&self, signal: i32) -> io::Result<()>;
}

impl UnixChildExt for Child {
    fn signal(&self, signal: i32) -> io::Result<()> {
        kill(self.id().expect("running"), signal)
    }
}

/// Generic code reaches the trait's method with either syntax.
fn stop_all<T: UnixChildExt>(children: &[T]) -> io::Result<()> {
    children.iter().try_for_each(|c| c.signal(libc::SIGTERM))
}

#[test]
fn a_shadowed_trait_method_is_reached_through_ufcs() {
    on_both(LIMIT, |flavour| async move {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        UnixChildExt::signal(&child, libc::SIGCONT).unwrap();
        assert_eq!(
            child.try_wait().unwrap(),
            None,
            "{flavour}: SIGCONT kills nothing"
        );
        UnixChildExt::signal(&child, libc::SIGTERM).unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));

        let children: Vec<Child> = (0..2)
            .map(|_| Command::new("sleep").arg("30").spawn().unwrap())
            .collect();
        stop_all(&children).unwrap();
        for mut child in children {
            assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));
        }

        // brood's own method is still the one method-call syntax finds.
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.signal(brood::Signal::KILL).unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
    });
}

// ---------------------------------------------------------------------------
// 4. Debug and conversions, side by side with tokio (points 4 and 5)

/// The same command built with brood's and with tokio's builder.
fn both(build: impl Fn(&mut std::process::Command)) -> (Command, tokio::process::Command) {
    let mut std_brood = std::process::Command::new("prog");
    let mut std_tokio = std::process::Command::new("prog");
    build(&mut std_brood);
    build(&mut std_tokio);
    (
        Command::from(std_brood),
        tokio::process::Command::from(std_tokio),
    )
}

/// Sets some of std's options on a command.
type Build = Box<dyn Fn(&mut std::process::Command)>;

#[test]
fn debug_of_command_is_tokios() {
    let cases: Vec<Build> = vec![
        Box::new(|_| {}),
        Box::new(|c| {
            c.arg("a b").arg("--flag");
        }),
        Box::new(|c| {
            c.env("KEY", "value").env_remove("PATH").current_dir("/tmp");
        }),
        Box::new(|c| {
            use std::os::unix::process::CommandExt;
            c.env_clear().arg0("zero").process_group(0);
        }),
    ];
    for build in cases {
        for kill_on_drop in [false, true] {
            let (mut ours, mut theirs) = both(&build);
            ours.kill_on_drop(kill_on_drop);
            theirs.kill_on_drop(kill_on_drop);
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
            assert_eq!(format!("{ours:#?}"), format!("{theirs:#?}"));
        }
    }
    // brood's options appear only once set, after tokio's fields.
    let (mut ours, theirs) = both(|c| {
        c.arg("x");
    });
    ours.grace(Duration::from_secs(2))
        .timeout(Duration::from_millis(1500))
        .max_output(4096)
        .pipe_capacity(1 << 20);
    let tokio_text = format!("{theirs:?}");
    let text = format!("{ours:?}");
    assert_eq!(
        text,
        format!(
            "{}, grace: 2s, timeout: 1.5s, max_output: 4096, pipe_capacity: 1048576 }}",
            tokio_text.strip_suffix(" }").unwrap()
        )
    );
}

#[test]
fn conversions_carry_kill_on_drop_both_ways() {
    on_both(LIMIT, |flavour| async move {
        for kill_on_drop in [false, true] {
            // tokio -> brood
            let mut theirs = tokio::process::Command::new("sh");
            theirs
                .args(["-c", "echo $GREETING"])
                .env("GREETING", "hi")
                .kill_on_drop(kill_on_drop);
            let tokio_text = format!("{theirs:?}");
            let mut ours = Command::from(theirs);
            assert_eq!(ours.get_kill_on_drop(), kill_on_drop);
            assert_eq!(format!("{ours:?}"), tokio_text);
            let out = ours.output().await.unwrap();
            assert_eq!(out.stdout, b"hi\n", "{flavour}");

            // brood -> tokio; brood's own options do not go along.
            let mut ours = Command::new("sh");
            ours.args(["-c", "exit 3"])
                .kill_on_drop(kill_on_drop)
                .grace(Duration::from_secs(1));
            let mut theirs = tokio::process::Command::from(ours);
            assert_eq!(theirs.get_kill_on_drop(), kill_on_drop);
            let status = theirs.status().await.unwrap();
            assert_eq!(status.code(), Some(3), "{flavour}");
        }
        // kill_on_drop carried from tokio's builder really stops the child.
        let mut theirs = tokio::process::Command::new("sleep");
        theirs.arg("30").kill_on_drop(true);
        let child = Command::from(theirs).spawn().unwrap();
        let pid = child.id().unwrap();
        drop(child);
        assert!(
            eventually(Duration::from_secs(10), || proc_state(pid).is_none()).await,
            "{flavour}: kill_on_drop from tokio's builder was lost"
        );
    });
}

// ---------------------------------------------------------------------------
// 5. The blind-peek window is bounded (point 2, SIGCHLD path)

/// While an exit is announced and left for its owner, the SIGCHLD
/// dispatcher's peek keeps naming that zombie and cannot see past it:
/// exits behind it are still found (by scanning), and once the owner
/// collects it the scans stop and an awaited exit costs about two wait
/// calls again. On the pidfd path nothing scans at all.
#[test]
fn the_blind_peek_window_finds_later_exits_and_closes() {
    if !worker::is_worker() {
        return worker::run(&[]).assert_ok();
    }
    use brood::test_hooks::{blind_scans, wait_calls};
    let sigchld = on_sigchld_path();
    runtime::current_thread().block_on(bounded(LIMIT, async {
        // Held, never waited for: its exit is announced and left in place.
        let before = blind_scans();
        let mut held = Command::new("sh").args(["-c", "exit 9"]).spawn().unwrap();
        let pid = held.id().unwrap();
        assert!(eventually(Duration::from_secs(10), || proc_state(pid) == Some('Z')).await);
        // An awaited child's exit: its dispatch peeks, and the peek names
        // the older zombie, which it must leave in place.
        Command::new("true").status().await.unwrap();
        if sigchld {
            // Counted by the dispatcher's peek, which comes after the reap
            // that woke this task (and if `sh` exited before its spawn
            // registered it, its own dispatch was not blind).
            assert!(
                eventually(Duration::from_secs(10), || blind_scans() > before).await,
                "the announced zombie did not blind the peek"
            );
        }
        assert_eq!(proc_state(pid), Some('Z'), "reaped behind its owner");

        // Awaited children exit behind it: every one is found.
        let in_window = blind_scans();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let mut child = Command::new("sh")
                    .args(["-c", &format!("exit {i}")])
                    .spawn()
                    .unwrap();
                tokio::spawn(async move { child.wait().await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let status = task.await.unwrap().unwrap();
            assert_eq!(status.code(), Some(i as i32));
        }
        if sigchld {
            assert!(
                eventually(Duration::from_secs(10), || blind_scans() > in_window).await,
                "the window had no cost?"
            );
        }

        // The owner collects it: the window closes.
        assert_eq!(held.try_wait().unwrap().unwrap().code(), Some(9));
        // The next dispatch's peek finds no zombie and forgets the window.
        Command::new("true").status().await.unwrap();
        let (scans, calls) = (blind_scans(), wait_calls());
        const N: u64 = 50;
        awaited_exits(N).await;
        assert_eq!(blind_scans(), scans, "scans after the window closed");
        // One reap and one empty peek each, plus a check at registration
        // when a child exits before its spawn registered it (as in
        // core_reaper's O(1) test, at most 3 in all).
        let per_child = (wait_calls() - calls) as f64 / N as f64;
        println!("{per_child} wait calls per awaited child after the window");
        assert!(per_child <= 3.0, "{per_child} wait calls per awaited child");
        if !sigchld {
            assert_eq!(blind_scans(), 0, "the pidfd path never scans");
        }
    }));
    worker::done();
}

/// Runs `n` children one after the other, each awaited (`status()`), each
/// exiting with its own code, and checks the codes.
async fn awaited_exits(n: u64) {
    for i in 0..n {
        let status = Command::new("sh")
            .args(["-c", &format!("exit {}", i % 5)])
            .status()
            .await
            .unwrap();
        assert_eq!(status.code(), Some((i % 5) as i32));
    }
}

/// Inside the blind-peek window a SIGCHLD costs a wait call per child
/// somebody waits for, not one per live child: children held without a
/// wait are not asked by the dispatcher's scans. Their exits are still
/// found, whichever way their owners ask: a `wait()` started after the exit,
/// `try_wait` polling, a drop, and a handle's `status()` (a handle makes the
/// scans ask its child, as before).
#[test]
fn the_blind_peek_window_skips_children_nobody_waits_for() {
    if !worker::is_worker() {
        return worker::run(&[]).assert_ok();
    }
    use brood::test_hooks::{blind_scans, wait_calls};
    let sigchld = on_sigchld_path();
    runtime::current_thread().block_on(bounded(LIMIT, async {
        // The window opens: an exit announced and left for its owner.
        let mut held = Command::new("sh").args(["-c", "exit 9"]).spawn().unwrap();
        let pid = held.id().unwrap();
        assert!(eventually(Duration::from_secs(10), || proc_state(pid) == Some('Z')).await);
        Command::new("true").status().await.unwrap();

        // Children held without a wait, running.
        const IDLE: usize = 240;
        let mut idle: Vec<Child> = (0..IDLE)
            .map(|_| Command::new("sleep").arg("30").spawn().unwrap())
            .collect();
        const HANDLED: usize = 5;
        let handles: Vec<ChildHandle> = idle[..HANDLED].iter().map(Child::handle).collect();

        // Awaited exits inside the window.
        let (scans, calls) = (blind_scans(), wait_calls());
        const N: u64 = 40;
        awaited_exits(N).await;
        if sigchld {
            assert!(
                eventually(Duration::from_secs(10), || blind_scans() > scans).await,
                "the window was not open"
            );
        }
        // A reap, an empty peek and a check at registration each (3), and a
        // call for each of the HANDLED children with a handle per SIGCHLD:
        // nothing for the other held children (before, one each: 243 in
        // all). The margin is for dispatches without a child of their own.
        let per_child = (wait_calls() - calls) as f64 / N as f64;
        println!("{per_child} wait calls per awaited child inside the window");
        let bound = 8.0 + HANDLED as f64;
        assert!(
            per_child <= bound,
            "{per_child} wait calls per awaited child"
        );

        // Every held child dies; their SIGCHLDs merge, and the scans skip
        // those nobody waits for.
        let pids: Vec<u32> = idle.iter().map(|c| c.id().unwrap()).collect();
        for child in &mut idle {
            child.start_kill().unwrap();
        }
        assert!(
            eventually(Duration::from_secs(10), || pids
                .iter()
                .all(|&p| proc_state(p) == Some('Z')))
            .await
        );
        if sigchld {
            // A handle's status needs no wait: the scans ask its child.
            assert!(
                eventually(Duration::from_secs(5), || handles
                    .iter()
                    .all(|h| h.status().is_some()))
                .await,
                "a handle never saw its child's exit"
            );
        }
        let killed = |status: ExitStatus| status.signal() == Some(libc::SIGKILL);
        let mut polled = idle.split_off(IDLE / 3);
        let dropped = polled.split_off(IDLE / 3);
        // Awaited after the exit.
        for child in &mut idle {
            assert!(killed(child.wait().await.unwrap()));
        }
        // Polled with try_wait.
        for child in &mut polled {
            assert!(killed(child.try_wait().unwrap().expect("exited")));
        }
        // Dropped: reaped by brood.
        let dropped_pids: Vec<u32> = dropped.iter().map(|c| c.id().unwrap()).collect();
        drop(dropped);
        assert!(
            eventually(Duration::from_secs(10), || dropped_pids
                .iter()
                .all(|&p| proc_state(p).is_none()))
            .await,
            "a dropped child was left a zombie"
        );
        assert_eq!(held.try_wait().unwrap().unwrap().code(), Some(9));
        assert!(
            eventually(Duration::from_secs(5), || zombie_children().is_empty()).await,
            "zombies left: {:?}",
            zombie_children()
        );
    }));
    worker::done();
}

/// In subreaper mode, a leader that exits with zombie children of its own
/// hands them to us: the kernel signals each re-parented zombie and then the
/// leader at once, so all but the first SIGCHLD merge, and the peek names
/// the leader (the oldest zombie) first. The leader's exit must not hide the
/// orphans behind it. A wait pending on the leader asks for its exit (also
/// when it waits on the pidfd in the task's reactor), so the dispatcher
/// reaps it at once and never goes blind; and a leader held without a wait,
/// whose zombie is left for its owner, makes the dispatcher look again once
/// the owner collects it.
#[test]
fn orphans_behind_a_leaders_zombie_are_reaped_in_subreaper_mode() {
    if !worker::is_worker() {
        return worker::run(&[]).assert_ok();
    }
    use brood::test_hooks::blind_scans;
    brood::become_subreaper().unwrap();
    // Two children that exit at once and are never reaped by the leader,
    // which becomes `sleep` and exits later.
    const TREE: &str = "(exit 0) & (exit 0) & exec sleep 0.3";
    runtime::current_thread().block_on(bounded(LIMIT, async {
        for round in 0..3 {
            // Awaited.
            let scans = blind_scans();
            let status = Command::new("sh")
                .args(["-c", TREE])
                .status()
                .await
                .unwrap();
            assert!(status.success());
            let mut child = Command::new("sh").args(["-c", TREE]).spawn().unwrap();
            assert!(child.wait().await.unwrap().success());
            assert!(
                eventually(Duration::from_secs(2), || zombie_children().is_empty()).await,
                "round {round}, awaited: orphans left as zombies: {:?}",
                zombie_children()
            );
            assert_eq!(
                blind_scans(),
                scans,
                "round {round}: an awaited exit blinded the peek"
            );

            // Held, collected by polling try_wait.
            let mut child = Command::new("sh").args(["-c", TREE]).spawn().unwrap();
            let mut status = None;
            assert!(
                eventually(Duration::from_secs(10), || {
                    status = child.try_wait().unwrap();
                    status.is_some()
                })
                .await
            );
            assert!(status.unwrap().success());
            assert!(
                eventually(Duration::from_secs(2), || zombie_children().is_empty()).await,
                "round {round}, held: orphans left as zombies: {:?}",
                zombie_children()
            );
        }
    }));
    worker::done();
}

// ---------------------------------------------------------------------------
// 6. A pipeline as tokio users write it, unchanged but for the import

#[test]
fn a_tokio_program_runs_unchanged() {
    on_both(LIMIT, |flavour| async move {
        let mut child = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"drop-in").await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{flavour}");
        assert_eq!(out.stdout, b"DROP-IN");
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.kill().await.unwrap();
        assert_eq!(child.id(), None, "{flavour}: id after the exit");
    });
}
