//! Helpers shared by brood's tests and its benchmark. Not published.
//!
//! Everything here is what more than one of brood's test suites (and the
//! benchmark program) needed and used to copy:
//!
//! | module | what | used by |
//! | --- | --- | --- |
//! | [`bounded`], [`eventually`], [`bounded_test!`] | time bounds: a hang is a failure, and conditions with no event to wait on are polled with a deadline | library tests; CLI tests ([`eventually_blocking`] is their `wait_for`) |
//! | [`runtime`] | the two Tokio runtime flavours, built the same way everywhere, and a scenario run on both | library tests |
//! | [`worker`] | re-running the test binary as a worker for one test, for state that is process-wide (its output goes to files, so that descendants that outlive it cannot hold the run open) | library tests |
//! | [`procfs`] | children, zombies, liveness and the fields of `/proc/<pid>/stat` (group, session, start time), a process's cgroup; fields of `/proc/self/status` (`VmRSS`, `VmHWM`, `SigCgt`, `TracerPid`); [`procfs::Marker`], finding a test's processes by a mark in their environment | library tests, CLI tests, bench |
//! | [`pidfd`] | processes watched through a pidfd (never a recycled pid): exited yet, SIGKILL | library tests |
//! | [`cgroup`] | private cgroup v2 parents, killed and removed on drop, their members; the skip rule (`BROOD-CGROUP-SKIP`, `BROOD_REQUIRE_CGROUP`) | library tests, CLI tests, bench |
//! | [`fds`] | descriptor counts and sets (with their targets), settled baselines, close-on-exec and pipe-size checks | library tests |
//! | [`seccomp`] | a filter that makes chosen system calls fail (pidfds denied, `clone3` denied on one thread) | library tests, bench |
//! | [`limits`] | `getrlimit`/`setrlimit`, raising the descriptor limit | library tests, bench |
//! | [`rusage`] | `getrusage(RUSAGE_SELF)` and CPU time | library tests, bench |
//! | [`jsonl`] | strict JSON Lines reading with `serde_json` (the job log) | CLI tests |
//!
//! The crate does not depend on `brood`: the library's own tests depend on
//! it, so a dependency back would be a cycle, and a helper built on brood
//! could hide a brood bug from the very test that relies on it. Processes
//! the helpers run themselves (the worker harness) are started with
//! `std::process`.
//!
//! Most modules read `/proc` or make Linux system calls and exist on Linux
//! only, like the test suites that use them; the time bounds, runtimes and
//! the worker harness are portable.
//!
//! # For the CLI tests
//!
//! The CLI tests' `crates/brood-cli/tests/it/support.rs` (once
//! `tests/common/mod.rs`) maps onto this crate as follows:
//! `wait_for(limit, cond)` is [`eventually_blocking`]; `alive(pid)` is
//! [`procfs::alive`]; `read_pids` and `assert_all_dead` are
//! [`procfs::read_pids`] and [`procfs::assert_all_dead`]; `read_joblog` and
//! `parse_json` are [`jsonl::read_file`] and [`jsonl::parse_strict`], which
//! return [`serde_json::Value`] (and keep the old parser's strictness:
//! trailing characters, duplicate keys and an unterminated last record are
//! errors); the hand-made `TempDir` is `tempfile::TempDir` (add `tempfile`
//! as a dev-dependency). `bin()` and `brood()` are assert_cmd glue and stay
//! with the CLI tests. Their containment tests use [`cgroup::PrivateParent`] as
//! the jobs' `--cgroup-parent` and [`procfs::Marker`] to find every process
//! of a job tree, escapees included.
#![warn(missing_docs)]

mod bounded;
pub mod jsonl;
pub mod runtime;
pub mod worker;

#[cfg(target_os = "linux")]
pub mod cgroup;
#[cfg(target_os = "linux")]
pub mod fds;
#[cfg(target_os = "linux")]
pub mod limits;
#[cfg(target_os = "linux")]
pub mod pidfd;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod rusage;
#[cfg(target_os = "linux")]
pub mod seccomp;

pub use bounded::{bounded, eventually, eventually_blocking, TEST_LIMIT};
