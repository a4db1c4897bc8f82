//! `--memfree SIZE`'s second half, as GNU parallel defines it: when less
//! than half of SIZE is available, the youngest running job is stopped
//! (through `--termseq`) and put back to run again later, once SIZE is
//! available, if `--retries` leaves it an attempt. Its attempt counts as
//! failed; the job log calls it `low_memory`.
//!
//! Each running job shares an [`Eviction`] with the scheduler. The
//! scheduler requests the eviction; the job stops its attempt and says when
//! the attempt has ended, so the scheduler looks at memory again only once
//! the evicted job's memory is free (GNU parallel's stop is synchronous for
//! the same reason): otherwise every job would be evicted in the time the
//! first one takes to die.

use crate::admission;
use crate::job::{stop_requested, Stop};
use std::sync::Arc;
use tokio::sync::watch;

/// Where a job's eviction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// An attempt runs: it may be evicted.
    Running,
    /// The scheduler asked it to stop its attempt.
    Requested,
    /// No attempt runs (between attempts, waiting for memory, or finished).
    Done,
}

/// One job's eviction, shared by the job and the scheduler.
#[derive(Clone, Debug)]
pub struct Eviction(Arc<watch::Sender<State>>);

impl Default for Eviction {
    /// Before the first attempt: not yet evictable.
    fn default() -> Eviction {
        Eviction(Arc::new(watch::Sender::new(State::Done)))
    }
}

impl Eviction {
    /// Where it stands.
    pub fn state(&self) -> State {
        *self.0.borrow()
    }

    /// The scheduler: stop the job's running attempt.
    pub fn request(&self) {
        self.0.send_replace(State::Requested);
    }

    /// The job: resolves once the scheduler has asked it to stop.
    pub async fn requested(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close.
        let _ = rx.wait_for(|s| *s == State::Requested).await;
    }

    /// The job: its attempt has ended.
    pub fn done(&self) {
        self.0.send_replace(State::Done);
    }

    /// The job: an attempt has started.
    pub fn restart(&self) {
        self.0.send_replace(State::Running);
    }
}

/// Whether the scheduler should evict a job now, given the available
/// memory and `--memfree`'s SIZE: below half of it, and no eviction still
/// under way among `evictions` (the running jobs').
pub fn needed<'a>(
    memfree: u64,
    available: Option<u64>,
    mut evictions: impl Iterator<Item = &'a Eviction>,
) -> bool {
    available.is_some_and(|a| a < memfree / 2) && !evictions.any(|e| e.state() == State::Requested)
}

/// The job: waits until SIZE is available again, as a new job would
/// (`false` if the run is stopped or drained meanwhile: no new attempt).
pub async fn wait_for_memory(memfree: u64, stop: &mut watch::Receiver<Stop>) -> bool {
    let mut poll = tokio::time::interval(admission::RECHECK);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                if admission::available_memory().is_none_or(|m| m >= memfree) {
                    return true;
                }
            }
            _ = stop_requested(stop, Stop::Drain) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_eviction_at_a_time() {
        let (a, b) = (Eviction::default(), Eviction::default());
        assert_eq!(a.state(), State::Done, "no attempt yet");
        a.restart();
        b.restart();
        let both = || [&a, &b].into_iter();
        assert!(!needed(1000, Some(600), both()));
        assert!(!needed(1000, None, both()));
        assert!(needed(1000, Some(499), both()));
        b.request();
        assert!(!needed(1000, Some(100), both()), "b is still stopping");
        b.done();
        assert!(needed(1000, Some(100), both()));
        b.restart();
        assert_eq!(b.state(), State::Running);
    }
}
