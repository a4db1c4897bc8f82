//! The pidfd exit watcher (Linux 5.4+): each child is watched through a
//! process descriptor, by the task that awaits it or, for children nobody
//! awaits, by the background thread.
//!
//! # A child's pidfd, opened late
//!
//! [`LazyPidfd`] opens the pidfd on the first wait, signal or hand-off to the
//! background thread, not at spawn: every open descriptor is copied into each
//! later child's descriptor table by the kernel, so holding one per running
//! child would make spawning slower the more children are alive. Opening
//! late is just as safe: it only ever happens while the child's exit-cell
//! lock is held and the child is unreaped, so the pid still names our child.
//! The first `waitid` on the new pidfd double-checks that (it fails with
//! `ECHILD` for anything but our child).
//!
//! # The awaiting task reaps its own child
//!
//! [`LazyPidfd::poll_exit`] registers the pidfd with the reactor of the
//! polling task's runtime, and the task reaps its own child when the pidfd
//! turns readable: no other thread sits between the exit and the task, and
//! no signal handler is installed. The registration is dropped *before* the
//! reap: reaping makes the pidfd fire once more, and a registration still in
//! the reactor would wake the reactor's thread for nothing, once per child.
//!
//! A pidfd can turn readable while a tracer (`strace -f`, a debugger) holds
//! the exit. `waitid(WNOHANG)` then reports nothing; from then on the
//! registration is kept across attempts, its readiness cleared and the next
//! edge awaited, which the kernel delivers when the exit reaches us.
//!
//! # Children nobody awaits
//!
//! A child whose `Child` was dropped unreaped, or that handles wait on, is
//! handed to the background thread ([`Watcher`]): its pidfd joins the
//! thread's edge-triggered epoll set through the watch list. When it turns
//! readable the thread reaps the child only if somebody still waits for it
//! (an orphan, a parked handle waiter); otherwise it announces the exit and
//! leaves the zombie for the owner, as the SIGCHLD dispatcher does. If no pidfd can
//! be opened or armed (descriptors ran out), the thread tries again on a
//! timer, 10 ms doubling to 1 s. If the thread itself cannot be started, the
//! child waits in [`DEFERRED`] until the next use of brood.
//!
//! Owns: [`LazyPidfd`], [`Watcher`], [`DEFERRED`]. Calls: `reactor` (the
//! registration), `sys::pidfd`, `sys::poller`, `watchlist`, `tracked`.

use super::tracked::{Reap, TrackedChild};
use super::watchlist::Watchlist;
use crate::reactor;
use crate::sync::Arc;
use crate::sys;
use crate::sys::async_fd::RegistrableFd;
use crate::sys::poller::Poller;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::Interest;

/// A child's pidfd, opened on first use, with its reactor registration.
#[derive(Debug)]
pub(crate) struct LazyPidfd {
    fd: OnceLock<RegistrableFd>,
    /// When `spawn` returned; see [`LazyPidfd::poll_exit`].
    spawned_at: Instant,
    /// The pidfd was readable while the child could not be reaped: a tracer
    /// holds the exit. From then on the registration is kept across reap
    /// attempts, so that its readiness can be cleared and the next edge (the
    /// tracer letting go) awaited. Only read and written under the
    /// registration's lock.
    traced: AtomicBool,
    /// Set once the background thread watches this child.
    handed_over: AtomicBool,
}

impl LazyPidfd {
    /// The pidfd of a child spawned just now; nothing is opened yet.
    pub(crate) fn new() -> Self {
        LazyPidfd {
            fd: OnceLock::new(),
            spawned_at: Instant::now(),
            traced: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
        }
    }

    /// The pidfd of a child spawned just now with its pidfd from birth
    /// (brood's own spawn, `clone3(CLONE_PIDFD)`): nothing left to open.
    pub(crate) fn opened(fd: OwnedFd) -> Self {
        LazyPidfd {
            fd: OnceLock::from(RegistrableFd::new(fd)),
            spawned_at: Instant::now(),
            traced: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
        }
    }

