//! Asynchronous child processes for Tokio on Unix.
//!
//! On other platforms brood is `tokio::process` itself, re-exported (see
//! [Migrating from `tokio::process`](#migrating-from-tokioprocess)), so that
//! `use brood::Command` compiles everywhere; everything else documented here
//! is Unix-only.
//!
//! brood is a drop-in replacement for `tokio::process`: change
//! `use tokio::process::Command` to `use brood::Command` and everything keeps
//! working. Underneath, it reaps children correctly in every situation and
//! does O(1) work per child exit on every path, and it adds what
//! `tokio::process` lacks: signals without pid-reuse races, graceful
//! TERM→KILL stops, containment of a child's whole tree (a cgroup of its
//! own, or a process group), timeouts, resource usage, shared handles,
//! output caps, watching any pid, and subreaper mode.
//!
//! ```no_run
//! use brood::Command;
//! use std::process::Stdio;
//! use std::time::Duration;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn demo() -> std::io::Result<()> {
//! // Exactly like tokio::process.
//! let mut child = Command::new("tr")
//!     .arg("a-z")
//!     .arg("A-Z")
//!     .stdin(Stdio::piped())
//!     .stdout(Stdio::piped())
//!     .spawn()?;
//! let mut stdin = child.stdin.take().unwrap();
//! stdin.write_all(b"hello").await?;
//! stdin.shutdown().await?; // closes the pipe: tr sees EOF
//! let mut out = String::new();
//! child.stdout.take().unwrap().read_to_string(&mut out).await?;
//! assert_eq!(out, "HELLO");
//! assert!(child.wait().await?.success());
//!
//! // Beyond tokio::process: a timeout that stops a whole process tree.
//! let result = Command::new("sh")
//!     .args(["-c", "sleep 100 & sleep 100"])
//!     .process_group(0)
//!     .timeout(Duration::from_secs(1))
//!     .grace(Duration::from_millis(200))
//!     .status()
//!     .await;
//! assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
//! # Ok(()) }
//! ```
//!
//! # Containment
//!
//! A timeout that kills a child does not stop a grandchild that called
//! `setsid` or double-forked, and one that holds the child's stdout keeps
//! `output()` waiting. [`Command::contain`] makes brood's stops, waits and
//! figures cover the whole tree:
//!
//! - [`Containment::Cgroup`] (Linux): the child starts inside a fresh
//!   cgroup v2 of its own, before its first instruction, so no descendant
//!   can escape. Every stop brood makes (kill_on_drop, [`Command::timeout`],
//!   [`Command::max_output`], [`Command::wait_delay`], [`Child::terminate`])
//!   reaches every member: SIGTERM to the members present while the cgroup
//!   is frozen, then `cgroup.kill` after the grace (or at once without one).
//!   [`Child::wait_tree`] waits for the cgroup to empty, [`Child::members`]
//!   lists it, [`Child::tree_usage`] reports the CPU of every process that
//!   ran in it. The cgroup is removed once the tree is empty and its leader
//!   reaped, also after the `Child` was dropped; a [`CgroupPool`] keeps it
//!   for the next child instead. It is created under [`Command::cgroup_parent`],
//!   by default under the cgroup this process runs in; a bad parent fails
//!   the spawn with an error that names it.
//! - [`Containment::Group`]: the child leads a new process group, and stops
//!   go to the group. A descendant that calls `setsid` leaves it.
//! - [`Containment::Auto`]: `Cgroup` where brood can create one, else
//!   `Group` (always `Group` off Linux, where `Cgroup` is `Unsupported`).
//!
//! ```no_run
//! use brood::{Command, Containment};
//! use std::time::Duration;
//!
//! # async fn demo() -> std::io::Result<()> {
//! // A job that daemonizes a grandchild (it leaves the job's session), then
//! // hangs: the timeout stops the whole tree, the daemon included.
//! let mut job = Command::new("sh")
//!     .args(["-c", "setsid sh -c 'while :; do :; done' & sleep 1000"])
//!     .contain(Containment::Cgroup)
//!     .spawn()?;
//! if job.wait_timeout(Duration::from_secs(1)).await?.is_none() {
//!     job.terminate(Duration::from_millis(200)).await?; // the tree is gone
//! }
//! assert!(job.members()?.is_empty());
//! let cpu = job.tree_usage().unwrap().user_time(); // the daemon's CPU included
//! # Ok(()) }
//! ```
//!
//! Contained spawns into a cgroup go through brood's own spawn
//! (`clone3(CLONE_INTO_CGROUP)`, which does not copy the parent; a fork that
//! places the child before exec where clone3 is denied), or through std's
//! spawn with a placement hook for commands brood cannot read back (see
//! [`Command::as_std_mut`]). Every other spawn, `Group` included, is std's
//! `posix_spawn`, as without containment.
//!
//! # How exits are observed
//!
//! See [`reaper`] for the two exit watchers (pidfd and SIGCHLD) and how one
//! is chosen. In short: on Linux each child gets a pidfd that the awaiting
//! task's reactor watches, and the task reaps its own child; elsewhere a
//! single SIGCHLD handler tells a background thread which child exited, and
//! only that child's waiters are woken.
//!
//! # Tracing
//!
//! With the `tracing` feature, brood emits `tracing` events under the target
//! `brood`: `spawned` (pid, program, strategy), `exited` (status, user and
//! system time, peak RSS), `signal sent` (signal, whether to the group) and
//! `orphan reaped` (a child whose `Child` was dropped, or an adopted orphan in
//! subreaper mode).
//!
//! `exited` is emitted before the exit is published, so it is recorded
//! before any `wait` returns it. It is emitted while brood holds that
//! child's internal lock: a subscriber must not call back into brood for the
//! same child (say, `try_wait` on it) from inside the event.
//!
//! # Migrating from `tokio::process`
//!
//! Change the import, and keep everything else:
//!
//! ```
//! // Before: use tokio::process::{Child, Command};
//! use brood::{Child, Command};
//! # let _ = |c: Child| c;
//! ```
//!
//! `brood::{Command, Child, ChildStdin, ChildStdout, ChildStderr}` take the
//! place of tokio's, and `brood::{ExitStatus, Output, Stdio}` are std's own.
//! Tokio's process tests pass on brood under both exit watchers, and so do
//! the test suites of crates built on `tokio::process` (process-wrap,
//! command-group, tokio-process-stream, tokio-process-terminate) once
//! swapped, with only the fixes below.
//!
//! **Other platforms.** On targets that are not Unix, `brood` re-exports
//! `tokio::process::{Command, Child, ChildStdin, ChildStdout, ChildStderr}`
//! (and std's `ExitStatus`, `Output`, `Stdio`), so the import can be swapped
//! unconditionally. brood's additions (signals, stops, handles, timeouts,
//! [`reaper`], ...) exist only on Unix: put code that uses them behind
//! `#[cfg(unix)]`.
//!
//! **Keeping tokio's type in a public API.** A library that moves to brood
//! can keep accepting and returning `tokio::process::Command`, so its users
//! are not broken: `brood::Command::from(tokio_command)` and
//! `tokio::process::Command::from(brood_command)` both carry
//! `kill_on_drop` across (brood's own options have no tokio counterpart and
//! are dropped on the way to tokio). `From<std::process::Command>` works too.
//!
//! **Names that may shadow a trait's method.** brood's inherent methods win
//! over extension traits' methods of the same name, so a call that reached
//! a trait under tokio reaches brood's method instead, and usually no longer
//! compiles. These are the names brood adds:
//!
//! | type | inherent methods beyond `tokio::process` |
//! | --- | --- |
//! | [`Child`] | `signal`, `signal_group`, `terminate`, `wait_timeout`, `wait_with_rusage`, `resource_usage`, `handle` |
//! | [`Command`] | `grace`, `timeout`, `max_output`, `pipe_capacity` |
//!
//! The fix is one line: call the trait's method by its path (UFCS). For
//! example, with command-group's `UnixChildExt` and
//! tokio-process-terminate's `TerminateExt`:
//!
//! ```text
//! child.signal(Signal::SIGTERM)?;   →   UnixChildExt::signal(&child, Signal::SIGTERM)?;
//! child.terminate();                →   TerminateExt::terminate(&mut child);
//! ```
//!
//! Inside a trait implementation that forwards to the child, the same:
//! `crate::UnixChildExt::signal(c, sig)` instead of `c.signal(sig)`. Every
//! brood future and every `async fn` result is `#[must_use]`, so a call like
//! `child.terminate(grace);` that compiles against brood's method but is
//! never awaited is reported at compile time, with a message that says how
//! to reach a trait's method instead:
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! # async fn demo(mut child: brood::Child) {
//! // Meant tokio-process-terminate's `terminate()`: does nothing at all.
//! child.terminate(std::time::Duration::from_secs(1));
//! # }
//! ```
//!
//! ```
//! #![deny(unused_must_use)]
//! # async fn demo(mut child: brood::Child) -> std::io::Result<()> {
//! let status = child.terminate(std::time::Duration::from_secs(1)).await?;
//! println!("stopped: {status}");
//! # Ok(()) }
//! ```
//!
//! **What differs from tokio, and why.**
//!
//! - *No panic outside a runtime*: `spawn` works anywhere, and polling a
//!   pipe outside a Tokio runtime is an error, not a panic.
//! - *When the exit is collected.* As under tokio, the exit of a child whose
//!   `Child` you hold stays collectable until you ask for it (`wait`,
//!   `try_wait`, [`ChildHandle::status`]): code that reaps its own process
//!   group with `waitpid(-pgid, WNOHANG)` keeps working. While a `wait()`
//!   is pending, though, and once the `Child` went to `output`,
//!   `wait_with_output` or `status`, or was dropped, brood collects the exit
//!   the moment it happens rather than at the task's next poll (that is
//!   what keeps the SIGCHLD path O(1)). If a `waitpid` of your own gets the
//!   exit first, `wait` and `try_wait` return an error of kind
//!   [`io::ErrorKind::Other`](std::io::ErrorKind::Other) naming `ECHILD`.
//! - *Cancel-safe waits.* A `wait()` future dropped while pending leaves its
//!   waker with the `Child`, as tokio's does, so a hand-written `Future` or
//!   `Stream` that polls a fresh `child.wait()` each time is woken when the
//!   child exits.
//! - *Signals after the exit*: [`Child::start_kill`] and [`Child::signal`]
//!   on a child that has exited send nothing and return `Ok(())` (tokio's
//!   `start_kill` fails with `InvalidInput` once the exit was collected).
//! - *`Debug` of `Command`* prints exactly what tokio's does, plus brood's
//!   own options when they are set.
//! - *The cost of an exit nobody waits for* (SIGCHLD path only): see
//!   [`reaper`]. While such an exit is left uncollected, each SIGCHLD costs
//!   one wait call per tracked child somebody waits for (or has waited for,
//!   dropped, or shares through a handle) instead of one in all.
//!
//! # Caveats
//!
//! - **Dropping a `Child` does not kill it** unless
//!   [`Command::kill_on_drop`] is set, as in tokio. It is still reaped: a
//!   background thread (`brood-reaper`, started on first need) collects its
//!   exit, so it never stays a zombie, even after the runtime that spawned it
//!   has shut down. A process that exits while children are still running
//!   leaves them running, re-parented to init (or to a subreaper).
//! - **Runtime shutdown.** Children whose `Child` is dropped at shutdown
//!   follow the rule above: kill_on_drop ones are stopped, the rest keep
//!   running and are reaped by the background thread if the process lives on.
//! - **Grace periods need a living process.** With [`Command::grace`], a
//!   kill_on_drop stop sends SIGTERM at once and leaves the final SIGKILL to
//!   the background thread; if the whole program exits before the grace
//!   period ends, that SIGKILL is never sent. A program that must not exit
//!   before its children are gone awaits [`Child::terminate`] instead, which
//!   for a process group resolves only once the group is empty.
//! - **Foreign reaping.** If other code in the process reaps a brood child
//!   (`waitpid(-1)`, or `waitpid` on its pid or group), or sets SIGCHLD to
//!   `SIG_IGN` so the kernel reaps children itself, brood loses the status:
//!   `wait` returns an error of kind `Other` naming `ECHILD` instead of
//!   hanging. Reaping your own child this way while you hold its `Child`
//!   and no `wait` is pending is fine (brood leaves its exit for you); while
//!   a `wait` is pending, brood may collect the exit first and your
//!   `waitpid` gets `ECHILD`. On the SIGCHLD path a child lost this way is
//!   noticed by a safety-net scan after one second without SIGCHLDs, backing
//!   off to one scan a minute.
//! - **The SIGCHLD path** installs one process-wide handler the first time a
//!   child is spawned on it. A handler the program installed earlier keeps
//!   being called. A program that later replaces the handler takes over SIGCHLD
//!   and brood falls back to its safety net. Children spawned with
//!   `std::process` are never reaped by brood, but while one of them is an
//!   unwaited zombie brood must ask each of its own children individually
//!   on every SIGCHLD; the same holds while the exit of a brood child you
//!   hold without waiting is left for you (see [`reaper`]).
//! - **Pipes** are registered with the Tokio reactor of the task that first
//!   polls them. Polling them outside a Tokio runtime is an error, not a
//!   panic.
//! - **Process-group signals** ([`Child::signal_group`] and group stops,
//!   [`Containment::Group`] included) use `killpg`, which reaches the group
//!   for as long as any member lives, even after the leader was reaped. Once
//!   every member has exited, the group id could in principle be reused by a
//!   new process-group leader; brood sends group signals only up to the end
//!   of a stop's grace period. A cgroup has no such window: brood holds its
//!   directory open, and a removed cgroup is never reused.
//! - **Timers** for [`Command::timeout`], [`Child::wait_timeout`] and grace
//!   periods run on brood's background thread, so they work without Tokio's
//!   time driver; their resolution is a millisecond.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

