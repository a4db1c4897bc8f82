//! Running one job: its attempts (`--retries`, `--retry-delay`), its time
//! limit (`--timeout`, fixed or relative to the median), its stop
//! (`--termseq`), its end (`--wait-delay`, `--leftovers`), and where its
//! output goes.
//!
//! Each job is contained (`--contain`, by default a cgroup of its own
//! where brood can make one, else a process group), and leads its own
//! process group either way. The `--termseq` signals go to the group; what
//! is left of the tree once the leader has exited (in a cgroup, also the
//! descendants that called `setsid` or double-forked) is stopped as a
//! whole: SIGTERM to every member, then SIGKILL. `kill_on_drop` is the
//! backstop: a job whose task is dropped (runtime shutdown, panic) is
//! SIGKILLed with its tree.

use crate::evict::{self, Eviction};
use crate::joblog::{rfc3339, Outcome, Record};
use crate::jobs::JobSpec;
use crate::output::{Display, LineSplitter, Mode, Stream};
use crate::results::Results;
use crate::spool::Spool;
use crate::template::display_argv;
use crate::termseq::TermSeq;
use crate::tree_ends::TreeEnds;
use brood::{
    Child, ChildHandle, Command, Containment, ExitStatus, ResourceUsage, Signal, Stdio, TreeUsage,
};
use std::ffi::OsString;
use std::future::Future;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};

/// What running jobs are told; each level includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep running.
    Run,
    /// Start no new attempt (SIGHUP, `--halt soon`): a retry would be a
    /// new start, so running attempts finish and no retry follows.
    Drain,
    /// Stop through the termination sequence.
    Graceful,
    /// SIGKILL the group now.
    Kill,
}

impl Stop {
    /// Raises the order on `tx` to `level`; a lower one never replaces a
    /// higher one (a SIGHUP after Ctrl-C changes nothing).
    pub fn raise(tx: &watch::Sender<Stop>, level: Stop) {
        tx.send_if_modified(|now| {
            let higher = level > *now;
            if higher {
                *now = level;
            }
            higher
        });
    }
}

/// The time limit of a job.
#[derive(Clone, Debug)]
pub enum Timeout {
    /// None.
    Never,
    /// A fixed duration.
    Fixed(Duration),
    /// The current limit, which moves with the median runtime (`N%`);
    /// `None` until a job has succeeded.
    Relative(watch::Receiver<Option<Duration>>),
}

/// Where a job's output goes, besides the display.
#[derive(Clone, Debug)]
pub enum Save {
    /// Nowhere else.
    No,
    /// `--results NAME`.
    Results(Results),
    /// `--files`.
    Files,
}

/// Makes a job's tag prefix (`--tag`, `--tagstring`) from the job and
/// its slot.
pub type Tagger = Arc<dyn Fn(&JobSpec, u64) -> Vec<u8> + Send + Sync>;

/// `--tag`: each line prefixed with the job's arguments and a tab.
pub fn tag_with_input() -> Tagger {
    Arc::new(|spec: &JobSpec, _| {
        let mut t = spec.input();
        t.push(b'\t');
        t
    })
}

/// How each job's tree is held together (`--contain`, `--cgroup-parent`).
#[derive(Clone, Debug, Default)]
pub struct Confinement {
    /// What to ask of the library; `None` for `--contain none`.
    pub containment: Option<Containment>,
    /// Where the jobs' cgroups go; by default under brood's own.
    pub cgroup_parent: Option<PathBuf>,
    /// The cgroups of ended jobs, kept for the next ones: a job then costs
    /// no `mkdir` and `rmdir` of a cgroup. Dropped with the run's context,
    /// which removes them.
    pub pool: Option<brood::CgroupPool>,
}

