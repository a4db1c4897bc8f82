//! Tokio runtimes for tests that build their own (workers, several runtimes
//! at once, runtime shutdown), each with every driver enabled.

use std::future::Future;
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