// The crate's layers, top down. A file uses only layers below its own, which
// scripts/check-layers checks (no import cycle among files or modules):
//
//   command, subreaper, watch   the public entry points beside `Child`
//   child        Child, ChildHandle, the exit cell, output capture
//   containment  a contained child's tree: its cgroup or group, its stops,
//                its end, and the placement of a child in its cgroup
//   reaper       the exit watchers, the table of live children, the
//                background thread, timers, change watches (owns the
//                `Tracked` and `Changes` traits that the layers above
//                implement)
//   stdio        async pipes
//   reactor      registering descriptors with Tokio's reactor
//   spawn        brood's own spawn above sys: the plan, and reading a std
//                Command back
//   cgroup       the cgroup v2 layer: parents, a child's cgroup, events
//   trace, rusage, signal, sync   leaves
//   sys          every system call, chosen per platform; all unsafe code

// Everything below is Unix-only; other targets get the re-exports at the
// end.
#[cfg(unix)]
mod cgroup;
#[cfg(unix)]
mod child;
#[cfg(unix)]
mod command;
#[cfg(unix)]
mod containment;
#[cfg(all(unix, test, brood_loom))]
mod loom_models;
#[cfg(unix)]
mod reactor;
#[cfg(unix)]
pub mod reaper;
#[cfg(unix)]
mod rusage;
#[cfg(unix)]
mod signal;
#[cfg(unix)]
mod spawn;
#[cfg(unix)]
mod stdio;
#[cfg(unix)]
mod subreaper;
#[cfg(unix)]
mod sync;
#[cfg(unix)]
mod sys;
#[cfg(all(unix, feature = "test-hooks"))]
#[doc(hidden)]
pub mod test_hooks;
#[cfg(all(unix, feature = "tracing"))]
mod trace;
#[cfg(unix)]
mod watch;

#[cfg(unix)]
pub use child::{Child, ChildHandle, OutputLimitExceeded, WaitDelayExceeded};
#[cfg(unix)]
pub use command::Command;
#[cfg(unix)]
pub use containment::{CgroupPool, Containment, TreeUsage};
#[cfg(unix)]
pub use rusage::ResourceUsage;
#[cfg(unix)]
pub use signal::Signal;
#[cfg(unix)]
pub use stdio::{ChildStderr, ChildStdin, ChildStdout};
#[cfg(unix)]
pub use subreaper::become_subreaper;
#[cfg(unix)]
pub use watch::watch_pid;

/// Where brood has no implementation of its own (platforms other than
/// Unix), `tokio::process`'s types, so that `use brood::Command` compiles
/// everywhere. brood's additions exist only on Unix.
#[cfg(not(unix))]
pub use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// `std`'s own types, re-exported so that `brood::` paths cover a whole
/// `tokio::process` program.
pub use std::process::{ExitStatus, Output, Stdio};
