//! brood's own spawn on Linux: the choice of vehicle, and what this
//! process has learnt about clone3.
//!
//! Whether clone3 is available is learnt from the first attempt and
//! remembered in a [`Support`] (a process-wide one, [`SUPPORT`], and private
//! ones in tests): `ENOSYS` or `EPERM` from clone3 are a denial only if
//! `clone3(NULL, 0)` confirms it (a kernel that has clone3 answers that with
//! `EINVAL`); `EINVAL` or `E2BIG` for the real call mean a kernel older than
//! the flags (5.5 for `CLONE_CLEAR_SIGHAND`, 5.7 for `CLONE_INTO_CGROUP`).
//! Transient errors (`EAGAIN`, `ENOMEM`) are returned and decide nothing.
//!
//! Owns: [`Support`], [`SUPPORT`], [`spawn`]. Calls: `child`, `clone3`,
//! `fork`, `image`, `errno`, `pidfd`.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::clone3;
use super::image::ChildImage;
use super::types::{Choice, Spawned, Vehicle};
use super::{child, fork};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

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
        pidfd: crate::sys::pidfd::open(pid).ok(),
        vehicle: Vehicle::Fork,
    })
}

/// `openat(dir, "cgroup.procs", O_WRONLY | O_CLOEXEC)`.
fn open_cgroup_procs(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    crate::sys::cgroupfs::open_at(dir, std::path::Path::new("cgroup.procs"), libc::O_WRONLY)
}
