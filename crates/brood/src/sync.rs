//! Synchronisation primitives, swapped for loom's models under `--cfg brood_loom`.
//! (`Notify` too: under loom, a stand-in built on loom's `Mutex`.)
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
pub(crate) use tokio::sync::Notify;

#[cfg(brood_loom)]
pub(crate) use loom_notify::Notify;

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

/// The part of `tokio::sync::Notify` that brood uses (`notified`, `enable`,
/// `notify_waiters`), built on loom's `Mutex` so that the loom models see
/// the ordering that tokio's own lock gives: a waiter registered before a
/// `notify_waiters` is woken by it, and one that registers after it sees
/// everything the notifier did before.
#[cfg(brood_loom)]
mod loom_notify {
    use super::{lock, Mutex};
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    #[derive(Debug, Default)]
    pub(crate) struct Notify {
        state: Mutex<State>,
    }

    #[derive(Debug, Default)]
    struct State {
        /// How many `notify_waiters` calls were made.
        calls: u64,
        wakers: Vec<Waker>,
    }

    impl Notify {
        pub(crate) fn new() -> Self {
            Notify::default()
        }

        /// As tokio's: the future is notified by any `notify_waiters`
        /// that comes after its creation.
        pub(crate) fn notified(&self) -> Notified<'_> {
            let calls = lock(&self.state).calls;
            Notified {
                notify: self,
                calls,
            }
        }

        pub(crate) fn notify_waiters(&self) {
            let wakers = {
                let mut state = lock(&self.state);
                state.calls += 1;
                std::mem::take(&mut state.wakers)
            };
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    pub(crate) struct Notified<'a> {
        notify: &'a Notify,
        calls: u64,
    }

    impl Notified<'_> {
        /// Registration happens at creation here; kept for tokio's API.
        pub(crate) fn enable(self: Pin<&mut Self>) -> bool {
            lock(&self.notify.state).calls != self.calls
        }
    }

    impl Future for Notified<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = lock(&self.notify.state);
            if state.calls != self.calls {
                return Poll::Ready(());
            }
            state.wakers.push(cx.waker().clone());
            Poll::Pending
        }
    }
}
