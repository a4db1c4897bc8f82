//! The scheduler: starts jobs `-j` at a time into numbered slots, paced
//! by `--delay`, `--load` and `--memfree`; collects finished ones into the
//! summary, the job log and `--halt`; and reacts to signals and to a
//! broken stdout.
//!
//! A job is one Tokio task in a [`JoinSet`]. Running jobs are told to stop
//! through a [`watch`] channel: `Graceful` (the termination sequence) or
//! `Kill` (SIGKILL to the group at once).
//!
//! Signals: SIGINT and SIGTERM stop every job gracefully (a second one
//! kills them at once) and exit with 128 + the signal. SIGHUP drains, as
//! in GNU parallel: no new jobs start, running ones finish, and brood
//! exits as it would have.

use crate::admission;
use crate::evict::{self, Eviction};
use crate::halt::{Halt, HaltState, When};
use crate::job::{run_job, Controls, Finished, JobContext, Stop, Timeout};
use crate::joblog::{JobLog, Outcome};
use crate::jobs::JobSource;
use crate::progress::Counts;
use crate::summary::Summary;
use crate::template::display_argv;
use brood::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

/// The time limit as given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeoutSpec {
    /// None.
    Never,
    /// Fixed.
    Fixed(Duration),
    /// A fraction of the median runtime of the jobs that succeeded so far.
    Relative(f64),
}

/// A job that runs, as the scheduler sees it.
struct Running {
    /// When it started.
    started: Instant,
    /// Its `--memfree` eviction.
    eviction: Option<Eviction>,
}

/// How jobs are scheduled.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Jobs at once.
    pub jobs: usize,
    /// Pause between two starts.
    pub delay: Option<Duration>,
    /// `--load`.
    pub load: Option<f64>,
    /// `--memfree`, in bytes.
    pub memfree: Option<u64>,
    /// The time limit.
    pub timeout: TimeoutSpec,
    /// `--halt`.
    pub halt: Option<Halt>,
    /// Print the summary at the end.
    pub summary: bool,
}