impl Confinement {
    /// Checks, before any job starts, that the jobs can have the cgroups
    /// they were promised: under `--contain cgroup`, or wherever a
    /// `--cgroup-parent` was given (a parent named on purpose is no place
    /// for `auto` to fall back quietly to process groups). Otherwise every
    /// job would fail to start, or run unconfined, each with its own line.
    ///
    /// The check is one contained spawn of this program (`--version`, which
    /// exits at once): the library's own test of the parent, so the reason
    /// is the one a job would get (missing, not cgroup v2, not a domain,
    /// not writable). `Ok` where nothing is to be checked.
    pub async fn check(&self) -> Result<(), String> {
        let what = match (&self.containment, &self.cgroup_parent) {
            (Some(_), Some(_)) => "--cgroup-parent",
            (Some(Containment::Cgroup), None) => "--contain cgroup",
            _ => return Ok(()),
        };
        // On Linux (the only place with cgroups), /proc/self/exe: the child
        // runs it before its exec, so it is brood's binary even if the file
        // was replaced or removed since brood started.
        let me = if cfg!(target_os = "linux") {
            std::path::PathBuf::from("/proc/self/exe")
        } else {
            std::env::current_exe()
                .map_err(|e| format!("{what}: cannot find this program to test it: {e}"))?
        };
        let mut probe = Command::new(me);
        probe
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .contain(Containment::Cgroup);
        if let Some(parent) = &self.cgroup_parent {
            probe.cgroup_parent(parent);
        }
        match probe.spawn() {
            Ok(mut child) => {
                // Until its cgroup is gone, so that none is left behind.
                let _ = child.wait_tree().await;
                Ok(())
            }
            Err(e) => {
                let e = e.to_string();
                let e = e.strip_prefix("brood: ").unwrap_or(&e);
                // The library's message names the parent when it is one.
                Err(match self.cgroup_parent {
                    Some(_) => e.to_string(),
                    None => format!("{what}: {e}"),
                })
            }
        }
    }
}

/// What happens to a job's processes still running once it is done
/// (`--leftovers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftovers {
    /// The rest of the tree is stopped.
    Kill,
    /// They are left running.
    Keep,
}

/// What every job shares.
pub struct JobContext {
    /// How to stop a job.
    pub termseq: TermSeq,
    /// Attempts in all.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each later one.
    pub retry_delay: Option<Duration>,
    /// Where output goes.
    pub display: Arc<Display>,
    /// The tag prefix, per job (`--tag`, `--tagstring`).
    pub tag: Option<Tagger>,
    /// `--results`, `--files`.
    pub save: Save,
    /// `-t`: print each command line on stderr.
    pub verbose: bool,
    /// `--memfree`, in bytes: an evicted job's next attempt waits for it.
    pub memfree: Option<u64>,
    /// `--contain`, `--cgroup-parent`.
    pub confinement: Confinement,
    /// `--wait-delay`: how long the output pipes may stay open once the
    /// leader has exited.
    pub wait_delay: Duration,
    /// `--leftovers`.
    pub leftovers: Leftovers,
    /// The empty trees whose cgroups brood waits for before it exits.
    pub tree_ends: TreeEnds,
}

/// Why an attempt was cut short by brood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// It ran out of time.
    TimedOut,
    /// The whole run was stopped (signal, `--halt now`, broken stdout).
    Stopped,
    /// `--memfree`: memory ran low and it was the youngest job.
    LowMemory,
}

/// One run of a job's command.
pub struct Attempt {
    start: SystemTime,
    /// How long it ran.
    pub runtime: Duration,
    status: Option<ExitStatus>,
    /// The leader's own figures.
    usage: ResourceUsage,
    /// The whole tree's figures, where it had a cgroup.
    tree: Option<TreeUsage>,
    /// What containment it got (`None`: `--contain none`, or it never
    /// started).
    containment: Option<Containment>,
    /// Processes of its tree still running when it was done.
    leftovers: Option<u64>,
    interrupted: Option<Interrupt>,
    stdout_bytes: u64,
    stderr_bytes: u64,
    out: Spool,
    err: Spool,
    /// Why the job could not be run or waited for.
    pub error: Option<String>,
}

impl Attempt {
    fn ok(&self) -> bool {
        self.interrupted.is_none() && self.status.is_some_and(|s| s.success())
    }

    fn failed_to_start(start: SystemTime, t0: Instant, error: String) -> Attempt {
        Attempt {
            start,
            runtime: t0.elapsed(),
            status: None,
            usage: ResourceUsage::default(),
            tree: None,
            containment: None,
            leftovers: None,
            interrupted: None,
            stdout_bytes: 0,
            stderr_bytes: 0,
            out: Spool::default(),
            err: Spool::default(),
            error: Some(error),
        }
    }
}

/// A finished job.
pub struct Finished {
    /// The job.
    pub spec: JobSpec,
    /// The argv that ran.
    pub argv: Vec<OsString>,
    /// Its last attempt.
    pub last: Attempt,
    /// Attempts after the first.
    pub retries: u32,
    /// User CPU of all attempts.
    pub user: Duration,
    /// System CPU of all attempts.
    pub sys: Duration,
    /// Peak RSS of any attempt.
    pub peak_rss: u64,
    /// brood had been told to stop (SIGINT, SIGTERM) by the time the
    /// scheduler handled the job's end; set by the scheduler.
    pub run_stopped: bool,
}

