//! The six scenarios: the libraries each one runs, the metrics each
//! reports, and how raw timings become those metrics (shared by every worker
//! so that all libraries are scored by the same arithmetic). Their
//! parameters are in `params.rs`.

use crate::params::S6;
use crate::report::Report;
use crate::stats;
use crate::sys::{Cost, Usage};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    S7,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::S1,
        Scenario::S2,
        Scenario::S3,
        Scenario::S4,
        Scenario::S5,
        Scenario::S6,
        Scenario::S7,
    ];

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.to_string().eq_ignore_ascii_case(s.trim()))
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::S1 => "sequential spawn + wait of /bin/true",
            Scenario::S2 => "burst of /bin/true, bounded in-flight",
            Scenario::S3 => "many live children (sleep_s each), spawned all then awaited",
            Scenario::S4 => "output() capture of head -c bytes /dev/zero",
            Scenario::S5 => "exit-to-wake latency",
            Scenario::S6 => "staggered exits: the SIGCHLD path at scale",
            Scenario::S7 => crate::s7::TITLE,
        }
    }

    /// The metrics shown for this scenario, in table order.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Scenario::S1 => &[
                WALL_US_PER_OP,
                CPU_US_PER_OP,
                NVCSW_PER_OP,
                Metric {
                    key: "parent_syscalls_per_op",
                    label: "parent syscalls/op (strace)",
                    decimals: 1,
                },
            ],
            Scenario::S2 => &[
                Metric {
                    key: "wall_us_per_child",
                    label: "µs/child",
                    decimals: 1,
                },
                CPU_US_PER_OP,
                NVCSW_PER_OP,
            ],
            Scenario::S3 => &[
                Metric {
                    key: "spawn_all_ms",
                    label: "spawn-all ms",
                    decimals: 1,
                },
                Metric {
                    key: "spawn_cpu_us_per_child",
                    label: "spawn CPU µs/child",
                    decimals: 1,
                },
                Metric {
                    key: "lag_ms",
                    label: "last-exit lag ms",
                    decimals: 2,
                },
                Metric {
                    key: "kib_per_child",
                    label: "parent KiB/live child (peak RSS)",
                    decimals: 2,
                },
                Metric {
                    key: "exact_spawned_kib_per_child",
                    label: "KiB/child spawned, no wait yet (smaps_rollup)",
                    decimals: 2,
                },
                Metric {
                    key: "exact_kib_per_child",
                    label: "KiB/child, waits started (smaps_rollup)",
                    decimals: 2,
                },
            ],
            Scenario::S4 => &[
                Metric {
                    key: "mb_per_s",
                    label: "MB/s",
                    decimals: 0,
                },
                Metric {
                    key: "cpu_ms_per_capture",
                    label: "parent CPU ms/capture",
                    decimals: 1,
                },
                Metric {
                    key: "peak_rss_over_payload",
                    label: "peak RSS / payload",
                    decimals: 3,
                },
            ],
            Scenario::S5 => &[
                Metric {
                    key: "p50_us",
                    label: "p50 µs",
                    decimals: 1,
                },
                Metric {
                    key: "p99_us",
                    label: "p99 µs",
                    decimals: 1,
                },
            ],
            Scenario::S7 => crate::s7::METRICS,
            Scenario::S6 => &[
                Metric {
                    key: "cpu_us_per_child",
                    label: "parent CPU µs/child",
                    decimals: 1,
                },
                Metric {
                    key: "reap_cpu_us_per_child",
                    label: "reap-phase CPU µs/child",
                    decimals: 1,
                },
                Metric {
                    key: "lag_p50_us",
                    label: "lag p50 µs",
                    decimals: 0,
                },
                Metric {
                    key: "lag_max_ms",
                    label: "lag max ms",
                    decimals: 2,
                },
                Metric {
                    key: "wait4_per_child",
                    label: "wait4/child",
                    decimals: 2,
                },
                Metric {
                    key: "waitid_per_child",
                    label: "waitid/child",
                    decimals: 2,
                },
                Metric {
                    key: "waitpid_per_child",
                    label: "wait4+waitid/child",
                    decimals: 2,
                },
                Metric {
                    key: "self_wait_calls_per_child",
                    label: "wait calls/child, no tracer (brood's own count)",
                    decimals: 3,
                },
            ],
        }
    }

    /// The libraries compared; the first is the baseline of the ratios.
    pub fn libs(self) -> &'static [Lib] {
        match self {
            // The sequential scenarios also run on a current-thread runtime,
            // which tells the runtime's thread hand-offs from the library.
            Scenario::S1 | Scenario::S5 => &[
                Lib::Std,
                Lib::BroodPidfd,
                Lib::BroodSignal,
                Lib::Tokio,
                Lib::AsyncProcess,
                Lib::BroodPidfdCt,
                Lib::BroodSignalCt,
                Lib::TokioCt,
            ],
            Scenario::S7 => crate::s7::LIBS,
            _ => &[
                Lib::Std,
                Lib::BroodPidfd,
                Lib::BroodSignal,
                Lib::Tokio,
                Lib::AsyncProcess,
            ],
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A column of a scenario's table.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub decimals: usize,
}

