//! Driver mode: plans the cases, runs every (library, case) in its own
//! worker process, alternating the library order between repetitions, and
//! collects the medians.

use crate::params::{Case, WorkerOptions, S1, S2, S3, S4, S5, S6, S7};
use crate::report::Report;
use crate::scenarios::{Lib, Scenario};
use crate::stats;
use crate::sys;
use crate::table;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Smoke,
    Quick,
    Full,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    fn reps(self) -> usize {
        match self {
            Mode::Smoke => 1,
            Mode::Quick => 3,
            Mode::Full => 5,
        }
    }
}

#[derive(Debug)]
pub struct Options {
    pub mode: Mode,
    pub only: Option<Vec<Scenario>>,
    pub markdown: Option<PathBuf>,
    pub strace: bool,
    pub reps: Option<usize>,
    /// Whether S8 (contained spawn, `contained.rs`) runs.
    pub s8: bool,
    /// The command line as typed, for the report.
    pub command: String,
}

fn plan(mode: Mode) -> Vec<Case> {
    match mode {
        Mode::Smoke => vec![
            Case::S1(S1 { n: 20 }),
            Case::S2(S2 { n: 40, inflight: 8 }),
            Case::S3(S3 { n: 20, sleep_s: 1 }),
            Case::S4(S4 {
                bytes: 4 << 20,
                captures: 3,
            }),
            Case::S5(S5 { runs: 20 }),
            Case::S6(S6 {
                n: 20,
                delay_ms: 50,
                stagger_ms: 200,
            }),
            Case::S7(S7 {
                n: 16,
                tasks: 8,
                threads: 0,
            }),
            Case::S7(S7 {
                n: 16,
                tasks: 0,
                threads: 4,
            }),
        ],
        // The defaults, and more sizes for the scenarios whose point is
        // scale.
        Mode::Full => {
            let mut cases = vec![
                Case::S1(S1::default()),
                Case::S2(S2::default()),
                Case::S3(S3::default()),
                Case::S3(S3 {
                    n: 10000,
                    ..S3::default()
                }),
                Case::S4(S4::default()),
                Case::S5(S5::default()),
            ];
            for n in [500, 1000, 2000, 4000] {
                cases.push(Case::S6(S6 { n, ..S6::default() }));
            }
            cases.extend(crate::s7::cases(S7::default().n));
            cases
        }
        // The same scenarios at sizes that fit in about two minutes on this
        // machine with 3 repetitions. Per-op and per-child figures do not
        // depend on the count; S3 and S6 keep two of their defining
        // properties (many children alive at once; one SIGCHLD per exit, two
        // sizes to show flatness in N) at a shorter sleep and stagger.
        Mode::Quick => {
            let mut cases = vec![
                Case::S1(S1 { n: 500 }),
                Case::S2(S2 {
                    n: 1000,
                    ..S2::default()
                }),
                Case::S3(S3 {
                    n: 1000,
                    sleep_s: 1,
                }),
                Case::S4(S4 {
                    bytes: 134_217_728,
                    ..S4::default()
                }),
                Case::S5(S5 { runs: 300 }),
            ];
            for n in [250, 1000] {
                cases.push(Case::S6(S6 {
                    n,
                    delay_ms: 100,
                    stagger_ms: 1000,
                }));
            }
            cases.extend(crate::s7::cases(800));
            cases
        }
    }
}

/// "n=2000" and friends: the size that tells a case from its siblings.
pub fn size_label(case: &Case) -> String {
    case.to_args().join(" ")
}

/// The worker options for `lib` in `case`: S6 denies pidfds to the
/// libraries whose own SIGCHLD fallback it measures.
fn options_for(case: &Case, lib: Lib) -> WorkerOptions {
    WorkerOptions {
        deny_pidfd: case.scenario() == Scenario::S6 && lib.s6_denies_pidfd(),
        ..WorkerOptions::default()
    }
}

/// Everything measured for one case.
#[derive(Debug, Default)]
pub struct CaseResult {
    /// lib → metric → one sample per repetition.
    pub samples: BTreeMap<Lib, BTreeMap<String, Vec<f64>>>,
    pub notes: Vec<String>,
    pub skipped: Option<String>,
}