/// The signals that stop a job rather than report on its work: what an
/// engine, a user or the kernel sends to end a process (Slurm's `scancel`
/// and time limit: SIGTERM, then SIGKILL).
const STOP_SIGNALS: [Signal; 4] = [Signal::TERM, Signal::INT, Signal::HUP, Signal::KILL];

impl Finished {
    /// How the job ended.
    ///
    /// A job that did not succeed is `stopped`, not `failed`, when it was
    /// cut short rather than done: brood stopped it, brood had been told to
    /// stop when the job ended ([`Finished::run_stopped`]: an engine signals
    /// brood and its jobs at once, so the job may end of the same signal a
    /// moment before brood hears it), or it was killed by a stop signal
    /// brood did not send ([`Finished::stopped_from_outside`]). `--resume`
    /// runs stopped jobs again; a failure would be skipped, and lost.
    pub fn outcome(&self) -> Outcome {
        match self.last.interrupted {
            Some(Interrupt::Stopped) => Outcome::Stopped,
            Some(Interrupt::TimedOut) => Outcome::TimedOut,
            Some(Interrupt::LowMemory) => Outcome::LowMemory,
            None if self.last.ok() => Outcome::Ok,
            None if self.run_stopped || self.stopped_from_outside().is_some() => Outcome::Stopped,
            None => Outcome::Failed,
        }
    }

    /// The stop signal (SIGTERM, SIGINT, SIGHUP, SIGKILL) that killed the
    /// job's last attempt, when brood did not send it. brood signals a job
    /// only when it interrupts it, so a signal death of an attempt brood
    /// did not interrupt came from elsewhere.
    pub fn stopped_from_outside(&self) -> Option<Signal> {
        if self.last.interrupted.is_some() {
            return None;
        }
        let sig = Signal::from_raw(self.last.status?.signal()?);
        STOP_SIGNALS.contains(&sig).then_some(sig)
    }

    /// The job's own status for `--halt`: its exit code, or 128 + signal
    /// (127 if it could not start).
    pub fn status_code(&self) -> u8 {
        match (self.last.status, &self.last.error) {
            (Some(s), _) => match (s.code(), s.signal()) {
                (Some(c), _) => c as u8,
                (None, Some(sig)) => (128 + sig) as u8,
                _ => 1,
            },
            (None, Some(_)) => 127,
            (None, None) => 1,
        }
    }

    /// The job log record.
    pub fn record(&self) -> Record {
        let a = &self.last;
        Record {
            seq: self.spec.seq,
            key: self.spec.key,
            input: String::from_utf8_lossy(&self.spec.input()).into_owned(),
            argv: self
                .argv
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect(),
            start: rfc3339(a.start),
            runtime_s: a.runtime.as_secs_f64(),
            exit_code: match (a.status, &a.error) {
                (Some(s), _) => s.code(),
                // Could not start: the shell's convention.
                (None, Some(_)) => Some(127),
                (None, None) => None,
            },
            signal: a.status.and_then(|s| s.signal()),
            timed_out: a.interrupted == Some(Interrupt::TimedOut),
            retries: self.retries,
            user_s: a.usage.user_time().as_secs_f64(),
            sys_s: a.usage.system_time().as_secs_f64(),
            max_rss_bytes: a.usage.max_rss(),
            tree_user_s: a.tree.map(|t| t.user_time().as_secs_f64()),
            tree_sys_s: a.tree.map(|t| t.system_time().as_secs_f64()),
            tree_peak_bytes: a.tree.and_then(|t| t.peak_memory()),
            stdout_bytes: a.stdout_bytes,
            stderr_bytes: a.stderr_bytes,
            containment: a.containment.map(|c| match c {
                Containment::Cgroup => "cgroup".to_string(),
                _ => "group".to_string(),
            }),
            // Uncontained, brood does not look for leftovers.
            leftovers: a.containment.and(a.leftovers),
            outcome: self.outcome(),
        }
    }

