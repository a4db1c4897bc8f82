//! Stopping a process group without ever reaching a recycled one (issue 12,
//! point 3).
//!
//! A process group's id is its leader's pid. The kernel keeps the id
//! reserved while any process of the group exists, zombies included: no new
//! process gets that pid, so no new group gets that id. Once the last member
//! is reaped the id is free, a new process may be given it and lead a group
//! of its own, and a late `killpg` of the old id would reach that stranger's
//! group.
//!
//! # The hold rule
//!
//! From the first signal of a group stop until the stop is over, brood
//! keeps the leader's exit unreaped: the exit cell is
//! [held](ExitCell::hold), so the exit is only looked at (`WNOWAIT`) and the
//! leader's zombie keeps the group id reserved. Every signal of the stop is
//! sent under the exit cell's lock while it is held
//! ([`ExitCell::while_held`]). The stop is over once its final SIGKILL has
//! been sent and no live process is left in the group (the leader's zombie,
//! and other zombies, do not count); only then is the hold released, and
//! the leader reaped if anybody asked for its exit.
//!
//! A stop that starts after the leader was reaped sends nothing: the group
//! id may already be someone else's.
//!
//! # Episodes
//!
//! Several stops may overlap (a `terminate` whose future was dropped and a
//! `kill_on_drop`): they share one *episode*, one hold. Each driver of the
//! episode (the task in `terminate`, the background thread's timer) calls
//! [`GroupStops::finish`] until it says the episode is over; the first to
//! find the group empty ends it, and the others find it over. A timer left
//! from an episode that ended is told so by the episode's number, and sends
//! nothing.
//!
//! # Telling the group empty
//!
//! `killpg(pgid, 0)` succeeds while the held zombie exists, so it cannot say
//! that the rest of the group is gone. brood lists the group's live members
//! instead ([`Group::has_live_members`]: `/proc` on Linux, the process
//! tables of macOS and FreeBSD). A listing can miss a process forked while
//! it runs, but not after the final SIGKILL: a process with SIGKILL pending
//! cannot complete a fork, and `killpg` reaches a child forked concurrently
//! (the kernel restarts a fork that a group signal overtakes). So a listing
//! taken after the final SIGKILL that finds nobody is exact, and the final
//! SIGKILL is sent again before each listing, for a process that joined the
//! group meanwhile (`setpgid` from within the session). A listing during the
//! grace period that misses a member only makes the final SIGKILL come
//! early. Where no listing exists, the stop is over once the final SIGKILL
//! was sent.
//!
//! Owns: [`GroupStops`], the [`Group`] trait. Calls: `exit` (the cell's
//! holds), `sync`.

use super::exit::{Collected, Exit, ExitCell, Wait};
use crate::sync::{lock, Mutex};
use std::io;

/// The operating system's side of one process group.
pub(crate) trait Group {
    /// `killpg(pgid, signal)`; `ESRCH` (nobody left) counts as success.
    fn signal(&self, signal: i32) -> io::Result<()>;

    /// Whether a live process is left in the group; zombies do not count.
    /// `Err` of kind `Unsupported` where the group cannot be listed.
    fn has_live_members(&self) -> io::Result<bool>;
}

/// The group stops of one leader: the episode in progress, if any.
#[derive(Debug, Default)]
pub(crate) struct GroupStops {
    state: Mutex<Episodes>,
}

#[derive(Debug, Default)]
struct Episodes {
    /// The episode in progress; it holds the leader's exit cell once.
    active: Option<u64>,
    /// The number the next episode gets.
    next: u64,
}

/// What [`GroupStops::finish`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The episode is over (now, or before): the leader is no longer held
    /// for it.
    Over,
    /// The final SIGKILL was sent, but live members are left: call again.
    Pending,
}

