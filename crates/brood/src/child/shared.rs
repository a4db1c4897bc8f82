//! The `Arc`-shared part of a child: its OS handle, its exit cell, and how
//! brood stops it. `Child`, every `ChildHandle`, the table of live children
//! and the background thread all point at the same `Shared`; the reaper sees
//! it only as a [`Tracked`] child.
//!
//! Owns: [`Shared`], [`StopPolicy`], [`ProcessGroup`], and `Shared`'s
//! [`Tracked`] impl. Calls: `exit`, `group_stop` (a group's stops, with the
//! leader held), `process`, `waiters` (the owner's slot), `containment` (a
//! contained child's tree), `reaper` (tracking, timers, the pidfd watcher),
//! `sys`, `trace`.

use super::exit::{Collected, Exit, ExitCell, Kill};
use super::group_stop::{Finish, Group, GroupStops};
use super::process::Process;
use super::waiters::OwnerSlot;
use crate::containment::{CgroupTree, Tree};
use crate::reaper::{self, LazyPidfd, Reap, Tracked};
use crate::signal::Signal;
use crate::sync::Arc;
use crate::sys;
use std::io;
use std::os::fd::BorrowedFd;
use std::task::{Context, Poll};
use std::time::Duration;

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
    /// The child's containment, if it was spawned contained.
    pub(crate) tree: Option<Tree>,
    /// The group stops of a child whose stops reach its process group.
    group_stops: GroupStops,
}

/// The process group a child leads (its id is the child's pid), as the
/// group stops see it.
pub(crate) struct ProcessGroup(pub(crate) u32);

impl Group for ProcessGroup {
    fn signal(&self, signal: i32) -> io::Result<()> {
        match sys::process::killpg(self.0, signal) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    fn has_live_members(&self) -> io::Result<bool> {
        sys::process::group_has_live_members(self.0)
    }
}

impl Shared {
    pub(crate) fn new(process: Process, stop: StopPolicy) -> Self {
        Shared {
            process,
            cell: ExitCell::default(),
            stop,
            tree: None,
            group_stops: GroupStops::default(),
        }
    }

    /// The shared state of a contained child.
    pub(crate) fn contained(process: Process, stop: StopPolicy, tree: Tree) -> Self {
        Shared {
            tree: Some(tree),
            ..Shared::new(process, stop)
        }
    }

