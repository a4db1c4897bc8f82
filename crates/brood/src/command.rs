//! The `Command` builder: `std::process::Command` plus brood's options.
//!
//! Spawning goes through `std::process::Command::spawn`, so std's
//! `posix_spawn` fast path stays in use; brood adds nothing that runs in the
//! child between fork and exec. The one exception is a child contained in a
//! cgroup, which must start inside it: `containment::spawn` places it, with
//! brood's own spawn where it can read the command back from its std
//! builder, and with std's spawn and a placement hook otherwise.
//!
//! Owns: [`Command`] and its conversions from and to std's and tokio's
//! builders. Calls: `child` (the new `Child`), `containment` (a
//! contained child's cgroup or group), `reaper` (the spawn ticket: tracking
//! and the exit watcher's choice), `stdio`, `sys`, `trace`.

use crate::child::process::Process;
use crate::child::shared::{Shared, StopPolicy};
use crate::child::Child;
use crate::containment::spawn::{self as contained, StdCommand, Target};
use crate::containment::{CgroupPool, CgroupTree, Containment, Tree};
use crate::reaper::{self, SpawnTicket, Strategy};
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sync::Arc;
use crate::sys;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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
    contain: Option<Containment>,
    cgroup_parent: Option<PathBuf>,
    cgroup_pool: Option<CgroupPool>,
    wait_delay: Option<Duration>,
    /// `arg0`, as given: std shows it only escaped, and brood's own spawn
    /// needs it to read the command back.
    arg0: Option<OsString>,
    /// The std builder was reachable as `&mut std::process::Command`
    /// ([`Command::as_std_mut`], `From`) or was given a `pre_exec` hook, so
    /// it may hold hooks nobody can see: a contained spawn must go through
    /// std's own spawn.
    std_only: bool,
    /// The slot of brood's placement hook, once installed on `std` (see
    /// `containment::spawn`).
    placement: Option<Arc<sys::spawn::Placement>>,
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
        if let Some(contain) = &self.contain {
            out.field("contain", contain);
        }
        if let Some(parent) = &self.cgroup_parent {
            out.field("cgroup_parent", parent);
        }
        if let Some(pool) = &self.cgroup_pool {
            out.field("cgroup_pool", pool);
        }
        if let Some(delay) = &self.wait_delay {
            out.field("wait_delay", delay);
        }
        out.finish()
    }
}

impl From<std::process::Command> for Command {
    /// Wraps a std builder. It may hold `pre_exec` hooks brood cannot see,
    /// so a [contained](Command::contain) spawn of it goes through std's
    /// own spawn (see [`Command::as_std_mut`]).
    fn from(std: std::process::Command) -> Self {
        Command::wrap(std, true)
    }
}

/// Takes over a `tokio::process::Command`, with its `kill_on_drop`, so that a
/// library that moved to brood can keep accepting tokio's type.
///
/// As with `From<std::process::Command>`, a process group set on the
/// command before the conversion is kept for the spawn, but brood learns of
/// a new group (for its whole-group stops) only from
/// [`Command::process_group`] called on the brood `Command`; and, as there,
/// the std builder inside may hold `pre_exec` hooks brood cannot see, so a
/// [contained](Command::contain) spawn of it goes through std's own spawn.
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
/// [`Command::pipe_capacity`], [`Command::contain`], [`Command::wait_delay`])
/// have no tokio counterpart and are dropped.
impl From<Command> for tokio::process::Command {
    fn from(command: Command) -> Self {
        let mut tokio = tokio::process::Command::from(command.std);
        tokio.kill_on_drop(command.kill_on_drop);
        tokio
    }
}

/// Kills and reaps a child whose spawn failed after the fork, so that an
/// error from `spawn` never leaves a process or a zombie behind; a contained
/// child's whole tree goes, and its cgroup with it.
struct ReapOnFailure(Option<u32>, Option<Arc<CgroupTree>>);

impl Drop for ReapOnFailure {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            if let Some(tree) = &self.1 {
                tree.discard();
            }
            let _ = sys::process::kill(pid, libc::SIGKILL);
            let _ = sys::process::wait4(pid, false);
        }
    }
}

