//! The background thread's wake pipe: how the SIGCHLD handler and the rest of
//! brood wake the thread, and what they tell it.
//!
//! Everything written to it is a `sys::sigchld::WakeRecord` (the format
//! lives with the handler, which writes records too). Both ends are
//! non-blocking: a full pipe loses records, which is harmless, since the
//! thread is awake then and the dispatcher's peek finds every exited child.
//!
//! Owns: [`WakePipe`]. Calls: `sys::fd`, `sys::sigchld::WakeRecord`.

use crate::sys;
use crate::sys::sigchld::WakeRecord;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Both ends of the wake pipe.
pub(super) struct WakePipe {
    read: OwnedFd,
    write: OwnedFd,
}

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("brood: {what}: {e}"))
}

impl WakePipe {
    pub(super) fn new() -> io::Result<Self> {
        let (read, write) =
            sys::fd::nonblocking_pipe().map_err(|e| context("cannot create the wake pipe", e))?;
        Ok(WakePipe { read, write })
    }

    /// The read end, for the thread's poller.
    pub(super) fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// A duplicate of the write end for the SIGCHLD handler, which keeps it
    /// for the rest of the process.
    pub(super) fn handler_end(&self) -> io::Result<OwnedFd> {
        self.write
            .try_clone()
            .map_err(|e| context("cannot duplicate the wake pipe", e))
    }

    /// Wakes the thread so it recomputes its timeout.
    pub(super) fn wake(&self) {
        self.send(WakeRecord::Wake);
    }

    /// Wakes the thread and makes it dispatch (look for exited children)
    /// although no SIGCHLD named a pid.
    pub(super) fn wake_to_dispatch(&self) {
        self.send(WakeRecord::Dispatch);
    }

    fn send(&self, record: WakeRecord) {
        // A full pipe already wakes the thread.
        let _ = sys::fd::write(self.write.as_raw_fd(), &record.encode());
    }

    /// Reads every record written so far; see [`drain_fd`].
    pub(super) fn drain(&self, pids: &mut Vec<u32>) -> io::Result<bool> {
        drain_fd(self.read.as_raw_fd(), pids)
    }
}

/// Reads every record written so far to the non-blocking pipe `fd` (the
/// wake pipe, or the listeners' pipe), appending the pids of exited
/// children to `pids`. Returns whether a dispatch is due (a pid or a
/// dispatch record arrived).
pub(super) fn drain_fd(fd: RawFd, pids: &mut Vec<u32>) -> io::Result<bool> {
    let mut buf = [0u8; 128 * WakeRecord::LEN];
    let mut dispatch = false;
    loop {
        let n = match sys::fd::read(fd, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(dispatch),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(dispatch);
        }
        // Records are written whole and atomically, so none straddles reads.
        for chunk in buf[..n].chunks_exact(WakeRecord::LEN) {
            let mut record = [0; WakeRecord::LEN];
            record.copy_from_slice(chunk);
            match WakeRecord::decode(record) {
                WakeRecord::Exited(pid) => {
                    pids.push(pid);
                    dispatch = true;
                }
                WakeRecord::Dispatch => dispatch = true,
                WakeRecord::Wake => {}
            }
        }
        if n < buf.len() {
            return Ok(dispatch);
        }
    }
}
