//! Handing descriptors to Tokio's reactor: the `unsafe` part only.
//!
//! `AsyncFd::register_with_interest` is `unsafe` because the reactor refers
//! to a descriptor by number: it must stay open, and the same, for as long
//! as the registration lives. This module upholds that in two shapes: a
//! registration that owns its descriptor ([`register_owned`]), and a
//! descriptor with a slot for a registration that never outlives it
//! ([`RegistrableFd`]). Everything else about the reactor (runtime checks,
//! errors, readiness loops) is safe code in `crate::reactor` and its callers.
//!
//! Owns: [`RegistrableFd`]. Calls: Tokio's `AsyncFd`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers an owned descriptor with the current Tokio runtime's reactor;
/// the `AsyncFd` owns it from then on.
///
/// Panics as Tokio does when there is no runtime or its IO driver is
/// disabled; `crate::reactor` checks the first and catches the second.
pub(crate) fn register_owned(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor
    // stays open, and the same, exactly as long as the registration.
    let registered = unsafe { AsyncFd::register_with_interest(fd, interest) };
    registered.map_err(|e| e.into_parts().1)
}

/// A descriptor number, for a registration whose descriptor is owned
/// elsewhere (see [`RegistrableFd`]). Only this module can make one.
#[derive(Debug)]
pub(crate) struct FdNumber(RawFd);

impl AsRawFd for FdNumber {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// An owned descriptor that can be registered with a Tokio reactor while it
/// is also used directly (a pidfd: waited on and signalled by number, and
/// awaited in the reactor).
///
/// The registration refers to the descriptor by number, so it must never
/// outlive it: `slot` is declared before `fd` and therefore dropped (and
/// deregistered) first, and a registration is only ever made, borrowed or
/// dropped in place, never handed out by value. That is the invariant the
/// `unsafe` below relies on, and it is local to this type.
#[derive(Debug)]
pub(crate) struct RegistrableFd {
    slot: Mutex<Option<AsyncFd<FdNumber>>>,
    fd: OwnedFd,
}

impl RegistrableFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        RegistrableFd {
            slot: Mutex::new(None),
            fd,
        }
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Locks the registration slot.
    pub(crate) fn registration(&self) -> Registration<'_> {
        Registration {
            // The critical sections never panic half-way; a poisoned lock
            // still holds a consistent registration.
            slot: self.slot.lock().unwrap_or_else(PoisonError::into_inner),
            fd: self.fd.as_raw_fd(),
        }
    }
}

/// The locked registration slot of a [`RegistrableFd`].
pub(crate) struct Registration<'a> {
    slot: MutexGuard<'a, Option<AsyncFd<FdNumber>>>,
    fd: RawFd,
}

impl Registration<'_> {
    /// Whether the descriptor is registered with a reactor.
    pub(crate) fn is_registered(&self) -> bool {
        self.slot.is_some()
    }

    /// The registration, if there is one.
    pub(crate) fn get(&self) -> Option<&AsyncFd<FdNumber>> {
        self.slot.as_ref()
    }

    /// Registers the descriptor with the current Tokio runtime's reactor,
    /// replacing any earlier registration.
    ///
    /// Panics as Tokio does when there is no runtime or its IO driver is
    /// disabled; `crate::reactor` checks the first and catches the second.
    pub(crate) fn register(&mut self, interest: Interest) -> io::Result<()> {
        *self.slot = None;
        // SAFETY: the registration is stored in the slot of the
        // `RegistrableFd` that owns `self.fd`; the slot is dropped before
        // the descriptor (field order) and the registration is never moved
        // out of it (see the type's invariant).
        let registered = unsafe { AsyncFd::register_with_interest(FdNumber(self.fd), interest) };
        *self.slot = Some(registered.map_err(|e| e.into_parts().1)?);
        Ok(())
    }

    /// Drops the registration (`EPOLL_CTL_DEL` in the reactor).
    pub(crate) fn deregister(&mut self) {
        *self.slot = None;
    }
}
