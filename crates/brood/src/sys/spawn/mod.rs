//! brood's own spawn primitive (Linux): a child placed in a cgroup from its
//! first instruction, with a pidfd from birth, without copying a large
//! parent.
//!
//! [`spawn`] takes a [`ChildImage`] (everything the child does, prepared and
//! allocated by the parent) and creates the child with one of two vehicles:
//!
//! - [`clone3`]: `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD |
//!   CLONE_CLEAR_SIGHAND [| CLONE_INTO_CGROUP])` on x86-64 and aarch64. The
//!   parent's CPU cost does not grow with its memory.
//! - [`fork`]: std's fork path with the same child routine in a `pre_exec`
//!   hook, which moves the child into its cgroup through `cgroup.procs`
//!   before anything else. Used when clone3 is unavailable.
//!
//! Whether clone3 is available is learnt from the first attempt and
//! remembered in a [`Support`] (a process-wide one, [`SUPPORT`], and private
//! ones in tests): `ENOSYS` or `EPERM` from clone3 are a denial only if
//! `clone3(NULL, 0)` confirms it (a kernel that has clone3 answers that with
//! `EINVAL`); `EINVAL` or `E2BIG` for the real call mean a kernel older than
//! the flags (5.5 for `CLONE_CLEAR_SIGHAND`, 5.7 for `CLONE_INTO_CGROUP`).
//! Transient errors (`EAGAIN`, `ENOMEM`) are returned and decide nothing.

#![cfg_attr(not(test), allow(dead_code))]

mod child;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod clone3;
mod fork;
pub(crate) mod image;
mod raw;
#[cfg(test)]
pub(crate) mod test_support;

pub(crate) use image::{search, CStringArray, ChildImage};

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

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

const UNKNOWN: u8 = 0;
const WORKS: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// What this process has learnt about clone3.
#[derive(Debug)]
pub(crate) struct Support {
    /// clone3 with `CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND`.
    clone3: AtomicU8,
    /// The same with `CLONE_INTO_CGROUP`.
    into_cgroup: AtomicU8,
    /// clone3 calls made for spawns (probes not counted), for tests.
    attempts: AtomicU64,
}

/// The process-wide record.
pub(crate) static SUPPORT: Support = Support::new();

impl Support {
    pub(crate) const fn new() -> Support {
        Support {
            clone3: AtomicU8::new(UNKNOWN),
            into_cgroup: AtomicU8::new(UNKNOWN),
            attempts: AtomicU64::new(0),
        }
    }

    /// How many spawns tried clone3.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn clone3_attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Whether clone3 is known to be unusable (for a cgroup spawn if
    /// `cgroup`).
    pub(crate) fn known_unavailable(&self, cgroup: bool) -> bool {
        if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            return true;
        }
        self.clone3.load(Ordering::Relaxed) == UNAVAILABLE
            || (cgroup && self.into_cgroup.load(Ordering::Relaxed) == UNAVAILABLE)
    }

    /// Records what an errno from a clone3 spawn says about support, and
    /// whether to fall back to fork for this spawn.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    fn learn_from(&self, errno: i32, cgroup: bool) -> bool {
        match errno {
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            libc::ENOSYS | libc::EPERM if clone3::denied() => {
                self.clone3.store(UNAVAILABLE, Ordering::Relaxed);
                true
            }
            libc::EINVAL | libc::E2BIG => {
                // Our arguments are valid for Linux 5.7; only an older
                // kernel rejects them. With a cgroup, CLONE_INTO_CGROUP
                // (5.7) is the newest flag, so that is what is missing;
                // uncontained spawns find out about CLONE_CLEAR_SIGHAND
                // (5.5) for themselves.
                if cgroup {
                    self.into_cgroup.store(UNAVAILABLE, Ordering::Relaxed);
                } else {
                    self.clone3.store(UNAVAILABLE, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    fn learn_works(&self, cgroup: bool) {
        self.clone3.store(WORKS, Ordering::Relaxed);
        if cgroup {
            self.into_cgroup.store(WORKS, Ordering::Relaxed);
        }
    }
}

/// Spawns `image`, in the cgroup whose directory `cgroup` is open, if any.
///
/// On success the child has exec'd (or, for an exec that failed past the
/// point of no return, been killed by the kernel, as with std). On failure
/// no child is left: one that was created has been reaped. Errors are std's
/// for the same options: the errno of the failing step, and the same
/// `io::ErrorKind`.
pub(crate) fn spawn(
    image: &ChildImage,
    cgroup: Option<BorrowedFd<'_>>,
    support: &Support,
    choice: Choice,
) -> io::Result<Spawned> {
    let report = AtomicI32::new(child::report::NOT_REACHED);
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(unused_mut)
    )]
    let mut ctx = child::ChildContext {
        image,
        cgroup_procs: -1,
        vfork: None,
        report: &report,
    };

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if choice == Choice::Auto && !support.known_unavailable(cgroup.is_some()) {
        support.attempts.fetch_add(1, Ordering::Relaxed);
        match clone3::spawn(&mut ctx, cgroup)? {
            clone3::Outcome::Spawned { pid, pidfd } => {
                support.learn_works(cgroup.is_some());
                return Ok(Spawned {
                    pid,
                    pidfd: Some(pidfd),
                    vehicle: Vehicle::Clone3,
                });
            }
            clone3::Outcome::ChildFailed(e) => {
                support.learn_works(cgroup.is_some());
                return Err(e);
            }
            clone3::Outcome::SetupFailed(e) => return Err(e),
            clone3::Outcome::CloneFailed(errno) => {
                if !support.learn_from(errno, cgroup.is_some()) {
                    return Err(io::Error::from_raw_os_error(errno));
                }
            }
        }
    }
    let _ = (support, choice);

    // The fork vehicle moves the child itself, through cgroup.procs, which
    // must be open before the fork: the child may not allocate or look up
    // paths it has not been handed.
    let procs = cgroup.map(open_cgroup_procs).transpose()?;
    ctx.cgroup_procs = procs.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    let pid = fork::spawn(&ctx)?;
    Ok(Spawned {
        pid,
        pidfd: super::linux::pidfd_open(pid).ok(),
        vehicle: Vehicle::Fork,
    })
}

/// `openat(dir, "cgroup.procs", O_WRONLY | O_CLOEXEC)`.
fn open_cgroup_procs(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated relative path and a directory descriptor
    // that is open for the duration of the borrow.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reaps a child whose spawn failed (it has exited, or is about to).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
fn reap(pidfd: &OwnedFd) {
    use std::os::fd::AsFd;
    // ECHILD (SIGCHLD ignored, so the kernel reaped it) is as good.
    let _ = super::linux::waitid_pidfd(pidfd.as_fd(), false);
}

/// A close-on-exec pipe, blocking at both ends (as std's): `(read, write)`.
pub(crate) fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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
