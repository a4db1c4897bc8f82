//! `Child`: a running (or exited) child process and its pipes.
//!
//! The layer above the reaper: it implements the reaper's `Tracked` trait for
//! [`shared::Shared`] and calls down into `reaper`, `stdio` and `sys`, never
//! the other way round.
//!
//! Owns: [`Child`]. Calls: the files below, `reaper` (sleeps, stops), `stdio`.

// The child layer's files, top down:
//
//   mod.rs      `Child`
//   handle.rs   `ChildHandle`
//   contain.rs  a contained child's tree: members, figures, its end
//   output.rs   output capture, optionally capped or cut off
//   wait.rs     the wait future, and time limits
//   shared.rs   the `Arc`-shared state: signals, stops, reaping, `Tracked`
//   group_stop.rs  a process group's stops, with its leader held unreaped
//   process.rs  the pid and the lazily opened pidfd
//   exit.rs     the exit cell: running -> exited, once
//   waiters.rs  the parked tasks of one exit cell

mod contain;
pub(crate) mod exit;
pub(crate) mod group_stop;
mod handle;
mod output;
pub(crate) mod process;
pub(crate) mod shared;
mod wait;
pub(crate) mod waiters;

pub use handle::ChildHandle;
pub use output::{OutputLimitExceeded, WaitDelayExceeded};

use crate::containment::{Containment, TreeUsage};
use crate::reaper::{self, Sleep};
use crate::rusage::ResourceUsage;
use crate::signal::Signal;
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sync::Arc;
use exit::Exit;
use output::Captured;
use shared::Shared;
use std::fmt;
use std::io;
use std::process::{ExitStatus, Output};
use std::time::{Duration, Instant};
use wait::{wait_exit, wait_reaped, within};
use waiters::OwnerSlot;

/// A child process spawned by [`Command::spawn`](crate::Command::spawn).
///
/// Compatible with `tokio::process::Child`. Dropping a `Child` does not stop
/// the process unless [`kill_on_drop`](crate::Command::kill_on_drop) was set;
/// either way brood reaps it when it exits, so it never stays a zombie.
///
/// While you hold a `Child` without waiting for it, its exit is left for
/// you: the zombie stays until [`Child::try_wait`], [`Child::wait`] or a
/// `waitpid` of your own collects it, as with `tokio::process`. While a
/// `wait` is pending, brood collects the exit the moment it happens.
pub struct Child {
    /// The child's standard input, if it was piped.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if it was piped.
    pub stderr: Option<ChildStderr>,
    shared: Arc<Shared>,
    /// This `Child`'s waker slot in the exit cell, kept between `wait()`
    /// futures (see `waiters.rs`).
    slot: OwnerSlot,
    kill_on_drop: bool,
    max_output: Option<usize>,
    wait_delay: Option<Duration>,
    /// Set once this `Child` has returned the exit to its user.
    exit_seen: std::sync::atomic::AtomicBool,
    /// This `Child` holds its leader unreaped for a call that may stop its
    /// process group (see `Shared::hold_leader`).
    leader_held: bool,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.shared.pid())
            .field("exit", &self.shared.cell.get())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