    /// A one-line account of a failure, for stderr.
    pub fn failure_message(&self, limit: Option<Duration>) -> String {
        let a = &self.last;
        let what = if a.interrupted == Some(Interrupt::LowMemory) {
            "was stopped: less than half of --memfree was available".to_string()
        } else if a.interrupted == Some(Interrupt::TimedOut) {
            match limit {
                Some(l) => format!(
                    "timed out after {}; its process tree was stopped",
                    crate::duration::human(l)
                ),
                None => "timed out; its process tree was stopped".to_string(),
            }
        } else if let Some(e) = &a.error {
            e.clone()
        } else if let Some(sig) = self.stopped_from_outside() {
            format!(
                "was killed by {sig:?}, which brood did not send; it is logged as stopped, \
                 so --resume runs it again"
            )
        } else if let Some(sig) = a.status.and_then(|s| s.signal()) {
            format!("killed by {:?}", Signal::from_raw(sig))
        } else {
            format!(
                "failed with exit status {}",
                a.status.and_then(|s| s.code()).unwrap_or(-1)
            )
        };
        let attempts = match self.retries {
            0 => String::new(),
            n => format!(" (after {} attempts)", n + 1),
        };
        format!(
            "brood: job {} {what}{attempts}: {}",
            self.spec.seq,
            display_argv(&self.argv)
        )
    }
}

