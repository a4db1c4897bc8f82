//! Whether the machine has room for another job: `--load` and
//! `--memfree`.
//!
//! `--load MAX` counts, as GNU parallel does, the processes running or
//! waiting for the disk right now (not the averaged load): on Linux
//! `procs_running + procs_blocked` from `/proc/stat`. `--memfree SIZE`
//! reads the kernel's estimate of available memory, `MemAvailable` in
//! `/proc/meminfo` (GNU parallel adds up free, buffers and cache, which
//! the kernel's figure refines). Both are read when a job is about to
//! start, and again after a short pause while there is no room.

use std::time::Duration;

/// How long to wait before looking again when there is no room.
pub const RECHECK: Duration = Duration::from_millis(100);

/// Processes running or in uninterruptible sleep now.
pub fn runnable_processes() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let field = |name: &str| -> Option<f64> {
        stat.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("procs_running ")? + field("procs_blocked ").unwrap_or(0.0))
}

/// Available memory in bytes.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Whether the probes work on this system.
pub fn supported() -> bool {
    runnable_processes().is_some() && available_memory().is_some()
}

/// Parses a size: a number with an optional GNU parallel unit (`K`, `M`,
/// `G`, `T`, `P` are powers of 1024; `k`, `m`, `g`, `t`, `p` of 1000; `Ki`
/// and the like also 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {text:?} (expected e.g. 500M, 2G, 1000000)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: f64 = match unit {
        "" => 1.0,
        "K" | "Ki" | "ki" => 1024.0,
        "M" | "Mi" | "mi" => 1024f64.powi(2),
        "G" | "Gi" | "gi" => 1024f64.powi(3),
        "T" | "Ti" | "ti" => 1024f64.powi(4),
        "P" | "Pi" | "pi" => 1024f64.powi(5),
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return Err(bad()),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    Ok((n * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2K"), Ok(2048));
        assert_eq!(parse_size("2k"), Ok(2000));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1X").is_err());
    }

    #[test]
    fn probes_read_this_machine() {
        if cfg!(target_os = "linux") {
            assert!(runnable_processes().unwrap() >= 1.0);
            assert!(available_memory().unwrap() > 0);
        }
    }
}
