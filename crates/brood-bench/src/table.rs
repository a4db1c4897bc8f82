//! The markdown report: the targets, then one table of medians per case.

use crate::driver::{size_label, CaseResult, Run};
use crate::params::Case;
use crate::scenarios::{Lib, Metric, Scenario};
use std::fmt::Write;

pub fn render(run: &Run) -> String {
    let mut s = String::new();
    let o = &run.options;
    let _ = writeln!(s, "# brood-bench results\n");
    let _ = writeln!(
        s,
        "Produced by `{}` (mode {}): {} repetition(s) per (library, case), each in its own \
         worker process, library order reversed on every other repetition. Every figure is \
         the median over repetitions; `(1.05×)` is its ratio to the raw std row of the same \
         table. Run time {:.0} s.\n",
        o.command,
        o.mode.name(),
        run.reps,
        run.elapsed_s
    );
    let _ = writeln!(s, "Machine: {}\n", machine());
    let _ = writeln!(
        s,
        "Load average (1 min) at start {} and at end {} (/proc/loadavg; the machine is shared).\n",
        run.load_start, run.load_end
    );
    let _ = writeln!(s, "brood source: {}\n", brood_source());
    render_targets(&mut s, run);
    for (case, result) in &run.cases {
        render_case(&mut s, case, result);
    }
    if run.failures > 0 {
        let _ = writeln!(
            s,
            "**{} worker run(s) failed; see the notes above.**",
            run.failures
        );
    }
    s
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// The brood sources this binary was built from (see build.rs).
fn brood_source() -> &'static str {
    env!("BROOD_BENCH_SOURCE")
}

/// `nproc`, `uname -r` and the CPU model.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    // SAFETY: all-zero is a valid utsname, which uname fills.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is valid and writable.
    let release = if unsafe { libc::uname(&mut uts) } == 0 {
        // SAFETY: uname NUL-terminates the field.
        unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        "unknown".into()
    };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("nproc {cpus}, Linux {release} (`uname -r`), CPU \"{model}\" (/proc/cpuinfo)")
}

fn fmt_value(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

fn fmt_ratio(v: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 && v.is_finite() => format!(" ({:.2}×)", v / b),
        _ => String::new(),
    }
}

