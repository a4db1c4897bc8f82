//! Tokio runtimes for tests that build their own (workers, several runtimes
//! at once, runtime shutdown, a scenario run on both flavours), each with
//! every driver enabled.

use std::future::Future;
use std::time::Duration;
use tokio::runtime::{Builder, Runtime};

/// A current-thread runtime.
pub fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime")
}

/// A multi-thread runtime with `workers` worker threads.
pub fn multi_thread(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("build a multi-thread runtime")
}

/// Drives `fut` to completion on a fresh current-thread runtime, which is
/// dropped afterwards.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    current_thread().block_on(fut)
}

/// Runs `scenario` to completion on a current-thread runtime, then on a
/// multi-thread one (two workers), each within `limit` (a hang fails the
/// test). The scenario is told which flavour runs it, for its messages.
pub fn on_both<F, Fut>(limit: Duration, scenario: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    let current = current_thread();
    current.block_on(crate::bounded(limit, scenario("current-thread")));
    drop(current);
    multi_thread(2).block_on(crate::bounded(limit, scenario("multi-thread")));
}
