//! Resource usage of an exited child, collected with its exit status.
//!
//! Owns: [`ResourceUsage`]. Calls: `sys::process` (the raw `rusage`, the
//! platform's unit of `ru_maxrss`).

use crate::sys;
use crate::sys::process::RawRusage;
use std::time::Duration;

/// What an exited child consumed, as the kernel reported it together with the
/// exit status (`wait4(2)`, or `waitid(2)` with its rusage argument).
///
/// brood never derives these numbers from `getrusage(RUSAGE_CHILDREN)`, which
/// mixes all reaped children together; each value here belongs to one child
/// alone (and to any descendants it waited for itself).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let mut child = brood::Command::new("sh").args(["-c", "echo hi"]).spawn()?;
/// let (status, usage) = child.wait_with_rusage().await?;
/// println!("{status}: {:?} user, {} bytes peak RSS", usage.user_time(), usage.max_rss());
/// assert_eq!(child.resource_usage(), Some(usage));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ResourceUsage {
    user: Duration,
    system: Duration,
    max_rss: u64,
    minor_faults: u64,
    major_faults: u64,
    voluntary_switches: u64,
    involuntary_switches: u64,
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

impl ResourceUsage {
    pub(crate) fn from_raw(raw: &RawRusage) -> Self {
        // Linux and the BSDs report ru_maxrss in KiB; macOS reports bytes.
        let max_rss = (raw.ru_maxrss.max(0) as u64) * sys::process::MAX_RSS_UNIT;
        Self {
            user: timeval(raw.ru_utime),
            system: timeval(raw.ru_stime),
            max_rss,
            minor_faults: raw.ru_minflt.max(0) as u64,
            major_faults: raw.ru_majflt.max(0) as u64,
            voluntary_switches: raw.ru_nvcsw.max(0) as u64,
            involuntary_switches: raw.ru_nivcsw.max(0) as u64,
        }
    }

    /// CPU time spent in user mode.
    pub fn user_time(&self) -> Duration {
        self.user
    }

    /// CPU time spent in the kernel on the child's behalf.
    pub fn system_time(&self) -> Duration {
        self.system
    }

    /// Peak resident set size, in bytes.
    pub fn max_rss(&self) -> u64 {
        self.max_rss
    }

    /// Page faults served without I/O.
    pub fn minor_faults(&self) -> u64 {
        self.minor_faults
    }

    /// Page faults that needed I/O.
    pub fn major_faults(&self) -> u64 {
        self.major_faults
    }

    /// Times the child gave up the CPU voluntarily (it blocked).
    pub fn voluntary_context_switches(&self) -> u64 {
        self.voluntary_switches
    }

    /// Times the child was preempted.
    pub fn involuntary_context_switches(&self) -> u64 {
        self.involuntary_switches
    }
}