impl Child {
    pub(crate) fn new(
        shared: Arc<Shared>,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
        kill_on_drop: bool,
        max_output: Option<usize>,
        wait_delay: Option<Duration>,
    ) -> Child {
        Child {
            leader_held: false,
            stdin,
            stdout,
            stderr,
            shared,
            slot: OwnerSlot::new(),
            kill_on_drop,
            max_output,
            wait_delay,
            exit_seen: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The `Child` of a leader that the spawning call held unreaped
    /// (`Shared::hold_leader`): the hold is released when the call ends or
    /// the `Child` is dropped.
    pub(crate) fn with_leader_held(mut self, held: bool) -> Child {
        self.leader_held = held;
        self
    }

    /// The child's pid while it runs; `None` once this `Child` has returned
    /// its exit status (from `wait`, `try_wait` and the like), as in tokio.
    ///
    /// While this `Child` is alive and nothing waits for it, brood leaves an
    /// exited child's zombie in place for you (see the crate docs' migration
    /// notes), so a `waitpid` of your own on this pid works as under tokio.
    /// Once a wait is pending brood may reap it at any moment, and from then
    /// on the number may belong to another process: signal the child with
    /// [`Child::signal`], never by this number.
    pub fn id(&self) -> Option<u32> {
        if self.exit_seen.load(std::sync::atomic::Ordering::Acquire) {
            None
        } else {
            Some(self.shared.pid())
        }
    }

    fn saw(&self, exit: Exit) -> Exit {
        self.exit_seen
            .store(true, std::sync::atomic::Ordering::Release);
        exit
    }

    /// Waits for the child to exit and returns its status.
    ///
    /// Closes the child's stdin first (as tokio does), so a child reading its
    /// input cannot wait on us forever. Cancel-safe, wake-up included:
    /// dropping a pending future loses neither the status nor the wake-up
    /// (the waker stays with this `Child`, so a task that polls a fresh
    /// `wait()` each time is still woken when the child exits). Fused: after
    /// the exit, every call returns the same status.
    ///
    /// If something other than brood reaped the child first (a `waitpid` of
    /// your own), this returns an error of kind [`io::ErrorKind::Other`]
    /// naming `ECHILD`, never hangs.
    #[must_use = "the child is waited for only when the returned future is awaited; \
                  its result says how the child ended"]
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.stdin.take();
        self.wait_exit().await.status()
    }

    async fn wait_exit(&self) -> Exit {
        let exit = wait_exit(&self.shared, &self.slot, true).await;
        self.saw(exit)
    }

    /// From now on brood collects the exit as soon as it learns of it: the
    /// `Child` went to a call that waits for it (`output`, `status`,
    /// `wait_with_output`), so nobody else can collect it.
    fn collected_by_brood(&self) {
        self.shared.cell.collect_on_exit();
    }

    /// For a call that may stop the child's process group (an output cap, a
    /// wait delay): holds the leader unreaped until the call ends, so that
    /// a stop that comes after its exit still reaches its group, and only
    /// its group.
    fn hold_leader_for_call(&mut self) {
        if !self.leader_held && self.shared.stops_reach_group() {
            self.leader_held = self.shared.hold_leader();
        }
    }

    /// The call that held the leader ends: releases it (which reaps it if it
    /// exited).
    fn release_leader(&mut self) {
        if std::mem::take(&mut self.leader_held) {
            self.shared.release_leader();
        }
    }

    /// Returns the status if the child has exited, reaping it; `Ok(None)` if
    /// it still runs. Never blocks.
    ///
    /// If something other than brood reaped the child first (a `waitpid` of
    /// your own), this returns an error of kind [`io::ErrorKind::Other`]
    /// naming `ECHILD`, never `Ok(None)` forever.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.shared
            .try_reap()
            .map(|exit| self.saw(exit).status())
            .transpose()
    }

    /// Sends SIGKILL without waiting. Succeeds without sending anything if the
    /// child has already exited.
    pub fn start_kill(&mut self) -> io::Result<()> {
        self.shared.signal(Signal::KILL)
    }

    /// Sends SIGKILL and waits for the child to exit.
    #[must_use = "the child is killed only when the returned future is awaited"]
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Waits for the exit while collecting stdout and stderr (whichever were
    /// piped). Closes stdin first. Honours
    /// [`Command::max_output`](crate::Command::max_output).
    ///
    /// Small outputs are read by the awaiting task. On a multi-thread
    /// runtime, once a single read fills a whole pipe, both pipes leave the
    /// reactor and the rest is drained with blocking `poll`/`read` on a
    /// `spawn_blocking` thread: otherwise every chunk the child writes would
    /// wake two threads (the reactor's and the task's). Dropping the future
    /// mid-capture stops that thread and closes the pipes, as it would in
    /// the task.
    #[must_use = "the output is collected only when the returned future is awaited"]
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        self.stdin.take();
        self.collected_by_brood();
        if self.max_output.is_some() || self.wait_delay.is_some() {
            self.hold_leader_for_call();
        }
        let limit = self.max_output;
        let output = self.collect(limit).await;
        self.release_leader();
        output
    }

    /// `Command::output`'s capture. A leader whose group a time limit, an
    /// output cap or a wait delay may stop was held from its spawn on.
    pub(crate) async fn collect_output(mut self, timeout: Option<Duration>) -> io::Result<Output> {
        self.stdin.take();
        self.collected_by_brood();
        let limit = self.max_output;
        let output = match timeout {
            None => self.collect(limit).await,
            Some(t) => match within(t, self.collect(limit)).await {
                Some(result) => result,
                None => self.stop().await.and(Err(timed_out(t))),
            },
        };
        self.release_leader();
        output
    }

