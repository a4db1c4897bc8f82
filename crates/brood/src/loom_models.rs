//! loom models of brood's cross-thread handoffs.
//!
//! Run with `scripts/loom` (`RUSTFLAGS="--cfg brood_loom" cargo test -p brood
//! --lib --release loom_models`). Each model runs the library's own code,
//! with loom's `Mutex`, `Arc` and atomics swapped in by `crate::sync`, under
//! every interleaving loom can find; the OS is replaced by small mocks.
//!
//! The exit cell's three transitions (an exit *announced* by the reaper,
//! *asked* for by a waiter, *reaped* by whoever comes first) are modelled
//! against each other: announce vs. a parking waiter, announce vs. the
//! owner's `try_wait`, and a dropped wait future vs. publication.
//!
//! The SIGCHLD dispatcher's table: registration vs delivery, and a first
//! wait vs a blind scan that skips children nobody waits for. Its entry
//! point: three dispatchers (the thread, two runtimes' listeners) asking
//! for a round at once through the combiner.
//!
//! Containment: a group stop's hold vs. the leader's reap (`group_stop.rs`
//! with the exit cell), and a cgroup tree's wait vs. a stop vs. the
//! cgroup's removal (`cgroup_tree.rs`, against a mock cgroup that keeps
//! `ChildCgroup`'s rule: the removal and its flag under one lock).
#![allow(unsafe_code)]

use crate::cgroup::{CgroupUsage, Signalled};
use crate::child::exit::{ExitCell, Wait};
use crate::child::group_stop::{Finish, Group, GroupStops};
use crate::child::waiters::OwnerSlot;
use crate::containment::cgroup_tree::{CgroupTree, TreeCgroup, TreeWatch, Watching};
use crate::reaper::sigchld::dispatch;
use crate::reaper::table::Table;
use crate::reaper::{Reap, Tracked};
use crate::rusage::ResourceUsage;
use crate::sync::{lock, Arc, AtomicBool, AtomicUsize, Mutex};
use loom::thread;
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

/// A mock process: `exited` is the kernel's state, `reaps` counts how often
/// a wait collected it (must end up exactly 1), `peeks` how often a
/// `WNOWAIT` look found the zombie.
struct MockProcess {
    exited: AtomicBool,
    reaps: AtomicUsize,
    peeks: AtomicUsize,
}

impl MockProcess {
    fn new() -> Self {
        MockProcess {
            exited: AtomicBool::new(false),
            reaps: AtomicUsize::new(0),
            peeks: AtomicUsize::new(0),
        }
    }
}

impl Wait for MockProcess {
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
        if self.exited.load(Ordering::SeqCst) {
            self.reaps.fetch_add(1, Ordering::SeqCst);
            Ok(Some((ExitStatus::from_raw(0), ResourceUsage::default())))
        } else {
            Ok(None)
        }
    }

    fn peek(&self) -> io::Result<Option<ExitStatus>> {
        if self.exited.load(Ordering::SeqCst) {
            self.peeks.fetch_add(1, Ordering::SeqCst);
            Ok(Some(ExitStatus::from_raw(0)))
        } else {
            Ok(None)
        }
    }
}

fn no_report(_: &crate::child::exit::Exit, _: crate::child::exit::Collected) {}

