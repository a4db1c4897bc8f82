//! The `Command` builder: `std::process::Command` plus brood's options.
//!
//! Spawning goes through `std::process::Command::spawn`, so std's
//! `posix_spawn` fast path stays in use; brood adds nothing that runs in the
//! child between fork and exec.
//!
//! Owns: [`Command`] and its conversions from and to std's and tokio's
//! builders. Calls: `child` (the new `Child`), `reaper` (the spawn ticket:
//! tracking and the exit watcher's choice), `stdio`, `sys`, `trace`.

use crate::child::process::Process;
use crate::child::shared::{Shared, StopPolicy};
use crate::child::Child;
use crate::reaper::{self, Strategy};
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sync::Arc;
use crate::sys;
use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

/// A process builder, compatible with `tokio::process::Command`.
///
/// Every option's default is stated in its documentation. Options not listed
/// here are reachable through [`Command::as_std_mut`].
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use brood::Command;
/// use std::process::Stdio;
///
/// let output = Command::new("echo").arg("hello").stdout(Stdio::piped()).output().await?;
/// assert_eq!(output.stdout, b"hello\n");
/// # Ok(()) }
/// ```
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Set by `process_group(0)`: the child leads a new group.
    new_group: bool,
    grace: Option<Duration>,
    timeout: Option<Duration>,
    max_output: Option<usize>,
    pipe_capacity: Option<usize>,
}

/// Prints exactly what `tokio::process::Command` prints for the same
/// command (programs name processes in logs this way), plus each of brood's
/// own options that is set. (Whether the child leads a new group is part of
/// std's output already.)
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Command");
        out.field("std", &self.std)
            .field("kill_on_drop", &self.kill_on_drop);
        if let Some(grace) = &self.grace {
            out.field("grace", grace);
        }
        if let Some(timeout) = &self.timeout {
            out.field("timeout", timeout);
        }
        if let Some(bytes) = &self.max_output {
            out.field("max_output", bytes);
        }
        if let Some(bytes) = &self.pipe_capacity {
            out.field("pipe_capacity", bytes);
        }
        out.finish()
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Self {
        Command {
            std,
            kill_on_drop: false,
            new_group: false,
            grace: None,
            timeout: None,
            max_output: None,
            pipe_capacity: None,
        }
    }
}

/// Takes over a `tokio::process::Command`, with its `kill_on_drop`, so that a
/// library that moved to brood can keep accepting tokio's type.
///
/// As with `From<std::process::Command>`, a process group set on the
/// command before the conversion is kept for the spawn, but brood learns of
/// a new group (for its whole-group stops) only from
/// [`Command::process_group`] called on the brood `Command`.
impl From<tokio::process::Command> for Command {
    fn from(tokio: tokio::process::Command) -> Self {
        let kill_on_drop = tokio.get_kill_on_drop();
        let mut command = Command::from(tokio.into_std());
        command.kill_on_drop = kill_on_drop;
        command
    }
}

/// Hands the command to `tokio::process`, with its `kill_on_drop`. brood's own
/// options ([`Command::grace`], [`Command::timeout`], [`Command::max_output`],
/// [`Command::pipe_capacity`]) have no tokio counterpart and are dropped.
impl From<Command> for tokio::process::Command {
    fn from(command: Command) -> Self {
        let mut tokio = tokio::process::Command::from(command.std);
        tokio.kill_on_drop(command.kill_on_drop);
        tokio
    }
}

/// Kills and reaps a child whose spawn failed after the fork, so that an
/// error from `spawn` never leaves a process or a zombie behind.
struct ReapOnFailure(Option<u32>);

impl Drop for ReapOnFailure {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = sys::process::kill(pid, libc::SIGKILL);
            let _ = sys::process::wait4(pid, false);
        }
    }
}

