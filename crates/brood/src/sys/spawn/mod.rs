//! brood's own spawn primitive: a child placed in a cgroup from its first
//! instruction, with a pidfd from birth, without copying a large parent.
//! Used only for children contained in a cgroup (`Containment::Cgroup`);
//! every other spawn goes through std's `posix_spawn`.
//!
//! [`spawn`] takes a [`ChildImage`] (everything the child does, prepared and
//! allocated by the parent) and creates the child with one of two vehicles
//! (Linux, `linux.rs`):
//!
//! - `clone3.rs`: `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD |
//!   CLONE_CLEAR_SIGHAND [| CLONE_INTO_CGROUP])` on x86-64 and aarch64. The
//!   parent's CPU cost does not grow with its memory.
//! - `fork.rs`: std's fork path with the same child routine (`child.rs`,
//!   raw system calls from `raw.rs`) in a `pre_exec` hook, which moves the
//!   child into its cgroup through `cgroup.procs` before anything else. Used
//!   when clone3 is unavailable.
//!
//! Off Linux (`unsupported.rs`) there are no cgroups, so nothing asks for
//! this spawn; its stand-in fails with `Unsupported`.
//!
//! Also here, on every platform: the prepared child image (`image.rs`) and
//! the placement hook for commands that must go through std's own spawn
//! (`placement.rs`).
//!
//! Owns: [`Vehicle`], [`Choice`], [`Spawned`], `borrow_command_fd`. Calls:
//! `errno`, `fd`, `pidfd`.

mod image;
mod placement;

#[cfg(target_os = "linux")]
mod child;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod clone3;
#[cfg(target_os = "linux")]
mod fork;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod raw;
#[cfg(all(test, target_os = "linux"))]
pub(crate) mod test_support;
#[cfg(not(target_os = "linux"))]
mod unsupported;

pub(crate) use image::{search, CStringArray, ChildImage};
#[cfg(target_os = "linux")]
pub(crate) use linux::{spawn, Support, SUPPORT};
pub(crate) use placement::{install_placement_hook, Placement};
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::{spawn, Support, SUPPORT};

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