/// A waker that sets a loom flag, built by hand so it needs no std Arc.
fn flag_waker(flag: &'static AtomicBool) -> Waker {
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    fn wake(p: *const ()) {
        // SAFETY: `p` is the `&'static AtomicBool` given to `flag_waker`.
        unsafe { &*(p as *const AtomicBool) }.store(true, Ordering::SeqCst);
    }
    fn drop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    // SAFETY: the vtable functions uphold the RawWaker contract for a
    // pointer to a 'static AtomicBool.
    unsafe {
        Waker::from_raw(RawWaker::new(
            flag as *const AtomicBool as *const (),
            &VTABLE,
        ))
    }
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// Drop vs exit: the task that drops its `Child` tries one last reap while
/// the background reaper reacts to the exit. Exactly one of them collects
/// the status, and both see the same exit.
#[test]
fn loom_models_drop_vs_exit_reaps_exactly_once() {
    loom::model(|| {
        let cell = Arc::new(ExitCell::default());
        let process = Arc::new(MockProcess::new());
        let exiter = {
            let (cell, process) = (cell.clone(), process.clone());
            thread::spawn(move || {
                process.exited.store(true, Ordering::SeqCst);
                // The background reaper, woken by the exit.
                cell.try_reap(&*process)
            })
        };
        // The dropping task.
        let from_drop = cell.try_reap(&*process);
        let from_reaper = exiter.join().unwrap();
        assert!(from_reaper.is_some(), "the reaper runs after the exit");
        if let Some(exit) = from_drop {
            assert_eq!(Some(exit), from_reaper);
        }
        assert_eq!(process.reaps.load(Ordering::SeqCst), 1);
    });
}

/// Shared-handle waiters vs publication: a waiter that parks concurrently
/// with the reap is either handed the exit or woken, never lost.
#[test]
fn loom_models_waiter_is_never_lost() {
    loom::model(|| {
        let cell = Arc::new(ExitCell::default());
        let process = Arc::new(MockProcess::new());
        let woken = leak(AtomicBool::new(false));
        let waker = flag_waker(woken);
        let reaper = {
            let (cell, process) = (cell.clone(), process.clone());
            thread::spawn(move || {
                process.exited.store(true, Ordering::SeqCst);
                cell.try_reap(&*process).expect("exited");
            })
        };
        let mut key = None;
        let owner = OwnerSlot::new();
        let mut cx = Context::from_waker(&waker);
        let first = cell.poll(&mut cx, &mut key, &owner, false, &*process, no_report);
        reaper.join().unwrap();
        match first {
            Poll::Ready(_) => {}
            Poll::Pending => {
                assert!(woken.load(Ordering::SeqCst), "parked waiter was not woken");
                assert!(cell
                    .poll(&mut cx, &mut key, &owner, false, &*process, no_report)
                    .is_ready());
            }
        }
    });
}

/// A dropped wait future racing with publication: its waker is handed back
/// to its owner, not lost, so its task is woken as well as the other
/// waiter's; and an owner that goes away meanwhile frees its slot cleanly.
#[test]
fn loom_models_dropped_future_vs_publish() {
    loom::model(|| {
        let cell = Arc::new(ExitCell::default());
        let process = Arc::new(MockProcess::new());
        let a_woken = leak(AtomicBool::new(false));
        let b_woken = leak(AtomicBool::new(false));
        let (wa, wb) = (flag_waker(a_woken), flag_waker(b_woken));
        let (oa, ob) = (Arc::new(OwnerSlot::new()), OwnerSlot::new());
        let (mut ka, mut kb) = (None, None);
        assert!(cell
            .poll(
                &mut Context::from_waker(&wa),
                &mut ka,
                &oa,
                false,
                &*process,
                no_report
            )
            .is_pending());
        assert!(cell
            .poll(
                &mut Context::from_waker(&wb),
                &mut kb,
                &ob,
                false,
                &*process,
                no_report
            )
            .is_pending());
        let dropper = {
            let (cell, oa) = (cell.clone(), oa.clone());
            thread::spawn(move || {
                let mut ka = ka;
                cell.release(&mut ka, &oa);
            })
        };
        process.exited.store(true, Ordering::SeqCst);
        cell.try_reap(&*process).unwrap();
        dropper.join().unwrap();
        assert!(
            a_woken.load(Ordering::SeqCst),
            "the dropped future's task slept on"
        );
        assert!(b_woken.load(Ordering::SeqCst));
        assert!(cell
            .poll(
                &mut Context::from_waker(&wb),
                &mut kb,
                &ob,
                false,
                &*process,
                no_report
            )
            .is_ready());
        cell.drop_owner(&oa);
        assert_eq!(process.reaps.load(Ordering::SeqCst), 1);
    });
}

/// Announce vs. ask: the reaper learns of the exit (`notice`) while the
/// owner's task polls a wait for the first time. Either the waiter parks
/// first and the reaper collects the exit for it (and wakes it), or the
/// reaper only announces the exit, leaving the zombie, and the poll collects
/// it itself. Never both, never neither: reaped exactly once, the waiter
/// never left parked unwoken, and no zombie reaped while nobody asked.
#[test]
fn loom_models_announce_vs_ask() {
    loom::model(|| {
        let cell = Arc::new(ExitCell::default());
        let process = Arc::new(MockProcess::new());
        let woken = leak(AtomicBool::new(false));
        let waker = flag_waker(woken);
        let reaper = {
            let (cell, process) = (cell.clone(), process.clone());
            thread::spawn(move || {
                process.exited.store(true, Ordering::SeqCst);
                let outcome = cell.notice(&*process, no_report);
                // Announcing never reaps.
                if outcome == Reap::Announced {
                    assert_eq!(process.peeks.load(Ordering::SeqCst), 1);
                }
                outcome
            })
        };
        let owner = OwnerSlot::new();
        let mut key = None;
        let mut cx = Context::from_waker(&waker);
        let first = cell.poll(&mut cx, &mut key, &owner, false, &*process, no_report);
        let outcome = reaper.join().unwrap();
        let ready = match first {
            Poll::Ready(_) => true,
            Poll::Pending => {
                // Parked: the reaper must have collected it and woken us,
                // or not yet have seen the exit (then the kernel would tell
                // it again; here the exit happened, so it saw it).
                assert!(woken.load(Ordering::SeqCst), "parked waiter was not woken");
                cell.poll(&mut cx, &mut key, &owner, false, &*process, no_report)
                    .is_ready()
            }
        };
        assert!(ready);
        assert!(matches!(
            outcome,
            Reap::Fresh | Reap::Announced | Reap::Already
        ));
        assert_eq!(
            process.reaps.load(Ordering::SeqCst),
            1,
            "reaped exactly once"
        );
    });
}

/// Announce vs. the owner's own `try_wait`: the reaper's `notice` and the
/// owner's reap race; the child is reaped exactly once, by the owner (nobody
/// asked brood), and a later `notice` finds it gone.
#[test]
fn loom_models_announce_vs_try_wait() {
    loom::model(|| {
        let cell = Arc::new(ExitCell::default());
        let process = Arc::new(MockProcess::new());
        process.exited.store(true, Ordering::SeqCst);
        let reaper = {
            let (cell, process) = (cell.clone(), process.clone());
            thread::spawn(move || cell.notice(&*process, no_report))
        };
        let by_owner = cell.try_reap(&*process);
        let outcome = reaper.join().unwrap();
        assert!(by_owner.is_some());
        assert!(matches!(outcome, Reap::Announced | Reap::Already));
        assert_eq!(cell.notice(&*process, no_report), Reap::Already);
        assert_eq!(process.reaps.load(Ordering::SeqCst), 1);
    });
}

/// A mock tracked child for the dispatcher's table.
struct MockChild {
    process: MockProcess,
    cell: ExitCell,
    fresh: AtomicUsize,
}

impl Tracked for MockChild {
    fn notice(&self) -> Reap {
        let outcome = self.cell.notice(&self.process, no_report);
        if outcome == Reap::Fresh {
            self.fresh.fetch_add(1, Ordering::SeqCst);
        }
        outcome
    }

    fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    fn final_kill(&self, _stop: u64) -> bool {
        true
    }
}

/// Registration vs signal delivery: the child exits (and its SIGCHLD is
/// dispatched) while `spawn` is still registering it. Whoever comes second
/// checks it: a child somebody waits for is reaped exactly once; one that
/// nobody waits for is announced (its exit seen) and never reaped, its
/// zombie left for the owner.
#[test]
fn loom_models_register_vs_dispatch() {
    for asked in [true, false] {
        loom::model(move || {
            let table = Arc::new(Table::<MockChild>::new());
            let child = Arc::new(MockChild {
                process: MockProcess::new(),
                cell: ExitCell::default(),
                fresh: AtomicUsize::new(0),
            });
            if asked {
                // As `Command::status` does: brood collects the exit.
                child.cell.collect_on_exit();
            }
            // The kernel's zombie list, as the dispatcher's peek sees it.
            let zombies = Arc::new(Mutex::new(Vec::<u32>::new()));
            child.process.exited.store(true, Ordering::SeqCst);
            lock(&zombies).push(7);
            table.spawn_started();

            let dispatcher = {
                let (table, zombies, child) = (table.clone(), zombies.clone(), child.clone());
                thread::spawn(move || {
                    // SIGCHLD for pid 7 arrives.
                    dispatch(
                        &*table,
                        &[7],
                        || {
                            // A reaped child is no longer a zombie.
                            let reaped = child.process.reaps.load(Ordering::SeqCst) > 0;
                            Ok(if reaped {
                                None
                            } else {
                                lock(&zombies).first().copied()
                            })
                        },
                        |_| panic!("not in subreaper mode"),
                    );
                })
            };
            // spawn() registers the child.
            table.register(7, child.clone());
            table.spawn_finished();
            dispatcher.join().unwrap();
            if asked {
                assert_eq!(
                    child.process.reaps.load(Ordering::SeqCst),
                    1,
                    "reaped exactly once"
                );
                assert_eq!(child.fresh.load(Ordering::SeqCst), 1);
            } else {
                assert_eq!(
                    child.process.reaps.load(Ordering::SeqCst),
                    0,
                    "reaped unasked"
                );
                assert!(child.cell.has_exited(), "the exit was not noticed");
            }
        });
    }
}

/// A first wait vs a blind scan that skips: inside the blind-peek window
/// (an announced zombie, pid 3, left for its owner) child 7, held without a
/// wait, has exited and its SIGCHLD merged away. The dispatcher's blind scan
/// asks only watched children while the owner starts a wait, whose first
/// poll marks 7 watched ([`Table::watch`]) and then parks. Either the scan
/// sees the mark (and announces the exit, or reaps it for the parked
/// waiter) or the mark sees that a scan skipped 7 (and checks it): the
/// waiter gets the exit, reaped exactly once, and the zombie 3 is left.
#[test]
fn loom_models_first_wait_vs_skipping_scan() {
    loom::model(|| {
        let table = Arc::new(Table::<MockChild>::new());
        let new_child = || {
            Arc::new(MockChild {
                process: MockProcess::new(),
                cell: ExitCell::default(),
                fresh: AtomicUsize::new(0),
            })
        };
        let held = new_child();
        held.process.exited.store(true, Ordering::SeqCst);
        table.register(3, held.clone());
        // Its SIGCHLD: announced, left in place; the window opens.
        let peek_held = || Ok(Some(3));
        dispatch(&*table, &[3], peek_held, |_| {
            panic!("not in subreaper mode")
        });
        let child = new_child();
        table.register(7, child.clone());
        child.process.exited.store(true, Ordering::SeqCst);

        let dispatcher = {
            let table = table.clone();
            // A SIGCHLD whose pid merged away: the peek names 3.
            thread::spawn(move || {
                dispatch(&*table, &[], peek_held, |_| panic!("not in subreaper mode"))
            })
        };
        let woken = leak(AtomicBool::new(false));
        let waker = flag_waker(woken);
        let mut cx = Context::from_waker(&waker);
        let (mut key, owner) = (None, OwnerSlot::new());
        let ptr: *const MockChild = Arc::as_ptr(&child);
        table.watch(7, ptr);
        let first = child
            .cell
            .poll(&mut cx, &mut key, &owner, false, &child.process, no_report);
        let stats = dispatcher.join().unwrap();
        assert!(stats.blind);
        if first.is_pending() {
            assert!(woken.load(Ordering::SeqCst), "the waiter was not woken");
            assert!(
                child
                    .cell
                    .poll(&mut cx, &mut key, &owner, false, &child.process, no_report)
                    .is_ready(),
                "the exit was lost"
            );
        }
        assert_eq!(child.process.reaps.load(Ordering::SeqCst), 1);
        assert_eq!(held.process.reaps.load(Ordering::SeqCst), 0, "3 reaped");
    });
}

/// Orphan push vs drain: a dropping task hands a running child to the
/// background reaper while the child exits and the reaper drains readiness
/// events. A mock epoll queues an event when an armed item's process exits,
/// or at arming time if it has exited already (as epoll does for a readable
/// pidfd). The kernel does both under the pidfd's wait-queue lock, which the
/// mock models with one mutex. The child is reaped exactly once and the
/// list ends empty.
#[test]
fn loom_models_orphan_push_vs_drain() {
    use crate::reaper::watchlist::Watchlist;

    /// (armed, pending events), under the "wait-queue lock".
    struct MockEpoll {
        state: Mutex<(bool, Vec<u64>)>,
    }

    loom::model(|| {
        let list = Arc::new(Watchlist::<MockChild>::new());
        let epoll = Arc::new(MockEpoll {
            state: Mutex::new((false, Vec::new())),
        });
        let child = Arc::new(MockChild {
            process: MockProcess::new(),
            cell: ExitCell::default(),
            fresh: AtomicUsize::new(0),
        });
        const TOKEN: u64 = 3;

        // The kernel: the child exits; an armed pidfd turns readable.
        let exit = {
            let (epoll, child) = (epoll.clone(), child.clone());
            thread::spawn(move || {
                let mut state = lock(&epoll.state);
                child.process.exited.store(true, Ordering::SeqCst);
                if state.0 {
                    state.1.push(TOKEN);
                }
            })
        };
        // The reaper thread drains whatever events exist now.
        let drain = |list: &Watchlist<MockChild>, epoll: &MockEpoll| {
            let events: Vec<u64> = std::mem::take(&mut lock(&epoll.state).1);
            for token in events {
                if let Some(item) = list.get(token) {
                    if item.notice() != Reap::Running {
                        list.remove(token, || lock(&epoll.state).0 = false);
                    }
                }
            }
        };
        let reaper = {
            let (list, epoll) = (list.clone(), epoll.clone());
            thread::spawn(move || drain(&list, &epoll))
        };
        // The dropping task: marks the child an orphan (so the reaper
        // collects its exit), one last try, then hand over.
        assert!(!child.cell.abandon(&OwnerSlot::new()));
        if child.cell.try_reap(&child.process).is_none() {
            list.push(TOKEN, child.clone(), || {
                let mut state = lock(&epoll.state);
                state.0 = true;
                if child.process.exited.load(Ordering::SeqCst) {
                    state.1.push(TOKEN);
                }
                Ok(())
            })
            .unwrap();
        }
        exit.join().unwrap();
        reaper.join().unwrap();
        // The reaper thread keeps running in real life: drain what is left.
        drain(&list, &epoll);
        assert_eq!(child.process.reaps.load(Ordering::SeqCst), 1);
        assert_eq!(list.len(), 0, "reaped child left in the watch list");
    });
}

// ---------------------------------------------------------------------------
// Containment (issue 12): a group stop's hold against the reap, and a
// cgroup tree's wait against a stop and the cgroup's removal.

/// A process group led by one child, as the kernel sees it: the leader
/// (exited, reaped) and one member. Every `killpg` made after the leader
/// was reaped is counted as a violation: the group id could be anyone's by
/// then.
struct MockGroupKernel {
    leader_exited: AtomicBool,
    leader_reaped: AtomicBool,
    member_alive: AtomicBool,
    reaps: AtomicUsize,
    signals_after_reap: AtomicUsize,
}

impl MockGroupKernel {
    fn new() -> Self {
        MockGroupKernel {
            leader_exited: AtomicBool::new(false),
            leader_reaped: AtomicBool::new(false),
            member_alive: AtomicBool::new(true),
            reaps: AtomicUsize::new(0),
            signals_after_reap: AtomicUsize::new(0),
        }
    }
}

impl Wait for MockGroupKernel {
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
        if !self.leader_exited.load(Ordering::SeqCst) {
            return Ok(None);
        }
        if self.leader_reaped.swap(true, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ECHILD));
        }
        self.reaps.fetch_add(1, Ordering::SeqCst);
        Ok(Some((ExitStatus::from_raw(0), ResourceUsage::default())))
    }

    fn peek(&self) -> io::Result<Option<ExitStatus>> {
        if self.leader_reaped.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ECHILD));
        }
        Ok(self
            .leader_exited
            .load(Ordering::SeqCst)
            .then(|| ExitStatus::from_raw(0)))
    }
}

