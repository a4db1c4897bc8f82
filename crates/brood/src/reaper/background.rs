//! The background reaper: one lazily started thread, `brood-reaper`.
//!
//! It exists so that children are reaped with no help from the user and with
//! no runtime left. It does three jobs, whichever are needed:
//!
//! - **SIGCHLD dispatch** (signal path): the handler writes exited pids to
//!   this thread's wake pipe; the thread runs [`Table::dispatch`].
//! - **Orphans and shared waits** (pidfd path): pidfds of children whose
//!   `Child` was dropped unreaped, or that a `ChildHandle` waits on, sit in an
//!   edge-triggered epoll set; the thread reaps them when they turn readable.
//! - **Grace timers** (both paths): the final SIGKILL of a graceful stop.
//!
//! The hot path never goes through here: a task awaiting its own child on the
//! pidfd path reaps it itself. The thread is started on first need, so a
//! program that always awaits its children on the pidfd path never has it.

use super::sleep::SleepState;
use super::table::{Reap, Table, Tracked};
use crate::child::shared::Shared;
use crate::sync::{lock, Arc, Mutex};
use crate::sys;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use super::watchlist::Watchlist;
#[cfg(target_os = "linux")]
use std::os::fd::RawFd;

/// The epoll token of the wake pipe; pidfd tokens are their fd numbers.
#[cfg(target_os = "linux")]
const WAKE_TOKEN: u64 = u64::MAX;

/// First delay before retrying to watch a child whose pidfd could not be
/// opened or armed (descriptors ran out); doubles up to [`RETRY_MAX`].
#[cfg(target_os = "linux")]
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(10);
#[cfg(target_os = "linux")]
const RETRY_MAX: Duration = Duration::from_secs(1);

/// First delay of the SIGCHLD path's safety net (see [`Background::run`]).
const SAFETY_NET_FIRST: Duration = Duration::from_secs(1);
/// Longest delay between two safety-net scans.
const SAFETY_NET_MAX: Duration = Duration::from_secs(60);

/// Reaps an adopted orphan (subreaper mode) by pid.
fn reap_adopted_orphan(pid: u32) -> bool {
    let reaped = matches!(sys::wait4(pid, true), Ok(Some(_)));
    #[cfg(feature = "tracing")]
    if reaped {
        crate::trace::orphan_reaped(pid);
    }
    reaped
}

impl Tracked for Shared {
    fn reap(&self) -> Reap {
        match self.reap_fresh() {
            Some((_, true)) => Reap::Fresh,
            Some((_, false)) => Reap::Already,
            None => Reap::Running,
        }
    }
}

/// What a timer does when it fires.
enum Action {
    /// The final SIGKILL of a graceful stop.
    Kill(Arc<Shared>),
    /// Completes a [`Sleep`](super::Sleep).
    Wake(Arc<SleepState>),
    /// Tries again to watch (or reap) a child whose pidfd was unavailable.
    #[cfg(target_os = "linux")]
    Retry(Arc<Shared>, Duration),
}

