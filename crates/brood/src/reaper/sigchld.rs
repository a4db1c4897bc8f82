//! The SIGCHLD exit watcher: O(1) dispatch, and the safety net behind it.
//!
//! # How one SIGCHLD is handled in O(1)
//!
//! The signal handler (`sys::sigchld`) writes the exited child's pid (from
//! `si_pid`) to the background thread's wake pipe. The thread then runs
//! [`dispatch`]:
//!
//! 1. it tells each pid it was told about, if the pid is in the table of live
//!    children, that it exited ([`Tracked::notice`]);
//! 2. it asks the kernel for any *other* exited child with
//!    `waitid(P_ALL, WNOHANG | WNOWAIT)`, which names a zombie without
//!    reaping it, because SIGCHLDs that arrive while one is pending merge into
//!    one and their pids are lost. It tells the child it names, if it is
//!    ours, and asks again until no zombie is left.
//!
//! A child told that it exited is reaped at once (one `wait4`) if somebody
//! waits for it: a task is parked on its exit, or its `Child` was dropped
//! or handed to `output`/`status`. Otherwise brood looks without reaping
//! (one `waitid(WNOWAIT)`), records the exit as *announced*, wakes any task
//! that dropped a wait future on it, and leaves the zombie for the owner,
//! who may collect it with `try_wait`, `wait`, or a `waitpid` of its own.
//!
//! So an awaited exit costs one `wait4` and, per wake-up, one empty peek; no
//! pid that did not exit is ever asked about, and only the task whose child
//! exited is woken. brood never reaps a pid that is not in the table.
//!
//! # When the peek is blind
//!
//! The peek names the *oldest* zombie, and keeps naming it until it is
//! reaped. If that zombie is one the dispatcher must leave in place, the
//! peek cannot see past it:
//!
//! - a foreign zombie (the host spawned it with `std::process` and has not
//!   waited yet), or
//! - one of ours whose exit was announced and not collected yet (the
//!   *blind-peek window*, [`DispatchStats::blind`]).
//!
//! Either way the dispatcher falls back to telling each of its own *watched*
//! children ([`Table::scan_watched`]: one wait call per child somebody
//! waited for, dropped or shares through a handle, that is not announced
//! yet, reaping only those somebody waits for), on each SIGCHLD, until the
//! zombie is gone. The window closes when the owner collects its exit.
//!
//! A child nobody is interested in is skipped: an announcement would only
//! change its exit cell, which its owner's `try_wait` bypasses (it asks the
//! kernel). The first wait on it, its drop or a new handle marks it watched
//! ([`Table::watch`]), which checks it once if a scan skipped it since it was
//! registered. So the scan costs O(watched children) wait calls, not O(live
//! children), and no exit is lost: it is found when somebody asks.
//!
//! # Adoption (subreaper mode)
//!
//! After `become_subreaper`, orphaned descendants are re-parented to us and
//! their exits arrive here too. A zombie that is not in the table is reaped as
//! an adopted orphan, but only while no spawn is in flight: a brood child
//! between fork and registration must not be mistaken for an orphan. A zombie
//! seen during a spawn is deferred until the last one finishes.
//!
//! # The safety net
//!
//! A child reaped behind brood's back (a foreign `waitpid`, or SIGCHLD set to
//! `SIG_IGN`, which makes the kernel reap children without a signal) never
//! produces a SIGCHLD for us. [`SafetyNet`] decides when to scan every
//! tracked child for such losses: after a quiet period, which doubles while
//! the scans find nothing and restarts when a child is spawned.
//!
//! Owns: [`Sigchld`] (the handler's installation, spawn activity),
//! [`dispatch`] and its counters, [`SafetyNet`]. Calls: `table`, `tracked`, `wake` (the
//! descriptor the handler writes to), `sys::sigchld` (installing the handler).

use super::table::Table;
use super::tracked::{Reap, Tracked};
use super::wake::WakePipe;
use crate::sys;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The SIGCHLD path's process-wide state.
pub(super) struct Sigchld {
    /// Serialises installing the handler; `active` says it is done. A failed
    /// attempt is not remembered: the next spawn retries.
    install: Mutex<()>,
    active: AtomicBool,
    /// Set by every spawn; taken by the safety net (restarts its back-off).
    spawned: AtomicBool,
}

impl Sigchld {
    pub(super) const fn new() -> Self {
        Sigchld {
            install: Mutex::new(()),
            active: AtomicBool::new(false),
            spawned: AtomicBool::new(false),
        }
    }