impl GroupStops {
    /// Starts a group stop, or joins the one in progress: from now until the
    /// episode is over, `cell` is held. Returns the episode's number.
    ///
    /// `None` when the leader was reaped before: its group's id may already
    /// be another group's, so the stop must send nothing.
    ///
    /// Lock order: this record's lock, then the cell's; nothing takes them
    /// the other way round.
    pub(crate) fn begin(&self, cell: &ExitCell) -> Option<u64> {
        let mut episodes = lock(&self.state);
        if let Some(episode) = episodes.active {
            return Some(episode);
        }
        if !cell.hold() {
            return None;
        }
        let episode = episodes.next;
        episodes.next += 1;
        episodes.active = Some(episode);
        Some(episode)
    }

    /// Whether `episode` is in progress.
    pub(crate) fn is_active(&self, episode: u64) -> bool {
        lock(&self.state).active == Some(episode)
    }

    /// Sends `signal` to the group while the leader is held, for the stop
    /// in progress. Sends nothing (and succeeds) once the leader is not
    /// held or was reaped behind brood's back.
    pub(crate) fn signal(
        &self,
        cell: &ExitCell,
        group: &impl Group,
        signal: i32,
    ) -> io::Result<()> {
        cell.while_held(|| group.signal(signal)).unwrap_or(Ok(()))
    }

    /// The final step of `episode`: SIGKILL to the group, then, if no live
    /// member is left (or the group cannot be listed here), the end of the
    /// episode: the hold is released, which reaps the leader if somebody
    /// asked for its exit ([`ExitCell::unhold`]). Call it until it says
    /// [`Finish::Over`]; a finished episode sends nothing.
    ///
    /// A SIGKILL that fails (`EPERM`: no member may be signalled) or a
    /// listing that fails for another reason ends the episode too: holding
    /// the leader's zombie forever would be worse than the best effort left.
    pub(crate) fn finish(
        &self,
        episode: u64,
        cell: &ExitCell,
        group: &impl Group,
        process: impl Wait,
        report: impl FnOnce(&Exit, Collected),
    ) -> Finish {
        if !self.is_active(episode) {
            return Finish::Over;
        }
        let killed = self.signal(cell, group, libc::SIGKILL).is_ok();
        if killed && matches!(group.has_live_members(), Ok(true)) {
            return Finish::Pending;
        }
        self.end(episode, cell, process, report);
        Finish::Over
    }

