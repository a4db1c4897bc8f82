//! The exit cell: one child's *running → announced → reaped* state machine.
//!
//! - **Running**: no exit known.
//! - **Announced**: the child has exited (a SIGCHLD named it, or a `WNOWAIT`
//!   peek found it, and the status is known from that look) but brood left
//!   the zombie in place: either nobody asked brood for the exit, so the
//!   owner of the `Child` may still collect it with a `waitpid` of its own,
//!   as under `tokio::process`; or the cell is *held* (below).
//! - **Reaped**: the exit was collected (or found lost); final.
//!
//! # Holding a group leader's exit
//!
//! While a process-group stop is in progress, the group's leader must stay
//! unreaped: its zombie keeps the group id reserved, so no `killpg` of the
//! stop can reach a group that recycled the id (issue 12, point 3). A
//! [hold](ExitCell::hold) does that: while any hold is in place, nothing
//! reaps the child, not even for a waiter that asked. The exit is only
//! looked at (`WNOWAIT`) and announced, and a wait is given the status from
//! that look (an [`Exit`] without resource usage, which only the reap
//! reports); a wait that needs the resource usage
//! ([`ExitCell::poll`] with `reaped`) waits for the reap. The last
//! [release](ExitCell::unhold) reaps the child at once if anybody asked for
//! the exit or was given its status meanwhile; otherwise the zombie is left
//! for the owner, as for any announced exit. Group signals of a stop are
//! sent through [`ExitCell::while_held`], under the cell's lock, so no reap
//! can come between the check and the signal.
//!
//! Brood collects an exit as soon as it learns of it only when somebody
//! asked for it: a wait future is pending (a live slot in [`Waiters`], or
//! the owner's wait on its pidfd in its own reactor), the
//! `Child` was handed to a brood call that collects the exit (`output`,
//! `wait_with_output`, `status`), or it was dropped (an orphan). Otherwise
//! [`ExitCell::notice`] only announces. `wait`, `try_wait` and a handle's
//! `status` collect an announced exit when they are called.
//!
//! Whoever reaps the child (the task awaiting it, the SIGCHLD dispatcher, the
//! background reaper, `try_wait`) does so *inside* the cell's lock, so a
//! child is reaped exactly once, and publishes the status to every parked
//! waiter at the same moment.
//!
//! The system calls are behind the [`Wait`] trait, so the unit tests below
//! (and the loom models) drive the cell with mock processes.
//!
//! Owns: [`ExitCell`], [`Exit`], the [`Wait`] and [`Kill`] traits. Calls:
//! `waiters`, `reaper::Reap` (the outcome type), `rusage`, `sync`.

use super::waiters::{OwnerSlot, Waiters};
use crate::reaper::Reap;
use crate::rusage::ResourceUsage;
use crate::sync::{lock, Mutex};
use std::io;
use std::process::ExitStatus;
use std::task::{Context, Poll, Waker};

/// One process's exit, as far as the OS can tell us right now.
pub(crate) trait Wait {
    /// Collects the exit without blocking: `Ok(None)` while the process runs.
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>>;

    /// Looks at the exit without collecting it (`WNOWAIT`): `Ok(None)` while
    /// the process runs; the zombie stays for whoever collects it.
    fn peek(&self) -> io::Result<Option<ExitStatus>>;
}

/// Sends signals to one process.
pub(crate) trait Kill {
    /// Sends `signal` (a raw number) to the process.
    fn kill(&self, signal: i32) -> io::Result<()>;
}

impl<T: Wait + ?Sized> Wait for &T {
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
        (**self).try_wait()
    }

    fn peek(&self) -> io::Result<Option<ExitStatus>> {
        (**self).peek()
    }
}

impl<T: Kill + ?Sized> Kill for &T {
    fn kill(&self, signal: i32) -> io::Result<()> {
        (**self).kill(signal)
    }
}

/// How a child ended, kept forever once known so that every later wait (and
/// every shared handle) sees the same answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The status, or the errno the wait failed with (`ECHILD` when something
    /// other than brood reaped the child).
    result: Result<ExitStatus, i32>,
    usage: Option<ResourceUsage>,
}

impl Exit {
    pub(crate) fn reaped(status: ExitStatus, usage: ResourceUsage) -> Self {
        Exit {
            result: Ok(status),
            usage: Some(usage),
        }
    }

    /// The exit of a child that is held unreaped: the status from the
    /// `WNOWAIT` look, and no resource usage (only the reap reports it).
    pub(crate) fn held(status: ExitStatus) -> Self {
        Exit {
            result: Ok(status),
            usage: None,
        }
    }

