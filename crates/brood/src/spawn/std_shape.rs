//! What a `std::process::Command` holds beyond its getters, read from its
//! `{:#?}` description.
//!
//! std has getters for the program, the arguments, the environment changes
//! and the directory, but none for the standard streams (an opaque
//! `Stdio`; `Stdio::makes_pipe` is unstable), the uid, gid and process
//! group, or whether the environment was cleared. Its alternate `Debug`
//! output shows each of them, and shows every other option only when it is
//! set. This module reads that output strictly:
//!
//! - every top-level field must be one brood knows, so an option std adds
//!   later (or an unstable one such as `groups`) makes the command
//!   unreadable, and it goes to std's spawn;
//! - every value must have exactly a known shape, or the command is
//!   unreadable;
//! - the reader is trusted only after it has read back a set of commands
//!   built here with known options (checked once per process), so a std
//!   whose output changed shape disables it instead of misleading it.
//!
//! What the description never shows is a `pre_exec` hook; callers must know
//! by other means that there is none.
//!
//! Owns: [`StdShape`], [`describe`]. Calls nothing.

use std::process::Command;
use std::sync::OnceLock;

/// A standard stream, as std's command holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StdStdio {
    /// Not set: the default of the spawning method (inherit, for `spawn`).
    Default,
    Inherit,
    Null,
    Piped,
    /// A descriptor the command owns (`Stdio::from(OwnedFd)`, a `File`, a
    /// `ChildStdout`, ...) or borrows (`io::stdout()`, `io::stderr()`).
    Fd(i32),
}

/// What [`describe`] reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StdShape {
    pub(crate) env_clear: bool,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) pgroup: Option<i32>,
    pub(crate) stdio: [StdStdio; 3],
    /// `argv[0]` is not the program (`CommandExt::arg0` was called).
    pub(crate) arg0_differs: bool,
}

/// Reads `command`'s options, or `None` if brood cannot be sure of them.
pub(crate) fn describe(command: &Command) -> Option<StdShape> {
    if !trusted() {
        return None;
    }
    parse(&format!("{command:#?}"))
}

/// Whether the reader reads this std's descriptions right.
fn trusted() -> bool {
    static TRUSTED: OnceLock<bool> = OnceLock::new();
    *TRUSTED.get_or_init(self_check)
}

fn self_check() -> bool {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    let plain = Command::new("brood-probe");
    let plain_ok = parse(&format!("{plain:#?}"))
        == Some(StdShape {
            env_clear: false,
            uid: None,
            gid: None,
            pgroup: None,
            stdio: [StdStdio::Default; 3],
            arg0_differs: false,
        });

    let mut set = Command::new("brood-probe");
    set.arg("a b")
        .arg0("zero")
        .env_clear()
        .env("CLEAR", "clear: true,")
        .uid(7)
        .gid(8)
        .process_group(9)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let set_ok = parse(&format!("{set:#?}"))
        == Some(StdShape {
            env_clear: true,
            uid: Some(7),
            gid: Some(8),
            pgroup: Some(9),
            stdio: [StdStdio::Piped, StdStdio::Null, StdStdio::Inherit],
            arg0_differs: true,
        });

    // Descriptors: one the command owns, one it borrows.
    let Ok(file) = std::fs::File::open("/dev/null") else {
        return false;
    };
    let owned = std::os::fd::OwnedFd::from(file);
    let number = std::os::fd::AsRawFd::as_raw_fd(&owned);
    let mut fds = Command::new("brood-probe");
    fds.env_remove("X")
        .stdin(Stdio::from(owned))
        .stdout(std::io::stderr());
    let fds_ok = parse(&format!("{fds:#?}"))
        == Some(StdShape {
            env_clear: false,
            uid: None,
            gid: None,
            pgroup: None,
            stdio: [StdStdio::Fd(number), StdStdio::Fd(2), StdStdio::Default],
            arg0_differs: false,
        });

    plain_ok && set_ok && fds_ok
}

