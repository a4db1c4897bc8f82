//! pidfds on Linux: `pidfd_open`, `pidfd_send_signal`, `waitid(P_PIDFD)`
//! (reaping, or peeking with `WNOWAIT`).
//!
//! Owns nothing. Calls: `errno`, `process` (the wait counter, rusage).

use crate::sys::errno::{cvt, cvt_retry};
use crate::sys::process::{
    count_wait_call, exit_status_from_siginfo, siginfo_pid, zeroed_rusage, RawRusage,
};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitStatus;

/// Whether this platform has pidfds at all (the kernel may still lack or
/// deny them: see [`probe`]).
pub(crate) const SUPPORTED: bool = true;

/// `pidfd_open(2)`: a close-on-exec descriptor that refers to process `pid`.
pub(crate) fn open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) })?;
    // SAFETY: the kernel returned a fresh descriptor (always O_CLOEXEC) that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signals exactly the process the pidfd refers to,
/// never a process that later reused its pid.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a null siginfo asks the kernel to fill one in as kill(2) would.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cvt(ret).map(drop)
}

/// `waitid(P_PIDFD, pidfd, WEXITED [| WNOHANG])` with the kernel's fifth
/// `rusage` argument, so the status and the resource usage come from one call.
///
/// Returns `Ok(None)` while the process has not exited (with `nohang`); this
/// also happens when a pidfd is readable early because a tracer holds the exit.
pub(crate) fn waitid(
    pidfd: BorrowedFd<'_>,
    nohang: bool,
) -> io::Result<Option<(ExitStatus, RawRusage)>> {
    let mut usage = zeroed_rusage();
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    let status = waitid_raw(pidfd, flags, &mut usage)?;
    Ok(status.map(|status| (status, usage)))
}

/// `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG | WNOWAIT)`: whether the process
/// has exited, and how, without reaping it. `Ok(None)` while it runs.
pub(crate) fn peek_exit(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
    // A null rusage asks for none.
    waitid_raw(
        pidfd,
        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        std::ptr::null_mut(),
    )
}

/// The one `waitid(P_PIDFD, ...)` call behind [`waitid`] and [`peek_exit`]:
/// the status, or `None` when no exit was reported (`WNOHANG`). `usage` is
/// null or points to a `RawRusage` the kernel fills in.
fn waitid_raw(
    pidfd: BorrowedFd<'_>,
    flags: libc::c_int,
    usage: *mut RawRusage,
) -> io::Result<Option<ExitStatus>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    count_wait_call();
    cvt_retry(|| {
        // SAFETY: `info` is writable for the duration of the call, and
        // `usage` is null or writable (the callers' own local); the raw
        // syscall takes (idtype, id, infop, options, rusage).
        unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PIDFD,
                pidfd.as_raw_fd(),
                info.as_mut_ptr(),
                flags,
                usage,
            )
        }
    })?;
    // SAFETY: zero-initialised, then possibly filled in by the kernel.
    let info = unsafe { info.assume_init() };
    Ok((siginfo_pid(&info) > 0).then(|| exit_status_from_siginfo(&info)))
}

/// Whether this kernel lets us use pidfds for children: `pidfd_open` works on
/// our own pid and `waitid` understands `P_PIDFD`. A seccomp filter that
/// denies either (ENOSYS, EPERM) makes this fail.
pub(crate) fn probe() -> io::Result<()> {
    let own = open(std::process::id())?;
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: as in `waitid`; our own process is not our child, so a
    // kernel that knows P_PIDFD answers ECHILD and one that does not, EINVAL.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_waitid,
            libc::P_PIDFD,
            own.as_raw_fd(),
            info.as_mut_ptr(),
            libc::WEXITED | libc::WNOHANG,
            std::ptr::null_mut::<RawRusage>(),
        )
    };
    match cvt(ret) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(()),
        Err(e) => Err(e),
    }
}
