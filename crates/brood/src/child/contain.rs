//! The containment side of `Child` and `ChildHandle`: what a contained
//! child's tree is, who is in it, what it used, and waiting until all of it
//! is gone.
//!
//! Owns: the tree queries and waits both `Child` and `ChildHandle` offer.
//! Calls: `shared`, `wait` (time limits), `containment`, `reaper::Sleep`.

use super::shared::Shared;
use super::wait::within;
use crate::containment::{Containment, Tree, TreeUsage};
use crate::reaper::Sleep;
use std::io;
use std::time::{Duration, Instant};

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
/// - Cgroup: the background thread's `populated 0`, no polling.
/// - Group: there is no event for "group empty", so the group is probed
///   (`killpg(pgid, 0)`) at growing intervals, 1 ms to 50 ms. Members that
///   exited but were not reaped (zombies of an init that reaps late) still
///   count; in a [subreaper](crate::become_subreaper) brood reaps them
///   itself. Once the group is empty its id could be reused by a new group
///   leader, whose members this would then wait for: the documented best
///   effort of `Group`.
/// - Not contained: nothing to wait for.
pub(super) async fn tree_gone(shared: &Shared, deadline: Option<Instant>) -> io::Result<bool> {
    if let Some(cgroup) = shared.cgroup() {
        return Ok(match deadline {
            None => {
                cgroup.wait_empty().await;
                true
            }
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                within(left, cgroup.wait_empty()).await.is_some()
            }
        });
    }
    if !shared.stop.group {
        return Ok(true);
    }
    // Issue 12, point 3, plugs in here and in `Shared::send_stop`: with the
    // leader's exit held unreaped until the stop is finished, the zombie
    // leader keeps the group id reserved while this probes and while the
    // group is signalled.
    let mut pause = Duration::from_millis(1);
    while shared.group_has_members()? {
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        if left.is_zero() {
            return Ok(false);
        }
        Sleep::new(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    Ok(true)
}

/// Whether stopping the child must reach beyond its leader even after the
/// leader exited: it leads a group, or its cgroup still holds processes.
pub(super) fn tree_may_outlive_leader(shared: &Shared) -> bool {
    shared.stop.group || shared.cgroup().is_some_and(|c| !c.is_empty())
}
