//! What brood's own spawn hands back, and how its vehicle is chosen: the
//! items every platform's spawn shares.
//!
//! Owns: [`Vehicle`], [`Choice`], [`Spawned`], [`borrow_command_fd`]. Calls
//! nothing.

use std::os::fd::{BorrowedFd, OwnedFd};

/// How a child was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vehicle {
    /// clone3 with `CLONE_VM | CLONE_VFORK` (and `CLONE_INTO_CGROUP` for a
    /// cgroup).
    Clone3,
    /// std's fork path (the fallback).
    Fork,
}

/// Which vehicle to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// clone3 where it works, else fork.
    Auto,
    /// fork, even where clone3 would work (for tests and measurements).
    #[cfg_attr(not(test), allow(dead_code))]
    Fork,
}

/// A spawned child.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: u32,
    /// From birth with clone3; opened right after the fork otherwise, and
    /// `None` only if `pidfd_open` is unavailable. Close-on-exec either way.
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) vehicle: Vehicle,
}

/// Borrows descriptor `fd`, which `owner`'s standard-stream configuration
/// holds open (as its `{:#?}` output named it), for as long as `owner` is
/// borrowed.
///
/// The descriptor can only be closed by replacing or dropping that
/// configuration, which takes `&mut` or ownership of `owner`. That the
/// number is the one `owner` holds is the classifier's promise (see
/// `crate::spawn::std_shape`), checked against known descriptors before
/// the classifier is trusted; if it were wrong, the child would get a wrong
/// descriptor, not the parent an unsound one.
/// `None` for a negative number, which no descriptor has.
pub(crate) fn borrow_command_fd(_owner: &std::process::Command, fd: i32) -> Option<BorrowedFd<'_>> {
    // SAFETY: see the function's documentation: `fd` is open for as long
    // as `owner` is borrowed, and it is not -1.
    (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}
