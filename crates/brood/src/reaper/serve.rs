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
//! Nobody waits for another's round, so no runtime thread blocks on it
//! (only the safety net's rare full scan makes a round wait).
//!
//! Records in the listeners' pipe are read by the listeners, each of which
//! dispatches what it read ([`read_listeners_pipe`], then [`serve`]), and
//! by the thread's own rounds ([`serve_from_thread`]), which drain the
//! pipe first. Every read is counted against what the handler wrote
//! (`Route::sent_to_listeners`), and whoever reads a record dispatches it,
//! so [`unserved`] says whether records are waiting that nobody has read: a
//! new orphan checks it, and has the thread dispatch if so. The thread
//! itself, when it wakes without news, serves the records that were already
//! written when it last woke and are still unread ([`mark`],
//! [`served_through`]): a record left with a runtime that is not being
//! driven is served within one of the thread's sleeps, and one a listener
//! is about to read is left to it.
//!
//! Owns: [`Combiner`], [`serve`], the listeners' pipe's read end, and the
//! counts behind [`unserved`] and [`take_news`]. Calls: `sigchld`
//! (`dispatch`), `table`, `wake` (reading records), `sys::sigchld::Route`,
//! `sys::process`, `sys::fd`.

use super::sigchld;
use super::table::LIVE;
use super::wake;
use crate::sync::{lock, AtomicUsize, Mutex};
use crate::sys;
use crate::sys::sigchld::Route;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{self, Ordering};
use std::sync::{MutexGuard, OnceLock, PoisonError};

/// Runs one piece of work at a time for many callers, none of whom waits:
/// a caller who finds it running leaves a request, and the runner runs it
/// once more after the current round. Every call is followed by a round
/// that starts after the call did
/// (`loom_models_combined_dispatch_loses_no_request`).
///
/// Who runs, and whether a request is waiting, is one atomic word, so a
/// request and the runner's decision to stop are ordered against each
/// other: either the runner sees the request, or the requester sees that
/// nobody runs and runs itself. The runner's state is under a mutex that
/// only the runner takes (and [`Combiner::exclusive`]).
pub(crate) struct Combiner<T> {
    /// [`IDLE`], [`RUNNING`] or [`AGAIN`].
    runner: AtomicUsize,
    state: Mutex<T>,
}

/// Resets a combiner's word to [`IDLE`] if the round unwinds.
struct Unwinding<'a>(&'a AtomicUsize);

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(IDLE, Ordering::SeqCst);
        }
    }
}

/// Nobody runs a round.
const IDLE: usize = 0;
/// A round runs, and no request came after it started.
const RUNNING: usize = 1;
/// A round runs, and a request came after it started.
const AGAIN: usize = 2;

impl<T> Combiner<T> {
    pub(crate) fn new(state: T) -> Self {
        Combiner {
            runner: AtomicUsize::new(IDLE),
            state: Mutex::new(state),
        }
    }

    /// Runs `work` now, or leaves it to whoever is running it.
    pub(crate) fn run(&self, mut work: impl FnMut(&mut T)) {
        loop {
            match self
                .runner
                .compare_exchange(IDLE, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(AGAIN) => return,
                Err(_) => {
                    if self
                        .runner
                        .compare_exchange(RUNNING, AGAIN, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        return;
                    }
                    // The round ended meanwhile: try to run one.
                }
            }
        }
        // A round that panics (a waker did) must not leave the word saying
        // that somebody runs: nobody would ever run a round again.
        let _unwinding = Unwinding(&self.runner);
        loop {
            work(&mut lock(&self.state));
            match self
                .runner
                .compare_exchange(RUNNING, IDLE, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                // A request came during the round: run another.
                Err(_) => self.runner.store(RUNNING, Ordering::SeqCst),
            }
        }
    }

