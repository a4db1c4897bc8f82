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
}

/// What the reaper may ask of a child it tracks.
pub(crate) trait Tracked {
    /// Reaps the child if it has exited and publishes the exit to its
    /// waiters: one wait call, made under the child's own lock, so that a
    /// child is reaped exactly once whoever asks. On the pidfd path this
    /// opens the child's pidfd first if it is not open yet.
    fn reap(&self) -> Reap;

    /// The child's pidfd, once one is open (pidfd path only), for the
    /// background thread's watch list. [`Tracked::reap`] opens it.
    fn pidfd(&self) -> Option<BorrowedFd<'_>>;

    /// Sends the final SIGKILL of a graceful stop: to the child's process
    /// group if it leads one (even after the leader exited, so that
    /// grandchildren which ignored SIGTERM do not survive), otherwise to the
    /// child unless it was reaped.
    fn final_kill(&self);
}

/// How the reaper holds a tracked child: shared with the child layer, and
/// usable from the background thread.
pub(crate) type TrackedChild = dyn Tracked + Send + Sync;
