//! S8, contained spawn: the parent's CPU per spawn + wait of `/bin/true`
//! uncontained, with `Containment::Group` and with `Containment::Cgroup`,
//! from a small parent and from one with 1 GiB of touched memory, as ratios
//! to the uncontained spawn (issue 12, point 4: the Cgroup ratio from the
//! 1 GiB parent should be at most 1.5).
//!
//! Unlike S1–S6 this compares brood with itself, so the kinds are not
//! libraries in separate workers: one worker per parent size runs them all,
//! taking turns one spawn at a time (each round starting with another kind),
//! so that drift on the shared machine and what one spawn leaves behind
//! weigh on all alike. The driver runs that worker once per repetition and
//! reports the median of the workers' medians.
//!
//! Each spawn's cost is the whole process's CPU time (every thread: brood's
//! background thread removes the cgroup) from just before `spawn` to the
//! end of the wait: `wait()` for the uncontained and Group children,
//! `wait_tree()` for the Cgroup child, which resolves only once the cgroup
//! is empty and removed, so that the removal is counted in its own spawn.
//! A fourth row, `Containment::Cgroup` with a `CgroupPool` (each spawn
//! takes the cgroup the last one gave back), shows what reuse saves. A
//! fifth, the life of an empty cgroup as brood lives it without a
//! spawn (mkdir, open the directory and `cgroup.events`, read
//! `cgroup.events` and `cpu.stat`, rmdir), shows the kernel's share.

use crate::driver::Mode;
use crate::report::Report;
use crate::stats;
use brood::{CgroupPool, Command, Containment};
use brood_testkit::cgroup::PrivateParent;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::io;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

/// What is spawned, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uncontained,
    Group,
    Cgroup,
    /// `Cgroup` with a pool: the cgroup of the last such spawn, reused.
    CgroupPooled,
    /// No spawn: an empty cgroup's life, for the kernel's share.
    CgroupAlone,
}

const KINDS: [Kind; 5] = [
    Kind::Uncontained,
    Kind::Group,
    Kind::Cgroup,
    Kind::CgroupPooled,
    Kind::CgroupAlone,
];

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Uncontained => "uncontained",
            Kind::Group => "group",
            Kind::Cgroup => "cgroup",
            Kind::CgroupPooled => "cgroup_pooled",
            Kind::CgroupAlone => "cgroup_alone",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Uncontained => "uncontained",
            Kind::Group => "`Containment::Group`",
            Kind::Cgroup => "`Containment::Cgroup`",
            Kind::CgroupPooled => "`Containment::Cgroup` with a `CgroupPool`",
            Kind::CgroupAlone => "an empty cgroup's life, no spawn (kernel share)",
        }
    }
}

/// The two parents: extra touched memory in MiB. The smoke run (CI) keeps
/// the large one small, so that it needs no spare GiB.
fn parents_mib(mode: Mode) -> [u64; 2] {
    match mode {
        Mode::Smoke => [0, 64],
        Mode::Quick | Mode::Full => [0, 1024],
    }
}

/// Spawns per kind in one worker, for (small parent, large parent).
fn spawns(mode: Mode) -> (u64, u64) {
    match mode {
        Mode::Smoke => (10, 10),
        Mode::Quick => (300, 200),
        Mode::Full => (2000, 400),
    }
}

/// Rounds run first and thrown away: caches, brood's lazy machinery.
const WARMUP_ROUNDS: u64 = 10;

/// The target for the Cgroup ratio from the 1 GiB parent.
const TARGET_RATIO: f64 = 1.5;