/// The fields std prints, and which of them brood can represent.
const KNOWN_FIELDS: [&str; 11] = [
    "program",
    "args",
    "env",
    "cwd",
    "uid",
    "gid",
    "stdin",
    "stdout",
    "stderr",
    "pgroup",
    "create_pidfd",
];

/// Parses std's alternate description of a Unix `Command`.
///
/// Its layout: `Command {`, then one field per line at four spaces of
/// indentation, each value running until the next such line, then `}`.
/// Strings are printed escaped (a newline in an argument becomes `\n`), so
/// no line inside a value can pass for a field.
fn parse(text: &str) -> Option<StdShape> {
    let mut lines = text.lines();
    if lines.next()? != "Command {" {
        return None;
    }
    let mut fields: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut closed = false;
    for line in lines {
        if closed {
            return None;
        }
        if line == "}" {
            closed = true;
        } else if let Some(field) = field_line(line) {
            let (name, rest) = field;
            fields.push((name, vec![rest]));
        } else {
            fields.last_mut()?.1.push(line);
        }
    }
    if !closed {
        return None;
    }

    let mut shape = StdShape {
        env_clear: false,
        uid: None,
        gid: None,
        pgroup: None,
        stdio: [StdStdio::Default; 3],
        arg0_differs: false,
    };
    let mut program = None;
    let mut arg0 = None;
    for (name, value) in &fields {
        if !KNOWN_FIELDS.contains(name) {
            return None;
        }
        match *name {
            "program" => program = Some(value.first()?.strip_suffix(',')?),
            // `[`, then argv[0] on the next line.
            "args" => arg0 = Some(value.get(1)?.trim_start().strip_suffix(',')?),
            "env" => {
                // `CommandEnv {`, then `clear: <bool>,` on its own line.
                shape.env_clear = match value.get(1)?.trim() {
                    "clear: true," => true,
                    "clear: false," => false,
                    _ => return None,
                };
            }
            "uid" => shape.uid = Some(some_number(value)?),
            "gid" => shape.gid = Some(some_number(value)?),
            "pgroup" => shape.pgroup = Some(some_number(value)?),
            "stdin" => shape.stdio[0] = stdio(value)?,
            "stdout" => shape.stdio[1] = stdio(value)?,
            "stderr" => shape.stdio[2] = stdio(value)?,
            "create_pidfd" if compact(value) != "false" => return None,
            // "cwd": read through the getter.
            _ => {}
        }
    }
    shape.arg0_differs = program? != arg0?;
    Some(shape)
}

/// `    name: rest` (exactly four spaces) as `(name, rest)`.
fn field_line(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_prefix("    ")?;
    if body.starts_with(' ') {
        return None;
    }
    let (name, rest) = body.split_once(": ")?;
    name.chars()
        .all(|c| c.is_ascii_lowercase() || c == '_')
        .then_some((name, rest))
}

/// A value's lines without whitespace, and without the commas that pretty
/// printing puts before a closing bracket or at the end.
fn compact(value: &[&str]) -> String {
    let joined: String = value
        .iter()
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut out = String::with_capacity(joined.len());
    let mut chars = joined.chars().peekable();
    while let Some(c) = chars.next() {
        let before_close = matches!(chars.peek(), Some(')' | '}' | ']') | None);
        if c == ',' && before_close {
            continue;
        }
        out.push(c);
    }
    out
}

/// `Some(<integer>)`.
fn some_number<T: std::str::FromStr>(value: &[&str]) -> Option<T> {
    let compact = compact(value);
    compact
        .strip_prefix("Some(")?
        .strip_suffix(')')?
        .parse()
        .ok()
}