/// A spawned child, before it becomes a `Child`.
struct Spawned {
    pid: u32,
    /// From brood's own spawn (clone3 gives one from birth).
    pidfd: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

impl Spawned {
    fn by_std(mut child: std::process::Child) -> Spawned {
        Spawned {
            pid: child.id(),
            pidfd: None,
            stdin: child.stdin.take().map(OwnedFd::from),
            stdout: child.stdout.take().map(OwnedFd::from),
            stderr: child.stderr.take().map(OwnedFd::from),
        }
    }
}

impl Command {
    fn wrap(std: std::process::Command, std_only: bool) -> Command {
        Command {
            std,
            kill_on_drop: false,
            new_group: false,
            grace: None,
            timeout: None,
            max_output: None,
            pipe_capacity: None,
            contain: None,
            cgroup_parent: None,
            cgroup_pool: None,
            wait_delay: None,
            arg0: None,
            std_only,
            placement: None,
        }
    }

    /// A command to run `program`, looked up in `PATH` as std does.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::wrap(std::process::Command::new(program), false)
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
    /// group if the child leads one ([`Command::process_group`] with `0`),
    /// or to the whole tree if it is [contained](Command::contain); a tree
    /// in a cgroup is stopped even if the child itself has exited.
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
        self.arg0 = Some(arg.as_ref().to_owned());
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

    /// Contains the child's whole tree: every process it starts, however it
    /// detaches, is reached by brood's stops (kill_on_drop,
    /// [`Command::timeout`], [`Command::max_output`], [`Command::wait_delay`],
    /// [`Child::terminate`]), waited for by [`Child::wait_tree`], and, in a
    /// cgroup, listed by [`Child::members`] and accounted by
    /// [`Child::tree_usage`]. Default: not contained.
    ///
    /// - [`Containment::Group`]: the child leads a new process group (as
    ///   [`Command::process_group`] with `0`). A descendant that calls
    ///   `setsid` or `setpgid` leaves it, and so escapes.
    /// - [`Containment::Cgroup`] (Linux): the child starts inside a fresh
    ///   cgroup v2 of its own, created under [`Command::cgroup_parent`],
    ///   before it runs a single instruction, so no descendant escapes. The
    ///   cgroup is removed (or given back to a [`Command::cgroup_pool`])
    ///   once the tree is empty and its leader reaped, also after the
    ///   `Child` was dropped. If no cgroup can be made there, `spawn` fails with an
    ///   error that names the directory and says why, and no process is
    ///   created; off Linux it fails with [`io::ErrorKind::Unsupported`].
    /// - [`Containment::Auto`]: `Cgroup` where brood can create one, else
    ///   `Group`.
    ///
    /// `Group`, and an `Auto` that fell back to it, set `process_group(0)`
    /// on the command.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use brood::{Command, Containment};
    /// use std::time::Duration;
    ///
    /// // A job that daemonizes a grandchild: the timeout stops it too.
    /// let err = Command::new("sh")
    ///     .args(["-c", "setsid sleep 1000 & sleep 1000"])
    ///     .contain(Containment::Cgroup)
    ///     .timeout(Duration::from_secs(1))
    ///     .status()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok(()) }
    /// ```
    pub fn contain(&mut self, containment: Containment) -> &mut Command {
        self.contain = Some(containment);
        self
    }

    /// Where the per-child cgroups of [`Containment::Cgroup`] (and `Auto`)
    /// are created. Default: directly under the cgroup this process runs in
    /// (found from `/proc/self/cgroup` and the cgroup2 mount in
    /// `/proc/self/mountinfo`); under systemd with `Delegate=yes`, that is
    /// the delegated subtree.
    ///
    /// The directory must exist, be on a cgroup v2 hierarchy, be a `domain`
    /// cgroup, and be writable by this process, which must also be allowed
    /// to move processes below it. Otherwise a `Cgroup` spawn fails with an
    /// error that names the path and says which of these it is not, and an
    /// `Auto` spawn falls back to `Group`.
    ///
    /// brood's default parent holds this process, so no controller can be
    /// enabled for its children and [`TreeUsage::peak_memory`](crate::TreeUsage::peak_memory)
    /// is `None`. For memory figures, pass a parent with the memory
    /// controller enabled below it.
    pub fn cgroup_parent<P: AsRef<Path>>(&mut self, path: P) -> &mut Command {
        self.cgroup_parent = Some(path.as_ref().to_owned());
        self
    }

