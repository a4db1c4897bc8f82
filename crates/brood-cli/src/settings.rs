//! What `brood run`'s options mean: checks every value and turns the
//! parsed words into the scheduler's plan, the job source and the job
//! context. Any error here is a one-line usage error (exit 255) before a
//! job starts.

use crate::args::{ContainArg, JoblogFormat, LeftoversArg, OutputArg, RunArgs};
use crate::combine::Combination;
use crate::halt::{Halt, HaltState};
use crate::inputs::{self, Splitter};
use crate::job::{Confinement, JobContext, Leftovers, Save, Tagger};
use crate::joblog::{Format, Target};
use crate::jobs::{Grouping, JobSource, JobSpec, Units};
use crate::output::Mode;
use crate::resume;
use crate::schedule::{Plan, TimeoutSpec};
use crate::separators::{SourceArg, SourceSpec};
use crate::shard::{self, Resolved, Shard, ShardArg};
use crate::template::{self, Multi, Template};
use crate::termseq::{self, TermSeq};
use crate::{admission, duration};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;

/// `--signal-grace`'s default: how long after SIGINT or SIGTERM the jobs
/// still running are SIGKILLed. Slurm sends SIGKILL `KillWait` after its
/// SIGTERM, 30 s by default; 20 s leaves the rest for the SIGKILLs to land
/// and the job log to be written.
pub const DEFAULT_SIGNAL_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// `--wait-delay`'s default: how long a job's output pipes may stay open
/// after its leader exited. Long enough for a leftover that is about to
/// close them (a `tee` flushing, a logger exiting), short enough that a
/// daemon holding them costs a job little.
pub const DEFAULT_WAIT_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

/// The most jobs `-j 0` runs at once, whatever the limits allow.
const MAX_JOBS: usize = 32_768;

/// The default `-X`/`-m` budget: GNU parallel's maximal command line on
/// Linux (`parallel --max-line-length-allowed` prints 130329 here), kept
/// a little under 128 KiB, the kernel's limit for one argv word.
const DEFAULT_MAX_CHARS: usize = 128 * 1024 - 4096;

/// How brood's own output is arranged.
pub struct Presentation {
    /// Output mode.
    pub mode: Mode,
    /// `-k`.
    pub keep_order: bool,
    /// `--quiet`.
    pub quiet: bool,
    /// Show the progress bar: `Some(forced)`.
    pub bar: Option<bool>,
}

