//! The exit cell: one child's *running → exited* state machine.
//!
//! The cell never goes back to running. Whoever reaps the child (the task
//! awaiting it, the SIGCHLD dispatcher, or the background reaper) does so
//! *inside* the cell's lock, so a child is reaped exactly once, and publishes
//! the status to every parked waiter at the same moment.
//!
//! The reaping itself is behind the [`Wait`] trait, so the unit tests below
//! (and the loom models) drive the cell with mock processes.
//!
//! Owns: [`ExitCell`], [`Exit`], the [`Wait`] and [`Kill`] traits. Calls:
//! `waiters`, `rusage`, `sync`.

use super::waiters::Waiters;
use crate::rusage::ResourceUsage;
use crate::sync::{lock, Mutex};
use std::io;
use std::process::ExitStatus;
use std::task::{Context, Poll};

/// One process's exit, as far as the OS can tell us right now.
pub(crate) trait Wait {
    /// Collects the exit without blocking: `Ok(None)` while the process runs.
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>>;
}

/// Sends signals to one process.
pub(crate) trait Kill {
    /// Sends `signal` (a raw number) to the process.
    fn kill(&self, signal: i32) -> io::Result<()>;
}

impl<T: Wait + ?Sized> Wait for &T {
    fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
        (**self).try_wait()
    }
}

impl<T: Kill + ?Sized> Kill for &T {
    fn kill(&self, signal: i32) -> io::Result<()> {
        (**self).kill(signal)
    }
}

/// How a child ended, kept forever once known so that every later wait (and
/// every shared handle) sees the same answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The status, or the errno the wait failed with (`ECHILD` when something
    /// other than brood reaped the child).
    result: Result<ExitStatus, i32>,
    usage: Option<ResourceUsage>,
}

impl Exit {
    pub(crate) fn reaped(status: ExitStatus, usage: ResourceUsage) -> Self {
        Exit {
            result: Ok(status),
            usage: Some(usage),
        }
    }

    pub(crate) fn failed(error: &io::Error) -> Self {
        Exit {
            result: Err(error.raw_os_error().unwrap_or(libc::EIO)),
            usage: None,
        }
    }

    /// The status, or an error explaining why there is none.
    pub(crate) fn status(&self) -> io::Result<ExitStatus> {
        self.result.map_err(|errno| {
            let os = io::Error::from_raw_os_error(errno);
            if errno == libc::ECHILD {
                io::Error::new(
                    os.kind(),
                    "the child was reaped by someone other than brood \
                     (a foreign waitpid, or SIGCHLD set to SIG_IGN); its status is lost",
                )
            } else {
                os
            }
        })
    }

    pub(crate) fn usage(&self) -> Option<ResourceUsage> {
        self.usage
    }
}

#[derive(Debug, Default)]
struct State {
    /// Boxed: an exit (status and resource usage) is about 90 bytes that a
    /// live child does not need; boxing keeps every live child smaller.
    exit: Option<Box<Exit>>,
    waiters: Waiters,
}

/// The shared state machine of one child.
#[derive(Debug, Default)]
pub(crate) struct ExitCell {
    state: Mutex<State>,
}

impl ExitCell {
    /// The exit, if it is known.
    pub(crate) fn get(&self) -> Option<Exit> {
        lock(&self.state).exit.as_deref().copied()
    }

    /// Returns the exit if known; otherwise parks the task in slot `key`.
    ///
    /// Checking and parking happen under one lock, and publication takes the
    /// same lock, so a wake-up cannot fall between the two.
    pub(crate) fn poll(&self, cx: &mut Context<'_>, key: &mut Option<usize>) -> Poll<Exit> {
        let mut state = lock(&self.state);
        match state.exit.as_deref().copied() {
            Some(exit) => {
                state.waiters.remove(key);
                Poll::Ready(exit)
            }
            None => {
                state.waiters.register(key, cx.waker());
                Poll::Pending
            }
        }
    }

    /// Frees a parked task's slot (its future was dropped).
    pub(crate) fn cancel(&self, key: &mut Option<usize>) {
        if key.is_some() {
            lock(&self.state).waiters.remove(key);
        }
    }

    /// [`ExitCell::try_reap_fresh`] without the flag and the report, for
    /// tests.
    #[cfg(test)]
    pub(crate) fn try_reap(&self, process: impl Wait) -> Option<Exit> {
        self.try_reap_fresh(process, |_| {}).map(|(exit, _)| exit)
    }

