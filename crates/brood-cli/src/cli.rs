//! Command-line parsing, by hand: GNU parallel's `:::` does not fit a derive
//! parser, and the grammar is small.
//!
//! ```text
//! brood                      the built-in demo
//! brood demo                 the same
//! brood run [OPTIONS] [--] COMMAND [ARGS...] [::: INPUTS...]
//! brood --help | --version
//! ```
//!
//! Options come before the command; the first word that is not an option
//! (or everything after `--`) is the command, up to `:::`.

use crate::duration;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

/// What brood was asked to do.
#[derive(Debug)]
pub enum Action {
    /// Run the built-in demo.
    Demo,
    /// Run jobs.
    Run(RunArgs),
    /// Print the help text.
    Help,
    /// Print the version.
    Version,
}

/// How job output reaches brood's stdout and stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// Each job's output whole, when the job ends.
    Group,
    /// Lines as they come.
    Line,
    /// Lines as they come, each prefixed with the job's input and a tab.
    Tag,
    /// Discarded.
    None,
}

/// What a failure does to the rest of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    /// Nothing: every job runs.
    Never,
    /// Start no new jobs; running ones finish.
    Soon,
    /// Start no new jobs and stop the running ones.
    Now,
}

/// Where the inputs come from.
#[derive(Debug, PartialEq, Eq)]
pub enum InputSource {
    /// After `:::` on the command line.
    Args(Vec<OsString>),
    /// One per line from a file (`-a FILE`; `-a -` is stdin).
    File(PathBuf),
    /// One per line from stdin.
    Stdin,
}

/// The options of `brood run`.
#[derive(Debug)]
pub struct RunArgs {
    /// Jobs run at once.
    pub jobs: usize,
    /// Per-job time limit.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when brood stops a job.
    pub grace: Duration,
    /// How often a failed job is retried.
    pub retries: u32,
    /// Print output in input order.
    pub keep_order: bool,
    /// Output handling.
    pub output: OutputMode,
    /// JSON Lines job log.
    pub joblog: Option<PathBuf>,
    /// Behaviour after a failure.
    pub halt: Halt,
    /// Print the argv of each job instead of running it.
    pub dry_run: bool,
    /// Run jobs through `sh -c`.
    pub shell: bool,
    /// The command template.
    pub command: Vec<OsString>,
    /// The inputs.
    pub inputs: InputSource,
}

/// The grace period used when `--grace` is not given.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(1);

/// Whether an option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// A flag.
    No,
    /// Takes a value, as `--opt V`, `--opt=V` or (short) `-oV`.
    Required(&'static str),
    /// May take a value, only as `--opt=V`.
    Optional(&'static str),
}

/// One option of `brood run`.
#[derive(Debug)]
pub struct OptSpec {
    /// The long name, without `--`.
    pub long: &'static str,
    /// The short name, if any.
    pub short: Option<char>,
    /// Its value.
    pub value: Value,
    /// One line of help.
    pub help: &'static str,
}

/// Every option of `brood run`. Parsing and the help text both come from
/// this table.
pub const OPTIONS: &[OptSpec] = &[
    OptSpec {
        long: "jobs",
        short: Some('j'),
        value: Value::Required("N"),
        help: "run N jobs at once (default: the number of CPUs)",
    },
    OptSpec {
        long: "timeout",
        short: None,
        value: Value::Required("DUR"),
        help: "stop a job (its whole process group) after DUR, e.g. 500ms, 2s, 1.5s, 1m",
    },
    OptSpec {
        long: "grace",
        short: None,
        value: Value::Required("DUR"),
        help: "wait DUR between SIGTERM and SIGKILL when stopping a job (default: 1s)",
    },
    OptSpec {
        long: "retries",
        short: None,
        value: Value::Required("N"),
        help: "run a failed job up to N more times",
    },
    OptSpec {
        long: "keep-order",
        short: Some('k'),
        value: Value::No,
        help: "print output in input order",
    },
    OptSpec {
        long: "output",
        short: None,
        value: Value::Required("MODE"),
        help: "group (whole, at job end; default), line (lines as they come), \
               tag (lines prefixed with input and a tab), none (discard)",
    },
    OptSpec {
        long: "joblog",
        short: None,
        value: Value::Required("FILE"),
        help: "write one JSON record per finished job to FILE (JSON Lines)",
    },
    OptSpec {
        long: "halt-on-error",
        short: None,
        value: Value::Optional("now"),
        help: "after the first failure start no new jobs; with =now also stop running ones",
    },
    OptSpec {
        long: "dry-run",
        short: None,
        value: Value::No,
        help: "print the command line of each job instead of running it",
    },
    OptSpec {
        long: "shell",
        short: None,
        value: Value::No,
        help: "run each job with sh -c; the input is single-quoted into the script",
    },
    OptSpec {
        long: "arg-file",
        short: Some('a'),
        value: Value::Required("FILE"),
        help: "read inputs from FILE, one per line (- for stdin)",
    },
    OptSpec {
        long: "help",
        short: Some('h'),
        value: Value::No,
        help: "print this help",
    },
];

/// A usage error: brood prints it as `brood: error: ...` and exits 255.
#[derive(Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(msg.into()))
}

