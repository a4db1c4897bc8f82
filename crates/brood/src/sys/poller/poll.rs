//! The poller where there are no pidfds: `poll(2)` on the wake pipe alone.
//!
//! Owns nothing (the wake pipe belongs to the caller). Calls: `fd`.

use crate::sys::fd::poll_readable;
use std::io;
use std::os::fd::RawFd;

/// A wait on the wake pipe; see the module docs of `sys::poller`.
pub(crate) struct Poller {
    wake: RawFd,
}

impl Poller {
    /// A poller for the wake pipe's read end `wake`.
    pub(crate) fn new(wake: RawFd) -> io::Result<Self> {
        Ok(Poller { wake })
    }

    /// There are no pidfds to watch here.
    pub(crate) fn watch(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let _ = (fd, token);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "brood: only the wake pipe can be watched without epoll",
        ))
    }

    /// There are no change notifications to watch here (no cgroups).
    pub(crate) fn watch_changes(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.watch(fd, token)
    }

    /// Nothing is ever watched here.
    pub(crate) fn unwatch(&self, fd: RawFd) -> io::Result<()> {
        let _ = fd;
        Ok(())
    }

    /// Waits up to `timeout_ms` (`-1`: forever) for the wake pipe. Never adds
    /// tokens. Returns whether the wake pipe was ready.
    pub(crate) fn wait(&self, tokens: &mut Vec<u64>, timeout_ms: i32) -> io::Result<bool> {
        let _ = tokens;
        poll_readable([self.wake], timeout_ms)
    }
}
