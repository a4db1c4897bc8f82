//! The end-of-run summary printed on stderr.

use crate::duration::human;
use indicatif::HumanBytes;
use std::time::Duration;

pub use crate::joblog::Outcome as Ending;

/// Totals over a run.
#[derive(Debug, Default)]
pub struct Summary {
    /// Jobs that succeeded.
    pub ok: usize,
    /// Jobs that failed, timed-out ones included.
    pub failed: usize,
    /// Jobs that timed out.
    pub timed_out: usize,
    /// Jobs stopped by `--memfree` with no attempt left.
    pub low_memory: usize,
    /// Jobs stopped by brood.
    pub cancelled: usize,
    /// Inputs that never got a job (the run was stopped first), if known.
    pub not_started: Option<usize>,
    /// Jobs skipped because the job log has them (`--resume`).
    pub skipped: usize,
    /// User CPU time of all jobs (all attempts).
    pub user: Duration,
    /// System CPU time of all jobs (all attempts).
    pub sys: Duration,
    /// The largest peak RSS of any job.
    pub peak_rss: u64,
    /// The slowest jobs, slowest first: (runtime, job number, command line).
    pub slowest: Vec<(Duration, u64, String)>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// How many slowest jobs are listed.
const SLOWEST: usize = 3;

impl Summary {
    /// Counts one finished job.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        ending: Ending,
        seq: u64,
        runtime: Duration,
        user: Duration,
        sys: Duration,
        max_rss: u64,
        command: impl FnOnce() -> String,
    ) {
        match ending {
            Ending::Ok => self.ok += 1,
            Ending::Failed => self.failed += 1,
            Ending::TimedOut => {
                self.failed += 1;
                self.timed_out += 1;
            }
            Ending::LowMemory => {
                self.failed += 1;
                self.low_memory += 1;
            }
            Ending::Stopped => self.cancelled += 1,
        }
        self.user += user;
        self.sys += sys;
        self.peak_rss = self.peak_rss.max(max_rss);
        let slower = self.slowest.len() < SLOWEST
            || self.slowest.last().is_some_and(|(d, _, _)| runtime > *d);
        if slower {
            let at = self.slowest.partition_point(|(d, _, _)| *d >= runtime);
            self.slowest.insert(at, (runtime, seq, command()));
            self.slowest.truncate(SLOWEST);
        }
    }

    /// Jobs that finished in any way.
    pub fn finished(&self) -> usize {
        self.ok + self.failed + self.cancelled
    }

    /// The summary, several lines, each starting with `brood: ` or indented.
    pub fn render(&self) -> String {
        let mut head = format!(
            "brood: {} job{} in {}: {} ok, {} failed ({} timed out",
            self.finished(),
            if self.finished() == 1 { "" } else { "s" },
            human(self.wall),
            self.ok,
            self.failed,
            self.timed_out
        );
        if self.low_memory > 0 {
            head.push_str(&format!(", {} stopped for memory", self.low_memory));
        }
        head.push(')');
        if self.cancelled > 0 {
            head.push_str(&format!(", {} stopped by brood", self.cancelled));
        }
        if self.skipped > 0 {
            head.push_str(&format!(", {} skipped (in the job log)", self.skipped));
        }
        if let Some(n) = self.not_started.filter(|&n| n > 0) {
            head.push_str(&format!(", {n} not started"));
        }
        let mut text = head;
        text.push_str(&format!(
            "\n  cpu {} (user {}, sys {}), peak rss {}",
            human(self.user + self.sys),
            human(self.user),
            human(self.sys),
            HumanBytes(self.peak_rss)
        ));
        if !self.slowest.is_empty() {
            text.push_str("\n  slowest:");
            for (runtime, seq, command) in &self.slowest {
                let mut command = command.clone();
                if command.chars().count() > 60 {
                    command = command.chars().take(57).collect::<String>() + "...";
                }
                text.push_str(&format!(
                    "\n    #{seq:<5} {:>8}  {command}",
                    human(*runtime)
                ));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn counts_and_slowest() {
        let mut s = Summary::default();
        let z = Duration::ZERO;
        s.add(Ending::Ok, 1, ms(100), ms(10), ms(5), 1000, || "a".into());
        s.add(Ending::Failed, 2, ms(300), ms(20), z, 5000, || "b".into());
        s.add(Ending::TimedOut, 3, ms(1000), z, z, 10, || "c".into());
        s.add(Ending::Ok, 4, ms(200), z, z, 10, || "d".into());
        s.add(Ending::Stopped, 5, ms(50), z, z, 10, || {
            panic!("not among the slowest")
        });
        s.add(Ending::LowMemory, 6, ms(40), z, z, 10, || {
            panic!("not among the slowest")
        });
        assert_eq!((s.ok, s.failed, s.timed_out, s.cancelled), (2, 3, 1, 1));
        assert_eq!(s.low_memory, 1);
        assert_eq!(s.user + s.sys, ms(35));
        assert_eq!(s.peak_rss, 5000);
        let seqs: Vec<u64> = s.slowest.iter().map(|e| e.1).collect();
        assert_eq!(seqs, [3, 2, 4]);
        s.wall = ms(1500);
        s.not_started = Some(7);
        let text = s.render();
        assert!(
            text.starts_with(
                "brood: 6 jobs in 1.50s: 2 ok, 3 failed (1 timed out, 1 stopped for memory), \
                 1 stopped by brood, 7 not started"
            ),
            "{text}"
        );
        assert!(
            text.contains("cpu 35ms (user 30ms, sys 5ms), peak rss 4.88 KiB"),
            "{text}"
        );
        assert!(text.contains("#3        1.00s  c"), "{text}");
    }
}
