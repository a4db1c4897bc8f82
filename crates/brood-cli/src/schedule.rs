//! The scheduler: starts jobs `-j` at a time into numbered slots, paced
//! by `--delay`, `--load` and `--memfree`; collects finished ones into the
//! summary, the job log and `--halt`; and reacts to signals and to a
//! broken stdout.
//!
//! A job is one Tokio task in a [`JoinSet`]. Running jobs are told to stop
//! through a [`watch`] channel: `Graceful` (the termination sequence) or
//! `Kill` (SIGKILL to the group at once).
//!
//! Signals: SIGINT and SIGTERM stop every job gracefully (a second one,
//! or `--signal-grace` running out, kills them at once) and exit with
//! 128 + the signal. SIGHUP drains, as in GNU parallel: no new jobs start,
//! running ones finish, and brood exits as it would have.
//!
//! Inside a cluster engine, the stop signal reaches brood and its jobs at
//! the same moment (Slurm's `scancel` and time limit signal every process
//! of the task), so a job may end of it before brood has heard its own. A
//! job that fails once brood has been told to stop is logged `stopped`,
//! not `failed`, so that `--resume` runs it again (see
//! [`Finished::outcome`] for the job's own side of this); and a failed
//! job's record is held back for a moment ([`crate::hold`]), in case the
//! stop that caused the failure is still on its way to brood.

use crate::admission;
use crate::evict::{self, Eviction};
use crate::halt::{Halt, HaltState, When};
use crate::hold::{self, Held};
use crate::job::{run_job, Controls, Finished, JobContext, Stop, Timeout};
use crate::joblog::{JobLog, Outcome, Record};
use crate::jobs::{JobSource, JobSpec};
use crate::output::Display;
use crate::progress::Counts;
use crate::summary::Summary;
use crate::template::display_argv;
use brood::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::future::Future;
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
    /// After SIGINT or SIGTERM, how long the jobs get before SIGKILL.
    pub signal_grace: Duration,
}

/// Runs every job of `source`. Returns brood's exit status.
pub async fn run(
    plan: Plan,
    source: JobSource,
    ctx: Arc<JobContext>,
    joblog: Option<JobLog>,
) -> u8 {
    let signals = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(int), Ok(term), Ok(hup)) => Signals { int, term, hup },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            ctx.display
                .error(&format!("brood: error: cannot handle signals: {e}"));
            return 255;
        }
    };
    let code = Scheduler::new(plan, ctx.clone(), joblog)
        .run(source, signals)
        .await;
    // Before brood exits: the cgroups of the trees that ended with their
    // jobs (`tree_ends`); within about 10 ms.
    ctx.tree_ends.wait_all().await;
    code
}

/// The signals brood reacts to.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// A run's state between events.
struct Scheduler {
    plan: Plan,
    ctx: Arc<JobContext>,
    display: Arc<Display>,
    joblog: Option<JobLog>,
    /// Records of failed jobs not yet written, in case a stop signal
    /// follows (see [`crate::hold`]).
    held: Held<(Record, Vec<OsString>)>,
    /// The run-wide stop order.
    stop_tx: watch::Sender<Stop>,
    /// The `N%` time limit, once known.
    limit_tx: watch::Sender<Option<Duration>>,
    /// Runtimes of the jobs that succeeded, sorted (for `N%`).
    successes: Vec<Duration>,
    free_slots: BTreeSet<u64>,
    /// By start order, so the last one is the youngest.
    running: BTreeMap<u64, Running>,
    summary: Summary,
    halt: HaltState,
    /// New jobs may start.
    accepting: bool,
    /// The source has no more jobs.
    exhausted: bool,
    /// SIGINT or SIGTERM came.
    signalled: Option<Signal>,
    /// A second one came, or `--signal-grace` ran out: every job is
    /// SIGKILLed.
    killing: bool,
    /// When `--signal-grace` runs out.
    kill_at: Option<Instant>,
    /// Nobody reads stdout any more.
    broken: bool,
    /// brood itself failed (exit 255).
    fatal: bool,
    started: usize,
    finished_runtime: Duration,
    /// `--delay`: no start before this.
    next_start: Instant,
    /// When the machine had no room: look again at this instant.
    recheck: Option<Instant>,
}

