//! A child contained in a cgroup of its own: its stops, its members, its
//! figures, and the end of its tree.
//!
//! # The stop sequence
//!
//! - A first, catchable stop (SIGTERM): the cgroup is frozen, every member
//!   present is signalled through a pidfd checked against a second listing,
//!   and the cgroup is thawed ([`ChildCgroup::signal_members`]). While frozen
//!   no member runs user code, so none forks past the signal. Waiting for the
//!   freeze blocks for a moment, so this runs on brood's background thread
//!   ([`CgroupTree::send`]), never on the caller's.
//! - The final stop (SIGKILL): `cgroup.kill`, which also reaches members
//!   forked since the first stop. It does not block, so it runs wherever it
//!   is asked for: at once without a grace period, from the background
//!   thread's timer after one.
//!
//! # The end of the tree
//!
//! Most trees end with their leader. So the tree is first looked at when
//! its leader is reaped ([`CgroupTree::leader_reaped`]), or earlier if
//! someone waits for its end or reads its members: found empty, it ends
//! there and then, with no help from the background thread. Only a tree
//! found still populated is handed to the background thread, which watches
//! the cgroup's `cgroup.events` ([`Changes`]) until `populated 0`. Either
//! way the tree ends once ([`Watching`]): the last figures are read, the
//! cgroup is removed (or given back to the command's pool,
//! `cgroup/pool.rs`), and every [`CgroupTree::wait_empty`] is woken,
//! whether or not the `Child` still exists. Nothing polls in a loop: the
//! kernel notifies on the tree's 0↔1 transitions (and on freezes), and
//! each notification costs one read.
//!
//! A member that exited but was not reaped (a zombie) is no member: the
//! kernel drops it from the cgroup at exit. So the cgroup can empty while
//! the leader is still a zombie; it is looked at once the leader is
//! reaped, and waiting for the whole tree means waiting for the leader's
//! reap as well (`Child::wait_tree`).
//!
//! Owns: [`CgroupTree`], [`TreeUsage`]. Calls: `cgroup` (the cgroup itself), `reaper`
//! (the change watch, jobs on the background thread), `signal`, `trace`.

use crate::cgroup::{CgroupUsage, ChildCgroup, PopulatedWatch, Signalled};
use crate::reaper::{self, Changes};
use crate::signal::Signal;
use crate::sync::{lock, Arc, AtomicBool, Mutex, Notify};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
#[cfg(feature = "tracing")]
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long the first stop waits for the cgroup to freeze before it
/// signals the members anyway (a member in uninterruptible sleep delays a
/// freeze). A freeze usually takes well under a millisecond; this bounds
/// how long the background thread can be held up by one.
const FREEZE_LIMIT: Duration = Duration::from_millis(200);

/// How long cleaning up after a failed spawn waits for the killed tree to
/// empty before it gives up on removing the cgroup.
const DISCARD_LIMIT: Duration = Duration::from_secs(5);

/// What a contained tree used: every process that ever ran in the child's
/// cgroup, those that left its process group or session included. From
/// [`Child::tree_usage`](crate::Child::tree_usage).
///
/// Read live while the tree runs; once it has ended, the last figures stay
/// readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeUsage {
    user_time: Duration,
    system_time: Duration,
    peak_memory: Option<u64>,
}

impl TreeUsage {
    /// CPU time spent in user mode by the whole tree (`user_usec` of the
    /// cgroup's `cpu.stat`).
    pub fn user_time(&self) -> Duration {
        self.user_time
    }

    /// CPU time spent in the kernel on behalf of the whole tree
    /// (`system_usec`).
    pub fn system_time(&self) -> Duration {
        self.system_time
    }

    /// The highest memory use the tree reached, in bytes (`memory.peak`).
    /// `None` where the memory controller is not enabled for the cgroup
    /// (its parent's `cgroup.subtree_control` lacks `memory`; brood's
    /// default parent, the process's own cgroup, never has it), or the
    /// kernel predates `memory.peak` (5.19).
    pub fn peak_memory(&self) -> Option<u64> {
        self.peak_memory
    }
}

