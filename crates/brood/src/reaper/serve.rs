//! The one way into the SIGCHLD dispatch, for the background thread and the
//! runtimes' listeners alike.
//!
//! Two kinds of dispatcher run `sigchld::dispatch`: the background thread,
//! woken through its wake pipe, and a listener in each runtime that waits
//! on the SIGCHLD path (`listener.rs`), woken through the listeners' pipe.
//! The dispatch must not run twice at once: two peeks could see one zombie
//! and both act on it, and one could clear the unclaimed set another just
//! added to. So every dispatcher goes through [`serve`], which runs the
//! dispatch under a [`Combiner`]: whoever finds it busy leaves its request
//! with the one running it, who dispatches once more before it stops.
//! Nobody waits for the lock, so no runtime thread blocks on another's
//! dispatch.
//!
//! Whoever runs the dispatch drains the listeners' pipe first, so its
//! records are read by a dispatcher whatever woke it. [`unserved`] says
//! whether the handler has written records there that no dispatch has
//! read yet: the thread checks it when a listener stops, when an orphan
//! takes the exits back to the thread, and at its safety-net wake-ups, so
//! that a record left with a runtime that no longer runs is still served.
//!
//! Owns: [`Combiner`], [`serve`], the listeners' pipe's read end, and the
//! counts behind [`unserved`] and [`take_news`]. Calls: `sigchld`
//! (`dispatch`), `table`, `wake` (reading records), `sys::sigchld::Route`,
//! `sys::process`, `sys::fd`.

use super::sigchld;
use super::table::LIVE;
use super::wake;
use crate::sync::{lock, AtomicBool, Mutex};
use crate::sys;
use crate::sys::sigchld::Route;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{self, Ordering};
use std::sync::{MutexGuard, OnceLock, PoisonError, TryLockError};

/// Runs one piece of work at a time for many callers, none of whom waits:
/// a caller who finds it running leaves a request, and the runner runs it
/// once more after the current round. Every call is followed by a run that
/// starts after the call did (`loom_models_combined_dispatch_loses_no_request`).
pub(crate) struct Combiner<T> {
    /// The runner's state; held for a whole round.
    busy: Mutex<T>,
    /// A request arrived that no round has started on yet.
    again: AtomicBool,
}

impl<T> Combiner<T> {
    pub(crate) fn new(state: T) -> Self {
        Combiner {
            busy: Mutex::new(state),
            again: AtomicBool::new(false),
        }
    }

    /// Runs `work` now, or leaves it to whoever is running it.
    pub(crate) fn run(&self, mut work: impl FnMut(&mut T)) {
        self.again.store(true, Ordering::SeqCst);
        loop {
            let mut state = match self.busy.try_lock() {
                Ok(state) => state,
                // A round panicked (a waker did); its state is still whole.
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                // The runner checks `again` after it unlocks.
                Err(TryLockError::WouldBlock) => return,
            };
            if !self.again.swap(false, Ordering::SeqCst) {
                return;
            }
            work(&mut state);
            drop(state);
            if !self.again.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Runs `work` alone, waiting for a round in progress to end, and then
    /// lets any request left meanwhile run through [`Combiner::run`].
    pub(crate) fn exclusive<R>(
        &self,
        work: impl FnOnce(&mut T) -> R,
        pending: impl FnMut(&mut T),
    ) -> R {
        let out = work(&mut lock(&self.busy));
        if self.again.load(Ordering::SeqCst) {
            self.run(pending);
        }
        out
    }
}

// The process-wide state below is plain std: only `Combiner` is modelled.

/// The dispatch's combiner; its state is the pids for the next round.
static DISPATCH: OnceLock<Combiner<Vec<u32>>> = OnceLock::new();
/// Pids from the thread's wake pipe, waiting for the next round.
static HINTS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
/// The listeners' pipe's read end, once the first listener made it.
static LISTENERS_PIPE: OnceLock<OwnedFd> = OnceLock::new();
static MAKING_PIPE: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// [`Route::sent_to_listeners`] as the last round read it before draining.
static SERVED: atomic::AtomicUsize = atomic::AtomicUsize::new(0);
/// A round dispatched pids since the thread last asked ([`take_news`]).
static NEWS: atomic::AtomicBool = atomic::AtomicBool::new(false);

fn combiner() -> &'static Combiner<Vec<u32>> {
    DISPATCH.get_or_init(|| Combiner::new(Vec::new()))
}

/// Locks one of the std mutexes above; their critical sections cannot
/// leave them half-changed.
fn std_lock<T>(mutex: &std::sync::Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Dispatches: the pids in `hints` (from the thread's wake pipe), every
/// record in the listeners' pipe, and whatever the peek finds. Runs now,
/// or once more in the round of whoever is dispatching.
pub(super) fn serve(hints: &[u32]) {
    if !hints.is_empty() {
        std_lock(&HINTS).extend_from_slice(hints);
    }
    combiner().run(round);
}

/// One round of the dispatch.
fn round(pids: &mut Vec<u32>) {
    let sent = Route::sent_to_listeners();
    pids.clear();
    pids.append(&mut std_lock(&HINTS));
    if let Some(pipe) = LISTENERS_PIPE.get() {
        // A read error leaves records behind, which the peek makes up for.
        let _ = wake::drain_fd(pipe.as_raw_fd(), pids);
    }
    if !pids.is_empty() {
        NEWS.store(true, Ordering::SeqCst);
    }
    sigchld::dispatch(
        &LIVE,
        pids,
        sys::process::peek_exited_child,
        reap_adopted_orphan,
    );
    SERVED.store(sent, Ordering::SeqCst);
}

/// The safety net's scan of every tracked child, alone: no dispatch runs
/// meanwhile. Returns `Table::scan`'s counts.
pub(super) fn scan() -> (usize, usize) {
    combiner().exclusive(|_| LIVE.scan(), round)
}

/// Whether the handler wrote records to the listeners' pipe that no round
/// has read yet.
pub(super) fn unserved() -> bool {
    Route::sent_to_listeners() != SERVED.load(Ordering::SeqCst)
}

/// Whether a round dispatched pids since the last call (so the period was
/// not quiet, for the safety net).
pub(super) fn take_news() -> bool {
    NEWS.swap(false, Ordering::SeqCst)
}

/// The read end of the listeners' pipe, creating the pipe (and handing its
/// write end to the handler) on first use.
pub(super) fn listeners_pipe() -> io::Result<&'static OwnedFd> {
    if let Some(pipe) = LISTENERS_PIPE.get() {
        return Ok(pipe);
    }
    let _making = std_lock(&MAKING_PIPE);
    if let Some(pipe) = LISTENERS_PIPE.get() {
        return Ok(pipe);
    }
    let (read, write) = sys::fd::nonblocking_pipe()?;
    let read = LISTENERS_PIPE.get_or_init(|| read);
    Route::set_listeners_pipe(write);
    Ok(read)
}

/// Reaps an adopted orphan (subreaper mode) by pid.
fn reap_adopted_orphan(pid: u32) -> bool {
    let reaped = matches!(sys::process::wait4(pid, true), Ok(Some(_)));
    #[cfg(feature = "tracing")]
    if reaped {
        crate::trace::orphan_reaped(pid);
    }
    reaped
}
