//! brood and `tokio::process` on a Tokio runtime. The scenario future runs
//! in `Runtime::block_on`, as under `#[tokio::main]`; concurrent waits are
//! `tokio::spawn`ed tasks. The two APIs match (brood is a drop-in
//! replacement), so one macro writes both [`AsyncLib`] implementations and
//! they differ in the `Command` type alone, plus brood's own count of wait
//! calls.

use super::async_scenarios::{self, build_command, AsyncLib, Spec};
use crate::params::{Case, S1};
use crate::report::Report;
use crate::scenarios::Flavor;
use std::future::Future;
use std::io;
use std::process::{ExitStatus, Output};
use tokio::io::AsyncReadExt;

/// brood; `BROOD_REAPER` (set by the driver) picks the exit watcher.
#[derive(Default)]
pub struct Brood;

/// `tokio::process`: its pidfd reaper where `pidfd_open` works, its SIGCHLD
/// one otherwise.
#[derive(Default)]
pub struct TokioProcess;

/// Runs `case` for library `L` on a runtime of the given flavour.
/// `spawn_needs_runtime`: `L` can spawn only inside a runtime context (S7's
/// OS threads then enter the runtime's handle to spawn).
pub fn run<L: AsyncLib + Default + Send + Sync + 'static>(
    case: &Case,
    warmup: u64,
    flavor: Flavor,
    spawn_needs_runtime: bool,
) -> io::Result<Report> {
    let runtime = match flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    if let Case::S7(p) = case {
        // S7 drives the runtime from several threads itself (`s7.rs`); the
        // warm-up is the usual one, as the body of an empty S1.
        runtime.block_on(async_scenarios::run(
            &L::default(),
            &Case::S1(S1 { n: 0 }),
            warmup,
        ))?;
        return crate::s7::tokio_s7::<L>(&runtime, p, spawn_needs_runtime);
    }
    runtime.block_on(async_scenarios::run(&L::default(), case, warmup))
}

macro_rules! tokio_style_lib {
    ($Lib:ty, $Command:ty, $Child:ty, $wait_calls:expr) => {
        impl AsyncLib for $Lib {
            type Child = $Child;
            type Task<T: Send + 'static> = tokio::task::JoinHandle<T>;

            fn spawn(&self, spec: Spec<'_>) -> io::Result<$Child> {
                build_command!($Command, spec).spawn()
            }

            fn wait(child: &mut $Child) -> impl Future<Output = io::Result<ExitStatus>> + Send {
                child.wait()
            }

            fn output(&self, spec: Spec<'_>) -> impl Future<Output = io::Result<Output>> {
                let mut cmd = build_command!($Command, spec);
                async move { cmd.output().await }
            }

            async fn read_stdout(child: &mut $Child) -> io::Result<Vec<u8>> {
                let mut out = Vec::new();
                let mut stdout = child.stdout.take().expect("stdout is piped");
                stdout.read_to_end(&mut out).await?;
                Ok(out)
            }

            fn spawn_task<T, F>(&self, fut: F) -> tokio::task::JoinHandle<T>
            where
                T: Send + 'static,
                F: Future<Output = T> + Send + 'static,
            {
                tokio::spawn(fut)
            }

            async fn join<T: Send + 'static>(task: tokio::task::JoinHandle<T>) -> io::Result<T> {
                Ok(task.await?)
            }

            fn wait_calls() -> Option<u64> {
                $wait_calls
            }
        }
    };
}

tokio_style_lib!(
    Brood,
    brood::Command,
    brood::Child,
    Some(brood::test_hooks::wait_calls())
);
tokio_style_lib!(
    TokioProcess,
    tokio::process::Command,
    tokio::process::Child,
    None
);
