//! The Linux poller: one epoll set holding the wake pipe and watched pidfds.
//!
//! Owns: the epoll descriptor. Calls: `errno`.

use crate::sys::errno::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The token of the wake pipe; watch tokens are descriptor numbers, which
/// never reach it.
const WAKE_TOKEN: u64 = u64::MAX;

/// The events of a change watch: `EPOLLPRI`, edge-triggered (each change is
/// reported once; reading the file re-arms it). epoll adds `EPOLLERR` itself.
pub(crate) const CHANGE_EVENTS: u32 = (libc::EPOLLPRI | libc::EPOLLET) as u32;

/// An epoll set; see the module docs of `sys::poller`.
pub(crate) struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`, with the wake pipe added.
    pub(crate) fn new(wake: RawFd) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fresh descriptor owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let poller = Poller { epoll };
        poller.watch(wake, WAKE_TOKEN)?;
        Ok(poller)
    }

    /// Adds `fd` for edge-triggered readability, tagged with `token`.
    ///
    /// Edge-triggered: a pidfd that is readable while a tracer holds the exit
    /// stays readable, and level-triggered polling would spin on it.
    pub(crate) fn watch(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add(fd, token, (libc::EPOLLIN | libc::EPOLLET) as u32)
    }

    /// Adds `fd` for edge-triggered change notifications, tagged with
    /// `token`: `EPOLLPRI`, which kernfs files (a cgroup's `cgroup.events`)
    /// report once their contents changed after the descriptor last read
    /// them. Never `EPOLLIN`: such a file always reads as readable.
    pub(crate) fn watch_changes(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add(fd, token, CHANGE_EVENTS)
    }

    fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is valid for the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })
            .map(drop)
    }

    /// Removes `fd` from the set.
    pub(crate) fn unwatch(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        cvt(unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Waits up to `timeout_ms` (`-1`: forever), appending the tokens of
    /// ready watches to `tokens`. Returns whether the wake pipe was ready.
    /// EINTR counts as a timeout.
    pub(crate) fn wait(&self, tokens: &mut Vec<u64>, timeout_ms: i32) -> io::Result<bool> {
        const CAP: usize = 64;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; CAP];
        // SAFETY: `events` is writable for CAP entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                CAP as i32,
                timeout_ms,
            )
        };
        let n = match cvt(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        let mut woke = false;
        for event in &events[..n] {
            match event.u64 {
                WAKE_TOKEN => woke = true,
                token => tokens.push(token),
            }
        }
        Ok(woke)
    }
}
