//! The names of brood's per-child cgroups, and the process identity in them.
//!
//! A per-child cgroup is named
//!
//! ```text
//! brood-<pidns>-<pid>-<start>-<seq>
//! ```
//!
//! - `pidns`: the inode number of the creating process's pid namespace
//!   (`/proc/self/ns/pid`), so that a brood in another pid namespace that
//!   shares the parent directory is never judged by pids that mean nothing
//!   here;
//! - `pid`: the creating process's pid, in that namespace;
//! - `start`: its start time (field 22 of `/proc/<pid>/stat`, clock ticks
//!   since boot), which tells a live creator from a later process that reused
//!   its pid;
//! - `seq`: a per-process counter, so names never repeat within a process.
//!
//! All four are decimal. cgroup file systems do not survive a reboot, so no
//! boot id is needed. A name that does not match this pattern exactly is
//! never treated as brood's.
//!
//! Owns: [`CgroupName`], [`Creator`], this process's identity. Calls nothing.

use std::io;
use std::path::Path;
use std::sync::OnceLock;

/// The prefix of every per-child cgroup brood creates.
pub(crate) const PREFIX: &str = "brood-";

/// Who created a cgroup: enough to tell whether that process still lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Creator {
    /// Inode of the creator's pid namespace.
    pub(crate) pid_namespace: u64,
    /// The creator's pid, in that namespace.
    pub(crate) pid: u32,
    /// The creator's start time, in clock ticks since boot.
    pub(crate) start_time: u64,
}

/// A parsed per-child cgroup name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CgroupName {
    pub(crate) creator: Creator,
    pub(crate) sequence: u64,
}

impl CgroupName {
    /// The directory name.
    pub(crate) fn format(&self) -> String {
        let c = &self.creator;
        format!(
            "{PREFIX}{}-{}-{}-{}",
            c.pid_namespace, c.pid, c.start_time, self.sequence
        )
    }

    /// Parses a directory name; `None` for anything brood did not create.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        let mut fields = name.strip_prefix(PREFIX)?.split('-');
        let mut next = || -> Option<u64> {
            let field = fields.next()?;
            // Digits only: no sign, no leading `+`, nothing else.
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            field.parse().ok()
        };
        let pid_namespace = next()?;
        let pid = u32::try_from(next()?).ok()?;
        let start_time = next()?;
        let sequence = next()?;
        if fields.next().is_some() {
            return None;
        }
        Some(CgroupName {
            creator: Creator {
                pid_namespace,
                pid,
                start_time,
            },
            sequence,
        })
    }
}

/// The start time (clock ticks since boot) in a `/proc/<pid>/stat` text.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so the fields are counted from the last `)`.
pub(crate) fn parse_start_time(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3 (state) onwards; the start time is field 22.
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The start time of process `pid`, or `None` if no such process exists.
pub(crate) fn start_time_of(pid: u32) -> io::Result<Option<u64>> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_start_time(&stat).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("brood: cannot parse /proc/{pid}/stat"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The inode number of a namespace link (`/proc/self/ns/pid` reads
/// `pid:[4026531836]`).
fn namespace_inode(link: &Path) -> io::Result<u64> {
    let target = std::fs::read_link(link)?;
    target
        .to_str()
        .and_then(|t| t.split_once(":["))
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "brood: unexpected namespace link {} -> {}",
                    link.display(),
                    target.display()
                ),
            )
        })
}

/// This process's identity, read once.
///
/// It also checks that `/proc` belongs to this process's pid namespace
/// (`/proc/self` is our own pid): with a foreign `/proc`, neither our start
/// time nor any other creator's liveness could be read, and brood then
/// creates no cgroups rather than name them wrongly.
pub(crate) fn this_process() -> io::Result<Creator> {
    static IDENTITY: OnceLock<Creator> = OnceLock::new();
    if let Some(identity) = IDENTITY.get() {
        return Ok(*identity);
    }
    let pid = std::process::id();
    let proc_pid: Option<u32> = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok());
    if proc_pid != Some(pid) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "brood: /proc is not this process's (it belongs to another pid namespace, or is not mounted)",
        ));
    }
    let start_time = start_time_of(pid)?.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "brood: /proc/self/stat is missing")
    })?;
    let identity = Creator {
        pid_namespace: namespace_inode(Path::new("/proc/self/ns/pid"))?,
        pid,
        start_time,
    };
    Ok(*IDENTITY.get_or_init(|| identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        let name = CgroupName {
            creator: Creator {
                pid_namespace: 4026531836,
                pid: 4194304,
                start_time: 123456789,
            },
            sequence: 7,
        };
        assert_eq!(name.format(), "brood-4026531836-4194304-123456789-7");
        assert_eq!(CgroupName::parse(&name.format()), Some(name));
        for other in [
            "brood-1-2-3",
            "brood-1-2-3-4-5",
            "brood-1-2-3-x",
            "brood-1-+2-3-4",
            "brood-1--3-4",
            "brood-1-99999999999-3-4",
            "brood-test-1-2-3",
            "Brood-1-2-3-4",
            "user.slice",
        ] {
            assert_eq!(CgroupName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn start_time_is_read_past_a_command_name_with_spaces_and_parens() {
        let stat = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 987654 1000 200 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("1234 (x) S 1"), None);
    }

    #[test]
    fn this_process_matches_proc_self() {
        let me = this_process().unwrap();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(start_time_of(me.pid).unwrap(), Some(me.start_time));
        assert!(me.pid_namespace > 0);
    }
}