/// Waits until jobs are told `level` or more; returns the order.
pub async fn stop_requested(rx: &mut watch::Receiver<Stop>, level: Stop) -> Stop {
    loop {
        let now = *rx.borrow_and_update();
        if now >= level {
            return now;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Resolves when the attempt started at `t0` has run out of time.
async fn time_limit(t0: Instant, timeout: &mut Timeout) {
    match timeout {
        Timeout::Never => std::future::pending().await,
        Timeout::Fixed(d) => sleep_until(t0 + *d).await,
        Timeout::Relative(rx) => loop {
            let limit = *rx.borrow_and_update();
            match limit {
                Some(l) => tokio::select! {
                    () = sleep_until(t0 + l) => return,
                    r = rx.changed() => if r.is_err() { sleep_until(t0 + l).await; return },
                },
                None => {
                    if rx.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        },
    }
}

/// Where one of a job's streams goes.
enum Sink {
    /// Counted only.
    Count,
    /// Held until the job ends (group mode).
    Spool(Spool),
    /// Whole lines to the display, tagged.
    Lines(LineSplitter),
    /// Whole lines, tagged, held until the job ends (group mode).
    TaggedSpool(LineSplitter, Spool),
    /// Bytes to the display as they come.
    Raw,
    /// A file (`--results`, `--files`).
    File(std::fs::File),
}

/// Reads one of a job's pipes to its end, or until `cut` says to stop
/// (`--wait-delay`), then closes it. Returns the byte count and what was
/// held back.
async fn pump<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    mut sink: Sink,
    stream: Stream,
    order: u64,
    display: &Display,
    mut cut: watch::Receiver<bool>,
) -> (u64, Spool) {
    let Some(mut pipe) = pipe else {
        return (0, Spool::default());
    };
    let mut total = 0u64;
    // Most jobs print little or nothing: reads go to a small buffer in the
    // task until one fills it, and only then is the large one made. A job
    // then costs no 32 KiB allocation and clearing per stream.
    let mut small = [0u8; 1024];
    let mut large = Vec::new();
    loop {
        let buf: &mut [u8] = if large.is_empty() {
            &mut small
        } else {
            &mut large
        };
        let read = tokio::select! {
            // The cut-off first: a leftover that writes without pause
            // would otherwise keep the pipe always ready.
            biased;
            () = cut_off(&mut cut) => break,
            r = pipe.read(buf) => r,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        let filled = n == buf.len();
        let bytes = &buf[..n];
        match &mut sink {
            Sink::Count => {}
            Sink::Spool(s) => {
                if let Err(e) = s.write(bytes) {
                    display.error(&format!("brood: error: holding back job output: {e}"));
                    sink = Sink::Count;
                }
            }
            Sink::Lines(split) => {
                if let Some(lines) = split.feed(bytes) {
                    display.stream(order, stream, &lines);
                }
            }
            Sink::TaggedSpool(split, s) => {
                if let Some(lines) = split.feed(bytes) {
                    let _ = s.write(&lines);
                }
            }
            Sink::Raw => display.stream(order, stream, bytes),
            Sink::File(f) => {
                if let Err(e) = f.write_all(bytes) {
                    display.error(&format!("brood: error: saving job output: {e}"));
                    sink = Sink::Count;
                }
            }
        }
        if filled && large.is_empty() {
            large = vec![0u8; 32 * 1024];
        }
    }
    match sink {
        Sink::Spool(s) => (total, s),
        Sink::TaggedSpool(mut split, mut s) => {
            if let Some(rest) = split.finish() {
                let _ = s.write(&rest);
            }
            (total, s)
        }
        Sink::Lines(mut split) => {
            if let Some(rest) = split.finish() {
                display.stream(order, stream, &rest);
            }
            (total, Spool::default())
        }
        _ => (total, Spool::default()),
    }
}

/// The sinks of a job's stdout and stderr, and what to print for it at
/// its end (`--files`: the file name).
fn sinks(ctx: &JobContext, spec: &JobSpec, slot: u64) -> io::Result<(Sink, Sink, Spool)> {
    let mode = ctx.display.mode();
    let tag = ctx.tag.as_ref().map(|t| t(spec, slot));
    let stream = |tag: Option<Vec<u8>>| match mode {
        Mode::Group => Sink::Spool(Spool::default()),
        Mode::Line => Sink::Lines(LineSplitter::new(tag)),
        Mode::Ungroup => Sink::Raw,
        Mode::None => Sink::Count,
    };
    let group_tagged = |tag: Option<Vec<u8>>| match (mode, tag) {
        // Group mode with a tag: tag whole lines as they come, but hold
        // them until the job ends.
        (Mode::Group, Some(tag)) => {
            Sink::TaggedSpool(LineSplitter::new(Some(tag)), Spool::default())
        }
        (_, tag) => stream(tag),
    };
    match &ctx.save {
        Save::No => Ok((
            group_tagged(tag.clone()),
            group_tagged(tag),
            Spool::default(),
        )),
        Save::Results(results) => {
            let files = results.files(spec, slot)?;
            std::fs::write(&files.seq, spec.seq.to_string())?;
            let out = std::fs::File::create(&files.stdout)?;
            let err = std::fs::File::create(&files.stderr)?;
            Ok((Sink::File(out), Sink::File(err), Spool::default()))
        }
        Save::Files => {
            let file = tempfile::Builder::new()
                .prefix("brood.")
                .suffix(".out")
                .tempfile()?;
            let (file, path) = file.keep().map_err(|e| e.error)?;
            let mut name = Spool::default();
            name.write(path.as_os_str().as_encoded_bytes())?;
            name.write(b"\n")?;
            Ok((Sink::File(file), stream(tag), name))
        }
    }
}

/// How the scheduler steers one running job.
pub struct Controls {
    /// Its time limit.
    pub timeout: Timeout,
    /// The run-wide stop order.
    pub stop: watch::Receiver<Stop>,
    /// Its `--memfree` eviction, if `--memfree` is given.
    pub eviction: Option<Eviction>,
}

/// Resolves when the job is to be evicted for memory; never without
/// `--memfree`.
async fn evicted(eviction: Option<&Eviction>) {
    match eviction {
        Some(e) => e.requested().await,
        None => std::future::pending().await,
    }
}

/// The job's command, ready to spawn.
///
/// Every job leads its own process group, whatever its containment: the
/// `--termseq` signals go to that group, as GNU parallel's do, and a
/// cgroup's stops reach the members that left it.
fn command(spec: &JobSpec, argv: &[OsString], slot: u64, ctx: &JobContext) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("PARALLEL_SEQ", spec.seq.to_string())
        .env("PARALLEL_JOBSLOT", slot.to_string())
        .env("BROOD_SEQ", spec.seq.to_string())
        .env("BROOD_SLOT", slot.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // With `--leftovers keep`, dropping the `Child` once its leader has
        // exited must not stop what it left running; [`RunningGuard`]
        // stands in while the leader runs.
        .kill_on_drop(ctx.leftovers == Leftovers::Kill);
    if let Some(containment) = ctx.confinement.containment {
        cmd.contain(containment);
        if let Some(parent) = &ctx.confinement.cgroup_parent {
            cmd.cgroup_parent(parent);
        }
        if let Some(pool) = &ctx.confinement.pool {
            cmd.cgroup_pool(pool);
        }
    }
    cmd
}

/// The backstop of a job spawned without `kill_on_drop` (`--leftovers
/// keep`): if the job's task is dropped while its leader may still run (a
/// panic, a runtime shut down under it), its process group is killed.
struct RunningGuard(Option<ChildHandle>);

impl RunningGuard {
    fn new(child: &Child, leftovers: Leftovers) -> RunningGuard {
        RunningGuard((leftovers == Leftovers::Keep).then(|| child.handle()))
    }

    /// The attempt ended normally: nothing to do on drop.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            if handle.status().is_none() {
                let _ = handle.signal_group(Signal::KILL);
            }
        }
    }
}

/// Runs `fut` while still reading the job's output, so that a job that
/// writes while it stops never blocks on a full pipe.
async fn alongside<T, Io: Future>(
    fut: impl Future<Output = T>,
    mut io: Pin<&mut Io>,
    io_done: &mut Option<Io::Output>,
) -> T {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return r,
            r = io.as_mut(), if io_done.is_none() => *io_done = Some(r),
        }
    }
}

