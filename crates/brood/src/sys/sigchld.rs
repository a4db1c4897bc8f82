//! The SIGCHLD handler, where it sends each exit, and the record format of
//! the pipes it writes to.
//!
//! The handler sends each exit to one of two pipes: the background thread's
//! wake pipe, or the pipe that the runtimes' listeners watch
//! (`reaper/listener.rs`). It picks the listeners while at least one exists
//! and nothing wants the thread ([`Route`]); the reaper layer keeps those
//! counts, and the handler only reads them.
//!
//! Owns: the handler, the previous disposition it chains to, the
//! descriptors it writes to, [`Route`], and [`WakeRecord`], the one
//! definition of what travels on those pipes. Calls: `errno`, `process`
//! (`si_pid`).
//!
//! The handler is written by hand rather than taken from a crate because it
//! must run on an alternate signal stack (`SA_ONSTACK`) and call the handler
//! the program had installed before (chaining), with the same arguments.

use super::errno::cvt;
use super::process::siginfo_pid;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// One record on the reaper's wake pipe: an `i32` in native byte order.
///
/// The format lives here, with the signal handler, because the handler
/// writes records and may call nothing above this module. Four-byte writes
/// to a pipe are atomic, so a reader never sees a record split in two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeRecord {
    /// A child exited: its pid, as the handler read it from `si_pid`.
    Exited(u32),
    /// Look for exited children although no SIGCHLD named one (`-1`).
    Dispatch,
    /// Only recompute the timeout: a new timer or a new child (`0`).
    Wake,
}

impl WakeRecord {
    /// The size of one record, in bytes.
    pub(crate) const LEN: usize = 4;

    /// The bytes of this record. Async-signal-safe: integer operations only.
    pub(crate) const fn encode(self) -> [u8; Self::LEN] {
        let raw: i32 = match self {
            WakeRecord::Exited(pid) => pid as i32,
            WakeRecord::Dispatch => -1,
            WakeRecord::Wake => 0,
        };
        raw.to_ne_bytes()
    }

    /// The record `bytes` hold. A positive value is a pid, zero a wake-up
    /// without news, and any negative value a request to dispatch.
    pub(crate) fn decode(bytes: [u8; Self::LEN]) -> Self {
        match i32::from_ne_bytes(bytes) {
            pid if pid > 0 => WakeRecord::Exited(pid as u32),
            0 => WakeRecord::Wake,
            _ => WakeRecord::Dispatch,
        }
    }
}

/// Write end of the background thread's wake pipe; `-1` until installed.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Write end of the listeners' pipe; `-1` until the first listener.
static LISTEN_FD: AtomicI32 = AtomicI32::new(-1);
/// Live listeners (one per runtime that has one).
static LISTENERS: AtomicUsize = AtomicUsize::new(0);
/// Reasons to send exits to the thread even while listeners exist.
static THREAD_WANTED: AtomicUsize = AtomicUsize::new(0);
/// Records written to the listeners' pipe, counted after each write.
static SENT_TO_LISTENERS: AtomicUsize = AtomicUsize::new(0);

/// Where the handler sends exits: the counts it reads, and the one place
/// that changes them. Every operation is one atomic step, so the handler
/// may read them at any time; a change applies to the exits handled after
/// it.
pub(crate) struct Route;

impl Route {
    /// Gives the handler the write end of the listeners' pipe, which it
    /// keeps for the rest of the process. Call at most once, before the
    /// first [`Route::listener_started`].
    pub(crate) fn set_listeners_pipe(write: OwnedFd) {
        LISTEN_FD.store(write.into_raw_fd(), Ordering::SeqCst);
    }

    /// A listener now serves a runtime.
    pub(crate) fn listener_started() {
        LISTENERS.fetch_add(1, Ordering::SeqCst);
    }

    /// A listener has stopped.
    pub(crate) fn listener_stopped() {
        LISTENERS.fetch_sub(1, Ordering::SeqCst);
    }

    /// Something needs exits to reach the thread whether or not a runtime
    /// runs (an orphan, subreaper mode, a wait polled outside any runtime).
    pub(crate) fn want_thread() {
        THREAD_WANTED.fetch_add(1, Ordering::SeqCst);
    }

