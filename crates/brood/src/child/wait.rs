//! Waiting for a child's exit, and waiting with a time limit.
//!
//! Owns: [`WaitExit`], [`within`]. Calls: `shared`, `exit`, `waiters`,
//! `reaper::Sleep`.

use super::exit::Exit;
use super::shared::Shared;
use super::waiters::OwnerSlot;
use crate::reaper::Sleep;
use crate::sync::Arc;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

/// Waits for the exit. Parks in the exit cell's waiter set when it has to.
///
/// Dropped while pending, it hands its slot, waker included, back to its
/// owner (the `Child` or the `ChildHandle` it came from), so the task is
/// still woken when the child exits: code that polls a fresh `wait()` each
/// time and drops it is not left asleep. The owner keeps one slot, which
/// the next future takes over.
pub(super) struct WaitExit<'a> {
    shared: &'a Arc<Shared>,
    slot: &'a OwnerSlot,
    key: Option<usize>,
    /// Drive the pidfd inline (the owning `Child`) or rely on others (handles).
    owner: bool,
    /// Pending on the pidfd in the task's reactor (see
    /// `ExitCell::set_inline_waiter`).
    inline: bool,
    /// Only the collected exit will do (its resource usage): a held
    /// leader's status is not enough.
    reaped: bool,
}

impl Future for WaitExit<'_> {
    type Output = Exit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Exit> {
        let this = &mut *self;
        if this.owner {
            this.shared
                .poll_exit(cx, &mut this.key, this.slot, &mut this.inline, this.reaped)
        } else {
            this.shared
                .poll_shared(cx, &mut this.key, this.slot, this.reaped)
        }
    }
}

impl Drop for WaitExit<'_> {
    fn drop(&mut self) {
        if self.inline {
            self.shared.cell.set_inline_waiter(false);
        }
        self.shared.cell.release(&mut self.key, self.slot);
    }
}

/// A wait for `shared`'s exit by the owner of `slot`: as the owning `Child`
/// (`owner`), which may reap it itself, or as one of its handles. While a
/// group stop holds the leader unreaped, it resolves with the status the
/// `WNOWAIT` look found, without resource usage.
pub(super) fn wait_exit<'a>(
    shared: &'a Arc<Shared>,
    slot: &'a OwnerSlot,
    owner: bool,
) -> WaitExit<'a> {
    WaitExit {
        shared,
        slot,
        key: None,
        owner,
        inline: false,
        reaped: false,
    }
}

/// [`wait_exit`] for the collected exit only, with its resource usage:
/// while the leader is held, it waits for the release.
pub(super) fn wait_reaped<'a>(shared: &'a Arc<Shared>, slot: &'a OwnerSlot) -> WaitExit<'a> {
    WaitExit {
        reaped: true,
        ..wait_exit(shared, slot, true)
    }
}

/// Runs `main` until it finishes or `limit` passes; `None` on time-out.
pub(super) async fn within<F: Future>(limit: Duration, main: F) -> Option<F::Output> {
    let mut main = pin!(main);
    let mut sleep = Sleep::new(limit);
    poll_fn(|cx| {
        if let Poll::Ready(out) = main.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        match Pin::new(&mut sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
