//! `Sleep`: a future that completes at a deadline, served by the background
//! thread's timers.
//!
//! brood's timeouts (`Command::timeout`, `Child::wait_timeout`, grace
//! periods) use it instead of Tokio's timers, so they work in any runtime, or
//! none, whether or not Tokio's time driver is enabled.
//!
//! Owns: [`Sleep`]. Calls: `background` (starting the thread, adding the
//! timer), `timers`.

use super::background;
use super::timers::{Action, SleepState};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
            state.set_waker(cx.waker());
            // Checked after storing the waker: `fire` sets the flag before
            // taking the waker, so one of the two sees the other.
            return if state.has_fired() {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        let state = Arc::new(SleepState::default());
        state.set_waker(cx.waker());
        match background::get() {
            Ok(bg) => bg.add_timer(self.deadline, Action::Wake(state.clone())),
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
            if !state.has_fired() {
                state.cancel();
            }
        }
    }
}
