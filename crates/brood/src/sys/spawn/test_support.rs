//! System calls the spawn tests need and brood does not: signal state and
//! per-thread CPU time (the seccomp filter is brood-testkit's).
//!
//! Owns: test-only system calls. Calls nothing.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Restores this thread's signal mask on drop.
pub(crate) struct MaskGuard(libc::sigset_t);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        // SAFETY: restoring a mask read by pthread_sigmask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Blocks `signals` on this thread until the guard drops.
pub(crate) fn block_on_this_thread(signals: &[i32]) -> io::Result<MaskGuard> {
    // SAFETY: zeroed sigsets are valid values to initialise.
    let (mut set, mut old) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &sig in signals {
        // SAFETY: as above.
        cvt(unsafe { libc::sigaddset(&mut set, sig) })?;
    }
    // SAFETY: both sets are valid for the call.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(MaskGuard(old))
}

/// Restores a signal's disposition on drop.
pub(crate) struct DispositionGuard {
    signal: i32,
    old: libc::sigaction,
}

impl Drop for DispositionGuard {
    fn drop(&mut self) {
        // SAFETY: restoring a disposition read by sigaction.
        unsafe { libc::sigaction(self.signal, &self.old, std::ptr::null_mut()) };
    }
}

/// How many times [`count_handler`] ran in this process.
static HANDLER_RUNS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_handler(_: libc::c_int) {
    HANDLER_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// How many times a handler installed by [`catch`] ran, in this process or
/// (were it to happen) in a child sharing its memory.
pub(crate) fn handler_runs() -> u32 {
    HANDLER_RUNS.load(Ordering::SeqCst)
}

fn set_disposition(signal: i32, handler: libc::sighandler_t) -> io::Result<DispositionGuard> {
    // SAFETY: zeroed sigactions are valid values; we fill the fields used.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    // SAFETY: zeroed is a valid sigaction to write into.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both structs are valid for the call.
    cvt(unsafe { libc::sigaction(signal, &action, &mut old) })?;
    Ok(DispositionGuard { signal, old })
}

/// Ignores `signal` in this process until the guard drops.
pub(crate) fn ignore(signal: i32) -> io::Result<DispositionGuard> {
    set_disposition(signal, libc::SIG_IGN)
}

/// Catches `signal` with a counting handler until the guard drops.
pub(crate) fn catch(signal: i32) -> io::Result<DispositionGuard> {
    set_disposition(signal, count_handler as *const () as libc::sighandler_t)
}

/// `kill(2)`.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: no memory is involved.
    cvt(unsafe { libc::kill(pid as libc::pid_t, signal) })
}

/// Whether descriptor `fd` is open with close-on-exec; `true` for a
/// closed one (nothing to inherit).
pub(crate) fn is_cloexec(fd: i32) -> bool {
    // SAFETY: F_GETFD on any integer is harmless.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags == -1 || flags & libc::FD_CLOEXEC != 0
}

/// `geteuid(2)`.
pub(crate) fn is_root() -> bool {
    // SAFETY: no arguments, no failure.
    unsafe { libc::geteuid() == 0 }
}

/// This thread's CPU time so far (`CLOCK_THREAD_CPUTIME_ID`: user plus
/// system, what `getrusage(RUSAGE_THREAD)` reports, at nanosecond
/// resolution).
pub(crate) fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is writable for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
