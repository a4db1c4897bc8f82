//! Asynchronous child processes for Tokio on Unix.
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
//!   ran in it. The cgroup is removed once the tree is empty, also after the
//!   `Child` was dropped. It is created under [`Command::cgroup_parent`],
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
//!   (`waitpid(-1)`, or `waitpid` on its pid), or sets SIGCHLD to `SIG_IGN`
//!   so the kernel reaps children itself, the status is lost: `wait` returns
//!   an error instead of hanging. On the SIGCHLD path this is noticed by a
//!   safety-net scan after one second without SIGCHLDs, backing off to one
//!   scan a minute.
//! - **The SIGCHLD path** installs one process-wide handler the first time a
//!   child is spawned on it. A handler the program installed earlier keeps
//!   being called. A program that later replaces the handler takes over SIGCHLD
//!   and brood falls back to its safety net. Children spawned with
//!   `std::process` are never reaped by brood, but while one of them is an
//!   unwaited zombie brood must ask each of its own children individually
//!   on every SIGCHLD.
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
#![cfg(unix)]

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

mod cgroup;
mod child;
mod command;
mod containment;
#[cfg(all(test, brood_loom))]
mod loom_models;
mod reactor;
pub mod reaper;
mod rusage;
mod signal;
mod spawn;
mod stdio;
mod subreaper;
mod sync;
mod sys;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks;
#[cfg(feature = "tracing")]
mod trace;
mod watch;

pub use child::{Child, ChildHandle, OutputLimitExceeded, WaitDelayExceeded};
pub use command::Command;
pub use containment::{Containment, TreeUsage};
pub use rusage::ResourceUsage;
pub use signal::Signal;
pub use stdio::{ChildStderr, ChildStdin, ChildStdout};
pub use subreaper::become_subreaper;
pub use watch::watch_pid;

/// `std`'s own types, re-exported so that `brood::` paths cover a whole
/// `tokio::process` program.
pub use std::process::{ExitStatus, Output, Stdio};