struct Timer {
    deadline: Instant,
    seq: u64,
    action: Action,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Inner {
    timers: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
}

pub(super) struct Background {
    wake_read: OwnedFd,
    wake_write: OwnedFd,
    #[cfg(target_os = "linux")]
    epoll: sys::linux::Epoll,
    /// Every live brood child; see [`super::TABLE`].
    table: &'static Table<Shared>,
    /// Serialises installing the SIGCHLD handler; `sigchld_active` says it
    /// is done. A failed attempt is not remembered: the next spawn retries.
    sigchld_install: std::sync::Mutex<()>,
    sigchld_active: AtomicBool,
    /// Set by `track`: restart the safety net's back-off.
    activity: AtomicBool,
    /// When the thread's current sleep ends (see [`nanos_since_base`]);
    /// `u64::MAX` while it sleeps without a deadline.
    sleeping_until: std::sync::atomic::AtomicU64,
    /// Serialises starting the thread; `thread_running` says it is done.
    /// A failed start (EAGAIN under RLIMIT_NPROC) is retried by the next use.
    thread_start: std::sync::Mutex<()>,
    thread_running: AtomicBool,
    /// Pidfd path: children the thread reaps, by pidfd number.
    #[cfg(target_os = "linux")]
    watched: Watchlist<Shared>,
    inner: Mutex<Inner>,
}

static BACKGROUND: OnceLock<Background> = OnceLock::new();
/// Serialises creating `BACKGROUND`. A failed creation (say EMFILE for the
/// wake pipe) is not remembered: the next use tries again.
static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Sleeps cancelled since the last sweep of the timer heap (an estimate:
/// the sweep recounts nothing, it just removes what is cancelled).
static CANCELLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Notes that a `Sleep` was dropped before its deadline.
pub(super) fn timer_cancelled() {
    CANCELLED.fetch_add(1, Ordering::Relaxed);
}

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

/// The background reaper, if it was ever created.
pub(super) fn try_get() -> Option<&'static Background> {
    BACKGROUND.get()
}

/// The background reaper, creating and starting it on first use.
pub(super) fn get() -> io::Result<&'static Background> {
    let bg = match BACKGROUND.get() {
        Some(bg) => bg,
        None => {
            let _creating = CREATE.lock().unwrap_or_else(|p| p.into_inner());
            match BACKGROUND.get() {
                Some(bg) => bg,
                None => {
                    let _ = BACKGROUND.set(Background::new()?);
                    BACKGROUND.get().expect("just set")
                }
            }
        }
    };
    bg.ensure_thread()?;
    Ok(bg)
}

