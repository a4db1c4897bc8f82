//! async-process 2.x, driven the smol way: an `async_executor::LocalExecutor`
//! run inside `async_io::block_on` on the worker's main thread; concurrent
//! waits are executor tasks. Its exit future is `Child::status`.

use super::async_scenarios::{self, build_command, AsyncLib, Spec};
use crate::params::Case;
use crate::report::Report;
use async_executor::{LocalExecutor, Task};
use futures_lite::AsyncReadExt;
use std::future::Future;
use std::io;
use std::process::{ExitStatus, Output};

/// async-process on a local executor.
struct AsyncProcess<'ex> {
    executor: &'ex LocalExecutor<'static>,
}

/// Runs `case` on a fresh local executor.
pub fn run(case: &Case, warmup: u64) -> io::Result<Report> {
    let executor = LocalExecutor::new();
    let lib = AsyncProcess {
        executor: &executor,
    };
    async_io::block_on(executor.run(async_scenarios::run(&lib, case, warmup)))
}

impl AsyncLib for AsyncProcess<'_> {
    type Child = async_process::Child;
    type Task<T: Send + 'static> = Task<T>;

    fn spawn(&self, spec: Spec<'_>) -> io::Result<async_process::Child> {
        build_command!(async_process::Command, spec).spawn()
    }

    fn wait(
        child: &mut async_process::Child,
    ) -> impl Future<Output = io::Result<ExitStatus>> + Send {
        child.status()
    }

    fn output(&self, spec: Spec<'_>) -> impl Future<Output = io::Result<Output>> {
        build_command!(async_process::Command, spec).output()
    }

    async fn read_stdout(child: &mut async_process::Child) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        stdout.read_to_end(&mut out).await?;
        Ok(out)
    }

    fn spawn_task<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.executor.spawn(fut)
    }

    async fn join<T: Send + 'static>(task: Task<T>) -> io::Result<T> {
        Ok(task.await)
    }
}
