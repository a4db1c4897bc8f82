//! A runtime's SIGCHLD listener: the dispatch runs on the thread that is
//! already awake for the waiting task, instead of on the background thread.
//!
//! On the SIGCHLD path, an exit used to travel handler → wake pipe →
//! background thread (which dispatches) → the waiting task's runtime: two
//! threads woken per exit, one more than the pidfd path. The first wait
//! polled on the SIGCHLD path in a Tokio runtime starts a listener there: a
//! task that awaits the listeners' pipe in the runtime's own reactor and
//! dispatches when it turns readable ([`super::serve::serve`]). While a
//! listener exists and nothing wants the thread, the handler writes exits
//! to that pipe instead of the thread's (`sys::sigchld::Route`), so the
//! runtime's thread, woken by its reactor, reaps the child and wakes the
//! task itself, as on the pidfd path.
//!
//! Every listener watches the same pipe (each through a duplicate of its
//! read end, in its own runtime's reactor), so the first runtime to get to
//! it dispatches for all; that wakes tasks in other runtimes as the thread
//! did. Whoever reads a record dispatches it; the others find the pipe
//! empty and go back to sleep: one dispatch round per exit, however many
//! runtimes. A listener whose runtime is not being driven serves nothing, which
//! only delays exits that a task in that runtime waits for: that task is
//! not being polled either. What must be collected whether or not any
//! runtime runs keeps the exits on the thread ([`Route::want_thread`]):
//!
//! - an orphan, while it lives (`reaper::orphaned`);
//! - subreaper mode, for good (adopted orphans);
//! - for good, a wait polled outside any Tokio runtime, or in one whose IO
//!   driver is off: nothing would drive a listener for it.
//!
//! A listener lives as long as its runtime: it ends when the runtime shuts
//! down and drops its tasks; then the thread dispatches once, for records
//! left unread in the pipe, and once the last one has ended, the exits go
//! to the thread again.
//!
//! Owns: the listener task and the set of runtimes that have one. Calls:
//! `serve`, `background` (the hand-back), `reactor`,
//! `sys::sigchld::Route`.

use super::background;
use super::serve;
use crate::reactor;
use crate::sys::sigchld::Route;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::io::Interest;
use tokio::runtime::{Handle, Id};

/// The runtimes that have a listener.
static RUNNING: Mutex<Vec<Id>> = Mutex::new(Vec::new());
/// A wait was polled where no listener can serve it: exits stay on the
/// thread for good.
static NO_LISTENER: AtomicBool = AtomicBool::new(false);

fn running() -> MutexGuard<'static, Vec<Id>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes sure exits reach the waiting task through a listener in the
/// current runtime, starting one if it has none; or, where none can run,
/// through the thread for good. Called at a wait's first poll on the
/// SIGCHLD path; one lookup when the runtime has its listener.
pub(super) fn listen_here() {
    if NO_LISTENER.load(Ordering::Acquire) {
        return;
    }
    let Ok(runtime) = Handle::try_current() else {
        return keep_on_thread();
    };
    let id = runtime.id();
    {
        let mut running = running();
        if running.contains(&id) {
            return;
        }
        // Claimed before the start, which must not hold the lock: a
        // runtime that is shutting down drops the new task at once, and
        // its `Stopped` takes the lock. Until the listener counts, exits
        // still go to the thread.
        running.push(id);
    }
    if start(&runtime, id).is_err() {
        running().retain(|&other| other != id);
        keep_on_thread();
    }
}

/// Sends exits to the thread from now on, for good.
fn keep_on_thread() {
    if !NO_LISTENER.swap(true, Ordering::AcqRel) {
        Route::want_thread();
    }
}

/// Starts `runtime`'s listener (its id is `id`).
fn start(runtime: &Handle, id: Id) -> io::Result<()> {
    let read = serve::listeners_pipe()?.try_clone()?;
    let pipe = reactor::register_owned(read, Interest::READABLE)?;
    Route::listener_started();
    let stopped = Stopped(id);
    runtime.spawn(async move {
        let _stopped = stopped;
        let mut pids = Vec::new();
        // Fails only if the reactor is gone: the runtime is shutting down.
        while let Ok(mut ready) = pipe.readable().await {
            // Before reading: a record written after this point makes the
            // pipe readable again.
            ready.clear_ready();
            // Every listener wakes for each record, and whoever reads a
            // record dispatches it. A listener that finds the pipe empty
            // (another read it first) has nothing to do.
            pids.clear();
            if serve::read_listeners_pipe(pipe.get_ref().as_raw_fd(), &mut pids) > 0 {
                serve::serve(&pids);
            }
        }
    });
    Ok(())
}

/// Ends a listener's registration when its task is dropped.
struct Stopped(Id);

impl Drop for Stopped {
    fn drop(&mut self) {
        running().retain(|&id| id != self.0);
        Route::listener_stopped();
        // Records the handler wrote for this listener may be unread, or
        // about to be written by a handler that chose this pipe before the
        // line above: the thread dispatches once (a runtime's end is rare).
        if let Some(bg) = background::try_get() {
            bg.wake_to_dispatch();
        }
    }
}