impl Group for MockGroupKernel {
    fn signal(&self, _signal: i32) -> io::Result<()> {
        if self.leader_reaped.load(Ordering::SeqCst) {
            self.signals_after_reap.fetch_add(1, Ordering::SeqCst);
        }
        // SIGTERM and SIGKILL alike end both processes.
        self.leader_exited.store(true, Ordering::SeqCst);
        self.member_alive.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn has_live_members(&self) -> io::Result<bool> {
        Ok(self.member_alive.load(Ordering::SeqCst))
    }
}

/// Group hold vs reap: a group stop (SIGTERM, then the final step) runs
/// while the leader exits on its own, the reaper notices the exit, and the
/// owner's wait tries to reap. No signal of the stop is ever sent once the
/// leader is reaped (its zombie is what keeps the group id from being
/// recycled), the leader is reaped exactly once, and nothing stays held.
#[test]
fn loom_models_group_hold_vs_reap() {
    loom::model(|| {
        let kernel = Arc::new(MockGroupKernel::new());
        let cell = Arc::new(ExitCell::default());
        let stops = Arc::new(GroupStops::default());
        // The owner waits: the exit is collected as soon as nothing holds it.
        cell.collect_on_exit();
        let stopper = {
            let (kernel, cell, stops) = (kernel.clone(), cell.clone(), stops.clone());
            thread::spawn(move || {
                if let Some(episode) = stops.begin(&cell) {
                    stops.signal(&cell, &*kernel, libc::SIGTERM).unwrap();
                    let finish = stops.finish(episode, &cell, &*kernel, &*kernel, no_report);
                    // The SIGTERM emptied the group, so the final step ends
                    // the episode.
                    assert_eq!(finish, Finish::Over);
                }
            })
        };
        let reaper = {
            let (kernel, cell) = (kernel.clone(), cell.clone());
            thread::spawn(move || {
                kernel.leader_exited.store(true, Ordering::SeqCst);
                kernel.member_alive.store(false, Ordering::SeqCst);
                cell.notice(&*kernel, no_report);
            })
        };
        // The owner's wait, racing both.
        let _ = cell.try_reap_fresh(&*kernel, no_report);
        stopper.join().unwrap();
        reaper.join().unwrap();
        assert_eq!(kernel.signals_after_reap.load(Ordering::SeqCst), 0);
        assert!(!cell.is_held(), "the stop left its hold behind");
        // Whatever the order, a last wait finds the exit collected.
        let (exit, _) = cell.try_reap_fresh(&*kernel, no_report).unwrap();
        assert!(exit.usage().is_some(), "the exit was reaped, not held");
        assert_eq!(kernel.reaps.load(Ordering::SeqCst), 1);
    });
}

/// A child's cgroup as the kernel and `ChildCgroup` see it: its live
/// members, whether the directory exists, and (under one lock, as
/// `ChildCgroup` keeps them) whether it was removed and the last figures.
#[derive(Debug)]
struct MockCgroup {
    members: AtomicUsize,
    dir_exists: AtomicBool,
    state: Mutex<MockCgroupState>,
    removals: AtomicUsize,
    busy_removals: AtomicUsize,
}

#[derive(Debug, Default)]
struct MockCgroupState {
    removed: bool,
    last_usage: Option<CgroupUsage>,
}

impl MockCgroup {
    fn new() -> Self {
        MockCgroup {
            members: AtomicUsize::new(1),
            dir_exists: AtomicBool::new(true),
            state: Mutex::new(MockCgroupState::default()),
            removals: AtomicUsize::new(0),
            busy_removals: AtomicUsize::new(0),
        }
    }

