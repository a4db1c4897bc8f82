//! Property-based state-machine test: random interleavings of every way of
//! spawning, signalling, waiting for and dropping children, across tasks on a
//! multi-thread runtime, must never lose an exit status, an output byte, a
//! process or a descriptor.
//!
//! Each case is a list of tasks; each task runs a random list of steps:
//! spawn a child (`sh -c 'sleep S; head -c N /dev/zero; head -c M
//! /dev/zero >&2; exit C'`), or act on one of the task's live children
//! (wait, try_wait, wait_timeout, start_kill, kill, signal(TERM), a waiter on
//! `child.handle()`, drop with or without kill_on_drop, then maybe wait on
//! the handle). Invariants, checked per child:
//!
//! - every status observed anywhere (Child::wait, try_wait, wait_timeout,
//!   ChildHandle::wait before or after the drop) is the same, and is either
//!   `exit C` or death by a signal that the test actually sent (a child may
//!   legitimately exit before a signal lands, so both are accepted after a
//!   signal; without a signal only `exit C` is);
//! - if the child exited with `C`, exactly N bytes of stdout and M bytes of
//!   stderr were read, all of them zeros; if it was killed, at most that;
//! - after the case: no child of ours is left (running or zombie) and the
//!   descriptor count is back to its baseline, within a deadline (reaping of
//!   dropped children is asynchronous);
//! - every case finishes within a time bound (no hang).
//!
//! `PROPTEST_CASES` overrides the number of cases (default 32).

use brood::{Child, ChildHandle, Command, Signal};
use brood_testkit::fds::{fd_count, settled_fd_count};
use brood_testkit::procfs::{child_pids, pid_exists, stat_state_ppid, zombie_children};
use brood_testkit::{bounded, bounded_test, eventually, eventually_blocking, runtime};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

/// Bound on one case (all its tasks).
const CASE_LIMIT: Duration = Duration::from_secs(60);
/// Bound on the post-case clean-up checks (asynchronous reaping).
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// What a child is told to do.
#[derive(Clone, Debug)]
struct Plan {
    code: i32,
    sleep_ms: u32,
    stdout: usize,
    stderr: usize,
    kill_on_drop: bool,
    /// Close our read ends at once instead of reading (the child then gets
    /// EPIPE/SIGPIPE in `head`, which must not change `sh`'s exit code).
    discard_output: bool,
}

/// What happens after a `Child` is dropped.
#[derive(Clone, Copy, Debug)]
enum AfterDrop {
    /// `ChildHandle::wait` right away.
    WaitNow,
    /// `ChildHandle::wait` at the end of the task, typically long after the
    /// exit, so the background reaper has collected it.
    WaitLater,
    /// Drop the handle too: only the final zombie check sees this child.
    Forget,
}

#[derive(Clone, Debug)]
enum Act {
    // Non-terminal: the child stays live.
    TryWait,
    WaitTimeout(u32),
    Term,
    StartKill,
    HandleWaiter,
    // Terminal: the child leaves the live list.
    Wait,
    Kill,
    PollTryWait,
    Drop(AfterDrop),
}

#[derive(Clone, Debug)]
enum Step {
    Spawn(Plan),
    Act(usize, Act),
}

fn plan() -> impl Strategy<Value = Plan> {
    let code = prop_oneof![Just(0), 1..=3i32, Just(255), 0..=255i32];
    let sleep_ms = prop_oneof![2 => Just(0u32), 3 => 0..=50u32];
    let stdout = prop_oneof![
        2 => Just(0usize),
        3 => 1..=4096usize,
        2 => 4097..=65536usize,
        2 => 65537..=262_144usize,
    ];
    let stderr = prop_oneof![2 => Just(0usize), 1 => 1..=4096usize, 1 => 4097..=131_072usize];
    let discard = prop_oneof![5 => Just(false), 1 => Just(true)];
    (code, sleep_ms, stdout, stderr, any::<bool>(), discard).prop_map(
        |(code, sleep_ms, stdout, stderr, kill_on_drop, discard_output)| Plan {
            code,
            sleep_ms,
            stdout,
            stderr,
            kill_on_drop,
            discard_output,
        },
    )
}

