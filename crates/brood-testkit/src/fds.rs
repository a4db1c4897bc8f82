//! Descriptors as `/proc` shows them: how many are open, which, whether they
//! are close-on-exec, and baselines to compare a count against.

use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

/// Number of open descriptors of this process. The directory listing it
/// reads is itself one of them, so compare counts only with counts.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// The descriptors listed in `/proc/<pid>/fd` (`pid` may be `"self"`,
/// whose listing includes the descriptor reading it).
pub fn fds_of(pid: &str) -> BTreeSet<RawFd> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list /proc/<pid>/fd")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// This process's descriptors that are still open after the listing: the
/// listing's own descriptor, closed by then, is left out.
pub fn open_fds() -> Vec<RawFd> {
    fds_of("self")
        .into_iter()
        .filter(|fd| std::fs::metadata(format!("/proc/self/fdinfo/{fd}")).is_ok())
        .collect()
}

/// This process's open descriptors with what each points to (the target
/// of its `/proc/self/fd` link), in order; the listing's own descriptor is
/// left out.
pub fn open_fd_targets() -> Vec<(RawFd, PathBuf)> {
    open_fds()
        .into_iter()
        .filter_map(|fd| Some((fd, std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?)))
        .collect()
}

/// The highest descriptor number open in this process.
pub fn max_open_fd() -> RawFd {
    fds_of("self").into_iter().max().unwrap_or(2)
}

/// The file status flags of descriptor `fd` (`O_NONBLOCK`, `O_CLOEXEC`, ...)
/// from `/proc/self/fdinfo`, which shows them in octal; `None` if `fd` is
/// not open.
pub fn fd_flags(fd: RawFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
    Some(i32::from_str_radix(flags, 8).expect("fdinfo flags are octal"))
}

/// Whether descriptor `fd` of this process is close-on-exec; `None` if it
/// is not open (closed meanwhile).
pub fn is_cloexec(fd: RawFd) -> Option<bool> {
    Some(fd_flags(fd)? & libc::O_CLOEXEC != 0)
}

/// The capacity of the pipe behind descriptor `fd`, in bytes
/// (`F_GETPIPE_SZ`); negative if `fd` is not a pipe.
pub fn pipe_size(fd: RawFd) -> i32 {
    // SAFETY: F_GETPIPE_SZ reads an integer; on a descriptor that is not a
    // pipe (or not open) it fails and returns -1.
    unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }
}

/// Number of pidfds this process holds open.
pub fn open_pidfds() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().contains("pidfd"))
        })
        .count()
}

/// The descriptor count to compare later counts with, once no pidfd is open
/// any more.
///
/// brood's background reaper drops its reference to a reaped child just
/// after waking the child's waiters, so a pidfd can outlive the wait by a
/// moment: the count waits for that.
///
/// Take the baseline while no Tokio runtime is being torn down: keep the
/// runtime that warmed brood up alive until the last count. A dropped
/// runtime's driver (its epoll set and eventfd) stays open as long as any
/// of its wakers lives, and the background reaper lets go of a waker only
/// once the wake-up it delivers is done, which the woken task may outrun:
/// a baseline taken right after `drop(runtime)` can hold those two
/// descriptors, and every later count then looks two short.
pub fn settled_fd_count() -> usize {
    assert!(
        crate::eventually_blocking(Duration::from_secs(10), || open_pidfds() == 0),
        "pidfds stay open: {}",
        open_pidfds()
    );
    fd_count()
}
