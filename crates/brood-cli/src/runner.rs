//! The scheduler: runs jobs `-j` at a time on a Tokio runtime, each in its
//! own process group, with timeouts, retries, `--halt-on-error`, signals and
//! the job log.
//!
//! A job is one Tokio task in a [`JoinSet`]. The main loop starts a job
//! whenever fewer than `-j` run, collects finished ones, and reacts to
//! SIGINT/SIGTERM/SIGHUP and to a broken stdout. It tells running jobs to
//! stop through a [`watch`] channel: `Graceful` (SIGTERM to the group, the
//! grace period, SIGKILL) or `Kill` (SIGKILL to the group at once).
//!
//! Every stop goes to the job's whole process group, so grandchildren stop
//! too. `kill_on_drop` is set on every job as a backstop: a job whose task
//! is dropped (runtime shutdown, panic) is SIGKILLed with its group.

use crate::cli::{Halt, OutputMode};
use crate::inputs::Inputs;
use crate::joblog::{JobLog, Record};
use crate::output::{Chunk, Display, LineSplitter, Stream};
use crate::progress::Counts;
use crate::summary::{Ending, Summary};
use crate::template::{display_argv, Template};
use brood::{Command, ExitStatus, ResourceUsage, Signal, Stdio};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

/// How jobs run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Jobs at once.
    pub jobs: usize,
    /// Per-job time limit.
    pub timeout: Option<Duration>,
    /// SIGTERM-to-SIGKILL wait.
    pub grace: Duration,
    /// Retries of a failed job.
    pub retries: u32,
    /// Behaviour after a failure.
    pub halt: Halt,
}

/// One job to run.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Job number, from 1, in input order.
    pub seq: u64,
    /// The input (used for `--output tag` and the job log).
    pub input: Vec<u8>,
    /// What to execute; never empty.
    pub argv: Vec<OsString>,
}

/// Where jobs come from.
pub enum Source {
    /// A template applied to each input.
    Template {
        /// The command template.
        template: Template,
        /// The inputs.
        inputs: Inputs,
        /// The number of the next job.
        next_seq: u64,
    },
    /// A fixed list (the demo).
    Fixed(VecDeque<JobSpec>, usize),
}

impl Source {
    /// The next job; `None` at the end of input. Cancel-safe.
    pub async fn next(&mut self) -> Option<io::Result<JobSpec>> {
        match self {
            Source::Template {
                template,
                inputs,
                next_seq,
            } => {
                let input = match inputs.next().await? {
                    Ok(input) => input,
                    Err(e) => return Some(Err(e)),
                };
                let seq = *next_seq;
                *next_seq += 1;
                let argv = template.expand(&input, seq);
                Some(Ok(JobSpec { seq, input, argv }))
            }
            Source::Fixed(jobs, _) => jobs.pop_front().map(Ok),
        }
    }

    /// The number of jobs, once known.
    pub fn total(&self) -> Option<usize> {
        match self {
            Source::Template { inputs, .. } => inputs.total(),
            Source::Fixed(_, total) => Some(*total),
        }
    }
}

/// What running jobs are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Keep running.
    Run,
    /// SIGTERM the group, wait the grace period, SIGKILL.
    Graceful,
    /// SIGKILL the group now.
    Kill,
}

/// What the job tasks share.
struct Shared {
    cfg: Config,
    display: Arc<Display>,
}

/// One run of a job's command.
struct Attempt {
    start: SystemTime,
    runtime: Duration,
    status: Option<ExitStatus>,
    usage: ResourceUsage,
    timed_out: bool,
    cancelled: bool,
    stdout_bytes: u64,
    stderr_bytes: u64,
    /// Output not streamed yet (group mode).
    captured: Vec<Chunk>,
    /// Why the job could not be run or waited for.
    error: Option<String>,
}

impl Attempt {
    fn ok(&self) -> bool {
        !self.timed_out && !self.cancelled && self.status.is_some_and(|s| s.success())
    }
}

/// A finished job.
struct JobResult {
    spec: JobSpec,
    last: Attempt,
    retries: u32,
    user: Duration,
    sys: Duration,
    peak_rss: u64,
}

impl JobResult {
    fn ending(&self) -> Ending {
        if self.last.cancelled {
            Ending::Cancelled
        } else if self.last.timed_out {
            Ending::TimedOut
        } else if self.last.ok() {
            Ending::Ok
        } else {
            Ending::Failed
        }
    }

