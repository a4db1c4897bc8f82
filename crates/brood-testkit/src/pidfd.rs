//! Processes held by a pidfd: a test watches a grandchild it did not spawn
//! through a descriptor opened while the process ran, so a recycled pid
//! never passes for it, and "gone" means exited (a zombie that its parent
//! has not reaped yet counts as gone).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A process, held by a pidfd opened while it ran.
#[derive(Debug)]
pub struct Watched {
    /// Its pid (for `/proc`, and messages).
    pub pid: u32,
    pidfd: OwnedFd,
}

impl Watched {
    /// Opens a pidfd for `pid`, which must exist.
    ///
    /// # Panics
    ///
    /// If `pidfd_open` fails (no such process, or no pidfds here).
    pub fn open(pid: u32) -> Watched {
        // SAFETY: pidfd_open takes two integers and returns a descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        assert!(fd >= 0, "pidfd_open({pid}): {}", io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Watched { pid, pidfd }
    }

    /// Whether it has exited (a pidfd polls readable from the exit on,
    /// zombie or reaped), waiting up to `limit`.
    pub fn gone_within(&self, limit: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if n > 0 {
                return true;
            }
            if n == 0 || left.is_zero() {
                return false;
            }
        }
    }

    /// Whether it has exited, now.
    pub fn gone(&self) -> bool {
        self.gone_within(Duration::ZERO)
    }

    /// Field `n` of its `/proc/<pid>/stat` (see [`crate::procfs::stat_field`]).
    ///
    /// # Panics
    ///
    /// If it is gone.
    pub fn stat_field(&self, n: usize) -> u64 {
        crate::procfs::stat_field(self.pid, n).unwrap_or_else(|| panic!("pid {} is gone", self.pid))
    }

    /// Sends SIGKILL through the pidfd: never to a recycled pid.
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent.
    pub fn kill(&self) {
        // SAFETY: pidfd_send_signal with a null info, on a pidfd we hold.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        assert_eq!(ret, 0, "{}", io::Error::last_os_error());
    }
}

/// Asserts that every process in `tree` (by role) has exited within
/// `limit`, naming the survivors.
pub fn assert_all_gone(tree: &HashMap<String, Watched>, limit: Duration) {
    let deadline = Instant::now() + limit;
    let survivors: Vec<_> = tree
        .iter()
        .filter(|(_, w)| !w.gone_within(deadline.saturating_duration_since(Instant::now())))
        .map(|(role, w)| format!("{role} ({})", w.pid))
        .collect();
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
}
