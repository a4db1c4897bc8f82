//! The table of live children: every child brood spawned and has not reaped
//! yet, by pid, on either exit watcher.
//!
//! The SIGCHLD dispatcher (`sigchld.rs`) reaps from it; in subreaper mode it
//! is how adopted orphans are told apart from our own children; a child is
//! dropped from it by whoever reaps it.
//!
//! # Registration vs. delivery
//!
//! A child can exit before `spawn` has put it in the table. The dispatcher then
//! sees a zombie it does not know and records its pid as *unclaimed*;
//! registration checks that set under the same lock and checks the child at
//! once if its pid is there. Whichever of the two takes the lock first, the
//! exit is handled exactly once.
//!
//! *Unclaimed* means, more generally, a zombie the dispatcher saw and left in
//! place: one it does not know (foreign, or not registered yet) or one of its
//! own whose exit it announced to an owner who has not collected it. While
//! there are any, the `WNOWAIT` peek may be blind to other exits (it keeps
//! naming the same zombie), so registration checks every new child once.
//!
//! # Watched children, and what a blind scan skips
//!
//! While the peek is blind the dispatcher scans, but only the *watched*
//! children ([`Table::scan_watched`]): those the child layer marked with
//! [`Table::watch`] because somebody is interested in the exit (a wait was
//! polled, which may leave a waker behind; the `Child` was dropped; a
//! handle exists). A child nobody is interested in gains nothing from an
//! announcement: its owner finds the exit itself (`try_wait` asks the
//! kernel). So the scan costs one wait call per watched child, not one per
//! live child. What it skipped is made up for when the child becomes
//! watched: each entry remembers how many skipping scans had run when it
//! was registered, and if another has run since, [`Table::watch`] checks the
//! child once ([`Tracked::notice`]). The mark and the count are read and
//! written under the table's lock, as the scan's snapshot is taken, so
//! either the scan sees the mark or the mark sees the scan.
//!
//! # Pinned children
//!
//! A child whose exit must be collected whether or not any runtime runs (an
//! orphan on the SIGCHLD path) is *pinned* ([`Table::pin`]): while any is,
//! the SIGCHLD handler sends exits to the background thread rather than to
//! the runtimes' listeners (`listener.rs`). The table counts pins with its
//! entries, so a pin ends exactly when its entry does ([`Table::forget`],
//! or a registration that replaces a stale entry); both report it.
//!
//! # Spawns in flight, and adoption
//!
//! Spawns bracket themselves with [`Table::spawn_started`] and
//! [`Table::spawn_finished`]. While one is in flight, an unknown zombie is
//! most likely that spawn's child. After `become_subreaper`, a zombie that is
//! not in the table may be reaped as an adopted orphan, but only while no
//! spawn is in flight (see [`Table::may_adopt`]).
//!
//! Owns: [`Table`], and [`LIVE`], the process's one table. Calls: `tracked`.

use super::tracked::{Reap, Tracked, TrackedChild};
use crate::sync::{lock, Arc, AtomicBool, AtomicUsize, Mutex};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::LazyLock;

/// Every live child brood spawned, on either path, by pid.
pub(super) static LIVE: LazyLock<Table<TrackedChild>> = LazyLock::new(Table::new);

#[derive(Debug)]
struct Entry<T: ?Sized> {
    child: Arc<T>,
    /// [`Inner::skips`] when the child was registered.
    skips: u64,
    /// See [`Table::pin`].
    pinned: bool,
}

#[derive(Debug)]
struct Inner<T: ?Sized> {
    live: HashMap<u32, Entry<T>>,
    unclaimed: HashSet<u32>,
    /// The pids in `live` whose child is watched ([`Table::watch`]).
    watched: HashSet<u32>,
    /// Blind scans that skipped at least one unwatched child.
    skips: u64,
}

/// The pids brood spawned and has not reaped yet.
#[derive(Debug)]
pub(crate) struct Table<T: ?Sized> {
    inner: Mutex<Inner<T>>,
    /// Subreaper mode: reap unknown zombies as adopted orphans.
    adopting: AtomicBool,
    /// Spawns between fork and registration.
    in_flight: AtomicUsize,
}

