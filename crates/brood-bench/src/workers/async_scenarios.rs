//! The scenario bodies of every async library, written once.
//!
//! brood, `tokio::process` and async-process each implement [`AsyncLib`]:
//! how to spawn, wait, capture and read, and how to start a task on their
//! executor. Everything measured around those calls (the loops, the clock
//! readings, what runs in a task and what is awaited in order) is the code
//! below, for all three alike. Each library's worker only builds its
//! executor and calls [`run`] on it.

use super::{capture_argv, check, parse_stamp, self_exe};
use crate::children::Gate;
use crate::params::{Case, S1, S2, S3, S4, S5, S6};
use crate::report::Report;
use crate::scenarios::{self, LiveChildren, Scenario, Staggered};
use crate::sys::{exact_rss_kib, now_ns, usage, vm_rss_kib, Phase};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io;
use std::process::{ExitStatus, Output, Stdio};

/// A command a scenario runs: what each library's own `Command` builder is
/// given, through the same four calls for every library (`new`, `args`,
/// `stdin`, `stdout`; unset stdio keeps the library's default).
pub struct Spec<'a> {
    pub program: &'a OsStr,
    pub args: &'a [OsString],
    pub stdin: Option<Stdio>,
    pub stdout: Option<Stdio>,
}

impl<'a> Spec<'a> {
    fn new(program: &'a OsStr, args: &'a [OsString]) -> Spec<'a> {
        Spec {
            program,
            args,
            stdin: None,
            stdout: None,
        }
    }
}

/// `spec` as a `$Command` of the library at hand, through the four calls
/// every library's builder has with the same signature.
macro_rules! build_command {
    ($Command:ty, $spec:expr) => {{
        let spec: Spec<'_> = $spec;
        let mut cmd = <$Command>::new(spec.program);
        cmd.args(spec.args);
        if let Some(stdin) = spec.stdin {
            cmd.stdin(stdin);
        }
        if let Some(stdout) = spec.stdout {
            cmd.stdout(stdout);
        }
        cmd
    }};
}
pub(super) use build_command;

/// What the scenarios need from an async process library and its executor.
pub trait AsyncLib {
    /// The library's child handle.
    type Child: Send + 'static;
    /// A task started with [`AsyncLib::spawn_task`].
    type Task<T: Send + 'static>;