/// Whether the job's tree (its cgroup, else its process group) is known to
/// be empty now, without waiting: a cgroup's `populated 0` as brood has
/// seen it, or a group with no member left.
///
/// The wait is polled once, and dropped if it is pending. (A zero
/// `tokio::time::timeout` would do the same only once the timer wheel
/// ticks, up to a millisecond later: that held every contained job's slot
/// about 1 ms longer.)
async fn tree_gone_now(handle: &ChildHandle) -> bool {
    let mut wait = std::pin::pin!(handle.wait_tree());
    std::future::poll_fn(|cx| std::task::Poll::Ready(wait.as_mut().poll(cx).is_ready())).await
}

/// The processes of a job's tree that still run once its leader has
/// exited: `Some(0)` if none, `Some(n)` counted, `None` if they cannot be
/// counted (`--contain none`, or `/proc` unreadable).
async fn leftovers_of(child: &Child, handle: &ChildHandle, tree_ends: &TreeEnds) -> Option<u64> {
    if tree_gone_now(handle).await {
        return Some(0);
    }
    let containment = child.containment()?;
    // A cgroup's members exclude zombies, so a tree whose last process has
    // just exited counts 0 even before brood has seen its `populated 0`.
    let count = child.members().ok().map(|m| m.len() as u64);
    if count == Some(0) && containment == Containment::Cgroup {
        // The kernel's `populated 0` is on its way, maybe about 10 ms late: the
        // job does not wait for it, brood does before it exits.
        tree_ends.add(handle.clone());
    }
    count
}

/// Stops what is left of the job's tree and waits until it is gone:
/// SIGTERM to every member (in a cgroup, frozen meanwhile, so none forks
/// past it), then SIGKILL after `grace` (`cgroup.kill`), or at once if the
/// run is told to kill. For a process group, "gone" is as far as brood can
/// tell: a member that left the group is out of reach.
async fn stop_tree(child: &mut Child, grace: Duration, stop: &mut watch::Receiver<Stop>) {
    if *stop.borrow() != Stop::Kill && !grace.is_zero() {
        let finished = tokio::select! {
            _ = child.terminate(grace) => true,
            _ = stop_requested(stop, Stop::Kill) => false,
        };
        if finished {
            return;
        }
    }
    // A dropped `terminate` leaves its SIGKILL to brood's background
    // thread; this one sends it now.
    let _ = child.terminate(Duration::ZERO).await;
}

