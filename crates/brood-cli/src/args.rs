//! The command-line definition, on clap's derive API.
//!
//! ```text
//! brood                      the built-in demo
//! brood demo                 the same
//! brood run [OPTIONS] [--] [COMMAND [ARGS...]] [::: ARGS... | :::: FILES...]...
//! brood log merge LOG... [-- RUN-ARGS...]
//! brood log report [--json] LOG... [-- RUN-ARGS...]
//! brood --help | --version
//! ```
//!
//! `RUN-ARGS` are what `brood run` was given (options, command, inputs):
//! the log tools expand them into the jobs a run should have, as `run`
//! would.
//!
//! clap sees everything up to the first input-source separator (`:::`,
//! `::::`, `:::+`, `::::+`); the rest is split off beforehand by
//! [`crate::separators`]. The command is clap's trailing value: the first
//! word that is not an option of `run` starts it, and every word after it
//! belongs to it, so a command's own flags are never taken for brood's.
//!
//! Values are kept as text here and checked in [`crate::settings`], which
//! owns every rule about what they mean; this module only says what the
//! options are called.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// brood's command line.
#[derive(Debug, Parser)]
#[command(
    name = "brood",
    version,
    about = "Run jobs in parallel, GNU parallel style; each job's whole process tree contained",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// What to do; none runs the demo.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// brood's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a short built-in demo (also what `brood` alone does).
    Demo,
    /// Run jobs in parallel.
    #[command(
        after_help = "Inputs come after ::: (arguments) or :::: (files), from -a FILE, or one per \
line on stdin; several sources combine as all combinations, or pairwise with --link.\n\
Replacement strings: {} {.} {/} {//} {/.} {#} {%} {n} {n.} {n/} {n//} {n/.}. Without any, \
the arguments are appended. Jobs are executed directly, not through a shell, unless --shell \
is given; with no command at all, each input is a shell command line.\n\n\
Exit status: 0 if every job succeeded; else the number of failed jobs (at most 101), or as \
--halt defines it; 130 after Ctrl-C, 143 after SIGTERM; 255 on brood's own errors."
    )]
    Run(Box<RunArgs>),
    /// Merge job logs, or report on them.
    #[command(subcommand)]
    Log(LogCommand),
}

/// `brood log`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Merge job logs (of the shards of a run, of a run and its resumptions) into one on
    /// stdout: one record per job, the later attempt winning. Duplicates, conflicts and
    /// malformed lines are reported on stderr, and with RUN-ARGS the jobs that never
    /// ran; the exit status is 0 only when there is nothing to report.
    #[command(
        after_help = "RUN-ARGS, after --, are brood run's own arguments (options, command and :::/:::: inputs), as given to the run: the jobs they make are the jobs expected. Options that do not change which jobs there are (-j but for -X/-m, --joblog, --resume, --shard, ...) are accepted and ignored, so a task's command line can be pasted as it is."
    )]
    Merge(LogArgs),
    /// Sum up a whole run from its job logs (merged first): counts, CPU, peak memory, the
    /// slowest jobs and the exit codes; with RUN-ARGS, the jobs that never ran.
    #[command(
        after_help = "RUN-ARGS, after --, are brood run's own arguments, as for brood log merge."
    )]
    Report(ReportArgs),
}

/// The logs to read, and the run that wrote them.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Job logs (JSON Lines), in the order their attempts were made; - for stdin.
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// After --: brood run's arguments, to list the jobs that never ran.
    #[arg(last = true, value_name = "RUN-ARGS")]
    pub run: Vec<OsString>,
}

/// `brood log report`'s options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Print JSON (for programs) rather than text.
    #[arg(long)]
    pub json: bool,
    /// How many jobs to list under top CPU and slowest.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// The logs and the run.
    #[command(flatten)]
    pub logs: LogArgs,
}

/// How job output reaches brood's stdout and stderr (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    /// Each job's output whole, when the job ends (--group).
    Group,
    /// Whole lines as they come (--line-buffer).
    Line,
    /// Bytes as they come, unbuffered (--ungroup).
    Ungroup,
    /// Lines as they come, each tagged with the job's arguments (--line-buffer --tag).
    Tag,
    /// Discarded (still counted in the job log).
    None,
}

