//! The containment side of `Child` and `ChildHandle`: what a contained
//! child's tree is, who is in it, what it used, and waiting until all of it
//! is gone.
//!
//! Owns: the tree queries and waits both `Child` and `ChildHandle` offer,
//! and [`GroupStop`], a task's drive of a group stop. Calls: `shared`,
//! `group_stop` (its outcome), `wait` (time limits), `containment`,
//! `reaper` (`Sleep`, the hand-over of a stop).

use super::group_stop::Finish;
use super::shared::Shared;
use super::wait::within;
use crate::containment::{Containment, Tree, TreeUsage};
use crate::reaper::{self, Sleep};
use crate::signal::Signal;
use crate::sync::Arc;
use std::io;
use std::time::{Duration, Instant};

/// The first pause between two looks at a process group, which has no
/// event for its end; doubles up to [`GROUP_PROBE_MAX`].
const GROUP_PROBE_FIRST: Duration = Duration::from_millis(1);
/// The longest pause between two looks at a process group.
const GROUP_PROBE_MAX: Duration = Duration::from_millis(50);

/// What the child got: `Group` or `Cgroup`; `None` if it was not contained.
pub(super) fn containment(shared: &Shared) -> Option<Containment> {
    shared.tree.as_ref().map(Tree::containment)
}

/// The live pids in the child's containment. Uncontained, that is the child
/// itself while it runs.
pub(super) fn members(shared: &Shared) -> io::Result<Vec<u32>> {
    match &shared.tree {
        Some(tree) => tree.members(),
        None if !shared.cell.has_exited() => Ok(vec![shared.pid()]),
        None => Ok(Vec::new()),
    }
}

/// The whole tree's figures (cgroup only).
pub(super) fn tree_usage(shared: &Shared) -> Option<TreeUsage> {
    shared.tree.as_ref()?.usage()
}

/// Waits until no member of the child's tree is left besides its leader,
/// whose exit the caller awaits itself; with a `deadline`, at most until
/// then. Returns whether the tree is gone.
///
/// - Cgroup: the tree's end (found at once if it is empty, else by the
///   background thread's `populated 0`), no polling.
/// - Group: see [`group_emptied`].
/// - Not contained: nothing to wait for.
pub(super) async fn tree_gone(shared: &Shared, deadline: Option<Instant>) -> io::Result<bool> {
    if let Some(cgroup) = shared.cgroup() {
        return Ok(match deadline {
            None => {
                cgroup.wait_ended().await;
                true
            }
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                within(left, cgroup.wait_ended()).await.is_some()
            }
        });
    }
    if !shared.stop.group {
        return Ok(true);
    }
    group_emptied(shared, deadline).await
}

/// Waits until the child's process group has no live member left (its
/// leader's zombie, held or not, and other zombies do not count), or until
/// `deadline`; returns whether it emptied.
///
/// There is no event for "group empty", so the group is looked at (its
/// live members listed, `Shared::group_has_live_members`) at growing
/// intervals, 1 ms to 50 ms. While a group stop holds the leader, its
/// zombie keeps the group id reserved, so what this sees is the child's
/// group. Otherwise, once the group is empty and the leader reaped, its id
/// could be reused by a new group leader, whose members this would then
/// wait for: the documented best effort of `Group`.
pub(super) async fn group_emptied(shared: &Shared, deadline: Option<Instant>) -> io::Result<bool> {
    let mut pause = GROUP_PROBE_FIRST;
    while shared.group_has_live_members()? {
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        if left.is_zero() {
            return Ok(false);
        }
        Sleep::new(pause.min(left)).await;
        pause = (pause * 2).min(GROUP_PROBE_MAX);
    }
    Ok(true)
}

/// A group stop as a task drives it (`terminate`, a timeout's stop): from
/// [`GroupStop::begin`] until [`GroupStop::finish`] returns, the leader is
/// held unreaped (see `group_stop.rs`). Dropped before the end (its future
/// was), it hands the rest to the background thread, whose final SIGKILL
/// comes at the stop's deadline; where that thread cannot run, the stop is
/// ended at once, after a final SIGKILL.
pub(super) struct GroupStop<'a> {
    shared: &'a Arc<Shared>,
    episode: u64,
    deadline: Instant,
    over: bool,
}

impl<'a> GroupStop<'a> {
    /// Starts (or joins) the stop of `shared`'s group; its final SIGKILL is
    /// due at `deadline`. `None` if the leader was reaped before: nothing of
    /// the group may be signalled then.
    pub(super) fn begin(shared: &'a Arc<Shared>, deadline: Instant) -> Option<Self> {
        let episode = shared.begin_group_stop()?;
        Some(GroupStop {
            shared,
            episode,
            deadline,
            over: false,
        })
    }

    /// Sends `signal` to the group (the leader held meanwhile).
    pub(super) fn signal(&self, signal: Signal) -> io::Result<()> {
        self.shared.group_stop_signal(signal)
    }

    /// The final SIGKILL, again until no live member is left, then the end
    /// of the stop: the leader is released, and reaped if its exit was
    /// asked for or given out.
    pub(super) async fn finish(mut self) {
        let mut pause = GROUP_PROBE_FIRST;
        while self.shared.finish_group_stop(self.episode) == Finish::Pending {
            Sleep::new(pause).await;
            pause = (pause * 2).min(GROUP_PROBE_MAX);
        }
        self.over = true;
    }
}

impl Drop for GroupStop<'_> {
    fn drop(&mut self) {
        if self.over {
            return;
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if reaper::kill_after(self.shared, left, self.episode).is_err() {
            self.shared.end_group_stop(self.episode);
        }
    }
}

/// Whether stopping the child must reach beyond its leader even after the
/// leader exited: it leads a group, or its cgroup still holds processes.
pub(super) fn tree_may_outlive_leader(shared: &Shared) -> bool {
    shared.stop.group || shared.cgroup().is_some_and(|c| c.holds_processes())
}