    /// One reason given to [`Route::want_thread`] is gone.
    pub(crate) fn unwant_thread() {
        THREAD_WANTED.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many records the handler has written to the listeners' pipe
    /// (each counted just after its write), to compare with how many have
    /// been read from it.
    pub(crate) fn sent_to_listeners() -> usize {
        SENT_TO_LISTENERS.load(Ordering::SeqCst)
    }

    /// The descriptor for the next exit, and whether it is the listeners'.
    /// Async-signal-safe: atomic loads only.
    fn pick() -> (i32, bool) {
        let listen = LISTEN_FD.load(Ordering::SeqCst);
        if listen >= 0
            && LISTENERS.load(Ordering::SeqCst) > 0
            && THREAD_WANTED.load(Ordering::SeqCst) == 0
        {
            (listen, true)
        } else {
            (WAKE_FD.load(Ordering::SeqCst), false)
        }
    }
}

/// The disposition that was in place before brood's handler; null until
/// installed. Leaked on purpose: the handler may run at any time after.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// Installs the process-wide SIGCHLD handler, which writes a
/// [`WakeRecord::Exited`] for each exited child to `wake` and then calls
/// whatever handler was installed before. Call at most once.
///
/// `SA_ONSTACK` lets it run on an alternate signal stack if the thread has
/// one; `SA_RESTART` keeps the host's blocking calls from failing with EINTR.
pub(crate) fn install(wake: OwnedFd) -> io::Result<()> {
    // The fd lives for the rest of the process: the handler can fire at any time.
    let raw = wake.into_raw_fd();
    WAKE_FD.store(raw, Ordering::Release);

    // SAFETY: zeroed sigaction is a valid "empty" value; we fill the fields we use.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigchld as *const () as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };

    // Publish a copy of our own action first, so that a handler running on
    // another thread during the swap sees "nothing to chain" rather than a
    // null or half-written pointer; sigaction(2) then overwrites it with
    // the host's previous disposition.
    let previous = Box::into_raw(Box::new(action));
    PREVIOUS.store(previous, Ordering::Release);
    // SAFETY: `action` and `*previous` are valid sigaction structs; the
    // old disposition is written into `*previous`, which is never freed.
    cvt(unsafe { libc::sigaction(libc::SIGCHLD, &action, previous) })?;
    Ok(())
}

extern "C" fn on_sigchld(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // Only async-signal-safe operations below: atomics, write(2), and
    // calling the previous handler.
    let errno = errno_location();
    // SAFETY: errno_location returns this thread's errno slot.
    let saved = unsafe { *errno };

    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo (or null).
    if let Some(info) = unsafe { info.as_ref() } {
        let exited = matches!(
            info.si_code,
            libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED
        );
        if exited {
            let record = WakeRecord::Exited(siginfo_pid(info) as u32).encode();
            let (fd, listeners) = Route::pick();
            if fd >= 0 {
                // A full pipe just loses the pid; the dispatcher's peek
                // finds every exited child regardless.
                // SAFETY: `record` is a live local of `WakeRecord::LEN` bytes.
                let written = unsafe { libc::write(fd, record.as_ptr().cast(), record.len()) };
                if listeners && written == record.len() as isize {
                    // After the write, and only for a record that is there
                    // to be read: the count is compared with reads.
                    SENT_TO_LISTENERS.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    let previous = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: once non-null, PREVIOUS points to a leaked, never-freed sigaction.
    if let Some(prev) = unsafe { previous.as_ref() } {
        let handler = prev.sa_sigaction;
        let ours = on_sigchld as *const () as libc::sighandler_t;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN && handler != ours {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the host installed this as an SA_SIGINFO handler.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(handler) };
                f(signal, info, context);
            } else {
                // SAFETY: the host installed this as a plain handler.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                f(signal);
            }
        }
    }

    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// The calling thread's `errno` location, so the handler can preserve it.
fn errno_location() -> *mut libc::c_int {
    // SAFETY: these functions only return the address of the thread-local errno.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "redox"))]
        {
            libc::__errno_location()
        }
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        {
            libc::__error()
        }
        #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
        {
            libc::__errno()
        }
    }
}

#[cfg(all(test, not(brood_loom)))]
mod tests {
    use super::WakeRecord;

    #[test]
    fn records_round_trip() {
        for record in [
            WakeRecord::Exited(1),
            WakeRecord::Exited(i32::MAX as u32),
            WakeRecord::Dispatch,
            WakeRecord::Wake,
        ] {
            assert_eq!(WakeRecord::decode(record.encode()), record);
        }
        // Any negative value asks for a dispatch, as -1 does.
        assert_eq!(
            WakeRecord::decode((-7i32).to_ne_bytes()),
            WakeRecord::Dispatch
        );
    }
}
