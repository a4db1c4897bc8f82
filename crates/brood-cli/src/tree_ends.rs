//! Job trees that are over but whose cgroups brood has not seen empty yet.
//!
//! The library ends a tree whose leader was its last process when the
//! leader is reaped, so such a job never comes here. A tree that outlived
//! its leader is watched by the library's background thread, which ends it
//! once it reads `populated 0` in the cgroup's `cgroup.events`. The kernel
//! rate-limits each file's notifications (at most 100 a second:
//! `CGROUP_FILE_NOTIFY_MIN_INTV`), so that `populated 0` can come up to
//! about 10 ms after the tree's last process exited. A job whose tree is already empty
//! (`Child::members` counts none) is therefore done without waiting for it:
//! waiting held each slot that much longer, 3.2 times the wall time of
//! `brood run -j 4 true` over 1000 inputs (docs/BENCHMARKS.md). Instead its
//! handle comes here, and brood waits for all of them once the run is over,
//! so that no cgroup of brood's outlives it (a later brood's sweep would
//! remove it, but only then).

use brood::ChildHandle;
use std::sync::Mutex;
use tokio::task::JoinSet;

/// The waits for the empty trees' ends, one task each.
#[derive(Default)]
pub struct TreeEnds {
    waits: Mutex<JoinSet<()>>,
}

impl TreeEnds {
    /// Waits for the end of the tree of `handle` (known to be empty) in
    /// the background. Must be called on the runtime.
    pub fn add(&self, handle: ChildHandle) {
        let mut waits = self.waits.lock().unwrap_or_else(|e| e.into_inner());
        // The ends already seen, so that the set holds only pending ones.
        while waits.try_join_next().is_some() {}
        waits.spawn(async move {
            let _ = handle.wait_tree().await;
        });
    }

    /// Resolves once every tree added has ended (and its cgroup is gone).
    pub async fn wait_all(&self) {
        let mut waits = std::mem::take(&mut *self.waits.lock().unwrap_or_else(|e| e.into_inner()));
        while waits.join_next().await.is_some() {}
    }
}
