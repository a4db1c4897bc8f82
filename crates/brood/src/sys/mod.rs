//! The operating-system boundary: the only module that contains `unsafe`.
//!
//! Every function here wraps one system call (or a short fixed sequence of
//! them), converts `-1`/errno into [`io::Error`], and documents the invariant
//! its `unsafe` block relies on. Everything above this module is safe Rust.
//!
//! Platform contract: every Unix provides the `wait4`/`waitid`/`kill`/pipe and
//! `sigaction` wrappers. Linux additionally provides the pidfd and epoll
//! wrappers in [`linux`]; code that uses them is itself `cfg(target_os = "linux")`.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

#[cfg(target_os = "linux")]
pub(crate) mod cgroupfs;
#[cfg(target_os = "linux")]
pub(crate) mod linux;

/// How many wait-family system calls (`wait4`, `waitid`) brood has made.
/// Exposed (hidden) for tests that check the O(1)-per-exit claim.
pub(crate) static WAIT_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_wait_call() {
    WAIT_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Turns a C return value of `-1` into the thread's current `errno`.
fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], but retries the call while it fails with `EINTR`.
fn cvt_retry<T: PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The raw resource usage the kernel reports with an exit status.
pub(crate) type RawRusage = libc::rusage;

/// An all-zero `rusage`, for waits that report none.
pub(crate) fn zeroed_rusage() -> RawRusage {
    // SAFETY: `rusage` is a plain C struct of integers and timevals, for which
    // all-zero bytes are a valid value.
    unsafe { MaybeUninit::<RawRusage>::zeroed().assume_init() }
}

/// `wait4(2)`: collects the exit of `pid` and its resource usage.
///
/// With `nohang`, returns `Ok(None)` while the child still runs. Stop and
/// continue notifications are never requested, so a returned status is always
/// an exit.
pub(crate) fn wait4(pid: u32, nohang: bool) -> io::Result<Option<(ExitStatus, RawRusage)>> {
    let mut status = 0;
    let mut usage = zeroed_rusage();
    let flags = if nohang { libc::WNOHANG } else { 0 };
    count_wait_call();
    let ret = cvt_retry(|| {
        // SAFETY: `status` and `usage` are valid, writable and live for the call.
        unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut usage) }
    })?;
    if ret == 0 {
        Ok(None)
    } else {
        Ok(Some((ExitStatus::from_raw(status), usage)))
    }
}

/// `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`: the pid of some child that has
/// exited and not been reaped yet, without reaping it.
///
/// This is how the SIGCHLD dispatcher learns *which* child exited in O(1)
/// instead of asking every pid it knows about.
pub(crate) fn peek_exited_child() -> io::Result<Option<u32>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    count_wait_call();
    let ret = cvt_retry(|| {
        // SAFETY: `info` points to writable memory of the right size; WNOWAIT
        // leaves the child waitable, so no status is consumed.
        unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        }
    });
    match ret {
        Ok(_) => {
            // SAFETY: zero-initialised above and possibly filled in by the
            // kernel; either way every bit pattern is a valid siginfo_t.
            let info = unsafe { info.assume_init() };
            let pid = siginfo_pid(&info);
            Ok(if pid > 0 { Some(pid as u32) } else { None })
        }
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `si_pid` field of a `siginfo_t` delivered for SIGCHLD or by `waitid`.
pub(crate) fn siginfo_pid(info: &libc::siginfo_t) -> libc::pid_t {
    // SAFETY: for SIGCHLD and waitid results the kernel fills the `_sigchld`
    // member of the union, which is where `si_pid()` reads.
    unsafe { info.si_pid() }
}

/// Builds the `ExitStatus` for a `waitid` result (`si_code`, `si_status`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn exit_status_from_siginfo(info: &libc::siginfo_t) -> ExitStatus {
    // SAFETY: as in `siginfo_pid`, the `_sigchld` member is the one filled in.
    let status = unsafe { info.si_status() };
    let raw = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    };
    ExitStatus::from_raw(raw)
}

/// `kill(2)`.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid as libc::pid_t, signal) }).map(drop)
}

/// `killpg(2)`: signals every member of process group `pgid`.
pub(crate) fn killpg(pgid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: killpg has no memory-safety preconditions.
    cvt(unsafe { libc::killpg(pgid as libc::pid_t, signal) }).map(drop)
}