impl<T: ?Sized + Tracked> Table<T> {
    pub(crate) fn new() -> Self {
        Table {
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                unclaimed: HashSet::new(),
                watched: HashSet::new(),
                skips: 0,
            }),
            adopting: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Turns on adoption of unknown zombies (subreaper mode).
    pub(crate) fn adopt_orphans(&self) {
        self.adopting.store(true, Ordering::SeqCst);
    }

    /// A spawn is about to fork.
    pub(crate) fn spawn_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// A spawn registered its child (or failed and reaped it). Returns `true`
    /// if deferred orphans are waiting for a dispatch.
    pub(crate) fn spawn_finished(&self) -> bool {
        let last = self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1;
        last && self.adopting.load(Ordering::SeqCst) && !lock(&self.inner).unclaimed.is_empty()
    }

    /// Whether a spawn is between fork and registration.
    pub(crate) fn spawn_in_flight(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) != 0
    }

    /// Whether an unknown zombie `pid` may be reaped as an adopted orphan:
    /// adoption is on, no spawn is between fork and registration, and `pid`
    /// is (still) not ours. Checked in that order: a spawn registers before
    /// it leaves `in_flight`, so seeing zero in-flight spawns and then no
    /// entry means no brood spawn created this pid.
    pub(crate) fn may_adopt(&self, pid: u32) -> bool {
        self.adopting.load(Ordering::SeqCst)
            && self.in_flight.load(Ordering::SeqCst) == 0
            && !lock(&self.inner).live.contains_key(&pid)
    }

    /// Adds a freshly spawned child. If the dispatcher already saw its zombie
    /// (it exited before this call), checks it now ([`Tracked::notice`]).
    /// While a zombie left in place hides others from the peek (`unclaimed`
    /// is not empty), it checks the new child once anyway: its SIGCHLD may
    /// have merged with another and its zombie cannot be seen behind the
    /// one left in place.
    ///
    /// Returns whether it replaced a pinned entry (a stale one whose pid
    /// was recycled): that pin has ended.
    pub(crate) fn register(&self, pid: u32, child: Arc<T>) -> bool {
        let (check_now, unpinned) = {
            let mut inner = lock(&self.inner);
            let check = inner.unclaimed.remove(&pid) || !inner.unclaimed.is_empty();
            // A stale entry for a recycled pid (reaped, not yet forgotten) is
            // replaced; `forget` for it then finds a different Arc and leaves
            // the new entry alone. The new child is not watched yet.
            let kept = check.then(|| child.clone());
            let skips = inner.skips;
            let entry = Entry {
                child,
                skips,
                pinned: false,
            };
            let replaced = inner.live.insert(pid, entry);
            inner.watched.remove(&pid);
            (kept, replaced.is_some_and(|old| old.pinned))
        };
        if let Some(child) = check_now {
            let _ = child.notice();
        }
        unpinned
    }

    /// Drops `pid` from the table if it still maps to `child` (identity, not
    /// just pid: the pid may already name a newer child). Returns whether
    /// the entry was pinned: that pin has ended.
    pub(crate) fn forget(&self, pid: u32, child: *const T) -> bool {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.live.get(&pid) {
            if std::ptr::addr_eq(Arc::as_ptr(&entry.child), child) {
                inner.watched.remove(&pid);
                return inner.live.remove(&pid).is_some_and(|old| old.pinned);
            }
        }
        false
    }

    /// Pins `pid` (if it still maps to `child`): its exit must be collected
    /// whether or not any runtime runs. `true` if this started a pin; the
    /// caller counts it until [`Table::forget`] or [`Table::register`]
    /// reports its end.
    pub(crate) fn pin(&self, pid: u32, child: *const T) -> bool {
        let mut inner = lock(&self.inner);
        match inner.live.get_mut(&pid) {
            Some(entry) if std::ptr::addr_eq(Arc::as_ptr(&entry.child), child) => {
                !std::mem::replace(&mut entry.pinned, true)
            }
            _ => false,
        }
    }

    fn find(&self, pid: u32) -> Option<Arc<T>> {
        lock(&self.inner)
            .live
            .get(&pid)
            .map(|entry| entry.child.clone())
    }

    /// Marks `pid` (if it still maps to `child`) as watched: somebody is
    /// interested in its exit, so the blind scans ask it from now on. If a
    /// blind scan skipped it since it was registered, checks it now
    /// ([`Tracked::notice`], one wait call) and returns what that found: an
    /// exit whose SIGCHLD merged away behind a zombie left in place is
    /// announced (or collected, if somebody asked for it) here. `None` when
    /// nothing was checked: the child was watched already, is not in the
    /// table, or no scan skipped it.
    pub(crate) fn watch(&self, pid: u32, child: *const T) -> Option<Reap> {
        let check = {
            let mut inner = lock(&self.inner);
            let entry = inner.live.get(&pid)?;
            if !std::ptr::addr_eq(Arc::as_ptr(&entry.child), child) {
                return None;
            }
            let skipped = entry.skips != inner.skips;
            let child = entry.child.clone();
            (inner.watched.insert(pid) && skipped).then_some(child)
        };
        check.map(|child| child.notice())
    }

    /// Tells `pid` that it may have exited, if it is ours
    /// ([`Tracked::notice`]: reaped if asked for, otherwise announced).
    /// `None`: not in the table.
    pub(crate) fn notice_pid(&self, pid: u32) -> Option<Reap> {
        self.find(pid).map(|child| child.notice())
    }

    /// Records `pid` as an exited child the dispatcher left in place. A
    /// spurious entry only costs one extra check if the pid is registered
    /// later.
    pub(crate) fn unclaim(&self, pid: u32) {
        lock(&self.inner).unclaimed.insert(pid);
    }

    /// Forgets every unclaimed pid: no zombie is left, so each has been
    /// reaped by its owner since.
    pub(crate) fn clear_unclaimed(&self) {
        lock(&self.inner).unclaimed.clear();
    }

    /// Asks every tracked child whether it exited ([`Tracked::notice`]:
    /// one wait call per child, reaping only those somebody asked for, none
    /// for a child already announced): O(live children). The safety net's
    /// scan, which notices children reaped behind brood's back. Returns
    /// (reaped, asked).
    pub(crate) fn scan(&self) -> (usize, usize) {
        let children: Vec<Arc<T>> = lock(&self.inner)
            .live
            .values()
            .map(|entry| entry.child.clone())
            .collect();
        Self::ask(&children)
    }

    /// The scan while a zombie left in place hides others from the peek:
    /// asks only the watched children (see the module docs), O(watched
    /// children) wait calls. If it skips any, it counts a skipping scan, so
    /// that [`Table::watch`] checks a skipped child when it becomes watched.
    /// Returns (reaped, asked).
    pub(crate) fn scan_watched(&self) -> (usize, usize) {
        let children: Vec<Arc<T>> = {
            let mut guard = lock(&self.inner);
            if guard.watched.len() < guard.live.len() {
                guard.skips += 1;
            }
            let inner = &*guard;
            inner
                .watched
                .iter()
                .filter_map(|pid| inner.live.get(pid))
                .map(|entry| entry.child.clone())
                .collect()
        };
        Self::ask(&children)
    }

    fn ask(children: &[Arc<T>]) -> (usize, usize) {
        let reaped = children
            .iter()
            .filter(|c| c.notice() == Reap::Fresh)
            .count();
        (reaped, children.len())
    }

    /// Number of tracked children.
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).live.len()
    }

    /// Whether `pid` is recorded as an unclaimed zombie.
    #[cfg(all(test, not(brood_loom)))]
    pub(crate) fn is_unclaimed(&self, pid: u32) -> bool {
        lock(&self.inner).unclaimed.contains(&pid)
    }
}