    fn gone() -> io::Error {
        io::Error::from(io::ErrorKind::NotFound)
    }
}

impl TreeCgroup for &'static MockCgroup {
    fn kill(&self) -> io::Result<()> {
        if !self.dir_exists.load(Ordering::SeqCst) {
            return Err(MockCgroup::gone());
        }
        self.members.store(0, Ordering::SeqCst);
        Ok(())
    }

    fn signal_members(&self, _signal: i32, _limit: Duration) -> io::Result<Signalled> {
        if !self.dir_exists.load(Ordering::SeqCst) {
            return Err(MockCgroup::gone());
        }
        Ok(Signalled {
            members: self.members.load(Ordering::SeqCst),
            frozen: true,
        })
    }

    fn members(&self) -> io::Result<Vec<u32>> {
        if !self.dir_exists.load(Ordering::SeqCst) {
            return Err(MockCgroup::gone());
        }
        Ok(vec![1; self.members.load(Ordering::SeqCst)])
    }

    fn usage(&self) -> io::Result<CgroupUsage> {
        let state = lock(&self.state);
        match state.last_usage {
            Some(usage) => Ok(usage),
            None if self.dir_exists.load(Ordering::SeqCst) => Ok(CgroupUsage::default()),
            None => Err(MockCgroup::gone()),
        }
    }