/// Wall time per spawn + wait (S1, S7).
pub const WALL_US_PER_OP: Metric = Metric {
    key: "wall_us_per_op",
    label: "wall µs/op",
    decimals: 1,
};
/// The parent's CPU (user + system, every thread) per spawn + wait (S1, S2, S7).
pub const CPU_US_PER_OP: Metric = Metric {
    key: "cpu_us_per_op",
    label: "parent CPU µs/op",
    decimals: 1,
};
/// The parent's voluntary context switches per spawn + wait (S1, S2, S7).
pub const NVCSW_PER_OP: Metric = Metric {
    key: "nvcsw_per_op",
    label: "vol. csw/op",
    decimals: 2,
};

/// The process-spawning libraries under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lib {
    /// `std::process::Command::spawn` + blocking `wait`, one thread.
    Std,
    BroodPidfd,
    BroodSignal,
    Tokio,
    AsyncProcess,
    BroodPidfdCt,
    BroodSignalCt,
    TokioCt,
}

/// Which Tokio runtime a Tokio-based worker builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    MultiThread,
    CurrentThread,
}

impl Lib {
    const ALL: [Lib; 8] = [
        Lib::Std,
        Lib::BroodPidfd,
        Lib::BroodSignal,
        Lib::Tokio,
        Lib::AsyncProcess,
        Lib::BroodPidfdCt,
        Lib::BroodSignalCt,
        Lib::TokioCt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Lib::Std => "std",
            Lib::BroodPidfd => "brood-pidfd",
            Lib::BroodSignal => "brood-signal",
            Lib::Tokio => "tokio",
            Lib::AsyncProcess => "async-process",
            Lib::BroodPidfdCt => "brood-pidfd-ct",
            Lib::BroodSignalCt => "brood-signal-ct",
            Lib::TokioCt => "tokio-ct",
        }
    }

    pub fn parse(s: &str) -> Option<Lib> {
        Lib::ALL.into_iter().find(|l| l.name() == s)
    }

    /// The `BROOD_REAPER` value a brood worker runs with.
    pub fn brood_reaper(self) -> Option<&'static str> {
        match self {
            Lib::BroodPidfd | Lib::BroodPidfdCt => Some("pidfd"),
            Lib::BroodSignal | Lib::BroodSignalCt => Some("signal"),
            _ => None,
        }
    }

    pub fn flavor(self) -> Flavor {
        match self {
            Lib::BroodPidfdCt | Lib::BroodSignalCt | Lib::TokioCt => Flavor::CurrentThread,
            _ => Flavor::MultiThread,
        }
    }

    /// Whether S6 runs this library with `pidfd_open` denied by seccomp, so
    /// that its own SIGCHLD fallback is measured.
    pub fn s6_denies_pidfd(self) -> bool {
        matches!(self, Lib::Tokio | Lib::AsyncProcess)
    }

    /// The row label in tables.
    pub fn label(self, scenario: Scenario) -> String {
        let base = match self {
            Lib::Std => "raw std (spawn + blocking wait)",
            Lib::BroodPidfd => "brood, BROOD_REAPER=pidfd",
            Lib::BroodSignal => "brood, BROOD_REAPER=signal",
            Lib::Tokio => "tokio::process",
            Lib::AsyncProcess => "async-process",
            Lib::BroodPidfdCt => "brood pidfd, current-thread rt",
            Lib::BroodSignalCt => "brood signal, current-thread rt",
            Lib::TokioCt => "tokio::process, current-thread rt",
        };
        if scenario == Scenario::S6 && self.s6_denies_pidfd() {
            format!("{base} (pidfd_open denied)")
        } else if scenario == Scenario::S4 && self == Lib::Std {
            "raw std Command::output()".to_owned()
        } else {
            base.to_owned()
        }
    }
}

// ---- raw measurements to metrics -------------------------------------------

/// S1 and S2: `n` operations in `cost`.
pub fn per_op_report(scenario: Scenario, n: u64, cost: Cost) -> Report {
    let n = n as f64;
    let mut r = Report::default();
    let wall_key = if scenario == Scenario::S2 {
        "wall_us_per_child"
    } else {
        "wall_us_per_op"
    };
    r.set(wall_key, cost.wall_us / n);
    r.set("cpu_us_per_op", cost.cpu_us / n);
    r.set("nvcsw_per_op", cost.nvcsw / n);
    r.set("nivcsw_per_op", cost.nivcsw / n);
    r
}