/// Resolves once `rx` says the output is to be cut off (never if it is
/// dropped first).
async fn cut_off(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|cut| *cut).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the job's command once.
///
/// The attempt goes through up to three phases:
///
/// 1. *Running*, until the leader exits, or brood interrupts it (time
///    limit, stop order, eviction).
/// 2. *Interrupted*: the `--termseq` signals go to the job's process
///    group until the leader exits (or the sequence runs out, or brood is
///    told to kill: then SIGKILL). What is left of the tree then gets the
///    rest of the sequence: SIGTERM to every member, SIGKILL at its end.
/// 3. *Done*, once the leader has exited and its output pipes are closed,
///    or `--wait-delay` after the leader's exit (a leftover holds them;
///    brood then stops reading). Leftovers are counted and, with
///    `--leftovers kill`, stopped as in 2.
///
/// The attempt returns once its tree is gone (or left, with `--leftovers
/// keep`), so `-j` bounds the processes running as well as the jobs.
async fn run_attempt(
    spec: &JobSpec,
    argv: &[OsString],
    slot: u64,
    order: u64,
    ctx: &JobContext,
    controls: &mut Controls,
) -> Attempt {
    let start = SystemTime::now();
    let t0 = Instant::now();
    let (out_sink, err_sink, trailer) = match sinks(ctx, spec, slot) {
        Ok(s) => s,
        Err(e) => {
            return Attempt::failed_to_start(start, t0, format!("could not save its output: {e}"))
        }
    };
    if ctx.verbose {
        ctx.display.error(&display_argv(argv));
    }
    let mut child = match command(spec, argv, slot, ctx).spawn() {
        Ok(child) => child,
        Err(e) => {
            return Attempt::failed_to_start(
                start,
                t0,
                format!("could not start {}: {e}", argv[0].to_string_lossy()),
            )
        }
    };
    let guard = RunningGuard::new(&child, ctx.leftovers);
    if let Some(e) = &controls.eviction {
        // Evictable from now on. A request made before (between attempts,
        // or as the last one ended) is dropped: the scheduler looks again.
        e.restart();
    }
    let handle = child.handle();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let display = &*ctx.display;
    let (cut_tx, cut_rx) = watch::channel(false);
    let io = async {
        tokio::join!(
            pump(out, out_sink, Stream::Out, order, display, cut_rx.clone()),
            pump(err, err_sink, Stream::Err, order, display, cut_rx),
        )
    };
    tokio::pin!(io);
    let mut io_done = None;
    let mut exit: Option<io::Result<ExitStatus>> = None;
    let mut interrupted = None;
    let stop = &mut controls.stop;
    // When the interruption began (phase 2).
    let mut began = None;
    {
        let wait = child.wait();
        tokio::pin!(wait);
        // Phase 1: until the leader exits or brood interrupts the job.
        {
            let limit = time_limit(t0, &mut controls.timeout);
            tokio::pin!(limit);
            while exit.is_none() {
                tokio::select! {
                    r = &mut wait => exit = Some(r),
                    r = &mut io, if io_done.is_none() => io_done = Some(r),
                    () = &mut limit => {
                        interrupted = Some(Interrupt::TimedOut);
                        break;
                    }
                    _ = stop_requested(stop, Stop::Graceful) => {
                        interrupted = Some(Interrupt::Stopped);
                        break;
                    }
                    () = evicted(controls.eviction.as_ref()) => {
                        interrupted = Some(Interrupt::LowMemory);
                        break;
                    }
                }
            }
        }
        if interrupted.is_some() {
            // Phase 2: the termination sequence, each signal to the job's
            // process group, then up to its wait for the leader to exit.
            began = Some(Instant::now());
            'steps: for &(sig, wait_for) in &ctx.termseq.0 {
                if *stop.borrow() == Stop::Kill {
                    break;
                }
                let _ = handle.signal_group(sig);
                let until = Instant::now() + wait_for;
                while exit.is_none() {
                    tokio::select! {
                        r = &mut wait => exit = Some(r),
                        r = &mut io, if io_done.is_none() => io_done = Some(r),
                        () = sleep_until(until) => continue 'steps,
                        _ = stop_requested(stop, Stop::Kill) => break 'steps,
                    }
                }
                break;
            }
            if exit.is_none() {
                // Outlived the sequence, or brood is told to kill: SIGKILL
                // to the group, where SIGKILL belongs first (the leader's
                // status says so), then the whole tree.
                let _ = handle.signal_group(Signal::KILL);
            }
        }
    }
    let mut leftovers = None;
    if let Some(began) = began {
        if exit.is_none() {
            exit = Some(
                alongside(
                    async {
                        stop_tree(&mut child, Duration::ZERO, stop).await;
                        child.wait().await
                    },
                    io.as_mut(),
                    &mut io_done,
                )
                .await,
            );
        } else {
            // The leader has exited within the sequence; members that
            // outlive it (those that left its group, those that ignore
            // the signal) get the rest of the sequence, then SIGKILL.
            leftovers = leftovers_of(&child, &handle, &ctx.tree_ends).await;
            if leftovers != Some(0) {
                let rest = (began + ctx.termseq.total()).saturating_duration_since(Instant::now());
                alongside(stop_tree(&mut child, rest, stop), io.as_mut(), &mut io_done).await;
            }
        }
    }
    // Phase 3: the leader has exited. The job is done once its output
    // pipes are closed, or `--wait-delay` later (the tree is gone after an
    // interruption, so they close at once unless a process outside it
    // holds them), or at once if brood is stopping.
    if io_done.is_none() {
        let cut = tokio::select! {
            r = &mut io => {
                io_done = Some(r);
                false
            }
            () = sleep(ctx.wait_delay) => true,
            _ = stop_requested(stop, Stop::Graceful), if began.is_none() => true,
        };
        if cut {
            // The pumps stop reading and close the pipes; a leftover that
            // writes on gets EPIPE.
            let _ = cut_tx.send(true);
            io_done = Some(io.as_mut().await);
        }
    }
    let ended = t0.elapsed();
    if began.is_none() && ctx.confinement.containment.is_some() {
        leftovers = leftovers_of(&child, &handle, &ctx.tree_ends).await;
        if ctx.leftovers == Leftovers::Kill && leftovers != Some(0) {
            stop_tree(&mut child, ctx.termseq.total(), stop).await;
        }
    }
    guard.disarm();
    if let Some(e) = &controls.eviction {
        // Said after the whole tree is gone, so that after an eviction
        // the scheduler reads memory again only once this job's is free.
        e.done();
    }
    let ((stdout_bytes, mut out), (stderr_bytes, err)) = io_done.unwrap_or_default();
    if !trailer.is_empty() {
        out.append(trailer);
    }
    let (status, error) = match exit {
        Some(Ok(status)) => (Some(status), None),
        Some(Err(e)) => (None, Some(format!("could not be waited for: {e}"))),
        None => (None, None),
    };
    Attempt {
        start,
        runtime: ended,
        status,
        usage: child.resource_usage().unwrap_or_default(),
        tree: child.tree_usage(),
        containment: child.containment(),
        leftovers,
        interrupted,
        stdout_bytes,
        stderr_bytes,
        out,
        err,
        error,
    }
}

