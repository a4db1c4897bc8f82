//! System calls the spawn tests need and brood does not: signal state,
//! a seccomp filter, per-thread CPU time.
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

/// Installs a seccomp filter on this thread (and the children it spawns;
/// no other thread) that fails every `clone3` with `errno` and allows
/// everything else, `clone` included (glibc's fork uses `clone`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn deny_clone3_on_this_thread(errno: i32) -> io::Result<()> {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    const OFFSET_NR: u32 = 0;
    const OFFSET_ARCH: u32 = 4;
    const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };

    let fail = libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA);
    let allow = libc::SECCOMP_RET_ALLOW;
    let filter = [
        // 0: another ABI: allow.
        op(LD, OFFSET_ARCH, 0, 0),
        op(JEQ, AUDIT_ARCH, 0, 3),
        // 2: clone3: fail.
        op(LD, OFFSET_NR, 0, 0),
        op(JEQ, libc::SYS_clone3 as u32, 0, 1),
        // 4:
        op(RET, fail, 0, 0),
        // 5:
        op(RET, allow, 0, 0),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: integer arguments; affects this thread only.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: `program` points to `filter`, which outlives the call (the
    // kernel copies it). No SECCOMP_FILTER_FLAG_TSYNC: this thread only.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &program as *const libc::sock_fprog,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