    /// Whether brood's SIGCHLD handler is installed.
    pub(super) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Installs the SIGCHLD handler unless it is installed; it writes to
    /// `wake`.
    pub(super) fn install(&self, wake: &WakePipe) -> io::Result<()> {
        if self.is_active() {
            return Ok(());
        }
        let _installing = self.install.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_active() {
            return Ok(());
        }
        sys::sigchld::install(wake.handler_end()?).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("brood: cannot install the SIGCHLD handler: {e}"),
            )
        })?;
        self.active.store(true, Ordering::Release);
        Ok(())
    }

    /// Notes that a child was registered.
    pub(super) fn note_spawn(&self) {
        self.spawned.store(true, Ordering::Release);
    }

    /// Whether a child was registered since the last call.
    pub(super) fn take_spawned(&self) -> bool {
        self.spawned.swap(false, Ordering::AcqRel)
    }
}

/// Counters of the work one dispatch did, for tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DispatchStats {
    /// Children reaped (or found lost).
    pub(crate) reaped: usize,
    /// `waitid(P_ALL, WNOWAIT)` peeks.
    pub(crate) peeks: usize,
    /// Children told about an exit by a fallback scan.
    pub(crate) scanned: usize,
    /// Orphans adopted in subreaper mode.
    pub(crate) adopted: usize,
    /// Whether the peek was blind because it named one of our own announced
    /// zombies: the scan that followed is the blind-peek window's cost.
    pub(crate) blind: bool,
}

/// Dispatches whose peek was blind because of one of our own announced
/// zombies, process-wide (see [`DispatchStats::blind`]), for tests.
static BLIND_SCANS: AtomicU64 = AtomicU64::new(0);

/// How many dispatches fell back to a scan because the peek was blind to
/// exits behind an announced zombie of ours.
#[cfg(feature = "test-hooks")]
pub(crate) fn blind_scans() -> u64 {
    BLIND_SCANS.load(Ordering::Relaxed)
}

/// Handles one wake-up of the dispatcher. `hinted` are the pids the
/// signal handler reported; `peek` names some unreaped exited child.
///
/// `reap_orphan` reaps an adopted orphan by pid (subreaper mode only);
/// it returns whether the pid was reaped.
pub(crate) fn dispatch<T: ?Sized + Tracked>(
    table: &Table<T>,
    hinted: &[u32],
    mut peek: impl FnMut() -> io::Result<Option<u32>>,
    mut reap_orphan: impl FnMut(u32) -> bool,
) -> DispatchStats {
    let mut stats = DispatchStats::default();
    for &pid in hinted {
        match table.notice_pid(pid) {
            Some(Reap::Fresh) => stats.reaped += 1,
            None if table.may_adopt(pid) && reap_orphan(pid) => stats.adopted += 1,
            // Exited before `spawn` registered it (or not ours): record
            // it so that registration checks it.
            None => table.unclaim(pid),
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
                table.clear_unclaimed();
                break;
            }
            Err(_) => break,
        };
        match table.notice_pid(pid) {
            Some(Reap::Fresh) => stats.reaped += 1,
            None if table.may_adopt(pid) && reap_orphan(pid) => stats.adopted += 1,
            // Ours but not waitable yet: a tracer (strace -f) holds the
            // exit. It is reported again when released; asking every
            // other child would not help, so no scan.
            Some(Reap::Running) => break,
            // Ours, exited, and left for its owner: the peek will name it
            // until the owner collects it, and cannot see past it. Scan, and
            // keep it unclaimed so that registration checks new children
            // while the window is open.
            Some(Reap::Announced) => {
                table.unclaim(pid);
                stats.blind = true;
                BLIND_SCANS.fetch_add(1, Ordering::Relaxed);
                let (reaped, scanned) = table.scan_watched();
                stats.reaped += reaped;
                stats.scanned += scanned;
                break;
            }
            // Not ours (yet), or a stale entry whose pid the zombie
            // recycled. Peeking again would name the same zombie, so
            // stop here.
            _ => {
                table.unclaim(pid);
                // With a spawn in flight the zombie is most likely that
                // spawn's child, which registration will check: no scan.
                // Otherwise it is foreign and may hide ours: scan.
                if !table.spawn_in_flight() {
                    let (reaped, scanned) = table.scan_watched();
                    stats.reaped += reaped;
                    stats.scanned += scanned;
                }
                break;
            }
        }
    }
    stats
}

