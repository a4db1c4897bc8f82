//! The progress line: jobs done/total, running, failed, elapsed and ETA.
//!
//! Drawn on stderr only when it is a terminal, as one line redrawn in place
//! (`\r` and "erase line"), kept under 80 columns so it never wraps on a
//! normal terminal.

use crate::duration::human;
use std::time::Duration;

/// Carriage return, then ANSI "erase entire line".
pub const CLEAR: &str = "\r\x1b[2K";

/// What the progress line shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Jobs finished.
    pub done: usize,
    /// Jobs in all, once known.
    pub total: Option<usize>,
    /// Jobs running now.
    pub running: usize,
    /// Jobs that failed.
    pub failed: usize,
    /// Time since the start.
    pub elapsed: Duration,
}

const BAR: usize = 10;

/// The progress line, without the leading [`CLEAR`].
pub fn render(c: &Counts) -> String {
    let bar = match c.total {
        Some(total) if total > 0 => {
            let filled = (c.done * BAR / total).min(BAR);
            format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR - filled))
        }
        _ => format!("[{}]", "?".repeat(BAR)),
    };
    let total = c.total.map_or_else(|| "?".to_string(), |t| t.to_string());
    let eta = match c.total {
        Some(total) if c.done > 0 && c.done < total => {
            let per_job = c.elapsed.as_secs_f64() / c.done as f64;
            let left = Duration::from_secs_f64(per_job * (total - c.done) as f64);
            format!("ETA {}", human(left))
        }
        Some(total) if c.done >= total => "ETA 0s".to_string(),
        _ => "ETA ?".to_string(),
    };
    format!(
        "{bar} {}/{total} done, {} running, {} failed, {}, {eta}",
        c.done,
        c.running,
        c.failed,
        human(c.elapsed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let line = render(&Counts {
            done: 5,
            total: Some(10),
            running: 2,
            failed: 1,
            elapsed: Duration::from_secs(10),
        });
        assert_eq!(
            line,
            "[#####-----] 5/10 done, 2 running, 1 failed, 10.00s, ETA 10.00s"
        );
        let line = render(&Counts {
            done: 3,
            total: None,
            running: 4,
            failed: 0,
            elapsed: Duration::from_millis(500),
        });
        assert!(
            line.contains("3/? done") && line.contains("ETA ?"),
            "{line}"
        );
        // The worst case stays under 80 columns.
        let line = render(&Counts {
            done: 999_999,
            total: Some(1_000_000),
            running: 9999,
            failed: 99_999,
            elapsed: Duration::from_secs(86_000),
        });
        assert!(line.len() < 80, "{} columns: {line}", line.len());
    }
}