/// The help text.
pub fn help() -> String {
    let mut text = String::from(
        "brood: run jobs in parallel, each in its own process group\n\
         \n\
         Usage:\n\
         \x20 brood                 run a short built-in demo\n\
         \x20 brood demo            the same\n\
         \x20 brood run [OPTIONS] [--] COMMAND [ARGS...] [::: INPUTS...]\n\
         \n\
         Inputs come after :::, from -a FILE, or one per line on stdin.\n\
         In COMMAND and ARGS, {} becomes the input and {#} the job number;\n\
         {.} is the input without its extension, {/} its last path\n\
         component, {//} its directory and {/.} the last component without\n\
         extension. Without any of these (other than {#}) the input is\n\
         appended as the last argument. Jobs are executed directly, not\n\
         through a shell, unless --shell is given.\n\
         \n\
         Options of run:\n",
    );
    for opt in OPTIONS {
        let short = match opt.short {
            Some(c) => format!("-{c}, "),
            None => "    ".to_string(),
        };
        let value = match opt.value {
            Value::No => String::new(),
            Value::Required(v) => format!(" {v}"),
            Value::Optional(v) => format!("[={v}]"),
        };
        let left = format!("  {short}--{}{value}", opt.long);
        text.push_str(&format!("{left:<28} {}\n", opt.help));
    }
    text.push_str(
        "\nExit status: 0 if every job succeeded; else the number of failed jobs\n\
         (at most 101); 130 after Ctrl-C, 143 after SIGTERM; 255 on brood's own errors.\n",
    );
    text
}

/// Parses brood's arguments (without the program name).
pub fn parse(args: &[OsString]) -> Result<Action, CliError> {
    let Some(first) = args.first() else {
        return Ok(Action::Demo);
    };
    match first.to_str() {
        Some("demo") => match args.get(1) {
            None => Ok(Action::Demo),
            Some(extra) => err(format!("demo takes no arguments, got {}", show(extra))),
        },
        Some("run") => parse_run(&args[1..]).map(Action::Run),
        Some("-h" | "--help" | "help") => Ok(Action::Help),
        Some("-V" | "--version") => Ok(Action::Version),
        Some(s) if s.starts_with('-') => err(format!(
            "unknown flag {s} (options go after `run`: brood run [OPTIONS] -- COMMAND)"
        )),
        _ => err(format!(
            "unknown command {} (expected `run` or `demo`; see brood --help)",
            show(first)
        )),
    }
}

fn show(arg: &OsStr) -> String {
    format!("{:?}", arg.to_string_lossy())
}

fn find_long(name: &str) -> Option<&'static OptSpec> {
    OPTIONS.iter().find(|o| o.long == name)
}

fn find_short(c: char) -> Option<&'static OptSpec> {
    OPTIONS.iter().find(|o| o.short == Some(c))
}

/// Options as parsed, before validation.
#[derive(Default)]
struct Raw {
    jobs: Option<OsString>,
    timeout: Option<OsString>,
    grace: Option<OsString>,
    retries: Option<OsString>,
    keep_order: bool,
    output: Option<OsString>,
    joblog: Option<OsString>,
    halt: Option<Option<OsString>>,
    dry_run: bool,
    shell: bool,
    arg_file: Option<OsString>,
    help: bool,
}