    /// Ends `episode` if it is the one in progress, releasing its hold.
    pub(crate) fn end(
        &self,
        episode: u64,
        cell: &ExitCell,
        process: impl Wait,
        report: impl FnOnce(&Exit, Collected),
    ) {
        {
            let mut episodes = lock(&self.state);
            if episodes.active != Some(episode) {
                return;
            }
            episodes.active = None;
        }
        // Released outside this record's lock: the release may reap, whose
        // report takes the table's lock.
        cell.unhold(process, report);
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    //! The stop sequence and the group-reuse rule against a mock kernel: a
    //! process table with groups, zombies, reaping and pid reuse.

    use super::*;
    use crate::child::waiters::OwnerSlot;
    use crate::reaper::Reap;
    use crate::rusage::ResourceUsage;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum State {
        Alive,
        /// Exited with this raw wait status, not reaped.
        Zombie(i32),
    }

    #[derive(Debug, Clone)]
    struct Proc {
        pgid: u32,
        state: State,
        ignores_term: bool,
        /// How many SIGKILLs it outlives (uninterruptible sleep delays one).
        survives_kills: u32,
    }

    /// A process table. A new process gets the lowest pid in its range that
    /// no process uses as its pid or as its group id, as Linux allocates
    /// (cyclically, skipping ids in use); a zombie keeps both in use.
    struct Kernel {
        procs: RefCell<BTreeMap<u32, Proc>>,
        pids: std::ops::Range<u32>,
        /// Reaps of the leader (`try_wait` that collected it).
        reaps: RefCell<usize>,
        /// The signals each pid was sent, kept after it is reaped.
        log: RefCell<BTreeMap<u32, Vec<i32>>>,
    }

    impl Kernel {
        fn new(pids: std::ops::Range<u32>) -> Self {
            Kernel {
                procs: RefCell::new(BTreeMap::new()),
                pids,
                reaps: RefCell::new(0),
                log: RefCell::new(BTreeMap::new()),
            }
        }

        /// A new process; a new group's leader if `pgid` is `None`.
        fn spawn(&self, pgid: Option<u32>, ignores_term: bool) -> u32 {
            let mut procs = self.procs.borrow_mut();
            let pid = self
                .pids
                .clone()
                .find(|&p| !procs.contains_key(&p) && !procs.values().any(|q| q.pgid == p))
                .expect("pid space exhausted");
            self.log.borrow_mut().insert(pid, Vec::new());
            procs.insert(
                pid,
                Proc {
                    pgid: pgid.unwrap_or(pid),
                    state: State::Alive,
                    ignores_term,
                    survives_kills: 0,
                },
            );
            pid
        }

        fn exit(&self, pid: u32, raw: i32) {
            self.procs.borrow_mut().get_mut(&pid).unwrap().state = State::Zombie(raw);
        }

        /// Its parent (init, for a member) reaps a zombie.
        fn reap(&self, pid: u32) {
            let mut procs = self.procs.borrow_mut();
            assert!(matches!(procs[&pid].state, State::Zombie(_)));
            procs.remove(&pid);
        }

        fn state(&self, pid: u32) -> Option<State> {
            self.procs.borrow().get(&pid).map(|p| p.state)
        }

        fn got(&self, pid: u32) -> Vec<i32> {
            self.log.borrow()[&pid].clone()
        }

        fn killpg(&self, pgid: u32, signal: i32) -> io::Result<()> {
            let mut procs = self.procs.borrow_mut();
            let mut reached = false;
            for (pid, proc) in procs.iter_mut().filter(|(_, p)| p.pgid == pgid) {
                reached = true;
                self.log.borrow_mut().get_mut(pid).unwrap().push(signal);
                let mut dies =
                    signal == libc::SIGKILL || (signal == libc::SIGTERM && !proc.ignores_term);
                if signal == libc::SIGKILL && proc.survives_kills > 0 {
                    proc.survives_kills -= 1;
                    dies = false;
                }
                if proc.state == State::Alive && dies {
                    proc.state = State::Zombie(signal);
                }
            }
            if reached {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::ESRCH))
            }
        }
    }

    /// Process group `pgid` of the mock kernel.
    struct MockGroup<'k>(&'k Kernel, u32);

    impl Group for MockGroup<'_> {
        fn signal(&self, signal: i32) -> io::Result<()> {
            match self.0.killpg(self.1, signal) {
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                other => other,
            }
        }

        fn has_live_members(&self) -> io::Result<bool> {
            Ok(self
                .0
                .procs
                .borrow()
                .values()
                .any(|p| p.pgid == self.1 && p.state == State::Alive))
        }
    }

    /// The leader as the exit cell sees it: `wait4` and the `WNOWAIT` look.
    struct Leader<'k>(&'k Kernel, u32);

    impl Wait for Leader<'_> {
        fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
            match self.0.state(self.1) {
                None => Err(io::Error::from_raw_os_error(libc::ECHILD)),
                Some(State::Alive) => Ok(None),
                Some(State::Zombie(raw)) => {
                    self.0.reap(self.1);
                    *self.0.reaps.borrow_mut() += 1;
                    Ok(Some((ExitStatus::from_raw(raw), ResourceUsage::default())))
                }
            }
        }

        fn peek(&self) -> io::Result<Option<ExitStatus>> {
            match self.0.state(self.1) {
                None => Err(io::Error::from_raw_os_error(libc::ECHILD)),
                Some(State::Alive) => Ok(None),
                Some(State::Zombie(raw)) => Ok(Some(ExitStatus::from_raw(raw))),
            }
        }
    }

    fn quiet(_: &Exit, _: Collected) {}

    #[test]
    fn a_held_leader_keeps_its_group_id_until_the_stop_is_over() {
        let kernel = Kernel::new(100..104);
        let leader = kernel.spawn(None, false);
        let member = kernel.spawn(Some(leader), false);
        let (cell, stops) = (ExitCell::default(), GroupStops::default());
        let (group, process) = (MockGroup(&kernel, leader), Leader(&kernel, leader));
        // The `Child` was dropped (kill_on_drop with a grace period): brood
        // collects the exit as soon as it may.
        cell.abandon(&OwnerSlot::new());

        let episode = stops.begin(&cell).expect("the leader runs");
        stops.signal(&cell, &group, libc::SIGTERM).unwrap();
        // Both die of SIGTERM; init reaps the member at once.
        kernel.reap(member);
        // The reaper hears of the leader's exit: asked for, but held, so it
        // only looks.
        assert_eq!(cell.notice(&process, quiet), Reap::Announced);
        assert_eq!(kernel.state(leader), Some(State::Zombie(libc::SIGTERM)));
        // The group has nobody alive, but its id stays reserved: a new
        // group leader gets another pid.
        let stranger = kernel.spawn(None, false);
        assert_ne!(stranger, leader, "the group id was recycled while held");
        // The grace ends: the final SIGKILL reaches only the old group (the
        // zombie), and the stop is over: the leader is reaped.
        assert_eq!(
            stops.finish(episode, &cell, &group, &process, quiet),
            Finish::Over
        );
        assert_eq!(*kernel.reaps.borrow(), 1);
        assert_eq!(
            cell.get().unwrap().status().unwrap().signal(),
            Some(libc::SIGTERM)
        );
        assert!(kernel.got(stranger).is_empty());
        // Now the id is free, and a new group takes it.
        let recycled = kernel.spawn(None, false);
        assert_eq!(recycled, leader, "the mock recycles the freed id");
        // Neither a timer left from the episode nor a new stop reaches it.
        assert_eq!(
            stops.finish(episode, &cell, &group, &process, quiet),
            Finish::Over
        );
        assert_eq!(
            stops.begin(&cell),
            None,
            "a reaped leader's group is not ours"
        );
        stops.signal(&cell, &group, libc::SIGKILL).unwrap();
        assert!(
            kernel.got(recycled).is_empty(),
            "a stop reached a recycled group"
        );
        assert!(kernel.got(stranger).is_empty());
    }

    #[test]
    fn the_stop_sequence_kills_stragglers_then_releases_once_the_group_is_empty() {
        let kernel = Kernel::new(200..210);
        let leader = kernel.spawn(None, false);
        let stubborn = kernel.spawn(Some(leader), true);
        let (cell, stops) = (ExitCell::default(), GroupStops::default());
        let (group, process) = (MockGroup(&kernel, leader), Leader(&kernel, leader));
        let episode = stops.begin(&cell).unwrap();
        stops.signal(&cell, &group, libc::SIGTERM).unwrap();
        // The leader died; the owner's wait is given its status, without a
        // reap.
        let exit = cell.try_reap_fresh(&process, quiet).unwrap().0;
        assert_eq!(exit.status().unwrap().signal(), Some(libc::SIGTERM));
        assert_eq!(*kernel.reaps.borrow(), 0);
        assert!(
            group.has_live_members().unwrap(),
            "the stubborn member lives"
        );
        // A second stop joins the episode (one hold, one end).
        assert_eq!(stops.begin(&cell), Some(episode));
        // The final step: SIGKILL; the member is a zombie now, which does
        // not count, so the episode ends and the leader is reaped (its
        // status was given out).
        assert_eq!(
            stops.finish(episode, &cell, &group, &process, quiet),
            Finish::Over
        );
        assert_eq!(kernel.got(stubborn), vec![libc::SIGTERM, libc::SIGKILL]);
        assert_eq!(kernel.got(leader), vec![libc::SIGTERM, libc::SIGKILL]);
        assert_eq!(*kernel.reaps.borrow(), 1);
        assert!(!cell.is_held());
        assert_eq!(
            cell.get().unwrap().status().unwrap().signal(),
            Some(libc::SIGTERM)
        );
        // The joined stop's own driver finds it over, and sends nothing.
        assert_eq!(
            stops.finish(episode, &cell, &group, &process, quiet),
            Finish::Over
        );
        assert_eq!(kernel.got(stubborn).len(), 2);
    }

    #[test]
    fn a_member_that_outlives_the_final_kill_keeps_the_stop_going() {
        let kernel = Kernel::new(300..310);
        let leader = kernel.spawn(None, true);
        let stuck = kernel.spawn(Some(leader), true);
        // In uninterruptible sleep: the first SIGKILL takes effect later.
        kernel
            .procs
            .borrow_mut()
            .get_mut(&stuck)
            .unwrap()
            .survives_kills = 1;
        let (cell, stops) = (ExitCell::default(), GroupStops::default());
        let (group, process) = (MockGroup(&kernel, leader), Leader(&kernel, leader));
        cell.collect_on_exit();
        let episode = stops.begin(&cell).unwrap();
        stops.signal(&cell, &group, libc::SIGTERM).unwrap();
        let finish = || stops.finish(episode, &cell, &group, &process, quiet);
        assert_eq!(finish(), Finish::Pending, "a live member is left");
        assert!(cell.is_held());
        assert_eq!(cell.notice(&process, quiet), Reap::Announced, "held");
        // A process of the session joins the group meanwhile (setpgid): the
        // SIGKILL sent before each listing reaches it too.
        let joined = kernel.spawn(Some(leader), true);
        assert_eq!(finish(), Finish::Over);
        assert_eq!(
            kernel.got(stuck),
            vec![libc::SIGTERM, libc::SIGKILL, libc::SIGKILL]
        );
        assert_eq!(kernel.got(joined), vec![libc::SIGKILL]);
        // The leader died of the first SIGKILL and was collected at the end
        // (the call asked for it).
        assert_eq!(
            cell.get().unwrap().status().unwrap().signal(),
            Some(libc::SIGKILL)
        );
        assert_eq!(*kernel.reaps.borrow(), 1);
    }

    #[test]
    fn a_stop_that_starts_after_the_reap_sends_nothing() {
        let kernel = Kernel::new(400..402);
        let leader = kernel.spawn(None, false);
        let member = kernel.spawn(Some(leader), true);
        let (cell, stops) = (ExitCell::default(), GroupStops::default());
        let process = Leader(&kernel, leader);
        kernel.exit(leader, 0);
        assert!(cell.try_reap_fresh(&process, quiet).unwrap().1, "reaped");
        // The member keeps the id reserved now, but brood cannot know that
        // it still will by the time a signal arrives: nothing is sent.
        assert_eq!(stops.begin(&cell), None);
        assert!(kernel.got(member).is_empty());
    }

    #[test]
    fn where_the_group_cannot_be_listed_the_final_kill_ends_the_stop() {
        struct Unlisted<'k>(MockGroup<'k>);
        impl Group for Unlisted<'_> {
            fn signal(&self, signal: i32) -> io::Result<()> {
                self.0.signal(signal)
            }
            fn has_live_members(&self) -> io::Result<bool> {
                Err(io::Error::from(io::ErrorKind::Unsupported))
            }
        }
        let kernel = Kernel::new(500..502);
        let leader = kernel.spawn(None, true);
        let (cell, stops) = (ExitCell::default(), GroupStops::default());
        let group = Unlisted(MockGroup(&kernel, leader));
        let process = Leader(&kernel, leader);
        cell.collect_on_exit();
        let episode = stops.begin(&cell).unwrap();
        assert_eq!(
            stops.finish(episode, &cell, &group, &process, quiet),
            Finish::Over
        );
        assert_eq!(kernel.got(leader), vec![libc::SIGKILL]);
        assert!(!cell.is_held());
    }
}
