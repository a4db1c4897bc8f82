//! Descriptors: pipes, `O_NONBLOCK`, `read`/`write`/`writev`, `poll(2)`,
//! pipe sizing, and the kept `/dev/null`.
//!
//! Owns: the cached `pipe-max-size`, the two kept `/dev/null` descriptors.
//! Calls: `errno`.

use super::errno::cvt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Sets or clears `O_NONBLOCK` on `fd`.
///
/// On Linux one `ioctl(FIONBIO)`, which changes that flag alone; elsewhere
/// `fcntl` reads the flags and writes them back changed.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    let mut on = libc::c_int::from(nonblocking);
    // SAFETY: the descriptor is open for the duration of the borrow, and
    // FIONBIO reads one int from the pointer.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &mut on) })?;
    Ok(())
}

/// Sets or clears `O_NONBLOCK` on `fd`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is open for the duration of the borrow.
    let flags = cvt(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
    let new = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(raw, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// `/dev/null`, write-only if `writable`, else read-only: a descriptor
/// opened at the first call and kept for the life of the process
/// (close-on-exec, above 2), for the standard streams of the children
/// brood spawns itself. A child `dup2`s it as std's spawn would `dup2` a
/// `/dev/null` it opened for that spawn alone, so a spawn costs no `open`
/// and `close` of the device. The children share one open file of it,
/// which no read or write of `/dev/null` can tell apart.
pub(crate) fn dev_null(writable: bool) -> io::Result<BorrowedFd<'static>> {
    use std::os::fd::AsFd;
    use std::sync::OnceLock;
    static KEPT: [OnceLock<OwnedFd>; 2] = [OnceLock::new(), OnceLock::new()];
    let kept = &KEPT[usize::from(writable)];
    if let Some(fd) = kept.get() {
        return Ok(fd.as_fd());
    }
    let file = std::fs::OpenOptions::new()
        .read(!writable)
        .write(writable)
        .open("/dev/null")?;
    let mut fd = OwnedFd::from(file);
    if fd.as_raw_fd() <= 2 {
        // Opened where one of our own streams is closed: a child's dup2
        // of its streams could overwrite it. std's copy lands above 2.
        fd = fd.as_fd().try_clone_to_owned()?;
    }
    // Two first calls at once: one copy is kept, the other closed.
    let _ = kept.set(fd);
    Ok(kept.get().expect("set just above").as_fd())
}

/// A close-on-exec pipe whose both ends are non-blocking: `(read, write)`.
pub(crate) fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe(true)
}

/// A close-on-exec pipe, blocking at both ends as std's are: `(read,
/// write)`. For the standard streams of a child brood spawns itself.
pub(crate) fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe(false)
}

/// A close-on-exec pipe, non-blocking at both ends if `nonblocking`.
fn pipe(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        let flags = if nonblocking { libc::O_NONBLOCK } else { 0 };
        // SAFETY: `fds` is a writable array of two ints.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | flags) })?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: `fds` is a writable array of two ints. A fork between
        // pipe() and FD_CLOEXEC could leak it into one child, which
        // platforms without pipe2 cannot prevent.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        for fd in fds {
            // SAFETY: `fd` was just returned by pipe().
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
    }
    // SAFETY: pipe returned two fresh descriptors that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    if nonblocking {
        use std::os::fd::AsFd;
        set_nonblocking(r.as_fd(), true)?;
        set_nonblocking(w.as_fd(), true)?;
    }
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    let _ = nonblocking;
    Ok((r, w))
}