    pub(crate) fn failed(error: &io::Error) -> Self {
        Exit {
            result: Err(error.raw_os_error().unwrap_or(libc::EIO)),
            usage: None,
        }
    }

    /// The status, or an error explaining why there is none. A child
    /// reaped by someone else (`ECHILD`) gives an error of kind
    /// [`io::ErrorKind::Other`] that says so.
    pub(crate) fn status(&self) -> io::Result<ExitStatus> {
        self.result.map_err(|errno| {
            if errno == libc::ECHILD {
                io::Error::other(
                    "brood: the child was reaped by someone other than brood \
                     (ECHILD: a waitpid of the program's own, or SIGCHLD set to \
                     SIG_IGN); its status is lost",
                )
            } else {
                io::Error::from_raw_os_error(errno)
            }
        })
    }

    pub(crate) fn usage(&self) -> Option<ResourceUsage> {
        self.usage
    }
}

/// How an exit came to be collected, for the report that runs as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Collected {
    /// The `Child` had been dropped.
    pub(crate) orphan: bool,
    /// The exit had been announced and left for the owner: the SIGCHLD
    /// dispatcher's peek may have been blind to other exits meanwhile.
    pub(crate) announced: bool,
}

/// Where the child's exit stands.
#[derive(Debug)]
enum Phase {
    Running,
    /// Exited with this status, as a `WNOWAIT` look showed; the zombie is
    /// left in place: for the owner (nobody asked brood to collect it), or
    /// because the cell is held.
    Announced(ExitStatus),
    /// Collected, or found lost. Boxed: an exit (status and resource usage)
    /// is about 90 bytes that a live child does not need.
    Reaped(Box<Exit>),
}

/// What the `Child` value means to do about the exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// It holds the child and may collect the exit itself (`try_wait`, or a
    /// `waitpid` of the program's own).
    Holding,
    /// It was handed to a brood call that collects the exit (`output`,
    /// `wait_with_output`, `status`).
    Collecting,
    /// It was dropped: the child is an orphan, brood collects the exit.
    Gone,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    owner: Owner,
    waiters: Waiters,
    /// The owner's wait future is pending on the child's pidfd in its own
    /// reactor (the pidfd path's inline wait), which parks no waker here.
    inline_waiter: bool,
    /// Holds in place ([`ExitCell::hold`]): while there are any, brood does
    /// not reap the child.
    holds: u32,
    /// The status was given out while the cell was held (a wait resolved
    /// with it, `try_wait` returned it): the last release collects the exit.
    given: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            phase: Phase::Running,
            owner: Owner::Holding,
            waiters: Waiters::default(),
            inline_waiter: false,
            holds: 0,
            given: false,
        }
    }
}

/// What [`State::collect`] found.
enum Collect {
    /// The exit is collected (now or found lost): final, with the wakers to
    /// wake once the lock is released.
    Final(Exit, Vec<Waker>),
    /// The child has exited, and its zombie is left in place (the cell is
    /// held, or nobody asked): the status the look found, without resource
    /// usage.
    Left(Exit),
    /// The child runs.
    Running,
}

impl State {
    fn exit(&self) -> Option<Exit> {
        match &self.phase {
            Phase::Reaped(exit) => Some(**exit),
            _ => None,
        }
    }

    /// Whether somebody asked brood to collect the exit as soon as it
    /// happens: a wait future is parked, or the `Child` is no longer there
    /// to collect it itself.
    fn asked(&self) -> bool {
        self.owner != Owner::Holding || self.waiters.any_live() || self.inline_waiter
    }

    /// Collects the exit through `process` if it has one, and records it;
    /// returns it with the wakers to wake once the lock is released. A child
    /// that turns out to run after all (an announcement that the kernel
    /// takes back, which a tracer could cause) goes back to running.
    ///
    /// While the cell is held this reaps nothing: it only looks
    /// ([`State::look`]) and returns the status it knows. `give` says the
    /// caller hands that status out (a wait, `try_wait`), which makes the
    /// last release collect the exit.
    fn collect(
        &mut self,
        process: impl Wait,
        give: bool,
        report: impl FnOnce(&Exit, Collected),
    ) -> Collect {
        if self.holds > 0 {
            let found = self.look(process, report);
            if give && matches!(found, Collect::Left(_)) {
                self.given = true;
            }
            return found;
        }
        let exit = match process.try_wait() {
            Ok(None) => {
                self.phase = Phase::Running;
                return Collect::Running;
            }
            Ok(Some((status, usage))) => Exit::reaped(status, usage),
            // ECHILD if the owner's own waitpid took the zombie first: the
            // status is lost to brood, and `status()` says so, as
            // `tokio::process` would fail its own wait.
            Err(e) => Exit::failed(&e),
        };
        let (exit, wakers) = self.publish(exit, report);
        Collect::Final(exit, wakers)
    }