    /// Takes the child's cgroup from `pool` when it keeps an empty one made
    /// under the same [`Command::cgroup_parent`], and gives the cgroup to
    /// `pool` once the child's tree has ended, instead of making one for the
    /// child and removing it after. For programs that spawn many short
    /// contained children; see [`CgroupPool`] for what is reused and when.
    /// Only a child that gets a cgroup ([`Command::contain`]) uses it.
    pub fn cgroup_pool(&mut self, pool: &CgroupPool) -> &mut Command {
        self.cgroup_pool = Some(pool.clone());
        self
    }

    /// Like Go's `Cmd.WaitDelay`: once the child has exited,
    /// [`Command::output`] and [`Child::wait_with_output`] wait at most
    /// `delay` for its pipes to reach end-of-file (a grandchild may hold
    /// them open). Then brood closes the pipes, stops the rest of the
    /// child's tree if it is [contained](Command::contain) (as
    /// [`Command::grace`] says), and they fail with an [`io::Error`] of kind
    /// [`io::ErrorKind::TimedOut`] whose inner error is
    /// [`WaitDelayExceeded`](crate::WaitDelayExceeded), holding the
    /// child's status and every byte read. Default: none, as in tokio: wait
    /// for end-of-file however long it takes.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use brood::{Command, Containment, WaitDelayExceeded};
    /// use std::time::Duration;
    ///
    /// let err = Command::new("sh")
    ///     .args(["-c", "echo hello; sleep 1000 &"])
    ///     .contain(Containment::Auto)
    ///     .wait_delay(Duration::from_millis(500))
    ///     .output()
    ///     .await
    ///     .unwrap_err();
    /// let late = err.get_ref().unwrap().downcast_ref::<WaitDelayExceeded>().unwrap();
    /// assert_eq!(late.output().stdout, b"hello\n");
    /// # }
    /// ```
    pub fn wait_delay(&mut self, delay: Duration) -> &mut Command {
        self.wait_delay = Some(delay);
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
    ///
    /// For a child [contained](Command::contain) in a cgroup, `f` runs
    /// inside the cgroup already: brood's own placement hook runs first.
    // The one `unsafe` outside `sys`: the public API itself is unsafe, as in
    // std and tokio, and only forwards the caller's promise.
    #[allow(unsafe_code)]
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        // Before the user's hook, so that it runs in the child's cgroup if
        // the child is contained in one (the hook is a no-op otherwise).
        // The user's hook makes std fork anyway, so this costs nothing.
        self.install_placement_hook();
        // SAFETY: the caller upholds pre_exec's contract, as documented above.
        unsafe { sys::process::pre_exec(&mut self.std, f) };
        self
    }

    /// Installs brood's placement hook on the std builder unless it is
    /// there; from now on the builder may hold hooks of the user's.
    fn install_placement_hook(&mut self) {
        self.std_only = true;
        if self.placement.is_none() {
            self.placement = Some(sys::spawn::install_placement_hook(&mut self.std));
        }
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
    ///
    /// brood cannot see what is done to it (a `pre_exec` hook, say), so from
    /// then on a [contained](Command::contain) spawn of this command in a
    /// cgroup goes through std's own spawn, with a hook that moves the child
    /// into its cgroup before it execs: still atomic, but std forks, which
    /// costs more the more memory this process has. A hook given to the std
    /// builder runs inside the cgroup if `contain` was called before
    /// `as_std_mut`, and before the placement (outside the cgroup)
    /// otherwise; the program itself always starts inside.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        if matches!(self.contain, Some(Containment::Cgroup | Containment::Auto)) {
            // Ahead of any hook added through the reference.
            self.install_placement_hook();
        }
        self.std_only = true;
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
        let Some(containment) = self.contain else {
            let ticket = reaper::prepare_spawn()?;
            let std_child = self.std.spawn()?;
            let child = Spawned::by_std(std_child);
            return self.finish_spawn(ticket, child, None, collected_by_brood);
        };
        self.spawn_contained(containment, collected_by_brood)
    }

