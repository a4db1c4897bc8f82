//! The clock, this process's usage and the limits on live children, as the
//! workers measure them. `/proc`, `getrusage` and `getrlimit` are read
//! through `brood-testkit`, which the tests share.

use brood_testkit::limits::{self, Resource};
use brood_testkit::{procfs, rusage};
use std::io;

/// CLOCK_MONOTONIC in nanoseconds. Children use the same clock, so their
/// stamps compare directly with the parent's.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One `getrusage(RUSAGE_SELF)` reading: every thread of this process, no
/// children.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// User plus system CPU time, µs.
    pub cpu_us: f64,
    /// Voluntary context switches.
    pub nvcsw: f64,
    /// Involuntary context switches.
    pub nivcsw: f64,
    /// Peak resident set size of this process image so far, KiB: `VmHWM`
    /// of /proc/self/status. Not `ru_maxrss`: the kernel seeds that, at
    /// `execve`, with the high-water mark of the address space being
    /// replaced, which for a child started with `vfork` (as `posix_spawn`
    /// does) is the *parent's*, so a worker's `ru_maxrss` starts at the
    /// driver's peak (about 5 MiB, more than S3's children add at N = 2000).
    pub peak_rss_kib: f64,
}

pub fn usage() -> Usage {
    let ru = rusage::self_usage();
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    Usage {
        cpu_us: tv(ru.ru_utime) + tv(ru.ru_stime),
        nvcsw: ru.ru_nvcsw as f64,
        nivcsw: ru.ru_nivcsw as f64,
        peak_rss_kib: procfs::vm_hwm_kib().map_or(ru.ru_maxrss as f64, |kib| kib as f64),
    }
}

/// A measured phase: wall clock and rusage at its start.
pub struct Phase {
    start_ns: u64,
    start: Usage,
}

/// What a phase cost.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    pub wall_us: f64,
    pub cpu_us: f64,
    pub nvcsw: f64,
    pub nivcsw: f64,
}

impl Phase {
    pub fn start() -> Phase {
        let start = usage();
        Phase {
            start_ns: now_ns(),
            start,
        }
    }

    pub fn end(&self) -> Cost {
        let end_ns = now_ns();
        let end = usage();
        Cost {
            wall_us: (end_ns - self.start_ns) as f64 / 1e3,
            cpu_us: end.cpu_us - self.start.cpu_us,
            nvcsw: end.nvcsw - self.start.nvcsw,
            nivcsw: end.nivcsw - self.start.nivcsw,
        }
    }
}

/// Current resident set size (`VmRSS` in /proc/self/status), KiB.
pub fn vm_rss_kib() -> io::Result<f64> {
    procfs::vm_rss_kib()
        .map(|kib| kib as f64)
        .ok_or_else(|| io::Error::other("no VmRSS line in /proc/self/status"))
}

/// Exact resident set size, KiB: the `Rss:` line of /proc/self/smaps_rollup,
/// which walks the page tables. `VmRSS` and `VmHWM` come from per-CPU
/// counters that may lag by a few hundred KiB on recent kernels.
pub fn exact_rss_kib() -> io::Result<f64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup")?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Rss:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Rss line in /proc/self/smaps_rollup"))
}

/// Why `n` more live processes (each holding a pidfd in the parent) cannot
/// be had here, if they cannot.
pub fn live_children_blocker(n: u64) -> Option<String> {
    const MARGIN: u64 = 512;
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let nproc = limits::get(Resource::Processes).rlim_cur;
    if !root && nproc != libc::RLIM_INFINITY && nproc < n + MARGIN {
        return Some(format!(
            "RLIMIT_NPROC (ulimit -u) is {nproc}, below {n} children + {MARGIN} margin"
        ));
    }
    let running = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0);
    for (file, what) in [
        ("/proc/sys/kernel/pid_max", "pid_max"),
        ("/proc/sys/kernel/threads-max", "threads-max"),
    ] {
        if let Some(limit) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            if limit < running + n + MARGIN {
                return Some(format!(
                    "{what} is {limit}, below {running} running + {n} children + {MARGIN} margin"
                ));
            }
        }
    }
    let nofile_max = limits::get(Resource::OpenFiles).rlim_max;
    if nofile_max < n + MARGIN {
        return Some(format!(
            "hard RLIMIT_NOFILE is {nofile_max}, below {n} pidfds + {MARGIN} margin"
        ));
    }
    None
}

/// Ends this process with SIGALRM after `seconds` unless it has exited: a
/// worker that hangs cannot stall the driver.
pub fn watchdog(seconds: u32) {
    // SAFETY: alarm has no preconditions; SIGALRM's default action ends us.
    unsafe { libc::alarm(seconds) };
}

/// `_exit` without running destructors or atexit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}
