//! S7, concurrent spawn + wait: whether anything process-wide (the table of
//! live children, the exit-watcher choice, the background thread's queue, a
//! runtime's own locks) serialises spawns made at the same time.
//!
//! Two shapes, chosen by the case's parameters:
//!
//! - `tasks = T, threads = 0`: T tasks on the multi-thread runtime, each
//!   spawning `/bin/true` and awaiting it, `n / T` times in a row;
//! - `threads = W, tasks = 0`: W OS threads started with `std::thread`,
//!   outside any runtime. Each spawns there (brood needs no runtime to spawn;
//!   tokio::process does, so its threads enter the runtime's handle first,
//!   the least it needs) and awaits the exit with `Handle::block_on`, so the
//!   wait runs on the runtime's reactor as in the task shape.
//!
//! The raw std row runs `max(T, W)` OS threads of `spawn` + blocking `wait`
//! in both shapes. Parent CPU and context switches count every thread of
//! the worker (`getrusage(RUSAGE_SELF)`).
//!
//! Owns: the S7 bodies. Calls: the workers' [`AsyncLib`] (spawn and wait).

use crate::params::{Case, S7};
use crate::report::Report;
use crate::scenarios::{
    per_op_report, Lib, Metric, Scenario, CPU_US_PER_OP, NVCSW_PER_OP, WALL_US_PER_OP,
};
use crate::sys::Phase;
use crate::workers::{check, AsyncLib, Spec};
use std::ffi::{OsStr, OsString};
use std::io;
use std::process::Command;
use std::sync::Arc;

/// The scenario's title in the report.
pub const TITLE: &str =
    "concurrent spawn + wait of /bin/true (tasks on a multi-thread runtime, or OS threads)";

/// The libraries compared: async-process is left out, its executor here
/// being a single-threaded `LocalExecutor`, which cannot show contention.
pub const LIBS: &[Lib] = &[Lib::Std, Lib::BroodPidfd, Lib::BroodSignal, Lib::Tokio];

/// The columns of its table.
pub const METRICS: &[Metric] = &[
    Metric {
        key: "ops_per_s",
        label: "spawn+wait/s",
        decimals: 0,
    },
    WALL_US_PER_OP,
    CPU_US_PER_OP,
    NVCSW_PER_OP,
];

/// Both shapes at `n` operations: 8 tasks, and 4 OS threads.
pub fn cases(n: u64) -> [Case; 2] {
    [
        Case::S7(S7 {
            n,
            tasks: 8,
            threads: 0,
        }),
        Case::S7(S7 {
            n,
            tasks: 0,
            threads: 4,
        }),
    ]
}

fn true_spec() -> Spec<'static> {
    const NO_ARGS: &[OsString] = &[];
    Spec {
        program: OsStr::new("/bin/true"),
        args: NO_ARGS,
        stdin: None,
        stdout: None,
    }
}

/// How many workers (tasks or threads) share the `n` operations, and how
/// many each does; the total measured is `workers × per_worker`.
fn split(p: &S7) -> io::Result<(u64, u64)> {
    let workers = p.tasks.max(p.threads);
    if workers == 0 || (p.tasks != 0 && p.threads != 0) {
        return Err(io::Error::other(
            "S7 needs exactly one of tasks and threads above 0",
        ));
    }
    Ok((workers, (p.n / workers).max(1)))
}

fn report(p: &S7, ops: u64, phase: &Phase) -> Report {
    let mut r = per_op_report(Scenario::S7, ops, phase.end());
    if let Some(&wall) = r.metrics.get("wall_us_per_op") {
        r.set("ops_per_s", 1e6 / wall);
    }
    r.set("tasks", p.tasks as f64);
    r.set("threads", p.threads as f64);
    r
}

/// The raw baseline: OS threads of `spawn` + blocking `wait`.
pub fn std_s7(p: &S7) -> io::Result<Report> {
    let (workers, per_worker) = split(p)?;
    let phase = Phase::start();
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            std::thread::spawn(move || -> io::Result<()> {
                for _ in 0..per_worker {
                    check(Command::new("/bin/true").spawn()?.wait()?)?;
                }
                Ok(())
            })
        })
        .collect();
    join_all(threads)?;
    Ok(report(p, workers * per_worker, &phase))
}

/// brood or tokio::process on `runtime` (multi-thread).
pub fn tokio_s7<L>(
    runtime: &tokio::runtime::Runtime,
    p: &S7,
    enter_to_spawn: bool,
) -> io::Result<Report>
where
    L: AsyncLib + Default + Send + Sync + 'static,
{
    let (workers, per_worker) = split(p)?;
    if runtime.handle().runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        // Nothing would drive a current-thread runtime's IO while the OS
        // threads sit in `Handle::block_on`, and 8 tasks on one thread
        // measure no concurrency.
        return Err(io::Error::other("S7 needs a multi-thread runtime"));
    }
    let lib = Arc::new(L::default());
    if p.tasks != 0 {
        return runtime.block_on(async {
            let phase = Phase::start();
            let tasks: Vec<_> = (0..workers)
                .map(|_| {
                    let lib = lib.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_worker {
                            check(L::wait(&mut lib.spawn(true_spec())?).await?)?;
                        }
                        io::Result::Ok(())
                    })
                })
                .collect();
            for task in tasks {
                task.await.map_err(io::Error::other)??;
            }
            Ok(report(p, workers * per_worker, &phase))
        });
    }
    let phase = Phase::start();
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let lib = lib.clone();
            let handle = runtime.handle().clone();
            std::thread::spawn(move || -> io::Result<()> {
                for _ in 0..per_worker {
                    let mut child = if enter_to_spawn {
                        let _entered = handle.enter();
                        lib.spawn(true_spec())?
                    } else {
                        lib.spawn(true_spec())?
                    };
                    check(handle.block_on(L::wait(&mut child))?)?;
                }
                Ok(())
            })
        })
        .collect();
    join_all(threads)?;
    Ok(report(p, workers * per_worker, &phase))
}

/// Joins the spawning threads, passing on the first error (or panic).
fn join_all(threads: Vec<std::thread::JoinHandle<io::Result<()>>>) -> io::Result<()> {
    for thread in threads {
        thread
            .join()
            .map_err(|_| io::Error::other("S7 thread panicked"))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_shape_is_run_and_every_worker_does_the_same_share() {
        let p = |n, tasks, threads| S7 { n, tasks, threads };
        assert_eq!(split(&p(2000, 8, 0)).unwrap(), (8, 250));
        assert_eq!(split(&p(2000, 0, 4)).unwrap(), (4, 500));
        // A remainder is dropped, and the report divides by what ran.
        assert_eq!(split(&p(10, 4, 0)).unwrap(), (4, 2));
        assert_eq!(split(&p(2, 8, 0)).unwrap(), (8, 1));
        assert!(split(&p(2000, 8, 4)).is_err());
        assert!(split(&p(2000, 0, 0)).is_err());
    }

    #[test]
    fn both_shapes_are_cases_with_parameters_a_worker_accepts() {
        for case in cases(800) {
            let args = case.to_args();
            let (parsed, _) = crate::params::parse_worker_args(Scenario::S7, &args).unwrap();
            assert_eq!(parsed, case);
        }
    }
}
