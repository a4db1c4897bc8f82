//! Failures held back for a moment, in case the stop that caused them is
//! still on its way to brood.
//!
//! A cluster engine stops a task by signalling every one of its processes,
//! brood and its jobs alike, one after the other: Slurm's SIGTERM reached
//! all of a task's processes within 14–150 ms of `scancel` on the test
//! cluster, once 0.5 s under load (`docs/DESIGN.md`). A job that handles
//! SIGTERM by exiting with a failing status can therefore end, and be
//! handled, before brood hears its own SIGTERM. Logged as `failed`, it
//! would be skipped by `--resume`, and lost; it was stopped, not failed.
//!
//! So the scheduler does not write a failed job's record at once: it holds
//! it for [`WINDOW`]. If brood is told to stop (SIGINT, SIGTERM) within the
//! window after the job ended, the job is logged `stopped`; otherwise, once
//! the window has passed, `failed`. Only the record waits: the failure is
//! counted, reported and acted on (`--halt`) at once.
//!
//! A failure handled after the stop signal needs no window: the job then
//! knows it (see [`crate::job::Finished::outcome`]).

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// How long a failure waits for a stop signal before it is a failure:
/// twice the widest spread of one `scancel`'s signals seen under load.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Items (the records of failed jobs) by the time their job ended, oldest
/// first.
#[derive(Debug)]
pub struct Held<T> {
    window: Duration,
    items: VecDeque<(Instant, T)>,
}

impl<T> Held<T> {
    /// Nothing held, with `window`.
    pub fn new(window: Duration) -> Held<T> {
        Held {
            window,
            items: VecDeque::new(),
        }
    }

    /// Holds `item`, whose job ended at `ended` (no earlier than any item
    /// held before it).
    pub fn push(&mut self, ended: Instant, item: T) {
        self.items.push_back((ended, item));
    }

    /// When the oldest item's window closes.
    pub fn next_due(&self) -> Option<Instant> {
        self.items.front().map(|(at, _)| *at + self.window)
    }

    /// The items whose window has closed by `now`: failures.
    pub fn take_due(&mut self, now: Instant) -> Vec<T> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.items.front() {
            if *at + self.window > now {
                break;
            }
            due.extend(self.items.pop_front().map(|(_, item)| item));
        }
        due
    }

    /// A stop signal came at `at`: returns (failures, stops). The items
    /// whose window was still open at `at` were stopped by it; older ones
    /// failed on their own.
    pub fn stop(&mut self, at: Instant) -> (Vec<T>, Vec<T>) {
        let failed = self.take_due(at);
        let stopped = self.items.drain(..).map(|(_, item)| item).collect();
        (failed, stopped)
    }

    /// Everything still held: the run is over, and no stop came.
    pub fn take_all(&mut self) -> Vec<T> {
        self.items.drain(..).map(|(_, item)| item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_wait_out_their_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut held = Held::new(ms(1000));
        assert_eq!(held.next_due(), None);
        held.push(t0, "a");
        held.push(t0 + ms(300), "b");
        assert_eq!(held.next_due(), Some(t0 + ms(1000)));
        assert!(held.take_due(t0 + ms(999)).is_empty());
        assert_eq!(held.take_due(t0 + ms(1000)), ["a"]);
        assert_eq!(held.next_due(), Some(t0 + ms(1300)));
        assert_eq!(held.take_all(), ["b"]);
        assert_eq!(held.next_due(), None);
    }

    #[test]
    fn a_stop_inside_the_window_turns_failures_into_stops() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut held = Held::new(ms(1000));
        held.push(t0, "long ago");
        held.push(t0 + ms(1500), "just before");
        held.push(t0 + ms(1900), "just now");
        let (failed, stopped) = held.stop(t0 + ms(2000));
        assert_eq!(failed, ["long ago"]);
        assert_eq!(stopped, ["just before", "just now"]);
        assert!(held.take_all().is_empty());
    }
}
