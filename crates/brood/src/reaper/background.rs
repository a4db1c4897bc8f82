//! The background thread, `brood-reaper`: one per process, started on first
//! need, with no Tokio dependency, so that children are reaped with no help
//! from the user and with no runtime left.
//!
//! It sleeps in the poller (epoll on Linux, `poll` elsewhere) until the
//! earliest timer, and does whichever of these jobs are needed:
//!
//! - **SIGCHLD dispatch** (`sigchld.rs`, entered through `serve.rs`): the
//!   handler writes exited pids to the wake pipe (`wake.rs`) unless a
//!   runtime's listener takes them (`listener.rs`); the thread runs the
//!   dispatch for what reaches it, serves records a listener left unread,
//!   and runs the safety net's scans when a quiet period passes.
//! - **Orphans and shared waits** on the pidfd path (`pidfd.rs`): pidfds of
//!   children whose `Child` was dropped unreaped, or that a `ChildHandle`
//!   waits on, sit in the poller; the thread reaps them when they turn
//!   readable.
//! - **Timers** (`timers.rs`): grace kills, `Sleep`s, pidfd retries, and
//!   jobs handed to the thread (a contained tree's freeze-signal-thaw).
//! - **Change watches** (`changes.rs`): the `cgroup.events` of contained
//!   trees that outlived their leader, to end each once it is empty.
//!
//! The hot path never goes through here: a task awaiting its own child on the
//! pidfd path reaps it itself, so a program that always awaits its children
//! on the pidfd path never starts this thread.
//!
//! Owns: [`Background`] (the process's one instance) and the thread's loop.
//! Calls: `changes`, `pidfd`, `serve`, `sigchld`, `table`, `timers`, `wake`, `tracked`,
//! `sys::poller`, `sys::process`, `trace`.

use super::changes::{self, ChangeItem, ChangeWatcher};
use super::pidfd;
use super::serve;
use super::sigchld::{SafetyNet, Sigchld};
use super::table::{Table, LIVE};
use super::timers::{self, Action, Next, Timers};
use super::tracked::TrackedChild;
use super::wake::WakePipe;
use crate::sync::Arc;
use crate::sys::poller::Poller;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The background thread and everything it serves.
pub(super) struct Background {
    wake: WakePipe,
    poller: Poller,
    /// Every live brood child; see `table.rs`.
    table: &'static Table<TrackedChild>,
    sigchld: Sigchld,
    /// When the thread's current sleep ends (see [`nanos_since_base`]);
    /// `u64::MAX` while it sleeps without a deadline.
    sleeping_until: AtomicU64,
    /// Serialises starting the thread; `thread_running` says it is done.
    /// A failed start (EAGAIN under RLIMIT_NPROC) is retried by the next use.
    thread_start: Mutex<()>,
    thread_running: AtomicBool,
    /// Pidfd path: children the thread reaps.
    pidfds: pidfd::Watcher,
    /// Change watches: contained children's `cgroup.events`.
    changes: ChangeWatcher,
    timers: Timers,
}

static BACKGROUND: OnceLock<Background> = OnceLock::new();
/// Serialises creating `BACKGROUND`. A failed creation (say EMFILE for the
/// wake pipe) is not remembered: the next use tries again.
static CREATE: Mutex<()> = Mutex::new(());

/// `t` as nanoseconds since a fixed process-wide instant, for atomics.
fn nanos_since_base(t: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    t.saturating_duration_since(base)
        .as_nanos()
        .min(u64::MAX as u128 - 1) as u64
}

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("brood: {what}: {e}"))
}

/// The background thread, if it was ever created.
pub(super) fn try_get() -> Option<&'static Background> {
    BACKGROUND.get()
}

/// The background thread, creating and starting it on first use.
pub(super) fn get() -> io::Result<&'static Background> {
    let bg = match BACKGROUND.get() {
        Some(bg) => bg,
        None => {
            let _creating = CREATE.lock().unwrap_or_else(|p| p.into_inner());
            match BACKGROUND.get() {
                Some(bg) => bg,
                None => {
                    let created = Background::new()?;
                    BACKGROUND.get_or_init(|| created)
                }
            }
        }
    };
    bg.ensure_thread()?;
    Ok(bg)
}

impl Background {
    fn new() -> io::Result<Self> {
        let wake = WakePipe::new()?;
        let poller =
            Poller::new(wake.read_fd()).map_err(|e| context("cannot create an epoll set", e))?;
        Ok(Background {
            wake,
            poller,
            table: &LIVE,
            sigchld: Sigchld::new(),
            sleeping_until: AtomicU64::new(u64::MAX),
            thread_start: Mutex::new(()),
            thread_running: AtomicBool::new(false),
            pidfds: pidfd::Watcher::new(),
            changes: ChangeWatcher::new(),
            timers: Timers::new(),
        })
    }

    /// Starts the thread unless it runs.
    fn ensure_thread(&'static self) -> io::Result<()> {
        if self.thread_running.load(Ordering::Acquire) {
            return Ok(());
        }
        let _starting = self.thread_start.lock().unwrap_or_else(|p| p.into_inner());
        if self.thread_running.load(Ordering::Acquire) {
            return Ok(());
        }
        std::thread::Builder::new()
            .name("brood-reaper".into())
            .spawn(move || self.run())
            .map_err(|e| context("cannot start the reaper thread", e))?;
        self.thread_running.store(true, Ordering::Release);
        Ok(())
    }

    /// Installs the SIGCHLD handler unless it is installed.
    pub(super) fn ensure_sigchld(&self) -> io::Result<()> {
        self.sigchld.install(&self.wake)
    }

