//! Linux-only system calls: pidfd, epoll, prctl and pipe sizing.

use super::{cvt, cvt_retry, exit_status_from_siginfo, siginfo_pid, zeroed_rusage, RawRusage};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitStatus;

/// A pidfd, and its registration with a Tokio reactor while it is awaited.
///
/// The registration refers to the descriptor by number, so it must never
/// outlive it: `reactor` is declared before `fd` and therefore dropped (and
/// deregistered) first, and it is only ever replaced or dropped in place,
/// never handed out by value. That is the invariant the `unsafe` below
/// relies on, and it is local to this type.
#[derive(Debug)]
pub(crate) struct Pidfd {
    reactor: std::sync::Mutex<Reactor>,
    fd: OwnedFd,
}

#[derive(Debug, Default)]
struct Reactor {
    registration: Option<tokio::io::unix::AsyncFd<FdNumber>>,
    /// The pidfd was readable while the child could not be reaped: a tracer
    /// (strace -f, gdb) holds the exit. From then on the registration is
    /// kept across reap attempts, so that its readiness can be cleared and
    /// the next edge (the tracer letting go) awaited.
    traced: bool,
}

/// A descriptor number, for a registration whose descriptor is owned
/// elsewhere (see [`Pidfd`]).
#[derive(Debug)]
pub(crate) struct FdNumber(RawFd);

impl AsRawFd for FdNumber {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Pidfd {
    /// `pidfd_open(pid)`.
    pub(crate) fn open(pid: u32) -> io::Result<Self> {
        Ok(Pidfd {
            reactor: std::sync::Mutex::default(),
            fd: pidfd_open(pid)?,
        })
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// Whether a reactor registration exists (the child is awaited inline).
    pub(crate) fn is_registered(&self) -> bool {
        self.lock().registration.is_some()
    }

    /// Waits, in the current Tokio runtime's reactor, until the pidfd is
    /// readable and `reap` then returns the exit.
    ///
    /// The registration is dropped *before* `reap` runs: reaping makes the
    /// pidfd fire once more, and a registration still in the reactor then
    /// would wake the reactor's thread for nothing, once per child. Only
    /// after a tracer was seen holding an exit is the registration kept.
    ///
    /// Fails outside a runtime (or with IO disabled, or once the runtime the
    /// pidfd was registered with is gone): the caller falls back to the
    /// background reaper.
    pub(crate) fn poll_exit<R>(
        &self,
        cx: &mut std::task::Context<'_>,
        mut reap: impl FnMut() -> Option<R>,
    ) -> std::task::Poll<io::Result<R>> {
        use std::task::Poll;
        let mut reactor = self.lock();
        loop {
            let traced = reactor.traced;
            let registration = match &mut reactor.registration {
                Some(r) => r,
                slot @ None => {
                    // SAFETY: the registration lives in `self.reactor`, which
                    // is dropped before `self.fd` (field order), and is never
                    // moved out of it.
                    let registered = unsafe {
                        super::register(
                            FdNumber(self.fd.as_raw_fd()),
                            tokio::io::Interest::READABLE,
                        )
                    };
                    match registered {
                        Ok(r) => slot.insert(r),
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            };
            let mut guard = match registration.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(guard)) => guard,
            };
            if traced {
                if let Some(exit) = reap() {
                    return Poll::Ready(Ok(exit));
                }
                // Still held. Clearing is a no-op if a newer edge arrived
                // since the readiness was observed, so none is lost.
                guard.clear_ready();
                continue;
            }
            drop(guard);
            reactor.registration = None;
            if let Some(exit) = reap() {
                return Poll::Ready(Ok(exit));
            }
            // Readable but not waitable: a tracer holds the exit. Register
            // again; the new registration reports the (still readable) pidfd
            // at once, and the traced branch above then waits for the edge
            // that comes when the exit reaches us.
            reactor.traced = true;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reactor> {
        // The critical sections never panic half-way; a poisoned lock still
        // holds a consistent registration.
        self.reactor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `pidfd_open(2)`: a close-on-exec descriptor that refers to process `pid`.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) })?;
    // SAFETY: the kernel returned a fresh descriptor (always O_CLOEXEC) that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signals exactly the process the pidfd refers to,
/// never a process that later reused its pid.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
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
pub(crate) fn waitid_pidfd(
    pidfd: BorrowedFd<'_>,
    nohang: bool,
) -> io::Result<Option<(ExitStatus, RawRusage)>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    let mut usage = zeroed_rusage();
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    super::count_wait_call();
    cvt_retry(|| {
        // SAFETY: `info` and `usage` are writable for the duration of the call;
        // the raw syscall takes (idtype, id, infop, options, rusage).
        unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PIDFD,
                pidfd.as_raw_fd(),
                info.as_mut_ptr(),
                flags,
                &mut usage as *mut RawRusage,
            )
        }
    })?;
    // SAFETY: zero-initialised, then possibly filled in by the kernel.
    let info = unsafe { info.assume_init() };
    if siginfo_pid(&info) == 0 {
        return Ok(None);
    }
    Ok(Some((exit_status_from_siginfo(&info), usage)))
}

/// Whether this kernel lets us use pidfds for children: `pidfd_open` works on
/// our own pid and `waitid` understands `P_PIDFD`. A seccomp filter that
/// denies either (ENOSYS, EPERM) makes this false.
pub(crate) fn probe_pidfd() -> io::Result<()> {
    let own = pidfd_open(std::process::id())?;
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: as in `waitid_pidfd`; our own process is not our child, so a
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

/// An epoll instance, used by the background reaper thread.
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fresh descriptor owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds `fd` for edge-triggered readability, tagged with `token`.
    ///
    /// Edge-triggered: a pidfd that is readable while a tracer holds the exit
    /// stays readable, and level-triggered polling would spin on it.
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `event` is valid for the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })
            .map(drop)
    }

    /// Removes `fd` from the set.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        cvt(unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Waits for events, up to `timeout_ms` (`-1`: forever), appending their
    /// tokens to `tokens`. EINTR counts as a timeout.
    pub(crate) fn wait(&self, tokens: &mut Vec<u64>, timeout_ms: i32) -> io::Result<()> {
        const CAP: usize = 64;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; CAP];
        // SAFETY: `events` is writable for CAP entries.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                CAP as i32,
                timeout_ms,
            )
        };
        match cvt(n) {
            Ok(n) => {
                tokens.extend(events[..n as usize].iter().map(|e| e.u64));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`.
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// `fcntl(F_SETPIPE_SZ)`: returns the size the kernel actually set.
pub(crate) fn set_pipe_size(fd: BorrowedFd<'_>, bytes: i32) -> io::Result<usize> {
    // SAFETY: fcntl on an open descriptor with an integer argument.
    let n = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) })?;
    Ok(n as usize)
}