impl CaseResult {
    pub fn median(&self, lib: Lib, key: &str) -> Option<f64> {
        stats::median(self.samples.get(&lib)?.get(key)?)
    }

    fn add(&mut self, lib: Lib, report: &Report) {
        let per_lib = self.samples.entry(lib).or_default();
        for (k, v) in &report.metrics {
            per_lib.entry(k.clone()).or_default().push(*v);
        }
        for note in &report.notes {
            let note = format!("{}: {note}", lib.name());
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
    }
}

pub struct Run {
    pub options: Options,
    pub reps: usize,
    pub cases: Vec<(Case, CaseResult)>,
    pub failures: usize,
    pub elapsed_s: f64,
    pub load_start: String,
    pub load_end: String,
}

pub fn main(options: Options) -> io::Result<bool> {
    let exe = std::env::current_exe()?;
    let reps = options.reps.unwrap_or(options.mode.reps()).max(1);
    let started = Instant::now();
    let load_start = table::load_average();
    let mut cases = Vec::new();
    let mut failures = 0;
    let strace_ok = options.strace && strace_available();
    for case in plan(options.mode) {
        if let Some(only) = &options.only {
            if !only.contains(&case.scenario()) {
                continue;
            }
        }
        let mut result = CaseResult::default();
        if matches!(case.scenario(), Scenario::S3 | Scenario::S6) {
            if let Some(why) = sys::live_children_blocker(case.n().unwrap_or(0)) {
                eprintln!("[{} {}] skipped: {why}", case.scenario(), size_label(&case));
                result.skipped = Some(why);
                cases.push((case, result));
                continue;
            }
        }
        let libs = case.scenario().libs();
        for rep in 0..reps {
            let order: Vec<Lib> = if rep % 2 == 0 {
                libs.to_vec()
            } else {
                libs.iter().rev().copied().collect()
            };
            let mut line = format!(
                "[{} {}] rep {}/{reps}:",
                case.scenario(),
                size_label(&case),
                rep + 1
            );
            for lib in order {
                let t = Instant::now();
                match run_worker(&exe, &case, lib, None) {
                    Ok(report) => result.add(lib, &report),
                    Err(e) => {
                        failures += 1;
                        let note = format!("{} failed in repetition {}: {e}", lib.name(), rep + 1);
                        eprintln!("{note}");
                        result.notes.push(note);
                    }
                }
                line += &format!(" {} {:.1}s", lib.name(), t.elapsed().as_secs_f64());
            }
            eprintln!("{line}");
        }
        if case.scenario() == Scenario::S1 && strace_ok {
            syscall_profile(&exe, &case, &mut result, &mut failures);
        }
        if case.scenario() == Scenario::S6 {
            if strace_ok {
                strace_case(&exe, &case, &mut result, &mut failures);
            } else if options.strace {
                result.notes.push(
                    "--strace given but strace is not installed: wait4+waitid counts skipped"
                        .into(),
                );
            } else {
                result
                    .notes
                    .push("wait4+waitid counts need --strace (not given)".into());
            }
        }
        cases.push((case, result));
    }
    // S8 compares brood with itself and reports its own section.
    let s8 = options
        .s8
        .then(|| crate::contained::run(&exe, options.mode, reps, &mut failures));
    let run = Run {
        options,
        reps,
        cases,
        failures,
        elapsed_s: started.elapsed().as_secs_f64(),
        load_start,
        load_end: table::load_average(),
    };
    let text = table::render(&run) + s8.as_deref().unwrap_or("");
    print!("{text}");
    if let Some(path) = &run.options.markdown {
        std::fs::write(path, &text)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(run.failures == 0)
}

/// Runs one worker and parses its JSON line. `wrapper` is a program and
/// arguments to run the worker under (strace).
fn run_worker(
    exe: &Path,
    case: &Case,
    lib: Lib,
    wrapper: Option<&[String]>,
) -> Result<Report, String> {
    let mut options = options_for(case, lib);
    if wrapper.is_some() {
        options.warmup = 0;
    }
    let mut cmd = match wrapper {
        Some(w) => {
            let mut c = Command::new(&w[0]);
            c.args(&w[1..]).arg("--").arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg("worker")
        .arg(lib.name())
        .arg(case.scenario().to_string())
        .args(case.to_args())
        .args(options.to_args())
        .stdin(Stdio::null());
    match lib.brood_reaper() {
        Some(value) => cmd.env(brood::reaper::ENV_VAR, value),
        None => cmd.env_remove(brood::reaper::ENV_VAR),
    };
    if wrapper.is_some() {
        cmd.env(crate::WORKER_TIMEOUT_ENV, "3600");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start worker: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "worker exited with {}: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Report::parse(&stdout)
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Counts wait4 and waitid calls of one worker run under `strace -f -c`.
fn strace_counts(exe: &Path, case: &Case, lib: Lib) -> Result<BTreeMap<String, u64>, String> {
    let file = tempfile::Builder::new()
        .prefix("brood-bench-strace-")
        .suffix(".txt")
        .tempfile()
        .map_err(|e| format!("cannot create strace's output file: {e}"))?;
    let file = file.path();
    let wrapper: Vec<String> = [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-c",
        "-e",
        "trace=wait4,waitid",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([file.display().to_string()])
    .collect();
    run_worker(exe, case, lib, Some(&wrapper)).and_then(|_| {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(parse_strace_counts(&text))
    })
}

/// S6 once more per library under `strace -f -c`, for the count of
/// wait4 + waitid calls per child; and once with no child at all, whose
/// calls (start-up probes) are subtracted. Timings of these runs are dropped.
fn strace_case(exe: &Path, case: &Case, result: &mut CaseResult, failures: &mut usize) {
    let n = case.n().unwrap_or(0).max(1);
    let empty = case.with_n(0);
    let total = |counts: &BTreeMap<String, u64>| {
        counts.get("wait4").copied().unwrap_or(0) + counts.get("waitid").copied().unwrap_or(0)
    };
    let mut raw = Vec::new();
    for &lib in case.scenario().libs() {
        let t = Instant::now();
        let outcome = strace_counts(exe, &empty, lib)
            .and_then(|fixed| Ok((fixed, strace_counts(exe, case, lib)?)));
        match outcome {
            Ok((fixed, counts)) => {
                let calls = total(&counts);
                let fixed_calls = total(&fixed);
                let per_child = calls.saturating_sub(fixed_calls) as f64 / n as f64;
                let per_lib = result.samples.entry(lib).or_default();
                per_lib
                    .entry("waitpid_per_child".into())
                    .or_default()
                    .push(per_child);
                for name in ["wait4", "waitid"] {
                    let count = counts.get(name).copied().unwrap_or(0);
                    let base = fixed.get(name).copied().unwrap_or(0);
                    per_lib
                        .entry(format!("{name}_per_child"))
                        .or_default()
                        .push(count.saturating_sub(base) as f64 / n as f64);
                }
                raw.push(format!("{} {calls} − {fixed_calls}", lib.name()));
                eprintln!(
                    "[{} {}] strace {}: {calls} wait4+waitid calls, {fixed_calls} with no child ({:.1}s)",
                    case.scenario(),
                    size_label(case),
                    lib.name(),
                    t.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                *failures += 1;
                let note = format!("{} under strace failed: {e}", lib.name());
                eprintln!("{note}");
                result.notes.push(note);
            }
        }
    }
    result.notes.push(format!(
        "wait4+waitid/child = (calls with n={n} − calls with n=0) / {n}, each from one extra \
         run per library under `strace -f --seccomp-bpf -c -e trace=wait4,waitid -o FILE -- \
         brood-bench worker <lib> {} {} warmup=0` (plus deny_pidfd=1 for tokio and \
         async-process; timings of these runs are discarded). Raw totals: {}.",
        case.scenario(),
        case.to_args().join(" "),
        raw.join(", ")
    ));
}

/// Every system call made by the worker's own threads (not its children)
/// in one run under `strace -f -ff`, by name. A per-thread trace file
/// belongs to a child if it execs anything but the bench binary itself.
fn parent_syscalls(exe: &Path, case: &Case, lib: Lib) -> Result<BTreeMap<String, u64>, String> {
    let dir = tempfile::Builder::new()
        .prefix("brood-bench-ff-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for strace's output: {e}"))?;
    let dir = dir.path();
    let wrapper: Vec<String> = vec![
        "strace".into(),
        "-f".into(),
        "-ff".into(),
        "-o".into(),
        dir.join("t").display().to_string(),
    ];
    let outcome = run_worker(exe, case, lib, Some(&wrapper)).and_then(|_| {
        let own_exec = format!("execve(\"{}\"", exe.display());
        let mut counts = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
        for entry in entries.filter_map(Result::ok) {
            let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
            let is_child = text
                .lines()
                .any(|l| l.starts_with("execve(") && !l.starts_with(&own_exec));
            if is_child {
                continue;
            }
            for line in text.lines() {
                // Skip resumptions, signals and exits; count each call once.
                if line.starts_with('<') || line.starts_with("---") || line.starts_with("+++") {
                    continue;
                }
                if let Some((name, _)) = line.split_once('(') {
                    if !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        *counts.entry(name.to_owned()).or_insert(0u64) += 1;
                    }
                }
            }
        }
        Ok(counts)
    });
    outcome
}

/// S1 once more per library under `strace -f -ff`: the system calls of the
/// parent's own threads per operation, minus those of a run with no
/// operation. Shown as notes; timings of these runs are discarded.
fn syscall_profile(exe: &Path, case: &Case, result: &mut CaseResult, failures: &mut usize) {
    let n = case.n().unwrap_or(0).max(1);
    let empty = case.with_n(0);
    let mut lines = Vec::new();
    for &lib in case.scenario().libs() {
        let outcome = parent_syscalls(exe, &empty, lib)
            .and_then(|fixed| Ok((fixed, parent_syscalls(exe, case, lib)?)));
        match outcome {
            Ok((fixed, counts)) => {
                let mut per_op: Vec<(String, f64)> = counts
                    .iter()
                    .map(|(name, c)| {
                        let base = fixed.get(name).copied().unwrap_or(0);
                        (name.clone(), c.saturating_sub(base) as f64 / n as f64)
                    })
                    .filter(|(_, x)| *x >= 0.05)
                    .collect();
                per_op.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let total: f64 = per_op.iter().map(|(_, x)| x).sum();
                result
                    .samples
                    .entry(lib)
                    .or_default()
                    .entry("parent_syscalls_per_op".into())
                    .or_default()
                    .push(total);
                let detail: Vec<String> =
                    per_op.iter().map(|(k, x)| format!("{k} {x:.2}")).collect();
                lines.push(format!(
                    "{}: {total:.1} ({})",
                    lib.name(),
                    detail.join(", ")
                ));
                eprintln!(
                    "[{} {}] syscall profile {}: {total:.1}/op",
                    case.scenario(),
                    size_label(case),
                    lib.name()
                );
            }
            Err(e) => {
                *failures += 1;
                let note = format!("{} under strace -ff failed: {e}", lib.name());
                eprintln!("{note}");
                result.notes.push(note);
            }
        }
    }
    result.notes.push(format!(
        "Parent system calls per operation (the worker's own threads, children excluded; \
         (calls with n={n} − calls with n=0) / {n}, from one extra run per library under \
         `strace -f -ff -o DIR/t -- brood-bench worker <lib> {} {} warmup=0`, timings \
         discarded): {}",
        case.scenario(),
        case.to_args().join(" "),
        lines.join("; ")
    ));
}

/// Calls per syscall from the summary table of `strace -c`.
pub fn parse_strace_counts(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "% time seconds usecs/call calls [errors] syscall"
        if fields.len() < 5 {
            continue;
        }
        let name = fields[fields.len() - 1];
        if name == "total" || name == "syscall" {
            continue;
        }
        if let Ok(calls) = fields[3].parse::<u64>() {
            counts.insert(name.to_owned(), calls);
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_summary() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 90.00    0.000900           1       505           wait4
 10.00    0.000100           0       120        20 waitid
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           1       625        20 total
";
        let counts = parse_strace_counts(text);
        assert_eq!(counts.get("wait4"), Some(&505));
        assert_eq!(counts.get("waitid"), Some(&120));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn alternating_order_covers_every_lib() {
        for case in plan(Mode::Full) {
            assert!(!case.scenario().libs().is_empty());
            assert_eq!(case.scenario().libs()[0], Lib::Std);
        }
    }
}