impl Command {
    /// A command to run `program`, looked up in `PATH` as std does.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Clears the child's environment: it starts with exactly the variables
    /// set with [`Command::env`] afterwards. Default: inherit ours.
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory. Default: ours.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Sets the child's standard input. Default: inherited (null for `output`
    /// only if set so).
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdin(cfg);
        self
    }

    /// Sets the child's standard output. Default: inherited; `output` pipes it.
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// Sets the child's standard error. Default: inherited; `output` pipes it.
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// Whether dropping the [`Child`] before it exited stops it. Default:
    /// `false`, as in tokio: the child keeps running and brood reaps it in
    /// the background when it exits.
    ///
    /// The stop follows [`Command::grace`] and goes to the whole process
    /// group if the child leads one ([`Command::process_group`] with `0`).
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// Whether [`Command::kill_on_drop`] is set.
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop
    }

    /// Runs the child as user `id` (`setuid` before exec).
    pub fn uid(&mut self, id: u32) -> &mut Command {
        self.std.uid(id);
        self
    }

    /// Runs the child as group `id` (`setgid` before exec).
    pub fn gid(&mut self, id: u32) -> &mut Command {
        self.std.gid(id);
        self
    }

    /// Sets `argv[0]`, which is the program path by default.
    pub fn arg0<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.std.arg0(arg);
        self
    }

    /// Puts the child in process group `pgroup`; `0` makes it the leader of a
    /// new group whose id is its pid. Default: our group.
    ///
    /// With `0`, every stop brood makes on the user's behalf (kill_on_drop,
    /// timeout, output cap, [`Child::terminate`]) goes to the whole group, so
    /// grandchildren stop too.
    pub fn process_group(&mut self, pgroup: i32) -> &mut Command {
        self.std.process_group(pgroup);
        self.new_group = pgroup == 0;
        self
    }

    /// Runs `f` in the child after fork and before exec.
    ///
    /// # Safety
    ///
    /// As for [`std::os::unix::process::CommandExt::pre_exec`]: `f` runs in a
    /// forked copy of a multi-threaded process and may only do what is
    /// async-signal-safe. Using it also makes std fall back from
    /// `posix_spawn` to fork+exec, which is slower.
    // The one `unsafe` outside `sys`: the public API itself is unsafe, as in
    // std and tokio, and only forwards the caller's promise.
    #[allow(unsafe_code)]
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        // SAFETY: the caller upholds pre_exec's contract, as documented above.
        unsafe { sys::process::pre_exec(&mut self.std, f) };
        self
    }

    /// The grace period of stops brood makes on the user's behalf
    /// (kill_on_drop, [`Command::timeout`], [`Command::max_output`]): SIGTERM
    /// first, SIGKILL once `grace` has passed. Default: SIGKILL at once, as
    /// tokio does.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let status = brood::Command::new("my-server")
    ///     .timeout(Duration::from_secs(30))
    ///     .grace(Duration::from_secs(5))
    ///     .status()
    ///     .await;
    /// # Ok(()) }
    /// ```
    pub fn grace(&mut self, grace: Duration) -> &mut Command {
        self.grace = Some(grace);
        self
    }

    /// Limits how long [`Command::status`] and [`Command::output`] let the
    /// child run. When it runs longer, brood stops it (see [`Command::grace`])
    /// and they return an error of kind [`io::ErrorKind::TimedOut`].
    /// Default: no limit.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use std::time::Duration;
    /// let err = brood::Command::new("sleep").arg("10")
    ///     .timeout(Duration::from_millis(100))
    ///     .status().await.unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # }
    /// ```
    pub fn timeout(&mut self, timeout: Duration) -> &mut Command {
        self.timeout = Some(timeout);
        self
    }

    /// Caps what [`Command::output`] and [`Child::wait_with_output`] keep:
    /// once stdout and stderr together would exceed `bytes`, brood stops the
    /// child (see [`Command::grace`]) and they fail with an [`io::Error`]
    /// whose inner error is [`OutputLimitExceeded`](crate::OutputLimitExceeded),
    /// holding what was captured up to the cap. Memory use stays within the
    /// cap. Default: no cap.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let err = brood::Command::new("yes").max_output(1 << 20).output().await.unwrap_err();
    /// let over = err.get_ref().unwrap().downcast_ref::<brood::OutputLimitExceeded>().unwrap();
    /// assert_eq!(over.stdout().len(), 1 << 20);
    /// # }
    /// ```
    pub fn max_output(&mut self, bytes: usize) -> &mut Command {
        self.max_output = Some(bytes);
        self
    }

    /// Sets the capacity of the pipes brood creates for this child
    /// (`F_SETPIPE_SZ`), clamped to `/proc/sys/fs/pipe-max-size`. Larger
    /// pipes mean fewer wake-ups when a child writes a lot. Default: the
    /// kernel's (64 KiB). A no-op on systems other than Linux.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// let out = brood::Command::new("cat").arg("big.log")
    ///     .pipe_capacity(1 << 20)
    ///     .output()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn pipe_capacity(&mut self, bytes: usize) -> &mut Command {
        self.pipe_capacity = Some(bytes);
        self
    }

    /// The underlying std builder.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The underlying std builder, for options brood does not wrap.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Converts into the underlying std builder, dropping brood's options.
    pub fn into_std(self) -> std::process::Command {
        self.std
    }

    /// Spawns the child.
    ///
    /// Works inside or outside a Tokio runtime: pipes and the exit watcher
    /// are registered with a reactor on first poll. Never panics; if anything
    /// fails after the process was created, it is killed and reaped before
    /// the error is returned.
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_child(false)
    }

    /// Spawns the child; with `collected_by_brood`, for a brood call that
    /// waits for it (`status`, `output`): then its exit is collected as soon
    /// as it is known, from registration on, never left for an owner.
    fn spawn_child(&mut self, collected_by_brood: bool) -> io::Result<Child> {
        let ticket = reaper::prepare_spawn()?;
        let strategy = ticket.strategy;
        let mut std_child = self.std.spawn()?;
        let pid = std_child.id();
        let mut guard = ReapOnFailure(Some(pid));

        let process = match strategy {
            Strategy::Pidfd => Process::with_pidfd(pid),
            Strategy::Signal => Process::by_pid(pid),
        };

        let stdin = std_child.stdin.take().map(OwnedFd::from);
        let stdout = std_child.stdout.take().map(OwnedFd::from);
        let stderr = std_child.stderr.take().map(OwnedFd::from);
        if let Some(bytes) = self.pipe_capacity {
            for fd in [&stdin, &stdout, &stderr].into_iter().flatten() {
                sys::fd::set_pipe_capacity(fd.as_fd(), bytes)?;
            }
        }
        let stdin = stdin.map(ChildStdin::from_owned_fd).transpose()?;
        let stdout = stdout.map(ChildStdout::from_owned_fd).transpose()?;
        let stderr = stderr.map(ChildStderr::from_owned_fd).transpose()?;

        let stop = StopPolicy {
            grace: self.grace,
            group: self.new_group,
        };
        let shared = Arc::new(Shared::new(process, stop));
        if collected_by_brood {
            shared.cell.collect_on_exit();
        }
        ticket.track(pid, &shared);
        guard.0 = None;
        drop(ticket);
        #[cfg(feature = "tracing")]
        crate::trace::spawn(pid, &self.std, strategy);
        Ok(Child::new(
            shared,
            stdin,
            stdout,
            stderr,
            self.kill_on_drop,
            self.max_output,
        ))
    }

    /// Spawns the child and waits for it, closing any pipes to it first so it
    /// cannot block on them. Honours [`Command::timeout`].
    ///
    /// The spawn happens when this is called, not when the future is polled.
    #[must_use = "the child is spawned now but waited for only when the returned future is \
                  awaited; its result says how the child ended"]
    pub fn status(&mut self) -> impl Future<Output = io::Result<ExitStatus>> {
        // Nobody else can ever collect this exit: brood does, at once.
        let child = self.spawn_child(true);
        let timeout = self.timeout;
        async move {
            let mut child = child?;
            child.stdin.take();
            child.stdout.take();
            child.stderr.take();
            match timeout {
                None => child.wait().await,
                Some(limit) => child.wait_or_stop(limit).await,
            }
        }
    }

    /// Spawns the child with stdout and stderr piped, and collects them and
    /// its status. Honours [`Command::timeout`] and [`Command::max_output`].
    ///
    /// The spawn happens when this is called, not when the future is polled.
    ///
    /// On a multi-thread Tokio runtime, once the output turns out to be large
    /// (one read fills a whole pipe), the rest is read on a thread of Tokio's
    /// blocking pool, which keeps a bulk capture as fast as
    /// `std::process::Command::output`; see
    /// [`Child::wait_with_output`](crate::Child::wait_with_output).
    #[must_use = "the child is spawned now but its output is collected only when the returned \
                  future is awaited"]
    pub fn output(&mut self) -> impl Future<Output = io::Result<Output>> {
        self.std.stdout(Stdio::piped());
        self.std.stderr(Stdio::piped());
        let child = self.spawn_child(true);
        let timeout = self.timeout;
        async move { child?.collect_output(timeout).await }
    }
}