/// Everything a run needs, checked.
pub struct Settings {
    /// The scheduler's plan.
    pub plan: Plan,
    /// How the display is set up.
    pub presentation: Presentation,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--shuf`.
    pub shuf: bool,
    /// Make every job before the first starts (`--halt N%` under
    /// `--shard`, which needs the shard's total).
    pub prescan: bool,
    /// `--shard`, resolved.
    pub shard: Option<Resolved>,
    /// The job log.
    pub joblog: Option<(Target, Format, bool)>,
    /// The context of every job, less the display.
    pub context: ContextSpec,
}

/// The job context before the display exists.
pub struct ContextSpec {
    /// `--termseq`.
    pub termseq: TermSeq,
    /// Attempts in all.
    pub attempts: u32,
    /// `--retry-delay`.
    pub retry_delay: Option<std::time::Duration>,
    /// `--tag`/`--tagstring`.
    pub tag: Option<Option<String>>,
    /// `--results`/`--files`.
    pub save: Save,
    /// `-t`.
    pub verbose: bool,
    /// `--memfree`, in bytes.
    pub memfree: Option<u64>,
    /// `--contain`, `--cgroup-parent`.
    pub confinement: Confinement,
    /// `--wait-delay`.
    pub wait_delay: std::time::Duration,
    /// `--leftovers`.
    pub leftovers: Leftovers,
}

impl ContextSpec {
    /// The job context.
    pub fn build(self, display: Arc<crate::output::Display>) -> JobContext {
        let tag: Option<Tagger> = match self.tag {
            None => None,
            Some(None) => Some(crate::job::tag_with_input()),
            Some(Some(text)) => Some(Arc::new(move |spec: &JobSpec, slot| {
                let mut t = template::expand_text(&text, &spec.args, spec.seq, Some(slot));
                t.push(b'\t');
                t
            })),
        };
        JobContext {
            termseq: self.termseq,
            attempts: self.attempts,
            retry_delay: self.retry_delay,
            display,
            tag,
            save: self.save,
            verbose: self.verbose,
            memfree: self.memfree,
            confinement: self.confinement,
            wait_delay: self.wait_delay,
            leftovers: self.leftovers,
            tree_ends: Default::default(),
        }
    }
}

fn duration_opt(v: &Option<String>, what: &str) -> Result<Option<std::time::Duration>, String> {
    v.as_deref()
        .map(|t| duration::parse(t).map_err(|e| format!("{what}: {e}")))
        .transpose()
}

/// The number of CPUs.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `-j` as GNU parallel defines it (also `--load`'s syntax).
fn jobs_value(text: &str, what: &str) -> Result<f64, String> {
    let bad = || format!("invalid {what} value {text:?}: expected N, N%, +N or -N");
    let n = cpus() as f64;
    let num = |t: &str| t.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    if let Some(p) = text.strip_suffix('%') {
        return Ok(n * num(p).ok_or_else(bad)? / 100.0);
    }
    if let Some(p) = text.strip_prefix('+') {
        return Ok(n + num(p).ok_or_else(bad)?);
    }
    if let Some(p) = text.strip_prefix('-') {
        return Ok(n - num(p).ok_or_else(bad)?);
    }
    num(text).ok_or_else(bad)
}

/// `-j 0`: as many as the process and file limits allow. RLIMIT_NOFILE's
/// soft limit is raised to its hard limit first (each job holds about four
/// descriptors in brood: two pipes, a pidfd, and one spare).
fn max_jobs() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let mut cap = MAX_JOBS as u64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let mut limit = soft;
        if hard > soft && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            limit = hard;
        }
        if limit != RLIM_INFINITY {
            cap = cap.min(limit.saturating_sub(64) / 4);
        }
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NPROC) {
        if soft != RLIM_INFINITY {
            cap = cap.min(soft.saturating_sub(64));
        }
    }
    cap.max(1) as usize
}

/// `--shard` and `--shard-count`; `auto` reads the process's environment.
fn shard_option(args: &RunArgs) -> Result<Option<Resolved>, String> {
    let Some(text) = &args.shard else {
        return Ok(None);
    };
    let arg: ShardArg = text
        .parse()
        .map_err(|e| format!("invalid --shard value {text:?}: {e}"))?;
    let count = args
        .shard_count
        .as_deref()
        .map(|t| {
            shard::parse_shard_count(t)
                .map_err(|e| format!("invalid --shard-count value {t:?}: {e}"))
        })
        .transpose()?;
    let env: shard::Environment = std::env::vars_os().collect();
    shard::resolve(arg, count, &env)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The most empty cgroups a run keeps for its next jobs: one per slot, so
/// that each slot's next job reuses its last one's, up to this bound.
const MAX_POOLED_CGROUPS: usize = 256;

/// `--contain` and `--cgroup-parent`; `jobs` run at once.
fn confinement(args: &RunArgs, jobs: usize) -> Result<Confinement, String> {
    let containment = match args.contain {
        ContainArg::Auto => Some(brood::Containment::Auto),
        ContainArg::Cgroup => Some(brood::Containment::Cgroup),
        ContainArg::Group => Some(brood::Containment::Group),
        ContainArg::None => None,
    };
    if args.cgroup_parent.is_some()
        && !matches!(args.contain, ContainArg::Auto | ContainArg::Cgroup)
    {
        return Err("--cgroup-parent needs --contain auto or cgroup".into());
    }
    let pool = matches!(args.contain, ContainArg::Auto | ContainArg::Cgroup)
        .then(|| brood::CgroupPool::new(jobs.min(MAX_POOLED_CGROUPS)));
    Ok(Confinement {
        containment,
        cgroup_parent: args.cgroup_parent.clone(),
        pool,
    })
}

/// Checks `args` and `sources`; builds the job source too (it reads the
/// input files, so an unreadable one is an error before any job).
pub fn from_args(args: RunArgs, sources: Vec<SourceArg>) -> Result<(Settings, JobSource), String> {
    let jobs = match args.jobs.as_deref() {
        None => cpus(),
        Some(t) => {
            let v = jobs_value(t, "--jobs")?;
            if t.trim() == "0" {
                max_jobs()
            } else {
                (v.floor() as usize).max(1)
            }
        }
    };
    let timeout = match args.timeout.as_deref() {
        None => TimeoutSpec::Never,
        Some(t) => match t.strip_suffix('%') {
            Some(p) => {
                let pct: f64 = p
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| {
                        format!("invalid --timeout value {t:?}: expected N% with N > 0")
                    })?;
                TimeoutSpec::Relative(pct / 100.0)
            }
            None => {
                let d = duration::parse(t).map_err(|e| format!("--timeout: {e}"))?;
                if d.is_zero() {
                    return Err("--timeout must be greater than zero".into());
                }
                TimeoutSpec::Fixed(d)
            }
        },
    };
    let termseq = match (&args.termseq, &args.grace) {
        (Some(t), _) => TermSeq::parse(t)?,
        (None, Some(g)) => TermSeq::grace(duration::parse(g).map_err(|e| format!("--grace: {e}"))?),
        (None, None) => TermSeq::parse(termseq::DEFAULT).expect("the default parses"),
    };
    let attempts = match args.retries.as_deref() {
        None => 1,
        // GNU parallel: --retries 0 means without end.
        Some("0") => u32::MAX,
        Some(t) => t
            .parse::<u32>()
            .map_err(|_| format!("invalid --retries value {t:?}: expected a number of attempts"))?,
    };
    let halt = args.halt.as_deref().map(Halt::parse).transpose()?.flatten();
    let shard = shard_option(&args)?;
    let cut = shard.map_or(Shard::ALL, |r| r.shard);
    let load = args
        .load
        .as_deref()
        .map(|t| jobs_value(t, "--load").map(|v| if v == 0.0 { 0.01 } else { v }))
        .transpose()?;
    let memfree = args
        .memfree
        .as_deref()
        .map(admission::parse_size)
        .transpose()?;
    if (load.is_some() || memfree.is_some()) && !admission::supported() {
        return Err("--load and --memfree need /proc/stat and /proc/meminfo (Linux)".into());
    }
    let plan = Plan {
        jobs,
        delay: duration_opt(&args.delay, "--delay")?,
        load,
        memfree,
        timeout,
        halt,
        summary: !args.quiet && (args.summary || std::io::stderr().is_terminal()),
        signal_grace: duration_opt(&args.signal_grace, "--signal-grace")?
            .unwrap_or(DEFAULT_SIGNAL_GRACE),
    };

    // Output.
    let mut mode = match args.output {
        None | Some(OutputArg::Group) => Mode::Group,
        Some(OutputArg::Line | OutputArg::Tag) => Mode::Line,
        Some(OutputArg::Ungroup) => Mode::Ungroup,
        Some(OutputArg::None) => Mode::None,
    };
    let picked = [args.group, args.line_buffer, args.ungroup]
        .iter()
        .filter(|&&b| b)
        .count();
    if picked > 1 || (picked == 1 && args.output.is_some()) {
        return Err("choose one of --group, --line-buffer, --ungroup (or --output)".into());
    }
    if args.group {
        mode = Mode::Group;
    } else if args.line_buffer {
        mode = Mode::Line;
    } else if args.ungroup {
        mode = Mode::Ungroup;
    }
    if let Some(t) = &args.tagstring {
        template::check_text(t).map_err(|e| e.0)?;
    }
    let tag = if mode == Mode::Ungroup {
        // As in GNU parallel, -u ignores --tag.
        None
    } else if let Some(t) = &args.tagstring {
        Some(Some(t.clone()))
    } else if args.tag || args.output == Some(OutputArg::Tag) {
        Some(None)
    } else {
        None
    };
    let save = match (&args.results, args.files) {
        (Some(_), true) => return Err("give --results or --files, not both".into()),
        (Some(name), false) => Save::Results(crate::results::Results::parse(name)?),
        (None, true) => Save::Files,
        (None, false) => Save::No,
    };
    let forced = args.bar || args.eta || args.progress;
    let bar = if args.quiet || args.dry_run {
        None
    } else if forced {
        Some(true)
    } else if std::io::stderr().is_terminal() {
        Some(false)
    } else {
        None
    };

    // Job log and restarts.
    let joblog = match &args.joblog {
        None => None,
        Some(arg) => {
            let format = match args.joblog_format {
                JoblogFormat::Json => Format::Json,
                JoblogFormat::Tsv => Format::Tsv,
            };
            let append = args.resume || args.resume_failed || args.retry_failed;
            // Each shard its own log: `log.{shard}.jsonl`.
            let target = match Target::parse(arg)? {
                Target::File { path, append } => Target::File {
                    path: cut.expand_path(&path),
                    append,
                },
                Target::Stdout => Target::Stdout,
            };
            Some((target, format, append))
        }
    };
    let restarting = args.resume || args.resume_failed || args.retry_failed;
    let logged = match (&joblog, restarting) {
        (Some((target, _, _)), true) => match target.path() {
            Some(path) => resume::read(path)?,
            None => return Err("--resume and --retry-failed need a --joblog file, not -".into()),
        },
        _ => Default::default(),
    };

    let confinement = confinement(&args, plan.jobs)?;
    let context = ContextSpec {
        confinement,
        wait_delay: duration_opt(&args.wait_delay, "--wait-delay")?.unwrap_or(DEFAULT_WAIT_DELAY),
        leftovers: match args.leftovers {
            LeftoversArg::Kill => Leftovers::Kill,
            LeftoversArg::Keep => Leftovers::Keep,
        },
        termseq,
        attempts,
        retry_delay: duration_opt(&args.retry_delay, "--retry-delay")?,
        tag,
        save,
        verbose: args.verbose,
        memfree,
    };

    // The jobs.
    let source = if args.retry_failed {
        let jobs = resume::retry_failed(&logged)
            .into_iter()
            .map(|argv| (crate::jobkey::JobKey::of_argv(&argv), argv))
            .filter(|(key, _)| cut.contains(key))
            .enumerate()
            .map(|(i, (key, argv))| JobSpec {
                seq: i as u64 + 1,
                args: Vec::new(),
                key,
                argv,
            })
            .collect();
        JobSource::fixed(jobs)
    } else {
        let multi = if args.context_replace || args.max_args.is_some() {
            Multi::Context
        } else {
            Multi::Split
        };
        let template = Template::new(&args.command, args.shell, multi, !args.no_shell_check)
            .map_err(|e| e.0)?;
        if shard.is_some() && args.shuf && template.uses_seq() {
            // Each shard would number the shuffled jobs its own way, and
            // {#} is part of the key: jobs would fall in no shard or two.
            return Err(
                "--shard with --shuf cannot use {#}: each shard would number the \
                        jobs differently"
                    .into(),
            );
        }
        let grouping = if args.context_replace || args.multiple {
            Grouping::Fit {
                max_chars: args.max_chars.unwrap_or(DEFAULT_MAX_CHARS),
                slots: jobs,
            }
        } else if let Some(n) = args.max_replace_args.or(args.max_args) {
            Grouping::Exactly(n)
        } else {
            Grouping::One
        };
        let mut splitter = Splitter::default();
        if args.null {
            splitter.delimiter = vec![0];
        }
        if let Some(d) = &args.delimiter {
            splitter.delimiter = inputs::parse_delimiter(d)?;
        }
        if let Some(c) = &args.colsep {
            splitter.colsep = Some(
                regex::bytes::Regex::new(c).map_err(|e| format!("invalid --colsep regex: {e}"))?,
            );
        }
        // GNU parallel's order: -a files first, then the sources after
        // the command; stdin when there are none.
        let mut all: Vec<SourceArg> = args
            .arg_file
            .iter()
            .map(|f| SourceArg {
                spec: SourceSpec::File(f.clone()),
                linked: false,
            })
            .collect();
        all.extend(sources);
        if all.is_empty() {
            all.push(SourceArg {
                spec: SourceSpec::File("-".into()),
                linked: false,
            });
        }
        let stdin_sources = all
            .iter()
            .filter(|s| matches!(&s.spec, SourceSpec::File(p) if inputs::is_stdin(p)))
            .count();
        if stdin_sources > 1 {
            return Err("stdin (-) can be only one input source".into());
        }
        let needs_all = args.shuf
            || matches!(grouping, Grouping::Fit { .. })
            || HaltState::new(halt).needs_total();
        let streaming = all.len() == 1 && stdin_sources == 1 && !needs_all && !args.dry_run;
        let units = if streaming {
            Units::Stream(inputs::stream_stdin(splitter, !args.quiet))
        } else {
            let mut read = Vec::new();
            for s in &all {
                read.push((inputs::read_source(&s.spec, &splitter)?, s.linked));
            }
            Units::Combined(Combination::new(read, args.link))
        };
        let skip: HashSet<crate::jobkey::JobKey> = if args.resume {
            resume::resume_skips(&logged)
        } else if args.resume_failed {
            resume::resume_failed_skips(&logged)
        } else {
            HashSet::new()
        };
        JobSource::new(Arc::new(template), units, grouping, skip, cut)
    };
    let prescan = shard.is_some() && HaltState::new(halt).needs_total();
    let presentation = Presentation {
        mode,
        keep_order: args.keep_order,
        quiet: args.quiet,
        bar,
    };
    Ok((
        Settings {
            plan,
            presentation,
            dry_run: args.dry_run,
            shuf: args.shuf,
            prescan,
            shard,
            joblog,
            context,
        },
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_values() {
        let n = cpus() as f64;
        assert_eq!(jobs_value("4", "-j").unwrap(), 4.0);
        assert_eq!(jobs_value("+1", "-j").unwrap(), n + 1.0);
        assert_eq!(jobs_value("-1", "-j").unwrap(), n - 1.0);
        assert_eq!(jobs_value("50%", "-j").unwrap(), n / 2.0);
        assert!(jobs_value("many", "-j").is_err());
        assert!(max_jobs() >= 1);
    }
}
