//! `ChildHandle`: the shareable side of a child.
//!
//! Owns: [`ChildHandle`]. Calls: `contain`, `shared`, `wait`.

use super::contain;
use super::shared::Shared;
use super::wait::wait_exit;
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
#[derive(Clone)]
pub struct ChildHandle {
    shared: Arc<Shared>,
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
        ChildHandle { shared }
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

    /// Waits for the child to exit. Cancel-safe; every waiter gets the status.
    pub async fn wait(&self) -> io::Result<ExitStatus> {
        wait_exit(&self.shared, false).await.status()
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
    pub async fn wait_tree(&self) -> io::Result<ExitStatus> {
        let exit = wait_exit(&self.shared, false).await;
        contain::tree_gone(&self.shared, None).await?;
        exit.status()
    }

    /// What the child's whole tree used; see
    /// [`Child::tree_usage`](crate::Child::tree_usage).
    pub fn tree_usage(&self) -> Option<TreeUsage> {
        contain::tree_usage(&self.shared)
    }

    /// The status if the child has been reaped already; never blocks and never
    /// reaps.
    pub fn status(&self) -> Option<io::Result<ExitStatus>> {
        self.shared.cell.get().map(|exit| exit.status())
    }
}