    /// Collects stdout and stderr to EOF (or the cap), then waits for the
    /// exit; over the cap, stops the child as the stop policy says. With a
    /// wait delay, the pipes get at most that long after the exit to reach
    /// EOF; then they are closed and the rest of the tree is stopped.
    async fn collect(&mut self, limit: Option<usize>) -> io::Result<Output> {
        let stdout = self.stdout.take().map(|p| p.pipe);
        let stderr = self.stderr.take().map(|p| p.pipe);
        let wait_delay = self.wait_delay;
        let (shared, slot) = (&self.shared, &self.slot);
        // Without a wait delay the capture is never cut off.
        let cutoff = async move {
            match wait_delay {
                None => std::future::pending().await,
                Some(delay) => {
                    wait_exit(shared, slot, true).await;
                    Sleep::new(delay).await;
                }
            }
        };
        match output::capture(stdout, stderr, limit, cutoff).await? {
            // The pipes are closed by now, so the child sees EPIPE.
            Captured::OverCap(over) => {
                self.stop().await?;
                Err(io::Error::other(over))
            }
            Captured::Complete { stdout, stderr } => {
                let status = self.wait_exit().await.status()?;
                Ok(Output {
                    status,
                    stdout,
                    stderr,
                })
            }
            Captured::CutOff { stdout, stderr } => {
                // The leader has exited (the cut-off waited for that), and
                // the pipes are closed: stop whatever of the tree is left.
                let status = self.wait_exit().await.status()?;
                self.stop().await?;
                let delay = wait_delay.unwrap_or_default();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    WaitDelayExceeded::new(
                        delay,
                        Output {
                            status,
                            stdout,
                            stderr,
                        },
                    ),
                ))
            }
        }
    }

    /// Waits up to `limit`; on time-out, stops the child as the stop policy
    /// says and fails with `TimedOut`.
    pub(crate) async fn wait_or_stop(&mut self, limit: Duration) -> io::Result<ExitStatus> {
        self.stdin.take();
        let status = match within(limit, self.wait_exit()).await {
            Some(exit) => exit.status(),
            None => self.stop().await.and(Err(timed_out(limit))),
        };
        self.release_leader();
        status
    }

    /// Stops the child as its stop policy says
    /// ([`Command::grace`](crate::Command::grace), process group) and waits
    /// for it.
    pub(crate) async fn stop(&mut self) -> io::Result<ExitStatus> {
        match self.shared.stop.grace {
            None if self.shared.stops_reach_group() => {
                if let Some(stop) = contain::GroupStop::begin(&self.shared, Instant::now()) {
                    stop.signal(Signal::KILL)?;
                    stop.finish().await;
                }
                // A leader reaped before the stop: its group gets nothing.
                self.wait_exit().await.status()
            }
            None => {
                self.shared.send_stop(Signal::KILL)?;
                let status = self.wait_exit().await.status();
                // A cgroup's `cgroup.kill` empties it at once; wait for that,
                // so a contained stop returns with the whole tree gone.
                if self.shared.cgroup().is_some() {
                    contain::tree_gone(&self.shared, None).await?;
                }
                status
            }
            Some(grace) => self.terminate(grace).await,
        }
    }

    /// Sends a signal to the child.
    ///
    /// On Linux this goes through `pidfd_send_signal` on the pidfd path, so it
    /// can never reach a process that reused the child's pid; on the SIGCHLD
    /// path brood holds the child unreaped while it sends, to the same effect.
    /// Once the child has exited (reaped, or known to be a zombie) it sends
    /// nothing and returns `Ok(())`.
    ///
    /// This inherent method hides extension traits' `signal` methods (such
    /// as `command_group::UnixChildExt::signal`); call those as
    /// `UnixChildExt::signal(&child, sig)`.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let mut child = brood::Command::new("sleep").arg("10").spawn()?;
    /// child.signal(brood::Signal::TERM)?;
    /// let status = child.wait().await?;
    /// # Ok(()) }
    /// ```
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        self.shared.signal(signal)
    }

    /// Sends a signal to the child's process group.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] unless the child leads its
    /// own group (spawn it with [`process_group(0)`](crate::Command::process_group)).
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let mut child = brood::Command::new("sh").args(["-c", "sleep 10 & sleep 10"])
    ///     .process_group(0).spawn()?;
    /// child.signal_group(brood::Signal::KILL)?;
    /// child.wait().await?;
    /// # Ok(()) }
    /// ```
    pub fn signal_group(&self, signal: Signal) -> io::Result<()> {
        self.shared.signal_group(signal)
    }

    /// Stops the child gracefully and returns its status: SIGTERM (to the
    /// whole tree if the child is contained or leads a group), up to `grace`
    /// for it to exit, then SIGKILL.
    ///
    /// For a contained child (or one spawned with `process_group(0)`), this
    /// resolves only once the whole tree is gone: members that outlive the
    /// leader get the rest of `grace`, then SIGKILL.
    ///
    /// - In a cgroup ([`Containment::Cgroup`]), SIGTERM reaches every member
    ///   present, frozen while they are signalled so that none forks past
    ///   it, and the SIGKILL is `cgroup.kill`, which also reaches members
    ///   forked during the grace. The tree's end is the cgroup's
    ///   `populated 0`.
    /// - In a process group there is no event for "group empty", so it is
    ///   observed by probing the group (`killpg(pgid, 0)`) at growing
    ///   intervals. Members that died but were not reaped (zombies of an
    ///   init that does not reap) still count as members; in a
    ///   [subreaper](crate::become_subreaper) process brood reaps them
    ///   itself.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let mut child = brood::Command::new("my-server").spawn()?;
    /// let status = child.terminate(Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// This inherent method hides any extension trait's `terminate` (such
    /// as `tokio_process_terminate::TerminateExt::terminate`); call those as
    /// `TerminateExt::terminate(&mut child)`.
    #[must_use = "the child is stopped only when the returned future is awaited; \
                  to call a trait's `terminate`, write `Trait::terminate(&mut child, ..)`"]
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.stdin.take();
        if self.shared.stops_reach_group() {
            return self.terminate_group(grace).await;
        }
        let deadline = Instant::now() + grace;
        let tree = contain::tree_may_outlive_leader(&self.shared);
        if !self.shared.cell.has_exited() || tree {
            self.shared.send_stop(Signal::TERM)?;
            if tree {
                // A backstop in case this future is dropped before the end:
                // stragglers still get their SIGKILL when grace ends.
                reaper::kill_after(&self.shared, grace, 0)?;
            }
        }
        let cgroup = self.shared.cgroup().is_some();
        let status = match within(grace, self.wait_exit()).await {
            Some(exit) => exit.status(),
            None => {
                self.shared.send_stop(Signal::KILL)?;
                let status = self.wait_exit().await.status();
                if cgroup {
                    contain::tree_gone(&self.shared, None).await?;
                }
                return status;
            }
        };
        if tree && !contain::tree_gone(&self.shared, Some(deadline)).await? {
            self.shared.send_stop(Signal::KILL)?;
            if cgroup {
                contain::tree_gone(&self.shared, None).await?;
            }
        }
        status
    }

    /// [`Child::terminate`] for a child whose stops reach its process group.
    /// The leader is held unreaped from the SIGTERM until the stop is over
    /// (the group's final SIGKILL sent, no live member left), so every
    /// signal reaches this group and no other; see `group_stop.rs`. If this
    /// future is dropped before the end, the background thread finishes the
    /// stop when the grace ends.
    async fn terminate_group(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        let deadline = Instant::now() + grace;
        let Some(stop) = contain::GroupStop::begin(&self.shared, deadline) else {
            // Reaped before: the group's id may be another group's by now,
            // so nothing is sent.
            return self.wait_exit().await.status();
        };
        stop.signal(Signal::TERM)?;
        // While held, the wait resolves with the status its look found.
        let Some(exit) = within(grace, self.wait_exit()).await else {
            stop.finish().await;
            return self.wait_exit().await.status();
        };
        // The rest of the group gets the rest of the grace. The final
        // SIGKILL follows either way: it reaches nobody if all are gone, and
        // anyone a listing missed if not.
        contain::group_emptied(&self.shared, Some(deadline)).await?;
        stop.finish().await;
        exit.status()
    }

    /// Waits up to `timeout` for the child to exit. `Ok(None)` means it still
    /// runs; it is left running, and its stdin is left open.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let mut child = brood::Command::new("sleep").arg("10").spawn()?;
    /// assert!(child.wait_timeout(Duration::from_millis(10)).await?.is_none());
    /// # Ok(()) }
    /// ```
    #[must_use = "the child is waited for only when the returned future is awaited"]
    pub async fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        within(timeout, self.wait_exit())
            .await
            .map(|exit| exit.status())
            .transpose()
    }

    /// Waits for the exit, returning the status with the child's resource
    /// usage, both from the same `waitid`/`wait4` call. Closes stdin first.
    #[must_use = "the child is waited for only when the returned future is awaited"]
    pub async fn wait_with_rusage(&mut self) -> io::Result<(ExitStatus, ResourceUsage)> {
        self.stdin.take();
        // The resource usage comes with the reap: a leader held unreaped by
        // a group stop is waited for until the stop is over.
        let exit = self.saw(wait_reaped(&self.shared, &self.slot).await);
        let status = exit.status()?;
        let usage = exit
            .usage()
            .ok_or_else(|| io::Error::other("brood: no resource usage was recorded"))?;
        Ok((status, usage))
    }

    /// The resource usage recorded when the child was reaped; `None` before.
    pub fn resource_usage(&self) -> Option<ResourceUsage> {
        self.shared.cell.get().and_then(|exit| exit.usage())
    }

    /// How the child's tree is contained: [`Containment::Group`] or
    /// [`Containment::Cgroup`] (what [`Containment::Auto`] chose), or `None`
    /// if it was spawned without [`Command::contain`](crate::Command::contain).
    pub fn containment(&self) -> Option<Containment> {
        contain::containment(&self.shared)
    }

    /// The live pids in the child's containment: every process in its
    /// cgroup (escapees included), or the live members of its process
    /// group; without containment, the child itself while it runs. Exited
    /// processes that were not reaped yet (zombies) are not members.
    ///
    /// For a [`Containment::Group`] this reads `/proc`, which exists on
    /// Linux only; elsewhere it fails with [`io::ErrorKind::Unsupported`].
    pub fn members(&self) -> io::Result<Vec<u32>> {
        contain::members(&self.shared)
    }

    /// Waits until the child has exited and no member of its tree is left,
    /// and returns the child's own status. Closes stdin first, as
    /// [`Child::wait`] does; `wait` itself keeps tokio's meaning (the child
    /// alone). Cancel-safe.
    ///
    /// - [`Containment::Cgroup`]: the tree's end is the cgroup's
    ///   `populated 0`, which brood's background thread is notified of; no
    ///   polling. Processes that left the child's group or session are
    ///   waited for too.
    /// - [`Containment::Group`]: best effort. There is no event for "group
    ///   empty", so the group is probed at growing intervals (1 ms to
    ///   50 ms); a zombie member that its parent has not reaped still
    ///   counts, and a member that left the group (`setsid`) is not waited
    ///   for.
    /// - Not contained: the same as [`Child::wait`].
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use brood::{Command, Containment};
    /// let mut child = Command::new("sh")
    ///     .args(["-c", "(sleep 1; echo done) & echo started"])
    ///     .contain(Containment::Cgroup)
    ///     .spawn()?;
    /// let status = child.wait_tree().await?; // returns after the `sleep 1`
    /// # Ok(()) }
    /// ```
    pub async fn wait_tree(&mut self) -> io::Result<ExitStatus> {
        self.stdin.take();
        let exit = self.wait_exit().await;
        contain::tree_gone(&self.shared, None).await?;
        exit.status()
    }

    /// What the child's whole tree used: the CPU time of every process that
    /// ever ran in its cgroup (escapees and processes that exited long ago
    /// included) and, where the memory controller is enabled, the peak
    /// memory. Read live while the tree runs; the last figures stay
    /// readable after it ended and its cgroup was removed.
    ///
    /// `None` unless the child is contained in a cgroup.
    pub fn tree_usage(&self) -> Option<TreeUsage> {
        contain::tree_usage(&self.shared)
    }

    /// A cloneable handle for signalling and awaiting this child from
    /// elsewhere, even after this `Child` is dropped.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let child = brood::Command::new("sleep").arg("1").spawn()?;
    /// let handle = child.handle();
    /// drop(child); // no kill_on_drop: the child keeps running
    /// let other = handle.clone();
    /// let (a, b) = tokio::join!(handle.wait(), other.wait());
    /// assert_eq!(a?.code(), b?.code());
    /// # Ok(()) }
    /// ```
    pub fn handle(&self) -> ChildHandle {
        ChildHandle::new(self.shared.clone())
    }
}

fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("brood: the child ran longer than {limit:?} and was stopped"),
    )
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.shared.cell.get().is_some() {
            // The child is gone, but a tree in a cgroup may live on: a
            // kill_on_drop stop reaches what is left of it. (A group's id
            // may have been reused once its leader was reaped, so it gets
            // nothing here.)
            if self.kill_on_drop && self.shared.cgroup().is_some_and(|c| c.holds_processes()) {
                let _ = self.shared.begin_stop();
            }
        } else {
            // An orphan now; a kill_on_drop stop of its group holds it until
            // the stop is over.
            self.shared.abandon(&self.slot, self.kill_on_drop);
        }
        // After the abandon: a release reaps an orphan's exit at once.
        self.release_leader();
    }
}