/// How each job's process tree is held together (`--contain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ContainArg {
    /// A cgroup of its own where brood can make one, else a process group.
    Auto,
    /// A cgroup v2 of its own, from its first instruction; where none can be made, brood
    /// exits with the reason before any job starts.
    Cgroup,
    /// A process group of its own (a descendant that calls setsid leaves it).
    Group,
    /// Not contained: a process group of its own, as GNU parallel's jobs; leftovers are not
    /// counted or stopped.
    None,
}

/// What happens to a finished job's leftover processes (`--leftovers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LeftoversArg {
    /// Stop them when the job is done.
    Kill,
    /// Leave them running.
    Keep,
}

/// The job log's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JoblogFormat {
    /// JSON Lines, one object per finished job (brood's own, richer).
    Json,
    /// GNU parallel's tab-separated format, for existing tools.
    Tsv,
}

/// The options of `brood run`.
#[derive(Debug, Args)]
#[command(next_help_heading = None)]
pub struct RunArgs {
    // --- How many, and when ---
    /// Jobs at once: N, N% of the CPUs, +N or -N CPUs, or 0 (as many as the limits allow).
    /// Default: one per CPU.
    #[arg(
        short = 'j',
        long = "jobs",
        visible_short_alias = 'P',
        visible_alias = "max-procs",
        value_name = "N",
        allow_hyphen_values = true,
        help_heading = "Scheduling"
    )]
    pub jobs: Option<String>,
    /// Wait DUR between starting two jobs.
    #[arg(long, value_name = "DUR", help_heading = "Scheduling")]
    pub delay: Option<String>,
    /// Start a job only while fewer than MAX processes are runnable (same syntax as -j).
    #[arg(long, value_name = "MAX", help_heading = "Scheduling")]
    pub load: Option<String>,
    /// Start a job only while SIZE of memory is available (e.g. 2G); below half of it,
    /// stop the youngest job (it runs again once SIZE is available, if --retries allows).
    #[arg(long, value_name = "SIZE", help_heading = "Scheduling")]
    pub memfree: Option<String>,
    /// Run the jobs in random order.
    #[arg(long, help_heading = "Scheduling")]
    pub shuf: bool,

    // --- Stopping ---
    /// Stop a job (its whole process tree) after DUR (e.g. 30s, 1h30m, 2.5), or N% of the
    /// median runtime of the jobs that succeeded so far.
    #[arg(long, value_name = "DUR", help_heading = "Stopping")]
    pub timeout: Option<String>,
    /// How brood stops a job: signals and waits in milliseconds
    /// (default TERM,200,TERM,100,TERM,50,KILL,25).
    #[arg(
        long,
        visible_alias = "term-seq",
        value_name = "SEQ",
        conflicts_with = "grace",
        help_heading = "Stopping"
    )]
    pub termseq: Option<String>,
    /// Shorthand for --termseq TERM,DUR,KILL,25.
    #[arg(long, value_name = "DUR", help_heading = "Stopping")]
    pub grace: Option<String>,
    /// After SIGINT or SIGTERM, SIGKILL the jobs still running DUR later, whatever their
    /// --termseq (default 20s: inside Slurm's default KillWait of 30 s).
    #[arg(long, value_name = "DUR", help_heading = "Stopping")]
    pub signal_grace: Option<String>,
    /// How each job's process tree is contained, so that every stop reaches all of it.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = ContainArg::Auto,
          help_heading = "Containment")]
    pub contain: ContainArg,
    /// Create the jobs' cgroups under DIR (a cgroup v2 directory brood may write), not under
    /// brood's own cgroup; one that cannot hold them is an error before any job starts.
    /// Enable the memory controller in DIR for tree_peak_bytes.
    #[arg(long, value_name = "DIR", help_heading = "Containment")]
    pub cgroup_parent: Option<PathBuf>,
    /// Once a job's leader has exited, wait at most DUR for its output pipes to close (a
    /// leftover descendant may hold them); then the job is done (default 2s).
    #[arg(long, value_name = "DUR", help_heading = "Containment")]
    pub wait_delay: Option<String>,
    /// What to do with a job's processes still running when it is done: kill (stop the rest
    /// of its tree) or keep (leave them running).
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = LeftoversArg::Kill,
          help_heading = "Containment")]
    pub leftovers: LeftoversArg,
    /// Run a failing job up to N times in all.
    #[arg(long, value_name = "N", help_heading = "Stopping")]
    pub retries: Option<String>,
    /// Wait DUR before the second attempt of a job, doubling for each later one.
    #[arg(
        long,
        value_name = "DUR",
        requires = "retries",
        help_heading = "Stopping"
    )]
    pub retry_delay: Option<String>,
    /// When to stop the whole run: now|soon,fail|success|done=N|N%, or 0, 1, 2, -1, -2, N%.
    #[arg(
        long,
        visible_alias = "halt-on-error",
        value_name = "WHEN",
        allow_hyphen_values = true,
        help_heading = "Stopping"
    )]
    pub halt: Option<String>,

    // --- Output ---
    /// Print output in input order.
    #[arg(short = 'k', long, help_heading = "Output")]
    pub keep_order: bool,
    /// Output handling (long form of --group, --line-buffer, --ungroup).
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Output")]
    pub output: Option<OutputArg>,
    /// Each job's output whole, when it ends: stdout, then stderr (the default).
    #[arg(long, help_heading = "Output")]
    pub group: bool,
    /// Whole lines as they come; lines of different jobs never mix.
    #[arg(long, visible_alias = "lb", help_heading = "Output")]
    pub line_buffer: bool,
    /// Bytes as they come, unprocessed.
    #[arg(short = 'u', long, help_heading = "Output")]
    pub ungroup: bool,
    /// Prefix each output line with the job's arguments and a tab.
    #[arg(long, help_heading = "Output")]
    pub tag: bool,
    /// Prefix each output line with STR (replacement strings allowed) and a tab.
    #[arg(long, value_name = "STR", help_heading = "Output")]
    pub tagstring: Option<String>,
    /// Save each job's output in NAME/1/ARG/.../{stdout,stderr,seq} instead of printing
    /// it; with replacement strings, in the dir NAME expands to (if it ends in /) or in
    /// that file, .err and .seq.
    #[arg(
        long,
        visible_alias = "res",
        value_name = "NAME",
        help_heading = "Output"
    )]
    pub results: Option<PathBuf>,
    /// Save each job's stdout in a file in $TMPDIR and print the file's name.
    #[arg(long, visible_alias = "output-as-files", help_heading = "Output")]
    pub files: bool,
    /// Show the progress bar (by default only on a terminal).
    #[arg(long, help_heading = "Output")]
    pub bar: bool,
    /// Show the progress bar with the estimated time left.
    #[arg(long, help_heading = "Output")]
    pub eta: bool,
    /// Show the progress bar.
    #[arg(long, help_heading = "Output")]
    pub progress: bool,
    /// Print the end-of-run summary on stderr even when it is not a terminal.
    #[arg(long, help_heading = "Output")]
    pub summary: bool,
    /// No progress bar, summary or failure messages from brood itself.
    #[arg(long, help_heading = "Output")]
    pub quiet: bool,
    /// Print each job's command line on stderr before it runs.
    #[arg(short = 't', long, help_heading = "Output")]
    pub verbose: bool,
    /// Print each job's command line instead of running it.
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,

    // --- Job log and restarts ---
    /// Write one record per finished job to FILE (- for stdout, +FILE to append); {shard}
    /// in FILE becomes the --shard index.
    #[arg(
        long,
        visible_alias = "jl",
        value_name = "FILE",
        help_heading = "Job log"
    )]
    pub joblog: Option<OsString>,
    /// Job log format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = JoblogFormat::Json,
          requires = "joblog", help_heading = "Job log")]
    pub joblog_format: JoblogFormat,
    /// Skip the jobs the job log records as finished (by content, not position).
    #[arg(long, requires = "joblog", help_heading = "Job log")]
    pub resume: bool,
    /// Skip the jobs the job log records as succeeded; run the rest.
    #[arg(
        long,
        requires = "joblog",
        conflicts_with = "resume",
        help_heading = "Job log"
    )]
    pub resume_failed: bool,
    /// Run again only the jobs the job log records as failed, with their logged commands.
    #[arg(long, requires = "joblog", conflicts_with_all = ["resume", "resume_failed"],
          help_heading = "Job log")]
    pub retry_failed: bool,

    // --- Clusters ---
    /// Run only the jobs of shard I of N (from 0), cut by each job's content key; `auto`
    /// takes I and N from the engine: a Slurm array task or srun step, or a Kubernetes
    /// Indexed Job. {shard} in --joblog becomes I.
    #[arg(
        long,
        value_name = "I/N|auto",
        allow_hyphen_values = true,
        help_heading = "Cluster"
    )]
    pub shard: Option<String>,
    /// The number of shards, for --shard auto where the engine gives none (Kubernetes);
    /// checked against the engine's count where it does. Default: $BROOD_SHARD_COUNT.
    #[arg(long, value_name = "N", requires = "shard", help_heading = "Cluster")]
    pub shard_count: Option<String>,

    // --- Inputs ---
    /// Read inputs from FILE (- for stdin); give it again for more input sources.
    #[arg(
        short = 'a',
        long = "arg-file",
        value_name = "FILE",
        help_heading = "Inputs"
    )]
    pub arg_file: Vec<PathBuf>,
    /// Pair the input sources line by line instead of combining all with all.
    #[arg(long, visible_alias = "xapply", help_heading = "Inputs")]
    pub link: bool,
    /// Split each input into columns {1} {2} ... at matches of REGEX.
    #[arg(short = 'C', long, value_name = "REGEX", help_heading = "Inputs")]
    pub colsep: Option<String>,
    /// Inputs end with NUL instead of newline.
    #[arg(
        short = '0',
        long,
        conflicts_with = "delimiter",
        help_heading = "Inputs"
    )]
    pub null: bool,
    /// Inputs end with DELIM (a character, or an escape such as \t, \0, \x1f, \012).
    #[arg(short = 'd', long, value_name = "DELIM", help_heading = "Inputs")]
    pub delimiter: Option<String>,
    /// N inputs per job, as {1} .. {N}.
    #[arg(
        short = 'N',
        long = "max-replace-args",
        value_name = "N",
        help_heading = "Inputs"
    )]
    pub max_replace_args: Option<usize>,
    /// At most N inputs per job (with context replace, as -X).
    #[arg(
        short = 'n',
        long = "max-args",
        value_name = "N",
        help_heading = "Inputs",
        conflicts_with = "max_replace_args"
    )]
    pub max_args: Option<usize>,
    /// As many inputs per job as fit; a word holding {} is repeated for each input.
    #[arg(short = 'X', help_heading = "Inputs", conflicts_with = "multiple")]
    pub context_replace: bool,
    /// As many inputs per job as fit; {} becomes all of them.
    #[arg(short = 'm', help_heading = "Inputs")]
    pub multiple: bool,
    /// With -X, -m or -n: at most N bytes of command line per job.
    #[arg(
        short = 's',
        long = "max-chars",
        value_name = "N",
        help_heading = "Inputs"
    )]
    pub max_chars: Option<usize>,

    // --- The command ---
    /// Run each job with `sh -c`; replacement strings are shell-quoted.
    #[arg(long, help_heading = "Command")]
    pub shell: bool,
    /// Do not reject commands that hold shell operators such as `|` as plain arguments.
    #[arg(long, help_heading = "Command")]
    pub no_shell_check: bool,
    /// The command and its arguments; none means each input is a shell command line.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn run(args: &[&str]) -> RunArgs {
        let mut full = vec!["brood", "run"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).map(|c| c.command) {
            Ok(Some(Command::Run(r))) => *r,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn bundled_and_hyphen_values() {
        let r = run(&["-kj2", "echo"]);
        assert!(r.keep_order);
        assert_eq!(r.jobs.as_deref(), Some("2"));
        assert_eq!(run(&["-j", "+1", "echo"]).jobs.as_deref(), Some("+1"));
        assert_eq!(run(&["-j", "-1", "echo"]).jobs.as_deref(), Some("-1"));
        assert_eq!(run(&["-P", "50%", "echo"]).jobs.as_deref(), Some("50%"));
        assert_eq!(run(&["--halt", "-2", "echo"]).halt.as_deref(), Some("-2"));
        // The value is the value, never the command.
        let r = run(&["--halt-on-error", "1", "echo", "x"]);
        assert_eq!(r.halt.as_deref(), Some("1"));
        assert_eq!(r.command, ["echo", "x"]);
        let r = run(&["-a", "f", "-a", "g", "echo"]);
        assert_eq!(r.arg_file.len(), 2);
        let r = run(&["-0", "-N2", "echo"]);
        assert!(r.null);
        assert_eq!(r.max_replace_args, Some(2));
    }

    #[test]
    fn command_keeps_its_own_flags() {
        let r = run(&["-j", "2", "ls", "-l", "--all", "-k"]);
        assert_eq!(r.command, ["ls", "-l", "--all", "-k"]);
        assert!(!r.keep_order);
        let r = run(&["--", "-weird-program", "x"]);
        assert_eq!(r.command, ["-weird-program", "x"]);
        assert!(run(&[]).command.is_empty());
    }
}