fn stdio(value: &[&str]) -> Option<StdStdio> {
    let compact = compact(value);
    let inner = compact.strip_prefix("Some(")?.strip_suffix(')')?;
    let fd = |s: &str| s.parse::<i32>().ok().filter(|fd| *fd >= 0);
    match inner {
        "Inherit" => Some(StdStdio::Inherit),
        "Null" => Some(StdStdio::Null),
        "MakePipe" => Some(StdStdio::Piped),
        _ => {
            if let Some(n) = inner
                .strip_prefix("Fd(FileDesc(OwnedFd{fd:")
                .and_then(|s| s.strip_suffix("}))"))
            {
                fd(n).map(StdStdio::Fd)
            } else if let Some(n) = inner
                .strip_prefix("StaticFd(BorrowedFd{fd:")
                .and_then(|s| s.strip_suffix("})"))
            {
                fd(n).map(StdStdio::Fd)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    #[test]
    fn the_reader_trusts_this_std() {
        assert!(trusted(), "std's Command description changed shape");
    }

    #[test]
    fn reads_every_stdio_constructor() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let number = std::os::fd::AsRawFd::as_raw_fd(&file);
        let mut command = Command::new("x");
        command
            .stdin(Stdio::from(file))
            .stdout(Stdio::piped())
            .stderr(std::io::stdout());
        let shape = describe(&command).unwrap();
        assert_eq!(
            shape.stdio,
            [StdStdio::Fd(number), StdStdio::Piped, StdStdio::Fd(1)]
        );

        let mut child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
        let pipe = child.stdout.take().unwrap();
        let number = std::os::fd::AsRawFd::as_raw_fd(&pipe);
        let mut command = Command::new("x");
        command.stdin(pipe).stdout(Stdio::null());
        assert_eq!(
            describe(&command).unwrap().stdio,
            [StdStdio::Fd(number), StdStdio::Null, StdStdio::Default]
        );
        child.wait().unwrap();
    }

    #[test]
    fn arguments_that_look_like_fields_are_not_fields() {
        let mut command = Command::new("x");
        command
            .arg("\n    uid: Some(0),")
            .env("K", "\n    stdin: Some(MakePipe),")
            .current_dir("/tmp/\n    groups: [],");
        let shape = describe(&command).unwrap();
        assert_eq!(shape.uid, None);
        assert_eq!(shape.stdio, [StdStdio::Default; 3]);
        assert!(!shape.env_clear);
    }

    #[test]
    fn env_clear_is_seen_after_later_changes() {
        let mut command = Command::new("x");
        command.env_clear().env("A", "1").env_remove("B");
        assert!(describe(&command).unwrap().env_clear);
        let mut command = Command::new("x");
        command.env("A", "1");
        assert!(!describe(&command).unwrap().env_clear);
    }

    #[test]
    fn unknown_fields_and_shapes_are_refused() {
        let known = "Command {\n    program: \"x\",\n    args: [\n        \"x\",\n    ],\n    create_pidfd: false,\n}";
        assert!(parse(known).is_some());
        let groups = known.replace(
            "    create_pidfd",
            "    groups: Some(\n        [],\n    ),\n    create_pidfd",
        );
        assert_eq!(parse(&groups), None);
        let pidfd = known.replace("create_pidfd: false", "create_pidfd: true");
        assert_eq!(parse(&pidfd), None);
        let odd_stdio = known.replace(
            "    create_pidfd",
            "    stdin: Some(\n        Socket(3),\n    ),\n    create_pidfd",
        );
        assert_eq!(parse(&odd_stdio), None);
        assert_eq!(parse(&format!("{known}\n")), parse(known));
        assert_eq!(parse(&format!("{known}\nmore")), None);
    }

    #[test]
    fn arg0_is_noticed() {
        let mut command = Command::new("x");
        command.arg0("y");
        assert!(describe(&command).unwrap().arg0_differs);
        let mut command = Command::new("x");
        command.arg0("x");
        assert!(!describe(&command).unwrap().arg0_differs);
    }
}