fn act() -> impl Strategy<Value = Act> {
    let after_drop = prop_oneof![
        Just(AfterDrop::WaitNow),
        Just(AfterDrop::WaitLater),
        Just(AfterDrop::Forget)
    ];
    prop_oneof![
        2 => Just(Act::TryWait),
        2 => (0..=30u32).prop_map(Act::WaitTimeout),
        2 => Just(Act::Term),
        2 => Just(Act::StartKill),
        2 => Just(Act::HandleWaiter),
        3 => Just(Act::Wait),
        1 => Just(Act::Kill),
        1 => Just(Act::PollTryWait),
        3 => after_drop.prop_map(Act::Drop),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => plan().prop_map(Step::Spawn),
        4 => (any::<usize>(), act()).prop_map(|(i, a)| Step::Act(i, a)),
    ]
}

fn scenario() -> impl Strategy<Value = Vec<Vec<Step>>> {
    prop::collection::vec(prop::collection::vec(step(), 1..20), 1..=6)
}

fn script(plan: &Plan) -> String {
    let mut s = String::new();
    if plan.sleep_ms > 0 {
        s.push_str(&format!("sleep 0.{:03}; ", plan.sleep_ms));
    }
    if plan.stdout > 0 {
        s.push_str(&format!("head -c {} /dev/zero; ", plan.stdout));
    }
    if plan.stderr > 0 {
        s.push_str(&format!("head -c {} /dev/zero >&2; ", plan.stderr));
    }
    s.push_str(&format!("exit {}", plan.code));
    s
}

/// Bytes read from one pipe, and whether all of them were zeros.
type ReadResult = io::Result<(usize, bool)>;

async fn drain(pipe: Option<impl tokio::io::AsyncRead + Unpin>, discard: bool) -> ReadResult {
    let Some(mut pipe) = pipe else {
        return Ok((0, true));
    };
    if discard {
        return Ok((0, true));
    }
    let mut buf = vec![0u8; 16 * 1024];
    let (mut total, mut zeros) = (0, true);
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            return Ok((total, zeros));
        }
        total += n;
        zeros &= buf[..n].iter().all(|&b| b == 0);
    }
}

/// Everything the test learned about one child.
#[derive(Debug)]
struct Record {
    id: usize,
    pid: u32,
    plan: Plan,
    /// Signals that may have reached the child (sent before we knew it exited).
    signals: Vec<i32>,
    /// Every status observed, from every API.
    statuses: Vec<(&'static str, ExitStatus)>,
    stdout: (usize, bool),
    stderr: (usize, bool),
}

struct Live {
    record: Record,
    child: Child,
    handle: ChildHandle,
    stdout: JoinHandle<ReadResult>,
    stderr: JoinHandle<ReadResult>,
    waiters: Vec<JoinHandle<io::Result<ExitStatus>>>,
}

/// A child that left the live list but whose pieces are still in flight.
struct Pending {
    record: Record,
    handle: Option<ChildHandle>,
    stdout: JoinHandle<ReadResult>,
    stderr: JoinHandle<ReadResult>,
    waiters: Vec<JoinHandle<io::Result<ExitStatus>>>,
}

impl Live {
    fn observe(&mut self, what: &'static str, status: ExitStatus) {
        self.record.statuses.push((what, status));
    }