    fn remove(&self) -> io::Result<()> {
        // As `ChildCgroup::remove`: the figures, the rmdir and the flag
        // under one lock.
        let mut state = lock(&self.state);
        if state.removed {
            return Ok(());
        }
        state.last_usage = Some(CgroupUsage::default());
        if self.members.load(Ordering::SeqCst) > 0 {
            self.busy_removals.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from(io::ErrorKind::ResourceBusy));
        }
        self.dir_exists.store(false, Ordering::SeqCst);
        self.removals.fetch_add(1, Ordering::SeqCst);
        state.removed = true;
        Ok(())
    }

    fn retire(&self) -> io::Result<()> {
        // No pool in the models: retiring is removing.
        self.remove()
    }

    fn is_removed(&self) -> bool {
        lock(&self.state).removed
    }

    #[cfg(feature = "tracing")]
    fn path(&self) -> &std::path::Path {
        std::path::Path::new("/mock")
    }
}

/// `cgroup.events` of a [`MockCgroup`].
#[derive(Debug)]
struct MockWatch(&'static MockCgroup);

impl TreeWatch for MockWatch {
    fn populated(&self) -> io::Result<bool> {
        if !self.0.dir_exists.load(Ordering::SeqCst) {
            return Err(MockCgroup::gone());
        }
        Ok(self.0.members.load(Ordering::SeqCst) > 0)
    }

    fn wait_empty_timeout(&self, _limit: Duration) -> io::Result<bool> {
        Ok(self.0.members.load(Ordering::SeqCst) == 0)
    }
}

/// Tree wait vs stop vs cgroup removal: the last member exits and the
/// background thread, told by `cgroup.events`, removes the cgroup, while a
/// stop (`cgroup.kill`, then the frozen first stop, then a listing) runs
/// and a task waits for the tree. The stop never fails because the
/// directory went away under it, the cgroup is removed exactly once and
/// never while it holds a process, the waiter is woken, and the figures
/// stay readable after the removal.
#[test]
fn loom_models_tree_wait_vs_stop_vs_removal() {
    // Three threads with a dozen lock and atomic steps each: unbounded, the
    // search takes minutes; every interleaving with up to three preemptions
    // covers each race here (a stop or a wait between any two steps of the
    // removal) in seconds.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let cgroup = leak(MockCgroup::new());
        let tree = Arc::new(CgroupTree::new(cgroup, MockWatch(cgroup)));
        // The leader was reaped with the tree still populated: the
        // background thread watches it.
        assert!(tree.look_for_model());
        // Made before the threads start, which then see it created.
        let woken = leak(AtomicBool::new(false));
        let waker = flag_waker(woken);
        let background = {
            let tree = tree.clone();
            thread::spawn(move || {
                // The last member exits on its own; the kernel notifies.
                cgroup.members.store(0, Ordering::SeqCst);
                assert!(tree.changed(), "populated 0 ends the watch");
                tree.unwatched();
            })
        };
        let stopper = {
            let tree = tree.clone();
            thread::spawn(move || {
                tree.kill().expect("a stop racing the removal succeeds");
                tree.signal_members(crate::signal::Signal::TERM)
                    .expect("a first stop racing the removal succeeds");
                tree.members()
                    .expect("a listing racing the removal succeeds");
            })
        };
        // The waiter: registers, and is woken once the tree is empty.
        let mut cx = Context::from_waker(&waker);
        let mut wait = Box::pin(tree.wait_empty());
        let first = wait.as_mut().poll(&mut cx);
        background.join().unwrap();
        stopper.join().unwrap();
        if first.is_pending() {
            assert!(woken.load(Ordering::SeqCst), "the waiter was not woken");
            assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
        }
        assert!(tree.is_empty());
        assert_eq!(cgroup.removals.load(Ordering::SeqCst), 1);
        assert_eq!(cgroup.busy_removals.load(Ordering::SeqCst), 0);
        assert_eq!(tree.members().unwrap(), Vec::<u32>::new());
        assert!(tree.usage().is_some(), "the last figures are kept");
    });
}