    /// Spawns a child contained as `containment` asks.
    fn spawn_contained(
        &mut self,
        containment: Containment,
        collected_by_brood: bool,
    ) -> io::Result<Child> {
        let pool = self.cgroup_pool.as_ref().map(CgroupPool::pool);
        match contained::prepare(containment, self.cgroup_parent.as_deref(), pool)? {
            Target::Group => {
                self.std.process_group(0);
                let ticket = reaper::prepare_spawn()?;
                let std_child = self.std.spawn()?;
                let pgid = std_child.id();
                self.finish_spawn(
                    ticket,
                    Spawned::by_std(std_child),
                    Some(Tree::Group { pgid }),
                    collected_by_brood,
                )
            }
            Target::Cgroup(cgroup) => {
                let ticket = reaper::prepare_spawn()?;
                // The tree's watch runs on the background thread; make sure
                // it can before the child exists.
                reaper::ensure_background()?;
                let child = cgroup.spawn(StdCommand {
                    std: &mut self.std,
                    arg0: self.arg0.as_deref(),
                    std_only: self.std_only,
                    placement: &mut self.placement,
                })?;
                let tree = cgroup.into_tree();
                let child = Spawned {
                    pid: child.pid,
                    pidfd: child.pidfd,
                    stdin: child.stdin,
                    stdout: child.stdout,
                    stderr: child.stderr,
                };
                self.finish_spawn(ticket, child, Some(Tree::Cgroup(tree)), collected_by_brood)
            }
        }
    }

    /// Turns a spawned child into a `Child`: its exit watcher, its pipes,
    /// its stop policy and containment, and its entry in the table of live
    /// children. If anything fails, the child (and its tree) is killed and
    /// reaped before the error is returned.
    fn finish_spawn(
        &mut self,
        ticket: SpawnTicket,
        child: Spawned,
        tree: Option<Tree>,
        collected_by_brood: bool,
    ) -> io::Result<Child> {
        let strategy = ticket.strategy;
        let pid = child.pid;
        let cgroup = tree.as_ref().and_then(Tree::cgroup).cloned();
        let mut guard = ReapOnFailure(Some(pid), cgroup);

        let process = match (strategy, child.pidfd) {
            (Strategy::Pidfd, Some(pidfd)) => Process::with_open_pidfd(pid, pidfd),
            (Strategy::Pidfd, None) => Process::with_pidfd(pid),
            // A pidfd from brood's spawn is closed here: nothing waits on it.
            (Strategy::Signal, _) => Process::by_pid(pid),
        };

        let Spawned {
            stdin,
            stdout,
            stderr,
            ..
        } = child;
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
            group: self.new_group || matches!(tree, Some(Tree::Group { .. })),
        };
        let shared = Arc::new(match tree {
            None => Shared::new(process, stop),
            Some(tree) => Shared::contained(process, stop, tree),
        });
        if collected_by_brood {
            shared.cell.collect_on_exit();
        }
        // A brood call that may stop the child's group (a time limit, an
        // output cap, a wait delay) holds the leader unreaped from before it
        // is registered: its exit may come long before such a stop (its
        // grandchildren holding the pipes), and the stop must still reach
        // its group, and no recycled one.
        let may_stop =
            self.timeout.is_some() || self.max_output.is_some() || self.wait_delay.is_some();
        let leader_held =
            collected_by_brood && may_stop && shared.stops_reach_group() && shared.hold_leader();
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
            self.wait_delay,
        )
        .with_leader_held(leader_held))
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