impl Background {
    fn new() -> io::Result<Self> {
        let (wake_read, wake_write) =
            sys::nonblocking_pipe().map_err(|e| context("cannot create the wake pipe", e))?;
        #[cfg(target_os = "linux")]
        let epoll = {
            let epoll =
                sys::linux::Epoll::new().map_err(|e| context("cannot create an epoll set", e))?;
            epoll
                .add(wake_read.as_raw_fd(), WAKE_TOKEN)
                .map_err(|e| context("cannot watch the wake pipe", e))?;
            epoll
        };
        Ok(Background {
            wake_read,
            wake_write,
            #[cfg(target_os = "linux")]
            epoll,
            table: &super::TABLE,
            sigchld_install: std::sync::Mutex::new(()),
            sigchld_active: AtomicBool::new(false),
            activity: AtomicBool::new(false),
            sleeping_until: std::sync::atomic::AtomicU64::new(u64::MAX),
            thread_start: std::sync::Mutex::new(()),
            thread_running: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            watched: Watchlist::new(),
            inner: Mutex::new(Inner::default()),
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
        if self.sigchld_active.load(Ordering::Acquire) {
            return Ok(());
        }
        let _installing = self
            .sigchld_install
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.sigchld_active.load(Ordering::Acquire) {
            return Ok(());
        }
        let fd = self
            .wake_write
            .try_clone()
            .map_err(|e| context("cannot duplicate the wake pipe", e))?;
        sys::sigchld::install(fd).map_err(|e| context("cannot install the SIGCHLD handler", e))?;
        self.sigchld_active.store(true, Ordering::Release);
        Ok(())
    }

    /// Wakes the thread so it recomputes its timeout.
    pub(super) fn wake(&self) {
        // A zero pid is a wake-up without news. A full pipe already wakes it.
        let _ = sys::write(self.wake_write.as_raw_fd(), &0i32.to_ne_bytes());
    }

    /// Wakes the thread and makes it dispatch (look for exited children).
    pub(super) fn wake_to_dispatch(&self) {
        let _ = sys::write(
            self.wake_write.as_raw_fd(),
            &sys::DISPATCH_RECORD.to_ne_bytes(),
        );
    }

    /// Restarts the safety net's back-off: a child was registered.
    ///
    /// If the thread sleeps with no deadline (or a far one), it is woken so
    /// that the safety net covers the new child within a second; otherwise
    /// it picks the note up when it next wakes. So this costs a wake-up at
    /// most about once a second, not once per spawn.
    pub(super) fn note_activity(&self) {
        self.activity.store(true, Ordering::Release);
        if self.sigchld_active.load(Ordering::Acquire)
            && self.sleeping_until.load(Ordering::Acquire)
                > nanos_since_base(Instant::now() + SAFETY_NET_FIRST)
        {
            self.wake();
        }
    }

    /// Subreaper mode: from now on, reap orphans re-parented to us.
    #[cfg(target_os = "linux")]
    pub(super) fn adopt_orphans(&self) -> io::Result<()> {
        self.table.adopt_orphans();
        self.ensure_sigchld()?;
        // Orphans may have been adopted (and exited) already.
        self.wake_to_dispatch();
        Ok(())
    }

    #[cfg(target_os = "linux")]
    /// Watches a child's pidfd from now on. If the pidfd cannot be opened or
    /// armed (descriptors ran out), falls back to polling the child on a
    /// timer, `retry` from now and doubling, until it can.
    pub(super) fn watch_pidfd(&self, shared: &Arc<Shared>, retry: Duration) {
        // Opens the pidfd, or finds the child already exited.
        if shared.try_reap().is_some() {
            return;
        }
        if let Some(fd) = shared.process.pidfd().map(|fd| fd.as_fd().as_raw_fd()) {
            // If the child exits meanwhile, epoll reports the edge at once.
            let armed = self
                .watched
                .push(fd as u64, shared.clone(), || self.epoll.add(fd, fd as u64));
            if armed.is_ok() {
                return;
            }
        }
        let next = (retry * 2).min(RETRY_MAX);
        self.add_timer(Instant::now() + retry, Action::Retry(shared.clone(), next));
    }

    /// Timer entries in the heap, live or cancelled, for tests.
    #[cfg(feature = "test-hooks")]
    pub(super) fn pending_timers(&self) -> usize {
        lock(&self.inner).timers.len()
    }

    pub(super) fn kill_after(&self, shared: &Arc<Shared>, grace: Duration) {
        self.add_timer(Instant::now() + grace, Action::Kill(shared.clone()));
    }

    pub(super) fn wake_at(&self, deadline: Instant, state: &Arc<SleepState>) {
        self.add_timer(deadline, Action::Wake(state.clone()));
    }

    fn add_timer(&self, deadline: Instant, action: Action) {
        let earliest = {
            let mut inner = lock(&self.inner);
            // Sleeps dropped before their deadline leave garbage entries;
            // sweep them once they are the majority, so a program that
            // starts and abandons many long timeouts does not grow the heap.
            if CANCELLED.load(Ordering::Relaxed) > inner.timers.len() / 2 + 64 {
                CANCELLED.store(0, Ordering::Relaxed);
                inner
                    .timers
                    .retain(|Reverse(t)| !matches!(&t.action, Action::Wake(s) if s.is_cancelled()));
            }
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let earliest = inner
                .timers
                .peek()
                .is_none_or(|Reverse(t)| deadline < t.deadline);
            inner.timers.push(Reverse(Timer {
                deadline,
                seq,
                action,
            }));
            earliest
        };
        // Only a new earliest deadline changes the thread's timeout.
        if earliest {
            self.wake();
        }
    }

    /// Fires due timers; returns the time until the next one.
    fn fire_timers(&self) -> Option<Duration> {
        loop {
            let due = {
                let mut inner = lock(&self.inner);
                let now = Instant::now();
                match inner.timers.peek() {
                    None => return None,
                    Some(Reverse(t)) if t.deadline > now => return Some(t.deadline - now),
                    Some(_) => inner.timers.pop().map(|Reverse(t)| t.action),
                }
            };
            match due {
                // A group gets its SIGKILL even if the leader already exited:
                // grandchildren that ignored SIGTERM must not survive.
                Some(Action::Kill(shared)) => {
                    let _ = shared.send_stop(crate::Signal::KILL);
                }
                Some(Action::Wake(state)) => state.fire(),
                #[cfg(target_os = "linux")]
                Some(Action::Retry(shared, retry)) => self.watch_pidfd(&shared, retry),
                None => {}
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn on_pidfd_ready(&self, token: u64) {
        let Some(shared) = self.watched.get(token) else {
            return;
        };
        if shared.try_reap().is_some() {
            self.watched.remove(token, || {
                let _ = self.epoll.delete(token as RawFd);
            });
        }
        // Otherwise a tracer holds the exit; edge-triggered epoll reports
        // the next change, so there is no spinning here.
    }

    /// The thread's loop. Never returns.
    ///
    /// The SIGCHLD path has a safety net for children reaped behind brood's
    /// back (a foreign `waitpid`, or SIGCHLD set to SIG_IGN, which makes the
    /// kernel reap them without a signal): after a quiet period with children
    /// tracked, it scans them once, and doubles the quiet period (1 s up to
    /// 60 s) each time the scan finds nothing, so it costs next to nothing
    /// when all is well.
    fn run(&self) {
        let mut pids = Vec::new();
        #[cfg(target_os = "linux")]
        let mut tokens = Vec::new();
        let mut quiet = SAFETY_NET_FIRST;
        let mut last_news = Instant::now();
        loop {
            let mut timeout = self.fire_timers();
            // Armed whenever SIGCHLD is in use, even with no child tracked:
            // the thread then wakes at growing intervals for nothing, which
            // is cheaper than being woken by every spawn.
            let net_armed = self.sigchld_active.load(Ordering::Acquire);
            if self.activity.swap(false, Ordering::AcqRel) {
                quiet = SAFETY_NET_FIRST;
                last_news = Instant::now();
            }
            if net_armed {
                let left = (last_news + quiet).saturating_duration_since(Instant::now());
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

            #[cfg(target_os = "linux")]
            let woke = {
                tokens.clear();
                if let Err(e) = self.epoll.wait(&mut tokens, timeout_ms) {
                    // Nothing sensible to do but not spin on a broken set.
                    debug_assert!(false, "epoll_wait failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                let mut woke = false;
                for &token in &tokens {
                    if token == WAKE_TOKEN {
                        woke = true;
                    } else {
                        self.on_pidfd_ready(token);
                    }
                }
                woke
            };
            #[cfg(not(target_os = "linux"))]
            let woke =
                sys::poll_readable([self.wake_read.as_raw_fd()], timeout_ms).unwrap_or(false);

            pids.clear();
            let dispatch =
                woke && sys::drain_wake_pipe(self.wake_read.as_raw_fd(), &mut pids).unwrap_or(true);
            if self.sigchld_active.load(Ordering::Acquire) {
                if dispatch {
                    if !pids.is_empty() {
                        last_news = Instant::now();
                    }
                    self.table
                        .dispatch(&pids, sys::peek_exited_child, reap_adopted_orphan);
                } else if net_armed && !woke {
                    if self.activity.swap(false, Ordering::AcqRel) {
                        // A child was registered while this thread slept:
                        // the period was not quiet. Start a new one.
                        quiet = SAFETY_NET_FIRST;
                        last_news = Instant::now();
                    } else if Instant::now() >= last_news + quiet {
                        let (reaped, _) = self.table.scan();
                        quiet = if reaped > 0 {
                            SAFETY_NET_FIRST
                        } else {
                            (quiet * 2).min(SAFETY_NET_MAX)
                        };
                        last_news = Instant::now();
                    }
                }
            }
        }
    }
}
