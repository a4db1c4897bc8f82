//! Subreaper mode: adopting and reaping orphaned descendants.
//!
//! Owns nothing. Calls: `sys` (the `prctl`), `reaper` (adoption).

use crate::reaper;
use crate::sys;
use std::io;

/// Makes this process a *child subreaper* (`PR_SET_CHILD_SUBREAPER`): when a
/// descendant's parent dies, the descendant is re-parented to this process
/// instead of to init. From then on brood reaps such adopted orphans promptly
/// when they exit, so a supervisor built on brood leaves no zombies behind
/// even when its children daemonise or abandon their own children.
///
/// brood never takes the status of a child it spawned and is still tracking:
/// those are reaped only through their [`Child`](crate::Child) or
/// [`ChildHandle`](crate::ChildHandle).
///
/// Turning this on installs brood's SIGCHLD handler and starts its background
/// thread, whichever reaper strategy is in use: re-parented orphans have no
/// pidfd, so SIGCHLD is the only way to hear of them.
///
/// # The rule for `std::process` children
///
/// In a subreaper process, brood reaps **every** exited child it did not
/// spawn, because the kernel cannot tell an adopted orphan from a child the
/// program spawned itself. A child spawned with `std::process::Command` in
/// such a process may therefore be reaped by brood, and its
/// `std::process::Child::wait` then fails with `ECHILD`. Spawn children
/// through brood (which is compatible with `tokio::process`) in a process
/// that calls this function.
///
/// Linux only; elsewhere it fails with [`io::ErrorKind::Unsupported`].
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// brood::become_subreaper()?;
/// // A child that daemonises: its grandchild is re-parented to us and,
/// // when it exits, reaped by brood.
/// brood::Command::new("sh").args(["-c", "sleep 1 &"]).status().await?;
/// # Ok(()) }
/// ```
pub fn become_subreaper() -> io::Result<()> {
    // Fails with `Unsupported` off Linux.
    sys::process::set_child_subreaper()?;
    reaper::adopt_orphans()
}
