//! `ChildHandle`: the shareable side of a child.
//!
//! Owns: [`ChildHandle`]. Calls: `contain`, `shared`, `wait`, `waiters` (its slot).

use super::contain;
use super::shared::Shared;
use super::wait::wait_exit;
use super::waiters::OwnerSlot;
use crate::containment::{Containment, TreeUsage};
use crate::rusage::ResourceUsage;
use crate::signal::Signal;
use crate::sync::Arc;
use std::fmt;
use std::io;
use std::process::ExitStatus;

/// A cloneable, `Send + Sync` handle to a child, from [`Child::handle`](crate::Child::handle).
///
/// Any number of tasks can [`wait`](ChildHandle::wait) on it at once and all
/// receive the status. Waiting works whether or not the `Child` itself is
/// ever awaited, and after it was dropped: brood's background reaper collects
/// the exit and reports it to every handle.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let child = brood::Command::new("sleep").arg("1").spawn()?;
/// let handle = child.handle();
/// let watcher = tokio::spawn({
///     let handle = handle.clone();
///     async move { handle.wait().await }
/// });
/// handle.signal(brood::Signal::TERM)?;
/// let status = watcher.await.unwrap()?;
/// # Ok(()) }
/// ```
pub struct ChildHandle {
    shared: Arc<Shared>,
    /// This handle's waker slot, kept between `wait()` futures; a clone
    /// gets its own.
    slot: OwnerSlot,
}

impl Clone for ChildHandle {
    fn clone(&self) -> Self {
        ChildHandle::new(self.shared.clone())
    }
}

impl Drop for ChildHandle {
    fn drop(&mut self) {
        self.shared.cell.drop_owner(&self.slot);
    }
}

impl fmt::Debug for ChildHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildHandle")
            .field("pid", &self.shared.pid())
            .field("exit", &self.shared.cell.get())
            .finish()
    }
}

impl ChildHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.follow_exit();
        ChildHandle {
            shared,
            slot: OwnerSlot::new(),
        }
    }

    /// The child's pid. Unlike [`Child::id`](crate::Child::id) this stays
    /// available after the exit, for logging; do not signal it by number.
    pub fn id(&self) -> u32 {
        self.shared.pid()
    }

    /// Sends a signal to the child; a no-op returning `Ok(())` once it has
    /// been reaped. See [`Child::signal`](crate::Child::signal).
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        self.shared.signal(signal)
    }

    /// Sends a signal to the child's process group. See
    /// [`Child::signal_group`](crate::Child::signal_group).
    pub fn signal_group(&self, signal: Signal) -> io::Result<()> {
        self.shared.signal_group(signal)
    }

    /// Waits for the child to exit. Every waiter gets the status.
    ///
    /// Cancel-safe, wake-up included: a future dropped while pending leaves
    /// its waker with this handle (the last one dropped), so a task that
    /// polls a fresh `wait()` each time is still woken. Concurrent waits on
    /// one handle each keep their own slot while they are pending.
    ///
    /// While a wait is pending, brood collects the exit as soon as it
    /// happens; see [`Child::id`](crate::Child::id).
    #[must_use = "the child is waited for only when the returned future is awaited; \
                  its result says how the child ended"]
    pub async fn wait(&self) -> io::Result<ExitStatus> {
        wait_exit(&self.shared, &self.slot, false).await.status()
    }

    /// The child's resource usage, once it has been reaped (for example
    /// after `Child::wait_with_output`, which consumes the `Child`).
    pub fn resource_usage(&self) -> Option<ResourceUsage> {
        self.shared.cell.get().and_then(|exit| exit.usage())
    }

    /// How the child's tree is contained; see
    /// [`Child::containment`](crate::Child::containment).
    pub fn containment(&self) -> Option<Containment> {
        contain::containment(&self.shared)
    }

    /// The live pids in the child's containment; see
    /// [`Child::members`](crate::Child::members).
    pub fn members(&self) -> io::Result<Vec<u32>> {
        contain::members(&self.shared)
    }

    /// Waits until the child has exited and no member of its tree is left;
    /// see [`Child::wait_tree`](crate::Child::wait_tree). Cancel-safe; every
    /// waiter gets the status.
    #[must_use = "the tree is waited for only when the returned future is awaited; \
                  its result says how the leader ended"]
    pub async fn wait_tree(&self) -> io::Result<ExitStatus> {
        let exit = wait_exit(&self.shared, &self.slot, false).await;
        contain::tree_gone(&self.shared, None).await?;
        exit.status()
    }

    /// What the child's whole tree used; see
    /// [`Child::tree_usage`](crate::Child::tree_usage).
    pub fn tree_usage(&self) -> Option<TreeUsage> {
        contain::tree_usage(&self.shared)
    }

    /// The status if the child has exited and brood knows it: reaped
    /// already, or known to be a zombie (then this collects it). Never
    /// blocks, and makes no system call while no exit is known; it does not
    /// ask the kernel itself (use [`Child::try_wait`](crate::Child::try_wait)
    /// or [`ChildHandle::wait`] for that).
    pub fn status(&self) -> Option<io::Result<ExitStatus>> {
        self.shared.status_if_exited().map(|exit| exit.status())
    }
}
