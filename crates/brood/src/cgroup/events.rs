//! `cgroup.events`: waiting, without polling in a loop, until a cgroup is
//! empty (`populated 0`) or frozen (`frozen 1`).
//!
//! kernfs reports a change of `cgroup.events` as a priority event: `poll`
//! and `epoll` return `POLLPRI | POLLERR` (`EPOLLPRI | EPOLLERR`) on a
//! descriptor of the file once the file changed after that descriptor last
//! read it. Reading the file (from offset 0) re-arms it. The file always
//! reports itself readable, so `POLLIN`/`EPOLLIN` must never be asked for.
//!
//! Each open descriptor keeps its own "last read" mark, so a watch owns a
//! descriptor nobody else reads: a read through it by anyone but the waiter
//! would consume the change the waiter is about to be told about.
//!
//! The kernel notifies on the whole subtree's 0↔1 transitions of
//! `populated` and on changes of `frozen` only: members leaving one by one
//! cause no event until the last one is gone (a freeze and thaw cost a
//! populated watch one re-read each). It also limits the rate
//! (`CGROUP_FILE_NOTIFY_MIN_INTV`): a change within 10 ms of the previous
//! notification is delivered by a timer at the end of that window, so a
//! wake-up can come up to 10 ms after the change. None is lost.
//!
//! Owns: [`Events`], [`PopulatedWatch`], `wait_until`. Calls: `sys::cgroupfs`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sys::cgroupfs;

/// The two states `cgroup.events` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Events {
    /// Some process lives in the cgroup or one of its descendants.
    pub(crate) populated: bool,
    /// The cgroup and all its members are frozen.
    pub(crate) frozen: bool,
}

/// Parses a `cgroup.events` text (`populated 0|1`, `frozen 0|1`).
pub(crate) fn parse_events(text: &str) -> io::Result<Events> {
    let mut populated = None;
    let mut frozen = None;
    for line in text.lines() {
        let slot = match line.split_once(' ') {
            Some(("populated", v)) => (&mut populated, v),
            Some(("frozen", v)) => (&mut frozen, v),
            _ => continue,
        };
        *slot.0 = match slot.1.trim() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
    }
    match (populated, frozen) {
        (Some(populated), Some(frozen)) => Ok(Events { populated, frozen }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("brood: unexpected cgroup.events contents: {text:?}"),
        )),
    }
}

/// Opens `cgroup.events` of the cgroup directory `dir`.
pub(crate) fn open_events(dir: BorrowedFd<'_>) -> io::Result<File> {
    cgroupfs::open_file_at(dir, Path::new("cgroup.events"), libc::O_RDONLY)
}

/// Reads `cgroup.events` through `file` from offset 0 (kernfs makes the
/// text afresh), which also re-arms the change notification of that
/// descriptor.
pub(crate) fn read_events_at_start(file: &File) -> io::Result<Events> {
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0)?;
    parse_events(&String::from_utf8_lossy(&buf[..n]))
}

/// [`read_events_at_start`], counted in `reads`.
fn read_events(file: &File, reads: &AtomicU64) -> io::Result<Events> {
    reads.fetch_add(1, Ordering::Relaxed);
    read_events_at_start(file)
}

/// Blocks until `done(events)` holds or `timeout` passed; returns whether it
/// holds. Reads the file once, then once per change notification: the read
/// comes before each wait, so a change after it makes `poll` return at once
/// and none slips between reading and waiting.
pub(crate) fn wait_until(
    file: &File,
    reads: &AtomicU64,
    timeout: Duration,
    done: impl Fn(Events) -> bool,
) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if done(read_events(file, reads)?) {
            return Ok(true);
        }
        // Wait for a change; only a change is worth another read.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            // Round up, so a sub-millisecond remainder does not become a
            // busy zero-timeout poll.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            if cgroupfs::poll_priority(file.as_fd(), ms)? {
                break;
            }
        }
    }
}

/// A descriptor of one cgroup's `cgroup.events`, for waiting until the
/// cgroup is empty.
///
/// To wait in brood's background thread: add [`PopulatedWatch::as_fd`] to
/// its poller as a change watch (`Poller::watch_changes`); when it fires,
/// call [`PopulatedWatch::populated`]; `false` means the tree is gone. A
/// descriptor that has not read the file yet reports a change as soon as it
/// is armed (kernfs records what a descriptor has seen when it reads), so
/// the first look comes at once and no emptying is missed. To block a thread:
/// [`PopulatedWatch::wait_empty_timeout`].
#[derive(Debug)]
pub(crate) struct PopulatedWatch {
    file: Arc<File>,
    reads: AtomicU64,
}

impl PopulatedWatch {
    pub(crate) fn new(events: Arc<File>) -> Self {
        PopulatedWatch {
            file: events,
            reads: AtomicU64::new(0),
        }
    }

    /// Re-reads `populated`: call it after each notification (and once
    /// after arming the watch). Never blocks.
    pub(crate) fn populated(&self) -> io::Result<bool> {
        read_events(&self.file, &self.reads).map(|e| e.populated)
    }

    /// Blocks until the cgroup is empty or `timeout` passed; returns whether
    /// it is empty. For threads that may block; tasks use `into_async`.
    pub(crate) fn wait_empty_timeout(&self, timeout: Duration) -> io::Result<bool> {
        wait_until(&self.file, &self.reads, timeout, |e| !e.populated)
    }

    /// How often the file was read through this watch.
    #[cfg(test)]
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl AsFd for PopulatedWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_text_is_parsed_in_any_order() {
        assert_eq!(
            parse_events("populated 1\nfrozen 0\n").unwrap(),
            Events {
                populated: true,
                frozen: false
            }
        );
        assert_eq!(
            parse_events("frozen 1\npopulated 0\n").unwrap(),
            Events {
                populated: false,
                frozen: true
            }
        );
        assert!(parse_events("populated 1\n").is_err());
        assert!(parse_events("populated 2\nfrozen 0\n").is_err());
    }
}