    /// Looks at the exit without collecting it: the announced status, or,
    /// for a child not known to have exited, one `WNOWAIT` look, which
    /// announces the exit if there is one (waking every stored waker, so
    /// that tasks whose futures were dropped poll afresh). A failed look
    /// means the zombie went to someone else: that is recorded as final.
    fn look(&mut self, process: impl Wait, report: impl FnOnce(&Exit, Collected)) -> Collect {
        match self.phase {
            Phase::Reaped(ref exit) => Collect::Final(**exit, Vec::new()),
            Phase::Announced(status) => Collect::Left(Exit::held(status)),
            Phase::Running => match process.peek() {
                Ok(None) => Collect::Running,
                Ok(Some(status)) => {
                    self.phase = Phase::Announced(status);
                    self.waiters.wake_all();
                    Collect::Left(Exit::held(status))
                }
                Err(e) => {
                    let (exit, wakers) = self.publish(Exit::failed(&e), report);
                    Collect::Final(exit, wakers)
                }
            },
        }
    }

    /// Records `exit` as final; returns the wakers to wake once the lock is
    /// released.
    fn publish(&mut self, exit: Exit, report: impl FnOnce(&Exit, Collected)) -> (Exit, Vec<Waker>) {
        report(
            &exit,
            Collected {
                orphan: self.owner == Owner::Gone,
                announced: matches!(self.phase, Phase::Announced(_)),
            },
        );
        self.phase = Phase::Reaped(Box::new(exit));
        (exit, self.waiters.take_all())
    }
}