    /// The pidfd of process `pid`, opening it if needed.
    ///
    /// Callers hold the child's exit-cell lock and know the child is
    /// unreaped, so `pid` still names our child.
    pub(crate) fn open(&self, pid: u32) -> io::Result<BorrowedFd<'_>> {
        let fd = match self.fd.get() {
            Some(fd) => fd,
            None => {
                let opened = sys::pidfd::open(pid).map_err(|e| {
                    // No such process although unreaped by us: reaped elsewhere.
                    if e.raw_os_error() == Some(libc::ESRCH) {
                        io::Error::from_raw_os_error(libc::ECHILD)
                    } else {
                        e
                    }
                })?;
                // Serialised by the exit cell's lock: nobody else can be here.
                self.fd.get_or_init(|| RegistrableFd::new(opened))
            }
        };
        Ok(fd.as_fd())
    }

    /// The pidfd, if it has been opened.
    pub(crate) fn get(&self) -> Option<BorrowedFd<'_>> {
        self.fd.get().map(RegistrableFd::as_fd)
    }

    /// Whether the background thread watches this child: then its owner
    /// parks on the exit cell instead of polling the pidfd itself.
    pub(crate) fn is_handed_over(&self) -> bool {
        self.handed_over.load(Ordering::Acquire)
    }

    /// Marks the child as watched by the background thread; `true` the
    /// first time only.
    pub(super) fn hand_over(&self) -> bool {
        !self.handed_over.swap(true, Ordering::AcqRel)
    }

    /// Polls for the exit from the task that owns the child, in the reactor
    /// of the task's runtime; `reap` reaps the child if it exited. `None`
    /// means "not possible here": no pidfd (descriptors ran out), no
    /// runtime, or the runtime the pidfd was registered with is gone. The
    /// caller then falls back to the background thread.
    ///
    /// `open_while_running` opens the pidfd if the child is unreaped (under
    /// its exit-cell lock, see [`LazyPidfd::open`]) and says whether that
    /// worked; `None` if the child was reaped.
    pub(crate) fn poll_exit<R>(
        &self,
        cx: &mut Context<'_>,
        open_while_running: impl FnOnce() -> Option<bool>,
        mut reap: impl FnMut() -> Option<R>,
    ) -> Option<Poll<R>> {
        if !self.is_registered() {
            // First poll. A young child (the usual case: awaited right after
            // spawn) is still running: just open its pidfd. An older one gets
            // a reap attempt first, which costs no epoll registration if it
            // already exited, and which also proves the lazily opened pidfd
            // is our child (a foreign reaper and a recycled pid take far
            // longer than YOUNG).
            const YOUNG: Duration = Duration::from_millis(10);
            let opened = (self.spawned_at.elapsed() < YOUNG)
                .then(open_while_running)
                .flatten();
            if opened != Some(true) {
                if let Some(exit) = reap() {
                    return Some(Poll::Ready(exit));
                }
            }
        }
        // No pidfd (descriptors ran out): fall back.
        let fd = self.fd.get()?;
        match self.poll_registered(fd, cx, reap) {
            Poll::Pending => Some(Poll::Pending),
            Poll::Ready(Ok(exit)) => Some(Poll::Ready(exit)),
            // No runtime, or the one the pidfd was registered with is gone:
            // fall back.
            Poll::Ready(Err(_)) => None,
        }
    }

    /// Whether a reactor registration exists (the child is awaited inline).
    fn is_registered(&self) -> bool {
        self.fd
            .get()
            .is_some_and(|fd| fd.registration().is_registered())
    }

    /// Waits, in the current Tokio runtime's reactor, until the pidfd is
    /// readable and `reap` then returns the exit. See the module docs for
    /// why the registration is dropped before `reap` runs, and when it is
    /// kept.
    fn poll_registered<R>(
        &self,
        fd: &RegistrableFd,
        cx: &mut Context<'_>,
        mut reap: impl FnMut() -> Option<R>,
    ) -> Poll<io::Result<R>> {
        let mut registration = fd.registration();
        loop {
            let traced = self.traced.load(Ordering::Relaxed);
            if !registration.is_registered() {
                if let Err(e) = reactor::register(&mut registration, Interest::READABLE) {
                    return Poll::Ready(Err(e));
                }
            }
            let Some(registered) = registration.get() else {
                return Poll::Ready(Err(io::Error::other("brood: the pidfd is not registered")));
            };
            let mut guard = match registered.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(guard)) => guard,
            };
            if traced {
                if let Some(exit) = reap() {
                    return Poll::Ready(Ok(exit));
                }
                // Still held. Clearing is a no-op if a newer edge arrived
                // since the readiness was observed, so none is lost.
                guard.clear_ready();
                continue;
            }
            drop(guard);
            registration.deregister();
            if let Some(exit) = reap() {
                return Poll::Ready(Ok(exit));
            }
            // Readable but not waitable: a tracer holds the exit. Register
            // again; the new registration reports the (still readable) pidfd
            // at once, and the traced branch above then waits for the edge
            // that comes when the exit reaches us.
            self.traced.store(true, Ordering::Relaxed);
        }
    }
}