/// Whether `fd` has close-on-exec set (`fcntl(F_GETFD)`).
#[cfg(test)]
pub(crate) fn is_cloexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: F_GETFD on a descriptor that is open for the borrow.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) })?;
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// `read(2)` into possibly uninitialised memory; `Ok(0)` at end of file.
fn read_uninit(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; read never
    // de-initialises memory, it only writes initialised bytes.
    let n = cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// `read(2)`; `Ok(0)` at end of file.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// Reads from `fd` into the unfilled part of `buf`, marking what was read as
/// filled. Returns the byte count (`0` at end of file).
pub(crate) fn read_buf(fd: RawFd, buf: &mut tokio::io::ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: `read` only writes initialised bytes into the slice; it never
    // de-initialises any.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = read_uninit(fd, unfilled)?;
    // SAFETY: the kernel initialised exactly `n` bytes at the start of the
    // unfilled region.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

/// Reads from `fd` straight into the spare capacity of `vec` (no zero-fill),
/// at most `limit` bytes. Returns the byte count (`0` at end of file).
pub(crate) fn read_into_spare(fd: RawFd, vec: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    let spare = vec.spare_capacity_mut();
    let len = spare.len().min(limit);
    let n = read_uninit(fd, &mut spare[..len])?;
    // SAFETY: the kernel initialised the first `n` bytes of the spare
    // capacity, and `n <= spare.len()`.
    unsafe { vec.set_len(vec.len() + n) };
    Ok(n)
}

/// `write(2)`.
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    let n = cvt(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// `writev(2)`.
pub(crate) fn writev(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let count = bufs.len().min(1024) as libc::c_int;
    // SAFETY: `IoSlice` is guaranteed ABI-compatible with `struct iovec`, and
    // each slice is valid for reads for the duration of the call.
    let n = cvt(unsafe { libc::writev(fd, bufs.as_ptr().cast(), count) })?;
    Ok(n as usize)
}

/// `poll(2)` for readability (or hang-up) on up to `N` descriptors, with a
/// timeout in milliseconds (`-1` waits forever). Negative descriptors are
/// ignored, as `poll` itself does, so a closed slot can be passed as `-1`.
/// Returns whether any became ready; an interrupted wait returns `false`.
pub(crate) fn poll_readable<const N: usize>(fds: [RawFd; N], timeout_ms: i32) -> io::Result<bool> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: `pfds` holds `N` valid pollfd entries for the duration of the call.
    match cvt(unsafe { libc::poll(pfds.as_mut_ptr(), N as libc::nfds_t, timeout_ms) }) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets a pipe's capacity (`fcntl(F_SETPIPE_SZ)`), clamped to
/// `/proc/sys/fs/pipe-max-size` even when privileged (root may exceed it):
/// that limit is the administrator's statement of what one pipe may pin.
#[cfg(target_os = "linux")]
pub(crate) fn set_pipe_capacity(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let max = *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    });
    let requested = bytes.min(max).min(i32::MAX as usize) as i32;
    // SAFETY: fcntl on an open descriptor with an integer argument.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, requested) }).map(drop)
}

/// Pipe capacities cannot be set off Linux: a no-op.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_pipe_capacity(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let _ = (fd, bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn status_flags(fd: BorrowedFd<'_>) -> libc::c_int {
        // SAFETY: F_GETFL on a descriptor open for the borrow.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }
    }

    #[test]
    fn set_nonblocking_changes_that_flag_alone() {
        let (r, _w) = cloexec_pipe().unwrap();
        // SAFETY: F_SETFL on a descriptor we own.
        let set = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_APPEND) };
        assert_eq!(set, 0);
        set_nonblocking(r.as_fd(), true).unwrap();
        let flags = status_flags(r.as_fd());
        assert_ne!(flags & libc::O_NONBLOCK, 0);
        assert_ne!(flags & libc::O_APPEND, 0, "another flag was lost");
        set_nonblocking(r.as_fd(), false).unwrap();
        let flags = status_flags(r.as_fd());
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        assert_ne!(flags & libc::O_APPEND, 0, "another flag was lost");
        let mut byte = [0u8; 1];
        // A blocking read would hang; a non-blocking one on an empty pipe
        // says so at once.
        set_nonblocking(r.as_fd(), true).unwrap();
        let e = read(r.as_raw_fd(), &mut byte).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn dev_null_is_kept_once_per_direction_above_the_standard_streams() {
        let reading = dev_null(false).unwrap();
        let writing = dev_null(true).unwrap();
        assert!(reading.as_raw_fd() > 2 && writing.as_raw_fd() > 2);
        assert_ne!(reading.as_raw_fd(), writing.as_raw_fd());
        assert_eq!(dev_null(false).unwrap().as_raw_fd(), reading.as_raw_fd());
        assert_eq!(dev_null(true).unwrap().as_raw_fd(), writing.as_raw_fd());
        assert_eq!(status_flags(reading) & libc::O_ACCMODE, libc::O_RDONLY);
        assert_eq!(status_flags(writing) & libc::O_ACCMODE, libc::O_WRONLY);
        assert!(is_cloexec(reading).unwrap() && is_cloexec(writing).unwrap());
        let mut byte = [0u8; 1];
        assert_eq!(read(reading.as_raw_fd(), &mut byte).unwrap(), 0);
        assert_eq!(write(writing.as_raw_fd(), b"gone").unwrap(), 4);
    }
}