fn wake(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// The shared state machine of one child.
#[derive(Debug, Default)]
pub(crate) struct ExitCell {
    state: Mutex<State>,
}

impl ExitCell {
    /// The exit, if it has been collected.
    pub(crate) fn get(&self) -> Option<Exit> {
        lock(&self.state).exit()
    }

    /// Whether the child has exited as far as brood knows (announced or
    /// reaped).
    pub(crate) fn has_exited(&self) -> bool {
        !matches!(lock(&self.state).phase, Phase::Running)
    }

    /// Returns the exit if it is collected, collecting an announced one
    /// through `process` on the way; otherwise parks the task in slot `key`
    /// as a live waiter. A future without a slot yet takes over its owner's
    /// (`owner`) first: the waker left there by a dropped future is replaced.
    ///
    /// While the cell is held, an exited child's status is returned without
    /// reaping it, unless `reaped` asks for the collected exit (its resource
    /// usage): then the task parks until the last release collects it.
    ///
    /// Checking and parking happen under one lock, and announcement and
    /// publication take the same lock, so a wake-up cannot fall between the
    /// two: either this poll sees the announcement and collects the exit
    /// itself, or the announcer sees a live waiter and collects it for us.
    pub(crate) fn poll(
        &self,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
        owner: &OwnerSlot,
        reaped: bool,
        process: impl Wait,
        report: impl FnOnce(&Exit, Collected),
    ) -> Poll<Exit> {
        let mut state = lock(&self.state);
        if let Some(exit) = state.exit() {
            state.waiters.remove(key);
            return Poll::Ready(exit);
        }
        if matches!(state.phase, Phase::Announced(_)) && !(reaped && state.holds > 0) {
            match state.collect(process, true, report) {
                Collect::Final(exit, wakers) => {
                    drop(state);
                    wake(wakers);
                    return Poll::Ready(exit);
                }
                Collect::Left(exit) => {
                    state.waiters.remove(key);
                    return Poll::Ready(exit);
                }
                Collect::Running => {}
            }
        }
        if key.is_none() {
            *key = owner.take();
        }
        state.waiters.register(key, cx.waker());
        Poll::Pending
    }

    /// A wait future that parked in `key` was dropped before the exit: its
    /// slot, waker included, goes back to its owner, so the task is still
    /// woken when the child exits. The owner keeps one slot: a slot it held
    /// from an earlier future is freed.
    pub(crate) fn release(&self, key: &mut Option<usize>, owner: &OwnerSlot) {
        let Some(k) = key.take() else { return };
        let mut state = lock(&self.state);
        if state.exit().is_some() {
            // Publication cleared every slot.
            return;
        }
        state.waiters.linger(k);
        let mut replaced = owner.replace(k);
        state.waiters.remove(&mut replaced);
    }

    /// The owner's wait future starts (`true`) or stops (`false`) waiting on
    /// the pidfd in its own reactor: while it does, the exit counts as asked
    /// for, as a parked waiter's does.
    pub(crate) fn set_inline_waiter(&self, waiting: bool) {
        lock(&self.state).inline_waiter = waiting;
    }

    /// An owner (a `ChildHandle`) goes away: frees its slot.
    pub(crate) fn drop_owner(&self, owner: &OwnerSlot) {
        let mut state = lock(&self.state);
        let mut key = owner.take();
        state.waiters.remove(&mut key);
    }

    /// The `Child` was handed to a brood call that collects the exit: from
    /// now on brood collects it as soon as it is known.
    pub(crate) fn collect_on_exit(&self) {
        let mut state = lock(&self.state);
        if state.owner == Owner::Holding {
            state.owner = Owner::Collecting;
        }
    }

    /// The `Child` (the owner of `owner`) was dropped: frees its slot and
    /// marks the child an orphan, so that brood collects the exit as soon as
    /// it learns of it. `true` if the exit was collected already.
    pub(crate) fn abandon(&self, owner: &OwnerSlot) -> bool {
        let mut state = lock(&self.state);
        let mut key = owner.take();
        state.waiters.remove(&mut key);
        state.owner = Owner::Gone;
        state.exit().is_some()
    }

    /// [`ExitCell::try_reap_fresh`] without the flag and the report, for
    /// tests.
    #[cfg(test)]
    pub(crate) fn try_reap(&self, process: impl Wait) -> Option<Exit> {
        self.try_reap_fresh(process, |_, _| {})
            .map(|(exit, _)| exit)
    }

    /// Reaps the child if it has exited (announced or not), publishing the
    /// exit to all waiters, and tells whether this call was the one that
    /// reaped the child (`true`) or found it reaped already (or held: then
    /// the exit has the status only, and the zombie stays).
    ///
    /// The wait system call runs under the cell's lock: two reapers racing
    /// (say the awaiting task and the background thread) cannot both collect
    /// the status, and the loser finds the winner's result here.
    ///
    /// `report` runs once, in the call that reaped, under the cell's lock
    /// and before the exit is published, so that what it records (the
    /// `tracing` event) is in place before anyone can see the exit. It is
    /// told how the exit was collected ([`Collected`]). It must not call back
    /// into this cell.
    pub(crate) fn try_reap_fresh(
        &self,
        process: impl Wait,
        report: impl FnOnce(&Exit, Collected),
    ) -> Option<(Exit, bool)> {
        let mut state = lock(&self.state);
        if let Some(exit) = state.exit() {
            return Some((exit, false));
        }
        match state.collect(process, true, report) {
            Collect::Final(exit, wakers) => {
                drop(state);
                wake(wakers);
                Some((exit, true))
            }
            Collect::Left(exit) => Some((exit, false)),
            Collect::Running => None,
        }
    }

    /// Collects an exit that was announced, for a caller that must not block
    /// and must not make a system call for a child that may run (a handle's
    /// `status`). The exit if it is collected (now or before), or, while
    /// the cell is held, the status of an announced exit; `None` while no
    /// exit is known.
    pub(crate) fn collect_announced(
        &self,
        process: impl Wait,
        report: impl FnOnce(&Exit, Collected),
    ) -> Option<Exit> {
        let mut state = lock(&self.state);
        match state.phase {
            Phase::Reaped(ref exit) => Some(**exit),
            Phase::Running => None,
            Phase::Announced(_) => match state.collect(process, true, report) {
                Collect::Final(exit, wakers) => {
                    drop(state);
                    wake(wakers);
                    Some(exit)
                }
                Collect::Left(exit) => Some(exit),
                Collect::Running => None,
            },
        }
    }

    /// The reaper learned that the child may have exited (a SIGCHLD named
    /// it, or a scan asks): collects the exit if somebody asked for it and
    /// the cell is not held; otherwise only looks (`WNOWAIT`) and, if it
    /// exited, announces it, waking the wakers that dropped wait futures
    /// left behind (and, while held, the parked waiters, which are then
    /// given the status), and leaves the zombie.
    ///
    /// `Reap::Fresh` when this call collected the exit, or found it lost (a
    /// failed peek: the exit went to someone else, so there is nothing left
    /// to leave for the owner).
    pub(crate) fn notice(&self, process: impl Wait, report: impl FnOnce(&Exit, Collected)) -> Reap {
        let mut state = lock(&self.state);
        match state.phase {
            Phase::Reaped(_) => return Reap::Already,
            Phase::Announced(_) if state.holds > 0 || !state.asked() => return Reap::Announced,
            _ => {}
        }
        let found = if state.asked() && state.holds == 0 {
            state.collect(process, false, report)
        } else {
            state.look(process, report)
        };
        match found {
            Collect::Final(_, wakers) => {
                drop(state);
                wake(wakers);
                Reap::Fresh
            }
            Collect::Left(_) => Reap::Announced,
            Collect::Running => Reap::Running,
        }
    }

    /// Holds the child unreaped from now on (see the module docs), unless
    /// it was reaped already: `false` then, and nothing is held. Every
    /// successful hold needs one [`ExitCell::unhold`].
    pub(crate) fn hold(&self) -> bool {
        let mut state = lock(&self.state);
        if state.exit().is_some() {
            return false;
        }
        state.holds += 1;
        true
    }

    /// Releases one [hold](ExitCell::hold). The last one collects an
    /// announced exit at once if somebody asked for it or was given its
    /// status while it was held; otherwise the zombie is left for the owner,
    /// as any announced exit is. Returns the exit if this call collected it.
    pub(crate) fn unhold(
        &self,
        process: impl Wait,
        report: impl FnOnce(&Exit, Collected),
    ) -> Option<Exit> {
        let mut state = lock(&self.state);
        debug_assert!(state.holds > 0, "unhold without a hold");
        state.holds = state.holds.saturating_sub(1);
        let collect = state.holds == 0
            && matches!(state.phase, Phase::Announced(_))
            && (state.asked() || state.given);
        if !collect {
            return None;
        }
        match state.collect(process, false, report) {
            Collect::Final(exit, wakers) => {
                drop(state);
                wake(wakers);
                Some(exit)
            }
            Collect::Left(_) | Collect::Running => None,
        }
    }

    /// Whether a hold is in place.
    pub(crate) fn is_held(&self) -> bool {
        lock(&self.state).holds > 0
    }

    /// Runs `f` while holding the lock, if and only if the cell is held and
    /// the child not reaped (by brood, or found reaped by someone else).
    /// While the lock is held nothing in brood reaps the child, and while
    /// the cell is held nothing does so after it either: the child (or its
    /// zombie) keeps its pid, and so the id of the group it leads, reserved.
    /// This is what makes a group stop's `killpg` safe.
    pub(crate) fn while_held<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let state = lock(&self.state);
        (state.holds > 0 && state.exit().is_none()).then(f)
    }

    /// Runs `f` while holding the lock, if and only if no exit is known
    /// (neither announced nor reaped). While the lock is held brood does not
    /// reap the child, so its pid cannot be recycled: this is what makes
    /// `kill(pid)` safe on the SIGCHLD path. An announced child is left
    /// alone too: it has exited, and its owner may collect the zombie at any
    /// moment without brood's lock, after which the pid is free for reuse.
    pub(crate) fn while_running<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let state = lock(&self.state);
        match state.phase {
            Phase::Running => Some(f()),
            _ => None,
        }
    }

    /// Number of slots holding a waker, for tests.
    #[cfg(all(test, not(brood_loom)))]
    pub(crate) fn parked(&self) -> usize {
        lock(&self.state).waiters.len()
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    /// A process that exits with `code` after `polls_until_exit` checks.
    /// Peeks do not count as checks; `calls` and `peeks` count both kinds.
    struct MockProcess {
        polls_until_exit: Cell<usize>,
        calls: Cell<usize>,
        peeks: Cell<usize>,
        code: i32,
    }

    impl MockProcess {
        fn exiting_after(polls: usize, code: i32) -> Self {
            MockProcess {
                polls_until_exit: Cell::new(polls),
                calls: Cell::new(0),
                peeks: Cell::new(0),
                code,
            }
        }

        fn status(&self) -> ExitStatus {
            ExitStatus::from_raw(self.code << 8)
        }
    }

    impl Wait for MockProcess {
        fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
            self.calls.set(self.calls.get() + 1);
            let left = self.polls_until_exit.get();
            if left == 0 {
                Ok(Some((self.status(), ResourceUsage::default())))
            } else {
                self.polls_until_exit.set(left - 1);
                Ok(None)
            }
        }

        fn peek(&self) -> io::Result<Option<ExitStatus>> {
            self.peeks.set(self.peeks.get() + 1);
            Ok((self.polls_until_exit.get() == 0).then(|| self.status()))
        }
    }

    struct Stolen;
    impl Wait for Stolen {
        fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
            Err(io::Error::from_raw_os_error(libc::ECHILD))
        }

        fn peek(&self) -> io::Result<Option<ExitStatus>> {
            Err(io::Error::from_raw_os_error(libc::ECHILD))
        }
    }

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let c = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let w = Waker::from(c.clone());
        (c, w)
    }

    fn poll(
        cell: &ExitCell,
        w: &Waker,
        key: &mut Option<usize>,
        owner: &OwnerSlot,
        p: &MockProcess,
    ) -> Poll<Exit> {
        cell.poll(&mut Context::from_waker(w), key, owner, false, p, |_, _| {})
    }

    #[test]
    fn reaps_once_and_fuses() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(2, 7);
        assert!(cell.try_reap(&p).is_none());
        assert!(cell.try_reap(&p).is_none());
        let exit = cell.try_reap(&p).expect("exited");
        assert_eq!(exit.status().unwrap().code(), Some(7));
        // Later reaps return the cached exit without another system call.
        assert_eq!(cell.try_reap(&p), Some(exit));
        assert_eq!(p.calls.get(), 3);
        assert_eq!(cell.get(), Some(exit));
    }

    #[test]
    fn publication_wakes_every_parked_task_once() {
        let cell = ExitCell::default();
        // Polling a running child parks without asking the process.
        let p = MockProcess::exiting_after(0, 0);
        let wakers: Vec<_> = (0..3).map(|_| counting()).collect();
        let owners: Vec<_> = (0..3).map(|_| OwnerSlot::new()).collect();
        let mut keys = [None; 3];
        for (((_, w), key), owner) in wakers.iter().zip(keys.iter_mut()).zip(&owners) {
            assert!(poll(&cell, w, key, owner, &p).is_pending());
        }
        assert_eq!(cell.parked(), 3);
        // A dropped wait future leaves its waker with its owner: still woken.
        cell.release(&mut keys[2], &owners[2]);
        assert_eq!(keys[2], None);
        // An owner that goes away takes its waker with it.
        cell.release(&mut keys[1], &owners[1]);
        cell.drop_owner(&owners[1]);
        assert_eq!(cell.parked(), 2);
        assert_eq!(
            cell.notice(&p, |_, _| {}),
            Reap::Fresh,
            "a live waiter asks"
        );
        let woken: Vec<_> = wakers
            .iter()
            .map(|(c, _)| c.0.load(Ordering::SeqCst))
            .collect();
        assert_eq!(woken, vec![1, 0, 1]);
        assert!(poll(&cell, &wakers[0].1, &mut keys[0], &owners[0], &p).is_ready());
    }

    #[test]
    fn an_exit_nobody_asked_for_is_announced_and_left_for_the_owner() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 3);
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        assert_eq!(
            (p.peeks.get(), p.calls.get()),
            (1, 0),
            "looked, did not reap"
        );
        assert!(cell.has_exited());
        assert_eq!(cell.get(), None);
        // Announcing again costs nothing.
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        assert_eq!(p.peeks.get(), 1);
        // No signal reaches an announced child.
        assert_eq!(cell.while_running(|| ()), None);
        // The owner's try_wait collects it.
        let exit = cell.try_reap(&p).expect("collected");
        assert_eq!(exit.status().unwrap().code(), Some(3));
        assert_eq!(p.calls.get(), 1);
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Already);
    }

    #[test]
    fn a_poll_collects_an_announced_exit_itself() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 4);
        let owner = OwnerSlot::new();
        let (_, w) = counting();
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        let mut key = None;
        match poll(&cell, &w, &mut key, &owner, &p) {
            Poll::Ready(exit) => assert_eq!(exit.status().unwrap().code(), Some(4)),
            Poll::Pending => panic!("an announced exit must not park"),
        }
        assert_eq!(p.calls.get(), 1);
    }

    #[test]
    fn a_dropped_future_still_gets_woken_and_a_fresh_one_takes_its_slot() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(1, 0);
        let owner = OwnerSlot::new();
        let (c, w) = counting();
        for _ in 0..5 {
            // A fresh future each time, dropped while pending.
            let mut key = None;
            assert!(poll(&cell, &w, &mut key, &owner, &p).is_pending());
            cell.release(&mut key, &owner);
        }
        assert_eq!(cell.parked(), 1, "one slot per owner, however many futures");
        // Nobody waits now: the exit is announced, and the task woken.
        p.polls_until_exit.set(0);
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        let mut key = None;
        assert!(poll(&cell, &w, &mut key, &owner, &p).is_ready());
    }

    #[test]
    fn a_consumed_or_dropped_child_is_collected_at_once() {
        for abandon in [false, true] {
            let cell = ExitCell::default();
            let p = MockProcess::exiting_after(0, 0);
            let owner = OwnerSlot::new();
            if abandon {
                assert!(!cell.abandon(&owner));
            } else {
                cell.collect_on_exit();
            }
            assert_eq!(cell.notice(&p, |_, _| {}), Reap::Fresh);
            assert_eq!(p.peeks.get(), 0);
        }
    }

    #[test]
    fn dropping_the_child_collects_an_announced_exit_and_reports_an_orphan() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 0);
        let owner = OwnerSlot::new();
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        assert!(!cell.abandon(&owner));
        let orphan = Cell::new(false);
        let (_, fresh) = cell
            .try_reap_fresh(&p, |_, how| orphan.set(how.orphan))
            .unwrap();
        assert!(fresh && orphan.get());
    }

    #[test]
    fn an_owner_that_reaped_first_gets_an_error_naming_echild() {
        // Announced, or not seen at all, then the owner's own waitpid
        // collected the zombie: brood's wait finds ECHILD and says so, in an
        // error of kind Other.
        for announce in [true, false] {
            let cell = ExitCell::default();
            let p = MockProcess::exiting_after(0, 6);
            if announce {
                assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
            }
            let exit = cell.try_reap(Stolen).unwrap();
            let err = exit.status().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Other);
            assert!(err.to_string().contains("ECHILD"), "{err}");
        }
        // And a peek that fails (the zombie is gone) records the loss.
        let other = ExitCell::default();
        assert_eq!(other.notice(Stolen, |_, _| {}), Reap::Fresh);
        assert!(other.get().unwrap().status().is_err());
    }

    #[test]
    fn collecting_an_announced_exit_says_so() {
        let p = MockProcess::exiting_after(0, 0);
        let announced = Cell::new(None);
        let cell = ExitCell::default();
        cell.try_reap_fresh(&p, |_, how| announced.set(Some(how.announced)));
        assert_eq!(announced.get(), Some(false));
        let cell = ExitCell::default();
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        cell.try_reap_fresh(&p, |_, how| announced.set(Some(how.announced)));
        assert_eq!(
            announced.get(),
            Some(true),
            "the dispatcher must look again"
        );
    }

    #[test]
    fn a_handle_status_collects_only_an_announced_exit() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 5);
        assert_eq!(cell.collect_announced(&p, |_, _| {}), None);
        assert_eq!(p.calls.get(), 0, "no system call while no exit is known");
        cell.notice(&p, |_, _| {});
        let exit = cell.collect_announced(&p, |_, _| {}).unwrap();
        assert_eq!(exit.status().unwrap().code(), Some(5));
    }

    #[test]
    fn stolen_child_reports_echild() {
        let cell = ExitCell::default();
        let exit = cell.try_reap(Stolen).unwrap();
        let err = exit.status().unwrap_err();
        assert_eq!(err.raw_os_error(), None);
        assert!(err
            .to_string()
            .contains("reaped by someone other than brood"));
        assert!(exit.usage().is_none());
    }

    #[test]
    fn a_held_exit_is_looked_at_and_never_reaped_even_when_asked() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 2);
        let owner = OwnerSlot::new();
        let (c, w) = counting();
        assert!(cell.hold());
        // A waiter parks before the exit: it asks.
        let mut key = None;
        assert!(poll(&cell, &w, &mut key, &owner, &p).is_pending());
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        assert_eq!((p.peeks.get(), p.calls.get()), (1, 0), "looked, no reap");
        assert_eq!(c.0.load(Ordering::SeqCst), 1, "the waiter is woken");
        // It is given the status, without resource usage.
        match poll(&cell, &w, &mut key, &owner, &p) {
            Poll::Ready(exit) => {
                assert_eq!(exit.status().unwrap().code(), Some(2));
                assert_eq!(exit.usage(), None);
            }
            Poll::Pending => panic!("the status is known"),
        }
        // Everyone else too, and nothing reaps it: not the reaper, not
        // `try_wait`, not a handle's `status`.
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        let (exit, fresh) = cell.try_reap_fresh(&p, |_, _| {}).unwrap();
        assert!(!fresh && exit.usage().is_none());
        assert!(cell.collect_announced(&p, |_, _| {}).is_some());
        assert_eq!(p.calls.get(), 0);
        assert_eq!(cell.get(), None, "not collected");
        assert!(cell.has_exited());
        // The release collects it: the status was given out.
        let reaped = Cell::new(0);
        let exit = cell
            .unhold(&p, |_, _| reaped.set(reaped.get() + 1))
            .expect("collected at the release");
        assert_eq!(exit.status().unwrap().code(), Some(2));
        assert!(exit.usage().is_some());
        assert_eq!((p.calls.get(), reaped.get()), (1, 1));
        assert_eq!(cell.get(), Some(exit));
    }

    #[test]
    fn a_wait_for_the_resource_usage_waits_for_the_release() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 0);
        let owner = OwnerSlot::new();
        let (c, w) = counting();
        assert!(cell.hold());
        assert!(cell.hold(), "holds nest");
        cell.notice(&p, |_, _| {});
        let mut key = None;
        let mut poll_reaped = || {
            cell.poll(
                &mut Context::from_waker(&w),
                &mut key,
                &owner,
                true,
                &p,
                |_, _| {},
            )
        };
        assert!(poll_reaped().is_pending(), "no usage before the reap");
        assert_eq!(cell.unhold(&p, |_, _| {}), None, "one hold is left");
        assert!(poll_reaped().is_pending());
        assert!(cell.unhold(&p, |_, _| {}).is_some(), "a live waiter asked");
        assert_eq!(c.0.load(Ordering::SeqCst), 1, "woken by the reap");
        match poll_reaped() {
            Poll::Ready(exit) => assert!(exit.usage().is_some()),
            Poll::Pending => panic!("reaped"),
        }
        assert_eq!(p.calls.get(), 1);
    }

    #[test]
    fn a_release_nobody_asked_for_leaves_the_zombie_to_the_owner() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 0);
        assert!(cell.hold());
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        assert_eq!(cell.unhold(&p, |_, _| {}), None);
        assert_eq!(p.calls.get(), 0, "left for the owner, as announced");
        // An orphan's is collected at the release.
        let cell = ExitCell::default();
        assert!(cell.hold());
        assert!(!cell.abandon(&OwnerSlot::new()));
        assert_eq!(cell.notice(&p, |_, _| {}), Reap::Announced);
        assert!(cell.unhold(&p, |_, _| {}).is_some());
        // A release before the exit is known collects nothing; the reaper
        // then collects it as for any child that was asked for.
        let cell = ExitCell::default();
        let running = MockProcess::exiting_after(1, 0);
        assert!(cell.hold());
        cell.collect_on_exit();
        assert_eq!(cell.unhold(&running, |_, _| {}), None);
        assert_eq!(cell.notice(&running, |_, _| {}), Reap::Running);
        assert_eq!(cell.notice(&running, |_, _| {}), Reap::Fresh);
    }

    #[test]
    fn group_signals_go_only_while_held_and_unreaped() {
        let cell = ExitCell::default();
        let p = MockProcess::exiting_after(0, 0);
        assert_eq!(cell.while_held(|| ()), None, "not held");
        assert!(cell.hold());
        assert_eq!(cell.while_held(|| 1), Some(1));
        cell.notice(&p, |_, _| {});
        assert_eq!(
            cell.while_held(|| 2),
            Some(2),
            "a held zombie keeps its ids"
        );
        cell.collect_on_exit();
        assert!(cell.unhold(&p, |_, _| {}).is_some());
        assert_eq!(cell.while_held(|| 3), None);
        assert!(!cell.hold(), "nothing to hold once reaped");
        // A zombie taken behind brood's back while held is found lost.
        let cell = ExitCell::default();
        assert!(cell.hold());
        assert_eq!(cell.notice(Stolen, |_, _| {}), Reap::Fresh);
        assert_eq!(cell.while_held(|| ()), None);
    }

    #[test]
    fn while_running_refuses_after_exit() {
        let cell = ExitCell::default();
        assert_eq!(cell.while_running(|| 1), Some(1));
        cell.try_reap(MockProcess::exiting_after(0, 0));
        assert_eq!(cell.while_running(|| 1), None);
    }
}
