//! Stand-ins for brood's own spawn where there are no cgroups (everything
//! but Linux).
//!
//! brood's spawn exists to start a child inside a cgroup, so nothing asks
//! for it here: `Containment::Cgroup` fails with `Unsupported` before any
//! spawn, and `Auto` means `Group`, which std's spawn serves. The items
//! exist so that callers compile without a `cfg` of their own.
//!
//! Owns: [`Support`], [`SUPPORT`], [`spawn`]. Calls nothing.

use super::image::ChildImage;
use super::types::{Choice, Spawned};
use std::io;
use std::os::fd::BorrowedFd;

/// Nothing to learn: clone3 does not exist here.
#[derive(Debug)]
pub(crate) struct Support;

/// The process-wide record.
pub(crate) static SUPPORT: Support = Support::new();

impl Support {
    pub(crate) const fn new() -> Support {
        Support
    }

    /// clone3 is never available here.
    pub(crate) fn known_unavailable(&self, cgroup: bool) -> bool {
        let _ = cgroup;
        true
    }
}

/// Stand-in for brood's spawn: cgroups, its reason to exist, are Linux's.
pub(crate) fn spawn(
    image: &ChildImage,
    cgroup: Option<BorrowedFd<'_>>,
    support: &Support,
    choice: Choice,
) -> io::Result<Spawned> {
    let _ = (image, cgroup, support, choice);
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "brood: its own spawn places children in cgroups, which only Linux has",
    ))
}