impl Raw {
    fn set(&mut self, opt: &OptSpec, value: Option<OsString>) {
        match opt.long {
            "jobs" => self.jobs = value,
            "timeout" => self.timeout = value,
            "grace" => self.grace = value,
            "retries" => self.retries = value,
            "keep-order" => self.keep_order = true,
            "output" => self.output = value,
            "joblog" => self.joblog = value,
            "halt-on-error" => self.halt = Some(value),
            "dry-run" => self.dry_run = true,
            "shell" => self.shell = true,
            "arg-file" => self.arg_file = value,
            "help" => self.help = true,
            other => unreachable!("option --{other} has no field"),
        }
    }
}

fn parse_run(args: &[OsString]) -> Result<RunArgs, CliError> {
    let mut raw = Raw::default();
    let mut i = 0;
    // Options.
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if arg == "--" {
            i += 1;
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(OsString::from(v))),
                None => (body, None),
            };
            let Some(opt) = find_long(name) else {
                return err(format!("unknown flag --{name}"));
            };
            let value = match (opt.value, inline) {
                (Value::No, Some(_)) => return err(format!("--{name} takes no value")),
                (Value::No, None) | (Value::Optional(_), None) => None,
                (_, Some(v)) => Some(v),
                (Value::Required(meta), None) => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => Some(v.clone()),
                        None => return err(format!("--{name} needs a value ({meta})")),
                    }
                }
            };
            raw.set(opt, value);
            i += 1;
        } else if arg.starts_with('-') && arg.len() > 1 {
            let mut chars = arg[1..].chars();
            let c = chars.next().expect("length checked");
            let rest: String = chars.collect();
            let Some(opt) = find_short(c) else {
                return err(format!("unknown flag -{c}"));
            };
            let value = match opt.value {
                Value::Required(meta) if rest.is_empty() => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => Some(v.clone()),
                        None => return err(format!("-{c} needs a value ({meta})")),
                    }
                }
                Value::Required(_) => Some(OsString::from(rest)),
                _ if rest.is_empty() => None,
                _ => return err(format!("-{c} takes no value (got -{c}{rest})")),
            };
            raw.set(opt, value);
            i += 1;
        } else {
            break;
        }
    }
    if raw.help {
        return err("--help is not an option of run; use brood --help");
    }
    // The command, up to `:::`, then the inputs.
    let rest = &args[i..];
    let (command, inputs) = match rest.iter().position(|a| a == ":::") {
        Some(p) => (rest[..p].to_vec(), Some(rest[p + 1..].to_vec())),
        None => (rest.to_vec(), None),
    };
    if command.is_empty() {
        return err("empty command: nothing to run (usage: brood run [OPTIONS] -- COMMAND [ARGS...] ::: INPUTS)");
    }
    if command[0].is_empty() {
        return err("empty command: the program name is an empty string");
    }
    if let Some(inputs) = &inputs {
        if inputs.iter().any(|a| a == ":::") {
            return err("only one ::: input list is supported");
        }
    }
    let inputs = match (inputs, raw.arg_file) {
        (Some(_), Some(_)) => return err("give inputs either after ::: or with -a, not both"),
        (Some(list), None) => InputSource::Args(list),
        (None, Some(file)) if file == "-" => InputSource::Stdin,
        (None, Some(file)) => InputSource::File(file.into()),
        (None, None) => InputSource::Stdin,
    };

    let jobs = match raw.jobs {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(v) => match utf8(&v, "--jobs")?.parse::<usize>() {
            Ok(0) => return err("--jobs must be at least 1, got 0"),
            Ok(n) => n,
            Err(_) => {
                return err(format!(
                    "invalid --jobs value {}: expected a positive number",
                    show(&v)
                ))
            }
        },
    };
    let timeout = match raw.timeout {
        None => None,
        Some(v) => match duration::parse(utf8(&v, "--timeout")?) {
            Ok(d) if d.is_zero() => return err("--timeout must be greater than zero"),
            Ok(d) => Some(d),
            Err(e) => return err(format!("--timeout: {e}")),
        },
    };
    let grace = match raw.grace {
        None => DEFAULT_GRACE,
        Some(v) => {
            duration::parse(utf8(&v, "--grace")?).map_err(|e| CliError(format!("--grace: {e}")))?
        }
    };
    let retries = match raw.retries {
        None => 0,
        Some(v) => utf8(&v, "--retries")?.parse::<u32>().map_err(|_| {
            CliError(format!(
                "invalid --retries value {}: expected a number",
                show(&v)
            ))
        })?,
    };
    let output = match raw
        .output
        .as_deref()
        .map(|v| utf8(v, "--output"))
        .transpose()?
    {
        None | Some("group") => OutputMode::Group,
        Some("line") => OutputMode::Line,
        Some("tag") => OutputMode::Tag,
        Some("none") => OutputMode::None,
        Some(other) => {
            return err(format!(
                "invalid --output value {other:?}: expected group, line, tag or none"
            ))
        }
    };
    let halt = match raw.halt {
        None => Halt::Never,
        Some(None) => Halt::Soon,
        Some(Some(v)) if v == "now" => Halt::Now,
        Some(Some(v)) => {
            return err(format!(
                "invalid --halt-on-error value {}: only --halt-on-error=now is accepted",
                show(&v)
            ))
        }
    };
    let joblog = match raw.joblog {
        Some(v) if v.is_empty() => return err("--joblog needs a file name"),
        other => other.map(PathBuf::from),
    };
    Ok(RunArgs {
        jobs,
        timeout,
        grace,
        retries,
        keep_order: raw.keep_order,
        output,
        joblog,
        halt,
        dry_run: raw.dry_run,
        shell: raw.shell,
        command,
        inputs,
    })
}

