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
        // Against tokio::process on the same runtime flavour as `lib`.
        let vs_tokio = |lib: Lib, key: &str| -> Option<f64> {
            let tokio = match lib {
                Lib::BroodPidfdCt | Lib::BroodSignalCt => Lib::TokioCt,
                _ => Lib::Tokio,
            };
            Some(r.median(lib, key)? / r.median(tokio, key)?)
        };
        let mut push_for =
            |target: &'static str, libs: [Lib; 2], f: &dyn Fn(Lib) -> Option<String>| {
                let cells: Vec<String> = libs.iter().map(|&l| f(l).unwrap_or_else(na)).collect();
                rows.push(Row {
                    target,
                    case: label.clone(),
                    pidfd: cells[0].clone(),
                    signal: cells[1].clone(),
                });
            };
        let ct = [Lib::BroodPidfdCt, Lib::BroodSignalCt];
        // Issue 15's targets: against tokio::process on the same runtime.
        let at_most_tokio = |key: &'static str, limit: f64| {
            move |l: Lib| vs_tokio(l, key).map(|x| verdict(format!("{x:.2}× tokio"), x <= limit))
        };
        match case.scenario() {
            Scenario::S1 => {
                let cpu = at_most_tokio("cpu_us_per_op", 0.85);
                push_for("parent CPU ≤ 0.85× tokio (multi-thread rt)", brood, &cpu);
                push_for("parent CPU ≤ 0.85× tokio (current-thread rt)", ct, &cpu);
                push_for(
                    "parent CPU ≤ 1.4× raw std (current-thread rt)",
                    ct,
                    &|l| {
                        ratio(l, "cpu_us_per_op").map(|x| verdict(format!("{x:.2}× std"), x <= 1.4))
                    },
                );
                push_for("vol. csw/op below tokio's (multi-thread rt)", brood, &|l| {
                    let x = r.median(l, "nvcsw_per_op")?;
                    let t = r.median(Lib::Tokio, "nvcsw_per_op")?;
                    Some(verdict(format!("{x:.2} (tokio {t:.2})"), x < t))
                });
                push_for("vol. csw/op ≤ 2.0 (current-thread rt)", ct, &|l| {
                    r.median(l, "nvcsw_per_op")
                        .map(|x| verdict(format!("{x:.2}/op"), x <= 2.0))
                });
            }
            Scenario::S2 => push_for(
                "µs/child ≤ 1.0× tokio",
                brood,
                &at_most_tokio("wall_us_per_child", 1.0),
            ),
            Scenario::S3 => {
                push_for(
                    "spawn CPU/child ≤ tokio's",
                    brood,
                    &at_most_tokio("spawn_cpu_us_per_child", 1.0),
                );
                push_for(
                    "memory/live child with a waiting task ≤ tokio's (smaps_rollup)",
                    brood,
                    &at_most_tokio("exact_kib_per_child", 1.0),
                );
            }
            Scenario::S4 => {
                push_for("throughput ≥ 1.0× std output()", brood, &|l| {
                    ratio(l, "mb_per_s").map(|x| verdict(format!("{x:.2}×"), x >= 1.0))
                });
                push_for("peak RSS ≤ 1.05× payload", brood, &|l| {
                    r.median(l, "peak_rss_over_payload")
                        .map(|x| verdict(format!("{x:.3}× payload"), x <= 1.05))
                });
            }
            Scenario::S5 => {
                for key in ["p50_us", "p99_us"] {
                    let label = if key == "p50_us" {
                        [
                            "p50 ≤ tokio's (multi-thread rt)",
                            "p50 ≤ tokio's (current-thread rt)",
                        ]
                    } else {
                        [
                            "p99 ≤ tokio's (multi-thread rt)",
                            "p99 ≤ tokio's (current-thread rt)",
                        ]
                    };
                    let f = at_most_tokio(key, 1.0);
                    push_for(label[0], brood, &f);
                    push_for(label[1], ct, &f);
                }
                push_for("p50 ≤ raw std + 25 µs (current-thread rt)", ct, &|l| {
                    let d = r.median(l, "p50_us")? - r.median(Lib::Std, "p50_us")?;
                    Some(verdict(format!("raw {d:+.1} µs"), d <= 25.0))
                });
            }
            Scenario::S7 => push_for("throughput ≥ tokio's", brood, &|l| {
                vs_tokio(l, "ops_per_s").map(|x| verdict(format!("{x:.2}× tokio"), x >= 1.0))
            }),
            Scenario::S6 => {
                let pid = r.median(Lib::BroodPidfd, "cpu_us_per_child");
                let sig = r.median(Lib::BroodSignal, "cpu_us_per_child");
                s6_cpu.push((case.n().unwrap_or(0), pid, sig));
                push_for(
                    "parent CPU/child ≤ 1.5× brood's pidfd path",
                    brood,
                    &|l| {
                        let x = r.median(l, "cpu_us_per_child")? / pid?;
                        Some(if l == Lib::BroodPidfd {
                            "reference (1.00×)".to_owned()
                        } else {
                            verdict(format!("{x:.2}×"), x <= 1.5)
                        })
                    },
                );
                for (label, metric) in [
                    (
                        "wait4 + waitid calls/child ≤ 2 (under strace -f)",
                        "waitpid_per_child",
                    ),
                    (
                        "wait4 + waitid calls/child ≤ 2 (no tracer; brood's own count)",
                        "self_wait_calls_per_child",
                    ),
                ] {
                    push_for(label, brood, &|l| {
                        r.median(l, metric)
                            .map(|x| verdict(format!("{x:.3}/child"), x <= 2.0))
                    });
                }
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