/// Whether a failed attempt gets another: attempts remain, the run is not
/// being stopped or drained, and, after an eviction, SIZE is available
/// again (the wait a new job would have). The retry delay is waited here.
async fn retry(attempt: &Attempt, retries: u32, ctx: &JobContext, controls: &mut Controls) -> bool {
    let again = !attempt.ok()
        && attempt.interrupted != Some(Interrupt::Stopped)
        && retries + 1 < ctx.attempts
        && *controls.stop.borrow() == Stop::Run;
    if !again {
        return false;
    }
    if let Some(base) = ctx.retry_delay {
        // Exponential backoff: base, 2 base, 4 base, ... (capped at 1024
        // base so the factor cannot overflow).
        let delay = base.saturating_mul(1u32 << retries.min(10));
        tokio::select! {
            () = sleep(delay) => {}
            _ = stop_requested(&mut controls.stop, Stop::Drain) => return false,
        }
    }
    if let Some(memfree) = ctx.memfree {
        if attempt.interrupted == Some(Interrupt::LowMemory)
            && !evict::wait_for_memory(memfree, &mut controls.stop).await
        {
            return false;
        }
    }
    true
}

/// Runs a job, with its attempts, and hands its output to the display.
/// `order` is the job's place in start order (for `--keep-order`).
pub async fn run_job(
    spec: JobSpec,
    argv: Vec<OsString>,
    slot: u64,
    order: u64,
    ctx: Arc<JobContext>,
    mut controls: Controls,
) -> Finished {
    let mut retries = 0;
    let (mut user, mut sys, mut peak_rss) = (Duration::ZERO, Duration::ZERO, 0);
    loop {
        let mut attempt = run_attempt(&spec, &argv, slot, order, &ctx, &mut controls).await;
        // The whole tree's CPU where the job had a cgroup, else its
        // leader's; memory is the leader's peak RSS unless the tree's peak
        // is known.
        match attempt.tree {
            Some(tree) => {
                user += tree.user_time();
                sys += tree.system_time();
            }
            None => {
                user += attempt.usage.user_time();
                sys += attempt.usage.system_time();
            }
        }
        let peak = attempt.tree.and_then(|t| t.peak_memory());
        peak_rss = peak_rss.max(peak.unwrap_or_else(|| attempt.usage.max_rss()));
        if attempt.interrupted == Some(Interrupt::LowMemory) && retries + 1 < ctx.attempts {
            // The last attempt's eviction is told as the job's failure.
            ctx.display.message(&format!(
                "brood: job {} stopped: less than half of --memfree is available; \
                 it runs again once --memfree is: {}",
                spec.seq,
                display_argv(&argv)
            ));
        }
        if !retry(&attempt, retries, &ctx, &mut controls).await {
            let out = std::mem::take(&mut attempt.out);
            let err = std::mem::take(&mut attempt.err);
            ctx.display.finish(order, out, err);
            return Finished {
                spec,
                argv,
                last: attempt,
                retries,
                user,
                sys,
                peak_rss,
                run_stopped: false,
            };
        }
        retries += 1;
    }
}
