//! Placing a child that std spawns in a cgroup before it execs: a
//! `pre_exec` hook that writes `0` ("the writer") to an open
//! `cgroup.procs`.
//!
//! Contained commands that brood's own spawn cannot represent (a `pre_exec`
//! hook of the user's, options only std knows) are spawned by std, with
//! this hook. The hook reads the descriptor from a [`Placement`] slot that
//! brood arms around each spawn and clears afterwards, so one hook, installed
//! once per command, serves every later spawn of it, and does nothing when
//! the slot is clear (a spawn that is not contained, or after a failure).
//!
//! std runs the hooks in the order they were registered, after its own
//! set-up (standard streams, groups, uid, directory, process group) and
//! just before exec; brood installs this one before any hook the user gives
//! `Command::pre_exec`, so no user hook runs outside the cgroup.
//!
//! Owns: [`Placement`], [`install_placement_hook`]. Calls: `process`
//! (`pre_exec`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// The descriptor the placement hook writes to, or `-1` for none.
#[derive(Debug)]
pub(crate) struct Placement {
    procs: AtomicI32,
}

/// Clears a [`Placement`] when dropped, ending the borrow of the
/// `cgroup.procs` descriptor it was armed with.
#[derive(Debug)]
pub(crate) struct Armed<'a> {
    slot: &'a Placement,
    _procs: BorrowedFd<'a>,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.slot.procs.store(-1, Ordering::Release);
    }
}

impl Placement {
    /// Makes the next spawns (until the guard drops) move their child into
    /// the cgroup whose `cgroup.procs` is open as `procs`. The descriptor is
    /// close-on-exec, which keeps it open in the forked child until exec,
    /// long enough for the hook.
    pub(crate) fn arm<'a>(&'a self, procs: BorrowedFd<'a>) -> Armed<'a> {
        self.procs.store(procs.as_raw_fd(), Ordering::Release);
        Armed {
            slot: self,
            _procs: procs,
        }
    }
}

/// Installs the placement hook on `command` (after any hooks it has
/// already) and returns its slot, clear.
pub(crate) fn install_placement_hook(command: &mut std::process::Command) -> Arc<Placement> {
    let slot = Arc::new(Placement {
        procs: AtomicI32::new(-1),
    });
    let theirs = Arc::clone(&slot);
    let hook = move || -> io::Result<()> {
        // The forked child's copy of the slot, as it was at the fork: armed
        // by the spawning thread before it called std's spawn.
        let fd = theirs.procs.load(Ordering::Acquire);
        if fd < 0 {
            return Ok(());
        }
        loop {
            // SAFETY: write(2) of a static one-byte buffer; `fd` is open in
            // this forked child (close-on-exec closes it only at exec).
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            if n == 1 {
                return Ok(());
            }
            // The child's own errno (it is a forked copy); building an
            // io::Error from it does not allocate.
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    };
    // SAFETY: the hook makes one async-signal-safe system call (retried on
    // EINTR), reads an atomic and builds an io::Error from an errno, which
    // does not allocate: all of it is allowed between fork and exec.
    unsafe { crate::sys::process::pre_exec(command, hook) };
    slot
}