/// S3's raw figures.
pub struct LiveChildren {
    pub n: u64,
    pub sleep_s: u64,
    /// The spawn loop.
    pub spawn: Cost,
    /// Clock when the last `spawn()` returned.
    pub spawn_end_ns: u64,
    /// Clock when the last wait resolved.
    pub last_resolved_ns: u64,
    pub rss_before_kib: f64,
    pub after: Usage,
    /// Exact RSS before spawning and with every child spawned and awaited
    /// (waits started, none resolved yet).
    pub exact_before_kib: f64,
    pub exact_live_kib: f64,
    /// Exact RSS right after the spawn loop, before any wait started.
    pub exact_spawned_kib: f64,
}

impl LiveChildren {
    pub fn report(&self) -> Report {
        let n = self.n as f64;
        let mut r = Report::default();
        r.set("spawn_all_ms", self.spawn.wall_us / 1e3);
        r.set("spawn_cpu_us_per_child", self.spawn.cpu_us / n);
        let expected_last_exit = self.spawn_end_ns + self.sleep_s * 1_000_000_000;
        r.set(
            "lag_ms",
            (self.last_resolved_ns as f64 - expected_last_exit as f64) / 1e6,
        );
        r.set(
            "kib_per_child",
            (self.after.peak_rss_kib - self.rss_before_kib) / n,
        );
        r.set(
            "exact_kib_per_child",
            (self.exact_live_kib - self.exact_before_kib) / n,
        );
        r.set(
            "exact_spawned_kib_per_child",
            (self.exact_spawned_kib - self.exact_before_kib) / n,
        );
        r.set("rss_before_kib", self.rss_before_kib);
        r.set("peak_rss_kib", self.after.peak_rss_kib);
        r
    }
}

/// S4: one (wall µs, CPU µs) pair per capture.
pub fn capture_report(bytes: u64, captures: &[(f64, f64)], after: Usage) -> Report {
    let rates: Vec<f64> = captures
        .iter()
        .map(|(wall_us, _)| bytes as f64 / *wall_us) // bytes/µs = MB/s
        .collect();
    let cpu: Vec<f64> = captures.iter().map(|(_, cpu)| cpu / 1e3).collect();
    let mut r = Report::default();
    r.set("mb_per_s", stats::median(&rates).unwrap_or(f64::NAN));
    r.set(
        "cpu_ms_per_capture",
        stats::median(&cpu).unwrap_or(f64::NAN),
    );
    r.set("peak_rss_kib", after.peak_rss_kib);
    r.set(
        "peak_rss_over_payload",
        after.peak_rss_kib * 1024.0 / bytes as f64,
    );
    r
}

/// S5: exit-to-wake latencies in ns.
pub fn latency_report(latencies_ns: &[f64]) -> Report {
    let us: Vec<f64> = latencies_ns.iter().map(|x| x / 1e3).collect();
    let mut r = Report::default();
    r.set("p50_us", stats::percentile(&us, 50.0).unwrap_or(f64::NAN));
    r.set("p99_us", stats::percentile(&us, 99.0).unwrap_or(f64::NAN));
    r.set("max_us", stats::percentile(&us, 100.0).unwrap_or(f64::NAN));
    r
}

/// S6's raw figures.
pub struct Staggered {
    pub n: u64,
    /// Spawning every child and starting its wait.
    pub spawn: Cost,
    /// From before the first spawn to the last wait resolved.
    pub total: Cost,
    /// From the release of the children to the last wait resolved.
    pub reap: Cost,
    /// Per child: wait resolved minus the child's exit deadline, ns.
    pub lags_ns: Vec<f64>,
    /// `wait4`/`waitid` calls the library itself counted over the whole
    /// run, where it can (brood: `brood::test_hooks::wait_calls`).
    pub self_wait_calls: Option<u64>,
}

impl Staggered {
    pub fn report(&self) -> Report {
        let n = self.n as f64;
        let mut r = Report::default();
        r.set("spawn_cpu_us_per_child", self.spawn.cpu_us / n);
        r.set("cpu_us_per_child", self.total.cpu_us / n);
        r.set("reap_cpu_us_per_child", self.reap.cpu_us / n);
        r.set("reap_nvcsw_per_child", self.reap.nvcsw / n);
        if let Some(calls) = self.self_wait_calls {
            r.set("self_wait_calls_per_child", calls as f64 / n);
        }
        let us: Vec<f64> = self.lags_ns.iter().map(|x| x / 1e3).collect();
        r.set(
            "lag_p50_us",
            stats::percentile(&us, 50.0).unwrap_or(f64::NAN),
        );
        r.set(
            "lag_max_ms",
            stats::percentile(&us, 100.0).unwrap_or(f64::NAN) / 1e3,
        );
        r
    }
}

/// S6: child `i` of `p.n` exits this long after the release.
pub fn stagger_offset_ns(p: &S6, i: u64) -> u64 {
    let delay_ns = p.delay_ms * 1_000_000;
    let stagger_ns = p.stagger_ms * 1_000_000;
    delay_ns + stagger_ns * i / p.n.max(1)
}