    /// The cgroup of a child contained in one.
    pub(crate) fn cgroup(&self) -> Option<&Arc<CgroupTree>> {
        self.tree.as_ref()?.cgroup()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Runs once, when the exit is collected (or found lost), under the exit
    /// cell's lock and before the exit is published: the `tracing` events
    /// precede every observer of the exit, and the table of live children
    /// forgets the child (the cell's lock is never taken under the table's,
    /// so this nesting cannot deadlock). A subscriber runs under the cell's
    /// lock here.
    ///
    /// An exit that had been announced kept its zombie in the SIGCHLD
    /// dispatcher's way: exits behind it that no scan covers (orphans
    /// adopted in subreaper mode) are found by one more dispatch now that it
    /// is gone.
    ///
    /// A contained tree is looked at: ended if empty, else watched
    /// (`CgroupTree::leader_reaped`).
    fn on_reaped(&self, _exit: &Exit, how: Collected) {
        #[cfg(feature = "tracing")]
        {
            crate::trace::exit(self.pid(), _exit.status(), _exit.usage());
            if how.orphan {
                crate::trace::orphan_reaped(self.pid());
            }
        }
        reaper::forget(self.pid(), self);
        if how.announced {
            reaper::dispatch_again();
        }
        // The tree most often ends with its leader: it is looked at now.
        if let Some(tree) = self.cgroup() {
            tree.leader_reaped();
        }
    }

    /// Reaps the child if it has exited (announced or not).
    pub(crate) fn try_reap(&self) -> Option<Exit> {
        self.cell
            .try_reap_fresh(&self.process, |exit, how| self.on_reaped(exit, how))
            .map(|(exit, _)| exit)
    }

    /// The exit if it was collected, collecting it first if it was
    /// announced; no system call while no exit is known.
    pub(crate) fn status_if_exited(&self) -> Option<Exit> {
        self.cell
            .collect_announced(&self.process, |exit, how| self.on_reaped(exit, how))
    }

    /// The owning `Child` (whose waker slot is `slot`) is gone: brood
    /// collects the exit from now on, stopping the child first if
    /// kill_on_drop says so, and collecting it now if it already exited;
    /// otherwise somebody else will (the dispatcher or the background
    /// thread).
    pub(crate) fn abandon(self: &Arc<Self>, slot: &OwnerSlot, kill: bool) {
        // Marked an orphan before the stop, so that the dispatcher reaps it
        // at once if it dies before the reap attempt below.
        if self.cell.abandon(slot) {
            return;
        }
        // Before the reap attempt: an exit after it reaches the thread.
        reaper::orphaned(self.pid(), self, self.process.pidfd());
        if kill {
            let _ = self.begin_stop();
        }
        if self.try_reap().is_none() {
            self.watch_elsewhere();
        }
    }

    /// Polls for the exit from the task that owns the `Child`.
    ///
    /// On the pidfd path with a Tokio runtime the pidfd watcher registers the
    /// pidfd with that runtime's reactor and this task reaps its own child
    /// (see `reaper::LazyPidfd::poll_exit`). Everywhere else (SIGCHLD path,
    /// no runtime, runtime shut down) the background thread or the SIGCHLD
    /// dispatcher reaps, and this task parks on the exit cell.
    ///
    /// `inline` says whether this wait is pending on the pidfd in the task's
    /// reactor; the exit cell is told when that starts and stops, so that an
    /// inline wait counts as asking for the exit (see `exit.rs`).
    pub(crate) fn poll_exit(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
        slot: &OwnerSlot,
        inline: &mut bool,
        reaped: bool,
    ) -> Poll<Exit> {
        // A held leader's collected exit comes from the release, which the
        // exit cell announces to parked waiters: park there for it.
        let inline_ok = !(reaped && self.cell.is_held());
        if let Some(pidfd) = self.process.pidfd().filter(|_| inline_ok) {
            if !pidfd.is_handed_over() {
                // Before the poll: an exit that arrives meanwhile is then
                // reaped at once by whoever learns of it, never announced.
                if !*inline {
                    *inline = true;
                    self.cell.set_inline_waiter(true);
                }
                match self.poll_inline(pidfd, cx) {
                    // Held after all, and only the collected exit will do.
                    Some(Poll::Ready(exit)) if reaped && self.cell.get().is_none() => {
                        let _ = exit;
                    }
                    Some(poll) => return poll,
                    None => {}
                }
            }
        }
        if *inline {
            // Falling back: the waker parked in the cell asks from now on.
            *inline = false;
            self.cell.set_inline_waiter(false);
        }
        self.poll_shared(cx, key, slot, reaped)
    }

    /// Polls for the exit as one of possibly many waiters (shared handles),
    /// relying on the background thread or the dispatcher to reap, or
    /// collecting an announced exit itself.
    ///
    /// With `reaped`, only the collected exit will do (for its resource
    /// usage): while the leader is held, this waits for the release.
    pub(crate) fn poll_shared(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
        slot: &OwnerSlot,
        reaped: bool,
    ) -> Poll<Exit> {
        // Watched before parking, also when the exit may be known already:
        // this starts the background thread while it can be started (no
        // descriptor shortage yet), which later waits may need. Its first
        // look at a child nobody waits for yet only announces an exit; the
        // poll below then collects it.
        if key.is_none() {
            self.watch_elsewhere();
            reaper::listen_here(self.process.pidfd());
        }
        self.cell
            .poll(cx, key, slot, reaped, &self.process, |exit, how| {
                self.on_reaped(exit, how)
            })
    }

    /// Makes sure somebody other than the owning task reaps the child: hands
    /// it to the background thread on the pidfd path (once); on the SIGCHLD
    /// path the dispatcher does anyway, and its blind scans ask the child
    /// from now on (checking it once now if one skipped it before).
    pub(crate) fn watch_elsewhere(self: &Arc<Self>) {
        reaper::watch(self.pid(), self, self.process.pidfd());
    }

    /// A handle may look for the exit in the cell (`ChildHandle::status`):
    /// on the SIGCHLD path, the dispatcher's blind scans ask the child from
    /// now on, so that its exit is announced as before.
    pub(crate) fn follow_exit(self: &Arc<Self>) {
        reaper::follow_exit(self.pid(), self, self.process.pidfd());
    }

    /// The inline pidfd wait. `None` means "not available here, fall back".
    fn poll_inline(&self, pidfd: &LazyPidfd, cx: &mut Context<'_>) -> Option<Poll<Exit>> {
        if let Some(exit) = self.cell.get() {
            // Awaited again after the exit: nothing to register.
            return Some(Poll::Ready(exit));
        }
        pidfd.poll_exit(
            cx,
            || {
                self.cell
                    .while_running(|| self.process.open_pidfd().is_ok())
            },
            || self.try_reap(),
        )
    }

    /// Sends `signal` to the child alone. Once the child has exited
    /// (announced or reaped) this sends nothing and succeeds: its pid may
    /// already belong to someone else, or soon will.
    pub(crate) fn signal(&self, signal: Signal) -> io::Result<()> {
        #[cfg(feature = "tracing")]
        if !self.cell.has_exited() {
            crate::trace::signal(self.pid(), signal, false);
        }
        signal_unless_reaped(&self.cell, &self.process, signal)
    }

    /// Sends `signal` to the child's process group.
    pub(crate) fn signal_group(&self, signal: Signal) -> io::Result<()> {
        if self.stop.group {
            return self.send_group(signal);
        }
        let leads = self
            .cell
            .while_running(|| sys::process::getpgid(self.pid()).map(|g| g == self.pid()));
        match leads {
            // Exited, and never known to lead a group: nothing to reach.
            None => Ok(()),
            Some(Ok(true)) => self.send_group(signal),
            Some(Ok(false)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the child does not lead its own process group; spawn it with process_group(0)",
            )),
            Some(Err(e)) => Err(e),
        }
    }

