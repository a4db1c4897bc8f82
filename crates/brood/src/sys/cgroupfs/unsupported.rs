//! Stand-ins for the cgroup calls where there are no cgroups (everything
//! but Linux).
//!
//! Containment never reaches them here: `Containment::Cgroup` fails with
//! `Unsupported` as soon as [`SUPPORTED`] says so, and `Auto` means `Group`.
//! They exist so that callers compile without a `cfg` of their own.
//!
//! Owns nothing. Calls nothing.

use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

/// Whether this platform has cgroups at all.
pub(crate) const SUPPORTED: bool = false;

/// `f_type` of a cgroup v2 file system, as on Linux.
pub(crate) const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// `f_type` of a cgroup v1 hierarchy, as on Linux.
pub(crate) const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "brood: cgroups exist only on Linux",
    )
}

/// Stand-in for `fstatfs(2)`'s file-system type.
pub(crate) fn fs_type(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let _ = fd;
    Err(unsupported())
}

/// Stand-in for `openat(2)`. (Only Linux's own spawn calls it directly.)
#[allow(dead_code)]
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &Path, flags: i32) -> io::Result<OwnedFd> {
    let _ = (dir, name, flags);
    Err(unsupported())
}

/// Stand-in for `openat(2)` as a `File`.
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &Path, flags: i32) -> io::Result<File> {
    let _ = (dir, name, flags);
    Err(unsupported())
}

/// Stand-in for `mkdirat(2)`.
pub(crate) fn mkdir_at(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
    let _ = (dir, name, mode);
    Err(unsupported())
}

/// Stand-in for `unlinkat(2)` with `AT_REMOVEDIR`.
pub(crate) fn rmdir_at(dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    let _ = (dir, name);
    Err(unsupported())
}

/// Stand-in for `faccessat(2)`.
pub(crate) fn access_at(dir: BorrowedFd<'_>, name: &Path, mode: i32) -> io::Result<()> {
    let _ = (dir, name, mode);
    Err(unsupported())
}

/// Stand-in for `poll(2)` on a kernfs change event.
pub(crate) fn poll_priority(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let _ = (fd, timeout_ms);
    Err(unsupported())
}