fn utf8<'a>(v: &'a OsStr, what: &str) -> Result<&'a str, CliError> {
    v.to_str()
        .ok_or_else(|| CliError(format!("invalid {what} value {}: not UTF-8", show(v))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str]) -> RunArgs {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        match parse(&os(&full)) {
            Ok(Action::Run(r)) => r,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn run_err(args: &[&str]) -> String {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        match parse(&os(&full)) {
            Err(CliError(msg)) => msg,
            other => panic!("{args:?} should fail: {other:?}"),
        }
    }

    /// The option table, the parser and the help text agree.
    #[test]
    fn cli_definition_is_consistent() {
        let mut longs = HashSet::new();
        let mut shorts = HashSet::new();
        let help = help();
        for opt in OPTIONS {
            assert!(longs.insert(opt.long), "duplicate --{}", opt.long);
            if let Some(c) = opt.short {
                assert!(shorts.insert(c), "duplicate -{c}");
                assert!(c.is_ascii_alphabetic());
            }
            assert!(
                opt.long.len() > 1
                    && opt
                        .long
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
            assert!(!opt.help.is_empty());
            assert!(
                help.contains(&format!("--{}", opt.long)),
                "help lacks --{}",
                opt.long
            );
            assert_eq!(find_long(opt.long).map(|o| o.long), Some(opt.long));
            // Every option except --help is accepted by `run`, and every
            // field setter is wired (Raw::set panics otherwise).
            if opt.long == "help" {
                continue;
            }
            let sample = match opt.long {
                "jobs" | "retries" => "2",
                "timeout" | "grace" => "1s",
                "output" => "line",
                "halt-on-error" => "now",
                _ => "file",
            };
            let mut args = vec![format!("--{}", opt.long)];
            match opt.value {
                Value::No => {}
                Value::Required(_) => args.push(sample.to_string()),
                Value::Optional(_) => args[0] = format!("--{}={sample}", opt.long),
            }
            if opt.long == "arg-file" {
                args.extend(["--".into(), "echo".into()]);
            } else {
                args.extend(["--".into(), "echo".into(), ":::".into(), "a".into()]);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&refs);
        }
        for (c, _) in shorts.iter().map(|c| (c, ())) {
            assert!(help.contains(&format!("-{c}, ")), "help lacks -{c}");
        }
    }

    #[test]
    fn no_args_is_demo() {
        assert!(matches!(parse(&[]), Ok(Action::Demo)));
        assert!(matches!(parse(&os(&["demo"])), Ok(Action::Demo)));
        assert!(parse(&os(&["demo", "x"])).is_err());
        assert!(matches!(parse(&os(&["--help"])), Ok(Action::Help)));
        assert!(matches!(parse(&os(&["-V"])), Ok(Action::Version)));
    }

    #[test]
    fn defaults() {
        let r = run(&["--", "echo", ":::", "a", "b"]);
        assert!(r.jobs >= 1);
        assert_eq!(r.timeout, None);
        assert_eq!(r.grace, DEFAULT_GRACE);
        assert_eq!(r.retries, 0);
        assert!(!r.keep_order && !r.dry_run && !r.shell);
        assert_eq!(r.output, OutputMode::Group);
        assert_eq!(r.halt, Halt::Never);
        assert_eq!(r.command, os(&["echo"]));
        assert_eq!(r.inputs, InputSource::Args(os(&["a", "b"])));
    }

    #[test]
    fn all_options() {
        let r = run(&[
            "-j",
            "3",
            "--timeout",
            "1.5s",
            "--grace=200ms",
            "--retries",
            "2",
            "-k",
            "--output=tag",
            "--joblog",
            "log.jsonl",
            "--halt-on-error=now",
            "--dry-run",
            "--shell",
            "--",
            "echo",
            "{}",
            ":::",
            "x",
        ]);
        assert_eq!(r.jobs, 3);
        assert_eq!(r.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(r.grace, Duration::from_millis(200));
        assert_eq!(r.retries, 2);
        assert!(r.keep_order && r.dry_run && r.shell);
        assert_eq!(r.output, OutputMode::Tag);
        assert_eq!(r.joblog, Some(PathBuf::from("log.jsonl")));
        assert_eq!(r.halt, Halt::Now);
        assert_eq!(r.command, os(&["echo", "{}"]));
    }

    #[test]
    fn short_forms_and_sources() {
        assert_eq!(run(&["-j4", "echo"]).jobs, 4);
        assert_eq!(run(&["--jobs=5", "echo"]).jobs, 5);
        assert_eq!(run(&["--halt-on-error", "echo"]).halt, Halt::Soon);
        assert_eq!(run(&["echo"]).inputs, InputSource::Stdin);
        assert_eq!(run(&["-a", "-", "echo"]).inputs, InputSource::Stdin);
        assert_eq!(
            run(&["-a", "in.txt", "echo"]).inputs,
            InputSource::File("in.txt".into())
        );
        assert_eq!(
            run(&["--arg-file=f", "echo"]).inputs,
            InputSource::File("f".into())
        );
        // No `--`: the first non-option starts the command, whose own flags
        // are left alone.
        let r = run(&["-j", "2", "ls", "-l", "--all", ":::", "-x"]);
        assert_eq!(r.command, os(&["ls", "-l", "--all"]));
        assert_eq!(r.inputs, InputSource::Args(os(&["-x"])));
        // `:::` with nothing after it: no inputs.
        assert_eq!(run(&["echo", ":::"]).inputs, InputSource::Args(vec![]));
    }

    #[test]
    fn errors() {
        assert!(run_err(&["--frobnicate", "echo"]).contains("unknown flag --frobnicate"));
        assert!(run_err(&["-z", "echo"]).contains("unknown flag -z"));
        assert!(run_err(&["--timeout", "soon", "echo"]).contains("invalid duration"));
        assert!(run_err(&["--timeout", "0", "echo"]).contains("greater than zero"));
        assert!(run_err(&["--grace", "-1", "echo"]).contains("invalid duration"));
        assert!(run_err(&["-j", "0", "echo"]).contains("at least 1"));
        assert!(run_err(&["-j", "many", "echo"]).contains("--jobs"));
        assert!(run_err(&["--retries", "-1", "echo"]).contains("--retries"));
        assert!(run_err(&["--output", "loud", "echo"]).contains("--output"));
        assert!(run_err(&["--halt-on-error=later", "echo"]).contains("--halt-on-error"));
        assert!(run_err(&["--dry-run=yes", "echo"]).contains("takes no value"));
        assert!(run_err(&["-kx", "echo"]).contains("takes no value"));
        assert!(run_err(&["--timeout"]).contains("needs a value"));
        assert!(run_err(&["-j"]).contains("needs a value"));
        assert!(run_err(&[]).contains("empty command"));
        assert!(run_err(&["--"]).contains("empty command"));
        assert!(run_err(&["--", ":::", "a"]).contains("empty command"));
        assert!(run_err(&["", "a"]).contains("empty command"));
        assert!(run_err(&["echo", ":::", "a", ":::", "b"]).contains("only one :::"));
        assert!(run_err(&["-a", "f", "echo", ":::", "a"]).contains("not both"));
        assert!(run_err(&["--joblog=", "echo"]).contains("--joblog"));
        assert!(parse(&os(&["--jobs", "2"]))
            .unwrap_err()
            .0
            .contains("unknown flag"));
        assert!(parse(&os(&["frob"]))
            .unwrap_err()
            .0
            .contains("unknown command"));
    }
}
