//! The OS side of one child: its pid and, on the pidfd path, its pidfd.
//!
//! Waiting and signalling go through the pidfd when there is one, and fall
//! back to the pid when no descriptor is left for it (`EMFILE`, `ENFILE`).
//! Both are safe by pid for the same reason: callers hold the child's
//! exit-cell lock and know it is unreaped (the `Wait` and `Kill` contracts),
//! so the pid cannot have been recycled.
//!
//! Owns: [`Process`]. Calls: `exit` (the traits), `reaper::LazyPidfd`, `sys`.

use super::exit::{Kill, Wait};
use crate::reaper::LazyPidfd;
use crate::rusage::ResourceUsage;
use crate::sys;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::process::ExitStatus;

/// A child's pid and, on the pidfd path, its lazily opened pidfd.
#[derive(Debug)]
pub(crate) struct Process {
    pid: u32,
    /// `Some` on the pidfd path.
    pidfd: Option<LazyPidfd>,
}

impl Process {
    /// A child watched through SIGCHLD: known by pid alone.
    pub(crate) fn by_pid(pid: u32) -> Self {
        Process { pid, pidfd: None }
    }

    /// A child watched through a pidfd, opened on first use.
    pub(crate) fn with_pidfd(pid: u32) -> Self {
        Process {
            pid,
            pidfd: Some(LazyPidfd::new()),
        }
    }

    /// A child watched through a pidfd it was born with (brood's own spawn).
    pub(crate) fn with_open_pidfd(pid: u32, pidfd: OwnedFd) -> Self {
        Process {
            pid,
            pidfd: Some(LazyPidfd::opened(pidfd)),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The pidfd watcher's state for this child (pidfd path only).
    pub(crate) fn pidfd(&self) -> Option<&LazyPidfd> {
        self.pidfd.as_ref()
    }

    /// The pidfd, opening it if needed. `Ok(None)`: not the pidfd path.
    ///
    /// Callers hold the exit cell's lock and know the child is unreaped, so
    /// `pid` still names our child.
    pub(crate) fn open_pidfd(&self) -> io::Result<Option<BorrowedFd<'_>>> {
        match &self.pidfd {
            Some(pidfd) => pidfd.open(self.pid).map(Some),
            None => Ok(None),
        }
    }
}

impl Wait for Process {
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
        match self.open_pidfd() {
            Ok(Some(pidfd)) => {
                return Ok(sys::pidfd::waitid(pidfd, true)?
                    .map(|(status, raw)| (status, ResourceUsage::from_raw(&raw))));
            }
            Ok(None) => {}
            // Descriptors ran out: the pidfd cannot be opened now, but the
            // pid is safe to use by number.
            Err(e) if sys::errno::out_of_resources(&e) => {}
            Err(e) => return Err(e),
        }
        // Safe by pid only because callers hold the exit cell's lock and the
        // child is unreaped, so the pid still names our child.
        Ok(sys::process::wait4(self.pid, true)?
            .map(|(status, raw)| (status, ResourceUsage::from_raw(&raw))))
    }

    fn peek(&self) -> io::Result<Option<ExitStatus>> {
        match self.open_pidfd() {
            Ok(Some(pidfd)) => return sys::pidfd::peek_exit(pidfd),
            Ok(None) => {}
            Err(e) if sys::errno::out_of_resources(&e) => {}
            Err(e) => return Err(e),
        }
        // As in `try_wait`: unreaped under the lock, so the pid is ours.
        sys::process::peek_exit(self.pid)
    }
}

impl Kill for Process {
    fn kill(&self, signal: i32) -> io::Result<()> {
        match self.open_pidfd() {
            Ok(Some(pidfd)) => return sys::pidfd::send_signal(pidfd, signal),
            Ok(None) => {}
            Err(e) if sys::errno::out_of_resources(&e) => {}
            Err(e) => return Err(e),
        }
        // As in `try_wait`: unreaped under the lock, so the pid is ours.
        sys::process::kill(self.pid, signal)
    }
}