/// The safety net's timing: when the background thread scans every tracked
/// child for exits that reached somebody else.
///
/// A *quiet period* starts at [`SafetyNet::FIRST`]. A SIGCHLD that names a
/// pid is news: the period starts again, as long as before. When a period
/// passes without news, the thread scans; a scan that finds nothing doubles
/// the period (up to [`SafetyNet::MAX`]), one that finds a lost child
/// restarts at `FIRST`. A spawn also restarts at `FIRST`: a period during
/// which a child was registered is not quiet, even if the thread slept
/// through it, so a long spawn loop is never interrupted by scans.
///
/// Time is passed in, so the tests drive it with a fake clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SafetyNet {
    quiet: Duration,
    since: Instant,
}

impl SafetyNet {
    /// The first quiet period, and the one after a spawn or a scan that
    /// found a lost child.
    pub(super) const FIRST: Duration = Duration::from_secs(1);
    /// The longest quiet period.
    pub(super) const MAX: Duration = Duration::from_secs(60);

    pub(super) fn new(now: Instant) -> Self {
        SafetyNet {
            quiet: Self::FIRST,
            since: now,
        }
    }

    /// A child was registered: the back-off starts over.
    pub(super) fn spawned(&mut self, now: Instant) {
        self.quiet = Self::FIRST;
        self.since = now;
    }

    /// A SIGCHLD named a pid: the current period starts again.
    pub(super) fn news(&mut self, now: Instant) {
        self.since = now;
    }

    /// How long until the next scan is due (zero if it is).
    pub(super) fn time_left(&self, now: Instant) -> Duration {
        (self.since + self.quiet).saturating_duration_since(now)
    }

    /// Whether a scan is due.
    pub(super) fn scan_due(&self, now: Instant) -> bool {
        now >= self.since + self.quiet
    }

