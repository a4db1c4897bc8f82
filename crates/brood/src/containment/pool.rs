//! [`CgroupPool`]: empty per-child cgroups kept for reuse, for programs
//! that run many short contained jobs.
//!
//! Owns: [`CgroupPool`]. Calls: `cgroup` (the pool itself, `cgroup/pool.rs`).

use crate::cgroup::Pool;
use std::sync::Arc;

/// Empty cgroups of contained children, kept for the next ones: give it to
/// [`Command::cgroup_pool`](crate::Command::cgroup_pool).
///
/// Without a pool, every child contained in a cgroup
/// ([`Containment::Cgroup`](crate::Containment::Cgroup), or `Auto` where a
/// cgroup can be made) gets a cgroup made for it, removed once its tree
/// has ended. With one, a cgroup whose tree has ended is kept instead, and
/// the next child spawned with the pool starts in it: the kernel's `mkdir`
/// and `rmdir` of a cgroup cost more than the rest of containment, and
/// take a lock every cgroup operation on the machine shares.
///
/// What a child sees does not change: its cgroup holds its own tree alone
/// (a cgroup is reused only once it is empty, not frozen, and holds no
/// cgroup the last tree made inside it), and
/// [`Child::tree_usage`](crate::Child::tree_usage) counts its own tree
/// alone. A cgroup whose parent gives it the memory controller is never
/// kept, for its `memory.peak` could not be told apart from the last
/// tree's. A tree that rewrites its own cgroup's interface files (say
/// `cgroup.max.descendants`) leaves them so for the next child.
///
/// At most `max_idle` empty cgroups are kept; past that, they are removed.
/// Dropping the pool (its last clone) removes the ones it keeps; the ones
/// in use are removed as their trees end.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use brood::{CgroupPool, Command, Containment};
///
/// let pool = CgroupPool::new(4);
/// for input in ["a", "b", "c"] {
///     let status = Command::new("process-one")
///         .arg(input)
///         .contain(Containment::Cgroup)
///         .cgroup_pool(&pool)
///         .status()
///         .await?;
///     assert!(status.success());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CgroupPool {
    inner: Arc<Handle>,
}

/// The pool, closed when the last [`CgroupPool`] clone goes (children in
/// flight hold the pool itself, not this).
#[derive(Debug)]
struct Handle(Arc<Pool>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl CgroupPool {
    /// A pool that keeps at most `max_idle` empty cgroups (`0` keeps none).
    /// Nothing is made until a child is spawned with it.
    pub fn new(max_idle: usize) -> CgroupPool {
        CgroupPool {
            inner: Arc::new(Handle(Arc::new(Pool::new(max_idle)))),
        }
    }

    /// How many empty cgroups it keeps at most.
    pub fn max_idle(&self) -> usize {
        self.inner.0.max_idle()
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.inner.0
    }
}