/// A tree's end found at first sight, three ways at once: the last member
/// exits and, while a task lists the members (finding none ends a tree
/// nobody watches), the leader's reap looks at the tree (ending it if
/// empty, else arming the watch) and a task waits for the end. The tree
/// ends exactly once, whichever look comes first; the cgroup is removed
/// once and never while it holds a process; the waiter is woken; and a look
/// that armed the watch leaves the end to the background thread, which
/// then ends it.
#[test]
fn loom_models_first_sight_ends_a_tree_once() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let cgroup = leak(MockCgroup::new());
        let tree = Arc::new(CgroupTree::new(cgroup, MockWatch(cgroup)));
        let woken = leak(AtomicBool::new(false));
        let waker = flag_waker(woken);
        let lister = {
            let tree = tree.clone();
            thread::spawn(move || {
                // The last member exits; then the members are listed.
                cgroup.members.store(0, Ordering::SeqCst);
                tree.members().expect("a listing racing the end succeeds");
            })
        };
        let reaper = {
            let tree = tree.clone();
            thread::spawn(move || tree.look_for_model())
        };
        let mut cx = Context::from_waker(&waker);
        let mut wait = Box::pin(tree.wait_empty());
        let first = wait.as_mut().poll(&mut cx);
        lister.join().unwrap();
        let armed = reaper.join().unwrap();
        if armed {
            // The reap saw the last member still there: the background
            // thread is told of populated 0, and ends the tree.
            assert_eq!(tree.watching(), Watching::Armed);
            assert!(tree.changed(), "populated 0 ends the watch");
            tree.unwatched();
        }
        if first.is_pending() {
            assert!(woken.load(Ordering::SeqCst), "the waiter was not woken");
            assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
        }
        assert_eq!(tree.watching(), Watching::Ended);
        assert!(tree.is_empty());
        assert_eq!(cgroup.removals.load(Ordering::SeqCst), 1);
        assert_eq!(cgroup.busy_removals.load(Ordering::SeqCst), 0);
        assert!(tree.usage().is_some(), "the last figures are kept");
    });
}

/// The SIGCHLD dispatch's combiner (`reaper/serve.rs`): the background
/// thread and two runtimes' listeners ask for a dispatch at once. Nobody
/// waits for the lock, and no request is lost: some round starts after
/// each request, so it sees every record written before it.
#[test]
fn loom_models_combined_dispatch_loses_no_request() {
    use crate::reaper::serve::Combiner;

    loom::model(|| {
        // Requests made so far; a round notes the count it saw.
        let requests = Arc::new(AtomicUsize::new(0));
        let combiner = Arc::new(Combiner::new(0usize));
        let ask = |requests: &AtomicUsize, combiner: &Combiner<usize>| {
            requests.fetch_add(1, Ordering::SeqCst);
            combiner.run(|seen| *seen = (*seen).max(requests.load(Ordering::SeqCst)));
        };
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (requests, combiner) = (requests.clone(), combiner.clone());
                thread::spawn(move || ask(&requests, &combiner))
            })
            .collect();
        ask(&requests, &combiner);
        for other in others {
            other.join().unwrap();
        }
        // Every request was seen by a round that started after it.
        let seen = combiner.exclusive(|seen| *seen);
        assert_eq!(seen, 3);
    });
}