    /// Runs `work` alone: it waits for a round in progress to end, and a
    /// round that starts meanwhile waits for it.
    pub(crate) fn exclusive<R>(&self, work: impl FnOnce(&mut T) -> R) -> R {
        work(&mut lock(&self.state))
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
/// Records read from the listeners' pipe so far (to compare with
/// [`Route::sent_to_listeners`]).
static READ: atomic::AtomicUsize = atomic::AtomicUsize::new(0);
/// The thread asked for a round that drains the listeners' pipe.
static DRAIN: atomic::AtomicBool = atomic::AtomicBool::new(false);
/// A round dispatched pids since the thread last asked ([`take_news`]).
static NEWS: atomic::AtomicBool = atomic::AtomicBool::new(false);
/// Rounds run on the background thread, and elsewhere (by listeners), for
/// tests; counted only in builds with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
static ROUNDS_ON_THREAD: atomic::AtomicU64 = atomic::AtomicU64::new(0);
#[cfg(feature = "test-hooks")]
static ROUNDS_ELSEWHERE: atomic::AtomicU64 = atomic::AtomicU64::new(0);

#[cfg(feature = "test-hooks")]
thread_local! {
    /// Set on the background thread, to count its rounds apart.
    static ON_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the background thread (for the round
/// counts of tests).
pub(super) fn on_background_thread() {
    #[cfg(feature = "test-hooks")]
    ON_THREAD.with(|on| on.set(true));
}

/// Counts one round, on the thread or elsewhere.
#[cfg(feature = "test-hooks")]
fn count_round() {
    let rounds = if ON_THREAD.with(|on| on.get()) {
        &ROUNDS_ON_THREAD
    } else {
        &ROUNDS_ELSEWHERE
    };
    rounds.fetch_add(1, Ordering::Relaxed);
}

/// Dispatch rounds run so far on the background thread and elsewhere.
#[cfg(feature = "test-hooks")]
pub(crate) fn rounds() -> (u64, u64) {
    (
        ROUNDS_ON_THREAD.load(Ordering::Relaxed),
        ROUNDS_ELSEWHERE.load(Ordering::Relaxed),
    )
}

fn combiner() -> &'static Combiner<Vec<u32>> {
    DISPATCH.get_or_init(|| Combiner::new(Vec::new()))
}

/// Locks one of the std mutexes above; their critical sections cannot
/// leave them half-changed.
fn std_lock<T>(mutex: &std::sync::Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Dispatches the pids in `hints` (which a listener read) and whatever the
/// peek finds. Runs now, or once more in the round of whoever is
/// dispatching.
pub(super) fn serve(hints: &[u32]) {
    if !hints.is_empty() {
        std_lock(&HINTS).extend_from_slice(hints);
    }
    combiner().run(round);
}

/// [`serve`] for the background thread: `hints` come from its wake pipe,
/// and the round also drains the listeners' pipe, for records no listener
/// read.
pub(super) fn serve_from_thread(hints: &[u32]) {
    DRAIN.store(true, Ordering::SeqCst);
    serve(hints);
}

/// Reads every record in the listeners' pipe through `fd` (its read end,
/// or a listener's duplicate of it), appending their pids to `pids`, and
/// counts them as read. Returns how many it read; a read error reads
/// fewer, which the dispatch's peek makes up for.
pub(super) fn read_listeners_pipe(fd: RawFd, pids: &mut Vec<u32>) -> usize {
    let before = pids.len();
    let _ = wake::drain_fd(fd, pids);
    let read = pids.len() - before;
    READ.fetch_add(read, Ordering::SeqCst);
    read
}

/// One round of the dispatch.
fn round(pids: &mut Vec<u32>) {
    #[cfg(feature = "test-hooks")]
    count_round();
    pids.clear();
    pids.append(&mut std_lock(&HINTS));
    if DRAIN.swap(false, Ordering::SeqCst) {
        if let Some(pipe) = LISTENERS_PIPE.get() {
            read_listeners_pipe(pipe.as_raw_fd(), pids);
        }
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
}

/// The safety net's scan of every tracked child, alone: no dispatch runs
/// meanwhile (a listener that starts a round waits for it; scans come only
/// after a quiet second or more). Returns `Table::scan`'s counts.
pub(super) fn scan() -> (usize, usize) {
    combiner().exclusive(|_| LIVE.scan())
}

/// Whether the handler wrote records to the listeners' pipe that nobody
/// has read yet.
pub(super) fn unserved() -> bool {
    !served_through(mark())
}

/// How many records the handler has written to the listeners' pipe so far:
/// a mark for [`served_through`].
pub(super) fn mark() -> usize {
    Route::sent_to_listeners()
}

/// Whether as many records have been read as had been written at `mark`.
/// (The handler counts a record after writing it, so reads may briefly run
/// ahead; the counts wrap, and never drift half their range apart.)
pub(super) fn served_through(mark: usize) -> bool {
    (READ.load(Ordering::SeqCst).wrapping_sub(mark) as isize) >= 0
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

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::Combiner;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn a_request_during_a_round_runs_exactly_one_more_round() {
        let combiner = Combiner::new(0u32);
        let mut rounds = 0;
        combiner.run(|_| {
            rounds += 1;
            if rounds == 1 {
                // Found running: left to this round's runner.
                combiner.run(|_| unreachable!("a second runner"));
                combiner.run(|_| unreachable!("a second runner"));
            }
        });
        assert_eq!(rounds, 2, "two requests during a round merge into one more");
    }

    #[test]
    fn a_round_that_panics_does_not_stop_later_rounds() {
        let combiner = Combiner::new(0u32);
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            combiner.run(|_| panic!("a waker panicked"));
        }));
        assert!(panicked.is_err());
        let mut ran = false;
        combiner.run(|state| {
            *state += 1;
            ran = true;
        });
        assert!(ran, "nobody runs rounds after a panic");
    }
}
