//! The cgroup v2 layer behind containment (`Containment::Cgroup`): one
//! fresh cgroup per contained child, through which its whole tree is
//! stopped, waited for and accounted, however its members detached.
//!
//! - [`discover`]: the cgroup2 mount (`/proc/self/mountinfo`) and the cgroup
//!   this process runs in (`/proc/self/cgroup`).
//! - [`CgroupParent`]: a validated directory to create per-child cgroups in,
//!   and the sweep of stale ones.
//! - [`ChildCgroup`]: one per-child cgroup, with the descriptors a spawn
//!   needs, its members, the stop primitives and its figures.
//! - [`PopulatedWatch`]: waiting for `populated 0` through the reactor or
//!   brood's background thread.
//!
//! # Where the per-child cgroups go
//!
//! By default directly below the cgroup this process runs in (under systemd
//! with `Delegate=yes`, that is the delegated subtree; on a machine without
//! systemd it may be the hierarchy's root). cgroup v2's "no internal
//! processes" rule forbids a non-root cgroup to both hold processes and
//! enable domain controllers (memory, io) for its children, and the kernel
//! enforces it from both sides: it refuses to enable a controller in
//! `cgroup.subtree_control` while the cgroup has processes, and refuses to
//! place a process in a cgroup that has controllers enabled there. Our own
//! cgroup holds this process, so it has no controllers enabled for
//! children, and therefore:
//!
//! - creating and populating children there always works where we may
//!   write: no state of our own cgroup can refuse it;
//! - those children get no domain controllers, only the core files:
//!   `cgroup.events`, `cgroup.freeze`, `cgroup.kill` and the `usage_usec`,
//!   `user_usec` and `system_usec` of `cpu.stat`, which is all containment
//!   needs. `memory.peak` is absent, so peak memory is `None`.
//!
//! brood does not move the program's own process into a leaf to make room
//! for controllers (as systemd does with a service's "main" cgroup): a
//! library must not change where its host runs. A program that wants
//! `memory.peak` arranges it and passes the parent explicitly: its own
//! process in `C/main`, `+memory` in `C/cgroup.subtree_control` and in
//! `C/jobs/cgroup.subtree_control`, and `cgroup_parent("C/jobs")`.
//!
//! A parent given explicitly is validated by [`CgroupParent::open`]: it must
//! exist, be on cgroup2, be a `domain` cgroup (a child of a `threaded` or
//! `domain threaded` cgroup starts `domain invalid` and cannot hold a
//! process), be writable, and allow this process to move processes below
//! it (write permission on the common ancestor's `cgroup.procs`).
//!
//! # Names and stale cgroups
//!
//! A per-child cgroup is named `brood-<pidns>-<pid>-<start>-<seq>` (see
//! [`name`]). The first time a process creates a cgroup in a directory, it
//! removes the *empty* cgroups there whose name is brood's and whose creator
//! is gone: same pid namespace, and no process with that pid or one with a
//! different start time. Everything else is left alone.
//!
//! # Stop primitives
//!
//! [`ChildCgroup::signal_members`] freezes the cgroup, signals every member
//! through a pidfd verified against a second listing, and thaws it:
//! no member forks past the signal, and no signal reaches a recycled pid.
//! [`ChildCgroup::kill`] writes `cgroup.kill`, which also reaches processes
//! forked after the first stop. Grace periods and timers are the caller's.

pub(crate) mod child;
pub(crate) mod discover;
pub(crate) mod events;
pub(crate) mod name;
pub(crate) mod parent;
pub(crate) mod usage;

#[cfg(test)]
mod tests;

pub(crate) use child::{ChildCgroup, Signalled};
pub(crate) use events::{AsyncPopulatedWatch, PopulatedWatch};
pub(crate) use parent::CgroupParent;
pub(crate) use usage::CgroupUsage;
