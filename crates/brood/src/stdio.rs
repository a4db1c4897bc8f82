//! Async pipes to a child's standard streams.
//!
//! Each pipe end is a non-blocking, close-on-exec descriptor. It is registered
//! with the Tokio reactor on its first read or write, not at spawn, so a child
//! spawned outside a runtime can be driven inside one later.
//!
//! Converting a pipe back into an [`OwnedFd`] or a [`Stdio`] (to connect two
//! children) deregisters it and restores blocking mode, which is what the
//! next program expects of its standard streams.
//!
//! Owns: [`ChildStdin`], [`ChildStdout`], [`ChildStderr`] and the `Pipe`
//! under them. Calls: `reactor`, `sys::fd`.

use crate::reactor;
use crate::sys;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

enum State {
    /// Not yet registered with a reactor.
    Idle(OwnedFd),
    /// Boxed: a registration is several words, and most children never
    /// register their pipes, so `Child` stays small without it.
    Registered(Box<AsyncFd<OwnedFd>>),
    /// Shut down (stdin) or converted away.
    Closed,
}

/// One end of a pipe, registered with the reactor on first use.
pub(crate) struct Pipe {
    state: State,
    interest: Interest,
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the pipe was shut down")
}

impl Pipe {
    /// Wraps `fd`, switching it to non-blocking mode.
    pub(crate) fn new(fd: OwnedFd, interest: Interest) -> io::Result<Self> {
        sys::fd::set_nonblocking(fd.as_fd(), true)?;
        Ok(Pipe {
            state: State::Idle(fd),
            interest,
        })
    }

    fn registered(&mut self) -> io::Result<&AsyncFd<OwnedFd>> {
        if let State::Idle(_) = self.state {
            // Checked before the descriptor is handed over, so that polling
            // outside a runtime fails without closing the pipe.
            reactor::in_runtime()?;
            let State::Idle(fd) = std::mem::replace(&mut self.state, State::Closed) else {
                unreachable!()
            };
            let registered = reactor::register_owned(fd, self.interest)?;
            self.state = State::Registered(Box::new(registered));
        }
        match &self.state {
            State::Registered(fd) => Ok(fd),
            _ => Err(closed_error()),
        }
    }

