//! The SIGCHLD dispatcher's table of live children, and the dispatch step.
//!
//! # How one SIGCHLD is handled in O(1)
//!
//! The signal handler writes the exited child's pid (from `si_pid`) to the
//! background thread's wake pipe. The thread then:
//!
//! 1. reaps each pid it was told about, if the pid is in this table (one
//!    `wait4` each);
//! 2. asks the kernel for any *other* exited child with
//!    `waitid(P_ALL, WNOHANG | WNOWAIT)`, which names a zombie without
//!    reaping it, because SIGCHLDs that arrive while one is pending merge into
//!    one and their pids are lost. It reaps what it finds if it is ours, and
//!    asks again until no zombie is left.
//!
//! So an exit costs one `wait4` and, per wake-up, one empty peek; no pid that
//! did not exit is ever asked about, and only the task whose child exited is
//! woken. brood never reaps a pid that is not in the table.
//!
//! # When the peek is blocked
//!
//! The peek returns the *oldest* zombie. If that zombie is not ours (the host
//! spawned it with `std::process` and has not waited yet), the peek cannot see
//! past it, and the dispatcher falls back to asking each of its own pids
//! (`wait4(pid, WNOHANG)`) until the foreign zombie is gone.
//!
//! # Registration vs. delivery
//!
//! A child can exit before `spawn` has put it in the table. The dispatcher then
//! sees a zombie it does not know and records its pid as *unclaimed*;
//! registration checks that set under the same lock and reaps at once if its
//! pid is there. Whichever of the two takes the lock first, the exit is
//! handled exactly once.
//!
//! # Adoption (subreaper mode)
//!
//! After `become_subreaper`, orphaned descendants are re-parented to us and
//! their exits arrive here too. A zombie that is not in the table is reaped as
//! an adopted orphan, but only while no spawn is in flight: a brood child
//! between fork and registration must not be mistaken for an orphan. Spawns
//! bracket themselves with [`Table::spawn_started`] and
//! [`Table::spawn_finished`]; a zombie seen during a spawn is deferred until
//! the last one finishes.

use crate::sync::{lock, Arc, AtomicBool, AtomicUsize, Mutex};
use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::Ordering;

/// The outcome of asking a tracked child whether it exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reap {
    /// This call collected the exit.
    Fresh,
    /// The child had been reaped before (the entry is stale).
    Already,
    /// The child is still running.
    Running,
}

/// What the table needs from a tracked child.
pub(crate) trait Tracked {
    /// Reaps the child if it exited.
    fn reap(&self) -> Reap;
}

/// Counters of the work one dispatch did, for tests and tracing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DispatchStats {
    pub(crate) reaped: usize,
    pub(crate) peeks: usize,
    pub(crate) scanned: usize,
    pub(crate) adopted: usize,
}

#[derive(Debug)]
struct Inner<T> {
    live: HashMap<u32, Arc<T>>,
    unclaimed: HashSet<u32>,
}

/// The pids brood spawned and has not reaped yet.
#[derive(Debug)]
pub(crate) struct Table<T> {
    inner: Mutex<Inner<T>>,
    /// Subreaper mode: reap unknown zombies as adopted orphans.
    adopting: AtomicBool,
    /// Spawns between fork and registration.
    in_flight: AtomicUsize,
}

impl<T: Tracked> Table<T> {
    pub(crate) fn new() -> Self {
        Table {
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                unclaimed: HashSet::new(),
            }),
            adopting: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Turns on adoption of unknown zombies (subreaper mode).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
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

    /// Whether an unknown zombie `pid` may be reaped as an adopted orphan:
    /// adoption is on, no spawn is between fork and registration, and `pid`
    /// is (still) not ours. Checked in that order: a spawn registers before
    /// it leaves `in_flight`, so seeing zero in-flight spawns and then no
    /// entry means no brood spawn created this pid.
    fn may_adopt(&self, pid: u32) -> bool {
        self.adopting.load(Ordering::SeqCst)
            && self.in_flight.load(Ordering::SeqCst) == 0
            && !lock(&self.inner).live.contains_key(&pid)
    }