/// `getpgid(2)`.
pub(crate) fn getpgid(pid: u32) -> io::Result<u32> {
    // SAFETY: getpgid has no memory-safety preconditions.
    cvt(unsafe { libc::getpgid(pid as libc::pid_t) }).map(|p| p as u32)
}

/// Sets or clears `O_NONBLOCK` on `fd`.
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

/// Whether `FD_CLOEXEC` is set on `fd`.
#[allow(dead_code)]
pub(crate) fn is_cloexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: the fd is open for the duration of the borrow.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) })?;
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// A close-on-exec pipe whose both ends are non-blocking: `(read, write)`.
pub(crate) fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: `fds` is a writable array of two ints.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: `fds` is a writable array of two ints. The pipe is made once,
        // lazily; a fork between pipe() and FD_CLOEXEC could leak it into one
        // child, which platforms without pipe2 cannot prevent.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        for fd in fds {
            // SAFETY: `fd` was just returned by pipe().
            cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
    }
    // SAFETY: pipe returned two fresh descriptors that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        use std::os::fd::AsFd;
        set_nonblocking(r.as_fd(), true)?;
        set_nonblocking(w.as_fd(), true)?;
    }
    Ok((r, w))
}

/// `read(2)` into `buf`; `Ok(0)` at end of file.
fn read(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; read never
    // de-initialises memory, it only writes initialised bytes.
    let n = cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
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

/// The calling thread's `errno` location, so a signal handler can preserve it.
fn errno_location() -> *mut libc::c_int {
    // SAFETY: these functions only return the address of the thread-local errno.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "redox"))]
        {
            libc::__errno_location()
        }
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        {
            libc::__error()
        }
        #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
        {
            libc::__errno()
        }
    }
}

/// SIGCHLD handling: installing brood's handler and chaining the host's.
pub(crate) mod sigchld {
    use super::*;
    use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

    /// Write end of the dispatcher's wake pipe; `-1` until installed.
    static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
    /// The disposition that was in place before brood's handler; null until
    /// installed. Leaked on purpose: the handler may run at any time after.
    static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

    /// Installs the process-wide SIGCHLD handler, which writes the exited
    /// child's pid (4 bytes, native endian) to `wake` and then calls whatever
    /// handler was installed before. Call at most once.
    ///
    /// `SA_ONSTACK` lets it run on an alternate signal stack if the thread has
    /// one; `SA_RESTART` keeps the host's blocking calls from failing with EINTR.
    pub(crate) fn install(wake: OwnedFd) -> io::Result<()> {
        // The fd lives for the rest of the process: the handler can fire at any time.
        let raw = std::os::fd::IntoRawFd::into_raw_fd(wake);
        WAKE_FD.store(raw, Ordering::Release);

        // SAFETY: zeroed sigaction is a valid "empty" value; we fill the fields we use.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigchld as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };

        // Publish a copy of our own action first, so that a handler running on
        // another thread during the swap sees "nothing to chain" rather than a
        // null or half-written pointer; sigaction(2) then overwrites it with
        // the host's previous disposition.
        let previous = Box::into_raw(Box::new(action));
        PREVIOUS.store(previous, Ordering::Release);
        // SAFETY: `action` and `*previous` are valid sigaction structs; the
        // old disposition is written into `*previous`, which is never freed.
        cvt(unsafe { libc::sigaction(libc::SIGCHLD, &action, previous) })?;
        Ok(())
    }

    extern "C" fn on_sigchld(
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) {
        // Only async-signal-safe operations below: atomics, write(2), and
        // calling the previous handler.
        let errno = errno_location();
        // SAFETY: errno_location returns this thread's errno slot.
        let saved = unsafe { *errno };

        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo (or null).
        if let Some(info) = unsafe { info.as_ref() } {
            let exited = matches!(
                info.si_code,
                libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED
            );
            if exited {
                let pid = siginfo_pid(info);
                let fd = WAKE_FD.load(Ordering::Acquire);
                if fd >= 0 {
                    // A full pipe just loses the pid; the dispatcher's peek
                    // finds every exited child regardless.
                    // SAFETY: `pid` is a live local of 4 bytes.
                    let _ = unsafe { libc::write(fd, (&pid as *const i32).cast(), 4) };
                }
            }
        }

        let previous = PREVIOUS.load(Ordering::Acquire);
        // SAFETY: once non-null, PREVIOUS points to a leaked, never-freed sigaction.
        if let Some(prev) = unsafe { previous.as_ref() } {
            let handler = prev.sa_sigaction;
            let ours = on_sigchld as *const () as libc::sighandler_t;
            if handler != libc::SIG_DFL && handler != libc::SIG_IGN && handler != ours {
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    // SAFETY: the host installed this as an SA_SIGINFO handler.
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        unsafe { std::mem::transmute(handler) };
                    f(signal, info, context);
                } else {
                    // SAFETY: the host installed this as a plain handler.
                    let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                    f(signal);
                }
            }
        }

