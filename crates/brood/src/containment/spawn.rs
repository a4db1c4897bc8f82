//! Spawning a contained child: choosing its containment, creating its
//! cgroup, and placing it there before it runs a single instruction of its
//! own.
//!
//! # Atomic placement
//!
//! A child contained in a cgroup is created inside it:
//!
//! - **brood's own spawn** (`crate::spawn`, `crate::sys::spawn`):
//!   `clone3(CLONE_INTO_CGROUP)` makes the child in the cgroup, with a
//!   pidfd from birth, without copying the parent's page tables. Where
//!   clone3 is denied (a seccomp filter answering `ENOSYS` or `EPERM`), its
//!   fork fallback writes `0` to the cgroup's `cgroup.procs` in the child
//!   before anything else. Used whenever the command can be read back from
//!   its std builder and no `pre_exec` hook can be hidden in it.
//! - **std's spawn with brood's placement hook**
//!   (`crate::sys::spawn::install_placement_hook`), for commands brood's
//!   spawn cannot represent: those that were reachable as a
//!   `&mut std::process::Command` (`Command::as_std_mut`, `From`) or given
//!   a `pre_exec` hook, and those with options only std knows. std forks,
//!   and the hook moves the child into the cgroup before exec. brood
//!   installs it before any hook the user gives `Command::pre_exec`; a hook
//!   put straight on the std builder earlier runs before it, outside the
//!   cgroup (the program itself always starts inside).
//!
//! Either way the child is in its cgroup before its program's first
//! instruction, so no descendant can be forked outside it.
//!
//! Owns: [`Target`], [`NewCgroup`], [`Spawned`], [`StdCommand`], [`prepare`].
//! Calls: `cgroup` (parents, creation, pools), `cgroup_tree`, `crate::spawn`
//! (brood's spawn), `sys::spawn` (the placement hook).

use super::{CgroupTree, Containment};
use crate::cgroup::{self, CgroupParent, ChildCgroup, Pool, PopulatedWatch};
use crate::spawn::plan::SpawnPlan;
use crate::sync::Arc;
use crate::sys::spawn::{install_placement_hook, Placement};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Where a contained child goes.
pub(crate) enum Target {
    /// A new process group of its own.
    Group,
    /// A cgroup made for it.
    Cgroup(NewCgroup),
}

/// Chooses where a child contained as `containment` goes, and creates its
/// cgroup if it gets one: under `parent`, or by default under the cgroup
/// this process runs in.
///
/// With [`Containment::Cgroup`], any failure is the spawn's error, naming
/// the directory and saying why; nothing is left behind. With
/// [`Containment::Auto`], the same failure means [`Target::Group`].
/// A cgroup comes from `pool` when it keeps one, and goes back to it once
/// the child's tree has ended.
pub(crate) fn prepare(
    containment: Containment,
    parent: Option<&Path>,
    pool: Option<&Arc<Pool>>,
) -> io::Result<Target> {
    match containment {
        Containment::Group => Ok(Target::Group),
        Containment::Cgroup => NewCgroup::create(parent, pool).map(Target::Cgroup),
        Containment::Auto => {
            Ok(NewCgroup::create(parent, pool).map_or(Target::Group, Target::Cgroup))
        }
    }
}

/// A cgroup for a child about to be spawned, fresh or reused, with its
/// `cgroup.events` open before the child exists. Dropped unused, it is
/// removed.
pub(crate) struct NewCgroup {
    cgroup: ChildCgroup,
    watch: PopulatedWatch,
}

/// The std builder of a command, and what brood knows about it.
pub(crate) struct StdCommand<'a> {
    pub(crate) std: &'a mut std::process::Command,
    /// The command's `arg0`, as brood recorded it (std shows it only
    /// escaped).
    pub(crate) arg0: Option<&'a OsStr>,
    /// The builder was reachable as `&mut std::process::Command`, or was
    /// given a `pre_exec` hook: it may hold hooks nobody can see.
    pub(crate) std_only: bool,
    /// The slot of brood's placement hook, once installed on `std`.
    pub(crate) placement: &'a mut Option<Arc<Placement>>,
}

/// A child placed in its cgroup, and our ends of its pipes.
pub(crate) struct Spawned {
    pub(crate) pid: u32,
    /// From birth (clone3), or right after the fork (the fallback); `None`
    /// when std spawned it.
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
}

impl NewCgroup {
    fn create(parent: Option<&Path>, pool: Option<&Arc<Pool>>) -> io::Result<NewCgroup> {
        if !cgroup::SUPPORTED {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "brood: Containment::Cgroup needs cgroup v2, which only Linux has",
            ));
        }
        let cgroup = match parent {
            None => CgroupParent::default_parent()?.child_cgroup(pool)?,
            Some(path) => match CgroupParent::open_cached(path)?.child_cgroup(pool) {
                Ok(cgroup) => cgroup,
                // The cached parent may have been removed (and made again)
                // since it was validated: validate it afresh, once.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    CgroupParent::forget_cached(path);
                    CgroupParent::open_cached(path)?.child_cgroup(pool)?
                }
                Err(e) => return Err(e),
            },
        };
        let watch = cgroup.watch_populated();
        Ok(NewCgroup { cgroup, watch })
    }

    /// Spawns `command` into this cgroup (see the module docs for how).
    /// On failure no process is left: a child that was created has been
    /// reaped.
    pub(crate) fn spawn(&self, command: StdCommand<'_>) -> io::Result<Spawned> {
        if !command.std_only {
            if let Some(plan) = SpawnPlan::from_std(command.std, command.arg0) {
                let child = plan.spawn(Some(self.cgroup.dir_fd()))?;
                return Ok(Spawned {
                    pid: child.pid,
                    pidfd: child.pidfd,
                    stdin: child.stdin,
                    stdout: child.stdout,
                    stderr: child.stderr,
                });
            }
        }
        // Open until the child is placed, then closed: open descriptors
        // make every later spawn copy a larger table.
        let procs = self.cgroup.open_procs()?;
        let slot = command
            .placement
            .get_or_insert_with(|| install_placement_hook(command.std));
        let mut child = {
            let _armed = slot.arm(procs.as_fd());
            command.std.spawn()?
        };
        drop(procs);
        Ok(Spawned {
            pid: child.id(),
            pidfd: None,
            stdin: child.stdin.take().map(OwnedFd::from),
            stdout: child.stdout.take().map(OwnedFd::from),
            stderr: child.stderr.take().map(OwnedFd::from),
        })
    }

    /// The child is placed: its tree, whose end is looked for once its
    /// leader is reaped (see `cgroup_tree.rs`).
    pub(crate) fn into_tree(self) -> Arc<CgroupTree> {
        let NewCgroup { cgroup, watch } = self;
        Arc::new(CgroupTree::new(cgroup, watch))
    }
}