/// The cgroup side of a [`CgroupTree`]: [`ChildCgroup`], or a mock in the
/// loom models, which run this file's code against every interleaving of a
/// stop, a wait and the removal.
pub(crate) trait TreeCgroup {
    /// `cgroup.kill`. Fails once the directory is gone.
    fn kill(&self) -> io::Result<()>;
    /// `signal` to every member, frozen meanwhile (at most `limit`).
    fn signal_members(&self, signal: i32, limit: Duration) -> io::Result<Signalled>;
    /// The live pids in the cgroup and below it.
    fn members(&self) -> io::Result<Vec<u32>>;
    /// The figures, live or the last ones read before the removal.
    fn usage(&self) -> io::Result<CgroupUsage>;
    /// Removes the directory (once; later calls succeed and do nothing).
    /// `is_removed` says `true` from the moment the directory is gone: the
    /// removal and the flag change under one lock.
    fn remove(&self) -> io::Result<()>;
    /// The tree has ended and nothing watches the cgroup any more: gives it
    /// back to its pool, or removes it as [`TreeCgroup::remove`] does.
    /// `is_removed` says `true` from then on, set under the same lock.
    fn retire(&self) -> io::Result<()>;
    /// Whether [`TreeCgroup::remove`] or [`TreeCgroup::retire`] ended the
    /// cgroup's tenancy: it is no longer this tree's.
    fn is_removed(&self) -> bool;
    /// Its path, for the `tracing` events.
    #[cfg(feature = "tracing")]
    fn path(&self) -> &Path;
}

impl TreeCgroup for ChildCgroup {
    fn kill(&self) -> io::Result<()> {
        ChildCgroup::kill(self)
    }
    fn signal_members(&self, signal: i32, limit: Duration) -> io::Result<Signalled> {
        ChildCgroup::signal_members(self, signal, limit)
    }
    fn members(&self) -> io::Result<Vec<u32>> {
        ChildCgroup::members(self)
    }
    fn usage(&self) -> io::Result<CgroupUsage> {
        ChildCgroup::usage(self)
    }
    fn remove(&self) -> io::Result<()> {
        ChildCgroup::remove(self)
    }
    fn retire(&self) -> io::Result<()> {
        ChildCgroup::retire(self)
    }
    fn is_removed(&self) -> bool {
        ChildCgroup::is_removed(self)
    }
    #[cfg(feature = "tracing")]
    fn path(&self) -> &Path {
        ChildCgroup::path(self)
    }
}

/// The `cgroup.events` side of a [`CgroupTree`]: [`PopulatedWatch`], or a
/// mock in the loom models.
pub(crate) trait TreeWatch {
    /// Whether the tree holds a process (reading re-arms the notification).
    fn populated(&self) -> io::Result<bool>;
    /// Waits (blocking, at most `limit`) until the tree is empty.
    fn wait_empty_timeout(&self, limit: Duration) -> io::Result<bool>;
}

impl TreeWatch for PopulatedWatch {
    fn populated(&self) -> io::Result<bool> {
        PopulatedWatch::populated(self)
    }
    fn wait_empty_timeout(&self, limit: Duration) -> io::Result<bool> {
        PopulatedWatch::wait_empty_timeout(self, limit)
    }
}

/// One contained child's cgroup, shared by its `Child`, its handles and
/// the background thread's change watch.
#[derive(Debug)]
pub(crate) struct CgroupTree<C = ChildCgroup, W = PopulatedWatch> {
    cgroup: C,
    /// `cgroup.events`, opened before the child existed and read only by
    /// the background thread.
    watch: W,
    /// Who finds the tree's end; changed only under this lock, so the tree
    /// ends once.
    watching: Mutex<Watching>,
    /// Set once the tree has ended.
    empty: AtomicBool,
    /// Wakes the tree's waiters once `empty` is set.
    emptied: Notify,
}

/// Who finds a tree's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watching {
    /// Nobody yet: the first look that finds the tree empty ends it
    /// ([`CgroupTree::seen_empty`], [`CgroupTree::look`]).
    Unarmed,
    /// The background thread, through its change watch: it ends the tree.
    Armed,
    /// It has ended.
    Ended,
}

impl CgroupTree {
    /// The leader was reaped: the tree ends now if it is empty (the common
    /// case: the leader was its last process), else its end is handed to
    /// the background thread.
    pub(crate) fn leader_reaped(self: &Arc<Self>) {
        let _ = self.ensure_watched();
    }

    /// Makes sure somebody finds the tree's end: it ends now if it is
    /// empty; else the background thread watches `cgroup.events` from now
    /// on, and ends it once it is empty. Fails only if the watch cannot be
    /// armed (the tree then stays unwatched, for a later look to try again).
    fn ensure_watched(self: &Arc<Self>) -> io::Result<()> {
        if self.look() != Look::Arm {
            return Ok(());
        }
        reaper::watch_changes(self).inspect_err(|_| {
            *lock(&self.watching) = Watching::Unarmed;
        })
    }

