//! The tasks waiting for one child's exit.
//!
//! A waker belongs to whoever waits: the `Child`, or one `ChildHandle` (the
//! *owner*), not to the future that registered it. A wait future parks its
//! task's waker in a slot and marks it *live*; when the future is dropped
//! still pending, the slot goes back to its owner ([`OwnerSlot`]) with the
//! waker still in it, no longer live. So code that polls a fresh `wait()`
//! future each time and drops it (stream adapters, `select!` loops) is still
//! woken when the child exits, as with `tokio::process`, and the next fresh
//! future takes the same slot over. One slot per owner bounds what dropped
//! futures leave behind.
//!
//! Live slots are what "somebody waits for this child" means to the exit
//! cell: it lets brood collect the exit at once instead of leaving it to the
//! owner.
//!
//! Owns: [`Waiters`], [`OwnerSlot`]. Calls nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;

#[derive(Debug)]
struct Slot {
    waker: Waker,
    /// A wait future is parked here now (not just its waker left behind).
    live: bool,
}

/// Slot storage for wakers, with O(1) insert, update and removal.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// How many slots are live.
    live: usize,
}

impl Waiters {
    /// Stores `waker` in the slot `key` refers to, allocating one if `key` is
    /// `None`, and marks it live. Skips the clone when the stored waker would
    /// wake the same task.
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        if let Some(Some(slot)) = key.and_then(|k| self.slots.get_mut(k)) {
            if !slot.waker.will_wake(waker) {
                slot.waker = waker.clone();
            }
            if !slot.live {
                slot.live = true;
                self.live += 1;
            }
            return;
        }
        let slot = Some(Slot {
            waker: waker.clone(),
            live: true,
        });
        let k = match self.free.pop() {
            Some(k) => {
                self.slots[k] = slot;
                k
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.live += 1;
        *key = Some(k);
    }

    /// The future parked in `key` is gone: its waker stays, no longer live.
    pub(crate) fn linger(&mut self, key: usize) {
        if let Some(Some(slot)) = self.slots.get_mut(key) {
            if slot.live {
                slot.live = false;
                self.live -= 1;
            }
        }
    }

    /// Frees the slot `key` refers to, if any.
    pub(crate) fn remove(&mut self, key: &mut Option<usize>) {
        if let Some(k) = key.take() {
            if let Some(slot) = self.slots.get_mut(k).and_then(Option::take) {
                if slot.live {
                    self.live -= 1;
                }
                self.free.push(k);
            }
        }
    }

    /// Whether a wait future is parked in any slot.
    pub(crate) fn any_live(&self) -> bool {
        self.live > 0
    }

    /// Wakes every stored waker, keeping the slots: their owners still hold
    /// the keys, so the slots must not be handed to anyone else.
    pub(crate) fn wake_all(&self) {
        for slot in self.slots.iter().flatten() {
            slot.waker.wake_by_ref();
        }
    }

    /// Takes every stored waker, leaving the set empty. Keys handed out before
    /// stay harmless: `remove` and `linger` on them are no-ops once the set
    /// is cleared, and nothing registers again (the exit is final).
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.free.clear();
        self.live = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .map(|slot| slot.waker)
            .collect()
    }

    /// How many slots hold a waker, live or not.
    #[cfg(all(test, not(brood_loom)))]
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// The slot an owner (a `Child`, or one `ChildHandle`) keeps between wait
/// futures.
///
/// Read and written only under the exit cell's lock, which orders every
/// access; the atomic only makes the owner `Sync` without a lock of its own.
#[derive(Debug)]
pub(crate) struct OwnerSlot(AtomicUsize);

impl OwnerSlot {
    const NONE: usize = usize::MAX;

    pub(crate) fn new() -> Self {
        OwnerSlot(AtomicUsize::new(Self::NONE))
    }

    /// Takes the key out, leaving none. Under the exit cell's lock.
    pub(crate) fn take(&self) -> Option<usize> {
        match self.0.swap(Self::NONE, Ordering::Relaxed) {
            Self::NONE => None,
            k => Some(k),
        }
    }

    /// Stores `key`, returning the one it replaces. Under the exit cell's
    /// lock.
    pub(crate) fn replace(&self, key: usize) -> Option<usize> {
        match self.0.swap(key, Ordering::Relaxed) {
            Self::NONE => None,
            k => Some(k),
        }
    }
}

impl Default for OwnerSlot {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        let w = Waker::from(c.clone());
        (c, w)
    }

    #[test]
    fn register_refresh_remove_and_take() {
        let (a, wa) = counter();
        let (b, wb) = counter();
        let mut w = Waiters::default();
        let (mut ka, mut kb) = (None, None);
        w.register(&mut ka, &wa);
        w.register(&mut ka, &wa);
        w.register(&mut kb, &wb);
        assert_eq!(w.len(), 2);
        assert!(w.any_live());
        w.remove(&mut kb);
        assert_eq!(kb, None);
        assert_eq!(w.len(), 1);
        // The freed slot is reused.
        w.register(&mut kb, &wb);
        assert_eq!(w.slots.len(), 2);
        for waker in w.take_all() {
            waker.wake();
        }
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        assert!(!w.any_live());
        // Stale keys after take_all are harmless.
        w.remove(&mut ka);
        w.linger(1);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_lingering_waker_is_not_live_but_is_woken() {
        let (a, wa) = counter();
        let mut w = Waiters::default();
        let mut key = None;
        w.register(&mut key, &wa);
        w.linger(key.unwrap());
        w.linger(key.unwrap());
        assert!(!w.any_live());
        assert_eq!(w.len(), 1);
        w.wake_all();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        // Still there: a later publication wakes it again, and a new poll
        // through the same key makes it live again without a new slot.
        w.register(&mut key, &wa);
        assert!(w.any_live());
        assert_eq!(w.slots.len(), 1);
        w.remove(&mut key);
        assert!(!w.any_live());
    }

    #[test]
    fn owner_slot_hands_keys_back_and_forth() {
        let slot = OwnerSlot::new();
        assert_eq!(slot.take(), None);
        assert_eq!(slot.replace(3), None);
        assert_eq!(slot.replace(5), Some(3));
        assert_eq!(slot.take(), Some(5));
        assert_eq!(slot.take(), None);
    }
}
