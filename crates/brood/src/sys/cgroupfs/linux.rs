//! cgroup v2 file-system calls on Linux: the file-system type,
//! directory-relative `*at` calls, and `poll` for kernfs change events.
//!
//! Every directory-relative call takes the directory as a descriptor, so the
//! cgroup layer acts on the very directory it validated, whatever happens to
//! the path meanwhile.
//!
//! Owns nothing. Calls: `errno`.

use crate::sys::errno::{cvt, cvt_retry};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Whether this platform has cgroups at all (the machine may still have no
/// usable hierarchy: the cgroup layer finds out).
pub(crate) const SUPPORTED: bool = true;

/// `f_type` of a cgroup v2 file system (`CGROUP2_SUPER_MAGIC`, linux/magic.h).
pub(crate) const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// `f_type` of a cgroup v1 hierarchy (`CGROUP_SUPER_MAGIC`, linux/magic.h).
pub(crate) const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;

fn c_name(name: &Path) -> io::Result<CString> {
    CString::new(name.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("brood: path {} contains a NUL byte", name.display()),
        )
    })
}

/// `fstatfs(2)`: the `f_type` of the file system `fd` lives on.
pub(crate) fn fs_type(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `stat` is writable memory of the right size for the call.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), stat.as_mut_ptr()) })?;
    // SAFETY: zero-initialised and filled in by the kernel on success.
    let stat = unsafe { stat.assume_init() };
    // `f_type` is signed on some ABIs; the magic numbers fit in 32 bits.
    Ok(stat.f_type as u64 & 0xffff_ffff)
}

/// `openat(2)` with `O_CLOEXEC` added to `flags`.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &Path, flags: i32) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    let fd = cvt_retry(|| {
        // SAFETY: `name` is a NUL-terminated string that outlives the call;
        // openat returns a new descriptor or -1.
        unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) }
    })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `name` under `dir` as a `File` (reading and writing go through std).
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &Path, flags: i32) -> io::Result<File> {
    open_at(dir, name, flags).map(File::from)
}

/// `mkdirat(2)`.
pub(crate) fn mkdir_at(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// `unlinkat(2)` with `AT_REMOVEDIR`: removes the directory `name` under `dir`.
pub(crate) fn rmdir_at(dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// `faccessat(2)` with `AT_EACCESS`: whether this process, with its effective
/// ids, may access `name` under `dir` with `mode` (`libc::W_OK`, ...). A
/// read-only mount answers `EROFS` even for root.
pub(crate) fn access_at(dir: BorrowedFd<'_>, name: &Path, mode: i32) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::faccessat(dir.as_raw_fd(), name.as_ptr(), mode, libc::AT_EACCESS) })
        .map(drop)
}

/// `poll(2)` for a kernfs change notification (`POLLPRI`; the kernel also
/// sets `POLLERR`) on one descriptor, up to `timeout_ms` (`-1`: forever).
/// Returns whether the file changed since it was last read; an interrupted
/// wait returns `false`, as a timeout does.
///
/// Only `POLLPRI` is asked for: a kernfs file always reports itself readable
/// and writable, so asking for `POLLIN` would return at once every time.
pub(crate) fn poll_priority(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    match cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) }) {
        Ok(n) => Ok(n > 0 && pfd.revents & (libc::POLLPRI | libc::POLLERR) != 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Test support: gives the *calling thread* a private mount namespace (other
/// threads keep the process's) and makes `dir` read-only in it through a
/// read-only bind mount of `dir` onto itself. The namespace, and the mount
/// with it, disappears when the thread exits.
#[cfg(test)]
pub(crate) fn thread_private_read_only_bind(dir: &Path) -> io::Result<()> {
    let dir = c_name(dir)?;
    let root = c"/";
    // SAFETY: unshare takes flags only. CLONE_NEWNS (which implies CLONE_FS)
    // is allowed in a multi-threaded process and affects this thread only.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    // Make every mount private first, so that the bind mount below does not
    // propagate back into the namespace the rest of the machine uses.
    // SAFETY: all pointers are NUL-terminated strings or null, as mount allows.
    cvt(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })?;
    // SAFETY: as above.
    cvt(unsafe {
        libc::mount(
            dir.as_ptr(),
            dir.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })?;
    // SAFETY: as above.
    cvt(unsafe {
        libc::mount(
            std::ptr::null(),
            dir.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            std::ptr::null(),
        )
    })
    .map(drop)
}
