//! The `Arc`-shared part of a child: its OS handle, its exit cell, and how
//! brood stops it. `Child`, every `ChildHandle`, the SIGCHLD dispatcher's pid
//! table and the background reaper all point at the same `Shared`.

use super::exit::{Exit, ExitCell, Kill, Wait};
use crate::reaper;
use crate::rusage::ResourceUsage;
use crate::signal::Signal;
use crate::sync::Arc;
use crate::sys;
use std::io;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

#[cfg(target_os = "linux")]
use std::os::fd::BorrowedFd;

/// The OS side of one child: its pid and, on the pidfd path, its pidfd.
///
/// The pidfd is opened lazily, on the first wait, signal or hand-off to the
/// background reaper, not at spawn: every open descriptor is copied into each
/// later child's descriptor table by the kernel, so holding one per running
/// child would make spawning slower the more children are alive. Opening late is just as safe:
/// it only ever happens while the exit cell's lock is held and the child is
/// unreaped, so the pid still names our child. The first `waitid` on the new
/// pidfd double-checks that (it fails with ECHILD for anything but our child).
#[derive(Debug)]
pub(crate) struct Process {
    pid: u32,
    /// `Some` on the pidfd path; the cell fills on first use.
    #[cfg(target_os = "linux")]
    pidfd: Option<std::sync::OnceLock<sys::linux::Pidfd>>,
}

impl Process {
    /// A child watched through SIGCHLD: known by pid alone.
    pub(crate) fn by_pid(pid: u32) -> Self {
        Process {
            pid,
            #[cfg(target_os = "linux")]
            pidfd: None,
        }
    }

    /// A child watched through a pidfd, opened on first use.
    #[cfg(target_os = "linux")]
    pub(crate) fn with_pidfd(pid: u32) -> Self {
        Process {
            pid,
            pidfd: Some(std::sync::OnceLock::new()),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this child is watched through a pidfd.
    pub(crate) fn uses_pidfd(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.pidfd.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// The pidfd, if it has been opened.
    #[cfg(target_os = "linux")]
    pub(crate) fn pidfd(&self) -> Option<&sys::linux::Pidfd> {
        self.pidfd.as_ref()?.get()
    }

    /// The pidfd, opening it if needed. `Ok(None)`: not the pidfd path.
    ///
    /// Callers hold the exit cell's lock and know the child is unreaped
    /// (the `Wait` and `Kill` contracts), so `pid` still names our child.
    #[cfg(target_os = "linux")]
    fn open_pidfd(&self) -> io::Result<Option<BorrowedFd<'_>>> {
        let Some(cell) = &self.pidfd else {
            return Ok(None);
        };
        if cell.get().is_none() {
            let fd = sys::linux::Pidfd::open(self.pid).map_err(|e| {
                // No such process although unreaped by us: reaped elsewhere.
                if e.raw_os_error() == Some(libc::ESRCH) {
                    io::Error::from_raw_os_error(libc::ECHILD)
                } else {
                    e
                }
            })?;
            // Serialised by the exit cell's lock: nobody else can be here.
            let _ = cell.set(fd);
        }
        Ok(cell.get().map(|fd| fd.as_fd()))
    }
}

/// Descriptors ran out: the pidfd cannot be opened now, but the pid is safe
/// to use by number (see `Process::open_pidfd`).
#[cfg(target_os = "linux")]
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
    )
}

impl Wait for Process {
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
        #[cfg(target_os = "linux")]
        match self.open_pidfd() {
            Ok(Some(pidfd)) => {
                return Ok(sys::linux::waitid_pidfd(pidfd, true)?
                    .map(|(status, raw)| (status, ResourceUsage::from_raw(&raw))));
            }
            Ok(None) => {}
            Err(e) if out_of_descriptors(&e) => {}
            Err(e) => return Err(e),
        }
        // Safe by pid only because callers hold the exit cell's lock and the
        // child is unreaped, so the pid still names our child.
        Ok(
            sys::wait4(self.pid, true)?
                .map(|(status, raw)| (status, ResourceUsage::from_raw(&raw))),
        )
    }
}