    /// Reaps the child if it has exited, publishing the exit to all waiters,
    /// and tells whether this call was the one that reaped the child
    /// (`true`) or found it reaped already.
    ///
    /// The wait system call runs under the cell's lock: two reapers racing
    /// (say the awaiting task and the background thread) cannot both collect
    /// the status, and the loser finds the winner's result here.
    ///
    /// `report` runs once, in the call that reaped, under the cell's lock
    /// and before the exit is published, so that what it records (the
    /// `tracing` event) is in place before anyone can see the exit. It must
    /// not call back into this cell.
    pub(crate) fn try_reap_fresh(
        &self,
        process: impl Wait,
        report: impl FnOnce(&Exit),
    ) -> Option<(Exit, bool)> {
        let mut state = lock(&self.state);
        if let Some(exit) = state.exit.as_deref() {
            return Some((*exit, false));
        }
        let exit = match process.try_wait() {
            Ok(None) => return None,
            Ok(Some((status, usage))) => Exit::reaped(status, usage),
            Err(e) => Exit::failed(&e),
        };
        report(&exit);
        state.exit = Some(Box::new(exit));
        let wakers = state.waiters.take_all();
        drop(state);
        for waker in wakers {
            waker.wake();
        }
        Some((exit, true))
    }

    /// Runs `f` while holding the lock, if and only if the child has not been
    /// reaped. While the lock is held nobody can reap it, so its pid cannot be
    /// recycled: this is what makes `kill(pid)` safe on the SIGCHLD path.
    pub(crate) fn while_running<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let state = lock(&self.state);
        if state.exit.is_some() {
            None
        } else {
            Some(f())
        }
    }

    /// Number of parked tasks, for tests.
    #[cfg(all(test, not(brood_loom)))]
    pub(crate) fn parked(&self) -> usize {
        lock(&self.state).waiters.len()
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    /// A process that exits with `code` after `polls_until_exit` checks.
    struct MockProcess {
        polls_until_exit: Cell<usize>,
        calls: Cell<usize>,
        code: i32,
    }

    impl Wait for MockProcess {
        fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
            self.calls.set(self.calls.get() + 1);
            let left = self.polls_until_exit.get();
            if left == 0 {
                Ok(Some((
                    ExitStatus::from_raw(self.code << 8),
                    ResourceUsage::default(),
                )))
            } else {
                self.polls_until_exit.set(left - 1);
                Ok(None)
            }
        }
    }

    struct Stolen;
    impl Wait for Stolen {
        fn try_wait(&self) -> io::Result<Option<(ExitStatus, ResourceUsage)>> {
            Err(io::Error::from_raw_os_error(libc::ECHILD))
        }
    }

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn reaps_once_and_fuses() {
        let cell = ExitCell::default();
        let p = MockProcess {
            polls_until_exit: Cell::new(2),
            calls: Cell::new(0),
            code: 7,
        };
        assert!(cell.try_reap(&p).is_none());
        assert!(cell.try_reap(&p).is_none());
        let exit = cell.try_reap(&p).expect("exited");
        assert_eq!(exit.status().unwrap().code(), Some(7));
        // Later reaps return the cached exit without another system call.
        assert_eq!(cell.try_reap(&p), Some(exit));
        assert_eq!(p.calls.get(), 3);
        assert_eq!(cell.get(), Some(exit));
    }

    #[test]
    fn publication_wakes_every_parked_task_once() {
        let cell = ExitCell::default();
        let counters: Vec<_> = (0..3)
            .map(|_| Arc::new(CountingWaker(AtomicUsize::new(0))))
            .collect();
        let mut keys = [None; 3];
        for (c, key) in counters.iter().zip(keys.iter_mut()) {
            let waker = Waker::from(c.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(cell.poll(&mut cx, key).is_pending());
        }
        assert_eq!(cell.parked(), 3);
        // A cancelled waiter is not woken.
        cell.cancel(&mut keys[2]);
        let p = MockProcess {
            polls_until_exit: Cell::new(0),
            calls: Cell::new(0),
            code: 0,
        };
        cell.try_reap(&p).unwrap();
        let woken: Vec<_> = counters
            .iter()
            .map(|c| c.0.load(Ordering::SeqCst))
            .collect();
        assert_eq!(woken, vec![1, 1, 0]);
        let waker = Waker::from(counters[0].clone());
        let mut cx = Context::from_waker(&waker);
        assert!(cell.poll(&mut cx, &mut keys[0]).is_ready());
    }

    #[test]
    fn stolen_child_reports_echild() {
        let cell = ExitCell::default();
        let exit = cell.try_reap(Stolen).unwrap();
        let err = exit.status().unwrap_err();
        assert_eq!(err.raw_os_error(), None);
        assert!(err
            .to_string()
            .contains("reaped by someone other than brood"));
        assert!(exit.usage().is_none());
    }

    #[test]
    fn while_running_refuses_after_exit() {
        let cell = ExitCell::default();
        assert_eq!(cell.while_running(|| 1), Some(1));
        cell.try_reap(MockProcess {
            polls_until_exit: Cell::new(0),
            calls: Cell::new(0),
            code: 0,
        });
        assert_eq!(cell.while_running(|| 1), None);
    }
}
