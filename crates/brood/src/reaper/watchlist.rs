//! The background thread's list of children it watches on the pidfd path
//! (orphans and children awaited through handles), keyed by pidfd number.
//!
//! The handoff it guards: a dropping task *pushes* a child while the reaper
//! thread *drains* readiness events. The item is inserted and its pidfd armed
//! in epoll under one lock, and the thread looks items up under the same
//! lock, so an event can never arrive for an item the thread cannot find;
//! and because arming an already-exited pidfd reports an event at once, an
//! exit before the push is not lost either. `loom_models` checks both.
//!
//! Owns: [`Watchlist`]. Calls nothing: arming and disarming are closures
//! from the pidfd watcher (`pidfd.rs`).

use crate::sync::{lock, Arc, Mutex};
use std::collections::HashMap;
use std::io;

/// Watched items by token.
#[derive(Debug)]
pub(crate) struct Watchlist<T: ?Sized> {
    items: Mutex<HashMap<u64, Arc<T>>>,
}

impl<T: ?Sized> Watchlist<T> {
    pub(crate) fn new() -> Self {
        Watchlist {
            items: Mutex::new(HashMap::new()),
        }
    }

    /// Inserts `item` under `token`, then runs `arm` (the epoll
    /// registration), both under the lock. If arming fails the item is
    /// removed again.
    pub(crate) fn push(
        &self,
        token: u64,
        item: Arc<T>,
        arm: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let mut items = lock(&self.items);
        items.insert(token, item);
        if let Err(e) = arm() {
            items.remove(&token);
            return Err(e);
        }
        Ok(())
    }

    /// The item an event's token refers to.
    pub(crate) fn get(&self, token: u64) -> Option<Arc<T>> {
        lock(&self.items).get(&token).cloned()
    }

    /// Removes the item after running `disarm` (the epoll deregistration),
    /// both under the lock.
    pub(crate) fn remove(&self, token: u64, disarm: impl FnOnce()) {
        let mut items = lock(&self.items);
        disarm();
        items.remove(&token);
    }

    /// Number of watched items.
    #[cfg(all(test, brood_loom))]
    pub(crate) fn len(&self) -> usize {
        lock(&self.items).len()
    }
}