    /// killpg on the child's group, as the user asks for it
    /// ([`Child::signal_group`](crate::Child::signal_group)); ESRCH (group
    /// empty) counts as success. The group id stays reserved by the kernel
    /// while any member exists, zombies included, so after the leader was
    /// reaped this reaches the same group only as long as a member is left.
    /// brood's own stops never rely on that: they hold the leader
    /// (`group_stop.rs`).
    fn send_group(&self, signal: Signal) -> io::Result<()> {
        #[cfg(feature = "tracing")]
        crate::trace::signal(self.pid(), signal, true);
        ProcessGroup(self.pid()).signal(signal.as_raw())
    }

    /// Whether brood's stops of this child go to its process group: it
    /// leads one, and is not contained in a cgroup (whose stops reach the
    /// group's members anyway).
    pub(crate) fn stops_reach_group(&self) -> bool {
        self.stop.group && self.cgroup().is_none()
    }

    /// Whether the child's process group (it leads one) has a live member,
    /// the leader included while it runs; zombies, the leader's among them,
    /// do not count. Where the group cannot be listed (not Linux, macOS or
    /// FreeBSD) this is `killpg(pgid, 0)`, zombies included.
    pub(crate) fn group_has_live_members(&self) -> io::Result<bool> {
        match ProcessGroup(self.pid()).has_live_members() {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                match sys::process::killpg(self.pid(), 0) {
                    Ok(()) => Ok(true),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Holds the leader unreaped for a brood call that may stop its group
    /// (`output` with a time limit, an output cap or a wait delay): its
    /// exit can then come before the stop does, and the stop must still
    /// reach the group safely. `false` if it was reaped already.
    pub(crate) fn hold_leader(&self) -> bool {
        self.cell.hold()
    }

    /// Releases a hold of [`Shared::hold_leader`]; reaps the leader if it
    /// exited and somebody asked for the exit.
    pub(crate) fn release_leader(&self) {
        self.cell
            .unhold(&self.process, |exit, how| self.on_reaped(exit, how));
    }

    /// Starts a stop of the child's process group, or joins the one in
    /// progress: the leader is held unreaped until the stop is over (see
    /// `group_stop.rs`). `None` if the leader was reaped before: the group's
    /// id may be another group's by now, and the stop sends nothing.
    pub(crate) fn begin_group_stop(&self) -> Option<u64> {
        self.group_stops.begin(&self.cell)
    }

    /// Sends `signal` to the child's group for the stop in progress, while
    /// the leader is held.
    pub(crate) fn group_stop_signal(&self, signal: Signal) -> io::Result<()> {
        #[cfg(feature = "tracing")]
        if self.cell.is_held() {
            crate::trace::signal(self.pid(), signal, true);
        }
        self.group_stops
            .signal(&self.cell, &ProcessGroup(self.pid()), signal.as_raw())
    }

    /// The final step of group stop `episode`: SIGKILL to the group and, if
    /// no live member is left, the end of the stop (the leader released,
    /// and reaped if its exit was asked for). Called until it says
    /// [`Finish::Over`].
    pub(crate) fn finish_group_stop(&self, episode: u64) -> Finish {
        #[cfg(feature = "tracing")]
        if self.group_stops.is_active(episode) && self.cell.is_held() {
            crate::trace::signal(self.pid(), Signal::KILL, true);
        }
        self.group_stops.finish(
            episode,
            &self.cell,
            &ProcessGroup(self.pid()),
            &self.process,
            |exit, how| self.on_reaped(exit, how),
        )
    }

    /// Ends group stop `episode` after its final SIGKILL was sent, without
    /// waiting for the group to empty: for when nothing can drive it any
    /// further (the background thread cannot be started).
    pub(crate) fn end_group_stop(&self, episode: u64) {
        let _ = self.group_stop_signal(Signal::KILL);
        self.group_stops
            .end(episode, &self.cell, &self.process, |exit, how| {
                self.on_reaped(exit, how)
            });
    }

    /// Sends a stop signal as the stop policy says: to the whole cgroup if
    /// the child is contained in one (SIGKILL as `cgroup.kill`, any other
    /// signal frozen, from the background thread), else to the child. A
    /// child whose stops reach its process group is stopped through
    /// [`Shared::begin_group_stop`] instead.
    pub(crate) fn send_stop(&self, signal: Signal) -> io::Result<()> {
        if let Some(cgroup) = self.cgroup() {
            return cgroup.send(signal);
        }
        self.signal(signal)
    }

    /// Starts stopping the child on the user's behalf without waiting:
    /// SIGKILL at once, or SIGTERM now and SIGKILL from the background reaper
    /// once the grace period ends. A process group's stop is then driven to
    /// its end by the background thread, which holds the leader until it is
    /// over.
    pub(crate) fn begin_stop(self: &Arc<Self>) -> io::Result<()> {
        let (first, delay) = match self.stop.grace {
            None => (Signal::KILL, Duration::ZERO),
            Some(grace) => (Signal::TERM, grace),
        };
        if self.stops_reach_group() {
            // The leader was reaped before: nothing of its group is ours.
            let Some(episode) = self.begin_group_stop() else {
                return Ok(());
            };
            let signalled = self.group_stop_signal(first);
            if let Err(e) = reaper::kill_after(self, delay, episode).and(signalled) {
                // Nothing will drive the stop to its end: end it now.
                self.end_group_stop(episode);
                return Err(e);
            }
            return Ok(());
        }
        match self.stop.grace {
            None => self.send_stop(Signal::KILL),
            Some(grace) => {
                self.send_stop(Signal::TERM)?;
                reaper::kill_after(self, grace, 0)
            }
        }
    }
}

/// Sends `signal` through `process` unless `cell` says the child exited
/// (announced or reaped), holding the cell's lock meanwhile so the child
/// cannot be reaped by brood (and its pid recycled) in between. Sending
/// nothing after the exit is success.
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

impl Tracked for Shared {
    fn notice(&self) -> Reap {
        self.cell
            .notice(&self.process, |exit, how| self.on_reaped(exit, how))
    }

    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.process.pidfd()?.get()
    }

    fn final_kill(&self, stop: u64) -> bool {
        if self.stops_reach_group() {
            // SIGKILL to the group while the leader is held, then the end of
            // the stop once no live member is left. Grandchildren that
            // ignored SIGTERM do not survive, and a stop that is over (or a
            // timer left from an earlier one) sends nothing.
            return self.finish_group_stop(stop) == Finish::Over;
        }
        let _ = self.send_stop(Signal::KILL);
        true
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::super::exit::Wait;
    use super::*;
    use crate::rusage::ResourceUsage;
    use std::cell::RefCell;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

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

        fn peek(&self) -> io::Result<Option<ExitStatus>> {
            Ok(self.exited.borrow().then(|| ExitStatus::from_raw(9)))
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
    fn an_announced_child_gets_no_signal() {
        let cell = ExitCell::default();
        let p = MockProcess::new(libc::SIGKILL);
        p.kill(libc::SIGKILL).unwrap();
        // Exited, nobody asked: announced, the zombie left for its owner,
        // who may collect it (and free the pid) without brood's lock.
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        signal_unless_reaped(&cell, &p, Signal::TERM).unwrap();
        assert_eq!(*p.sent.borrow(), vec![libc::SIGKILL]);
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
