//! Containment: a child's whole tree (every descendant, however it
//! detached) stopped, waited for and accounted.
//!
//! [`Containment`] is what `Command::contain` asks for. A contained child
//! carries a [`Tree`]:
//!
//! - [`Tree::Group`]: the child leads a new process group, and brood's
//!   stops go to the group (`killpg`). Descendants that call `setsid` or
//!   `setpgid` leave it.
//! - [`Tree::Cgroup`]: the child started inside a fresh cgroup v2 of its own
//!   (`cgroup_tree.rs`), from its first instruction (`spawn.rs`), so no
//!   descendant escapes; stops, waits and figures use the cgroup.
//!
//! A [`CgroupPool`] keeps the cgroups of ended trees for the next children.
//!
//! Owns: [`Containment`], [`Tree`]. Calls: `cgroup_tree`, `pool`, `sys::process`
//! (the members of a group).

pub(crate) mod cgroup_tree;
mod pool;
pub(crate) mod spawn;

pub(crate) use cgroup_tree::CgroupTree;
pub use cgroup_tree::TreeUsage;
pub use pool::CgroupPool;

use crate::sync::Arc;
use crate::sys;
use std::io;

/// How a child's tree is contained: see [`Command::contain`](crate::Command::contain).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use brood::{Command, Containment};
/// use std::time::Duration;
///
/// let mut child = Command::new("make")
///     .arg("-j8")
///     .contain(Containment::Auto)
///     .spawn()?;
/// println!("contained by {:?}", child.containment());
/// let status = child.terminate(Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Containment {
    /// The child leads a new process group (as `process_group(0)`), and
    /// brood's stops reach the whole group. A descendant that calls
    /// `setsid` or `setpgid` escapes it.
    Group,
    /// Linux: the child starts inside a fresh cgroup v2 of its own, before
    /// it runs a single instruction, so no descendant can escape, however
    /// it detaches. Stops, [`Child::wait_tree`](crate::Child::wait_tree) and
    /// [`Child::tree_usage`](crate::Child::tree_usage) use the cgroup.
    /// Spawning fails if no cgroup can be created (the error names the
    /// directory and says why); elsewhere than Linux it fails with
    /// [`io::ErrorKind::Unsupported`].
    Cgroup,
    /// [`Containment::Cgroup`] where brood can create one, else
    /// [`Containment::Group`]. [`Child::containment`](crate::Child::containment)
    /// says which the child got.
    Auto,
}

/// A contained child's tree.
#[derive(Debug)]
pub(crate) enum Tree {
    /// The child leads process group `pgid` (its own pid).
    Group { pgid: u32 },
    /// The child's own cgroup.
    Cgroup(Arc<CgroupTree>),
}

impl Tree {
    /// What the child got.
    pub(crate) fn containment(&self) -> Containment {
        match self {
            Tree::Group { .. } => Containment::Group,
            Tree::Cgroup(_) => Containment::Cgroup,
        }
    }

    /// The cgroup, for a child contained in one.
    pub(crate) fn cgroup(&self) -> Option<&Arc<CgroupTree>> {
        match self {
            Tree::Group { .. } => None,
            Tree::Cgroup(cgroup) => Some(cgroup),
        }
    }

    /// The live pids in the tree: the cgroup's members, or the live members
    /// of the process group (Linux; elsewhere `Unsupported`). Zombies are
    /// not members.
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        match self {
            Tree::Group { pgid } => sys::process::group_members(*pgid),
            Tree::Cgroup(cgroup) => cgroup.members(),
        }
    }

    /// The tree's figures; `None` for a group.
    pub(crate) fn usage(&self) -> Option<TreeUsage> {
        self.cgroup()?.usage()
    }
}