impl Kill for Process {
    fn kill(&self, signal: i32) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        match self.open_pidfd() {
            Ok(Some(pidfd)) => return sys::linux::pidfd_send_signal(pidfd, signal),
            Ok(None) => {}
            Err(e) if out_of_descriptors(&e) => {}
            Err(e) => return Err(e),
        }
        // As in `try_wait`: unreaped under the lock, so the pid is ours.
        sys::kill(self.pid, signal)
    }
}

/// How brood stops a child on the user's behalf (kill_on_drop, timeouts,
/// output caps).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StopPolicy {
    /// `None`: SIGKILL at once. `Some(d)`: SIGTERM, then SIGKILL after `d`.
    pub(crate) grace: Option<Duration>,
    /// The child was spawned as the leader of a new process group, so stops
    /// go to the whole group.
    pub(crate) group: bool,
}

/// Everything about one child that outlives the `Child` value.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) process: Process,
    pub(crate) cell: ExitCell,
    pub(crate) stop: StopPolicy,
    /// Set once the background reaper (pidfd path) watches this child.
    #[cfg(target_os = "linux")]
    background: AtomicBool,
    /// Set when the `Child` was dropped before the exit was collected.
    orphaned: AtomicBool,
    /// When `spawn` returned; see `poll_inline`.
    #[cfg(target_os = "linux")]
    spawned_at: std::time::Instant,
}

