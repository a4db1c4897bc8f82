//! `brood`: run jobs in parallel, GNU parallel style, on the brood library.
//!
//! `brood run [OPTIONS] -- COMMAND [ARGS...] ::: INPUTS...`; `brood` alone
//! runs a short demo. See `brood --help` and the modules below.

mod cli;
mod demo;
mod duration;
mod inputs;
mod joblog;
mod logtool;
mod output;
mod progress;
mod runner;
mod shard;
mod summary;
mod template;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let code = match cli::parse(&args) {
        Err(e) => fail(&e.0),
        Ok(cli::Action::Help) => {
            let _ = std::io::stdout().write_all(cli::help().as_bytes());
            0
        }
        Ok(cli::Action::Version) => {
            let _ = writeln!(std::io::stdout(), "brood {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(cli::Action::Demo) => {
            say(format_args!("{}", demo::INTRO));
            let display = Arc::new(output::Display::new(
                cli::OutputMode::Tag,
                false,
                std::io::stderr().is_terminal(),
            ));
            // The demo fails a job and times one out on purpose; that is its
            // success.
            match block_on(runner::run(demo::config(), demo::source(), display, None)) {
                Ok(0..=101) => 0,
                Ok(code) => code,
                Err(e) => fail(&e),
            }
        }
        Ok(cli::Action::Run(args)) => match run(args) {
            Ok(code) => code,
            Err(e) => fail(&e),
        },
    };
    ExitCode::from(code)
}

fn fail(msg: &str) -> u8 {
    say(format_args!("brood: error: {msg}\n"));
    255
}

/// Writes to stderr, ignoring errors: unlike `eprintln!`, never panics when
/// stderr is closed.
pub(crate) fn say(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().write_fmt(args);
}

/// Sets up inputs, job log and display (any failure here starts no job),
/// then runs.
fn run(args: cli::RunArgs) -> Result<u8, String> {
    let inputs = inputs::Inputs::open(&args.inputs)?;
    let template = template::Template::new(&args.command, args.shell);
    let source = runner::Source::Template {
        template,
        inputs,
        next_seq: 1,
    };
    if args.dry_run {
        return block_on(runner::dry_run(source));
    }
    // As a subreaper, brood adopts the jobs' orphaned descendants and reaps
    // them: a stopped process tree leaves no zombies behind, and a graceful
    // stop can tell at once when a job's whole group is gone. Where this is
    // unsupported (not Linux), group stops simply wait out the grace period.
    let _ = brood::become_subreaper();
    let joblog = match &args.joblog {
        Some(path) => Some(
            joblog::JobLog::create(path)
                .map_err(|e| format!("cannot create job log {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let display = Arc::new(output::Display::new(
        args.output,
        args.keep_order,
        std::io::stderr().is_terminal(),
    ));
    let cfg = runner::Config {
        jobs: args.jobs,
        timeout: args.timeout,
        grace: args.grace,
        retries: args.retries,
        halt: args.halt,
    };
    block_on(runner::run(cfg, source, display, joblog))
}

/// Runs `fut` on a multi-thread Tokio runtime, then shuts the runtime down,
/// which drops any job still running (kill_on_drop stops its group).
fn block_on<F: std::future::Future<Output = u8>>(fut: F) -> Result<u8, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the Tokio runtime: {e}"))?;
    Ok(rt.block_on(fut))
}