    /// Wakes the thread and makes it dispatch (look for exited children).
    pub(super) fn wake_to_dispatch(&self) {
        self.wake.wake_to_dispatch();
    }

    /// Makes the thread dispatch once more if the SIGCHLD watcher is in use
    /// (see `reaper::dispatch_again`).
    pub(super) fn dispatch_again(&self) {
        if self.sigchld.is_active() {
            self.wake.wake_to_dispatch();
        }
    }

    /// Restarts the safety net's back-off: a child was registered.
    ///
    /// If the thread sleeps with no deadline (or a far one), it is woken so
    /// that the safety net covers the new child within a second; otherwise
    /// it picks the note up when it next wakes. So this costs a wake-up at
    /// most about once a second, not once per spawn.
    pub(super) fn note_spawn(&self) {
        self.sigchld.note_spawn();
        if self.sigchld.is_active()
            && self.sleeping_until.load(Ordering::Acquire)
                > nanos_since_base(Instant::now() + SafetyNet::FIRST)
        {
            self.wake.wake();
        }
    }

    /// Subreaper mode: from now on, reap orphans re-parented to us.
    pub(super) fn adopt_orphans(&self) -> io::Result<()> {
        self.table.adopt_orphans();
        self.ensure_sigchld()?;
        // Orphans may have been adopted (and exited) already.
        self.wake.wake_to_dispatch();
        Ok(())
    }

    /// Watches a child's pidfd from now on. If the pidfd cannot be opened or
    /// armed (descriptors ran out), falls back to polling the child on a
    /// timer, `retry` from now and doubling, until it can.
    pub(super) fn watch_pidfd(&self, child: Arc<TrackedChild>, retry: Duration) {
        if let Err(child) = self.pidfds.watch(child, &self.poller) {
            let next = pidfd::next_retry(retry);
            self.add_timer(Instant::now() + retry, Action::Retry(child, next));
        }
    }

    /// Watches `item` for change notifications from now on.
    pub(super) fn watch_changes(&self, item: Arc<ChangeItem>) -> io::Result<()> {
        self.changes.watch(item, &self.poller)
    }

    /// Runs `action` at `deadline`.
    pub(super) fn add_timer(&self, deadline: Instant, action: Action) {
        // Only a new earliest deadline changes the thread's timeout.
        if self.timers.add(deadline, action) {
            self.wake.wake();
        }
    }

    /// Timer entries in the heap, live or cancelled, for tests.
    #[cfg(feature = "test-hooks")]
    pub(super) fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Fires due timers; returns the time until the next one.
    fn fire_timers(&self) -> Option<Duration> {
        loop {
            match self.timers.next() {
                Next::Idle(timeout) => return timeout,
                Next::Due(Action::Kill(child, stop, retry)) => {
                    if !child.final_kill(stop) {
                        let next = timers::next_kill_retry(retry);
                        self.add_timer(Instant::now() + retry, Action::Kill(child, stop, next));
                    }
                }
                Next::Due(Action::Wake(state)) => state.fire(),
                Next::Due(Action::Retry(child, retry)) => self.watch_pidfd(child, retry),
                Next::Due(Action::Job(job)) => job(),
            }
        }
    }

    /// The thread's loop. Never returns.
    fn run(&self) {
        let mut pids = Vec::new();
        let mut tokens = Vec::new();
        let mut net = SafetyNet::new(Instant::now());
        // Records written to the listeners' pipe by the last wake-up.
        let mut backlog = serve::mark();
        serve::on_background_thread();
        loop {
            let mut timeout = self.fire_timers();
            // Armed whenever SIGCHLD is in use, even with no child tracked:
            // the thread then wakes at growing intervals for nothing, which
            // is cheaper than being woken by every spawn.
            let net_armed = self.sigchld.is_active();
            if self.sigchld.take_spawned() {
                net.spawned(Instant::now());
            }
            if net_armed {
                let left = net.time_left(Instant::now());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            self.sleeping_until.store(
                timeout.map_or(u64::MAX, |t| nanos_since_base(Instant::now() + t)),
                Ordering::Release,
            );
            let timeout_ms = timeout.map_or(-1, |t| {
                // Round up so a timer is never fired early.
                t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            });

            tokens.clear();
            let woke = match self.poller.wait(&mut tokens, timeout_ms) {
                Ok(woke) => woke,
                Err(e) => {
                    // Nothing sensible to do but not spin on a broken poller.
                    debug_assert!(false, "the reaper's poller failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    false
                }
            };
            for &token in &tokens {
                if changes::is_change_token(token) {
                    self.changes.on_ready(token, &self.poller);
                } else {
                    self.pidfds.on_ready(token, &self.poller);
                }
            }

            pids.clear();
            let dispatch = woke && self.wake.drain(&mut pids).unwrap_or(true);
            if self.sigchld.is_active() {
                if dispatch {
                    serve::serve_from_thread(&pids);
                } else if !woke && !serve::served_through(backlog) {
                    // Exits went to a listener whose runtime has not run
                    // it since the last wake-up.
                    serve::serve_from_thread(&[]);
                }
                backlog = serve::mark();
                // Rounds run here or by the listeners: either is news.
                if serve::take_news() {
                    net.news(Instant::now());
                } else if net_armed && !woke && !dispatch {
                    if self.sigchld.take_spawned() {
                        // A child was registered while this thread slept:
                        // the period was not quiet. Start a new one.
                        net.spawned(Instant::now());
                    } else if net.scan_due(Instant::now()) {
                        let (reaped, _) = serve::scan();
                        net.scanned(reaped, Instant::now());
                    }
                }
            }
        }
    }
}
