//! Learning that a child exited: the choice between the two exit watchers.
//!
//! brood has two ways to learn that a child exited, and picks one per process:
//!
//! - **[`Strategy::Pidfd`]** (Linux 5.4+): every child gets a pidfd. The task
//!   awaiting a child registers that pidfd with its Tokio reactor and reaps
//!   the child itself when it turns readable (`waitid(P_PIDFD)`). No signal
//!   handler is installed at all.
//! - **[`Strategy::Signal`]** (every Unix; Linux when pidfds are missing or
//!   denied): one SIGCHLD handler tells a background thread *which* child
//!   exited, and that thread reaps exactly that child and wakes exactly its
//!   waiters, in O(1) per exit.
//!
//! Either way, brood collects an exit as soon as it happens only if somebody
//! asked for it: a `wait` is pending (on the `Child` or a
//! [`ChildHandle`](crate::ChildHandle)), the `Child` went to `output`,
//! `status` or `wait_with_output`, or it was dropped. The exit of a child
//! you hold without waiting is left for you, as under `tokio::process`: its
//! zombie stays until you call `try_wait` or `wait` (or a `waitpid` of your
//! own collects it).
//!
//! # The cost of an exit nobody waits for (SIGCHLD path)
//!
//! To find exits whose SIGCHLDs merged, the SIGCHLD watcher peeks at the
//! oldest zombie (`waitid(WNOWAIT)`). A zombie left for its owner keeps
//! being the one named, so while one exists the watcher cannot see past it
//! and asks each tracked child that somebody waits for (or has waited for,
//! dropped, or shares through a handle) instead: **one wait call per such
//! child per SIGCHLD** (and one per spawn) from the exit until the owner
//! collects it, instead of one in all. Children held without any wait are
//! not asked; their exits are found when they are awaited, polled or
//! dropped. The same happens while a zombie of a child spawned with
//! `std::process` waits for its owner. Programs that await their children
//! never pay it; a program that holds many children, awaits some and polls
//! `try_wait` on others does, between each exit and the poll that collects
//! it. The pidfd watcher has no such cost.
//!
//! The environment variable `BROOD_REAPER` forces the choice:
//!
//! | value | effect |
//! | --- | --- |
//! | unset, empty or `auto` | probe pidfd support once, use it if it works |
//! | `pidfd` | use pidfds; the first spawn fails if the kernel lacks them |
//! | `signal` | use SIGCHLD even where pidfds work |
//!
//! Any other value makes spawning fail with an error that names the variable.
//!
//! ```
//! let strategy = brood::reaper::current();
//! println!("children are watched through {strategy:?}");
//! ```

// The reaper's files, bottom up; each opens with what it owns and calls.
// Nothing here names the child layer: children are `Tracked` trait objects.
//
//   tracked.rs     the `Tracked` trait: what the reaper may ask of a child
//   strategy.rs    choosing the exit watcher (public: Strategy, current, ...)
//   table.rs       the table of live children, registration vs. delivery
//   watchlist.rs   the background thread's pidfd watch list (loom-modelled)
//   wake.rs        the background thread's wake pipe
//   timers.rs      the timer heap: grace kills, sleeps, pidfd retries, jobs
//   changes.rs     change watches (a contained child's cgroup.events)
//   sigchld.rs     the SIGCHLD exit watcher: O(1) dispatch and the safety net
//   serve.rs       the one way into that dispatch, for the thread and listeners
//   pidfd.rs       the pidfd exit watcher: inline waits and orphan watches
//   background.rs  the background thread and its loop
//   listener.rs    a runtime's SIGCHLD listener: the dispatch on its thread
//   sleep.rs       `Sleep`, a future served by the timers
//   mod.rs         this file: what `command` and `child` call

mod background;
mod changes;
mod listener;
mod pidfd;
pub(crate) mod serve;
pub(crate) mod sigchld;
mod sleep;
mod strategy;
pub(crate) mod table;
mod timers;
mod tracked;
mod wake;
pub(crate) mod watchlist;

pub use strategy::{current, try_current, Strategy, ENV_VAR};

pub(crate) use changes::Changes;
pub(crate) use pidfd::LazyPidfd;
pub(crate) use sleep::Sleep;
pub(crate) use tracked::{Reap, Tracked, TrackedChild};

