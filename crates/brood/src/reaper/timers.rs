//! The background thread's timers: a heap of deadlines, each with what to do
//! when it passes.
//!
//! Grace kills, `Sleep`s (timeouts, `wait_timeout`, `terminate`), the
//! pidfd watcher's retries and jobs to run off the caller's thread all
//! wait here, so they work in any runtime, with
//! or without Tokio's time driver. The thread fires due timers before every
//! sleep and sleeps until the earliest deadline.
//!
//! Owns: [`Timers`], [`Action`], [`SleepState`]. Calls: `tracked`.

use super::tracked::TrackedChild;
use crate::sync::{lock, Arc, Mutex};
use std::cmp::Reverse;
use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

/// The first delay before the final step of a stop is taken again
/// ([`Action::Kill`]); it doubles up to [`KILL_RETRY_MAX`].
pub(super) const KILL_RETRY_FIRST: Duration = Duration::from_millis(1);
/// The longest delay between two final steps of one stop.
const KILL_RETRY_MAX: Duration = Duration::from_millis(50);

/// The delay after `retry` between two final steps of one stop.
pub(super) fn next_kill_retry(retry: Duration) -> Duration {
    (retry * 2).min(KILL_RETRY_MAX)
}

/// What a timer does when it fires.
pub(super) enum Action {
    /// The final SIGKILL of a stop (the child's number for it), taken again
    /// after the delay until the child says the stop is over.
    Kill(Arc<TrackedChild>, u64, Duration),
    /// Completes a `Sleep`.
    Wake(Arc<SleepState>),
    /// Tries again to watch (or reap) a child whose pidfd was unavailable;
    /// the duration is the delay to use if that fails again.
    Retry(Arc<TrackedChild>, Duration),
    /// Runs a job that may block briefly, off the caller's thread (the
    /// freeze, signal and thaw of a contained tree's first stop).
    Job(Box<dyn FnOnce() + Send>),
}

struct Timer {
    deadline: Instant,
    seq: u64,
    action: Action,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Heap {
    timers: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
}

/// The timer heap.
pub(super) struct Timers {
    heap: Mutex<Heap>,
}

/// Sleeps cancelled since the last sweep of the timer heap (an estimate:
/// the sweep recounts nothing, it just removes what is cancelled).
static CANCELLED: AtomicUsize = AtomicUsize::new(0);

/// What [`Timers::next`] found.
pub(super) enum Next {
    /// This timer's deadline has passed: run its action.
    Due(Action),
    /// Nothing is due; the earliest deadline is this far away (`None`: no
    /// timer at all).
    Idle(Option<Duration>),
}

impl Timers {
    pub(super) fn new() -> Self {
        Timers {
            heap: Mutex::new(Heap::default()),
        }
    }

    /// Adds a timer. Returns whether its deadline is the new earliest one,
    /// the only case in which the thread must be woken to recompute its
    /// timeout.
    pub(super) fn add(&self, deadline: Instant, action: Action) -> bool {
        let mut heap = lock(&self.heap);
        // Sleeps dropped before their deadline leave garbage entries;
        // sweep them once they are the majority, so a program that
        // starts and abandons many long timeouts does not grow the heap.
        if CANCELLED.load(Ordering::Relaxed) > heap.timers.len() / 2 + 64 {
            CANCELLED.store(0, Ordering::Relaxed);
            heap.timers
                .retain(|Reverse(t)| !matches!(&t.action, Action::Wake(s) if s.is_cancelled()));
        }
        let seq = heap.next_seq;
        heap.next_seq += 1;
        let earliest = heap
            .timers
            .peek()
            .is_none_or(|Reverse(t)| deadline < t.deadline);
        heap.timers.push(Reverse(Timer {
            deadline,
            seq,
            action,
        }));
        earliest
    }

    /// Takes the earliest timer if it is due; otherwise says how long until
    /// it is.
    pub(super) fn next(&self) -> Next {
        let mut heap = lock(&self.heap);
        let now = Instant::now();
        let next = match heap.timers.peek_mut() {
            None => Next::Idle(None),
            Some(earliest) if earliest.0.deadline > now => {
                Next::Idle(Some(earliest.0.deadline - now))
            }
            Some(earliest) => Next::Due(PeekMut::pop(earliest).0.action),
        };
        next
    }

    /// Timer entries in the heap, live or cancelled, for tests.
    #[cfg(feature = "test-hooks")]
    pub(super) fn len(&self) -> usize {
        lock(&self.heap).timers.len()
    }
}

/// What the background thread and a `Sleep` share.
#[derive(Debug, Default)]
pub(crate) struct SleepState {
    fired: AtomicBool,
    /// Set when the `Sleep` was dropped first: the timer entry is garbage.
    cancelled: AtomicBool,
    waker: std::sync::Mutex<Option<Waker>>,
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

    /// Whether [`SleepState::fire`] ran.
    pub(super) fn has_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Stores the waker to wake at the deadline.
    pub(super) fn set_waker(&self, waker: &Waker) {
        *self.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
    }

    /// The `Sleep` was dropped before its deadline: its entry is garbage.
    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        CANCELLED.fetch_add(1, Ordering::Relaxed);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}
