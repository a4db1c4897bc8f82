//! One contained child's cgroup, as its tenant sees it: its members, its
//! events, the stop primitives (freeze, signal, thaw, kill), its figures,
//! and its end (removal, or return to a pool).
//!
//! A tenancy ends once: from then on, every operation on the cgroup finds
//! it gone, under the same lock the end takes, so a stop that comes late
//! never reaches a later tenant of a reused cgroup.
//!
//! Owns: [`ChildCgroup`], [`Signalled`]. Calls: `dir`, `events`, `fs`,
//! `pool`, `usage`, `sys::cgroupfs`, `sys::pidfd`, `sys::process`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use super::dir::CgroupDir;
use super::events::{self, PopulatedWatch};
use super::fs::{self, read_small, MAX_NESTING};
use super::pool::{Idle, Pool};
use super::usage::{self, CgroupUsage};
use crate::sync::{Mutex, MutexGuard};
use crate::sys::{self, cgroupfs};

/// How many members get a pidfd at once while a stop signals them (see
/// `ChildCgroup::signal_frozen_members_now`); bounds the descriptors held.
const PIDFD_BATCH: usize = 256;

/// A per-child cgroup that brood created (or took from a pool), with its
/// directory open (the descriptor `clone3(CLONE_INTO_CGROUP)` takes).
///
/// Dropping it removes the directory if it is empty and its tenancy has not
/// ended yet.
#[derive(Debug)]
pub(crate) struct ChildCgroup {
    dir: Arc<CgroupDir>,
    /// Where the cgroup goes once the tree has ended, if anywhere.
    pool: Option<Arc<Pool>>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The tenancy has ended: the directory was removed, or handed back to
    /// the pool for another child. Nothing touches it any more.
    gone: bool,
    /// The tree was seen empty ([`ChildCgroup::members`]), or is retired
    /// as over. It stays empty (no member is left to fork), so its figures
    /// no longer change.
    empty_seen: bool,
    /// The cumulative figures read just before the tenancy ended, or, once
    /// the tree was seen empty, the first ones read after that.
    last_usage: Option<CgroupUsage>,
    /// The cumulative CPU figures when this tenancy began: zero for a fresh
    /// cgroup, what the last tenant left for a reused one.
    start: CgroupUsage,
    /// `memory.peak` was found missing (no memory controller for this
    /// cgroup): the figures are read without trying it again.
    no_memory_peak: bool,
}

impl State {
    /// Figures that can no longer change, if some were read.
    fn final_usage(&self) -> Option<CgroupUsage> {
        if self.gone || self.empty_seen {
            self.last_usage
        } else {
            None
        }
    }
}

/// What [`ChildCgroup::signal_members`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signalled {
    /// How many members were sent the signal.
    pub(crate) members: usize,
    /// Whether they were all frozen while it was sent. `false` when the
    /// freeze did not complete in time (a member in uninterruptible sleep,
    /// say): they were signalled anyway, and one may have forked past it.
    pub(crate) frozen: bool,
}

impl ChildCgroup {
    /// The first tenant of a cgroup just made.
    pub(super) fn new(dir: CgroupDir, pool: Option<Arc<Pool>>) -> Self {
        ChildCgroup {
            dir: Arc::new(dir),
            pool,
            state: Mutex::default(),
        }
    }

    /// The next tenant of a cgroup `pool` kept. It had no memory controller
    /// (or the pool would not have kept it).
    pub(super) fn reuse(idle: Idle, pool: Arc<Pool>) -> Self {
        ChildCgroup {
            dir: idle.dir,
            pool: Some(pool),
            state: Mutex::new(State {
                start: idle.figures,
                no_memory_peak: true,
                ..State::default()
            }),
        }
    }

    /// The directory's name (see `name.rs` for the scheme).
    #[cfg(test)]
    pub(crate) fn name(&self) -> &str {
        self.dir.name()
    }