    fn record(&self) -> Record {
        let a = &self.last;
        Record {
            seq: self.spec.seq,
            input: self.spec.input.clone(),
            argv: self.spec.argv.clone(),
            start: Some(a.start),
            runtime: a.runtime,
            exit_code: match (a.status, &a.error) {
                (Some(s), _) => s.code(),
                // Could not start: the shell's conventions.
                (None, Some(_)) => Some(127),
                (None, None) => None,
            },
            signal: a.status.and_then(|s| s.signal()),
            timed_out: a.timed_out,
            retries: self.retries,
            user: a.usage.user_time(),
            sys: a.usage.system_time(),
            max_rss: a.usage.max_rss(),
            stdout_bytes: a.stdout_bytes,
            stderr_bytes: a.stderr_bytes,
        }
    }

    /// A one-line account of a failure, for stderr.
    fn failure_message(&self, cfg: &Config) -> String {
        let a = &self.last;
        let what = if a.timed_out {
            format!(
                "timed out after {}; its process group was stopped",
                crate::duration::human(cfg.timeout.unwrap_or_default())
            )
        } else if let Some(e) = &a.error {
            e.clone()
        } else if let Some(sig) = a.status.and_then(|s| s.signal()) {
            format!("killed by {:?}", Signal::from_raw(sig))
        } else {
            format!(
                "failed with exit status {}",
                a.status.and_then(|s| s.code()).unwrap_or(-1)
            )
        };
        let retried = match self.retries {
            0 => String::new(),
            n => format!(" (after {n} retr{})", if n == 1 { "y" } else { "ies" }),
        };
        format!(
            "brood: job {} {what}{retried}: {}",
            self.spec.seq,
            display_argv(&self.spec.argv)
        )
    }
}