    /// Adds a freshly spawned child. If the dispatcher already saw its zombie
    /// (it exited before this call), reaps it now. While a foreign zombie
    /// hides others from the peek (`unclaimed` is not empty), it checks the
    /// new child once anyway: its SIGCHLD may have merged with another and
    /// its zombie cannot be seen behind the foreign one.
    pub(crate) fn register(&self, pid: u32, child: &Arc<T>) {
        let check_now = {
            let mut inner = lock(&self.inner);
            // A stale entry for a recycled pid (reaped, not yet forgotten) is
            // replaced; `forget` for it then finds a different Arc and leaves
            // the new entry alone.
            inner.live.insert(pid, child.clone());
            inner.unclaimed.remove(&pid) || !inner.unclaimed.is_empty()
        };
        if check_now {
            let _ = child.reap();
        }
    }

    /// Drops `pid` from the table if it still maps to `child` (identity, not
    /// just pid: the pid may already name a newer child).
    pub(crate) fn forget(&self, pid: u32, child: *const T) {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.live.get(&pid) {
            if std::ptr::eq(Arc::as_ptr(entry), child) {
                inner.live.remove(&pid);
            }
        }
    }

    fn find(&self, pid: u32) -> Option<Arc<T>> {
        lock(&self.inner).live.get(&pid).cloned()
    }

    /// Reaps `pid` if it is ours. `None`: not in the table.
    fn reap_pid(&self, pid: u32) -> Option<Reap> {
        self.find(pid).map(|child| child.reap())
    }

    /// Handles one wake-up of the dispatcher. `hinted` are the pids the
    /// signal handler reported; `peek` names some unreaped exited child.
    ///
    /// `reap_orphan` reaps an adopted orphan by pid (subreaper mode only);
    /// it returns whether the pid was reaped.
    pub(crate) fn dispatch(
        &self,
        hinted: &[u32],
        mut peek: impl FnMut() -> io::Result<Option<u32>>,
        mut reap_orphan: impl FnMut(u32) -> bool,
    ) -> DispatchStats {
        let mut stats = DispatchStats::default();
        for &pid in hinted {
            match self.reap_pid(pid) {
                Some(Reap::Fresh) => stats.reaped += 1,
                None if self.may_adopt(pid) && reap_orphan(pid) => stats.adopted += 1,
                // Exited before `spawn` registered it (or not ours): record
                // it so that registration reaps it.
                None => self.unclaim(pid),
                Some(_) => {}
            }
        }
        loop {
            stats.peeks += 1;
            let pid = match peek() {
                Ok(Some(pid)) => pid,
                Ok(None) => {
                    // No zombie at all: every unclaimed pid has been reaped by
                    // its owner since, so the set can be emptied.
                    lock(&self.inner).unclaimed.clear();
                    break;
                }
                Err(_) => break,
            };
            match self.reap_pid(pid) {
                Some(Reap::Fresh) => stats.reaped += 1,
                None if self.may_adopt(pid) && reap_orphan(pid) => stats.adopted += 1,
                // Ours but not waitable yet: a tracer (strace -f) holds the
                // exit. It is reported again when released; asking every
                // other child would not help, so no scan.
                Some(Reap::Running) => break,
                // Not ours (yet), or a stale entry whose pid the zombie
                // recycled. Peeking again would name the same zombie, so
                // stop here.
                _ => {
                    self.unclaim(pid);
                    // With a spawn in flight the zombie is most likely that
                    // spawn's child, which registration will reap: no scan.
                    // Otherwise it is foreign and may hide ours: scan.
                    if self.in_flight.load(Ordering::SeqCst) == 0 {
                        let (reaped, scanned) = self.scan();
                        stats.reaped += reaped;
                        stats.scanned += scanned;
                    }
                    break;
                }
            }
        }
        stats
    }

    /// Records `pid` as an exited child nobody has claimed yet. A spurious
    /// entry only costs one extra WNOHANG if the pid is registered later.
    fn unclaim(&self, pid: u32) {
        lock(&self.inner).unclaimed.insert(pid);
    }