/// Runs every job of `source`. Returns brood's exit status.
pub async fn run(
    plan: Plan,
    mut source: JobSource,
    ctx: Arc<JobContext>,
    mut joblog: Option<JobLog>,
) -> u8 {
    let display = ctx.display.clone();
    let started_at = Instant::now();
    let (mut sigint, mut sigterm, mut sighup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            display.error(&format!("brood: error: cannot handle signals: {e}"));
            return 255;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let (limit_tx, limit_rx) = watch::channel(None::<Duration>);
    let mut successes: Vec<Duration> = Vec::new();
    let mut set: JoinSet<(u64, u64, Finished)> = JoinSet::new();
    let mut free_slots: BTreeSet<u64> = (1..=plan.jobs as u64).collect();
    // By start order, so the last one is the youngest.
    let mut running: BTreeMap<u64, Running> = BTreeMap::new();
    let mut summary = Summary::default();
    let mut halt = HaltState::new(plan.halt);
    let mut accepting = true;
    let mut exhausted = false;
    let mut signalled: Option<Signal> = None;
    let mut killing = false;
    let mut broken = false;
    let mut fatal = false;
    let mut started = 0usize;
    let mut finished_runtime = Duration::ZERO;
    let mut next_start = Instant::now();
    // When the machine had no room: look again at this instant.
    let mut recheck: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let progress = display.bar().is_some();
    // The tick also watches memory for `--memfree`'s evictions.
    let ticking = progress || plan.memfree.is_some();

    let on_stop_signal =
        |sig: Signal, signalled: &mut Option<Signal>, killing: &mut bool, running: usize| {
            if signalled.is_none() {
                *signalled = Some(sig);
                Stop::raise(&stop_tx, Stop::Graceful);
                display.message(&format!(
                    "brood: got {sig:?}: stopping {running} running job{}; \
                     send it again to kill them at once",
                    if running == 1 { "" } else { "s" },
                ));
            } else if !*killing {
                *killing = true;
                Stop::raise(&stop_tx, Stop::Kill);
                display.message("brood: killing every job now (SIGKILL)");
            }
        };

    loop {
        if set.is_empty() && (exhausted || !accepting) {
            break;
        }
        let now = Instant::now();
        let room = free_slots.first().is_some();
        let paced = now >= next_start && recheck.is_none_or(|r| now >= r);
        let mut may_start = accepting && !exhausted && room && paced;
        if may_start && !admitted(&plan, &mut recheck) {
            may_start = false;
        }
        let wake = match (accepting && !exhausted && room, recheck) {
            (true, Some(r)) => Some(r.max(next_start)),
            (true, None) if now < next_start => Some(next_start),
            _ => None,
        };
        tokio::select! {
            biased;
            _ = sigint.recv() => {
                accepting = false;
                on_stop_signal(Signal::INT, &mut signalled, &mut killing, set.len());
            }
            _ = sigterm.recv() => {
                accepting = false;
                on_stop_signal(Signal::TERM, &mut signalled, &mut killing, set.len());
            }
            _ = sighup.recv() => {
                if accepting {
                    accepting = false;
                    Stop::raise(&stop_tx, Stop::Drain);
                    display.message(&format!(
                        "brood: got SIGHUP: starting no new jobs, waiting for {} running",
                        set.len()
                    ));
                }
            }
            () = display.broken_notify.notified(), if !broken => {
                // Nobody reads our output any more: start nothing new, stop
                // what runs, and exit quietly.
                broken = true;
                accepting = false;
                Stop::raise(&stop_tx, Stop::Graceful);
            }
            Some(joined) = set.join_next(), if !set.is_empty() => {
                let (order, slot, job) = match joined {
                    Ok(done) => done,
                    Err(e) => {
                        display.error(&format!("brood: error: a job's task failed: {e}"));
                        fatal = true;
                        continue;
                    }
                };
                running.remove(&order);
                free_slots.insert(slot);
                let outcome = job.outcome();
                finished_runtime += job.last.runtime;
                summary.add(
                    outcome,
                    job.spec.seq,
                    job.last.runtime,
                    job.user,
                    job.sys,
                    job.peak_rss,
                    || display_argv(&job.argv),
                );
                if let Some(log) = &mut joblog {
                    if let Err(e) = log.write(&job.record(), &job.argv) {
                        display.error(&format!("brood: error: writing the job log: {e}"));
                        joblog = None;
                        fatal = true;
                    }
                }
                if outcome == Outcome::Ok {
                    if let TimeoutSpec::Relative(f) = plan.timeout {
                        let at = successes.partition_point(|d| *d < job.last.runtime);
                        successes.insert(at, job.last.runtime);
                        // GNU parallel's median: the lower one of an even
                        // count.
                        let median = successes[(successes.len() - 1) / 2];
                        limit_tx.send_replace(Some(median.mul_f64(f)));
                    }
                }
                if matches!(outcome, Outcome::Failed | Outcome::TimedOut | Outcome::LowMemory) {
                    display.message(&job.failure_message(current_limit(plan.timeout, &limit_tx)));
                }
                if outcome != Outcome::Stopped && signalled.is_none() && !broken {
                    if let Some(when) =
                        halt.record(outcome == Outcome::Ok, job.status_code(), source.total())
                    {
                        accepting = false;
                        let n = set.len();
                        if when == When::Now {
                            Stop::raise(&stop_tx, Stop::Graceful);
                            display.message(&format!(
                                "brood: --halt: starting no new jobs, stopping {n} running"
                            ));
                        } else {
                            Stop::raise(&stop_tx, Stop::Drain);
                        }
                        if when == When::Soon && n > 0 {
                            display.message(&format!(
                                "brood: --halt: starting no new jobs, waiting for {n} running"
                            ));
                        }
                    }
                }
            }
            () = sleep_until_opt(wake), if wake.is_some() => recheck = None,
            next = source.next(), if may_start => match next {
                None => exhausted = true,
                Some(Err(e)) => {
                    display.error(&format!("brood: error: reading inputs: {e}"));
                    fatal = true;
                    accepting = false;
                }
                Some(Ok(spec)) => {
                    started += 1;
                    let order = started as u64;
                    let slot = free_slots.pop_first().expect("room was checked");
                    let argv = spec.argv_for_slot(source.template(), slot);
                    let timeout = match plan.timeout {
                        TimeoutSpec::Never => Timeout::Never,
                        TimeoutSpec::Fixed(d) => Timeout::Fixed(d),
                        TimeoutSpec::Relative(_) => Timeout::Relative(limit_rx.clone()),
                    };
                    let eviction = plan.memfree.map(|_| Eviction::default());
                    running.insert(order, Running { started: Instant::now(), eviction: eviction.clone() });
                    if let Some(d) = plan.delay {
                        next_start = Instant::now() + d;
                    }
                    let controls = Controls { timeout, stop: stop_rx.clone(), eviction };
                    let job = run_job(spec, argv, slot, order, ctx.clone(), controls);
                    set.spawn(async move { (order, slot, job.await) });
                }
            },
            _ = tick.tick(), if ticking => {
                if let Some(memfree) = plan.memfree {
                    evict_youngest(memfree, &running);
                }
                if let Some(bar) = display.bar() {
                    let now = Instant::now();
                    bar.update(&Counts {
                        done: summary.finished(),
                        total: source.total().map(|t| t.saturating_sub(source.skipped)),
                        failed: summary.failed,
                        running: running.values().map(|r| now - r.started).collect(),
                        finished_runtime,
                        slots: plan.jobs,
                    });
                }
            }
        }
    }

    display.flush_all();
    if let Some(bar) = display.bar() {
        bar.clear();
    }
    if let Some(log) = &mut joblog {
        if let Err(e) = log.flush() {
            display.error(&format!("brood: error: writing the job log: {e}"));
            fatal = true;
        }
    }
    summary.wall = started_at.elapsed();
    summary.skipped = source.skipped;
    summary.not_started = source
        .total()
        .map(|t| t.saturating_sub(started + source.skipped));
    let not_started = summary.not_started.unwrap_or(0);
    if plan.summary {
        display.message(&summary.render());
    } else if not_started > 0 {
        // Stopped early: say how many never ran, even off a terminal.
        display.message(&format!("brood: {not_started} not started"));
    }
    if let Some(sig) = signalled {
        128 + sig.as_raw() as u8
    } else if fatal {
        255
    } else {
        halt.exit_status(started)
    }
}

/// `--memfree`: below half of SIZE, asks the youngest job whose attempt
/// runs to stop it (one at a time; see [`crate::evict`]).
fn evict_youngest(memfree: u64, running: &BTreeMap<u64, Running>) {
    let evictions = || running.values().filter_map(|r| r.eviction.as_ref());
    if !evict::needed(memfree, admission::available_memory(), evictions()) {
        return;
    }
    if let Some(youngest) = evictions()
        .rev()
        .find(|e| e.state() == evict::State::Running)
    {
        youngest.request();
    }
}

fn current_limit(spec: TimeoutSpec, tx: &watch::Sender<Option<Duration>>) -> Option<Duration> {
    match spec {
        TimeoutSpec::Never => None,
        TimeoutSpec::Fixed(d) => Some(d),
        TimeoutSpec::Relative(_) => *tx.borrow(),
    }
}

/// Whether `--load` and `--memfree` leave room for a job now; if not,
/// sets when to look again.
fn admitted(plan: &Plan, recheck: &mut Option<Instant>) -> bool {
    let load_ok = plan
        .load
        .is_none_or(|max| admission::runnable_processes().is_none_or(|n| n < max));
    let mem_ok = plan
        .memfree
        .is_none_or(|min| admission::available_memory().is_none_or(|m| m >= min));
    if load_ok && mem_ok {
        true
    } else {
        *recheck = Some(Instant::now() + admission::RECHECK);
        false
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
