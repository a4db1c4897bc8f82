//! `brood`: run jobs in parallel, GNU parallel style, on the brood library.
//!
//! `brood run [OPTIONS] [COMMAND [ARGS...]] ::: INPUTS...`; `brood log
//! merge|report LOG...` for job logs; `brood` alone runs a short demo. See
//! `brood run --help` and the crate's README.

mod admission;
mod args;
mod combine;
mod demo;
mod duration;
mod evict;
mod halt;
mod hold;
mod inputs;
mod job;
mod jobkey;
mod joblog;
mod jobs;
mod logcmd;
mod logtool;
mod output;
mod progress;
mod results;
mod resume;
mod schedule;
mod script;
mod separators;
mod settings;
mod shard;
mod spool;
mod summary;
mod template;
mod termseq;
mod tree_ends;

use clap::Parser;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    ExitCode::from(dispatch(argv))
}

fn dispatch(argv: Vec<OsString>) -> u8 {
    // The `:::` pre-pass applies to `run` only: everything from the first
    // separator on is input sources, never seen by clap.
    let is_run = argv.get(1).is_some_and(|a| a == "run");
    let (front, sources) = if is_run {
        match separators::split(&argv[2..]) {
            Ok(split) => {
                let mut front = argv[..2].to_vec();
                front.extend(split.front);
                (front, split.sources)
            }
            Err(e) => return fail(&e),
        }
    } else {
        (argv, Vec::new())
    };
    let cli = match args::Cli::try_parse_from(&front) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e, &help_for(&front)),
    };
    match cli.command {
        None | Some(args::Command::Demo) => demo::run(),
        Some(args::Command::Run(run_args)) => match run(*run_args, sources) {
            Ok(code) => code,
            Err(e) => fail(&e),
        },
        Some(args::Command::Log(command)) => logcmd::run(command),
    }
}

/// The help command to point a usage error to: `brood run --help`,
/// `brood log merge --help`, ...
fn help_for(argv: &[OsString]) -> String {
    let words: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_str().unwrap_or(""))
        .take_while(|a| matches!(*a, "run" | "demo" | "log" | "merge" | "report"))
        .collect();
    match words.as_slice() {
        [] => "brood --help".into(),
        w => format!("brood {} --help", w.join(" ")),
    }
}

/// clap's help and version go to stdout with status 0; any other error is
/// one line on stderr with status 255, pointing to `help`.
pub(crate) fn clap_error(e: clap::Error, help: &str) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = write!(std::io::stdout(), "{}", e.render());
            0
        }
        _ => fail(&format!("{} (see {help})", usage_line(&e))),
    }
}

/// A clap error on one line, without its `error: `: the first line, and
/// where that ends in a colon (`the following required arguments were not
/// provided:`), the indented lines it introduces.
pub(crate) fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if line.ends_with(':') {
        let listed: Vec<&str> = lines
            .take_while(|l| l.starts_with("  "))
            .map(str::trim)
            .collect();
        line = format!("{} {}", line, listed.join(", "));
    }
    line
}

pub(crate) fn fail(msg: &str) -> u8 {
    say(format_args!("brood: error: {msg}\n"));
    255
}

/// Writes to stderr, ignoring errors: unlike `eprintln!`, never panics when
/// stderr is closed.
pub(crate) fn say(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().write_fmt(args);
}

/// Checks the options, opens inputs and the job log (any failure here
/// starts no job), then runs.
fn run(args: args::RunArgs, sources: Vec<separators::SourceArg>) -> Result<u8, String> {
    let quiet = args.quiet;
    let (settings, mut source) = settings::from_args(args, sources)?;
    if let Some(r) = settings.shard.filter(|r| r.origin != shard::Origin::Flag) {
        if !quiet {
            // Which slice `auto` took, in the task's own output: the first
            // thing to check when shards do not add up.
            say(format_args!(
                "brood: --shard auto: shard {} ({})\n",
                r.shard, r.origin
            ));
        }
    }
    if settings.shuf || settings.prescan {
        let code = block_on(async {
            let shuffled = if settings.shuf {
                source.shuffle().await
            } else {
                Ok(())
            };
            let made = match shuffled {
                Ok(()) if settings.prescan => source.prescan().await,
                other => other,
            };
            match made {
                Ok(()) => 0,
                Err(e) => fail(&format!("reading inputs: {e}")),
            }
        })?;
        if code != 0 {
            return Ok(code);
        }
    }
    if settings.dry_run {
        return block_on(dry_run(source, settings.plan.jobs));
    }
    // As a subreaper, brood adopts the jobs' orphaned descendants and reaps
    // them: a stopped process tree leaves no zombies behind. Where this is
    // unsupported (not Linux), nothing changes but that.
    let _ = brood::become_subreaper();
    let confinement = &settings.context.confinement;
    if let Err(e) = block_on(confinement.check())? {
        return Ok(fail(&e));
    }
    let p = &settings.presentation;
    let display = Arc::new(output::Display::new(
        p.mode,
        p.keep_order,
        p.quiet,
        p.bar.map(progress::Bar::new),
    ));
    let joblog = match &settings.joblog {
        Some((target, format, append)) => Some(
            joblog::JobLog::open(target, *format, *append, display.clone()).map_err(|e| {
                format!(
                    "cannot create job log {}: {e}",
                    target
                        .path()
                        .map_or("-".into(), |p| p.display().to_string())
                )
            })?,
        ),
        None => None,
    };
    let ctx = Arc::new(settings.context.build(display));
    block_on(schedule::run(settings.plan, source, ctx, joblog))
}

/// `--dry-run`: prints each job's command line. Returns the exit status.
/// `{%}` shows the slots of `jobs` slots taken in turn, as jobs of equal
/// length would get them.
async fn dry_run(mut source: jobs::JobSource, jobs: usize) -> u8 {
    let stdout = std::io::stdout();
    let mut n = 0;
    while let Some(next) = source.next().await {
        match next {
            Ok(spec) => {
                let slot = (n % jobs as u64) + 1;
                n += 1;
                let argv = spec.argv_for_slot(source.template(), slot);
                let line = template::display_argv(&argv) + "\n";
                if let Err(e) = stdout.lock().write_all(line.as_bytes()) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return 0;
                    }
                    say(format_args!("brood: error: writing to stdout: {e}\n"));
                    return 255;
                }
            }
            Err(e) => {
                say(format_args!("brood: error: reading inputs: {e}\n"));
                return 255;
            }
        }
    }
    let _ = stdout.lock().flush();
    0
}

/// Runs `fut` on a multi-thread Tokio runtime, then shuts the runtime down,
/// which drops any job still running (kill_on_drop stops its group).
pub(crate) fn block_on<T, F: std::future::Future<Output = T>>(fut: F) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the Tokio runtime: {e}"))?;
    Ok(rt.block_on(fut))
}