        // SAFETY: as above.
        unsafe { *errno = saved };
    }
}

/// The record that asks the background thread to dispatch although no
/// SIGCHLD named a pid (orphans deferred during a spawn, in subreaper mode).
/// A record of `0` only makes it recompute its timeout.
pub(crate) const DISPATCH_RECORD: i32 = -1;

/// Reads the records written to the non-blocking wake pipe: pids from the
/// SIGCHLD handler, [`DISPATCH_RECORD`], or `0`. Returns whether a dispatch
/// is due (a pid or a dispatch record arrived).
pub(crate) fn drain_wake_pipe(fd: RawFd, pids: &mut Vec<u32>) -> io::Result<bool> {
    let mut buf = [0u8; 512];
    let mut dispatch = false;
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(dispatch),
                io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        let n = n as usize;
        if n == 0 {
            return Ok(dispatch);
        }
        // Writes of 4 bytes to a pipe are atomic, so records never straddle reads.
        for chunk in buf[..n].chunks_exact(4) {
            let pid = i32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if pid > 0 {
                pids.push(pid as u32);
            }
            dispatch |= pid != 0;
        }
        if n < buf.len() {
            return Ok(dispatch);
        }
    }
}

/// `getrlimit`-free count of this process's open descriptors, for tests.
#[allow(dead_code)]
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless; it fails with EBADF if closed.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Reads from `fd` into the unfilled part of `buf`, marking what was read as
/// filled. Returns the byte count (`0` at end of file).
pub(crate) fn read_buf(fd: RawFd, buf: &mut tokio::io::ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: `read` only writes initialised bytes into the slice; it never
    // de-initialises any.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = read(fd, unfilled)?;
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
    let n = read(fd, &mut spare[..len])?;
    // SAFETY: the kernel initialised the first `n` bytes of the spare
    // capacity, and `n <= spare.len()`.
    unsafe { vec.set_len(vec.len() + n) };
    Ok(n)
}

/// Registers `f` to run in the child between fork and exec.
///
/// # Safety
///
/// The caller upholds `CommandExt::pre_exec`'s contract: `f` only does what is
/// safe in a forked child of a multi-threaded process.
pub(crate) unsafe fn pre_exec<F>(cmd: &mut std::process::Command, f: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    use std::os::unix::process::CommandExt;
    // SAFETY: forwarded from the caller.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// Fails unless called inside a Tokio runtime.
pub(crate) fn in_runtime() -> io::Result<()> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| {
            io::Error::other(
                "brood: child pipes and exit watchers must be polled inside a Tokio runtime",
            )
        })
}

/// Registers an owned descriptor with the current Tokio runtime's reactor;
/// the `AsyncFd` owns it from then on. Fails (rather than panicking) when
/// there is no runtime or its IO driver is disabled.
pub(crate) fn register_owned(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor
    // stays open, and the same, exactly as long as the registration.
    unsafe { register(fd, interest) }
}

/// Registers `inner`'s descriptor with the current Tokio runtime's reactor.
///
/// Fails (rather than panicking) when there is no runtime or its IO driver is
/// disabled.
///
/// # Safety
///
/// `inner.as_raw_fd()` must stay a valid, open descriptor, and the same one,
/// until the returned `AsyncFd` is dropped or converted with `into_inner`.
unsafe fn register<T: AsRawFd>(
    inner: T,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    in_runtime()?;
    // Registration panics when the runtime has IO disabled; report it instead.
    let registered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: forwarded from the caller.
        unsafe { tokio::io::unix::AsyncFd::register_with_interest(inner, interest) }
    }))
    .map_err(|_| {
        io::Error::other(
            "brood: the Tokio runtime has IO disabled; build it with enable_io() or enable_all()",
        )
    })?;
    registered.map_err(|e| e.into_parts().1)
}
