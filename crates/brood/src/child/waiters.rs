//! A set of parked tasks waiting for one child's exit.
//!
//! Each waiting future owns a slot key. Polling stores (or refreshes) its
//! waker in the slot; dropping the future frees the slot, so cancelled waits
//! leave nothing behind. Publishing an exit takes every waker out at once.
//!
//! Owns: [`Waiters`]. Calls nothing.

use std::task::Waker;

/// Slot storage for wakers, with O(1) insert, update and removal.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Waiters {
    /// Stores `waker` in the slot `key` refers to, allocating one if `key` is
    /// `None`. Skips the clone when the stored waker would wake the same task.
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        match *key {
            Some(k) => match &mut self.slots[k] {
                Some(stored) if stored.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            },
            None => {
                let k = match self.free.pop() {
                    Some(k) => {
                        self.slots[k] = Some(waker.clone());
                        k
                    }
                    None => {
                        self.slots.push(Some(waker.clone()));
                        self.slots.len() - 1
                    }
                };
                *key = Some(k);
            }
        }
    }

    /// Frees the slot `key` refers to, if any.
    pub(crate) fn remove(&mut self, key: &mut Option<usize>) {
        if let Some(k) = key.take() {
            if k < self.slots.len() {
                self.slots[k] = None;
                self.free.push(k);
            }
        }
    }

    /// Takes every stored waker, leaving the set empty. Keys handed out before
    /// stay harmless: `remove` on them is a no-op once the set is cleared.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.free.clear();
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    /// How many tasks are parked.
    #[cfg(all(test, not(brood_loom)))]
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn register_refresh_remove_and_take() {
        let a = Arc::new(Counter(AtomicUsize::new(0)));
        let b = Arc::new(Counter(AtomicUsize::new(0)));
        let wa = Waker::from(a.clone());
        let wb = Waker::from(b.clone());
        let mut w = Waiters::default();
        let (mut ka, mut kb) = (None, None);
        w.register(&mut ka, &wa);
        w.register(&mut ka, &wa);
        w.register(&mut kb, &wb);
        assert_eq!(w.len(), 2);
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
        // Stale keys after take_all are harmless.
        w.remove(&mut ka);
        assert_eq!(w.len(), 0);
    }
}
