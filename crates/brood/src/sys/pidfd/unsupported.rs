//! Stand-ins for pidfds where the system has none (everything but Linux).
//!
//! The pidfd exit watcher is never chosen here ([`probe`] fails), so only
//! [`SUPPORTED`] and [`probe`] are reached at run time; the others exist so
//! that callers compile without a `cfg` of their own.
//!
//! Owns nothing. Calls nothing.

use crate::sys::process::RawRusage;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::process::ExitStatus;

/// Whether this platform has pidfds at all.
pub(crate) const SUPPORTED: bool = false;

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "pidfds exist only on Linux")
}

/// Stand-in for `pidfd_open(2)`.
pub(crate) fn open(pid: u32) -> io::Result<OwnedFd> {
    let _ = pid;
    Err(unsupported())
}

/// Stand-in for `pidfd_send_signal(2)`.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    let _ = (pidfd, signal);
    Err(unsupported())
}

/// Stand-in for `waitid(P_PIDFD)`.
pub(crate) fn waitid(
    pidfd: BorrowedFd<'_>,
    nohang: bool,
) -> io::Result<Option<(ExitStatus, RawRusage)>> {
    let _ = (pidfd, nohang);
    Err(unsupported())
}

/// Stand-in for `waitid(P_PIDFD, WNOWAIT)`.
pub(crate) fn peek_exit(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
    let _ = pidfd;
    Err(unsupported())
}

/// pidfds cannot be used here.
pub(crate) fn probe() -> io::Result<()> {
    Err(unsupported())
}
