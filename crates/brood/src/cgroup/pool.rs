//! Empty cgroups kept for the next contained child (`CgroupPool` in the
//! public API), so that a program running many short contained jobs does
//! not make and remove a cgroup for each: `mkdir` and `rmdir` in cgroupfs
//! take the kernel's cgroup mutex and cost more than moving a process in.
//!
//! # When a cgroup is reused
//!
//! A tenant gives its cgroup back once its tree has ended and the
//! background thread no longer watches its `cgroup.events`. It is kept
//! only if it is clean ([`CgroupDir::is_clean`]): empty, not frozen, with
//! no cgroup nested in it, and with no memory controller (`memory.peak`
//! cannot be read per tenant). Otherwise, or once [`Pool::max_idle`]
//! cgroups are kept, or after the pool was closed, it is removed as
//! without a pool.
//!
//! `cpu.stat` only grows, so each tenant starts from the figures its
//! predecessor left ([`Idle::figures`]) and reports the difference.
//!
//! Closing the pool (dropping the last `CgroupPool`) removes the cgroups it
//! keeps; the ones in use are removed when their trees end.
//!
//! Owns: [`Pool`], [`Idle`]. Calls: `dir`.

use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

use super::dir::CgroupDir;
use super::usage::CgroupUsage;

/// The cgroups a pool keeps, and whether it still takes any.
#[derive(Debug)]
pub(crate) struct Pool {
    max_idle: usize,
    /// `None` once closed.
    idle: Mutex<Option<Vec<Idle>>>,
}

/// A clean, empty cgroup waiting for its next tenant.
#[derive(Debug)]
pub(crate) struct Idle {
    pub(crate) dir: Arc<CgroupDir>,
    /// Its cumulative CPU figures when the last tenant gave it back.
    pub(crate) figures: CgroupUsage,
}

impl Pool {
    pub(crate) fn new(max_idle: usize) -> Pool {
        Pool {
            max_idle,
            idle: Mutex::new(Some(Vec::new())),
        }
    }

    /// How many empty cgroups it keeps at most.
    pub(crate) fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// A kept cgroup made under `parent`, if there is one; the most recently
    /// given back first.
    pub(crate) fn take(&self, parent: &Arc<File>) -> Option<Idle> {
        let mut idle = self.lock();
        let idle = idle.as_mut()?;
        let at = idle.iter().rposition(|kept| kept.dir.is_under(parent))?;
        Some(idle.swap_remove(at))
    }

    /// Keeps `cgroup` for a later tenant, or gives it back to the caller to
    /// remove (the pool is full or closed).
    pub(crate) fn offer(&self, cgroup: Idle) -> Result<(), Idle> {
        match self.lock().as_mut() {
            Some(idle) if idle.len() < self.max_idle => {
                idle.push(cgroup);
                Ok(())
            }
            _ => Err(cgroup),
        }
    }

    /// Takes no more cgroups, and removes the ones it keeps.
    pub(crate) fn close(&self) {
        let kept = self.lock().take().unwrap_or_default();
        for cgroup in kept {
            // Empty and clean when kept; someone else may have removed it.
            let _ = cgroup.dir.remove();
        }
    }

    /// How many cgroups it keeps now.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.lock().as_ref().map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
