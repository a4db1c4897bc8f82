//! What the reaper needs from a child it tracks, and nothing more.
//!
//! The reaper (the table of live children, SIGCHLD dispatch, the background
//! thread's pidfd watch list, the timers) holds children as
//! `Arc<`[`TrackedChild`]`>` and asks them only what [`Tracked`] offers. The
//! child layer implements the trait; the reaper never names the type that
//! does, so dependencies point one way: from the child down to the reaper.
//!
//! Owns: [`Tracked`], [`Reap`]. Calls nothing.

use std::os::fd::BorrowedFd;

/// The outcome of asking a tracked child whether it exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reap {
    /// This call collected the exit.
    Fresh,
    /// The child had been reaped before (the entry is stale).
    Already,
    /// The child is still running.
    Running,
    /// The child has exited, but nobody asked for its exit: its zombie is
    /// left for its owner, who may collect it with a `waitpid` of its own.
    /// The zombie keeps its pid, and the `WNOWAIT` peek keeps naming it.
    Announced,
}

/// What the reaper may ask of a child it tracks.
pub(crate) trait Tracked {
    /// The child may have exited (a SIGCHLD named it, a peek found it, its
    /// pidfd turned readable, or a scan asks). If somebody asked for its exit
    /// (a parked waiter, or its `Child` is gone), reaps it and publishes the
    /// exit: one wait call, made under the child's own lock, so that a child
    /// is reaped exactly once whoever asks. Otherwise looks without reaping
    /// (`WNOWAIT`, one call) and, if it exited, announces it
    /// ([`Reap::Announced`]) and leaves the zombie; an announced child costs
    /// no further call. On the pidfd path this opens the child's pidfd first
    /// if it is not open yet.
    fn notice(&self) -> Reap;

    /// The child's pidfd, once one is open (pidfd path only), for the
    /// background thread's watch list. [`Tracked::notice`] opens it.
    fn pidfd(&self) -> Option<BorrowedFd<'_>>;

    /// Sends the final SIGKILL of stop `stop` (a number the child gave
    /// [`kill_after`](super::kill_after)): to the child's tree if it is
    /// contained, to its process group if it leads one (its leader held
    /// unreaped, so that the group cannot have been recycled), otherwise to
    /// the child unless it was reaped. Returns whether the stop is over;
    /// if not (a group's live members are still dying), the reaper calls
    /// again after a growing delay.
    fn final_kill(&self, stop: u64) -> bool;
}

/// How the reaper holds a tracked child: shared with the child layer, and
/// usable from the background thread.
pub(crate) type TrackedChild = dyn Tracked + Send + Sync;
