//! `Sleep`: a timer served by the background thread.
//!
//! brood's timeouts (`Command::timeout`, `Child::wait_timeout`, grace
//! periods) use it instead of Tokio's timers, so they work in any runtime, or
//! none, whether or not Tokio's time driver is enabled.

use super::background;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// What the background thread and a `Sleep` share.
#[derive(Debug, Default)]
pub(crate) struct SleepState {
    fired: AtomicBool,
    /// Set when the `Sleep` was dropped first: the timer entry is garbage.
    cancelled: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl SleepState {
    /// Called by the background thread at the deadline.
    pub(super) fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// Completes at a deadline; see the module docs.
#[derive(Debug)]
pub(crate) struct Sleep {
    deadline: Instant,
    state: Option<Arc<SleepState>>,
}

impl Sleep {
    pub(crate) fn new(duration: Duration) -> Self {
        Sleep {
            deadline: Instant::now() + duration,
            state: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        if let Some(state) = &self.state {
            *state.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            // Checked after storing the waker: `fire` sets the flag before
            // taking the waker, so one of the two sees the other.
            return if state.fired.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        let state = Arc::new(SleepState::default());
        *state.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        match background::get() {
            Ok(bg) => bg.wake_at(self.deadline, &state),
            // Without the thread nothing can wake us: fire at once so that
            // callers fall through to their time-out path rather than hang.
            Err(_) => return Poll::Ready(()),
        }
        self.state = Some(state);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            if !state.fired.load(Ordering::Acquire) {
                state.cancelled.store(true, Ordering::Release);
                background::timer_cancelled();
            }
        }
    }
}
