//! Watching any process, not only our children.
//!
//! Owns nothing. Calls: `sys::pidfd`, `reactor`.

use crate::reactor;
use crate::sys;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Returns a future that resolves when process `pid` exits, whoever its
/// parent is.
///
/// Fails at once if no such process exists. On Linux this uses a pidfd, so
/// it is immune to pid reuse from the moment this function returns; the
/// future must be polled inside a Tokio runtime. Elsewhere it fails with
/// [`io::ErrorKind::Unsupported`].
///
/// Watching does not reap: if `pid` is one of our own children, something
/// must still wait for it (the future resolves when it becomes a zombie).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let exited = brood::watch_pid(1234)?;
/// exited.await?;
/// println!("process 1234 is gone");
/// # Ok(()) }
/// ```
#[must_use = "the returned future resolves when the process exits, and only when awaited"]
pub fn watch_pid(pid: u32) -> io::Result<impl Future<Output = io::Result<()>> + Send + 'static> {
    if !sys::pidfd::SUPPORTED {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "brood: watch_pid needs pidfds, which only Linux has",
        ));
    }
    if pid == 0 || pid > i32::MAX as u32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("brood: {pid} is not a valid pid"),
        ));
    }
    let pidfd = sys::pidfd::open(pid).map_err(|e| {
        if e.raw_os_error() == Some(libc::ESRCH) {
            io::Error::new(io::ErrorKind::NotFound, format!("brood: no process {pid}"))
        } else {
            e
        }
    })?;
    Ok(wait_readable(pidfd))
}

async fn wait_readable(pidfd: OwnedFd) -> io::Result<()> {
    let fd: AsyncFd<OwnedFd> = reactor::register_owned(pidfd, Interest::READABLE)?;
    // A pidfd turns readable once when the process exits and stays so.
    let _guard = fd.readable().await?;
    Ok(())
}