use crate::sync::Arc;
use crate::sys::sigchld::Route;
use std::io;
use std::time::{Duration, Instant};
use table::LIVE;
use timers::Action;

/// A spawn in progress: holds the machinery that must exist *before* the
/// child does (on the SIGCHLD path, the handler and the dispatcher thread, or
/// an early exit would go unnoticed), and keeps subreaper mode from adopting
/// the child before it is registered.
pub(crate) struct SpawnTicket {
    pub(crate) strategy: Strategy,
}

impl SpawnTicket {
    /// Registers the spawned child so that the dispatcher knows it as ours.
    pub(crate) fn track<T: Tracked + Send + Sync + 'static>(&self, pid: u32, child: &Arc<T>) {
        if LIVE.register(pid, child.clone()) {
            Route::unwant_thread();
        }
        if let Some(bg) = background::try_get() {
            bg.note_spawn();
        }
    }
}

impl Drop for SpawnTicket {
    fn drop(&mut self) {
        if LIVE.spawn_finished() {
            // Orphans were deferred while this spawn was in flight.
            if let Ok(bg) = background::get() {
                bg.wake_to_dispatch();
            }
        }
    }
}

/// Prepares a spawn; see [`SpawnTicket`].
pub(crate) fn prepare_spawn() -> io::Result<SpawnTicket> {
    let strategy = try_current()?;
    retry_deferred();
    if strategy == Strategy::Signal {
        background::get()?.ensure_sigchld()?;
    }
    LIVE.spawn_started();
    Ok(SpawnTicket { strategy })
}

/// `become_subreaper`'s part: adopt orphans from now on. Exits go to the
/// background thread for good: an adopted orphan must be reaped whether or
/// not any runtime runs.
pub(crate) fn adopt_orphans() -> io::Result<()> {
    background::get()?.adopt_orphans()?;
    static WANTED: std::sync::Once = std::sync::Once::new();
    WANTED.call_once(Route::want_thread);
    Ok(())
}

/// Makes sure somebody other than the owning task will reap `child` (pid
/// `pid`): the background thread on the pidfd path (`pidfd` is the child's);
/// on the SIGCHLD path (`pidfd` is `None`) the dispatcher does already, and
/// from now on its blind scans ask the child too ([`follow_exit`]).
pub(crate) fn watch<T: Tracked + Send + Sync + 'static>(
    pid: u32,
    child: &Arc<T>,
    pidfd: Option<&LazyPidfd>,
) {
    let Some(pidfd) = pidfd else {
        // SIGCHLD path: tracked since spawn.
        follow_exit(pid, child, None);
        return;
    };
    if pidfd.hand_over() {
        let child: Arc<TrackedChild> = child.clone();
        match background::get() {
            Ok(bg) => {
                bg.watch_pidfd(child, pidfd::RETRY_FIRST);
                retry_deferred();
            }
            // No thread can be started now (EMFILE, EAGAIN): keep the
            // child and hand it over on the next use of brood.
            Err(_) => pidfd::DEFERRED.push(child),
        }
    }
}

/// Somebody is interested in `child`'s exit (pid `pid`) and may look for it
/// in the exit cell without asking the kernel: a wait future (which may
/// leave its waker behind), an orphan, a handle. On the SIGCHLD path
/// (`pidfd` is `None`) the child is marked watched, so that the dispatcher's
/// blind scans ask it from now on, and checked once now if one of them
/// skipped it ([`table::Table::watch`]). Nothing on the pidfd path, which
/// announces no exit nobody waits for.
pub(crate) fn follow_exit<T: Tracked + Send + Sync + 'static>(
    pid: u32,
    child: &Arc<T>,
    pidfd: Option<&LazyPidfd>,
) {
    if pidfd.is_none() {
        let _ = LIVE.watch(pid, entry_key(child));
    }
}

/// A wait on `child`'s exit is about to park on the SIGCHLD path (`pidfd`
/// is `None`): from now on exits reach it through the current runtime's
/// listener ([`listener`]). Nothing on the pidfd path, where the wait
/// reaps its own child.
pub(crate) fn listen_here(pidfd: Option<&LazyPidfd>) {
    if pidfd.is_none() {
        listener::listen_here();
    }
}