/// First delay before retrying to watch a child whose pidfd could not be
/// opened or armed (descriptors ran out); doubles up to [`RETRY_MAX`].
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(10);
/// Longest delay between two retries.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// The delay after `retry`.
pub(super) fn next_retry(retry: Duration) -> Duration {
    (retry * 2).min(RETRY_MAX)
}

/// The children whose pidfds the background thread watches.
pub(super) struct Watcher {
    watched: Watchlist<TrackedChild>,
}

impl Watcher {
    pub(super) fn new() -> Self {
        Watcher {
            watched: Watchlist::new(),
        }
    }

    /// Watches `child`'s pidfd in `poller` from now on, unless it has
    /// exited already. Gives the child back if its pidfd could not be
    /// opened or armed (descriptors ran out): the caller tries again later.
    pub(super) fn watch(
        &self,
        child: Arc<TrackedChild>,
        poller: &Poller,
    ) -> Result<(), Arc<TrackedChild>> {
        // Opens the pidfd, or finds the child already exited: reaped if
        // somebody waits for it, otherwise announced, and then whoever
        // asks later collects the exit without the thread's help.
        if child.notice() != Reap::Running {
            return Ok(());
        }
        if let Some(fd) = child.pidfd().map(|fd| fd.as_raw_fd()) {
            // If the child exits meanwhile, epoll reports the edge at once.
            let armed = self
                .watched
                .push(fd as u64, child.clone(), || poller.watch(fd, fd as u64));
            if armed.is_ok() {
                return Ok(());
            }
        }
        Err(child)
    }

    /// The watched pidfd `token` turned readable.
    pub(super) fn on_ready(&self, token: u64, poller: &Poller) {
        let Some(child) = self.watched.get(token) else {
            return;
        };
        // Reaped if somebody still waits for it (an orphan, a parked handle
        // waiter); otherwise announced and left for the owner, whose next
        // wait collects it in place. Either way the thread is done with it.
        if child.notice() != Reap::Running {
            self.watched.remove(token, || {
                let _ = poller.unwatch(token as RawFd);
            });
        }
        // Otherwise a tracer holds the exit; edge-triggered epoll reports
        // the next change, so there is no spinning here.
    }
}

/// Children that needed the background thread while it could not be started
/// (no descriptor for its wake pipe, `EAGAIN` under `RLIMIT_NPROC`).
pub(super) struct Deferred {
    children: Mutex<Vec<Arc<TrackedChild>>>,
    any: AtomicBool,
}

/// The children waiting for the background thread; handed over on the next
/// use of brood.
pub(super) static DEFERRED: Deferred = Deferred {
    children: Mutex::new(Vec::new()),
    any: AtomicBool::new(false),
};

impl Deferred {
    pub(super) fn push(&self, child: Arc<TrackedChild>) {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child);
        self.any.store(true, Ordering::Release);
    }

    /// Whether no child waits. One atomic load.
    pub(super) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// Takes every waiting child.
    pub(super) fn take(&self) -> Vec<Arc<TrackedChild>> {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        self.any.store(false, Ordering::Release);
        std::mem::take(&mut *children)
    }
}