    /// A scan ran and reaped `reaped` children.
    pub(super) fn scanned(&mut self, reaped: usize, now: Instant) {
        self.quiet = if reaped > 0 {
            Self::FIRST
        } else {
            (self.quiet * 2).min(Self::MAX)
        };
        self.since = now;
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::super::table::mock::{
        child, no_orphans, orphan_reaper, peek, unasked, Kernel, MockChild,
    };
    use super::*;
    use crate::sync::Arc;
    use std::collections::BTreeSet;
    use std::sync::atomic::Ordering;

    #[test]
    fn subreaper_adopts_unknown_zombies_but_never_tracked_ones() {
        let kernel = Kernel::default();
        let table = Table::new();
        table.adopt_orphans();
        let ours = child(&kernel, 30);
        table.register(30, ours.clone());
        // 10 and 11 are orphans re-parented to us; 30 is ours.
        kernel.zombies.borrow_mut().extend([10, 30, 11]);
        let stats = dispatch(&table, &[10], peek(&kernel), orphan_reaper(&kernel));
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
        let stats = dispatch(&table, &[50], peek(&kernel), orphan_reaper(&kernel));
        assert_eq!(stats.adopted, 0);
        assert_eq!(*kernel.zombies.borrow(), vec![50]);
        let c = child(&kernel, 50);
        table.register(50, c.clone());
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
            table.register(c.pid, c.clone());
        }
        kernel.zombies.borrow_mut().push(500);
        let stats = dispatch(&table, &[500], peek(&kernel), no_orphans);
        assert_eq!(
            stats,
            DispatchStats {
                reaped: 1,
                peeks: 1,
                scanned: 0,
                adopted: 0,
                blind: false,
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
            table.register(c.pid, c.clone());
        }
        // Three exits, but only one SIGCHLD (for pid 3) got through.
        kernel.zombies.borrow_mut().extend([3, 7, 9]);
        let stats = dispatch(&table, &[3], peek(&kernel), no_orphans);
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
        table.register(20, ours.clone());
        // Somebody waits for it (the first poll of its wait marks it).
        assert_eq!(table.watch(20, Arc::as_ptr(&ours)), None);
        // 10 is somebody else's child; it is older, so the peek names it.
        kernel.zombies.borrow_mut().extend([10, 20]);
        let stats = dispatch(&table, &[], peek(&kernel), no_orphans);
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
        let stats = dispatch(&table, &[42], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 0);
        assert!(table.is_unclaimed(42));
        let c = child(&kernel, 42);
        table.register(42, c.clone());
        assert!(c.reaped.load(Ordering::SeqCst));
        assert!(!table.is_unclaimed(42));
    }

    #[test]
    fn stale_entry_does_not_hide_a_recycled_pid() {
        let kernel = Kernel::default();
        let table = Table::new();
        let old = child(&kernel, 5);
        table.register(5, old.clone());
        kernel.zombies.borrow_mut().push(5);
        assert_eq!(old.notice(), Reap::Fresh);
        // Before `old` is forgotten, pid 5 is recycled by a new child that
        // exits before it is registered. The dispatcher must not spin on it.
        kernel.zombies.borrow_mut().push(5);
        let stats = dispatch(&table, &[5], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 0);
        assert!(table.is_unclaimed(5));
        let new = child(&kernel, 5);
        table.register(5, new.clone());
        assert!(new.reaped.load(Ordering::SeqCst));
    }

    #[test]
    fn early_exit_hidden_behind_a_foreign_zombie_is_reaped_at_registration() {
        let kernel = Kernel::default();
        let table = Table::new();
        // Foreign zombie 10 is older; our child 60 exits before registration.
        kernel.zombies.borrow_mut().extend([10, 60]);
        let stats = dispatch(&table, &[60], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 0);
        let c = child(&kernel, 60);
        table.register(60, c.clone());
        assert!(c.reaped.load(Ordering::SeqCst));
        // The same, with the SIGCHLD for 60 merged away (no hint).
        kernel.zombies.borrow_mut().push(61);
        dispatch(&table, &[], peek(&kernel), no_orphans);
        let c = child(&kernel, 61);
        table.register(61, c.clone());
        assert!(c.reaped.load(Ordering::SeqCst));
        assert_eq!(*kernel.zombies.borrow(), vec![10]);
    }

    #[test]
    fn unknown_zombie_during_a_spawn_does_not_trigger_a_scan() {
        let kernel = Kernel::default();
        let table = Table::new();
        let others: Vec<_> = (100..200).map(|pid| child(&kernel, pid)).collect();
        for c in &others {
            table.register(c.pid, c.clone());
        }
        table.spawn_started();
        kernel.zombies.borrow_mut().push(77);
        let stats = dispatch(&table, &[77], peek(&kernel), no_orphans);
        assert_eq!(stats.scanned, 0);
        let c = child(&kernel, 77);
        table.register(77, c.clone());
        table.spawn_finished();
        assert!(c.reaped.load(Ordering::SeqCst));
    }

    #[test]
    fn an_exit_nobody_waits_for_is_announced_and_left_in_place() {
        let kernel = Kernel::default();
        let table = Table::new();
        let awaited: Vec<_> = (100..110).map(|pid| child(&kernel, pid)).collect();
        for c in &awaited {
            table.register(c.pid, c.clone());
            table.watch(c.pid, Arc::as_ptr(c));
        }
        // The owner holds pid 7 and waits for nothing: it may collect the
        // exit with a waitpid of its own, so brood must leave the zombie.
        let held = unasked(&kernel, 7);
        table.register(7, held.clone());
        kernel.zombies.borrow_mut().push(7);
        let stats = dispatch(&table, &[7], peek(&kernel), no_orphans);
        assert!(held.announced.load(Ordering::SeqCst));
        assert!(!held.reaped.load(Ordering::SeqCst));
        assert_eq!(
            *kernel.zombies.borrow(),
            vec![7],
            "the zombie is left in place"
        );
        // The peek names 7 and cannot see past it: the blind window. The
        // scan asks each awaited child once (none exited), and 7, which
        // nobody waits for, not at all.
        assert!(stats.blind);
        assert_eq!(stats.scanned, 10);
        assert_eq!(
            kernel.peeks.load(Ordering::SeqCst),
            1,
            "one WNOWAIT look at 7"
        );
        assert_eq!(kernel.waits.load(Ordering::SeqCst), 10);
        assert!(table.is_unclaimed(7));
        // The owner collects it; the entry goes.
        assert_eq!(held.collect(), Reap::Fresh);
        table.forget(7, Arc::as_ptr(&held));
        assert_eq!(table.len(), 10);
    }

    /// A table whose child 3, held by an owner who does not wait, has
    /// exited and been announced: the blind-peek window is open. The pids in
    /// `awaited` are registered too, each with a waiter (so watched, as the
    /// first poll of a wait marks a child).
    fn open_window(
        kernel: &Kernel,
        awaited: std::ops::Range<u32>,
    ) -> (
        Table<MockChild<'_>>,
        Arc<MockChild<'_>>,
        Vec<Arc<MockChild<'_>>>,
    ) {
        let table = Table::new();
        let held = unasked(kernel, 3);
        table.register(3, held.clone());
        let awaited: Vec<_> = awaited.map(|pid| child(kernel, pid)).collect();
        for c in &awaited {
            table.register(c.pid, c.clone());
            assert_eq!(table.watch(c.pid, Arc::as_ptr(c)), None, "no scan yet");
        }
        kernel.zombies.borrow_mut().push(3);
        assert!(dispatch(&table, &[3], peek(kernel), no_orphans).blind);
        (table, held, awaited)
    }

    #[test]
    fn the_blind_window_finds_exits_hidden_behind_an_announced_zombie() {
        let kernel = Kernel::default();
        let (table, held, awaited) = open_window(&kernel, 10..20);
        // Two awaited children exit; their SIGCHLDs merge into one whose
        // pid is lost, and the peek keeps naming 3.
        kernel.zombies.borrow_mut().extend([12, 17]);
        let stats = dispatch(&table, &[], peek(&kernel), no_orphans);
        assert!(stats.blind);
        assert_eq!(stats.reaped, 2);
        assert!(awaited[2].reaped.load(Ordering::SeqCst));
        assert!(awaited[7].reaped.load(Ordering::SeqCst));
        assert_eq!(*kernel.zombies.borrow(), vec![3]);
        assert!(!held.reaped.load(Ordering::SeqCst));
    }

    #[test]
    fn the_blind_window_closes_when_the_owner_collects() {
        let kernel = Kernel::default();
        let (table, held, _awaited) = open_window(&kernel, 10..1010);
        assert_eq!(held.collect(), Reap::Fresh);
        table.forget(3, Arc::as_ptr(&held));
        // From now on an awaited exit costs one wait and one empty peek
        // again, and the first peek that finds no zombie empties the set.
        let waits = kernel.waits.load(Ordering::SeqCst);
        kernel.zombies.borrow_mut().push(500);
        let stats = dispatch(&table, &[500], peek(&kernel), no_orphans);
        assert_eq!(
            stats,
            DispatchStats {
                reaped: 1,
                peeks: 1,
                scanned: 0,
                adopted: 0,
                blind: false,
            }
        );
        assert_eq!(kernel.waits.load(Ordering::SeqCst), waits + 1);
        assert!(!table.is_unclaimed(3));
    }

    #[test]
    fn registration_checks_new_children_while_the_window_is_open() {
        let kernel = Kernel::default();
        let (table, _held, _) = open_window(&kernel, 0..0);
        // A new child exits before its spawn registers it, and its SIGCHLD
        // merges away: the peek (blind) cannot name it.
        kernel.zombies.borrow_mut().push(40);
        dispatch(&table, &[], peek(&kernel), no_orphans);
        let new = child(&kernel, 40);
        table.register(40, new.clone());
        assert!(new.reaped.load(Ordering::SeqCst), "checked at registration");
    }

    #[test]
    fn orphans_hidden_behind_an_announced_zombie_are_adopted_by_the_next_dispatch() {
        let kernel = Kernel::default();
        let table = Table::new();
        table.adopt_orphans();
        let held = unasked(&kernel, 3);
        table.register(3, held.clone());
        // Our child 3 exits with zombies of its own, re-parented to us; the
        // SIGCHLDs merge into one for 3.
        kernel.zombies.borrow_mut().extend([3, 10, 11]);
        let stats = dispatch(&table, &[3], peek(&kernel), orphan_reaper(&kernel));
        assert!(stats.blind);
        assert_eq!(stats.adopted, 0, "a scan knows only our own children");
        assert_eq!(*kernel.zombies.borrow(), vec![3, 10, 11]);
        // The owner collects 3; that asks for one more dispatch
        // (`reaper::dispatch_again`), whose peek now sees past it.
        assert_eq!(held.collect(), Reap::Fresh);
        table.forget(3, Arc::as_ptr(&held));
        let stats = dispatch(&table, &[], peek(&kernel), orphan_reaper(&kernel));
        assert_eq!(stats.adopted, 2);
        assert!(kernel.zombies.borrow().is_empty());
    }

    #[test]
    fn scans_never_reap_a_child_nobody_waits_for() {
        let kernel = Kernel::default();
        let table = Table::new();
        let held: Vec<_> = (1..=5).map(|pid| unasked(&kernel, pid)).collect();
        for c in &held {
            table.register(c.pid, c.clone());
        }
        kernel.zombies.borrow_mut().extend([2, 4]);
        // The safety net's scan.
        let (reaped, asked) = table.scan();
        assert_eq!((reaped, asked), (0, 5));
        assert_eq!(*kernel.zombies.borrow(), vec![2, 4]);
        assert!(held[1].announced.load(Ordering::SeqCst));
        assert!(held[3].announced.load(Ordering::SeqCst));
        assert_eq!(kernel.waits.load(Ordering::SeqCst), 0);
        // A second scan looks only at the three that have not exited.
        table.scan();
        assert_eq!(kernel.peeks.load(Ordering::SeqCst), 5 + 3);
        // Once the owner drops its Child, the next notice reaps it.
        held[1].asked.store(true, Ordering::SeqCst);
        let (reaped, _) = table.scan();
        assert_eq!(reaped, 1);
        assert_eq!(*kernel.zombies.borrow(), vec![4]);
    }

    /// Registers `pids` as children whose owner holds them without waiting,
    /// none of them exited; returns them with the wait calls made so far.
    fn hold_unasked<'k>(
        kernel: &'k Kernel,
        table: &Table<MockChild<'k>>,
        pids: std::ops::Range<u32>,
    ) -> Vec<Arc<MockChild<'k>>> {
        let held: Vec<_> = pids.map(|pid| unasked(kernel, pid)).collect();
        for c in &held {
            table.register(c.pid, c.clone());
        }
        held
    }

    /// Every wait call the mock kernel has seen: reaps and `WNOWAIT` looks.
    fn calls(kernel: &Kernel) -> usize {
        kernel.waits.load(Ordering::SeqCst) + kernel.peeks.load(Ordering::SeqCst)
    }

    #[test]
    fn a_blind_scan_asks_no_child_that_nobody_waits_for() {
        let kernel = Kernel::default();
        let (table, held, _) = open_window(&kernel, 0..0);
        // A thousand children held without a wait (a spawn loop that awaits
        // later, or `try_wait` polling), all running.
        let others = hold_unasked(&kernel, &table, 100..1100);
        // SIGCHLDs arrive for exits whose pids merged away; the peek keeps
        // naming 3. Each dispatch must not cost a call per held child.
        let before = calls(&kernel);
        for _ in 0..10 {
            let stats = dispatch(&table, &[], peek(&kernel), no_orphans);
            assert!(stats.blind);
            assert_eq!(stats.reaped, 0);
        }
        assert_eq!(
            calls(&kernel) - before,
            0,
            "wait calls for children nobody waits for"
        );
        assert!(!held.reaped.load(Ordering::SeqCst));
        assert!(others.iter().all(|c| !c.announced.load(Ordering::SeqCst)));
    }

    #[test]
    fn a_blind_scan_costs_one_call_per_watched_child() {
        let kernel = Kernel::default();
        let (table, _held, awaited) = open_window(&kernel, 10..20);
        let _others = hold_unasked(&kernel, &table, 100..1100);
        // Two awaited children exit; their SIGCHLDs merge into one whose pid
        // is lost.
        kernel.zombies.borrow_mut().extend([12, 17]);
        let before = calls(&kernel);
        let stats = dispatch(&table, &[], peek(&kernel), no_orphans);
        assert!(stats.blind);
        assert_eq!((stats.reaped, stats.scanned), (2, 10));
        // One reap attempt per awaited child, nothing for the thousand.
        assert_eq!(calls(&kernel) - before, 10);
        assert!(awaited[2].reaped.load(Ordering::SeqCst));
        assert!(awaited[7].reaped.load(Ordering::SeqCst));
        // The two are gone from the table; the next scan asks the other 8.
        table.forget(12, Arc::as_ptr(&awaited[2]));
        table.forget(17, Arc::as_ptr(&awaited[7]));
        let stats = dispatch(&table, &[], peek(&kernel), no_orphans);
        assert_eq!((stats.reaped, stats.scanned), (0, 8));
    }

    #[test]
    fn an_exit_a_blind_scan_skipped_is_found_by_a_later_wait() {
        let kernel = Kernel::default();
        let (table, held, _) = open_window(&kernel, 0..0);
        let late = hold_unasked(&kernel, &table, 50..51).remove(0);
        // 50 exits; its SIGCHLD merges away behind 3, and the scan skips it.
        kernel.zombies.borrow_mut().push(50);
        dispatch(&table, &[], peek(&kernel), no_orphans);
        assert!(!late.announced.load(Ordering::SeqCst), "skipped");
        // Its owner awaits it. The wait's first poll marks it watched before
        // parking, which checks it (the scan skipped it): the exit is
        // announced, and the poll collects it.
        let before = calls(&kernel);
        assert_eq!(table.watch(50, Arc::as_ptr(&late)), Some(Reap::Announced));
        assert_eq!(calls(&kernel) - before, 1, "one WNOWAIT look");
        assert_eq!(late.collect(), Reap::Fresh);
        // Watched once is enough: no second check.
        assert_eq!(table.watch(50, Arc::as_ptr(&late)), None);
        assert_eq!(*kernel.zombies.borrow(), vec![3]);
        assert!(!held.reaped.load(Ordering::SeqCst));
    }

    #[test]
    fn an_exit_a_blind_scan_skipped_is_found_by_try_wait() {
        let kernel = Kernel::default();
        let (table, _held, _) = open_window(&kernel, 0..0);
        let polled = hold_unasked(&kernel, &table, 50..51).remove(0);
        assert_eq!(polled.collect(), Reap::Running, "try_wait: still running");
        kernel.zombies.borrow_mut().push(50);
        dispatch(&table, &[], peek(&kernel), no_orphans);
        assert!(!polled.announced.load(Ordering::SeqCst), "skipped");
        // try_wait asks the kernel itself, announced or not.
        assert_eq!(polled.collect(), Reap::Fresh);
        table.forget(50, Arc::as_ptr(&polled));
        assert_eq!(*kernel.zombies.borrow(), vec![3]);
    }

    #[test]
    fn a_waiter_registered_during_the_window_is_found_by_the_scans() {
        let kernel = Kernel::default();
        let (table, _held, _) = open_window(&kernel, 0..0);
        // Registered while the window is open (checked once then: it runs),
        // skipped by a scan, then awaited while it still runs.
        let c = hold_unasked(&kernel, &table, 60..61).remove(0);
        dispatch(&table, &[], peek(&kernel), no_orphans);
        assert_eq!(table.watch(60, Arc::as_ptr(&c)), Some(Reap::Running));
        c.asked.store(true, Ordering::SeqCst);
        // Registered and awaited with no scan in between: nothing to check.
        let d = hold_unasked(&kernel, &table, 61..62).remove(0);
        assert_eq!(table.watch(61, Arc::as_ptr(&d)), None);
        d.asked.store(true, Ordering::SeqCst);
        // Both exit; their SIGCHLDs merge away behind 3. The scan finds them.
        kernel.zombies.borrow_mut().extend([60, 61]);
        let stats = dispatch(&table, &[], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 2);
        assert!(c.reaped.load(Ordering::SeqCst));
        assert!(d.reaped.load(Ordering::SeqCst));
        assert_eq!(*kernel.zombies.borrow(), vec![3]);
    }

    #[test]
    fn a_child_dropped_during_the_window_is_reaped() {
        let kernel = Kernel::default();
        let (table, _held, _) = open_window(&kernel, 0..0);
        let early = hold_unasked(&kernel, &table, 70..71).remove(0);
        let late = hold_unasked(&kernel, &table, 71..72).remove(0);
        // 70 exits behind 3 and is skipped; then its `Child` is dropped:
        // orphaned (asked), its last reap attempt collects it.
        kernel.zombies.borrow_mut().push(70);
        dispatch(&table, &[], peek(&kernel), no_orphans);
        early.asked.store(true, Ordering::SeqCst);
        assert_eq!(early.collect(), Reap::Fresh);
        // 71 is dropped while it runs: the reap attempt finds nothing, and
        // it is handed over (marked watched, checked: a scan skipped it).
        late.asked.store(true, Ordering::SeqCst);
        assert_eq!(late.collect(), Reap::Running);
        assert_eq!(table.watch(71, Arc::as_ptr(&late)), Some(Reap::Running));
        // It exits later, its SIGCHLD merged away: the scan reaps it.
        kernel.zombies.borrow_mut().push(71);
        let stats = dispatch(&table, &[], peek(&kernel), no_orphans);
        assert_eq!(stats.reaped, 1);
        assert!(late.reaped.load(Ordering::SeqCst));
        assert_eq!(*kernel.zombies.borrow(), vec![3]);
    }

    #[test]
    fn a_recycled_pid_is_not_watched_for_the_child_before() {
        let kernel = Kernel::default();
        let table = Table::new();
        let old = child(&kernel, 9);
        table.register(9, old.clone());
        assert_eq!(table.watch(9, Arc::as_ptr(&old)), None);
        // Reaped, not forgotten yet, and pid 9 is reused by a held child.
        kernel.zombies.borrow_mut().push(9);
        assert_eq!(old.notice(), Reap::Fresh);
        let new = unasked(&kernel, 9);
        table.register(9, new.clone());
        // A stale mark: the old child's would make the scan ask the new one.
        table.forget(9, Arc::as_ptr(&old));
        assert_eq!(table.watch(9, Arc::as_ptr(&old)), None, "not the entry");
        let held = unasked(&kernel, 3);
        table.register(3, held.clone());
        kernel.zombies.borrow_mut().push(3);
        let stats = dispatch(&table, &[3], peek(&kernel), no_orphans);
        assert!(stats.blind);
        assert_eq!(stats.scanned, 0, "the new child 9 is not watched");
    }

    /// A clock the tests move by hand.
    struct FakeClock(Instant);

    impl FakeClock {
        fn now(&self) -> Instant {
            self.0
        }

        fn advance(&mut self, by: Duration) {
            self.0 += by;
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn safety_net_waits_a_quiet_second_first() {
        let mut clock = FakeClock(Instant::now());
        let net = SafetyNet::new(clock.now());
        assert_eq!(net.time_left(clock.now()), SECOND);
        clock.advance(SECOND - Duration::from_millis(1));
        assert!(!net.scan_due(clock.now()));
        assert_eq!(net.time_left(clock.now()), Duration::from_millis(1));
        clock.advance(Duration::from_millis(1));
        assert!(net.scan_due(clock.now()));
        assert_eq!(net.time_left(clock.now()), Duration::ZERO);
    }

    #[test]
    fn safety_net_backs_off_to_a_minute_while_scans_find_nothing() {
        let mut clock = FakeClock(Instant::now());
        let mut net = SafetyNet::new(clock.now());
        let mut periods = Vec::new();
        for _ in 0..9 {
            let left = net.time_left(clock.now());
            periods.push(left.as_secs());
            clock.advance(left);
            assert!(net.scan_due(clock.now()));
            net.scanned(0, clock.now());
        }
        assert_eq!(periods, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn safety_net_restarts_after_a_scan_that_finds_a_lost_child() {
        let mut clock = FakeClock(Instant::now());
        let mut net = SafetyNet::new(clock.now());
        for _ in 0..4 {
            clock.advance(net.time_left(clock.now()));
            net.scanned(0, clock.now());
        }
        assert_eq!(net.time_left(clock.now()), 16 * SECOND);
        clock.advance(16 * SECOND);
        net.scanned(1, clock.now());
        assert_eq!(net.time_left(clock.now()), SECOND);
    }

    #[test]
    fn safety_net_restarts_at_a_second_after_a_spawn() {
        let mut clock = FakeClock(Instant::now());
        let mut net = SafetyNet::new(clock.now());
        for _ in 0..3 {
            clock.advance(net.time_left(clock.now()));
            net.scanned(0, clock.now());
        }
        assert_eq!(net.time_left(clock.now()), 8 * SECOND);
        // A spawn half-way through the period: the next scan is a second
        // after the spawn, not at the end of the old period.
        clock.advance(4 * SECOND);
        net.spawned(clock.now());
        assert_eq!(net.time_left(clock.now()), SECOND);
        clock.advance(SECOND);
        assert!(net.scan_due(clock.now()));
    }

    #[test]
    fn safety_net_news_starts_the_period_again_without_resetting_the_back_off() {
        let mut clock = FakeClock(Instant::now());
        let mut net = SafetyNet::new(clock.now());
        for _ in 0..2 {
            clock.advance(net.time_left(clock.now()));
            net.scanned(0, clock.now());
        }
        assert_eq!(net.time_left(clock.now()), 4 * SECOND);
        clock.advance(3 * SECOND);
        net.news(clock.now());
        assert_eq!(net.time_left(clock.now()), 4 * SECOND);
        clock.advance(3 * SECOND);
        assert!(!net.scan_due(clock.now()));
    }
}