/// `child` (pid `pid`) was dropped unreaped. On the SIGCHLD path (`pidfd`
/// is `None`) its exit must be collected whether or not any runtime runs,
/// so exits go to the background thread until it is reaped
/// ([`table::Table::pin`]); records a listener holds unread are served now.
/// Call before the last attempt to reap it.
pub(crate) fn orphaned<T: Tracked + Send + Sync + 'static>(
    pid: u32,
    child: &Arc<T>,
    pidfd: Option<&LazyPidfd>,
) {
    if pidfd.is_some() {
        return;
    }
    if LIVE.pin(pid, entry_key(child)) {
        Route::want_thread();
        if serve::unserved() {
            if let Some(bg) = background::try_get() {
                bg.wake_to_dispatch();
            }
        }
    }
}

/// `child` as the table of live children knows it: the address its entry
/// is compared with.
fn entry_key<T: Tracked + Send + Sync + 'static>(child: &Arc<T>) -> *const TrackedChild {
    let child: *const T = Arc::as_ptr(child);
    child
}

/// Hands deferred children to the background thread if it can run now.
/// Costs one atomic load when there are none.
fn retry_deferred() {
    if pidfd::DEFERRED.is_empty() {
        return;
    }
    if let Ok(bg) = background::get() {
        for child in pidfd::DEFERRED.take() {
            bg.watch_pidfd(child, pidfd::RETRY_FIRST);
        }
    }
}

/// Drops a reaped child from the table of live children (if the entry for
/// `pid` is still this child).
pub(crate) fn forget(pid: u32, child: *const TrackedChild) {
    if LIVE.forget(pid, child) {
        Route::unwant_thread();
    }
}

/// A zombie the SIGCHLD dispatcher had left in place was collected: asks for
/// one more dispatch, so that what its peek could not see past it (orphans
/// adopted in subreaper mode) is found now. One wake-up of the background
/// thread, and nothing when the SIGCHLD watcher is not in use.
pub(crate) fn dispatch_again() {
    if let Some(bg) = background::try_get() {
        bg.dispatch_again();
    }
}

/// Sends the final SIGKILL of stop `stop` after `grace`, from the
/// background thread ([`Tracked::final_kill`]), and keeps calling it (1 ms
/// apart, doubling to 50 ms) until it says the stop is over.
pub(crate) fn kill_after<T: Tracked + Send + Sync + 'static>(
    child: &Arc<T>,
    grace: Duration,
    stop: u64,
) -> io::Result<()> {
    background::get()?.add_timer(
        Instant::now() + grace,
        Action::Kill(child.clone(), stop, timers::KILL_RETRY_FIRST),
    );
    Ok(())
}

/// Starts the background thread unless it runs: for work that must not
/// find it missing later (a contained child's change watch).
pub(crate) fn ensure_background() -> io::Result<()> {
    background::get().map(drop)
}

/// Watches `item` on the background thread from now on; see
/// [`Changes`]. The thread drops it once [`Changes::changed`] says so.
pub(crate) fn watch_changes<T: Changes + Send + Sync + 'static>(item: &Arc<T>) -> io::Result<()> {
    let item: Arc<changes::ChangeItem> = item.clone();
    background::get()?.watch_changes(item)
}

/// Runs `job` on the background thread as soon as it gets to it: for work
/// that may block for a moment and must not block the caller (a task, or
/// a `Drop`).
pub(crate) fn run_in_background(job: impl FnOnce() + Send + 'static) -> io::Result<()> {
    background::get()?.add_timer(Instant::now(), Action::Job(Box::new(job)));
    Ok(())
}

/// Entries in the background thread's timer heap, for tests.
#[cfg(feature = "test-hooks")]
pub(crate) fn pending_timers() -> usize {
    background::try_get().map_or(0, |bg| bg.pending_timers())
}

/// Dispatches that scanned because the peek was blind to exits behind an
/// announced zombie of ours, for tests.
#[cfg(feature = "test-hooks")]
pub(crate) fn blind_scans() -> u64 {
    sigchld::blind_scans()
}

/// SIGCHLD dispatch rounds run on the background thread and elsewhere (by
/// the runtimes' listeners), for tests.
#[cfg(feature = "test-hooks")]
pub(crate) fn dispatch_rounds() -> (u64, u64) {
    serve::rounds()
}

/// The number of live children brood is tracking, for tests.
#[cfg(feature = "test-hooks")]
pub(crate) fn tracked_children() -> usize {
    LIVE.len()
}