    /// Asks every tracked child whether it exited: O(live children). Used
    /// only while a foreign zombie hides ours from the peek, and by the
    /// safety net that notices children reaped behind brood's back.
    /// Returns (reaped, asked).
    pub(crate) fn scan(&self) -> (usize, usize) {
        let children: Vec<Arc<T>> = lock(&self.inner).live.values().cloned().collect();
        let reaped = children.iter().filter(|c| c.reap() == Reap::Fresh).count();
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

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A mock kernel: the set of zombie pids, oldest first.
    #[derive(Default)]
    struct Kernel {
        zombies: RefCell<Vec<u32>>,
        waits: AtomicUsize,
    }

    struct MockChild<'k> {
        pid: u32,
        kernel: &'k Kernel,
        reaped: AtomicBool,
    }

    impl Tracked for MockChild<'_> {
        fn reap(&self) -> Reap {
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

    // The mock kernel is single-threaded (RefCell); Arc is what Table stores.
    #[allow(clippy::arc_with_non_send_sync)]
    fn child(kernel: &Kernel, pid: u32) -> Arc<MockChild<'_>> {
        Arc::new(MockChild {
            pid,
            kernel,
            reaped: AtomicBool::new(false),
        })
    }

    fn peek(kernel: &Kernel) -> impl FnMut() -> io::Result<Option<u32>> + '_ {
        move || Ok(kernel.zombies.borrow().first().copied())
    }

    fn no_orphans(_pid: u32) -> bool {
        panic!("adoption is off: no orphan may be reaped")
    }

    fn orphan_reaper(kernel: &Kernel) -> impl FnMut(u32) -> bool + '_ {
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

    #[test]
    fn subreaper_adopts_unknown_zombies_but_never_tracked_ones() {
        let kernel = Kernel::default();
        let table = Table::new();
        table.adopt_orphans();
        let ours = child(&kernel, 30);
        table.register(30, &ours);
        // 10 and 11 are orphans re-parented to us; 30 is ours.
        kernel.zombies.borrow_mut().extend([10, 30, 11]);
        let stats = table.dispatch(&[10], peek(&kernel), orphan_reaper(&kernel));
        assert_eq!(stats.adopted, 2);
        assert_eq!(stats.reaped, 1);
        assert!(
            ours.reaped.load(Ordering::SeqCst),
            "our child reaped as ours"
        );
        assert!(kernel.zombies.borrow().is_empty());
    }

    #[test]
    fn subreaper_defers_unknown_zombies_while_a_spawn_is_in_flight() {
        let kernel = Kernel::default();
        let table = Table::new();
        table.adopt_orphans();
        table.spawn_started();
        // Pid 50 is a brood child that exited before its spawn registered it.
        kernel.zombies.borrow_mut().push(50);
        let stats = table.dispatch(&[50], peek(&kernel), orphan_reaper(&kernel));
        assert_eq!(stats.adopted, 0);
        assert_eq!(*kernel.zombies.borrow(), vec![50]);
        let c = child(&kernel, 50);
        table.register(50, &c);
        assert!(!table.spawn_finished(), "nothing else deferred");
        assert!(
            c.reaped.load(Ordering::SeqCst),
            "reaped as ours, not adopted"
        );
    }

    #[test]
    fn one_exit_costs_one_wait_and_one_peek() {
        let kernel = Kernel::default();
        let table = Table::new();
        let children: Vec<_> = (100..1100).map(|pid| child(&kernel, pid)).collect();
        for c in &children {
            table.register(c.pid, c);
        }
        kernel.zombies.borrow_mut().push(500);
        let stats = table.dispatch(&[500], peek(&kernel), no_orphans);
        assert_eq!(
            stats,
            DispatchStats {
                reaped: 1,
                peeks: 1,
                scanned: 0,
                adopted: 0
            }
        );
        assert_eq!(kernel.waits.load(Ordering::SeqCst), 1);
        assert!(children[400].reaped.load(Ordering::SeqCst));
        table.forget(500, Arc::as_ptr(&children[400]));
        assert_eq!(table.len(), 999);
    }

    #[test]
    fn merged_signals_are_found_by_the_peek() {
        let kernel = Kernel::default();
        let table = Table::new();
        let children: Vec<_> = (1..=10).map(|pid| child(&kernel, pid)).collect();
        for c in &children {
            table.register(c.pid, c);
        }
        // Three exits, but only one SIGCHLD (for pid 3) got through.
        kernel.zombies.borrow_mut().extend([3, 7, 9]);
        let stats = table.dispatch(&[3], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 3);
        assert_eq!(stats.scanned, 0);
        let reaped: BTreeSet<_> = children
            .iter()
            .filter(|c| c.reaped.load(Ordering::SeqCst))
            .map(|c| c.pid)
            .collect();
        assert_eq!(reaped, BTreeSet::from([3, 7, 9]));
    }

    #[test]
    fn foreign_zombie_is_never_reaped_and_triggers_a_scan() {
        let kernel = Kernel::default();
        let table = Table::new();
        let ours = child(&kernel, 20);
        table.register(20, &ours);
        // 10 is somebody else's child; it is older, so the peek names it.
        kernel.zombies.borrow_mut().extend([10, 20]);
        let stats = table.dispatch(&[], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 1);
        assert_eq!(stats.scanned, 1);
        assert!(ours.reaped.load(Ordering::SeqCst));
        assert_eq!(
            *kernel.zombies.borrow(),
            vec![10],
            "foreign zombie untouched"
        );
        assert!(table.is_unclaimed(10));
    }

    #[test]
    fn exit_before_registration_is_reaped_at_registration() {
        let kernel = Kernel::default();
        let table: Table<MockChild<'_>> = Table::new();
        kernel.zombies.borrow_mut().push(42);
        // SIGCHLD arrives before spawn() registered pid 42.
        let stats = table.dispatch(&[42], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 0);
        assert!(table.is_unclaimed(42));
        let c = child(&kernel, 42);
        table.register(42, &c);
        assert!(c.reaped.load(Ordering::SeqCst));
        assert!(!table.is_unclaimed(42));
    }

    #[test]
    fn stale_entry_does_not_hide_a_recycled_pid() {
        let kernel = Kernel::default();
        let table = Table::new();
        let old = child(&kernel, 5);
        table.register(5, &old);
        kernel.zombies.borrow_mut().push(5);
        assert_eq!(old.reap(), Reap::Fresh);
        // Before `old` is forgotten, pid 5 is recycled by a new child that
        // exits before it is registered. The dispatcher must not spin on it.
        kernel.zombies.borrow_mut().push(5);
        let stats = table.dispatch(&[5], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 0);
        assert!(table.is_unclaimed(5));
        let new = child(&kernel, 5);
        table.register(5, &new);
        assert!(new.reaped.load(Ordering::SeqCst));
    }

    #[test]
    fn early_exit_hidden_behind_a_foreign_zombie_is_reaped_at_registration() {
        let kernel = Kernel::default();
        let table = Table::new();
        // Foreign zombie 10 is older; our child 60 exits before registration.
        kernel.zombies.borrow_mut().extend([10, 60]);
        let stats = table.dispatch(&[60], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 0);
        let c = child(&kernel, 60);
        table.register(60, &c);
        assert!(c.reaped.load(Ordering::SeqCst));
        // The same, with the SIGCHLD for 60 merged away (no hint).
        kernel.zombies.borrow_mut().push(61);
        table.dispatch(&[], peek(&kernel), no_orphans);
        let c = child(&kernel, 61);
        table.register(61, &c);
        assert!(c.reaped.load(Ordering::SeqCst));
        assert_eq!(*kernel.zombies.borrow(), vec![10]);
    }

    #[test]
    fn unknown_zombie_during_a_spawn_does_not_trigger_a_scan() {
        let kernel = Kernel::default();
        let table = Table::new();
        let others: Vec<_> = (100..200).map(|pid| child(&kernel, pid)).collect();
        for c in &others {
            table.register(c.pid, c);
        }
        table.spawn_started();
        kernel.zombies.borrow_mut().push(77);
        let stats = table.dispatch(&[77], peek(&kernel), no_orphans);
        assert_eq!(stats.scanned, 0);
        let c = child(&kernel, 77);
        table.register(77, &c);
        table.spawn_finished();
        assert!(c.reaped.load(Ordering::SeqCst));
    }

    #[test]
    fn forget_ignores_a_newer_child_with_the_same_pid() {
        let kernel = Kernel::default();
        let table = Table::new();
        let old = child(&kernel, 7);
        let new = child(&kernel, 7);
        table.register(7, &old);
        table.register(7, &new);
        table.forget(7, Arc::as_ptr(&old));
        assert_eq!(table.len(), 1);
        table.forget(7, Arc::as_ptr(&new));
        assert_eq!(table.len(), 0);
    }
}