    fn raw(&self) -> Option<RawFd> {
        match &self.state {
            State::Idle(fd) => Some(fd.as_raw_fd()),
            State::Registered(fd) => Some(fd.get_ref().as_raw_fd()),
            State::Closed => None,
        }
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let fd = self.registered()?;
        loop {
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            match guard.try_io(|inner| sys::fd::read_buf(inner.as_raw_fd(), buf)) {
                Ok(result) => return Poll::Ready(result.map(drop)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads into `vec`'s spare capacity, up to `limit` bytes.
    pub(crate) fn poll_read_spare(
        &mut self,
        cx: &mut Context<'_>,
        vec: &mut Vec<u8>,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        let fd = self.registered()?;
        loop {
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            match guard.try_io(|inner| sys::fd::read_into_spare(inner.as_raw_fd(), vec, limit)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads into `buf` without waiting and without the reactor, for a
    /// thread that waits on the descriptor itself (see
    /// [`sys::fd::poll_readable`]). `WouldBlock` when the pipe is empty.
    pub(crate) fn read_now(&self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let fd = self.raw().ok_or_else(closed_error)?;
        sys::fd::read_buf(fd, buf).map(drop)
    }

    /// [`Pipe::read_now`] into `vec`'s spare capacity, up to `limit` bytes.
    pub(crate) fn read_spare_now(&self, vec: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
        let fd = self.raw().ok_or_else(closed_error)?;
        sys::fd::read_into_spare(fd, vec, limit)
    }

    /// Takes the descriptor out of the reactor (it stays non-blocking), for a
    /// thread that waits on it itself: while registered, every write to the
    /// pipe would also wake the reactor. The next async read registers it
    /// again.
    pub(crate) fn deregister(&mut self) {
        if let State::Registered(_) = self.state {
            let State::Registered(fd) = std::mem::replace(&mut self.state, State::Closed) else {
                unreachable!()
            };
            self.state = State::Idle(fd.into_inner());
        }
    }

    /// The descriptor, unless the pipe was closed.
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.raw()
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let fd = self.registered()?;
        loop {
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|inner| op(inner.as_raw_fd())) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    /// Enlarges the pipe (best effort) when a reader finds it full, so that
    /// large outputs take fewer wake-ups and reads.
    pub(crate) fn grow(&self, bytes: usize) {
        if self.raw().is_some() {
            let _ = sys::fd::set_pipe_capacity(self.borrow(), bytes);
        }
    }

    /// Closes the descriptor (deregistering it), so the reader sees EOF.
    pub(crate) fn close(&mut self) {
        self.state = State::Closed;
    }

    /// Deregisters and restores blocking mode.
    pub(crate) fn into_owned_fd(mut self) -> io::Result<OwnedFd> {
        let fd = match std::mem::replace(&mut self.state, State::Closed) {
            State::Idle(fd) => fd,
            State::Registered(fd) => fd.into_inner(),
            State::Closed => return Err(closed_error()),
        };
        sys::fd::set_nonblocking(fd.as_fd(), false)?;
        Ok(fd)
    }

    fn borrow(&self) -> BorrowedFd<'_> {
        match &self.state {
            State::Idle(fd) => fd.as_fd(),
            State::Registered(fd) => fd.get_ref().as_fd(),
            State::Closed => panic!("brood: this pipe was shut down; it has no descriptor"),
        }
    }
}

macro_rules! pipe_type {
    ($(#[$doc:meta])* $name:ident, $std:ty, $interest:expr) => {
        $(#[$doc])*
        pub struct $name {
            pub(crate) pipe: Pipe,
        }

        impl $name {
            /// Wraps a standard-library pipe, switching it to non-blocking
            /// mode. It is registered with the Tokio reactor on first use.
            pub fn from_std(inner: $std) -> io::Result<Self> {
                Self::from_owned_fd(OwnedFd::from(inner))
            }

            pub(crate) fn from_owned_fd(fd: OwnedFd) -> io::Result<Self> {
                Ok($name { pipe: Pipe::new(fd, $interest)? })
            }

            /// Converts into the underlying descriptor, deregistered and back
            /// in blocking mode.
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.pipe.into_owned_fd()
            }
        }

        impl AsFd for $name {
            /// # Panics
            ///
            /// If the pipe was shut down (its descriptor is closed).
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.borrow()
            }
        }

        impl AsRawFd for $name {
            /// Returns `-1` once the pipe was shut down.
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.raw().unwrap_or(-1)
            }
        }

        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            /// Hands the pipe to another child, e.g. to connect two commands.
            /// Restores blocking mode first.
            fn try_from(value: $name) -> io::Result<Stdio> {
                value.into_owned_fd().map(Stdio::from)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.pipe.raw()).finish()
            }
        }
    };
}

pipe_type!(
    /// The write end of a child's standard input.
    ///
    /// [`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown) closes
    /// the pipe, so the child sees end-of-file even while this value lives.
    ChildStdin,
    std::process::ChildStdin,
    Interest::WRITABLE
);
pipe_type!(
    /// The read end of a child's standard output.
    ChildStdout,
    std::process::ChildStdout,
    Interest::READABLE
);
pipe_type!(
    /// The read end of a child's standard error.
    ChildStderr,
    std::process::ChildStderr,
    Interest::READABLE
);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.pipe.poll_write_with(cx, |fd| sys::fd::write(fd, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.pipe
            .poll_write_with(cx, |fd| sys::fd::writev(fd, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the pipe: the child reads end-of-file.
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pipe.close();
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ChildStdout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.pipe.poll_read(cx, buf)
    }
}

impl AsyncRead for ChildStderr {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.pipe.poll_read(cx, buf)
    }
}