    /// Builds `spec` with the library's `Command` and spawns it.
    fn spawn(&self, spec: Spec<'_>) -> io::Result<Self::Child>;

    /// The child's exit (the library's `wait`, or `status` where that is its
    /// name).
    fn wait(child: &mut Self::Child) -> impl Future<Output = io::Result<ExitStatus>> + Send;

    /// Builds `spec` with the library's `Command` and runs its `output()`.
    fn output(&self, spec: Spec<'_>) -> impl Future<Output = io::Result<Output>>;

    /// Reads the child's piped stdout to its end.
    fn read_stdout(child: &mut Self::Child) -> impl Future<Output = io::Result<Vec<u8>>>;

    /// Starts `fut` as a task of the library's executor.
    fn spawn_task<T, F>(&self, fut: F) -> Self::Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static;

    /// A task's result.
    fn join<T: Send + 'static>(task: Self::Task<T>) -> impl Future<Output = io::Result<T>>;

    /// The `wait4`/`waitid` calls the library has made so far, if it counts
    /// them (brood's test hooks do).
    fn wait_calls() -> Option<u64> {
        None
    }
}

/// Warms `lib` up with `warmup` spawns of `/bin/true`, then runs `case`.
/// Call it inside the library's executor.
pub async fn run<L: AsyncLib>(lib: &L, case: &Case, warmup: u64) -> io::Result<Report> {
    for _ in 0..warmup {
        check(L::wait(&mut lib.spawn(Spec::new(true_path(), &[]))?).await?)?;
    }
    match case {
        Case::S1(p) => s1(lib, p).await,
        Case::S2(p) => s2(lib, p).await,
        Case::S3(p) => s3(lib, p).await,
        Case::S4(p) => s4(lib, p).await,
        Case::S5(p) => s5(lib, p).await,
        Case::S6(p) => s6(lib, p).await,
        Case::S7(_) => Err(io::Error::other("S7 runs only on a Tokio runtime (s7.rs)")),
    }
}

fn true_path() -> &'static OsStr {
    OsStr::new("/bin/true")
}

async fn s1<L: AsyncLib>(lib: &L, p: &S1) -> io::Result<Report> {
    let phase = Phase::start();
    for _ in 0..p.n {
        check(L::wait(&mut lib.spawn(Spec::new(true_path(), &[]))?).await?)?;
    }
    Ok(scenarios::per_op_report(Scenario::S1, p.n, phase.end()))
}

async fn s2<L: AsyncLib>(lib: &L, p: &S2) -> io::Result<Report> {
    let inflight = p.inflight as usize;
    let mut queue = VecDeque::with_capacity(inflight);
    let phase = Phase::start();
    for _ in 0..p.n {
        if queue.len() == inflight {
            let oldest = queue.pop_front().expect("full queue");
            check(L::join(oldest).await??)?;
        }
        let mut child = lib.spawn(Spec::new(true_path(), &[]))?;
        queue.push_back(lib.spawn_task(async move { L::wait(&mut child).await }));
    }
    for task in queue {
        check(L::join(task).await??)?;
    }
    Ok(scenarios::per_op_report(Scenario::S2, p.n, phase.end()))
}

async fn s3<L: AsyncLib>(lib: &L, p: &S3) -> io::Result<Report> {
    let mut children = Vec::with_capacity(p.n as usize);
    let exact_before_kib = exact_rss_kib()?;
    let rss_before_kib = vm_rss_kib()?;
    let phase = Phase::start();
    for _ in 0..p.n {
        let args = [OsString::from(p.sleep_s.to_string())];
        children.push(lib.spawn(Spec::new(OsStr::new("sleep"), &args))?);
    }
    let spawn_end_ns = now_ns();
    let spawn = phase.end();
    let exact_spawned_kib = exact_rss_kib()?;
    let tasks: Vec<_> = children
        .into_iter()
        .map(|mut child| {
            lib.spawn_task(async move {
                let status = L::wait(&mut child).await;
                (status, now_ns())
            })
        })
        .collect();
    let exact_live_kib = exact_rss_kib()?;
    let mut last_resolved_ns = 0;
    for task in tasks {
        let (status, resolved) = L::join(task).await?;
        check(status?)?;
        last_resolved_ns = last_resolved_ns.max(resolved);
    }
    Ok(LiveChildren {
        n: p.n,
        sleep_s: p.sleep_s,
        spawn,
        spawn_end_ns,
        last_resolved_ns,
        rss_before_kib,
        after: usage(),
        exact_before_kib,
        exact_live_kib,
        exact_spawned_kib,
    }
    .report())
}

async fn s4<L: AsyncLib>(lib: &L, p: &S4) -> io::Result<Report> {
    let (program, args) = capture_argv(p);
    let mut captures = Vec::new();
    for _ in 0..p.captures {
        let phase = Phase::start();
        let output = lib.output(Spec::new(OsStr::new(program), &args)).await?;
        let cost = phase.end();
        check(output.status)?;
        if output.stdout.len() as u64 != p.bytes {
            return Err(io::Error::other("short capture"));
        }
        drop(output);
        captures.push((cost.wall_us, cost.cpu_us));
    }
    Ok(scenarios::capture_report(p.bytes, &captures, usage()))
}

async fn s5<L: AsyncLib>(lib: &L, p: &S5) -> io::Result<Report> {
    let exe = self_exe()?;
    let args = [OsString::from("stamp")];
    let mut latencies = Vec::new();
    for _ in 0..p.runs {
        let mut child = lib.spawn(Spec {
            stdout: Some(Stdio::piped()),
            ..Spec::new(exe.as_os_str(), &args)
        })?;
        let status = L::wait(&mut child).await;
        let woke = now_ns();
        check(status?)?;
        let out = L::read_stdout(&mut child).await?;
        latencies.push(woke as f64 - parse_stamp(&out)? as f64);
    }
    Ok(scenarios::latency_report(&latencies))
}

async fn s6<L: AsyncLib>(lib: &L, p: &S6) -> io::Result<Report> {
    let exe = self_exe()?;
    let gate = Gate::new()?;
    let mut tasks = Vec::with_capacity(p.n as usize);
    let calls_before = L::wait_calls();
    let total = Phase::start();
    for i in 0..p.n {
        let offset = scenarios::stagger_offset_ns(p, i);
        let args = [
            OsString::from("sleeper"),
            OsString::from(offset.to_string()),
        ];
        let mut child = lib.spawn(Spec {
            stdin: Some(gate.stdin()?),
            ..Spec::new(exe.as_os_str(), &args)
        })?;
        let task = lib.spawn_task(async move {
            let status = L::wait(&mut child).await;
            (status, now_ns())
        });
        tasks.push((task, offset));
    }
    let spawn = total.end();
    let reap = Phase::start();
    let t0 = gate.release(p.n)?;
    let mut lags_ns = Vec::with_capacity(p.n as usize);
    for (task, offset) in tasks {
        let (status, resolved) = L::join(task).await?;
        check(status?)?;
        lags_ns.push(resolved as f64 - (t0 + offset) as f64);
    }
    Ok(Staggered {
        n: p.n,
        spawn,
        total: total.end(),
        reap: reap.end(),
        lags_ns,
        self_wait_calls: L::wait_calls()
            .zip(calls_before)
            .map(|(after, before)| after - before),
    }
    .report())
}
