//! A cgroup's resource figures: `cpu.stat` and `memory.peak`.
//!
//! Owns: [`CgroupUsage`] and its parsers. Calls nothing.

use std::io;
use std::time::Duration;

/// What a whole tree used: every process that ever ran in the cgroup,
/// including those that left the leader's process group or session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CgroupUsage {
    /// Total CPU time (`usage_usec`).
    pub(crate) cpu: Duration,
    /// CPU time in user mode (`user_usec`).
    pub(crate) user: Duration,
    /// CPU time in the kernel (`system_usec`).
    pub(crate) system: Duration,
    /// The highest memory use the cgroup reached, in bytes (`memory.peak`),
    /// or `None` where that file does not exist: the memory controller is
    /// not enabled for the cgroup (the parent's `cgroup.subtree_control`
    /// lacks `memory`), or the kernel predates `memory.peak` (5.19).
    pub(crate) peak_memory: Option<u64>,
}

impl CgroupUsage {
    /// The CPU figures counted since `start` (earlier figures of the same
    /// cgroup); the peak is this value's own.
    pub(crate) fn since(&self, start: &CgroupUsage) -> CgroupUsage {
        CgroupUsage {
            cpu: self.cpu.saturating_sub(start.cpu),
            user: self.user.saturating_sub(start.user),
            system: self.system.saturating_sub(start.system),
            peak_memory: self.peak_memory,
        }
    }
}

/// Fills the CPU figures from a `cpu.stat` text. The three core fields are
/// there whether or not the cpu controller is enabled; a missing one is an
/// error rather than a silent zero.
pub(crate) fn parse_cpu_stat(text: &str, usage: &mut CgroupUsage) -> io::Result<()> {
    let mut found = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let slot = match key {
            "usage_usec" => &mut usage.cpu,
            "user_usec" => &mut usage.user,
            "system_usec" => &mut usage.system,
            _ => continue,
        };
        let micros: u64 = value.trim().parse().map_err(|_| bad("cpu.stat", line))?;
        *slot = Duration::from_micros(micros);
        found += 1;
    }
    if found == 3 {
        Ok(())
    } else {
        Err(bad("cpu.stat", text))
    }
}

/// Parses a `memory.peak` text (one number of bytes).
pub(crate) fn parse_memory_peak(text: &str) -> io::Result<u64> {
    text.trim().parse().map_err(|_| bad("memory.peak", text))
}

fn bad(file: &str, text: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("brood: unexpected {file} contents: {text:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat_core_fields_are_read_and_others_ignored() {
        let text = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnice_usec 0\n\
                    core_sched.force_idle_usec 0\nnr_periods 0\n";
        let mut usage = CgroupUsage::default();
        parse_cpu_stat(text, &mut usage).unwrap();
        assert_eq!(usage.cpu, Duration::from_micros(1500));
        assert_eq!(usage.user, Duration::from_micros(1000));
        assert_eq!(usage.system, Duration::from_micros(500));
        let missing = parse_cpu_stat("usage_usec 1\nuser_usec 1\n", &mut usage).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::InvalidData);
        assert!(parse_cpu_stat("usage_usec x\nuser_usec 1\nsystem_usec 1\n", &mut usage).is_err());
    }

    #[test]
    fn memory_peak_is_one_number() {
        assert_eq!(parse_memory_peak("8192\n").unwrap(), 8192);
        assert!(parse_memory_peak("max\n").is_err());
    }
}