    /// Resolves once the tree has ended, making sure that somebody finds
    /// the end first. Cancel-safe.
    pub(crate) async fn wait_ended(self: &Arc<Self>) {
        // Arming fails only when the kernel refuses an epoll entry (no
        // memory, or the per-user limit on watches): then look again now
        // and then, as that passes.
        let mut retry = Duration::from_millis(10);
        while self.ensure_watched().is_err() {
            crate::reaper::Sleep::new(retry).await;
            retry = (retry * 2).min(Duration::from_secs(1));
        }
        self.wait_empty().await;
    }

    /// Sends a stop signal to the whole tree: SIGKILL through `cgroup.kill`
    /// at once; any other signal to every member present, frozen while they
    /// are signalled, on the background thread (so this never blocks). Once
    /// the tree is empty this sends nothing.
    pub(crate) fn send(self: &Arc<Self>, signal: Signal) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        if signal == Signal::KILL {
            return self.kill();
        }
        let tree = Arc::clone(self);
        let job = move || {
            let _signalled = tree.signal_members(signal);
            #[cfg(feature = "tracing")]
            crate::trace::tree_signalled(
                tree.cgroup.path(),
                signal,
                _signalled.as_ref().map(|s| (s.members, s.frozen)),
            );
        };
        match reaper::run_in_background(job) {
            Ok(()) => Ok(()),
            // No background thread can be started now (EMFILE, EAGAIN): do
            // it here, blocking for the freeze.
            Err(_) => self.signal_members(signal).map(drop),
        }
    }
}

impl<C: TreeCgroup, W: TreeWatch> CgroupTree<C, W> {
    pub(crate) fn new(cgroup: C, watch: W) -> Self {
        CgroupTree {
            cgroup,
            watch,
            watching: Mutex::new(Watching::Unarmed),
            empty: AtomicBool::new(false),
            emptied: Notify::new(),
        }
    }

    /// Whether the tree has ended (no process left in the cgroup).
    pub(crate) fn is_empty(&self) -> bool {
        self.empty.load(Ordering::Acquire)
    }

    /// Resolves once no process is left in the cgroup. Cancel-safe.
    pub(crate) async fn wait_empty(&self) {
        loop {
            // Registered before the flag is checked: the background thread
            // sets the flag before it notifies, so either this check sees it
            // or the notification reaches this waiter.
            let mut notified = pin!(self.emptied.notified());
            notified.as_mut().enable();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Whether any process may still be in the tree: `false` once it has
    /// ended, and also when the cgroup holds no process now although the
    /// background thread has not read its `populated 0` yet (the kernel
    /// sends that notification up to about 10 ms late). An empty tree stays
    /// empty: no member is left to fork, and brood places no process in it
    /// after the spawn. So a stop of a tree whose processes have all exited
    /// sends nothing (no `cgroup.kill`, which takes the kernel's cgroup
    /// lock).
    pub(crate) fn holds_processes(&self) -> bool {
        !self.is_empty() && !matches!(self.members().as_deref(), Ok([]))
    }

    /// The live pids in the cgroup and in cgroups nested in it. Found
    /// empty, a tree nobody watches ends here.
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        match self.cgroup.members() {
            Ok(members) if members.is_empty() => {
                self.seen_empty();
                Ok(members)
            }
            // Removed meanwhile: the tree had ended.
            Err(_) if self.cgroup.is_removed() => Ok(Vec::new()),
            other => other,
        }
    }

    /// What [`CgroupTree::look`] found.
    fn look(&self) -> Look {
        let mut watching = lock(&self.watching);
        match *watching {
            Watching::Ended => Look::Ended,
            Watching::Armed => Look::Armed,
            // Read through the watch's own descriptor before it is armed,
            // so arming reports only what changes later (the tree emptying
            // between this read and the arming included).
            Watching::Unarmed => match self.watch.populated() {
                Ok(true) => {
                    *watching = Watching::Armed;
                    Look::Arm
                }
                // Empty (or the cgroup is gone): the end is now.
                _ => {
                    *watching = Watching::Ended;
                    self.end();
                    Look::Ended
                }
            },
        }
    }

    /// A look at the members found the tree empty: it ends now, unless the
    /// background thread watches it (then it ends it, soon).
    pub(crate) fn seen_empty(&self) {
        let mut watching = lock(&self.watching);
        if *watching == Watching::Unarmed {
            *watching = Watching::Ended;
            self.end();
        }
    }

    /// Who finds the tree's end, for the loom models.
    #[cfg(all(test, brood_loom))]
    pub(crate) fn watching(&self) -> Watching {
        *lock(&self.watching)
    }

    /// The tree's figures, live or (once the cgroup is gone) the last ones.
    pub(crate) fn usage(&self) -> Option<TreeUsage> {
        let figures = self.cgroup.usage().ok()?;
        Some(TreeUsage {
            user_time: figures.user,
            system_time: figures.system,
            peak_memory: figures.peak_memory,
        })
    }

    /// `cgroup.kill`: kills every member, and any process forked meanwhile.
    pub(crate) fn kill(&self) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        match self.cgroup.kill() {
            Err(_) if self.cgroup.is_removed() => Ok(()),
            other => other,
        }
    }

