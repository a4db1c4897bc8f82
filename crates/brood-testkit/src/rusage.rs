//! This process's resource usage (`getrusage(RUSAGE_SELF)`): every thread,
//! no children.

use std::time::Duration;

/// One `getrusage(RUSAGE_SELF)` reading.
pub fn self_usage() -> libc::rusage {
    // SAFETY: all-zero is a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    usage
}

/// A `timeval` as a duration.
pub fn duration(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

/// CPU time (user plus system) this process has used so far, all threads.
pub fn cpu_time() -> Duration {
    let usage = self_usage();
    duration(usage.ru_utime) + duration(usage.ru_stime)
}
