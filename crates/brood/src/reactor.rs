//! brood's use of the Tokio reactor: registrations happen only inside a
//! runtime, and a runtime without IO is an error, not a panic.
//!
//! Pipes, the pidfd exit watcher and `watch_pid` register descriptors
//! through here. Owns nothing. Calls: `sys::async_fd`, which makes the
//! registration itself (the one `unsafe` step: the reactor refers to a
//! descriptor by number).

use crate::sys::async_fd::{self, Registration};
use std::io;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Fails unless called inside a Tokio runtime.
pub(crate) fn in_runtime() -> io::Result<()> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| {
            io::Error::other(
                "brood: child pipes and exit watchers must be polled inside a Tokio runtime",
            )
        })
}

/// Registers an owned descriptor with the current Tokio runtime's reactor;
/// the `AsyncFd` owns it from then on. Fails (rather than panicking) when
/// there is no runtime or its IO driver is disabled.
pub(crate) fn register_owned(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    in_runtime()?;
    io_enabled(|| async_fd::register_owned(fd, interest))
}

/// Registers the descriptor behind `slot` with the current Tokio runtime's
/// reactor. Fails (rather than panicking) when there is no runtime or its IO
/// driver is disabled.
pub(crate) fn register(slot: &mut Registration<'_>, interest: Interest) -> io::Result<()> {
    in_runtime()?;
    io_enabled(|| slot.register(interest))
}

/// Runs a registration, which panics when the runtime has IO disabled;
/// reports that as an error instead.
fn io_enabled<T>(register: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(register)).map_err(|_| {
        io::Error::other(
            "brood: the Tokio runtime has IO disabled; build it with enable_io() or enable_all()",
        )
    })?
}