    /// The first stop: `signal` to every member, frozen meanwhile. Blocks
    /// for the freeze (at most [`FREEZE_LIMIT`]).
    pub(crate) fn signal_members(&self, signal: Signal) -> io::Result<Signalled> {
        if self.is_empty() {
            return Ok(Signalled {
                members: 0,
                frozen: true,
            });
        }
        match self.cgroup.signal_members(signal.as_raw(), FREEZE_LIMIT) {
            Err(_) if self.cgroup.is_removed() => Ok(Signalled {
                members: 0,
                frozen: true,
            }),
            other => other,
        }
    }

    /// Cleans up after a spawn that failed once the child existed: kills the
    /// tree, waits (bounded) for it to empty, and removes the cgroup. The
    /// leader is the caller's to reap.
    pub(crate) fn discard(&self) {
        *lock(&self.watching) = Watching::Ended;
        let _ = self.cgroup.kill();
        if matches!(self.watch.wait_empty_timeout(DISCARD_LIMIT), Ok(true)) {
            let _ = self.cgroup.remove();
        }
        self.mark_empty();
    }

    /// The tree is empty and nothing watches its events: retires the
    /// cgroup (to its pool, or removed) and wakes the waiters. Called once,
    /// by whoever moved [`Watching`] to `Ended`.
    fn end(&self) {
        // The last figures are read before the cgroup goes; a removal that
        // fails (it cannot while the tree is empty, the kernel decides both
        // on the same count) leaves the directory to the next process's
        // stale sweep, and the tree is over all the same.
        let _removed = self.cgroup.retire();
        #[cfg(feature = "tracing")]
        crate::trace::tree_ended(self.cgroup.path(), _removed.as_ref().map(drop));
        self.mark_empty();
    }

    fn mark_empty(&self) {
        self.empty.store(true, Ordering::Release);
        self.emptied.notify_waiters();
    }

    /// The background thread was told that `cgroup.events` changed:
    /// returns whether the tree is empty, and so needs no more watching.
    /// The tree ends in [`CgroupTree::unwatched`], once the watch is gone,
    /// for a cgroup given back to a pool must not be watched by two trees.
    pub(crate) fn changed(&self) -> bool {
        // Reading re-arms the notification. An error means the cgroup is
        // gone (removed behind our back): its tree has ended too.
        !matches!(self.watch.populated(), Ok(true))
    }

    /// The background thread no longer watches the events: the tree ends.
    pub(crate) fn unwatched(&self) {
        let mut watching = lock(&self.watching);
        debug_assert_eq!(*watching, Watching::Armed);
        *watching = Watching::Ended;
        self.end();
    }

    /// Arms the tree as [`CgroupTree::look`] would for a populated tree,
    /// for the loom models (which have no background thread).
    #[cfg(all(test, brood_loom))]
    pub(crate) fn look_for_model(&self) -> bool {
        self.look() == Look::Arm
    }
}

/// What a look at an unwatched tree did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// The tree had ended, or it was empty and has ended now.
    Ended,
    /// The background thread watches it already.
    Armed,
    /// It is populated: the caller hands it to the background thread.
    Arm,
}

impl Changes for CgroupTree {
    fn fd(&self) -> BorrowedFd<'_> {
        self.watch.as_fd()
    }

    fn changed(&self) -> bool {
        CgroupTree::changed(self)
    }

    fn unwatched(&self) {
        CgroupTree::unwatched(self)
    }
}