fn render_case(s: &mut String, case: &Case, result: &CaseResult) {
    let _ = writeln!(
        s,
        "## {} — {} ({})\n",
        case.scenario(),
        case.scenario().title(),
        size_label(case)
    );
    let _ = writeln!(
        s,
        "Worker command (run by the driver; `<lib>` is each row): `{}`\n",
        generic_command(case)
    );
    if let Some(why) = &result.skipped {
        let _ = writeln!(s, "Skipped: {why}.\n");
        return;
    }
    let metrics: Vec<&Metric> = case
        .scenario()
        .metrics()
        .iter()
        .filter(|m| result.samples.values().any(|per| per.contains_key(m.key)))
        .collect();
    let _ = write!(s, "| library |");
    for m in &metrics {
        let _ = write!(s, " {} |", m.label);
    }
    let _ = write!(s, "\n|---|");
    for _ in &metrics {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s);
    for &lib in case.scenario().libs() {
        let _ = write!(s, "| {} |", lib.label(case.scenario()));
        for m in &metrics {
            match result.median(lib, m.key) {
                Some(v) => {
                    let base = result.median(Lib::Std, m.key);
                    let _ = write!(s, " {}{} |", fmt_value(v, m.decimals), fmt_ratio(v, base));
                }
                None => {
                    let _ = write!(s, " n/a |");
                }
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s);
    for note in &result.notes {
        let _ = writeln!(s, "- {note}");
    }
    if !result.notes.is_empty() {
        let _ = writeln!(s);
    }
}

fn generic_command(case: &Case) -> String {
    let mut params = case.to_args().join(" ");
    if case.scenario() == Scenario::S6 {
        params += " [deny_pidfd=1 for tokio and async-process]";
    }
    format!(
        "[BROOD_REAPER=pidfd|signal] brood-bench worker <lib> {} {params}",
        case.scenario()
    )
}

/// A verdict cell.
fn verdict(text: String, met: bool) -> String {
    if met {
        format!("{text} — met")
    } else {
        format!("{text} — **missed**")
    }
}

struct Row {
    target: &'static str,
    case: String,
    pidfd: String,
    signal: String,
}

fn render_targets(s: &mut String, run: &Run) {
    let mut rows: Vec<Row> = Vec::new();
    let na = || "n/a".to_owned();
    let brood = [Lib::BroodPidfd, Lib::BroodSignal];
    let mut s6_cpu: Vec<(u64, Option<f64>, Option<f64>)> = Vec::new();
    for (case, r) in &run.cases {
        if r.skipped.is_some() {
            continue;
        }
        let label = format!("{} {}", case.scenario(), size_label(case));
        let ratio = |lib: Lib, key: &str| -> Option<f64> {
            Some(r.median(lib, key)? / r.median(Lib::Std, key)?)
        };
        let mut push = |target: &'static str, f: &dyn Fn(Lib) -> Option<String>| {
            let cells: Vec<String> = brood.iter().map(|&l| f(l).unwrap_or_else(na)).collect();
            rows.push(Row {
                target,
                case: label.clone(),
                pidfd: cells[0].clone(),
                signal: cells[1].clone(),
            });
        };
        match case.scenario() {
            Scenario::S1 => {
                push("parent CPU ≤ 1.10× raw std", &|l| {
                    ratio(l, "cpu_us_per_op").map(|x| verdict(format!("{x:.2}×"), x <= 1.10))
                });
                push("vol. context switches/op ≤ 2.0", &|l| {
                    r.median(l, "nvcsw_per_op")
                        .map(|x| verdict(format!("{x:.2}/op"), x <= 2.0))
                });
            }
            Scenario::S2 => push("µs/child ≤ 1.0× raw std", &|l| {
                ratio(l, "wall_us_per_child").map(|x| verdict(format!("{x:.2}×"), x <= 1.0))
            }),
            Scenario::S3 => {
                push("spawn-all time ≤ 1.05× raw std", &|l| {
                    ratio(l, "spawn_all_ms").map(|x| verdict(format!("{x:.2}×"), x <= 1.05))
                });
                push("parent memory per live child ≤ 1 KiB", &|l| {
                    r.median(l, "kib_per_child")
                        .map(|x| verdict(format!("{x:.2} KiB"), x <= 1.0))
                });
            }
            Scenario::S4 => {
                push("throughput ≥ 1.0× std output()", &|l| {
                    ratio(l, "mb_per_s").map(|x| verdict(format!("{x:.2}×"), x >= 1.0))
                });
                push("peak RSS ≤ 1.05× payload", &|l| {
                    r.median(l, "peak_rss_over_payload")
                        .map(|x| verdict(format!("{x:.3}× payload"), x <= 1.05))
                });
            }
            Scenario::S5 => push("p50 exit-to-wake ≤ raw std + 10 µs", &|l| {
                let d = r.median(l, "p50_us")? - r.median(Lib::Std, "p50_us")?;
                let x = ratio(l, "p50_us")?;
                Some(verdict(format!("{x:.2}× (raw {d:+.1} µs)"), d <= 10.0))
            }),
            Scenario::S6 => {
                let pid = r.median(Lib::BroodPidfd, "cpu_us_per_child");
                let sig = r.median(Lib::BroodSignal, "cpu_us_per_child");
                s6_cpu.push((case.n().unwrap_or(0), pid, sig));
                push("parent CPU/child ≤ 1.5× brood's pidfd path", &|l| {
                    let x = r.median(l, "cpu_us_per_child")? / pid?;
                    Some(if l == Lib::BroodPidfd {
                        "reference (1.00×)".to_owned()
                    } else {
                        verdict(format!("{x:.2}×"), x <= 1.5)
                    })
                });
                push("wait4 + waitid calls/child ≤ 2 (under strace -f)", &|l| {
                    r.median(l, "waitpid_per_child")
                        .map(|x| verdict(format!("{x:.3}/child"), x <= 2.0))
                });
                push(
                    "wait4 + waitid calls/child ≤ 2 (no tracer; brood's own count)",
                    &|l| {
                        r.median(l, "self_wait_calls_per_child")
                            .map(|x| verdict(format!("{x:.3}/child"), x <= 2.0))
                    },
                );
            }
        }
    }
    if s6_cpu.len() >= 2 {
        let first = s6_cpu[0];
        let last = s6_cpu[s6_cpu.len() - 1];
        let growth = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
            _ => na(),
        };
        rows.push(Row {
            target: "S6 parent CPU/child flat in N (informational: largest N ÷ smallest N)",
            case: format!("S6 n={} vs n={}", last.0, first.0),
            pidfd: growth(first.1, last.1),
            signal: growth(first.2, last.2),
        });
    }
    let _ = writeln!(s, "## Targets (brood)\n");
    let _ = writeln!(
        s,
        "| target | case | brood pidfd | brood signal |\n|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            row.target, row.case, row.pidfd, row.signal
        );
    }
    let _ = writeln!(s);
}
