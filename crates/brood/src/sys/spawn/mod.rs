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
//! Owns nothing itself: it picks the files for this platform. Calls the
//! files below.

// What the child image holds is read only by Linux's vehicles; the
// stand-in elsewhere takes it and reads nothing.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod image;
mod placement;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod types;

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
pub(crate) use types::{borrow_command_fd, Choice, Vehicle};
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::{spawn, Support, SUPPORT};
