//! Synchronisation primitives, swapped for loom's models under `--cfg brood_loom`.
//!
//! Every cross-thread handoff in brood (waiter registration vs. exit
//! publication, orphan hand-off vs. reaping, registration vs. SIGCHLD
//! dispatch) goes through these types, so the loom models in
//! `loom_models.rs` explore the same code the library runs.
//!
//! Owns nothing. Calls: std or loom.

// Reference counting is not a handoff worth modelling; `Arc` stays std's.
pub(crate) use std::sync::Arc;

#[cfg(not(brood_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicUsize},
    Mutex, MutexGuard,
};

#[cfg(brood_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicUsize},
    Mutex, MutexGuard,
};

/// Locks `mutex`, ignoring poisoning: brood's critical sections leave their
/// data consistent at every point where user code could panic (there is none
/// inside them), so a poisoned lock carries no broken invariant.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(brood_loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    #[cfg(brood_loom)]
    {
        mutex.lock().unwrap()
    }
}