    fn into_pending(self, handle: Option<ChildHandle>) -> Pending {
        Pending {
            record: self.record,
            handle,
            stdout: self.stdout,
            stderr: self.stderr,
            waiters: self.waiters,
        }
    }
}

fn fail(id: usize, what: &str, e: impl std::fmt::Debug) -> TestCaseError {
    TestCaseError::fail(format!("child #{id}: {what} failed: {e:?}"))
}

/// Runs one task's steps; returns the records of all children it spawned.
async fn run_task(task: usize, steps: Vec<Step>) -> Result<Vec<Record>, TestCaseError> {
    let mut live: Vec<Live> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut next_id = task * 1000;

    for step in steps {
        match step {
            Step::Spawn(plan) => {
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(script(&plan))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(plan.kill_on_drop)
                    .spawn()
                    .map_err(|e| fail(next_id, "spawn", e))?;
                let pid = child.id().expect("a fresh child has an id");
                let stdout = tokio::spawn(drain(child.stdout.take(), plan.discard_output));
                let stderr = tokio::spawn(drain(child.stderr.take(), plan.discard_output));
                let handle = child.handle();
                live.push(Live {
                    record: Record {
                        id: next_id,
                        pid,
                        plan,
                        signals: Vec::new(),
                        statuses: Vec::new(),
                        stdout: (0, true),
                        stderr: (0, true),
                    },
                    child,
                    handle,
                    stdout,
                    stderr,
                    waiters: Vec::new(),
                });
                next_id += 1;
            }
            Step::Act(_, _) if live.is_empty() => {}
            Step::Act(i, act) => {
                let i = i % live.len();
                let l = &mut live[i];
                let id = l.record.id;
                match act {
                    Act::TryWait => {
                        if let Some(s) = l.child.try_wait().map_err(|e| fail(id, "try_wait", e))? {
                            l.observe("try_wait", s);
                        }
                    }
                    Act::WaitTimeout(ms) => {
                        let r = l
                            .child
                            .wait_timeout(Duration::from_millis(ms as u64))
                            .await
                            .map_err(|e| fail(id, "wait_timeout", e))?;
                        if let Some(s) = r {
                            l.observe("wait_timeout", s);
                        }
                    }
                    Act::Term => {
                        l.record.signals.push(libc::SIGTERM);
                        l.child
                            .signal(Signal::TERM)
                            .map_err(|e| fail(id, "signal(TERM)", e))?;
                    }
                    Act::StartKill => {
                        l.record.signals.push(libc::SIGKILL);
                        l.child
                            .start_kill()
                            .map_err(|e| fail(id, "start_kill", e))?;
                    }
                    Act::HandleWaiter => {
                        let h = l.handle.clone();
                        l.waiters.push(tokio::spawn(async move { h.wait().await }));
                    }
                    Act::Wait | Act::Kill | Act::PollTryWait => {
                        let mut l = live.swap_remove(i);
                        let (what, s) = match act {
                            Act::Wait => ("wait", l.child.wait().await),
                            Act::Kill => {
                                l.record.signals.push(libc::SIGKILL);
                                l.child.kill().await.map_err(|e| fail(id, "kill", e))?;
                                ("wait after kill", l.child.wait().await)
                            }
                            _ => ("try_wait loop", poll_try_wait(&mut l.child).await),
                        };
                        let s = s.map_err(|e| fail(id, what, e))?;
                        l.observe(what, s);
                        if l.child.id().is_some() {
                            return Err(fail(id, "id() after wait", "still Some"));
                        }
                        pending.push(l.into_pending(None));
                    }
                    Act::Drop(after) => {
                        let mut l = live.swap_remove(i);
                        if l.record.plan.kill_on_drop {
                            l.record.signals.push(libc::SIGKILL);
                        }
                        let Live {
                            record,
                            child,
                            handle,
                            stdout,
                            stderr,
                            waiters,
                        } = l;
                        drop(child);
                        let mut p = Pending {
                            record,
                            handle: Some(handle),
                            stdout,
                            stderr,
                            waiters,
                        };
                        match after {
                            AfterDrop::WaitNow => {
                                let h = p.handle.take().unwrap();
                                let s = h
                                    .wait()
                                    .await
                                    .map_err(|e| fail(id, "handle wait after drop", e))?;
                                p.record.statuses.push(("handle wait after drop", s));
                            }
                            AfterDrop::WaitLater => {}
                            AfterDrop::Forget => p.handle = None,
                        }
                        pending.push(p);
                    }
                }
            }
        }
    }

    // Whatever is still live gets a plain wait.
    for mut l in live {
        let id = l.record.id;
        let s = l
            .child
            .wait()
            .await
            .map_err(|e| fail(id, "final wait", e))?;
        l.observe("final wait", s);
        pending.push(l.into_pending(None));
    }

    let mut records = Vec::new();
    for mut p in pending {
        let id = p.record.id;
        if let Some(h) = p.handle.take() {
            let s = h
                .wait()
                .await
                .map_err(|e| fail(id, "late handle wait", e))?;
            p.record.statuses.push(("late handle wait", s));
            // ChildHandle::status agrees once the child is reaped.
            match h.status() {
                Some(Ok(again)) if again == s => {}
                other => return Err(fail(id, "handle status()", other)),
            }
        }
        for w in p.waiters {
            let s = w
                .await
                .map_err(|e| fail(id, "join waiter", e))?
                .map_err(|e| fail(id, "handle waiter", e))?;
            p.record.statuses.push(("handle waiter", s));
        }
        p.record.stdout = p
            .stdout
            .await
            .map_err(|e| fail(id, "join stdout", e))?
            .map_err(|e| fail(id, "read stdout", e))?;
        p.record.stderr = p
            .stderr
            .await
            .map_err(|e| fail(id, "join stderr", e))?
            .map_err(|e| fail(id, "read stderr", e))?;
        records.push(p.record);
    }
    Ok(records)
}

/// `try_wait` in a loop, as a poller would (polling with a deadline).
async fn poll_try_wait(child: &mut Child) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "try_wait never saw the exit",
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Checks one child's record against what it was told to do.
fn check(r: &Record) -> Result<(), TestCaseError> {
    let ctx = || format!("child #{} (pid {}) {:?}", r.id, r.pid, r);
    let Some(&(_, first)) = r.statuses.first() else {
        // Dropped and forgotten: only the byte counts can be checked.
        let fits = r.stdout.0 <= r.plan.stdout && r.stderr.0 <= r.plan.stderr;
        prop_assert!(fits && r.stdout.1 && r.stderr.1, "{}", ctx());
        return Ok(());
    };
    for &(what, s) in &r.statuses {
        prop_assert_eq!(
            s,
            first,
            "{} disagrees with {}: {}",
            what,
            r.statuses[0].0,
            ctx()
        );
    }
    prop_assert!(r.stdout.1 && r.stderr.1, "non-zero output byte: {}", ctx());
    let expected = if r.plan.discard_output {
        (0, 0)
    } else {
        (r.plan.stdout, r.plan.stderr)
    };
    if let Some(code) = first.code() {
        prop_assert_eq!(code, r.plan.code, "wrong exit code: {}", ctx());
        prop_assert_eq!((r.stdout.0, r.stderr.0), expected, "bytes lost: {}", ctx());
    } else if let Some(sig) = first.signal() {
        prop_assert!(
            r.signals.contains(&sig),
            "killed by signal {} that was never sent: {}",
            sig,
            ctx()
        );
        prop_assert!(
            r.stdout.0 <= expected.0 && r.stderr.0 <= expected.1,
            "more bytes than written: {}",
            ctx()
        );
    } else {
        prop_assert!(false, "status is neither exit nor signal: {}", ctx());
    }
    Ok(())
}

fn run_case(tasks: Vec<Vec<Step>>, fd_baseline: usize) -> Result<(), TestCaseError> {
    let rt = runtime::multi_thread(4);
    let records = rt.block_on(bounded(CASE_LIMIT, async move {
        let joins: Vec<_> = tasks
            .into_iter()
            .enumerate()
            .map(|(t, steps)| tokio::spawn(run_task(t, steps)))
            .collect();
        let mut all = Vec::new();
        for j in joins {
            all.extend(
                j.await
                    .map_err(|e| TestCaseError::fail(format!("task: {e}")))??,
            );
        }
        Ok::<_, TestCaseError>(all)
    }))?;
    drop(rt);
    for r in &records {
        check(r)?;
        STATS.count(r);
    }
    // Dropped children are reaped by the background thread: give it time.
    prop_assert!(
        eventually_blocking(SETTLE_LIMIT, || child_pids().is_empty()),
        "children left behind: {:?} (zombies: {:?})",
        child_pids(),
        zombie_children()
    );
    prop_assert!(
        eventually_blocking(SETTLE_LIMIT, || fd_count() == fd_baseline),
        "descriptors leaked: {} open, baseline {}",
        fd_count(),
        fd_baseline
    );
    Ok(())
}

/// What the cases exercised, so a run that tests nothing shows.
struct Stats {
    children: AtomicUsize,
    exited: AtomicUsize,
    killed: AtomicUsize,
    signalled_but_exited: AtomicUsize,
    forgotten: AtomicUsize,
    bytes: AtomicUsize,
}

static STATS: Stats = Stats {
    children: AtomicUsize::new(0),
    exited: AtomicUsize::new(0),
    killed: AtomicUsize::new(0),
    signalled_but_exited: AtomicUsize::new(0),
    forgotten: AtomicUsize::new(0),
    bytes: AtomicUsize::new(0),
};

impl Stats {
    fn count(&self, r: &Record) {
        let add = |c: &AtomicUsize, n: usize| c.fetch_add(n, Ordering::Relaxed);
        add(&self.children, 1);
        add(&self.bytes, r.stdout.0 + r.stderr.0);
        match r.statuses.first() {
            None => add(&self.forgotten, 1),
            Some((_, s)) if s.signal().is_some() => add(&self.killed, 1),
            Some(_) if !r.signals.is_empty() => add(&self.signalled_but_exited, 1),
            Some(_) => add(&self.exited, 1),
        };
    }
}

/// Creates brood's lazily built machinery (background thread, wake pipe,
/// epoll set or SIGCHLD handler) and a runtime once, so that the descriptor
/// baseline afterwards is stable; returns the baseline and that runtime.
///
/// The caller keeps the runtime alive while the cases run: dropped before
/// the baseline is taken, its driver's descriptors could still be open then
/// (see `settled_fd_count`), and every case would then seem to have closed
/// two descriptors too many.
fn warm_up() -> (usize, tokio::runtime::Runtime) {
    let rt = runtime::multi_thread(4);
    rt.block_on(bounded(Duration::from_secs(30), async {
        let child = Command::new("sleep").arg("0.01").spawn().unwrap();
        let handle = child.handle();
        drop(child);
        // ChildHandle::wait always involves the background reaper.
        assert!(handle.wait().await.unwrap().success());
        let mut child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
        assert!(child.wait().await.unwrap().success());
    }));
    assert!(eventually_blocking(SETTLE_LIMIT, || child_pids().is_empty()));
    (settled_fd_count(), rt)
}

#[test]
fn random_interleavings_lose_nothing() {
    let started = Instant::now();
    let (fd_baseline, _warm_runtime) = warm_up();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut runner = TestRunner::new(Config {
        cases,
        // Shrinking re-runs real processes: keep it affordable.
        max_shrink_iters: 64,
        max_shrink_time: 120_000,
        // The minimal failing input is printed; nothing is written to the tree.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&scenario(), |tasks| run_case(tasks, fd_baseline));
    if let Err(e) = result {
        panic!("{e}");
    }
    let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    eprintln!(
        "{cases} cases under {:?} in {:?}: {} children ({} exited, {} killed, \
         {} exited although signalled, {} dropped and forgotten), {} bytes read",
        brood::reaper::current(),
        started.elapsed(),
        get(&STATS.children),
        get(&STATS.exited),
        get(&STATS.killed),
        get(&STATS.signalled_but_exited),
        get(&STATS.forgotten),
        get(&STATS.bytes),
    );
    assert!(
        get(&STATS.children) >= cases as usize,
        "the cases spawned almost nothing"
    );
}

// Regression test for a bug `random_interleavings_lose_nothing` found under
// BROOD_REAPER=signal: `Child::id()` turned `None` as soon as *brood* had
// reaped the child (on the SIGCHLD path the dispatcher reaps every child the
// moment it exits), so a quick child had no id right after `spawn`.
// tokio::process, which brood replaces drop-in, keeps `id()` `Some` until the
// owner has seen the exit, and `child.id().expect(..)` right after spawn is a
// common idiom. Fixed in the library since (commit 3636a51).
bounded_test!(
    #[time_limit(Duration::from_secs(30))]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn id_is_some_until_the_owner_waits() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.handle().id();
        // Deterministic: wait (outside brood) until the child has exited, as
        // a zombie (pidfd path) or already reaped by brood (SIGCHLD path).
        let exited = eventually(Duration::from_secs(10), || {
            !pid_exists(pid) || stat_state_ppid(pid).map(|s| s.0) == Some('Z')
        })
        .await;
        assert!(exited, "`true` did not exit");
        assert_eq!(
            child.id(),
            Some(pid),
            "id() must stay Some until the owner waits (tokio::process contract)"
        );
        assert!(child.wait().await.unwrap().success());
        assert_eq!(child.id(), None, "id() is None once the owner waited");
    }
);
