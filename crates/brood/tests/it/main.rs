//! brood's integration tests: one test binary, a module per area.
//!
//! | module | what it checks |
//! | --- | --- |
//! | [`process`] | core process behaviour, ported from what tokio's process tests check: statuses, pipes, descriptors, runtimes, scale |
//! | [`reaper`] | the exit watchers: strategy choice, O(1) SIGCHLD dispatch, no handler on the pidfd path, reaping dropped children, spawning outside a runtime |
//! | [`beyond`] | what brood adds to tokio::process: signals, graceful and group stops, timeouts, resource usage, handles, output caps, `watch_pid`, subreaper mode |
//! | [`interleavings`] | a property-based state machine over every API: nothing is ever lost |
//! | [`faults`] | fault injection: denied system calls, exhausted limits, a tracer, foreign reaping, host SIGCHLD handling, many runtimes, runtime shutdown |
//! | [`compat`] | drop-in fidelity: brood driven the way tokio::process wrapper crates drive it |
//! | [`contain`] | containment: every stop reaches every member, escapees, atomic placement, cleanup, bad parents, `wait_tree`, `tree_usage`, `wait_delay` |
//! | [`security`] | no signal after reaping, no descriptor leaks into children, `env_clear`, no shell |
//! | [`soak`] | 100,000 spawn/wait/drop cycles (ignored; `scripts/soak`) |
//! | `tracing_events` | the `tracing` feature's events (built with `--features tracing` only) |
//!
//! Every test runs under both exit watchers: `scripts/test` runs the binary
//! with `BROOD_REAPER=pidfd` and with `BROOD_REAPER=signal`. Async test
//! bodies are bounded ([`brood_testkit::bounded_test!`]), conditions with no
//! event to wait for are polled with a deadline
//! ([`brood_testkit::eventually`]), and tests that change process-wide state
//! run in a worker process ([`brood_testkit::worker`]). The helpers shared
//! with the CLI tests and the benchmark are in `crates/brood-testkit`.

mod beyond;
mod compat;
mod contain;
mod faults;
mod interleavings;
mod process;
mod reaper;
mod security;
mod soak;
#[cfg(feature = "tracing")]
mod tracing_events;

/// Runs `sh -c 'exit N'` for N in `codes`, one after another, and checks
/// that each status is its own: children that come and go while a test
/// holds something else in place.
async fn exits_one_after_another(codes: impl IntoIterator<Item = i32>) {
    for code in codes {
        let status = brood::Command::new("sh")
            .args(["-c", &format!("exit {code}")])
            .status()
            .await
            .unwrap();
        assert_eq!(status.code(), Some(code));
    }
}