/// CPU time of `clock`.
fn cpu(clock: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is writable for the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// One spawn and its wait: (the spawning thread's CPU in the spawn call,
/// the whole process's CPU from the spawn to the end of the wait).
async fn one(kind: Kind, parent: &Path, pool: &CgroupPool) -> io::Result<(Duration, Duration)> {
    let thread0 = cpu(libc::CLOCK_THREAD_CPUTIME_ID);
    let process0 = cpu(libc::CLOCK_PROCESS_CPUTIME_ID);
    if kind == Kind::CgroupAlone {
        let dir = parent.join("alone");
        std::fs::create_dir(&dir)?;
        let opened = std::fs::File::open(&dir)?;
        let events = std::fs::read(dir.join("cgroup.events"))?;
        let spawn = cpu(libc::CLOCK_THREAD_CPUTIME_ID) - thread0;
        let stat = std::fs::read(dir.join("cpu.stat"))?;
        std::fs::remove_dir(&dir)?;
        drop(opened);
        if events.is_empty() || stat.is_empty() {
            return Err(io::Error::other("empty cgroup.events or cpu.stat"));
        }
        return Ok((spawn, cpu(libc::CLOCK_PROCESS_CPUTIME_ID) - process0));
    }
    let mut command = Command::new("/bin/true");
    match kind {
        Kind::Group => {
            command.contain(Containment::Group);
        }
        Kind::Cgroup => {
            command.contain(Containment::Cgroup).cgroup_parent(parent);
        }
        Kind::CgroupPooled => {
            command
                .contain(Containment::Cgroup)
                .cgroup_parent(parent)
                .cgroup_pool(pool);
        }
        Kind::Uncontained | Kind::CgroupAlone => {}
    }
    let mut child = command.spawn()?;
    let spawn = cpu(libc::CLOCK_THREAD_CPUTIME_ID) - thread0;
    let status = if matches!(kind, Kind::Cgroup | Kind::CgroupPooled) {
        if child.containment() != Some(Containment::Cgroup) {
            return Err(io::Error::other("the child got no cgroup"));
        }
        child.wait_tree().await?
    } else {
        child.wait().await?
    };
    if !status.success() {
        return Err(io::Error::other(format!("/bin/true: {status}")));
    }
    Ok((spawn, cpu(libc::CLOCK_PROCESS_CPUTIME_ID) - process0))
}

/// Every kind (or only `KINDS[only]`) `spawns` times, taking turns; the
/// medians in µs.
async fn measure(spawns: u64, only: Option<usize>, parent: &Path) -> io::Result<Report> {
    let mut call: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let mut total: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let pool = CgroupPool::new(1);
    for round in 0..spawns + WARMUP_ROUNDS {
        for k in 0..KINDS.len() {
            let i = (round as usize + k) % KINDS.len();
            if only.is_some_and(|only| only != i) {
                continue;
            }
            let (c, t) = one(KINDS[i], parent, &pool).await?;
            if round >= WARMUP_ROUNDS {
                call[i].push(c.as_secs_f64() * 1e6);
                total[i].push(t.as_secs_f64() * 1e6);
            }
        }
    }
    let mut report = Report::default();
    for (i, kind) in KINDS.iter().enumerate() {
        report.set(
            &format!("cpu_us_{}", kind.key()),
            stats::median(&total[i]).unwrap_or(f64::NAN),
        );
        report.set(
            &format!("spawn_call_us_{}", kind.key()),
            stats::median(&call[i]).unwrap_or(f64::NAN),
        );
    }
    Ok(report)
}

/// `brood-bench s8-worker parent_mib=N spawns=M [only=K]`: one parent
/// size; with `only`, just the K-th kind (0 uncontained, 1 Group, 2 Cgroup,
/// 3 Cgroup with a pool, 4 the empty cgroup), for profiling one kind (`perf record`, `strace -c`).
pub fn worker(args: &[String]) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("brood-bench s8-worker: {msg}");
        ExitCode::FAILURE
    };
    let mut settings = BTreeMap::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return fail(format!("not key=value: {arg:?}"));
        };
        let Ok(value) = value.parse::<u64>() else {
            return fail(format!("not a number: {arg:?}"));
        };
        settings.insert(key.to_owned(), value);
    }
    let (Some(&parent_mib), Some(&spawns)) = (settings.get("parent_mib"), settings.get("spawns"))
    else {
        return fail("needs parent_mib=N spawns=M".into());
    };
    crate::sys::watchdog(900);
    let parent = match PrivateParent::try_new("bench") {
        Ok(parent) => parent,
        Err(e) => return fail(format!("no writable cgroup v2 parent: {e}")),
    };
    // Every page touched, so that each is mapped: a fork would have to copy
    // its page-table entry, and would show here.
    let mut memory = vec![0u8; (parent_mib << 20) as usize];
    for page in memory.chunks_mut(4096) {
        page[0] = 1;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("runtime: {e}")),
    };
    let only = settings.get("only").map(|&k| k as usize % KINDS.len());
    let measured = runtime.block_on(measure(spawns, only, &parent.path));
    let touched: u64 = memory.iter().step_by(4096).map(|&b| u64::from(b)).sum();
    assert_eq!(touched, (parent_mib << 20) / 4096);
    match measured {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

/// Runs S8: `reps` workers per parent size, alternating the sizes. Returns
/// the report's section; failures are counted in `failures`.
pub fn run(exe: &Path, mode: Mode, reps: usize, failures: &mut usize) -> String {
    let (small, large) = spawns(mode);
    // parent MiB → metric → one median per worker.
    let mut samples: BTreeMap<u64, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut notes = Vec::new();
    for rep in 0..reps {
        let mut order = parents_mib(mode).to_vec();
        if rep % 2 == 1 {
            order.reverse();
        }
        for mib in order {
            let n = if mib == 0 { small } else { large };
            let out = std::process::Command::new(exe)
                .arg("s8-worker")
                .arg(format!("parent_mib={mib}"))
                .arg(format!("spawns={n}"))
                .stdin(Stdio::null())
                .output();
            let parsed = match out {
                Ok(out) if out.status.success() => {
                    Report::parse(&String::from_utf8_lossy(&out.stdout))
                }
                Ok(out) => Err(format!(
                    "worker exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Err(format!("cannot start worker: {e}")),
            };
            match parsed {
                Ok(report) => {
                    let per = samples.entry(mib).or_default();
                    for (k, v) in report.metrics {
                        per.entry(k).or_default().push(v);
                    }
                }
                Err(e) => {
                    *failures += 1;
                    let note = format!("S8 parent {mib} MiB, repetition {}: {e}", rep + 1);
                    eprintln!("{note}");
                    notes.push(note);
                }
            }
        }
        eprintln!("[S8] rep {}/{reps} done", rep + 1);
    }
    render(&samples, &notes, reps, parents_mib(mode), (small, large))
}

fn render(
    samples: &BTreeMap<u64, BTreeMap<String, Vec<f64>>>,
    notes: &[String],
    reps: usize,
    parents: [u64; 2],
    (small, large): (u64, u64),
) -> String {
    let large_label = if parents[1] >= 1024 {
        format!("{} GiB", parents[1] / 1024)
    } else {
        format!("{} MiB", parents[1])
    };
    let mut s = String::new();
    let _ = writeln!(s, "## S8: contained spawn (spawn + wait of /bin/true)\n");
    let _ = writeln!(
        s,
        "One worker per parent size and repetition ({reps} each) runs every kind in turn, one \
         spawn at a time ({small} spawns each from the small parent, {large} from the \
         {large_label} one). Parent CPU is the whole process's (every thread, brood's background thread \
         included) from the spawn to the end of the wait (`wait_tree` for Cgroup, so that \
         the cgroup's removal counts); the spawn call is the spawning thread's CPU in \
         `spawn`. Medians of the workers' medians; `(2.00×)` is the ratio to the \
         uncontained spawn from the same parent. Target (issue 12, point 4): Cgroup from \
         a 1 GiB parent ≤ {TARGET_RATIO}× uncontained.\n"
    );
    let _ = writeln!(
        s,
        "| parent | kind | parent CPU µs per spawn + wait | spawn call CPU µs |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|");
    let mut verdict = None;
    let mut pooled = None;
    for mib in parents {
        let Some(per) = samples.get(&mib) else {
            continue;
        };
        let median = |key: String| per.get(&key).and_then(|v| stats::median(v));
        let base_total = median(format!("cpu_us_{}", Kind::Uncontained.key()));
        let base_call = median(format!("spawn_call_us_{}", Kind::Uncontained.key()));
        for kind in KINDS {
            let total = median(format!("cpu_us_{}", kind.key()));
            let call = median(format!("spawn_call_us_{}", kind.key()));
            let cell = |v: Option<f64>, base: Option<f64>| match (v, base) {
                (Some(v), Some(b)) if b > 0.0 => format!("{v:.1} ({:.2}×)", v / b),
                (Some(v), _) => format!("{v:.1}"),
                _ => "n/a".to_owned(),
            };
            let parent = if mib == 0 {
                "small".to_owned()
            } else {
                format!("{large_label} touched")
            };
            let _ = writeln!(
                s,
                "| {parent} | {} | {} | {} |",
                kind.label(),
                cell(total, base_total),
                cell(call, base_call)
            );
            if mib == parents[1] {
                if let (Some(t), Some(b)) = (total, base_total) {
                    match kind {
                        Kind::Cgroup => verdict = Some(t / b),
                        Kind::CgroupPooled => pooled = Some(t / b),
                        _ => {}
                    }
                }
            }
        }
    }
    let _ = writeln!(s);
    match verdict {
        Some(ratio) => {
            let met = if ratio <= TARGET_RATIO {
                "met"
            } else {
                "**not met**"
            };
            let _ = writeln!(
                s,
                "Cgroup from the {large_label} parent: {ratio:.2}× uncontained; target \
                 (from 1 GiB) ≤ {TARGET_RATIO}×: {met}.\n"
            );
            if let Some(pooled) = pooled {
                let met = if pooled <= TARGET_RATIO {
                    "met"
                } else {
                    "**not met**"
                };
                let _ = writeln!(
                    s,
                    "Cgroup with a pool from the {large_label} parent: {pooled:.2}× \
                     uncontained: {met}.\n"
                );
            }
        }
        None => {
            let _ = writeln!(s, "No figures for the {large_label} parent.\n");
        }
    }
    for note in notes {
        let _ = writeln!(s, "- {note}");
    }
    if !notes.is_empty() {
        let _ = writeln!(s);
    }
    s
}