impl Scheduler {
    fn new(plan: Plan, ctx: Arc<JobContext>, joblog: Option<JobLog>) -> Scheduler {
        Scheduler {
            free_slots: (1..=plan.jobs as u64).collect(),
            halt: HaltState::new(plan.halt),
            plan,
            display: ctx.display.clone(),
            ctx,
            joblog,
            held: Held::new(hold::WINDOW),
            stop_tx: watch::Sender::new(Stop::Run),
            limit_tx: watch::Sender::new(None),
            successes: Vec::new(),
            running: BTreeMap::new(),
            summary: Summary::default(),
            accepting: true,
            exhausted: false,
            signalled: None,
            killing: false,
            kill_at: None,
            broken: false,
            fatal: false,
            started: 0,
            finished_runtime: Duration::ZERO,
            next_start: Instant::now(),
            recheck: None,
        }
    }

    async fn run(mut self, mut source: JobSource, mut signals: Signals) -> u8 {
        let started_at = Instant::now();
        let mut set: JoinSet<(u64, u64, Finished)> = JoinSet::new();
        let mut tick = tokio::time::interval(admission::RECHECK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // The tick redraws the bar and watches memory for `--memfree`.
        let ticking = self.display.bar().is_some() || self.plan.memfree.is_some();
        loop {
            if set.is_empty() && (self.exhausted || !self.accepting) {
                break;
            }
            let (may_start, wake) = self.pacing();
            tokio::select! {
                biased;
                _ = signals.int.recv() => self.stop_signal(Signal::INT, set.len()),
                _ = signals.term.recv() => self.stop_signal(Signal::TERM, set.len()),
                _ = signals.hup.recv() => self.hangup(set.len()),
                () = self.display.broken_notify.notified(), if !self.broken => {
                    // Nobody reads our output any more: start nothing new,
                    // stop what runs, and exit quietly.
                    self.broken = true;
                    self.accepting = false;
                    Stop::raise(&self.stop_tx, Stop::Graceful);
                }
                Some(joined) = set.join_next(), if !set.is_empty() => match joined {
                    Ok((order, slot, job)) => {
                        self.finished(order, slot, job, &source, set.len());
                        self.draw(&source);
                    }
                    Err(e) => {
                        self.display.error(&format!("brood: error: a job's task failed: {e}"));
                        self.fatal = true;
                    }
                },
                () = sleep_until_opt(self.kill_at), if self.kill_at.is_some() && !self.killing => {
                    self.killing = true;
                    Stop::raise(&self.stop_tx, Stop::Kill);
                    self.display.message(&format!(
                        "brood: --signal-grace ({}) is over: killing every job now (SIGKILL)",
                        crate::duration::human(self.plan.signal_grace)
                    ));
                }
                () = sleep_until_opt(self.held.next_due()), if self.held.next_due().is_some() => {
                    for (record, argv) in self.held.take_due(Instant::now()) {
                        self.log(&record, &argv);
                    }
                }
                () = sleep_until_opt(wake), if wake.is_some() => self.recheck = None,
                next = source.next(), if may_start => match next {
                    None => self.exhausted = true,
                    Some(Err(e)) => {
                        self.display.error(&format!("brood: error: reading inputs: {e}"));
                        self.fatal = true;
                        self.accepting = false;
                    }
                    Some(Ok(spec)) => {
                        let (order, slot, job) = self.start(spec, &source);
                        set.spawn(async move { (order, slot, job.await) });
                    }
                },
                _ = tick.tick(), if ticking => {
                    if let Some(memfree) = self.plan.memfree {
                        evict_youngest(memfree, &self.running);
                    }
                    self.draw(&source);
                }
            }
        }
        self.end(started_at, &source)
    }

    /// Whether a job may start now, and when to look again if not.
    fn pacing(&mut self) -> (bool, Option<Instant>) {
        let now = Instant::now();
        let room = !self.free_slots.is_empty();
        let wanted = self.accepting && !self.exhausted && room;
        let paced = now >= self.next_start && self.recheck.is_none_or(|r| now >= r);
        let may_start = wanted && paced && admitted(&self.plan, &mut self.recheck);
        let wake = match (wanted, self.recheck) {
            (true, Some(r)) => Some(r.max(self.next_start)),
            (true, None) if now < self.next_start => Some(self.next_start),
            _ => None,
        };
        (may_start, wake)
    }

    /// Starts `spec` in the first free slot; returns its start order, its
    /// slot and the job to spawn.
    fn start(
        &mut self,
        spec: JobSpec,
        source: &JobSource,
    ) -> (u64, u64, impl Future<Output = Finished>) {
        self.started += 1;
        let order = self.started as u64;
        let slot = self
            .free_slots
            .pop_first()
            .expect("a job starts only with a free slot");
        let argv = spec.argv_for_slot(source.template(), slot);
        let timeout = match self.plan.timeout {
            TimeoutSpec::Never => Timeout::Never,
            TimeoutSpec::Fixed(d) => Timeout::Fixed(d),
            TimeoutSpec::Relative(_) => Timeout::Relative(self.limit_tx.subscribe()),
        };
        let eviction = self.plan.memfree.map(|_| Eviction::default());
        self.running.insert(
            order,
            Running {
                started: Instant::now(),
                eviction: eviction.clone(),
            },
        );
        if let Some(d) = self.plan.delay {
            self.next_start = Instant::now() + d;
        }
        let controls = Controls {
            timeout,
            stop: self.stop_tx.subscribe(),
            eviction,
        };
        (
            order,
            slot,
            run_job(spec, argv, slot, order, self.ctx.clone(), controls),
        )
    }

    /// SIGINT or SIGTERM: the first stops every job gracefully, the second
    /// kills them.
    fn stop_signal(&mut self, sig: Signal, running: usize) {
        self.accepting = false;
        if self.signalled.is_none() {
            self.signalled = Some(sig);
            let now = Instant::now();
            self.kill_at = Some(now + self.plan.signal_grace);
            // The jobs that failed just before are taken to have been
            // stopped by the same stop, sent to them a moment earlier.
            let (failed, stopped) = self.held.stop(now);
            for (record, argv) in failed {
                self.log(&record, &argv);
            }
            for (mut record, argv) in stopped {
                record.outcome = Outcome::Stopped;
                self.summary.failed -= 1;
                self.summary.cancelled += 1;
                self.log(&record, &argv);
            }
            Stop::raise(&self.stop_tx, Stop::Graceful);
            self.display.message(&format!(
                "brood: got {sig:?}: stopping {running} running job{}; \
                 send it again to kill them at once",
                if running == 1 { "" } else { "s" },
            ));
        } else if !self.killing {
            self.killing = true;
            Stop::raise(&self.stop_tx, Stop::Kill);
            self.display
                .message("brood: killing every job now (SIGKILL)");
        }
    }

    /// SIGHUP drains: no new job or attempt; running ones finish.
    fn hangup(&mut self, running: usize) {
        if self.accepting {
            self.accepting = false;
            Stop::raise(&self.stop_tx, Stop::Drain);
            self.display.message(&format!(
                "brood: got SIGHUP: starting no new jobs, waiting for {running} running"
            ));
        }
    }

    /// A job has finished: count it, log it, and apply `--timeout N%` and
    /// `--halt`.
    fn finished(
        &mut self,
        order: u64,
        slot: u64,
        mut job: Finished,
        source: &JobSource,
        still_running: usize,
    ) {
        self.running.remove(&order);
        self.free_slots.insert(slot);
        // The select loop handles signals before finished jobs, so a job
        // whose end is handled after brood's stop signal arrived is known
        // here to have ended around it.
        job.run_stopped = self.signalled.is_some();
        let outcome = job.outcome();
        self.finished_runtime += job.last.runtime;
        self.summary.add(
            outcome,
            job.spec.seq,
            job.last.runtime,
            job.user,
            job.sys,
            job.peak_rss,
            || display_argv(&job.argv),
        );
        let record = job.record();
        if outcome == Outcome::Failed && self.joblog.is_some() {
            self.held.push(Instant::now(), (record, job.argv.clone()));
        } else {
            self.log(&record, &job.argv);
        }
        if outcome == Outcome::Ok {
            if let TimeoutSpec::Relative(f) = self.plan.timeout {
                let at = self.successes.partition_point(|d| *d < job.last.runtime);
                self.successes.insert(at, job.last.runtime);
                // GNU parallel's median: the lower one of an even count.
                let median = self.successes[(self.successes.len() - 1) / 2];
                self.limit_tx.send_replace(Some(median.mul_f64(f)));
            }
        }
        let from_outside = job.stopped_from_outside().is_some();
        if from_outside
            || matches!(
                outcome,
                Outcome::Failed | Outcome::TimedOut | Outcome::LowMemory
            )
        {
            let limit = current_limit(self.plan.timeout, &self.limit_tx);
            self.display.message(&job.failure_message(limit));
        }
        if (outcome == Outcome::Stopped && !from_outside) || self.signalled.is_some() || self.broken
        {
            return;
        }
        // A job stopped from outside did not succeed: it counts as a
        // failure for --halt and the exit status.
        let Some(when) =
            self.halt
                .record(outcome == Outcome::Ok, job.status_code(), source.total())
        else {
            return;
        };
        self.accepting = false;
        if when == When::Now {
            Stop::raise(&self.stop_tx, Stop::Graceful);
            self.display.message(&format!(
                "brood: --halt: starting no new jobs, stopping {still_running} running"
            ));
        } else {
            Stop::raise(&self.stop_tx, Stop::Drain);
            if still_running > 0 {
                self.display.message(&format!(
                    "brood: --halt: starting no new jobs, waiting for {still_running} running"
                ));
            }
        }
    }

    /// Writes one record to the job log, if there is one.
    fn log(&mut self, record: &Record, argv: &[OsString]) {
        if let Some(log) = &mut self.joblog {
            if let Err(e) = log.write(record, argv) {
                self.display
                    .error(&format!("brood: error: writing the job log: {e}"));
                self.joblog = None;
                self.fatal = true;
            }
        }
    }

    /// Redraws the progress bar, if there is one.
    fn draw(&self, source: &JobSource) {
        if let Some(bar) = self.display.bar() {
            let now = Instant::now();
            bar.update(&Counts {
                done: self.summary.finished(),
                total: source.total().map(|t| t.saturating_sub(source.skipped)),
                failed: self.summary.failed,
                running: self.running.values().map(|r| now - r.started).collect(),
                finished_runtime: self.finished_runtime,
                slots: self.plan.jobs,
            });
        }
    }

    /// After the last job: flushes output and the log, prints the summary
    /// and returns the exit status.
    fn end(mut self, started_at: Instant, source: &JobSource) -> u8 {
        // Every job has ended: no stop can come for these any more.
        for (record, argv) in self.held.take_all() {
            self.log(&record, &argv);
        }
        self.display.flush_all();
        if let Some(bar) = self.display.bar() {
            bar.clear();
        }
        if let Some(log) = &mut self.joblog {
            if let Err(e) = log.finish() {
                self.display
                    .error(&format!("brood: error: writing the job log: {e}"));
                self.fatal = true;
            }
        }
        let summary = &mut self.summary;
        summary.wall = started_at.elapsed();
        summary.skipped = source.skipped;
        summary.not_started = source
            .total()
            .map(|t| t.saturating_sub(self.started + source.skipped));
        let not_started = summary.not_started.unwrap_or(0);
        if self.plan.summary {
            self.display.message(&summary.render());
        } else if not_started > 0 {
            // Stopped early: say how many never ran, even off a terminal.
            self.display
                .message(&format!("brood: {not_started} not started"));
        }
        if let Some(sig) = self.signalled {
            128 + sig.as_raw() as u8
        } else if self.fatal {
            255
        } else {
            self.halt.exit_status(self.started)
        }
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