    /// The directory's path.
    #[cfg(any(test, feature = "tracing"))]
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The directory, opened `O_RDONLY | O_DIRECTORY | O_CLOEXEC`: the
    /// descriptor `clone3` takes as `cgroup` with `CLONE_INTO_CGROUP`. For
    /// the spawn, before the tenancy can end.
    pub(crate) fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir.fd()
    }

    /// Opens `cgroup.procs` (`O_WRONLY | O_CLOEXEC`), for a placement by
    /// the child itself: a forked child writes `"0"` to it before it execs.
    /// Opened only when needed (clone3 places the child through the
    /// directory alone), and closed once the child is placed: every open
    /// descriptor makes each later spawn copy a larger table.
    pub(crate) fn open_procs(&self) -> io::Result<File> {
        cgroupfs::open_file_at(self.dir_fd(), Path::new("cgroup.procs"), libc::O_WRONLY)
    }

    /// Reads `cgroup.events` once (not through the watch's descriptor).
    #[cfg(test)]
    pub(crate) fn events(&self) -> io::Result<super::events::Events> {
        let _tenant = self.tenant()?;
        self.dir.events()
    }

    /// Whether any process is left in the cgroup (or in cgroups the job
    /// created inside it).
    #[cfg(test)]
    pub(crate) fn populated(&self) -> io::Result<bool> {
        self.events().map(|e| e.populated)
    }

    /// A watch for the moment the cgroup empties (`populated 0`), on the
    /// cgroup's watch descriptor; see [`PopulatedWatch`].
    pub(crate) fn watch_populated(&self) -> PopulatedWatch {
        PopulatedWatch::new(self.dir.events_for_watch())
    }

    /// The pids of every process in the cgroup and in cgroups nested in it
    /// (a job may create its own). Exited processes that are not reaped yet
    /// (zombies) are not members: the kernel drops them from `cgroup.procs`
    /// at exit.
    ///
    /// An empty tree, the common case once a job is over, costs one read
    /// of `cgroup.events`, not a listing of `cgroup.procs` and of every
    /// nested cgroup, and no read at all once it was seen empty.
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        let mut state = self.tenant()?;
        // Empty once, empty for good: no member is left to fork.
        if state.empty_seen {
            return Ok(Vec::new());
        }
        if !self.dir.events()?.populated {
            state.empty_seen = true;
            return Ok(Vec::new());
        }
        self.list_members()
    }

    /// [`ChildCgroup::members`] by listing, whatever `populated` says.
    fn list_members(&self) -> io::Result<Vec<u32>> {
        let mut pids = Vec::new();
        collect_members(self.dir_fd(), 0, &mut pids)?;
        Ok(pids)
    }

    /// Freezes every member (`cgroup.freeze`) and waits, event-driven, up to
    /// `timeout` for `frozen 1`. A frozen member runs no user code, so it
    /// cannot fork, until a thaw; fatal signals still kill it.
    /// Fails with `TimedOut` if the freeze did not complete in time (the
    /// cgroup then stays freezing; thaw it).
    #[cfg(test)]
    pub(crate) fn freeze(&self, timeout: Duration) -> io::Result<()> {
        let _tenant = self.tenant()?;
        self.freeze_now(timeout)
    }

    fn freeze_now(&self, timeout: Duration) -> io::Result<()> {
        // Opened before the write, so the first read in `wait_until` comes
        // after it; a completion notified before that read is seen by it.
        let events = events::open_events(self.dir_fd())?;
        self.write_interface("cgroup.freeze", b"1")?;
        if events::wait_until(&events, &AtomicU64::new(0), timeout, |e| e.frozen)? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "brood: cgroup {} did not freeze within {timeout:?}",
                    self.dir.path().display()
                ),
            ))
        }
    }

    /// Lets frozen members run again. Does not wait: signals sent while
    /// frozen are delivered as each member resumes, before any user code.
    #[cfg(test)]
    pub(crate) fn thaw(&self) -> io::Result<()> {
        let _tenant = self.tenant()?;
        self.thaw_now()
    }

    fn thaw_now(&self) -> io::Result<()> {
        self.write_interface("cgroup.freeze", b"0")
    }

    /// The first stop of a contained tree: `signal` to every member present
    /// now, with the cgroup frozen while they are signalled, so that none
    /// forks a new process past it. Then the cgroup is thawed (unless it was
    /// frozen already before the call, by someone else) and the members
    /// handle the signal.
    ///
    /// A fatal signal the member does not handle (SIGTERM with the default
    /// action) kills it at once, frozen or not; a handled one runs its
    /// handler on thaw. Members forked later (by a handler) are reached by
    /// [`ChildCgroup::kill`].
    pub(crate) fn signal_members(
        &self,
        signal: i32,
        freeze_timeout: Duration,
    ) -> io::Result<Signalled> {
        let _tenant = self.tenant()?;
        self.signal_members_now(signal, freeze_timeout)
    }

    fn signal_members_now(&self, signal: i32, freeze_timeout: Duration) -> io::Result<Signalled> {
        let was_frozen = match read_small(self.dir_fd(), "cgroup.freeze") {
            Ok(state) => state.trim() == "1",
            // No freezer (Linux before 5.2): signal without it.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.dir_exists() => {
                let members = self.signal_frozen_members_now(signal)?;
                return Ok(Signalled {
                    members,
                    frozen: false,
                });
            }
            Err(e) => return Err(e),
        };
        let frozen = match self.freeze_now(freeze_timeout) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => false,
            Err(e) => {
                if !was_frozen {
                    let _ = self.thaw_now();
                }
                return Err(e);
            }
        };
        let signalled = self.signal_frozen_members_now(signal);
        // Thawed whatever the signalling did: a tree left frozen would hang.
        let thawed = if was_frozen { Ok(()) } else { self.thaw_now() };
        let members = signalled?;
        thawed?;
        Ok(Signalled { members, frozen })
    }

    /// Sends `signal` to every member, exactly: never to a process that
    /// merely reused a member's pid. Meant for a frozen cgroup (see
    /// [`ChildCgroup::signal_members`]); returns how many were signalled.
    ///
    /// While the cgroup is frozen no member forks, so the member set can
    /// only shrink (a member killed by someone, then reaped by a parent
    /// outside the cgroup, after which its pid can be reused). So each pid
    /// listed gets a pidfd first, and is signalled through it only if a
    /// second listing, taken after the pidfd was opened, still has the pid:
    /// then the pidfd names that member. Where pidfds are unavailable
    /// (seccomp, no descriptors left) the pid itself is signalled.
    #[cfg(test)]
    pub(crate) fn signal_frozen_members(&self, signal: i32) -> io::Result<usize> {
        let _tenant = self.tenant()?;
        self.signal_frozen_members_now(signal)
    }

    fn signal_frozen_members_now(&self, signal: i32) -> io::Result<usize> {
        let listed = self.list_members()?;
        let mut signalled = 0;
        for batch in listed.chunks(PIDFD_BATCH) {
            let mut by_pidfd = Vec::with_capacity(batch.len());
            let mut by_pid = Vec::new();
            for &pid in batch {
                match sys::pidfd::open(pid) {
                    Ok(fd) => by_pidfd.push((pid, fd)),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(_) => by_pid.push(pid),
                }
            }
            let still: HashSet<u32> = self.list_members()?.into_iter().collect();
            for (pid, pidfd) in &by_pidfd {
                if still.contains(pid) {
                    signalled += gone_is_fine(sys::pidfd::send_signal(pidfd.as_fd(), signal))?;
                }
            }
            for pid in by_pid {
                if still.contains(&pid) {
                    signalled += gone_is_fine(sys::process::kill(pid, signal))?;
                }
            }
        }
        Ok(signalled)
    }

    /// Kills every member, and every process forked meanwhile, at once
    /// (`cgroup.kill`, Linux 5.14). On older kernels: freeze, SIGKILL each
    /// member, thaw.
    pub(crate) fn kill(&self) -> io::Result<()> {
        let _tenant = self.tenant()?;
        match self.write_interface("cgroup.kill", b"1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.dir_exists() => self
                .signal_members_now(libc::SIGKILL, Duration::from_secs(1))
                .map(drop),
            other => other,
        }
    }

    /// The tree's figures: live during the tenancy, and after it ended the
    /// last ones read before the end. A reused cgroup's figures count this
    /// tenant's tree alone.
    ///
    /// Once the tree was seen empty, the figures are read once and kept,
    /// and the end does not read them again.
    pub(crate) fn usage(&self) -> io::Result<CgroupUsage> {
        let mut state = crate::sync::lock(&self.state);
        let cumulative = match state.final_usage() {
            Some(usage) => usage,
            None if state.gone => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "brood: cgroup {} was removed before its figures could be read",
                        self.dir.path().display()
                    ),
                ))
            }
            None => {
                let usage = self.read_usage(&mut state)?;
                if state.empty_seen {
                    state.last_usage = Some(usage);
                }
                usage
            }
        };
        Ok(cumulative.since(&state.start))
    }

    /// Removes the cgroup directory, keeping the last figures readable, and
    /// ends the tenancy.
    ///
    /// The kernel refuses (`EBUSY`) while any process is left in the tree;
    /// that is reported as `ResourceBusy`, and the caller tries again after
    /// the next `populated 0` notification, not on a timer: the kernel
    /// clears `populated` and allows `rmdir` on the same count, so a tree
    /// that reads empty is removable. Cgroups a job created inside are
    /// removed first. Removing twice, or a directory someone else removed,
    /// is `Ok`.
    pub(crate) fn remove(&self) -> io::Result<()> {
        let mut state = crate::sync::lock(&self.state);
        self.remove_locked(&mut state)
    }

    /// The tree has ended and nothing watches the cgroup's events any more:
    /// ends the tenancy, giving the cgroup to the pool if the command had
    /// one and it is clean (see `pool.rs`), else removing it as
    /// [`ChildCgroup::remove`] does.
    pub(crate) fn retire(&self) -> io::Result<()> {
        let mut state = crate::sync::lock(&self.state);
        if state.gone {
            return Ok(());
        }
        // Only an ended tree is retired: the figures read now are final,
        // and the removal below, if it comes to that, does not read them
        // again.
        state.empty_seen = true;
        let Some(pool) = &self.pool else {
            return self.remove_locked(&mut state);
        };
        self.keep_final_usage(&mut state);
        let Some(figures) = state.last_usage.filter(|_| state.no_memory_peak) else {
            return self.remove_locked(&mut state);
        };
        if !self.dir.is_clean() {
            return self.remove_locked(&mut state);
        }
        let idle = Idle {
            dir: Arc::clone(&self.dir),
            figures,
        };
        // From here on the next tenant may use it: this one is over first.
        state.gone = true;
        if let Err(idle) = pool.offer(idle) {
            // Full or closed: removed as without a pool.
            let _ = idle.dir.remove();
        }
        Ok(())
    }

    fn remove_locked(&self, state: &mut State) -> io::Result<()> {
        if state.gone {
            return Ok(());
        }
        self.keep_final_usage(state);
        match self.dir.remove() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "brood: cgroup {} still holds processes; remove it once it is empty",
                        self.dir.path().display()
                    ),
                ))
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("brood: removing cgroup {}: {e}", self.dir.path().display()),
                ))
            }
        }
        state.gone = true;
        Ok(())
    }

    /// Reads the figures while the directory is still this tenant's (unless
    /// final figures were read already); a failure keeps whatever figures
    /// an earlier attempt got.
    fn keep_final_usage(&self, state: &mut State) {
        if state.final_usage().is_none() {
            if let Ok(usage) = self.read_usage(state) {
                state.last_usage = Some(usage);
            }
        }
    }

    /// Whether the tenancy has ended ([`ChildCgroup::remove`] or
    /// [`ChildCgroup::retire`] succeeded).
    pub(crate) fn is_removed(&self) -> bool {
        crate::sync::lock(&self.state).gone
    }

    /// The state, locked for as long as the caller acts on the cgroup, or
    /// `NotFound` once the tenancy has ended.
    fn tenant(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = crate::sync::lock(&self.state);
        if state.gone {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "brood: cgroup {} is no longer this child's: its tree has ended",
                    self.dir.path().display()
                ),
            ));
        }
        Ok(state)
    }

    /// Reads the cumulative figures; called with the state locked.
    fn read_usage(&self, state: &mut State) -> io::Result<CgroupUsage> {
        let mut figures = self.dir.cpu_figures()?;
        if state.no_memory_peak {
            return Ok(figures);
        }
        figures.peak_memory = match read_small(self.dir_fd(), "memory.peak") {
            Ok(text) => Some(usage::parse_memory_peak(&text)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                state.no_memory_peak = true;
                None
            }
            Err(e) => return Err(e),
        };
        Ok(figures)
    }

    fn write_interface(&self, file: &str, value: &[u8]) -> io::Result<()> {
        let mut f = cgroupfs::open_file_at(self.dir_fd(), Path::new(file), libc::O_WRONLY)?;
        f.write_all(value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("brood: writing {}/{file}: {e}", self.dir.path().display()),
            )
        })
    }

    fn dir_exists(&self) -> bool {
        read_small(self.dir_fd(), "cgroup.procs").is_ok()
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        // Best effort: a tree still running keeps it (EBUSY), and the stale
        // sweep of a later brood process removes it once it is empty.
        let _ = self.remove();
    }
}

/// `1` if the signal was sent, `0` if the process was already gone.
fn gone_is_fine(sent: io::Result<()>) -> io::Result<usize> {
    match sent {
        Ok(()) => Ok(1),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(0),
        Err(e) => Err(e),
    }
}

fn collect_members(dir: BorrowedFd<'_>, depth: u32, pids: &mut Vec<u32>) -> io::Result<()> {
    for line in read_small(dir, "cgroup.procs")?.lines() {
        pids.push(line.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("brood: unexpected line in cgroup.procs: {line:?}"),
            )
        })?);
    }
    for child in fs::subdirectories(dir)? {
        if depth >= MAX_NESTING {
            return Err(io::Error::other(format!(
                "brood: cgroups nested more than {MAX_NESTING} deep"
            )));
        }
        let nested =
            cgroupfs::open_file_at(dir, Path::new(&child), libc::O_RDONLY | libc::O_DIRECTORY)
                .and_then(|sub| collect_members(sub.as_fd(), depth + 1, pids));
        match nested {
            // Removed by the job while it was listed (ENODEV: read after rmdir).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => {}
            other => other?,
        }
    }
    Ok(())
}
