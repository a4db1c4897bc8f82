//! The background thread's change watches: descriptors of kernfs files that
//! report a change of their contents as a priority event (`EPOLLPRI`), with
//! what to do when one fires. Containment watches each contained child's
//! `cgroup.events` here, to remove the cgroup and wake the tree's waiters
//! once the tree is empty, whether or not its `Child` still exists.
//!
//! The reaper knows nothing about cgroups: an item is a [`Changes`] trait
//! object, implemented by the containment layer. Items are inserted and
//! armed under the watch list's lock, and looked up under it, as the pidfd
//! watches are (`watchlist.rs`). Only the background thread runs
//! [`Changes::changed`] and removes items, one event at a time, so an item is
//! never handled twice at once.
//!
//! Owns: [`Changes`], [`ChangeWatcher`]. Calls: `watchlist`, `sys::poller`.

use super::watchlist::Watchlist;
use crate::sync::Arc;
use crate::sys::poller::Poller;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// A descriptor the background thread watches for change notifications.
pub(crate) trait Changes {
    /// The descriptor to watch. It must stay open, and the same, for as
    /// long as the item is watched (the watch list holds the item).
    fn fd(&self) -> BorrowedFd<'_>;

    /// The file changed (or, for a descriptor that never read it, the watch
    /// was just armed). Reads the file, which re-arms the notification, and
    /// acts on it. Returns `true` when the item needs no more watching.
    fn changed(&self) -> bool;

    /// Called once the watch [`Changes::changed`] ended is gone (removed
    /// from the list and disarmed): from now on the descriptor may be
    /// watched again, by another item.
    fn unwatched(&self);
}

/// How the reaper holds a change watch.
pub(crate) type ChangeItem = dyn Changes + Send + Sync;

/// Marks a poller token as a change watch; pidfd tokens (descriptor
/// numbers, below 2^31) never have it, nor does the wake pipe's.
const CHANGE_TOKEN: u64 = 1 << 40;

/// Whether `token` belongs to a change watch.
pub(super) fn is_change_token(token: u64) -> bool {
    token & CHANGE_TOKEN != 0 && token != u64::MAX
}

/// The change watches of the background thread.
pub(super) struct ChangeWatcher {
    watched: Watchlist<ChangeItem>,
}

impl ChangeWatcher {
    pub(super) fn new() -> Self {
        ChangeWatcher {
            watched: Watchlist::new(),
        }
    }

    /// Watches `item` from now on. A descriptor that never read its file
    /// reports at once when armed, so the first [`Changes::changed`] comes
    /// without waiting for a change.
    pub(super) fn watch(&self, item: Arc<ChangeItem>, poller: &Poller) -> io::Result<()> {
        let fd = item.fd().as_raw_fd();
        let token = CHANGE_TOKEN | fd as u64;
        self.watched
            .push(token, item, || poller.watch_changes(fd, token))
    }

    /// The change watch `token` fired.
    pub(super) fn on_ready(&self, token: u64, poller: &Poller) {
        let Some(item) = self.watched.get(token) else {
            return;
        };
        if item.changed() {
            self.watched.remove(token, || {
                let _ = poller.unwatch((token & !CHANGE_TOKEN) as RawFd);
            });
            item.unwatched();
        }
        // Otherwise the next change is reported (edge-triggered: nothing
        // spins while the file stays as it is).
    }
}