/// Waits until running jobs are told to stop; returns the order.
async fn stop_requested(rx: &mut watch::Receiver<Stop>) -> Stop {
    loop {
        let now = *rx.borrow_and_update();
        if now != Stop::Run {
            return now;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Waits until running jobs are told to die at once.
async fn kill_requested(rx: &mut watch::Receiver<Stop>) {
    while stop_requested(rx).await != Stop::Kill {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Reads one of a job's pipes to its end. Returns the byte count and, in
/// group mode, the bytes.
async fn pump<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    stream: Stream,
    seq: u64,
    tag: Option<&[u8]>,
    display: &Display,
) -> (u64, Vec<u8>) {
    let Some(mut pipe) = pipe else {
        return (0, Vec::new());
    };
    let mode = display.mode();
    let mut total = 0u64;
    let mut captured = Vec::new();
    let mut splitter = LineSplitter::new(tag.map(<[u8]>::to_vec));
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        match mode {
            OutputMode::Group => captured.extend_from_slice(&buf[..n]),
            OutputMode::Line | OutputMode::Tag => {
                if let Some(lines) = splitter.feed(&buf[..n]) {
                    display.stream(seq, stream, lines);
                }
            }
            OutputMode::None => {}
        }
    }
    if let Some(rest) = splitter.finish() {
        display.stream(seq, stream, rest);
    }
    (total, captured)
}

/// Runs the job's command once.
async fn run_attempt(spec: &JobSpec, sh: &Shared, stop: &mut watch::Receiver<Stop>) -> Attempt {
    let grace = sh.cfg.grace;
    let start = SystemTime::now();
    let t0 = Instant::now();
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Attempt {
                start,
                runtime: t0.elapsed(),
                status: None,
                usage: ResourceUsage::default(),
                timed_out: false,
                cancelled: false,
                stdout_bytes: 0,
                stderr_bytes: 0,
                captured: Vec::new(),
                error: Some(format!(
                    "could not start {}: {e}",
                    spec.argv[0].to_string_lossy()
                )),
            }
        }
    };
    let handle = child.handle();
    let tag = (sh.display.mode() == OutputMode::Tag).then(|| {
        let mut t = spec.input.clone();
        t.push(b'\t');
        t
    });
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let display = &*sh.display;
    let io = async {
        tokio::join!(
            pump(out, Stream::Out, spec.seq, tag.as_deref(), display),
            pump(err, Stream::Err, spec.seq, tag.as_deref(), display),
        )
    };
    tokio::pin!(io);
    let mut io_done = None;
    let mut exit: Option<io::Result<(ExitStatus, ResourceUsage)>> = None;
    let mut timed_out = false;
    let mut cancelled = false;

    // Run until the leader exited and the pipes are closed, or until the
    // time limit or a stop order.
    {
        let deadline = sh.cfg.timeout.map(|t| t0 + t);
        let timer = sleep_until_opt(deadline);
        let wait = child.wait_with_rusage();
        tokio::pin!(timer, wait);
        while exit.is_none() || io_done.is_none() {
            tokio::select! {
                r = &mut wait, if exit.is_none() => exit = Some(r),
                r = &mut io, if io_done.is_none() => io_done = Some(r),
                () = &mut timer => {
                    timed_out = true;
                    break;
                }
                _ = stop_requested(stop) => {
                    cancelled = true;
                    break;
                }
            }
        }
    }

    if timed_out || cancelled {
        let kill_at = Instant::now() + grace;
        let mut killed = *stop.borrow() == Stop::Kill;
        if killed {
            let _ = handle.signal_group(Signal::KILL);
        }
        // brood's graceful stop: SIGTERM to the group, up to `grace`, then
        // SIGKILL. It resolves once the whole group is gone, also when the
        // leader had already exited and other members still hold our pipes.
        {
            let term = child.terminate(grace);
            tokio::pin!(term);
            loop {
                tokio::select! {
                    r = &mut term => {
                        if exit.is_none() {
                            exit = Some(r.map(|status| (status, ResourceUsage::default())));
                        }
                        break;
                    }
                    r = &mut io, if io_done.is_none() => io_done = Some(r),
                    () = kill_requested(stop), if !killed => {
                        killed = true;
                        let _ = handle.signal_group(Signal::KILL);
                    }
                }
            }
        }
        if let (Some(Ok((_, usage))), Some(real)) = (&mut exit, child.resource_usage()) {
            *usage = real;
        }
        // Collect what is left of the output, for at most the grace period
        // (plus a moment after the final SIGKILL).
        if io_done.is_none() {
            let give_up = kill_at.max(Instant::now()) + Duration::from_millis(200);
            loop {
                tokio::select! {
                    r = &mut io => {
                        io_done = Some(r);
                        break;
                    }
                    () = sleep_until(kill_at), if !killed => {
                        killed = true;
                        let _ = handle.signal_group(Signal::KILL);
                    }
                    () = kill_requested(stop), if !killed => {
                        killed = true;
                        let _ = handle.signal_group(Signal::KILL);
                    }
                    () = sleep_until(give_up) => break,
                }
            }
        }
    }

    let ((stdout_bytes, out), (stderr_bytes, err)) = io_done.unwrap_or_default();
    let (status, usage, error) = match exit {
        Some(Ok((status, usage))) => (Some(status), usage, None),
        Some(Err(e)) => (
            None,
            ResourceUsage::default(),
            Some(format!("could not be waited for: {e}")),
        ),
        None => (None, ResourceUsage::default(), None),
    };
    Attempt {
        start,
        runtime: t0.elapsed(),
        status,
        usage,
        timed_out,
        cancelled,
        stdout_bytes,
        stderr_bytes,
        captured: vec![(Stream::Out, out), (Stream::Err, err)],
        error,
    }
}

/// Runs a job, with its retries, and hands its output to the display.
async fn run_job(spec: JobSpec, sh: Arc<Shared>, mut stop: watch::Receiver<Stop>) -> JobResult {
    let mut retries = 0;
    let (mut user, mut sys, mut peak_rss) = (Duration::ZERO, Duration::ZERO, 0);
    loop {
        let mut attempt = run_attempt(&spec, &sh, &mut stop).await;
        user += attempt.usage.user_time();
        sys += attempt.usage.system_time();
        peak_rss = peak_rss.max(attempt.usage.max_rss());
        let retry = !attempt.ok()
            && !attempt.cancelled
            && retries < sh.cfg.retries
            && *stop.borrow() == Stop::Run;
        if !retry {
            sh.display
                .finish(spec.seq, std::mem::take(&mut attempt.captured));
            return JobResult {
                spec,
                last: attempt,
                retries,
                user,
                sys,
                peak_rss,
            };
        }
        retries += 1;
    }
}

/// Runs every job of `source`; prints failures and the summary on stderr.
/// Returns brood's exit status.
pub async fn run(
    cfg: Config,
    mut source: Source,
    display: Arc<Display>,
    mut joblog: Option<JobLog>,
) -> u8 {
    let started_at = Instant::now();
    let (mut sigint, mut sigterm, mut sighup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            display.message(&format!("brood: error: cannot handle signals: {e}"));
            return 255;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        display: display.clone(),
    });
    let mut set: JoinSet<JobResult> = JoinSet::new();
    let mut summary = Summary::default();
    let mut accepting = true;
    let mut exhausted = false;
    let mut signalled: Option<Signal> = None;
    let mut killing = false;
    let mut halted = false;
    let mut broken = false;
    let mut fatal = false;
    let mut started = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let progress = display.progress();

    // Signal handling, shared by the main loop and the final wait.
    let on_signal = |sig: Signal,
                     signalled: &mut Option<Signal>,
                     killing: &mut bool,
                     accepting: &mut bool,
                     running: usize| {
        if signalled.is_none() {
            *signalled = Some(sig);
            *accepting = false;
            stop_tx.send_replace(Stop::Graceful);
            display.message(&format!(
                "brood: got {sig:?}: stopping {running} running job{} (SIGTERM, {} grace, SIGKILL); \
                 send it again to kill them at once",
                if running == 1 { "" } else { "s" },
                crate::duration::human(cfg.grace),
            ));
        } else if !*killing {
            *killing = true;
            stop_tx.send_replace(Stop::Kill);
            display.message("brood: killing every job now (SIGKILL)");
        }
    };

    loop {
        if set.is_empty() && (exhausted || !accepting) {
            break;
        }
        tokio::select! {
            biased;
            _ = sigint.recv() => on_signal(Signal::INT, &mut signalled, &mut killing, &mut accepting, set.len()),
            _ = sigterm.recv() => on_signal(Signal::TERM, &mut signalled, &mut killing, &mut accepting, set.len()),
            _ = sighup.recv() => on_signal(Signal::HUP, &mut signalled, &mut killing, &mut accepting, set.len()),
            () = display.broken_notify.notified(), if !broken => {
                // Nobody reads our output any more: start nothing new, stop
                // what runs, and exit quietly.
                broken = true;
                accepting = false;
                stop_tx.send_replace(Stop::Graceful);
            }
            Some(joined) = set.join_next(), if !set.is_empty() => {
                let job = match joined {
                    Ok(job) => job,
                    Err(e) => {
                        display.message(&format!("brood: error: a job's task failed: {e}"));
                        fatal = true;
                        continue;
                    }
                };
                let ending = job.ending();
                summary.add(
                    ending,
                    job.spec.seq,
                    job.last.runtime,
                    job.user,
                    job.sys,
                    job.peak_rss,
                    || display_argv(&job.spec.argv),
                );
                if let Some(log) = &mut joblog {
                    if let Err(e) = log.write(&job.record()) {
                        display.message(&format!("brood: error: writing the job log: {e}"));
                        joblog = None;
                        fatal = true;
                    }
                }
                if matches!(ending, Ending::Failed | Ending::TimedOut) {
                    display.message(&job.failure_message(&cfg));
                    if cfg.halt != Halt::Never && !halted && signalled.is_none() {
                        halted = true;
                        accepting = false;
                        let running = set.len();
                        if cfg.halt == Halt::Now {
                            stop_tx.send_replace(Stop::Graceful);
                            display.message(&format!(
                                "brood: --halt-on-error=now: starting no new jobs, stopping {running} running"
                            ));
                        } else if running > 0 {
                            display.message(&format!(
                                "brood: --halt-on-error: starting no new jobs, waiting for {running} running"
                            ));
                        }
                    }
                }
            }
            next = source.next(), if accepting && !exhausted && set.len() < cfg.jobs => match next {
                None => exhausted = true,
                Some(Ok(spec)) => {
                    started += 1;
                    set.spawn(run_job(spec, shared.clone(), stop_rx.clone()));
                }
                Some(Err(e)) => {
                    display.message(&format!("brood: error: reading inputs: {e}"));
                    fatal = true;
                    accepting = false;
                }
            },
            _ = tick.tick(), if progress => display.draw_progress(&Counts {
                done: summary.finished(),
                total: source.total(),
                running: set.len(),
                failed: summary.failed,
                elapsed: started_at.elapsed(),
            }),
        }
    }

    display.flush_all();
    display.clear_progress();
    if let Some(log) = &mut joblog {
        if let Err(e) = log.flush() {
            display.message(&format!("brood: error: writing the job log: {e}"));
            fatal = true;
        }
    }
    summary.wall = started_at.elapsed();
    summary.not_started = source.total().map(|t| t.saturating_sub(started));
    display.message(&summary.render());
    if let Some(sig) = signalled {
        128 + sig.as_raw() as u8
    } else if fatal {
        255
    } else {
        summary.failed.min(101) as u8
    }
}

/// `--dry-run`: prints each job's command line. Returns the exit status.
pub async fn dry_run(mut source: Source) -> u8 {
    use std::io::Write;
    let stdout = io::stdout();
    while let Some(next) = source.next().await {
        match next {
            Ok(spec) => {
                let line = display_argv(&spec.argv) + "\n";
                let mut out = stdout.lock();
                if let Err(e) = out.write_all(line.as_bytes()) {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return 0;
                    }
                    crate::say(format_args!("brood: error: writing to stdout: {e}\n"));
                    return 255;
                }
            }
            Err(e) => {
                crate::say(format_args!("brood: error: reading inputs: {e}\n"));
                return 255;
            }
        }
    }
    match stdout.lock().flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            crate::say(format_args!("brood: error: writing to stdout: {e}\n"));
            255
        }
        _ => 0,
    }
}
