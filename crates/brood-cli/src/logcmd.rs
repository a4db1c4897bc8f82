//! `brood log merge` and `brood log report`: the command-line side of
//! [`crate::logtool`]. Reads the logs named, makes the jobs expected from
//! `brood run`'s own arguments (given after `--`), and prints.
//!
//! The expected jobs are made exactly as `run` makes them, by the same
//! code ([`crate::settings::from_args`] and the job source), so their keys
//! are the keys the run logged. The options that would change which jobs
//! there are without being part of them are switched off: the job log and
//! its restarts (a resumed run still expects every job), `--shard` (the
//! expected jobs are the whole run's, whichever shards wrote the logs) and
//! `--shuf` (only an order).

use crate::args::{Cli, Command, LogArgs, LogCommand, ReportArgs, RunArgs};
use crate::logtool::{self, Expected, LogFile, Merged};
use crate::separators::{self, SourceSpec};
use crate::{fail, say, settings, template};
use clap::Parser;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Runs a `brood log` subcommand; returns the exit status.
pub fn run(command: LogCommand) -> u8 {
    let done = match command {
        LogCommand::Merge(args) => merge(args),
        LogCommand::Report(args) => report(args),
    };
    done.unwrap_or_else(|e| fail(&e))
}

/// `brood log merge`: the merged log on stdout, problems on stderr; 0 when
/// there are none, 1 otherwise.
fn merge(args: LogArgs) -> Result<u8, String> {
    let merged = read_and_merge(&args)?;
    let mut out = io::stdout().lock();
    match merged.write_jsonl(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
        Err(e) => return Err(format!("writing the merged log: {e}")),
        Ok(()) => {}
    }
    let problems = merged.problems();
    for line in &problems {
        say(format_args!("brood: {line}\n"));
    }
    // As `run`'s summary: on a terminal, or when there is something to say,
    // so that a script sees nothing extra on a clean merge.
    if !problems.is_empty() || io::stderr().is_terminal() {
        say(format_args!("brood: {}\n", merged.summary()));
    }
    Ok(if merged.is_clean() { 0 } else { 1 })
}

/// `brood log report`: text, or JSON with `--json`, on stdout.
fn report(args: ReportArgs) -> Result<u8, String> {
    let merged = read_and_merge(&args.logs)?;
    let report = logtool::report(&merged, args.top);
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&report.to_json())
            .map_err(|e| format!("writing the report: {e}"))?;
        text.push('\n');
        text
    } else {
        report.render_text()
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(format!("writing the report: {e}")),
        _ => Ok(0),
    }
}

/// Reads every log (and the expected jobs, if RUN-ARGS were given) and
/// merges them.
fn read_and_merge(args: &LogArgs) -> Result<Merged, String> {
    let stdin_logs = args.logs.iter().filter(|p| is_stdin(p)).count();
    if stdin_logs > 1 {
        return Err("stdin (-) can be only one of the logs".into());
    }
    let expected = expected_jobs(&args.run, stdin_logs == 1)?;
    let logs = args
        .logs
        .iter()
        .map(read_one)
        .collect::<Result<Vec<LogFile>, String>>()?;
    Ok(logtool::merge(logs, expected.as_deref()))
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn read_one(path: &PathBuf) -> Result<LogFile, String> {
    let cannot = |e: io::Error| format!("cannot read job log {}: {e}", path.display());
    if is_stdin(path) {
        return logtool::read_log("-", io::stdin().lock()).map_err(cannot);
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    logtool::read_log(&path.display().to_string(), io::BufReader::new(file)).map_err(cannot)
}

/// The jobs `brood run RUN-ARGS` makes; `None` without RUN-ARGS.
fn expected_jobs(run: &[OsString], stdin_taken: bool) -> Result<Option<Vec<Expected>>, String> {
    if run.is_empty() {
        return Ok(None);
    }
    let bad = |e: String| format!("RUN-ARGS: {e}");
    let split = separators::split(run).map_err(bad)?;
    let mut argv: Vec<OsString> = vec!["brood".into(), "run".into()];
    argv.extend(split.front);
    let mut args: RunArgs = match Cli::try_parse_from(&argv) {
        Ok(Cli {
            command: Some(Command::Run(args)),
        }) => *args,
        Ok(_) => unreachable!("the words start with run"),
        Err(e) => {
            return Err(bad(format!(
                "{} (see brood run --help)",
                crate::usage_line(&e)
            )))
        }
    };
    let reads_stdin = args.arg_file.iter().any(|p| is_stdin(p))
        || split
            .sources
            .iter()
            .any(|s| matches!(&s.spec, SourceSpec::File(p) if is_stdin(p)))
        || (args.arg_file.is_empty() && split.sources.is_empty());
    if stdin_taken && reads_stdin {
        return Err(
            "stdin cannot hold both a log (-) and the run's inputs (RUN-ARGS read stdin \
             when they name no input source)"
                .into(),
        );
    }
    // What changes which jobs run, but is not part of them.
    args.joblog = None;
    args.resume = false;
    args.resume_failed = false;
    args.retry_failed = false;
    args.shard = None;
    args.shard_count = None;
    args.shuf = false;
    args.dry_run = false;
    let (_, mut source) = settings::from_args(args, split.sources).map_err(bad)?;
    let jobs = crate::block_on(async move {
        let mut jobs = Vec::new();
        while let Some(next) = source.next().await {
            let spec = next.map_err(|e| format!("RUN-ARGS: reading inputs: {e}"))?;
            let input = spec.input();
            let label = if input.is_empty() {
                template::display_argv(&spec.argv)
            } else {
                String::from_utf8_lossy(&input).into_owned()
            };
            jobs.push(Expected {
                key: spec.key,
                label,
            });
        }
        Ok::<_, String>(jobs)
    })??;
    Ok(Some(jobs))
}