/// A mock kernel and mock children for the table's and the dispatcher's
/// unit tests.
#[cfg(all(test, not(brood_loom)))]
pub(super) mod mock {
    use super::*;
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::BorrowedFd;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A mock kernel: the set of zombie pids, oldest first, and the wait
    /// calls made (reaps and `WNOWAIT` peeks of one child).
    #[derive(Default)]
    pub(crate) struct Kernel {
        pub(crate) zombies: RefCell<Vec<u32>>,
        pub(crate) waits: AtomicUsize,
        pub(crate) peeks: AtomicUsize,
    }

    /// A mock child. `asked`: somebody waits for its exit (a parked waiter,
    /// or its `Child` is gone), so brood reaps it as soon as it exits;
    /// otherwise its exit is only announced.
    pub(crate) struct MockChild<'k> {
        pub(crate) pid: u32,
        kernel: &'k Kernel,
        pub(crate) asked: AtomicBool,
        pub(crate) announced: AtomicBool,
        pub(crate) reaped: AtomicBool,
    }

    impl MockChild<'_> {
        /// The owner collects the exit (`try_wait`): one wait call.
        pub(crate) fn collect(&self) -> Reap {
            if self.reaped.load(Ordering::SeqCst) {
                return Reap::Already;
            }
            self.kernel.waits.fetch_add(1, Ordering::SeqCst);
            let mut z = self.kernel.zombies.borrow_mut();
            if let Some(i) = z.iter().position(|&p| p == self.pid) {
                z.remove(i);
                self.reaped.store(true, Ordering::SeqCst);
                Reap::Fresh
            } else {
                Reap::Running
            }
        }
    }

    impl Tracked for MockChild<'_> {
        fn notice(&self) -> Reap {
            if self.reaped.load(Ordering::SeqCst) {
                return Reap::Already;
            }
            if self.asked.load(Ordering::SeqCst) {
                return self.collect();
            }
            if self.announced.load(Ordering::SeqCst) {
                return Reap::Announced;
            }
            self.kernel.peeks.fetch_add(1, Ordering::SeqCst);
            if self.kernel.zombies.borrow().contains(&self.pid) {
                self.announced.store(true, Ordering::SeqCst);
                Reap::Announced
            } else {
                Reap::Running
            }
        }

        fn pidfd(&self) -> Option<BorrowedFd<'_>> {
            None
        }

        fn final_kill(&self, _stop: u64) -> bool {
            true
        }
    }

    // The mock kernel is single-threaded (RefCell); Arc is what Table stores.
    #[allow(clippy::arc_with_non_send_sync)]
    /// A child somebody waits for (the usual case: a task awaits it).
    pub(crate) fn child(kernel: &Kernel, pid: u32) -> Arc<MockChild<'_>> {
        let c = unasked(kernel, pid);
        c.asked.store(true, Ordering::SeqCst);
        c
    }

    /// A child whose owner holds it without waiting.
    // The mock kernel is single-threaded (RefCell); Arc is what Table stores.
    #[allow(clippy::arc_with_non_send_sync)]
    pub(crate) fn unasked(kernel: &Kernel, pid: u32) -> Arc<MockChild<'_>> {
        Arc::new(MockChild {
            pid,
            kernel,
            asked: AtomicBool::new(false),
            announced: AtomicBool::new(false),
            reaped: AtomicBool::new(false),
        })
    }

    pub(crate) fn peek(kernel: &Kernel) -> impl FnMut() -> io::Result<Option<u32>> + '_ {
        move || Ok(kernel.zombies.borrow().first().copied())
    }

    pub(crate) fn no_orphans(_pid: u32) -> bool {
        panic!("adoption is off: no orphan may be reaped")
    }

    pub(crate) fn orphan_reaper(kernel: &Kernel) -> impl FnMut(u32) -> bool + '_ {
        move |pid| {
            let mut z = kernel.zombies.borrow_mut();
            match z.iter().position(|&p| p == pid) {
                Some(i) => {
                    z.remove(i);
                    true
                }
                None => false,
            }
        }
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::mock::{child, Kernel};
    use super::*;

    #[test]
    fn forget_ignores_a_newer_child_with_the_same_pid() {
        let kernel = Kernel::default();
        let table = Table::new();
        let old = child(&kernel, 7);
        let new = child(&kernel, 7);
        table.register(7, old.clone());
        table.register(7, new.clone());
        table.forget(7, Arc::as_ptr(&old));
        assert_eq!(table.len(), 1);
        table.forget(7, Arc::as_ptr(&new));
        assert_eq!(table.len(), 0);
    }
}