impl Shared {
    pub(crate) fn new(process: Process, stop: StopPolicy) -> Self {
        Shared {
            process,
            cell: ExitCell::default(),
            stop,
            #[cfg(target_os = "linux")]
            background: AtomicBool::new(false),
            orphaned: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            spawned_at: std::time::Instant::now(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Reaps the child if it has exited.
    pub(crate) fn try_reap(&self) -> Option<Exit> {
        self.reap_fresh().map(|(exit, _)| exit)
    }

    /// Reaps the child if it has exited; the flag says whether this call was
    /// the one that reaped it.
    pub(crate) fn reap_fresh(&self) -> Option<(Exit, bool)> {
        let (exit, fresh) = self.cell.try_reap_fresh(&self.process, |_exit| {
            // Before publication, so the event precedes every observer of
            // the exit. A subscriber runs under the cell's lock here.
            #[cfg(feature = "tracing")]
            {
                crate::trace::exit(self.pid(), _exit);
                if self.orphaned.load(Ordering::Acquire) {
                    crate::trace::orphan_reaped(self.pid());
                }
            }
        })?;
        if fresh {
            reaper::forget(self);
        }
        Some((exit, fresh))
    }

    /// Records that the owning `Child` is gone: whoever reaps it now reaps
    /// an orphan.
    pub(crate) fn mark_orphaned(&self) {
        self.orphaned.store(true, Ordering::Release);
    }

    /// Marks the child as watched by the background reaper; returns `true`
    /// the first time only.
    #[cfg(target_os = "linux")]
    pub(crate) fn claim_background(&self) -> bool {
        !self.background.swap(true, Ordering::AcqRel)
    }

    /// Polls for the exit from the task that owns the `Child`.
    ///
    /// On the pidfd path with a Tokio runtime this registers the pidfd with
    /// that runtime's reactor and reaps in the woken task itself: no helper
    /// thread sits between the exit and the waiting task. Everywhere else
    /// (SIGCHLD path, no runtime, runtime shut down) the background reaper or
    /// the SIGCHLD dispatcher reaps, and this task parks on the exit cell.
    pub(crate) fn poll_exit(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
    ) -> Poll<Exit> {
        #[cfg(target_os = "linux")]
        if !self.background.load(Ordering::Acquire) {
            if let Some(poll) = self.poll_inline(cx) {
                return poll;
            }
        }
        if let Some(exit) = self.cell.get() {
            self.cell.cancel(key);
            return Poll::Ready(exit);
        }
        self.poll_shared(cx, key)
    }

    /// Polls for the exit as one of possibly many waiters (shared handles),
    /// relying on the background reaper or the dispatcher to reap.
    pub(crate) fn poll_shared(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
    ) -> Poll<Exit> {
        if key.is_none() {
            if let Err(e) = reaper::watch(self) {
                // Nothing will ever reap it for us: report the failure.
                return Poll::Ready(Exit::failed(&e));
            }
        }
        self.cell.poll(cx, key)
    }

    /// The inline pidfd driver. `None` means "not available here, fall back".
    #[cfg(target_os = "linux")]
    fn poll_inline(&self, cx: &mut Context<'_>) -> Option<Poll<Exit>> {
        if !self.process.uses_pidfd() {
            return None;
        }
        if let Some(exit) = self.cell.get() {
            // Awaited again after the exit: nothing to register.
            return Some(Poll::Ready(exit));
        }
        if !self.process.pidfd().is_some_and(|p| p.is_registered()) {
            // First poll. A young child (the usual case: awaited right after
            // spawn) is still running: just open its pidfd. An older one gets
            // a reap attempt first, which costs no epoll registration if it
            // already exited, and which also proves the lazily opened pidfd
            // is our child (a foreign reaper and a recycled pid take far
            // longer than YOUNG).
            const YOUNG: Duration = Duration::from_millis(10);
            let opened = (self.spawned_at.elapsed() < YOUNG)
                .then(|| {
                    self.cell
                        .while_running(|| self.process.open_pidfd().is_ok())
                })
                .flatten();
            if opened != Some(true) {
                if let Some(exit) = self.try_reap() {
                    return Some(Poll::Ready(exit));
                }
            }
        }
        // No pidfd (descriptors ran out): fall back.
        match self.process.pidfd()?.poll_exit(cx, || self.try_reap()) {
            Poll::Pending => Some(Poll::Pending),
            Poll::Ready(Ok(exit)) => Some(Poll::Ready(exit)),
            // No runtime, or the one the pidfd was registered with is gone:
            // fall back.
            Poll::Ready(Err(_)) => None,
        }
    }

    /// Sends `signal` to the child alone. After the child is reaped this sends
    /// nothing and succeeds: its pid may already belong to someone else.
    pub(crate) fn signal(&self, signal: Signal) -> io::Result<()> {
        #[cfg(feature = "tracing")]
        if self.cell.get().is_none() {
            crate::trace::signal(self.pid(), signal, false);
        }
        signal_unless_reaped(&self.cell, &self.process, signal)
    }

    /// Whether the child leads its own process group.
    fn leads_group(&self) -> io::Result<bool> {
        if self.stop.group {
            return Ok(true);
        }
        match self
            .cell
            .while_running(|| sys::getpgid(self.pid()).map(|g| g == self.pid()))
        {
            Some(r) => r,
            None => Ok(false),
        }
    }

    /// Sends `signal` to the child's process group.
    pub(crate) fn signal_group(&self, signal: Signal) -> io::Result<()> {
        if !self.leads_group()? {
            if self.cell.get().is_some() && !self.stop.group {
                // Reaped, and never known to lead a group: nothing to reach.
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the child does not lead its own process group; spawn it with process_group(0)",
            ));
        }
        self.send_group(signal)
    }

    /// killpg on the child's group. The group id stays reserved by the kernel
    /// while any member lives, so this reaches the same group even after the
    /// leader was reaped; ESRCH (group empty) counts as success.
    fn send_group(&self, signal: Signal) -> io::Result<()> {
        #[cfg(feature = "tracing")]
        crate::trace::signal(self.pid(), signal, true);
        match sys::killpg(self.pid(), signal.as_raw()) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    /// Whether the child's process group (it leads one) still has members,
    /// zombies included: `killpg(pgid, 0)`.
    pub(crate) fn group_has_members(&self) -> io::Result<bool> {
        match sys::killpg(self.pid(), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends a stop signal as the stop policy says: to the group if the child
    /// leads one, else to the child.
    pub(crate) fn send_stop(&self, signal: Signal) -> io::Result<()> {
        if self.stop.group {
            self.send_group(signal)
        } else {
            self.signal(signal)
        }
    }

    /// Starts stopping the child on the user's behalf without waiting:
    /// SIGKILL at once, or SIGTERM now and SIGKILL from the background reaper
    /// once the grace period ends.
    pub(crate) fn begin_stop(self: &Arc<Self>) -> io::Result<()> {
        match self.stop.grace {
            None => self.send_stop(Signal::KILL),
            Some(grace) => {
                self.send_stop(Signal::TERM)?;
                reaper::kill_after(self, grace)
            }
        }
    }
}

/// Sends `signal` through `process` unless `cell` says the child was reaped,
/// holding the cell's lock meanwhile so the child cannot be reaped (and its
/// pid recycled) in between. Sending nothing after the reap is success.
fn signal_unless_reaped(cell: &ExitCell, process: impl Kill, signal: Signal) -> io::Result<()> {
    match cell.while_running(|| process.kill(signal.as_raw())) {
        None => Ok(()),
        // A zombie still accepts signals, so ESRCH means the child was
        // reaped behind our back; there is nobody left to signal.
        Some(Err(e)) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Some(other) => other,
    }
}

impl Kill for Shared {
    fn kill(&self, signal: i32) -> io::Result<()> {
        self.signal(Signal::from_raw(signal))
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::unix::process::ExitStatusExt;

    /// Records signals; exits when it receives `dies_on`.
    struct MockProcess {
        sent: RefCell<Vec<i32>>,
        exited: RefCell<bool>,
        dies_on: i32,
        errno: Option<i32>,
    }

    impl MockProcess {
        fn new(dies_on: i32) -> Self {
            MockProcess {
                sent: RefCell::new(Vec::new()),
                exited: RefCell::new(false),
                dies_on,
                errno: None,
            }
        }
    }

    impl Kill for MockProcess {
        fn kill(&self, signal: i32) -> io::Result<()> {
            if let Some(errno) = self.errno {
                return Err(io::Error::from_raw_os_error(errno));
            }
            self.sent.borrow_mut().push(signal);
            if signal == self.dies_on {
                *self.exited.borrow_mut() = true;
            }
            Ok(())
        }
    }

    impl Wait for MockProcess {
        fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
            Ok(self
                .exited
                .borrow()
                .then(|| (ExitStatus::from_raw(9), ResourceUsage::default())))
        }
    }

    #[test]
    fn signals_reach_a_running_child_and_never_a_reaped_one() {
        let cell = ExitCell::default();
        let p = MockProcess::new(libc::SIGKILL);
        signal_unless_reaped(&cell, &p, Signal::USR1).unwrap();
        signal_unless_reaped(&cell, &p, Signal::KILL).unwrap();
        assert!(cell.try_reap(&p).is_some());
        // Reaped: the pid may be someone else's now. Nothing is sent.
        signal_unless_reaped(&cell, &p, Signal::TERM).unwrap();
        assert_eq!(*p.sent.borrow(), vec![libc::SIGUSR1, libc::SIGKILL]);
    }

    #[test]
    fn esrch_means_gone_and_other_errors_surface() {
        let cell = ExitCell::default();
        let mut p = MockProcess::new(0);
        p.errno = Some(libc::ESRCH);
        signal_unless_reaped(&cell, &p, Signal::TERM).unwrap();
        p.errno = Some(libc::EINVAL);
        let err = signal_unless_reaped(&cell, &p, Signal::from_raw(999)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
